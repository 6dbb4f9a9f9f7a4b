//! HTTP routes: the embedded web client, the signaling WebSocket, health, stats and
//! Prometheus metrics.
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use futures_util::{SinkExt, StreamExt};
use roomcast_protocol::{ErrorCode, ServerMessage, MAX_FRAME_BYTES};
use roomcast_sfu::signaling::outbox::{
    Frame, Outbox, OutboxReceiver, LAGGING_CLOSE_CODE, MAX_QUEUED_BYTES,
};
use roomcast_sfu::signaling::session::SessionEnd;
use roomcast_sfu::{run_session, Client, Inbound, JoinGate, Sessions, Sfu};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use crate::admission::origin::AllowedOrigins;
use crate::admission::proxy::TrustedProxies;
use crate::admission::{Full, Refusal, RefusalCounts, Slot, Slots};
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
/// The close code sent to a connection on which no `join` (or `resume`) succeeded within
/// the join timeout (as HTTP's 408 Request Timeout).
pub const JOIN_TIMEOUT_CLOSE_CODE: u16 = 4408;
/// The join timeout unless configured otherwise.
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// What tungstenite reads from the socket at a time. Its default, 128 KiB, was most of the
/// memory an idle WebSocket held; signaling frames are small, and a larger frame still
/// arrives whole (the buffer grows for it).
const WS_READ_BUFFER: usize = 4 * 1024;
/// The most the WebSocket layer holds unsent for one connection: a message as large as
/// the outbox may queue, plus room. Pongs to a client that pings and does not read wait
/// there; past this they are not queued (the latest one is kept), so a ping flood (cut off
/// by the message rate, but read until the close) cannot grow it.
const WS_MAX_WRITE_BUFFER: usize = MAX_QUEUED_BYTES + 128 * 1024;
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

/// Limits on what clients send (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Messages per WebSocket connection; over it: `rate_limited`, then close 1008.
    pub messages: Option<Rate>,
    /// `join` messages per client IP; over it: `rate_limited` for that join.
    pub joins_per_ip: Option<Rate>,
    /// How long a WebSocket may stay open without a successful `join` or `resume`; then it
    /// is closed with [`JOIN_TIMEOUT_CLOSE_CODE`].
    pub join_timeout: Option<Duration>,
}

/// The live WebSocket connections, capped per client address and in total, so a shutdown
/// can wait until they have all closed.
#[derive(Debug)]
pub struct Connections {
    slots: Arc<Slots>,
    none_left: Notify,
}

impl Default for Connections {
    /// No caps.
    fn default() -> Self {
        Connections::new(0, 0)
    }
}

impl Connections {
    /// At most `max_per_ip` from one client address and `max_total` in all (0: no cap).
    pub fn new(max_per_ip: usize, max_total: usize) -> Connections {
        Connections {
            slots: Arc::new(Slots::new(max_per_ip, max_total)),
            none_left: Notify::new(),
        }
    }

    pub fn count(&self) -> usize {
        self.slots.open()
    }

    fn enter(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<ConnectionGuard, Full> {
        let slot = self.slots.try_take(ip)?;
        Ok(ConnectionGuard {
            slot: Some(slot),
            connections: Arc::clone(self),
        })
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

pub(crate) struct ConnectionGuard {
    slot: Option<Slot>,
    connections: Arc<Connections>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        drop(self.slot.take());
        if self.connections.count() == 0 {
            self.connections.none_left.notify_waiters();
        }
    }
}

/// Who may open `/ws`, and the count of everything refused.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted: TrustedProxies,
    pub origins: AllowedOrigins,
    pub refused: Arc<RefusalCounts>,
    /// HTTP connections open now (not yet upgraded), for `/metrics`; `None` when the
    /// router is served by something else.
    pub http_connections: Option<Arc<Slots>>,
}

/// What the server around the router controls: limits, the shutdown signal (`true`: shut
/// down) and the count of live connections.
#[derive(Clone)]
pub struct Control {
    pub limits: Limits,
    pub shutdown: watch::Receiver<bool>,
    pub connections: Arc<Connections>,
    /// The admin API's bearer key; `None`: the admin API is disabled (see `crate::admin`).
    /// With a key, `/api/stats` needs it too.
    pub admin_key: Option<crate::admin::AdminKey>,
    pub admission: Admission,
    /// This server's cluster membership (`--redis-url`); `None` alone.
    pub cluster: Option<Arc<crate::cluster::ClusterNode>>,
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
            admission: Admission::default(),
            cluster: None,
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

/// The admin API; on a cluster node, `/api/rooms...` answers for the whole cluster.
fn admin_routes(sfu: &Arc<Sfu>, control: &Control) -> Router<AppState> {
    let routes = crate::admin::routes(Arc::clone(sfu), control.admin_key.clone());
    match &control.cluster {
        Some(node) => routes.layer(axum::middleware::from_fn_with_state(
            Arc::clone(node),
            crate::cluster::rooms::cluster_wide,
        )),
        None => routes,
    }
}

/// WHIP and WHEP; on a cluster node, a room held elsewhere is passed to its node.
fn whip_routes(
    sessions: &Arc<Sessions>,
    join_limiter: Option<Arc<dyn JoinGate>>,
    control: &Control,
) -> Router<AppState> {
    let routes = crate::whip::routes(
        Arc::clone(sessions),
        join_limiter,
        control.admission.trusted.clone(),
    );
    match &control.cluster {
        Some(node) => routes.layer(axum::middleware::from_fn_with_state(
            Arc::clone(node),
            crate::cluster::whip_route::route,
        )),
        None => routes,
    }
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
    let cluster_api = control
        .cluster
        .as_ref()
        .map(|node| crate::cluster::api::routes(Arc::clone(node), control.admin_key.clone()));
    Router::new()
        .merge(cluster_api.unwrap_or_default())
        .route("/ws", get(ws_upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/stats", get(stats))
        .route("/metrics", get(metrics))
        .merge(admin_routes(&sfu, &control))
        .merge(whip_routes(&sessions, join_limiter.clone(), &control))
        .fallback(static_file)
        .with_state(AppState {
            sessions,
            sfu,
            options,
            control,
            join_limiter,
        })
}

/// Whether a load balancer should send new clients here: 200 while serving, 503 once the
/// server is shutting down or (on a cluster node) draining. `/healthz` stays 200 while the
/// process runs, so a liveness check does not kill a draining node.
async fn readyz(State(state): State<AppState>) -> Response {
    let draining = state
        .control
        .cluster
        .as_ref()
        .is_some_and(|node| node.cluster.state() == roomcast_cluster::NodeState::Draining);
    let not_ready = if *state.control.shutdown.borrow() {
        Some("shutting down\n")
    } else if draining {
        Some("draining\n")
    } else {
        None
    };
    match not_ready {
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
        None => "ready\n".into_response(),
    }
}

/// Every room's name and counters: with an admin key, only for requests that carry it.
async fn stats(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(key) = &state.control.admin_key {
        if let Err(refused) = crate::admin::check_bearer(&headers, key) {
            return refused.into_response();
        }
    }
    Json(state.sfu.stats()).into_response()
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let admission = crate::metrics::AdmissionGauges {
        refused: &state.control.admission.refused,
        http_connections: state
            .control
            .admission
            .http_connections
            .as_ref()
            .map(|slots| slots.open()),
        websockets: state.control.connections.count(),
    };
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&state.sfu, &admission),
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
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let admission = &state.control.admission;
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let mut ip = peer.map(|peer| admission.trusted.client_ip(peer, &headers));
    let cluster = state.control.cluster.clone();
    let mut cascade_relay = false;
    if let (Some(node), Some(peer)) = (&cluster, peer) {
        ip = node.relayed_client_ip(peer, &headers).or(ip);
        cascade_relay = node.is_cascade_relay(peer, &uri);
    }
    if !origin_allowed(&headers, peer, admission) {
        admission.refused.count(Refusal::Origin);
        return (
            StatusCode::FORBIDDEN,
            "this page's origin may not connect to this server (see --allowed-origins)\n",
        )
            .into_response();
    }
    // Counted from the upgrade on, so a shutdown waits for connections being set up too.
    let guard = match state.control.connections.enter(ip) {
        Ok(guard) => guard,
        Err(full) => return refuse_websocket(full, &admission.refused),
    };
    let conn = Connection {
        client: Client {
            ip,
            join_gate: state.join_limiter,
            mode: roomcast_sfu::Mode::Full,
            hidden: cascade_relay,
        },
        limits: state.control.limits,
        shutdown: state.control.shutdown,
        refused: Arc::clone(&admission.refused),
        cluster: cluster.clone(),
        _guard: guard,
    };
    let (sessions, keepalive) = (state.sessions, state.options.keepalive);
    // Frames up to 16× the limit still reach the session, so the sender gets a clear
    // `frame_too_large`; larger ones are refused by the WebSocket layer before they are
    // read, and the reader answers them the same way. Either way the connection is closed
    // as abusive (1008, no resume).
    ws.max_frame_size(MAX_FRAME_BYTES * 16)
        .max_message_size(MAX_FRAME_BYTES * 16)
        .read_buffer_size(WS_READ_BUFFER)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            match cluster {
                Some(node) => {
                    crate::cluster::accept::serve(socket, sessions, keepalive, conn, node).await
                }
                None => serve_socket(socket, sessions, keepalive, conn, None).await,
            }
        })
}

/// Whether a browser request's `Origin` is allowed; requests without one are not from a
/// browser page and are.
fn origin_allowed(headers: &HeaderMap, peer: Option<IpAddr>, admission: &Admission) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let from_proxy = peer.is_some_and(|peer| admission.trusted.contains(peer));
    let forwarded_host = from_proxy
        .then(|| headers.get("x-forwarded-host"))
        .flatten();
    let hosts: Vec<&str> = [headers.get(header::HOST), forwarded_host]
        .into_iter()
        .flatten()
        .filter_map(|v| v.to_str().ok())
        .collect();
    admission.origins.allows(origin, &hosts)
}

/// The answer to a WebSocket over the caps: 429 when the client's address holds its
/// share, 503 when the server is full.
fn refuse_websocket(full: Full, refused: &RefusalCounts) -> Response {
    let (refusal, status, text) = match full {
        Full::PerIp => (
            Refusal::WebsocketsPerIp,
            StatusCode::TOO_MANY_REQUESTS,
            "too many WebSocket connections from your address\n",
        ),
        Full::Total => (
            Refusal::Websockets,
            StatusCode::SERVICE_UNAVAILABLE,
            "the server holds its maximum of WebSocket connections; try again later\n",
        ),
    };
    refused.count(refusal);
    (status, [(header::RETRY_AFTER, "5")], text).into_response()
}

/// One connection's share of the server's limits and shutdown signal.
pub(crate) struct Connection {
    pub(crate) client: Client,
    pub(crate) limits: Limits,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) refused: Arc<RefusalCounts>,
    /// Set on a cluster node: a shutdown after a drain's deadline says `reconnect`.
    pub(crate) cluster: Option<Arc<crate::cluster::ClusterNode>>,
    pub(crate) _guard: ConnectionGuard,
}

/// Resolves once `true` is sent; never if the sender is gone without sending it.
pub(crate) async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
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
        // Per join, so only at debug (a flood would fill the log); `/metrics` counts every
        // `rate_limited`.
        tracing::debug!(%ip, "join refused: too many joins from this address");
        Err(format!(
            "too many joins from your address: at most {} per second (bursts of {})",
            rate.per_second, rate.burst
        ))
    }
}

/// A queued frame as a WebSocket message, counting the errors among them for `/metrics`.
fn text(sfu: &Sfu, frame: &Frame) -> Message {
    if let Some(code) = frame.error_code() {
        sfu.metrics.count_signaling_error(code);
    }
    // Frames are serialized JSON, so always UTF-8.
    Message::Text(Utf8Bytes::try_from(frame.text().clone()).unwrap_or_default())
}

/// A message made here (not queued) as a WebSocket message.
fn frame(sfu: &Sfu, msg: &ServerMessage) -> Message {
    text(sfu, &Frame::from(msg))
}

/// How the socket's pump ended.
enum End {
    Session(SessionEnd),
    /// Nothing arrived within the keepalive timeout, or a write could not finish in it.
    Silent,
    /// The server is shutting down.
    Shutdown,
    /// No `join` or `resume` succeeded within the join timeout.
    NoJoin,
    /// The client fell too far behind reading (see [`Outbox::is_lagging`]).
    Lagging,
}

/// Resolves once the client has been cut off for falling behind.
async fn lagging(outbox: &Outbox) {
    outbox.kick.cancelled().await;
    if !outbox.is_lagging() {
        std::future::pending::<()>().await;
    }
}

/// Pumps one WebSocket: frames in to the session, the session's messages out, keepalive
/// pings, and the close code the session's end calls for. `first` is a message already
/// read from the socket (a cluster node reads it to route the connection).
pub(crate) async fn serve_socket(
    socket: WebSocket,
    sessions: Arc<Sessions>,
    keepalive: Keepalive,
    conn: Connection,
    first: Option<String>,
) {
    let Connection {
        client,
        limits,
        mut shutdown,
        refused,
        cluster,
        _guard,
    } = conn;
    let sfu = Arc::clone(&sessions.sfu);
    let ip = client.ip;
    let (mut sink, stream) = socket.split();
    let (outbox, mut outgoing) = Outbox::new();
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(64);
    if let Some(text) = first {
        let inbound = if text.len() > MAX_FRAME_BYTES {
            Inbound::TooLarge
        } else {
            Inbound::Text(text)
        };
        // The channel is empty: this cannot fail.
        let _ = in_tx.try_send(inbound);
    }
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
        messages: limits.messages,
        shutdown: shutdown.clone(),
        opened,
        heard: Arc::clone(&last_heard),
        flooded: Arc::clone(&flooded),
    }));
    let silent_since = |now: Instant| {
        let heard = opened + Duration::from_millis(last_heard.load(Ordering::Relaxed));
        now.saturating_duration_since(heard)
    };
    let join_deadline = limits.join_timeout.map(|t| opened + t);
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
                Some(msg) => tokio::select! {
                    sent = tokio::time::timeout(keepalive.timeout, sink.send(text(&sfu, &msg))) => sent,
                    _ = lagging(&outbox) => break End::Lagging,
                },
                None => break End::Session(SessionEnd::Normal),
            },
            _ = lagging(&outbox) => break End::Lagging,
            end = &mut session => {
                session_done = true;
                break End::Session(end.unwrap_or(SessionEnd::Normal));
            }
            _ = shutdown_requested(&mut shutdown) => break End::Shutdown,
            _ = ping.tick() => {
                tokio::time::timeout(keepalive.timeout, sink.send(Message::Ping(Default::default()))).await
            }
            _ = tokio::time::sleep_until(join_deadline.unwrap_or(opened)),
                if join_deadline.is_some() && !outbox.is_welcomed() => {
                if outbox.is_welcomed() {
                    continue;
                }
                break End::NoJoin;
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
        End::Session(_) if outbox.is_lagging() => End::Lagging,
        end => end,
    };
    let (code, reason) = match end {
        End::Silent => {
            refused.count(Refusal::KeepaliveTimeout);
            tracing::info!(
                silent_ms = silent_since(Instant::now()).as_millis() as u64,
                "no frame from the client within the keepalive timeout; closing"
            );
            // Ends the session as a drop: it sees its input close and leaves the room.
            reader.abort();
            (KEEPALIVE_CLOSE_CODE, "keepalive timeout")
        }
        End::Shutdown => {
            let msg = if let Some(node) = cluster.as_ref().filter(|c| c.is_evacuating()) {
                node.reconnect_message()
            } else {
                ServerMessage::error(ErrorCode::ServerShutdown, "the server is shutting down")
            };
            let _ =
                tokio::time::timeout(SHUTDOWN_WRITE_TIMEOUT, sink.send(frame(&sfu, &msg))).await;
            (SHUTDOWN_CLOSE_CODE, "server shutting down")
        }
        End::NoJoin => {
            refused.count(Refusal::JoinTimeout);
            // The session has nothing to leave: ending its input ends it.
            reader.abort();
            (JOIN_TIMEOUT_CLOSE_CODE, "join timeout")
        }
        End::Lagging => {
            // The client will not read what is queued, or did not act on it: free it now.
            // The session parks (the kick told it), waiting for the client to resume, which
            // brings it up to date (and sends an unanswered offer again).
            outgoing.discard();
            if outbox.is_offer_unanswered() {
                refused.count(Refusal::OfferUnanswered);
                (LAGGING_CLOSE_CODE, "offer not answered; resume")
            } else {
                refused.count(Refusal::Lagging);
                (LAGGING_CLOSE_CODE, "fell behind; resume")
            }
        }
        End::Session(end) => {
            // A flooder gets as long as the close to read why; it may still be flooding.
            let timeout = if flooded.load(Ordering::SeqCst) {
                CLOSE_WRITE_TIMEOUT
            } else {
                keepalive.timeout
            };
            flush(&mut sink, &mut outgoing, &sfu, timeout).await;
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
    // A client that fell behind is slow, not gone: it gets as long as any write to read
    // what is already on its way, then the close that tells it to resume.
    let close_timeout = if code == LAGGING_CLOSE_CODE {
        keepalive.timeout
    } else {
        CLOSE_WRITE_TIMEOUT
    };
    let _ = tokio::time::timeout(close_timeout, sink.send(close)).await;
    drop(outgoing);
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

/// Writes what the session said last (e.g. the error before an abuse close).
async fn flush(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    outgoing: &mut OutboxReceiver,
    sfu: &Sfu,
    timeout: Duration,
) {
    while let Some(msg) = outgoing.try_recv() {
        let sent = tokio::time::timeout(timeout, sink.send(text(sfu, &msg))).await;
        if !matches!(sent, Ok(Ok(()))) {
            break;
        }
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
        let msg = match msg {
            Some(Ok(msg)) => msg,
            Some(Err(e)) if is_too_large(&e) => {
                // The frame's header said more than the WebSocket layer takes; the stream
                // cannot be read past it. Answered like any frame too large; meanwhile
                // the connection stays up (unread) until the close has been written and
                // lingered, or dropping it would reset it before the client reads why.
                if let Some(tx) = in_tx.take() {
                    let _ = tx.send(Inbound::TooLarge).await;
                }
                return std::future::pending().await;
            }
            Some(Err(_)) | None => break,
        };
        heard.store(opened.elapsed().as_millis() as u64, Ordering::Relaxed);
        if matches!(msg, Message::Close(_)) {
            break;
        }
        let Some(tx) = in_tx.as_ref() else {
            continue;
        };
        // Every frame counts, pings and pongs too: each ping is answered with a pong that
        // waits in the write buffer for a client that does not read, so a ping flood would
        // grow it without bound. A real client pongs once per keepalive ping.
        if let (Some(bucket), Some(rate)) = (bucket.as_mut(), messages) {
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

/// Whether a read failed because the client's frame or message was over the size limit.
fn is_too_large(e: &axum::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
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
