//! Command-line flags and environment variables. The defaults are the embedded
//! configuration: `cargo run --release` works on localhost with nothing else installed.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use roomcast_protocol::{IceServer, Role};
use roomcast_sfu::{MediaConfig, SfuConfig};

use crate::limits::Rate;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address for HTTP: the web client at `/`, the WebSocket at `/ws`, `/healthz`, `/api/stats`.
    #[arg(long, env = "ROOMCAST_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// The one UDP port all WebRTC media uses (0 picks a free port).
    #[arg(long, env = "ROOMCAST_UDP_PORT", default_value_t = 50000)]
    pub udp_port: u16,

    /// Local address the media socket binds to.
    #[arg(long, env = "ROOMCAST_UDP_IP", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub udp_ip: IpAddr,

    /// Public IP announced in ICE candidates instead of the local ones (NAT 1:1, for
    /// containers and clouds). Repeat or comma-separate for several.
    #[arg(long, env = "ROOMCAST_PUBLIC_IP", value_delimiter = ',')]
    pub public_ip: Vec<String>,

    /// Do not announce loopback candidates (they only help clients on the same machine).
    #[arg(long, env = "ROOMCAST_NO_LOOPBACK_CANDIDATE")]
    pub no_loopback_candidate: bool,

    /// STUN/TURN URLs handed to clients in `joined` (comma-separated, e.g.
    /// `stun:stun.example.org:3478,turn:turn.example.org:3478?transport=udp`).
    #[arg(long, env = "ROOMCAST_ICE_URLS", value_delimiter = ',')]
    pub ice_urls: Vec<String>,

    /// Username for the TURN URLs in `--ice-urls`.
    #[arg(long, env = "ROOMCAST_ICE_USERNAME")]
    pub ice_username: Option<String>,

    /// Credential for the TURN URLs in `--ice-urls`.
    #[arg(long, env = "ROOMCAST_ICE_CREDENTIAL")]
    pub ice_credential: Option<String>,

    /// Most participants one room may hold.
    #[arg(long, env = "ROOMCAST_MAX_PARTICIPANTS", default_value_t = 1000)]
    pub max_participants_per_room: usize,

    /// Most rooms the server holds at once; a `join` that would create one more gets
    /// `room_full` (0: no limit).
    #[arg(long, env = "ROOMCAST_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Messages per second one WebSocket connection may send, sustained (0: no limit). A
    /// client that goes over it (e.g. a chat flood) gets `rate_limited` and is disconnected
    /// (close 1008).
    #[arg(long, env = "ROOMCAST_MAX_MESSAGES_PER_SECOND", default_value_t = 20)]
    pub max_messages_per_second: u32,

    /// Messages one connection may send at once above the sustained rate (the token
    /// bucket's size).
    #[arg(long, env = "ROOMCAST_MESSAGE_BURST", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub message_burst: u32,

    /// `join` messages per second accepted from one client IP address, sustained (0: no
    /// limit). Joins over it get `rate_limited`; the connection stays open.
    #[arg(
        long,
        env = "ROOMCAST_MAX_JOINS_PER_IP_PER_SECOND",
        default_value_t = 20
    )]
    pub max_joins_per_ip_per_second: u32,

    /// `join` messages one IP address may send at once above the sustained rate.
    #[arg(long, env = "ROOMCAST_JOIN_BURST_PER_IP", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub join_burst_per_ip: u32,

    /// Do not limit what subscribers receive by their estimated bandwidth: each gets the
    /// simulcast layer it asks for, and no track is paused for bandwidth.
    #[arg(long, env = "ROOMCAST_NO_CONGESTION_CONTROL")]
    pub no_congestion_control: bool,

    /// Log format: `text` or `json`.
    #[arg(long, env = "ROOMCAST_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// Require every `join` to carry an HS256 JWT signed with this secret (claims `room`,
    /// `name`, `role`, `exp`; mint one with `roomcast token`). Without it the server is
    /// open: anyone who can reach it joins any room under any name and role.
    #[arg(
        long,
        env = "ROOMCAST_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub jwt_secret: Option<String>,

    /// Enable the admin HTTP API (`/api/rooms...`: list rooms, mute, kick, end rooms) for
    /// requests with `Authorization: Bearer <KEY>`. Without it the admin API is disabled
    /// (503 `disabled`). Prefer the environment variable: flags show in `ps`.
    #[arg(
        long,
        env = "ROOMCAST_ADMIN_KEY",
        value_name = "KEY",
        hide_env_values = true,
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub admin_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    /// Ephemeral ports and HTTP on loopback, for tests and benchmarks on one machine. Media
    /// binds where the default does (every address), so what users run is what is tested.
    pub fn local_ephemeral() -> Self {
        ServeArgs {
            http_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            udp_port: 0,
            udp_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            public_ip: Vec::new(),
            no_loopback_candidate: false,
            ice_urls: Vec::new(),
            ice_username: None,
            ice_credential: None,
            max_participants_per_room: 1000,
            max_rooms: 10_000,
            max_messages_per_second: 20,
            message_burst: 50,
            max_joins_per_ip_per_second: 20,
            join_burst_per_ip: 50,
            no_congestion_control: false,
            log_format: LogFormat::Text,
            jwt_secret: None,
            admin_key: None,
        }
    }

    /// The rate limits the HTTP layer enforces.
    pub fn limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            messages: Rate::new(self.max_messages_per_second, self.message_burst),
            joins_per_ip: Rate::new(self.max_joins_per_ip_per_second, self.join_burst_per_ip),
        }
    }

    pub fn sfu_config(&self) -> SfuConfig {
        let ice_servers = if self.ice_urls.is_empty() {
            Vec::new()
        } else {
            vec![IceServer {
                urls: self.ice_urls.clone(),
                username: self.ice_username.clone(),
                credential: self.ice_credential.clone(),
            }]
        };
        SfuConfig {
            media: MediaConfig {
                udp_ip: self.udp_ip,
                udp_port: self.udp_port,
                public_ips: self.public_ip.clone(),
                include_loopback: !self.no_loopback_candidate,
            },
            ice_servers,
            max_participants_per_room: self.max_participants_per_room,
            max_rooms: self.max_rooms,
            congestion_control: !self.no_congestion_control,
            jwt_secret: self.jwt_secret.clone(),
        }
    }
}

/// `roomcast token`: mint a join token for a server started with `--jwt-secret`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Room the token opens (1-64 of `A-Z a-z 0-9 _ - .`).
    #[arg(long)]
    pub room: String,

    /// Display name the participant gets (1-64 characters).
    #[arg(long)]
    pub name: String,

    /// Role the participant gets; a `join` may not ask for more.
    #[arg(long, value_enum, default_value = "presenter")]
    pub role: RoleArg,

    /// How long the token stays valid, e.g. `30m`, `1h`, `7days`.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,

    /// The server's `--jwt-secret`.
    #[arg(
        long,
        env = "ROOMCAST_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Host,
    Presenter,
    Audience,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Host => Role::Host,
            RoleArg::Presenter => Role::Presenter,
            RoleArg::Audience => Role::Audience,
        }
    }
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if ttl.as_secs() == 0 {
        return Err("must be at least 1s".to_owned());
    }
    Ok(ttl)
}

impl TokenArgs {
    /// The signed token, or a usage error.
    pub fn mint(&self, now: u64) -> Result<String, String> {
        if !roomcast_protocol::is_valid_room_name(&self.room) {
            return Err("--room must be 1-64 characters of A-Z a-z 0-9 _ - .".to_owned());
        }
        if !roomcast_protocol::is_valid_display_name(&self.name) {
            return Err("--name must be 1-64 characters".to_owned());
        }
        let exp = now
            .checked_add(self.ttl.as_secs())
            .ok_or_else(|| "--ttl is too long".to_owned())?;
        roomcast_sfu::auth::mint(&self.secret, &self.room, &self.name, self.role.into(), exp)
    }
}
