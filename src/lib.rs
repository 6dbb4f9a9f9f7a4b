//! The roomcast server: HTTP + WebSocket signaling in front of the SFU.
pub mod config;
pub mod http;
pub mod loadtest;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use roomcast_sfu::{ServerStats, Sfu};
use tokio::task::JoinHandle;

pub use config::ServeArgs;

/// A started server; dropping it does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub sfu: Arc<Sfu>,
    task: JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
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
        let listener = tokio::net::TcpListener::bind(args.http_addr).await?;
        let http_addr = listener.local_addr()?;
        let app = http::router_with(Arc::clone(&sfu), options);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
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
            task,
            stop,
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

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
