//! The roomcast server: HTTP + WebSocket signaling in front of the SFU.
pub mod admin;
pub mod config;
pub mod http;
pub mod limits;
pub mod loadtest;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use roomcast_sfu::{ServerStats, Sessions, Sfu};
use tokio::task::JoinHandle;

pub use config::ServeArgs;

/// How long [`RunningServer::shutdown`] waits for connections to close before it gives up
/// on them; it returns within about this long (the process must be gone within 5 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// A started server; dropping it does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub sfu: Arc<Sfu>,
    /// The session layer: the resume registry and its grace period.
    pub sessions: Arc<Sessions>,
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
        let sfu = Sfu::new(args.sfu_config()).await?;
        let sessions = Sessions::new(Arc::clone(&sfu));
        let listener = tokio::net::TcpListener::bind(args.http_addr).await?;
        let http_addr = listener.local_addr()?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let connections = Arc::new(http::Connections::default());
        let control = http::Control {
            limits: args.limits(),
            shutdown: stop.subscribe(),
            connections: Arc::clone(&connections),
            admin_key: args.admin_key.as_deref().map(admin::AdminKey::new),
        };
        let app = http::router_with_control(Arc::clone(&sessions), options, control);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        tracing::info!(%http_addr, udp_port = sfu.udp_port(), "roomcast listening");
        Ok(RunningServer {
            http_addr,
            sfu,
            sessions,
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

    /// Stops the server: every WebSocket client gets `server_shutdown` and a close (1001),
    /// its session leaves and closes its PeerConnection, and the HTTP listener stops.
    /// Returns within about [`SHUTDOWN_GRACE`], even if something hangs.
    pub async fn shutdown(self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
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
