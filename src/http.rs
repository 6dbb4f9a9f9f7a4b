//! HTTP routes: the embedded web client, the signaling WebSocket, health and stats.
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use roomcast_protocol::MAX_FRAME_BYTES;
use roomcast_sfu::signaling::outbox::Outbox;
use roomcast_sfu::signaling::session::SessionEnd;
use roomcast_sfu::{run_session, Inbound, Sfu};
use tokio::sync::mpsc;

#[derive(rust_embed::RustEmbed)]
#[folder = "web/"]
struct WebAssets;

pub fn router(sfu: Arc<Sfu>) -> Router {
    Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/stats", get(stats))
        .fallback(static_file)
        .with_state(sfu)
}

async fn stats(State(sfu): State<Arc<Sfu>>) -> impl IntoResponse {
    Json(sfu.stats())
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

async fn ws_upgrade(ws: WebSocketUpgrade, State(sfu): State<Arc<Sfu>>) -> Response {
    // Frames a little over the limit still reach us so the sender gets a clear error
    // before the close; far larger ones are refused by the WebSocket layer itself.
    ws.max_frame_size(MAX_FRAME_BYTES * 4)
        .max_message_size(MAX_FRAME_BYTES * 4)
        .on_upgrade(move |socket| serve_socket(socket, sfu))
}

/// Pumps one WebSocket: frames in to the session, the session's messages out, and the
/// close code the session's end calls for.
async fn serve_socket(socket: WebSocket, sfu: Arc<Sfu>) {
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut outgoing) = Outbox::new();
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(64);
    let session = tokio::spawn(run_session(sfu, in_rx, outbox.clone()));
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
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
    let mut session = session;
    let end = loop {
        tokio::select! {
            msg = outgoing.recv() => match msg {
                Some(msg) => {
                    if sink.send(Message::Text(msg.to_json().into())).await.is_err() {
                        outbox.kick.cancel();
                    }
                }
                None => break SessionEnd::Normal,
            },
            end = &mut session => break end.unwrap_or(SessionEnd::Normal),
        }
    };
    // Flush what the session said last (e.g. the error before an abuse close).
    while let Ok(msg) = outgoing.try_recv() {
        if sink
            .send(Message::Text(msg.to_json().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let (code, reason) = match end {
        SessionEnd::Normal => (1000, "bye"),
        SessionEnd::Abuse => (1008, "policy violation"),
        SessionEnd::MediaFailed => (1011, "media connection failed"),
    };
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    reader.abort();
}
