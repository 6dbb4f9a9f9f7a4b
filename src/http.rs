//! HTTP routes: the embedded web client, the signaling WebSocket, health, stats and
//! Prometheus metrics.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use roomcast_protocol::{ServerMessage, MAX_FRAME_BYTES};
use roomcast_sfu::signaling::outbox::Outbox;
use roomcast_sfu::signaling::session::SessionEnd;
use roomcast_sfu::{run_session, Inbound, Sfu};
use tokio::sync::mpsc;
use tokio::time::Instant;

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

/// Settings of the HTTP layer that are not part of the SFU's configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpOptions {
    pub keepalive: Keepalive,
}

#[derive(Clone)]
struct AppState {
    sfu: Arc<Sfu>,
    options: HttpOptions,
}

pub fn router(sfu: Arc<Sfu>) -> Router {
    router_with(sfu, HttpOptions::default())
}

pub fn router_with(sfu: Arc<Sfu>, options: HttpOptions) -> Router {
    Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/stats", get(stats))
        .route("/metrics", get(metrics))
        .fallback(static_file)
        .with_state(AppState { sfu, options })
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

async fn static_file(uri: Uri) -> Response {
    let path = match uri.path().trim_start_matches('/') {
        "" => "index.html",
        p => p,
    };
    match WebAssets::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            (
                [(header::CONTENT_TYPE, mime.as_ref().to_owned())],
                file.data,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn ws_upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    // Frames a little over the limit still reach us so the sender gets a clear error
    // before the close; far larger ones are refused by the WebSocket layer itself.
    ws.max_frame_size(MAX_FRAME_BYTES * 4)
        .max_message_size(MAX_FRAME_BYTES * 4)
        .on_upgrade(move |socket| serve_socket(socket, state.sfu, state.options.keepalive))
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
}

/// Pumps one WebSocket: frames in to the session, the session's messages out, keepalive
/// pings, and the close code the session's end calls for.
async fn serve_socket(socket: WebSocket, sfu: Arc<Sfu>, keepalive: Keepalive) {
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut outgoing) = Outbox::new();
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(64);
    let session = tokio::spawn(run_session(Arc::clone(&sfu), in_rx, outbox.clone()));
    // When anything last arrived, in milliseconds since `opened`.
    let opened = Instant::now();
    let last_heard = Arc::new(AtomicU64::new(0));
    let heard = Arc::clone(&last_heard);
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            heard.store(opened.elapsed().as_millis() as u64, Ordering::Relaxed);
            let inbound = match msg {
                Message::Text(text) if text.len() > MAX_FRAME_BYTES => Inbound::TooLarge,
                Message::Text(text) => Inbound::Text(text.to_string()),
                Message::Binary(_) => Inbound::Text(String::from("binary frame")),
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            let too_large = matches!(inbound, Inbound::TooLarge);
            if in_tx.send(inbound).await.is_err() || too_large {
                break;
            }
        }
    });
    let silent_since = |now: Instant| {
        let heard = opened + Duration::from_millis(last_heard.load(Ordering::Relaxed));
        now.saturating_duration_since(heard)
    };
    let mut ping =
        tokio::time::interval_at(opened + keepalive.ping_interval, keepalive.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut session = session;
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
            end = &mut session => break End::Session(end.unwrap_or(SessionEnd::Normal)),
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
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
    reader.abort();
}
