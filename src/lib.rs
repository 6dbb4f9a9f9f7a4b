//! The roomcast server: HTTP + WebSocket signaling in front of the SFU.
pub mod admin;
pub mod admission;
pub mod cluster;
pub mod config;
pub mod http;
pub mod limits;
pub mod listener;
pub mod loadtest;
pub mod memory;
pub mod metrics;
pub mod whip;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use roomcast_sfu::{ServerStats, Sessions, Sfu};
use tokio::task::JoinHandle;

pub use config::ServeArgs;

/// The server's logs without `RUST_LOG`. The DTLS crate's ClientHello parser warns once per
/// extension it does not know, for every handshake of a browser that offers DTLS 1.3 and falls
/// back (Firefox: `Unsupported Extension Type 0 43` …): a normal handshake, so that one module
/// logs errors only. Failed handshakes still show (the peer connection's and the session's
/// warnings). The ICE agent warns once per STUN message it discards (wrong credentials, an
/// unknown transaction): anyone who learns a session's ufrag could fill the log with them,
/// and with the username they sent, so those two modules log errors only. For the same reason
/// the DTLS/SRTP mux, which warns once per datagram it has no endpoint for (a peer's packets
/// still arriving as its connection closes, or anything it sends after), logs errors only.
pub const SERVE_LOG_FILTER: &str = "info,webrtc=warn,webrtc_ice=warn,dtls=warn,\
    dtls::handshake::handshake_message_client_hello=error,webrtc_srtp=error,interceptor=warn,\
    webrtc_ice::agent::agent_internal=error,webrtc_ice::agent::agent_selector=error,\
    webrtc::mux=error";

/// How long [`RunningServer::shutdown`] waits for connections to close before it gives up
/// on them; it returns within about this long (the process must be gone within 5 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// A started server; dropping it does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub sfu: Arc<Sfu>,
    /// The session layer: the resume registry and its grace period.
    pub sessions: Arc<Sessions>,
    /// This server's cluster membership (`--redis-url`); `None` alone.
    pub cluster: Option<Arc<cluster::ClusterNode>>,
    task: JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    connections: Arc<http::Connections>,
}

impl RunningServer {
    pub async fn start(args: &ServeArgs) -> anyhow::Result<RunningServer> {
        Self::start_with(args, http::HttpOptions::default()).await
    }

    /// [`RunningServer::start`] with HTTP-level settings (e.g. shorter keepalive for tests).
    pub async fn start_with(
        args: &ServeArgs,
        options: http::HttpOptions,
    ) -> anyhow::Result<RunningServer> {
        if let Some(secret) = &args.jwt_secret {
            roomcast_sfu::auth::check_secret(secret).map_err(anyhow::Error::msg)?;
        }
        let origins = admission::origin::AllowedOrigins::parse(&args.allowed_origins)
            .map_err(anyhow::Error::msg)?;
        raise_fd_limit(args);
        let sfu = Sfu::new(args.sfu_config()).await?;
        let sessions = Sessions::new(Arc::clone(&sfu));
        let listener = tokio::net::TcpListener::bind(args.http_addr).await?;
        let http_addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let connections = Arc::new(http::Connections::new(
            args.max_websockets_per_ip,
            args.max_websockets,
        ));
        let http_limits = args.http_limits();
        let http_slots = Arc::new(admission::Slots::new(
            http_limits.max_per_ip,
            http_limits.max_total,
        ));
        let trusted = admission::proxy::TrustedProxies::new(args.trusted_proxy.clone());
        let refused = Arc::new(admission::RefusalCounts::default());
        let cluster = match &args.cluster.redis_url {
            Some(url) => Some(cluster::ClusterNode::start(
                &args.cluster,
                url,
                http_addr,
                &args.public_ip,
                &sessions,
            )?),
            None => None,
        };
        let control = http::Control {
            limits: args.limits(),
            shutdown: stop.subscribe(),
            connections: Arc::clone(&connections),
            admin_key: args.admin_key.as_deref().map(admin::AdminKey::new),
            admission: http::Admission {
                trusted: trusted.clone(),
                origins,
                refused: Arc::clone(&refused),
                http_connections: Some(Arc::clone(&http_slots)),
            },
            cluster: cluster.clone(),
        };
        let app = http::router_with_control(Arc::clone(&sessions), options, control);
        let listening = listener::Listening {
            app,
            limits: http_limits,
            slots: http_slots,
            trusted,
            refused,
            lingering: Arc::new(tokio::sync::Semaphore::new(
                listener::MAX_LINGERING_REFUSALS,
            )),
        };
        tokio::spawn(memory::trim_periodically(stopped.clone()));
        let task = tokio::spawn(listener::serve(listener, listening, stopped));
        tracing::info!(%http_addr, udp_port = sfu.udp_port(), "roomcast listening");
        Ok(RunningServer {
            http_addr,
            sfu,
            sessions,
            cluster,
            task,
            stop,
            connections,
        })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http_addr)
    }

    pub fn stats(&self) -> ServerStats {
        self.sfu.stats()
    }

    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// WebSocket connections open now.
    pub fn live_connections(&self) -> usize {
        self.connections.count()
    }

    /// Resolves when a cluster node was asked to drain over HTTP; never alone.
    pub async fn drain_requested(&self) {
        match &self.cluster {
            Some(node) => node.drain_requested().await,
            None => std::future::pending().await,
        }
    }

    /// Drains a cluster node (see [`cluster::drain`]): returns once nobody is left or the
    /// drain's deadline passed; [`RunningServer::shutdown`] then tells whoever is left to
    /// `reconnect`. Alone, returns at once.
    pub async fn drain(&self) {
        if let Some(node) = &self.cluster {
            cluster::drain::run(node, &self.connections, &self.sfu).await;
        }
    }

    /// Stops the server: every WebSocket client gets `server_shutdown` (after a drain's
    /// deadline, `reconnect`) and a close (1001), its session leaves and closes its
    /// PeerConnection, and the HTTP listener stops; a cluster node leaves the cluster.
    /// Returns within about [`SHUTDOWN_GRACE`], even if something hangs.
    pub async fn shutdown(self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        if let Some(node) = &self.cluster {
            // Bounded by the store's own timeouts (1.5 s a call at most).
            let _ = tokio::time::timeout(Duration::from_secs(2), node.leave()).await;
        }
        let _ = self.stop.send(true);
        // Sessions waiting for a `resume` leave now, and none waits from here on.
        self.sessions.resume.shut_down();
        let open = self.connections.count();
        tracing::info!(connections = open, "closing every connection");
        if tokio::time::timeout_at(deadline, self.connections.wait_closed())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = self.connections.count(),
                "connections still open at the shutdown deadline; leaving them"
            );
        }
        let abort = self.task.abort_handle();
        let rest = deadline + Duration::from_millis(500);
        if tokio::time::timeout_at(rest, self.task).await.is_err() {
            tracing::warn!("the HTTP server did not stop in time; aborting it");
            abort.abort();
        }
    }
}

/// File descriptors kept for everything but client connections (the media socket, logs,
/// webrtc's internals).
const RESERVED_FDS: u64 = 256;

/// Raises the soft limit on open files to the hard one (often 1024 by default, which ran
/// out before any cap was reached), and warns when it is still too low for the caps.
fn raise_fd_limit(args: &ServeArgs) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the limit on open files");
            return;
        }
    };
    let caps = [args.max_websockets, args.max_http_connections];
    if caps.contains(&0) {
        return;
    }
    let needed = caps.iter().map(|&c| c as u64).sum::<u64>() + RESERVED_FDS;
    if limit < needed {
        tracing::warn!(
            limit,
            needed,
            "the limit on open files is below what --max-websockets and --max-http-connections \
             allow: connections may fail before those caps; raise `ulimit -n` or lower them"
        );
    }
}
