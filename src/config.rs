//! Command-line flags and environment variables. The defaults are the embedded
//! configuration: `cargo run --release` works on localhost with nothing else installed.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::Args;
use roomcast_protocol::IceServer;
use roomcast_sfu::{MediaConfig, SfuConfig};

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

    /// Do not limit what subscribers receive by their estimated bandwidth: each gets the
    /// simulcast layer it asks for, and no track is paused for bandwidth.
    #[arg(long, env = "ROOMCAST_NO_CONGESTION_CONTROL")]
    pub no_congestion_control: bool,

    /// Log format: `text` or `json`.
    #[arg(long, env = "ROOMCAST_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    /// Loopback only, ephemeral ports: for tests and benchmarks on one machine.
    pub fn local_ephemeral() -> Self {
        ServeArgs {
            http_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            udp_port: 0,
            udp_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            public_ip: Vec::new(),
            no_loopback_candidate: false,
            ice_urls: Vec::new(),
            ice_username: None,
            ice_credential: None,
            max_participants_per_room: 1000,
            no_congestion_control: false,
            log_format: LogFormat::Text,
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
            congestion_control: !self.no_congestion_control,
        }
    }
}
