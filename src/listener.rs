//! The HTTP listener: accepts TCP connections and serves each with hyper's HTTP/1.1, with
//! the limits `axum::serve` has no knobs for. A connection beyond the cap per client address
//! or in total is answered `429` or `503` at once and closed; one whose request headers are
//! not complete within the header-read timeout is closed (as nginx does, without a
//! response), which also ends idle keep-alive connections. Once a connection is upgraded to
//! a WebSocket it leaves these counts: `/ws` has caps of its own.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::admission::proxy::TrustedProxies;
use crate::admission::{Full, Refusal, RefusalCounts, Slot, Slots};
use crate::http::shutdown_requested;

/// Limits on plain HTTP connections (and WebSockets until their upgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a client has to send a request's headers (and, on a kept-alive connection,
    /// to start the next request).
    pub header_read_timeout: Duration,
    /// Most connections from one client address (0: no limit); trusted proxies are exempt.
    pub max_per_ip: usize,
    /// Most connections at once (0: no limit).
    pub max_total: usize,
}

/// The kernel's send buffer per connection (it doubles this for its bookkeeping): enough
/// for the web client's largest file and any signaling burst at a good pace.
const SEND_BUFFER_BYTES: usize = 128 * 1024;

/// How long an accept error (e.g. out of file descriptors) pauses accepting.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What every connection task shares.
pub struct Listening {
    pub app: Router,
    pub limits: HttpLimits,
    pub slots: Arc<Slots>,
    pub trusted: TrustedProxies,
    pub refused: Arc<RefusalCounts>,
    /// Places for refused connections that linger (see [`refuse`]).
    pub lingering: Arc<Semaphore>,
}

/// Accepts and serves connections until `shutdown` turns `true`; connections being served
/// then finish their current request and close.
pub async fn serve(listener: TcpListener, listening: Listening, shutdown: watch::Receiver<bool>) {
    let listening = Arc::new(listening);
    let mut stop = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown_requested(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        // Behind a proxy every client shares its address: only `/ws` can tell them apart.
        let ip = (!listening.trusted.contains(peer.ip())).then_some(peer.ip());
        let slot = match listening.slots.try_take(ip) {
            Ok(slot) => slot,
            Err(full) => {
                refuse(stream, full, &listening);
                continue;
            }
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            slot,
            Arc::clone(&listening),
            shutdown.clone(),
        ));
    }
}

/// Answers a connection over the caps and closes it. Its request is read (and dropped) for
/// a moment first: closing with it unread would reset the connection, and the client might
/// never see the answer. Only a few refusals linger at once; the rest are just closed.
fn refuse(stream: TcpStream, full: Full, listening: &Listening) {
    let (refusal, status) = match full {
        Full::PerIp => (Refusal::HttpConnectionsPerIp, "429 Too Many Requests"),
        Full::Total => (Refusal::HttpConnections, "503 Service Unavailable"),
    };
    listening.refused.count(refusal);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Retry-After: 5\r\nConnection: close\r\n\r\n{}",
        TOO_MANY.len(),
        TOO_MANY
    );
    // A fresh socket's send buffer takes this at once; if not, the close says enough.
    if stream.try_write(response.as_bytes()).is_err() {
        return;
    }
    let Ok(permit) = Arc::clone(&listening.lingering).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 1024];
        let drain = async {
            let mut left = REFUSAL_DRAIN_BYTES;
            while left > 0 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(REFUSAL_LINGER, drain).await;
        drop(permit);
    });
}

const TOO_MANY: &str = "too many connections; try again later\n";
/// How long, and how much of its request, a refused connection is read before it closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
const REFUSAL_DRAIN_BYTES: usize = 16 * 1024;
/// Refused connections lingering at once, at most.
pub const MAX_LINGERING_REFUSALS: usize = 64;

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    listening: Arc<Listening>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    // Signaling needs little in flight; a client that stops reading then fills a small
    // kernel buffer and its outbox soon, instead of pinning megabytes of kernel memory.
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER_BYTES);
    let service = listening
        .app
        .clone()
        .map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(listening.limits.header_read_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown_requested(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            listening.refused.count(Refusal::HeaderTimeout);
        } else {
            tracing::debug!(error = %e, "HTTP connection ended with an error");
        }
    }
    drop(slot);
}
