//! HTTP routes: the embedded web client, the signaling WebSocket, health, stats and
//! Prometheus metrics.
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use futures_util::{SinkExt, StreamExt};
use roomcast_protocol::{ErrorCode, ServerMessage, MAX_FRAME_BYTES};
use roomcast_sfu::signaling::outbox::Outbox;
use roomcast_sfu::signaling::session::SessionEnd;
use roomcast_sfu::{run_session, Client, Inbound, JoinGate, Sessions, Sfu};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use crate::limits::{PerIpLimiter, Rate, TokenBucket};

#[derive(rust_embed::RustEmbed)]
#[folder = "web/"]
struct WebAssets;

/// WebSocket keepalive: the server pings every `ping_interval`; a connection from which
/// nothing at all (pong or any other frame) arrived for `timeout` is closed with 1001.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub ping_interval: Duration,
    pub timeout: Duration,
}

pub const PING_INTERVAL: Duration = Duration::from_secs(5);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(15);
/// The close code sent to a connection that stayed silent past the keepalive timeout.
pub const KEEPALIVE_CLOSE_CODE: u16 = 1001;

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            ping_interval: PING_INTERVAL,
            timeout: KEEPALIVE_TIMEOUT,
        }
    }
}

/// The close code sent to every connection when the server shuts down.
pub const SHUTDOWN_CLOSE_CODE: u16 = 1001;
/// The close code sent to a connection that exceeded its message rate (policy violation).
pub const RATE_LIMIT_CLOSE_CODE: u16 = 1008;
/// How long a shutting-down connection may take to write its last frames.
const SHUTDOWN_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long writing the close frame may take.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long, after the server's close, the client has to answer it before the connection is
/// dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// How long a closed connection waits for its session to leave the room and close its
/// PeerConnection.
const SESSION_END_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of the HTTP layer that are not part of the SFU's configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpOptions {
    pub keepalive: Keepalive,
}

/// Rate limits on what clients send (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Messages per WebSocket connection; over it: `rate_limited`, then close 1008.
    pub messages: Option<Rate>,
    /// `join` messages per client IP; over it: `rate_limited` for that join.
    pub joins_per_ip: Option<Rate>,
}

/// The live WebSocket connections, so a shutdown can wait until they have all closed.
#[derive(Debug, Default)]
pub struct Connections {
    live: AtomicUsize,
    none_left: Notify,
}

impl Connections {
    pub fn count(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    fn enter(self: &Arc<Self>) -> ConnectionGuard {
        self.live.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard(Arc::clone(self))
    }

    /// Returns once no connection is open.
    pub async fn wait_closed(&self) {
        loop {
            let notified = self.none_left.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct ConnectionGuard(Arc<Connections>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

/// What the server around the router controls: limits, the shutdown signal (`true`: shut
/// down) and the count of live connections.
#[derive(Clone)]
pub struct Control {
    pub limits: Limits,
    pub shutdown: watch::Receiver<bool>,
    pub connections: Arc<Connections>,
    /// The admin API's bearer key; `None`: the admin API is disabled (see `crate::admin`).
    pub admin_key: Option<crate::admin::AdminKey>,
}

impl Default for Control {
    /// No limits, and never shut down.
    fn default() -> Self {
        let (stop, shutdown) = watch::channel(false);
        // A receiver whose sender is gone never sees `true` (see `shutdown_requested`).
        drop(stop);
        Control {
            limits: Limits::default(),
            shutdown,
            connections: Arc::default(),
            admin_key: None,
        }
    }
}

#[derive(Clone)]
struct AppState {
    sessions: Arc<Sessions>,
    sfu: Arc<Sfu>,
    options: HttpOptions,
    control: Control,
    join_limiter: Option<Arc<dyn JoinGate>>,
}

pub fn router(sessions: Arc<Sessions>) -> Router {
    router_with(sessions, HttpOptions::default())
}

pub fn router_with(sessions: Arc<Sessions>, options: HttpOptions) -> Router {
    router_with_control(sessions, options, Control::default())
}

/// The routes, with rate limits and a shutdown signal. The per-IP join limit needs the
/// client's address: serve with `into_make_service_with_connect_info::<SocketAddr>()`
/// (without it, joins are not limited per IP).
pub fn router_with_control(
    sessions: Arc<Sessions>,
    options: HttpOptions,
    control: Control,
) -> Router {
    let sfu = Arc::clone(&sessions.sfu);
    let join_limiter = control.limits.joins_per_ip.map(|rate| {
        Arc::new(JoinsPerIp(PerIpLimiter::new(
            rate,
            std::time::Instant::now(),
        ))) as Arc<dyn JoinGate>
    });
    Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/stats", get(stats))
        .route("/metrics", get(metrics))
        .merge(crate::admin::routes(
            Arc::clone(&sfu),
            control.admin_key.clone(),
        ))
        .fallback(static_file)
        .with_state(AppState {
            sessions,
            sfu,
            options,
            control,
            join_limiter,
        })
}

async fn stats(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.sfu.stats())
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&state.sfu),
    )
}

/// Serves the embedded web client. Every response carries a strong ETag (the file's
/// SHA-256) and `Cache-Control: no-cache`, so browsers revalidate each load (a 304 costs
/// one round trip) and never run a stale module after an upgrade. `Referrer-Policy`
/// keeps a deep link's `token=` out of other sites' logs.
async fn static_file(uri: Uri, headers: HeaderMap) -> Response {
    let path = match uri.path().trim_start_matches('/') {
        "" => "index.html",
        p => p,
    };
    let Some(file) = WebAssets::get(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let common = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, "no-cache".to_owned()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::REFERRER_POLICY, "no-referrer".to_owned()),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    (
        common,
        [(header::CONTENT_TYPE, mime.as_ref().to_owned())],
        file.data,
    )
        .into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn ws_upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    // Counted from the upgrade on, so a shutdown waits for connections being set up too.
    let guard = state.control.connections.enter();
    let conn = Connection {
        client: Client {
            ip: peer.map(|Extension(ConnectInfo(addr))| addr.ip()),
            join_gate: state.join_limiter,
        },
        messages: state.control.limits.messages,
        shutdown: state.control.shutdown,
        _guard: guard,
    };
    let (sessions, keepalive) = (state.sessions, state.options.keepalive);
    // Frames up to 16× the limit still reach the session, so the sender gets a clear
    // `frame_too_large` and is closed as abusive (no resume); larger ones are refused by
    // the WebSocket layer itself, which ends the connection like a drop.
    ws.max_frame_size(MAX_FRAME_BYTES * 16)
        .max_message_size(MAX_FRAME_BYTES * 16)
        .on_upgrade(move |socket| serve_socket(socket, sessions, keepalive, conn))
}

/// One connection's share of the server's limits and shutdown signal.
struct Connection {
    client: Client,
    messages: Option<Rate>,
    shutdown: watch::Receiver<bool>,
    _guard: ConnectionGuard,
}

/// Resolves once `true` is sent; never if the sender is gone without sending it.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The per-IP join rate, as the session's join policy asks it.
struct JoinsPerIp(PerIpLimiter);

impl JoinGate for JoinsPerIp {
    fn admit(&self, ip: IpAddr, now: std::time::Instant) -> Result<(), String> {
        if self.0.allow(ip, now) {
            return Ok(());
        }
        let rate = self.0.rate();
        tracing::debug!(%ip, "join refused: too many joins from this address");
        Err(format!(
            "too many joins from your address: at most {} per second (bursts of {})",
            rate.per_second, rate.burst
        ))
    }
}

/// A server message as a frame, counting the errors among them for `/metrics`.
fn frame(sfu: &Sfu, msg: &ServerMessage) -> Message {
    if let ServerMessage::Error { code, .. } = msg {
        sfu.metrics.count_signaling_error(*code);
    }
    Message::Text(msg.to_json().into())
}

/// How the socket's pump ended.
enum End {
    Session(SessionEnd),
    /// Nothing arrived within the keepalive timeout, or a write could not finish in it.
    Silent,
    /// The server is shutting down.
    Shutdown,
}

/// Pumps one WebSocket: frames in to the session, the session's messages out, keepalive
/// pings, and the close code the session's end calls for.
async fn serve_socket(
    socket: WebSocket,
    sessions: Arc<Sessions>,
    keepalive: Keepalive,
    conn: Connection,
) {
    let Connection {
        client,
        messages,
        mut shutdown,
        _guard,
    } = conn;
    let sfu = Arc::clone(&sessions.sfu);
    let ip = client.ip;
    let (mut sink, stream) = socket.split();
    let (outbox, mut outgoing) = Outbox::new();
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(64);
    let session = tokio::spawn(run_session(sessions, client, in_rx, outbox.clone()));
    // When anything last arrived, in milliseconds since `opened`.
    let opened = Instant::now();
    let last_heard = Arc::new(AtomicU64::new(0));
    // Set when the client went over its message rate: the close is then a policy violation.
    let flooded = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_frames(Reader {
        stream,
        in_tx,
        outbox: outbox.clone(),
        ip,
        messages,
        shutdown: shutdown.clone(),
        opened,
        heard: Arc::clone(&last_heard),
        flooded: Arc::clone(&flooded),
    }));
    let silent_since = |now: Instant| {
        let heard = opened + Duration::from_millis(last_heard.load(Ordering::Relaxed));
        now.saturating_duration_since(heard)
    };
    let mut ping =
        tokio::time::interval_at(opened + keepalive.ping_interval, keepalive.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut session = session;
    let mut session_done = false;
    let end = loop {
        let deadline = Instant::now()
            + keepalive
                .timeout
                .saturating_sub(silent_since(Instant::now()));
        // A write that cannot finish within the timeout means the client is gone too.
        let sent = tokio::select! {
            msg = outgoing.recv() => match msg {
                Some(msg) => tokio::time::timeout(keepalive.timeout, sink.send(frame(&sfu, &msg))).await,
                None => break End::Session(SessionEnd::Normal),
            },
            end = &mut session => {
                session_done = true;
                break End::Session(end.unwrap_or(SessionEnd::Normal));
            }
            _ = shutdown_requested(&mut shutdown) => break End::Shutdown,
            _ = ping.tick() => {
                tokio::time::timeout(keepalive.timeout, sink.send(Message::Ping(Default::default()))).await
            }
            _ = tokio::time::sleep_until(deadline) => {
                if silent_since(Instant::now()) >= keepalive.timeout {
                    break End::Silent;
                }
                continue;
            }
        };
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) => outbox.kick.cancel(),
            Err(_) => break End::Silent,
        }
    };
    // The reader stops the session as soon as a shutdown begins, which may end it first.
    let end = match end {
        End::Session(_) if *shutdown.borrow() => End::Shutdown,
        end => end,
    };
    let (code, reason) = match end {
        End::Silent => {
            tracing::info!(
                silent_ms = silent_since(Instant::now()).as_millis() as u64,
                "no frame from the client within the keepalive timeout; closing"
            );
            // Ends the session as a drop: it sees its input close and leaves the room.
            reader.abort();
            (KEEPALIVE_CLOSE_CODE, "keepalive timeout")
        }
        End::Shutdown => {
            let msg =
                ServerMessage::error(ErrorCode::ServerShutdown, "the server is shutting down");
            let _ =
                tokio::time::timeout(SHUTDOWN_WRITE_TIMEOUT, sink.send(frame(&sfu, &msg))).await;
            (SHUTDOWN_CLOSE_CODE, "server shutting down")
        }
        End::Session(end) => {
            // Flush what the session said last (e.g. the error before an abuse close).
            while let Ok(msg) = outgoing.try_recv() {
                let sent =
                    tokio::time::timeout(keepalive.timeout, sink.send(frame(&sfu, &msg))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
            match end {
                _ if flooded.load(Ordering::SeqCst) => (RATE_LIMIT_CLOSE_CODE, "rate limited"),
                SessionEnd::Normal => (1000, "bye"),
                SessionEnd::Abuse => (1008, "policy violation"),
                SessionEnd::MediaFailed => (1011, "media connection failed"),
            }
        }
    };
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, sink.send(close)).await;
    // Read on until the client answers the close: dropping the connection with its frames
    // unread would reset it, and the client could lose the error and the close.
    let mut reader = reader;
    if tokio::time::timeout(CLOSE_LINGER, &mut reader)
        .await
        .is_err()
    {
        reader.abort();
    }
    if !session_done
        && tokio::time::timeout(SESSION_END_TIMEOUT, session)
            .await
            .is_err()
    {
        tracing::warn!("the session did not end in time after its connection closed");
    }
}

/// The reading half of one connection.
struct Reader {
    stream: futures_util::stream::SplitStream<WebSocket>,
    in_tx: mpsc::Sender<Inbound>,
    outbox: Outbox,
    ip: Option<IpAddr>,
    messages: Option<Rate>,
    shutdown: watch::Receiver<bool>,
    opened: Instant,
    heard: Arc<AtomicU64>,
    flooded: Arc<AtomicBool>,
}

/// Reads frames and hands them to the session, applying the limits. After a flood, an
/// oversized frame or the start of a shutdown it stops the session (by dropping its input)
/// but keeps reading, discarding, until the client closes.
async fn read_frames(r: Reader) {
    let Reader {
        mut stream,
        in_tx,
        outbox,
        ip,
        messages,
        mut shutdown,
        opened,
        heard,
        flooded,
    } = r;
    let mut in_tx = Some(in_tx);
    let mut bucket = messages.map(|rate| TokenBucket::new(rate, std::time::Instant::now()));
    loop {
        let msg = tokio::select! {
            msg = stream.next() => msg,
            _ = shutdown_requested(&mut shutdown), if in_tx.is_some() => {
                in_tx = None;
                continue;
            }
        };
        let Some(Ok(msg)) = msg else { break };
        heard.store(opened.elapsed().as_millis() as u64, Ordering::Relaxed);
        if matches!(msg, Message::Close(_)) {
            break;
        }
        let Some(tx) = in_tx.as_ref() else {
            continue;
        };
        let is_data = matches!(msg, Message::Text(_) | Message::Binary(_));
        if let (true, Some(bucket), Some(rate)) = (is_data, bucket.as_mut(), messages) {
            if !bucket.try_take(std::time::Instant::now()) {
                tracing::info!(?ip, "client went over its message rate; disconnecting it");
                flooded.store(true, Ordering::SeqCst);
                outbox.send(ServerMessage::error(
                    ErrorCode::RateLimited,
                    format!(
                        "too many messages: at most {} per second (bursts of {}); disconnecting",
                        rate.per_second, rate.burst
                    ),
                ));
                outbox.kick.cancel();
                in_tx = None;
                continue;
            }
        }
        let inbound = match msg {
            Message::Text(text) if text.len() > MAX_FRAME_BYTES => Inbound::TooLarge,
            Message::Text(text) => Inbound::Text(text.to_string()),
            Message::Binary(_) => Inbound::Text(String::from("binary frame")),
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
        };
        let too_large = matches!(inbound, Inbound::TooLarge);
        if tx.send(inbound).await.is_err() || too_large {
            in_tx = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Instant;

    #[test]
    fn joins_beyond_the_rate_are_refused_until_the_bucket_refills() {
        let t0 = Instant::now();
        let gate = JoinsPerIp(PerIpLimiter::new(Rate::new(1, 3).expect("a rate"), t0));
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for i in 0..3 {
            assert_eq!(gate.admit(ip, t0), Ok(()), "join {i} of the burst");
        }
        let refused = gate.admit(ip, t0).expect_err("over the burst");
        assert!(refused.contains("1 per second"), "{refused}");
        assert!(gate.admit(ip, t0 + Duration::from_millis(999)).is_err());
        assert_eq!(
            gate.admit(ip, t0 + Duration::from_secs(1)),
            Ok(()),
            "a second later"
        );
        assert!(
            gate.admit(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), t0)
                .is_ok(),
            "another address"
        );
    }
}
