//! Command-line flags and environment variables. The defaults are the embedded
//! configuration: `cargo run --release` works on localhost with nothing else installed.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;
use roomcast_protocol::Role;
use roomcast_sfu::turn::{IceServers, TurnAuth};
use roomcast_sfu::{MediaConfig, SfuConfig};

use crate::admission::origin::AllowedOrigins;
use crate::limits::Rate;

/// How long a client has to send its request headers unless told otherwise.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long TURN credentials minted with `--turn-secret` stay valid unless told otherwise.
pub const DEFAULT_TURN_TTL: Duration = Duration::from_secs(24 * 3600);

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

    /// One username for the TURN URLs in `--ice-urls`, the same for everyone (prefer
    /// `--turn-secret`).
    #[arg(long, env = "ROOMCAST_ICE_USERNAME")]
    pub ice_username: Option<String>,

    /// The credential that goes with `--ice-username`.
    #[arg(long, env = "ROOMCAST_ICE_CREDENTIAL", hide_env_values = true)]
    pub ice_credential: Option<String>,

    /// The secret shared with the TURN server (coturn `static-auth-secret`): each
    /// participant gets its own TURN credential for the `turn:`/`turns:` URLs in
    /// `--ice-urls`, valid for `--turn-ttl` ("TURN REST API" scheme). Replaces
    /// `--ice-username`/`--ice-credential`.
    #[arg(
        long,
        env = "ROOMCAST_TURN_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        conflicts_with_all = ["ice_username", "ice_credential"],
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub turn_secret: Option<String>,

    /// How long a TURN credential minted with `--turn-secret` stays valid (e.g. `12h`); a
    /// participant gets a fresh one in `joined` and in every `resumed`.
    #[arg(long, env = "ROOMCAST_TURN_TTL", default_value = "24h", value_parser = parse_ttl)]
    pub turn_ttl: Duration,

    /// Most participants one room may hold.
    #[arg(long, env = "ROOMCAST_MAX_PARTICIPANTS", default_value_t = 1000)]
    pub max_participants_per_room: usize,

    /// Most rooms the server holds at once; a `join` that would create one more gets
    /// `room_full` (0: no limit).
    #[arg(long, env = "ROOMCAST_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Messages per second one WebSocket connection may send, sustained (0: no limit);
    /// WebSocket pings and pongs count as messages. A client that goes over it (e.g. a chat
    /// or ping flood) gets `rate_limited` and is disconnected (close 1008).
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

    /// Most WebSocket connections open at once (0: no limit); beyond it `/ws` answers 503.
    #[arg(long, env = "ROOMCAST_MAX_WEBSOCKETS", default_value_t = 4096)]
    pub max_websockets: usize,

    /// Most WebSocket connections from one client address (IPv6: one /64) at once (0: no
    /// limit); beyond it `/ws` answers 429. Behind a reverse proxy, see `--trusted-proxy`.
    #[arg(long, env = "ROOMCAST_MAX_WEBSOCKETS_PER_IP", default_value_t = 500)]
    pub max_websockets_per_ip: usize,

    /// How long a WebSocket may stay open before a `join` (or `resume`) succeeds on it; then
    /// it is closed with code 4408 (`0s`: no limit).
    #[arg(long, env = "ROOMCAST_JOIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub join_timeout: Duration,

    /// Most HTTP connections open at once, WebSockets not counted once upgraded (0: no
    /// limit); beyond it a connection is answered 503 and closed.
    #[arg(long, env = "ROOMCAST_MAX_HTTP_CONNECTIONS", default_value_t = 2048)]
    pub max_http_connections: usize,

    /// Most HTTP connections from one client address (IPv6: one /64) at once (0: no limit);
    /// beyond it a connection is answered 429 and closed. Trusted proxies are exempt.
    #[arg(
        long,
        env = "ROOMCAST_MAX_HTTP_CONNECTIONS_PER_IP",
        default_value_t = 256
    )]
    pub max_http_connections_per_ip: usize,

    /// How long a client has to send a request's headers, and a kept-alive connection to
    /// start its next request; then the connection is closed.
    #[arg(long, env = "ROOMCAST_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_ttl)]
    pub header_read_timeout: Duration,

    /// Reverse proxies (addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For`
    /// names the client: per-address limits then apply to the client, not the proxy.
    #[arg(long, env = "ROOMCAST_TRUSTED_PROXY", value_delimiter = ',', value_parser = parse_trusted_proxy)]
    pub trusted_proxy: Vec<IpNet>,

    /// Web page origins allowed to open `/ws` from a browser (comma-separated, e.g.
    /// `https://meet.example.org`; `*`: any). Default: pages served by this server (any
    /// host name it is reached under) and localhost. Clients that send no `Origin` (bots,
    /// native apps) are always allowed.
    #[arg(long, env = "ROOMCAST_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub allowed_origins: Vec<String>,

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
        value_parser = parse_secret
    )]
    pub jwt_secret: Option<String>,

    /// The longest a join token may live: a token whose `exp` is further away than this is
    /// refused (`unauthorized`).
    #[arg(long, env = "ROOMCAST_MAX_TOKEN_TTL", default_value = "24h", value_parser = parse_ttl)]
    pub max_token_ttl: Duration,

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

    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
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
            turn_secret: None,
            turn_ttl: DEFAULT_TURN_TTL,
            max_participants_per_room: 1000,
            max_rooms: 10_000,
            max_messages_per_second: 20,
            message_burst: 50,
            max_joins_per_ip_per_second: 20,
            join_burst_per_ip: 50,
            max_websockets: 4096,
            max_websockets_per_ip: 500,
            join_timeout: crate::http::DEFAULT_JOIN_TIMEOUT,
            max_http_connections: 2048,
            max_http_connections_per_ip: 256,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            trusted_proxy: Vec::new(),
            allowed_origins: Vec::new(),
            no_congestion_control: false,
            log_format: LogFormat::Text,
            jwt_secret: None,
            max_token_ttl: roomcast_sfu::auth::DEFAULT_MAX_TOKEN_TTL,
            admin_key: None,
            cluster: crate::cluster::ClusterArgs::default(),
        }
    }

    /// The limits the WebSocket layer enforces.
    pub fn limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            messages: Rate::new(self.max_messages_per_second, self.message_burst),
            joins_per_ip: Rate::new(self.max_joins_per_ip_per_second, self.join_burst_per_ip),
            join_timeout: (!self.join_timeout.is_zero()).then_some(self.join_timeout),
        }
    }

    /// The limits on HTTP connections before any WebSocket upgrade.
    pub fn http_limits(&self) -> crate::listener::HttpLimits {
        crate::listener::HttpLimits {
            header_read_timeout: self.header_read_timeout,
            max_per_ip: self.max_http_connections_per_ip,
            max_total: self.max_http_connections,
        }
    }

    pub fn sfu_config(&self) -> SfuConfig {
        let auth = match (&self.turn_secret, &self.ice_username, &self.ice_credential) {
            (Some(secret), _, _) => TurnAuth::Secret {
                secret: secret.clone(),
                ttl: self.turn_ttl,
            },
            (None, None, None) => TurnAuth::None,
            (None, username, credential) => TurnAuth::Static {
                username: username.clone().unwrap_or_default(),
                credential: credential.clone().unwrap_or_default(),
            },
        };
        SfuConfig {
            media: MediaConfig {
                udp_ip: self.udp_ip,
                udp_port: self.udp_port,
                public_ips: self.public_ip.clone(),
                include_loopback: !self.no_loopback_candidate,
            },
            ice: IceServers {
                urls: self.ice_urls.clone(),
                auth,
            },
            max_participants_per_room: self.max_participants_per_room,
            max_rooms: self.max_rooms,
            congestion_control: !self.no_congestion_control,
            jwt_secret: self.jwt_secret.clone(),
            max_token_ttl: self.max_token_ttl,
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
        value_parser = parse_secret
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

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_trusted_proxy(text: &str) -> Result<IpNet, String> {
    crate::admission::proxy::parse_net(text)
}

/// One `--allowed-origins` value, checked here so a typo stops the server at start.
fn parse_origin(text: &str) -> Result<String, String> {
    AllowedOrigins::parse(&[text.to_owned()])?;
    Ok(text.trim().to_owned())
}

/// A JWT secret long enough to be safe (see [`roomcast_sfu::auth::check_secret`]).
fn parse_secret(text: &str) -> Result<String, String> {
    roomcast_sfu::auth::check_secret(text)?;
    Ok(text.to_owned())
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = parse_duration(text)?;
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
            return Err(format!("--{}", roomcast_protocol::DISPLAY_NAME_RULE));
        }
        let exp = now
            .checked_add(self.ttl.as_secs())
            .ok_or_else(|| "--ttl is too long".to_owned())?;
        roomcast_sfu::auth::mint(&self.secret, &self.room, &self.name, self.role.into(), exp)
    }
}
