//! This server as one node of a cluster sharing rooms through Redis (`--redis-url`).
//!
//! The shared state and its decisions are `roomcast-cluster`; this module is what the
//! server does with them: it registers and heartbeats ([`ClusterNode::start`]), decides
//! where a new WebSocket's first message belongs ([`route`]), relays a client whose room
//! lives on another node ([`relay`]), drains ([`drain`]), answers `/api/nodes` ([`api`])
//! and the admin API's `/api/rooms...` for the whole cluster ([`rooms`]). Without `--redis-url` none of it runs. docs/cluster.md has the design.
pub mod accept;
pub mod api;
pub mod cascade;
pub mod drain;
mod peer_http;
pub mod relay;
pub mod rooms;
pub mod route;
pub mod whip_route;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use clap::Args;
use roomcast_cluster::load::{process_cpu_time, LoadSample};
use roomcast_cluster::{Cluster, LocalNode, LostRoom, NodeConfig, RedisStore, Timing};
use roomcast_sfu::{Sessions, Sfu};
use tokio::sync::{watch, Notify};

/// The header a relaying node names the client's address in; believed only from the
/// address of a registered node (see [`ClusterNode::relayed_client_ip`]).
pub const CLIENT_IP_HEADER: &str = "x-roomcast-client-ip";

/// Keys in Redis start with this (`roomcast:node:ID`, `roomcast:room:NAME`).
const KEY_PREFIX: &str = "roomcast";

/// Node options; `--redis-url` turns clustering on, and the rest only matter with it.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Redis URL (`redis://[:password@]host:6379[/db]`) shared by the nodes of a cluster:
    /// rooms are placed on nodes through it and any node accepts any client. Without it
    /// the server runs alone and uses no Redis.
    #[arg(long, env = "ROOMCAST_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// This node's id in the cluster (1-64 of `A-Z a-z 0-9 _ - .`). Default: the host
    /// name and the HTTP port.
    #[arg(long, env = "ROOMCAST_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// A label for where the node runs; new rooms go to nodes of the placing node's region
    /// first.
    #[arg(long, env = "ROOMCAST_REGION", default_value = "default")]
    pub region: String,

    /// The signaling URL clients reach this node at (`ws://host:port/ws`). Default: built
    /// from the first `--public-ip` (or the HTTP address) and the HTTP port.
    #[arg(long, env = "ROOMCAST_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The base URL other nodes reach this one at (`http://10.0.0.5:8080`): relayed
    /// signaling and the cluster-wide admin API use it. Default: as `--public-url`, over
    /// HTTP.
    #[arg(long, env = "ROOMCAST_INTERNAL_URL")]
    pub internal_url: Option<String>,

    /// Participants this node is meant to carry; placement compares load against it.
    #[arg(long, env = "ROOMCAST_NODE_CAPACITY", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub node_capacity: u64,

    /// How long a draining node (SIGTERM, or `POST /api/nodes/{id}/drain`) waits for its
    /// participants to leave before it tells the rest to `reconnect` and exits.
    #[arg(long, env = "ROOMCAST_DRAIN_TIMEOUT", default_value = "30s",
          value_parser = crate::config::parse_duration)]
    pub drain_timeout: Duration,

    /// Cascading: once the node holding a room carries this many participants (as its
    /// last heartbeat registered), an audience member who joins the room through this node
    /// is served here, from this node's mirror of the room, instead of being relayed to it.
    /// Publishers always go to the room's node. 0 sends the audience to the node it
    /// connects to at once. Default: `--node-capacity`.
    #[arg(long, env = "ROOMCAST_CASCADE_AFTER", value_name = "PARTICIPANTS")]
    pub cascade_after: Option<u64>,
}

impl Default for ClusterArgs {
    /// Clustering off.
    fn default() -> Self {
        ClusterArgs {
            redis_url: None,
            node_id: None,
            region: "default".to_owned(),
            public_url: None,
            internal_url: None,
            node_capacity: 1000,
            drain_timeout: Duration::from_secs(30),
            cascade_after: None,
        }
    }
}

fn parse_node_id(text: &str) -> Result<String, String> {
    if roomcast_cluster::node::is_valid_node_id(text) {
        Ok(text.to_owned())
    } else {
        Err("must be 1-64 characters of A-Z a-z 0-9 _ - .".to_owned())
    }
}

/// This server's membership of the cluster.
pub struct ClusterNode {
    pub cluster: Arc<Cluster>,
    sfu: Arc<Sfu>,
    /// Set when a drain's deadline passed: the rooms here are given up and every client
    /// is told to `reconnect` as the server stops.
    evacuating: Arc<AtomicBool>,
    /// A drain asked over HTTP; the process's main loop waits for it as for SIGTERM.
    drain_requested: Notify,
    drain_timeout: Duration,
    stop_heartbeat: watch::Sender<bool>,
    /// This node's mirrors of rooms held elsewhere (cascading).
    pub cascade: Arc<cascade::Cascade>,
}

impl ClusterNode {
    /// Joins the cluster: registers this node and keeps its record and room leases fresh.
    /// Does not wait for Redis (a node starts while it is down and registers once it is up).
    pub fn start(
        args: &ClusterArgs,
        redis_url: &str,
        http_addr: SocketAddr,
        public_ips: &[String],
        sessions: &Sessions,
    ) -> anyhow::Result<Arc<ClusterNode>> {
        let sfu = Arc::clone(&sessions.sfu);
        let config = node_config(args, http_addr, public_ips, sfu.udp_port());
        let store = RedisStore::new(redis_url, KEY_PREFIX).map_err(anyhow::Error::msg)?;
        tracing::info!(node = %config.id, region = %config.region, public_url = %config.public_url,
            internal_url = %config.internal_url, media = %config.media_addr, "joining the cluster");
        // Session tokens name their node, so any node can send a `resume` to it.
        sessions.resume.set_token_prefix(format!("{}~", config.id));
        let cascade = cascade::Cascade::new(
            config.id.clone(),
            Arc::clone(&sfu),
            args.cascade_after.unwrap_or(args.node_capacity),
        );
        let cluster = Cluster::new(config, Timing::default(), Arc::new(store));
        let evacuating = Arc::new(AtomicBool::new(false));
        let (stop_heartbeat, stopped) = watch::channel(false);
        let local = Arc::new(LocalRooms {
            sfu: Arc::clone(&sfu),
            evacuating: Arc::clone(&evacuating),
            cascade: Arc::clone(&cascade),
        });
        tokio::spawn(Arc::clone(&cluster).run_heartbeat(local, stopped));
        Ok(Arc::new(ClusterNode {
            cluster,
            sfu,
            evacuating,
            drain_requested: Notify::new(),
            drain_timeout: args.drain_timeout,
            stop_heartbeat,
            cascade,
        }))
    }

    pub fn id(&self) -> &str {
        self.cluster.id()
    }

    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    pub fn is_evacuating(&self) -> bool {
        self.evacuating.load(Ordering::SeqCst)
    }

    /// What a draining node tells its clients: join again, at the least utilised node that
    /// serves (its public URL), if the registry knows one. A client behind a load balancer
    /// may ignore the URL; one that reached this node directly needs it, as this node's
    /// URL stops answering when it exits.
    pub fn reconnect_message(&self) -> roomcast_protocol::ServerMessage {
        let url = self
            .cluster
            .known_nodes()
            .into_iter()
            .filter(|n| n.id != self.id() && n.state == roomcast_cluster::NodeState::Serving)
            .min_by(|a, b| a.utilisation().total_cmp(&b.utilisation()))
            .map(|n| n.public_url);
        roomcast_protocol::ServerMessage::Reconnect {
            reason: "node_draining".to_owned(),
            url,
        }
    }

    /// Asks the process to drain (as SIGTERM does).
    pub fn request_drain(&self) {
        self.cluster.drain();
        self.drain_requested.notify_one();
    }

    /// Resolves when a drain was asked over HTTP.
    pub async fn drain_requested(&self) {
        self.drain_requested.notified().await;
    }

    /// Gives up every room here (the heartbeat holds none from now on), so the joins of
    /// the clients told to `reconnect` place them on other nodes.
    pub async fn evacuate(&self) {
        self.evacuating.store(true, Ordering::SeqCst);
        for room in self.held_rooms() {
            let _ = self.cluster.release(&room).await;
        }
        tracing::info!(node = %self.id(), "drain deadline: rooms given up, telling everyone to reconnect");
    }

    /// Leaves the cluster (the server is stopping): no more heartbeats, the rooms here
    /// given up and this node's record removed.
    pub async fn leave(&self) {
        let _ = self.stop_heartbeat.send(true);
        self.cascade.close_all();
        self.cluster.leave(&self.held_rooms()).await;
    }

    /// The rooms this node holds (its mirrors of other nodes' rooms are not).
    fn held_rooms(&self) -> Vec<String> {
        held_rooms(&self.sfu, &self.cascade)
    }

    /// The client a request from `peer` comes from when `peer` is a node relaying it (its
    /// [`CLIENT_IP_HEADER`]); `None` for any other request.
    pub fn relayed_client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let claimed = headers.get(CLIENT_IP_HEADER)?.to_str().ok()?.parse().ok()?;
        self.is_node(peer).then_some(claimed)
    }

    /// Whether a WebSocket to `uri` from `peer` is another node's cascade relay (it asks
    /// with [`cascade::RELAY_QUERY`]): believed only from a registered node's address.
    pub fn is_cascade_relay(&self, peer: IpAddr, uri: &axum::http::Uri) -> bool {
        uri.query() == Some(cascade::RELAY_QUERY) && self.is_node(peer)
    }

    /// Whether `peer` is the address of a registered node's internal URL.
    fn is_node(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.cluster
            .known_nodes()
            .iter()
            .chain(std::iter::once(&self.cluster.info()))
            .any(|n| url_host_ip(&n.internal_url) == Some(peer))
    }
}

/// The IP address in a URL's host (`http://10.0.0.5:8080/x` → 10.0.0.5); `None` for a
/// name.
pub(crate) fn url_host_ip(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    let host = authority.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// This node's record from the options, filling in what was not given.
fn node_config(
    args: &ClusterArgs,
    http_addr: SocketAddr,
    public_ips: &[String],
    udp_port: u16,
) -> NodeConfig {
    let host = match public_ips.first() {
        Some(ip) => ip.clone(),
        None if http_addr.ip().is_unspecified() => {
            if args.public_url.is_none() || args.internal_url.is_none() {
                tracing::warn!(
                    "no --public-url/--internal-url and no --public-ip: announcing 127.0.0.1, \
                     which only nodes and clients on this machine reach"
                );
            }
            Ipv4Addr::LOCALHOST.to_string()
        }
        None => http_addr.ip().to_string(),
    };
    let host_port = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", http_addr.port()),
        _ => format!("{host}:{}", http_addr.port()),
    };
    let media_host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host.clone(),
    };
    let id = args
        .node_id
        .clone()
        .unwrap_or_else(|| default_node_id(http_addr.port()));
    NodeConfig {
        id,
        region: args.region.clone(),
        public_url: args
            .public_url
            .clone()
            .unwrap_or_else(|| format!("ws://{host_port}/ws")),
        media_addr: format!("{media_host}:{udp_port}"),
        internal_url: args
            .internal_url
            .clone()
            .unwrap_or_else(|| format!("http://{host_port}"))
            .trim_end_matches('/')
            .to_owned(),
        capacity: args.node_capacity,
    }
}

/// `HOSTNAME-PORT`, kept to the characters node ids allow.
fn default_node_id(port: u16) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "roomcast".to_owned());
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(50)
        .collect();
    let host = if host.is_empty() {
        "roomcast".to_owned()
    } else {
        host
    };
    format!("{host}-{port}")
}

/// What the heartbeat reads from the server: its rooms and load.
struct LocalRooms {
    sfu: Arc<Sfu>,
    evacuating: Arc<AtomicBool>,
    cascade: Arc<cascade::Cascade>,
}

fn held_rooms(sfu: &Sfu, cascade: &cascade::Cascade) -> Vec<String> {
    sfu.rooms()
        .iter()
        .map(|r| r.name.clone())
        .filter(|name| !cascade.is_mirror(name))
        .collect()
}

impl LocalNode for LocalRooms {
    fn sample(&self) -> LoadSample {
        let stats = self.sfu.stats();
        LoadSample {
            rooms: stats.rooms as u64,
            // Edge viewers are members here but receive their media from their edge.
            participants: stats
                .participants
                .saturating_sub(self.cascade.edge_viewers.load(Ordering::Relaxed))
                as u64,
            packets_out: stats.media.packets_out,
            cpu_time: process_cpu_time(),
        }
    }

    fn rooms(&self) -> Vec<String> {
        if self.evacuating.load(Ordering::SeqCst) {
            return Vec::new();
        }
        held_rooms(&self.sfu, &self.cascade)
    }

    fn lost_room(&self, lost: &LostRoom) {
        // Joins go to the holder from now on; the members here stay until they leave.
        tracing::warn!(room = %lost.room, owner = %lost.owner,
            "room held by another node after the store came back empty; new joins go there");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(url_host_ip("http://10.0.0.5:8080"), ip("10.0.0.5"));
        assert_eq!(url_host_ip("http://10.0.0.5/x"), ip("10.0.0.5"));
        assert_eq!(url_host_ip("http://[::1]:80/"), ip("::1"));
        assert_eq!(url_host_ip("http://node-a:80"), None);
    }

    #[test]
    fn defaults_come_from_the_addresses() {
        let args = ClusterArgs {
            node_id: Some("a".into()),
            ..ClusterArgs::default()
        };
        let http: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let config = node_config(&args, http, &["203.0.113.7".into()], 50000);
        assert_eq!(config.public_url, "ws://203.0.113.7:8080/ws");
        assert_eq!(config.internal_url, "http://203.0.113.7:8080");
        assert_eq!(config.media_addr, "203.0.113.7:50000");
        let config = node_config(&args, "127.0.0.1:9000".parse().unwrap(), &[], 1);
        assert_eq!(config.internal_url, "http://127.0.0.1:9000");
        assert!(roomcast_cluster::node::is_valid_node_id(&default_node_id(
            8080
        )));
    }
}
