//! A client whose room lives on another node: its WebSocket frames go to the owner's `/ws`
//! over the owner's internal URL and back, unchanged, with the close codes either side
//! sends. The owner runs the session as for any client (it sees the client's address in
//! [`super::CLIENT_IP_HEADER`]); the client's media goes straight to the owner, whose ICE
//! candidates it gets. This node keeps only the client's keepalive.
use std::net::IpAddr;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use roomcast_cluster::NodeInfo;
use roomcast_protocol::{ErrorCode, ServerMessage};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame as UpCloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as UpMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::http::{shutdown_requested, Connection, Keepalive};

/// How long connecting to the owner may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a close may take to write, and the other side to answer it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The close code the client gets when the owner's connection broke without a close (the
/// owner died): 1012, "service restart", so it reconnects.
pub const OWNER_LOST_CLOSE_CODE: u16 = 1012;
/// The largest frame taken from the owner (its messages are the server's own).
const MAX_UPSTREAM_MESSAGE: usize = 4 << 20;

pub type Upstream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// `http://host:port` → `ws://host:port/ws`.
pub(crate) fn ws_url(internal_url: &str) -> String {
    let base = internal_url.trim_end_matches('/');
    let base = match base.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => format!("ws://{base}"),
    };
    format!("{base}/ws")
}

/// Opens the owner's `/ws` on behalf of the client at `client_ip`.
pub async fn connect(owner: &NodeInfo, client_ip: Option<IpAddr>) -> anyhow::Result<Upstream> {
    let mut request = ws_url(&owner.internal_url).into_client_request()?;
    if let Some(ip) = client_ip {
        request
            .headers_mut()
            .insert(super::CLIENT_IP_HEADER, ip.to_string().parse()?);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_UPSTREAM_MESSAGE))
        .max_frame_size(Some(MAX_UPSTREAM_MESSAGE));
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let (upstream, _) = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await??;
    Ok(upstream)
}

/// How a relayed connection ended.
enum End {
    /// The client closed or went away: the owner gets the client's close (or 1001).
    Client(Option<CloseFrame>),
    /// The owner closed: the client gets the same close.
    Owner(Option<UpCloseFrame>),
    /// The owner's connection broke without a close.
    OwnerLost,
    /// Nothing arrived from the client within the keepalive timeout.
    Silent,
    /// This node is stopping.
    Shutdown,
}

/// Relays `client` ↔ `upstream` until either side closes; `first` is the client's first
/// message, already read.
pub(crate) async fn pump(
    client: WebSocket,
    mut upstream: Upstream,
    first: String,
    keepalive: Keepalive,
    conn: Connection,
) {
    let Connection {
        mut shutdown,
        cluster,
        _guard,
        ..
    } = conn;
    let (mut client_tx, mut client_rx) = client.split();
    if upstream.send(UpMessage::text(first)).await.is_err() {
        let _ = client_tx
            .send(close_frame(
                OWNER_LOST_CLOSE_CODE,
                "room's node unreachable",
            ))
            .await;
        return;
    }
    let mut heard = Instant::now();
    let mut ping = tokio::time::interval_at(
        Instant::now() + keepalive.ping_interval,
        keepalive.ping_interval,
    );
    let end = loop {
        let silent_at = heard + keepalive.timeout;
        tokio::select! {
            msg = client_rx.next() => {
                heard = Instant::now();
                let forward = match msg {
                    Some(Ok(Message::Text(text))) => UpMessage::text(text.as_str()),
                    Some(Ok(Message::Binary(data))) => UpMessage::binary(data),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(frame))) => break End::Client(frame),
                    Some(Err(_)) | None => break End::Client(None),
                };
                if upstream.send(forward).await.is_err() {
                    break End::OwnerLost;
                }
            }
            msg = upstream.next() => {
                let forward = match msg {
                    Some(Ok(UpMessage::Text(text))) => Message::Text(Utf8Bytes::from(text.as_str())),
                    Some(Ok(UpMessage::Binary(data))) => Message::Binary(data),
                    Some(Ok(UpMessage::Close(frame))) => break End::Owner(frame),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break End::OwnerLost,
                };
                let sent = tokio::time::timeout(keepalive.timeout, client_tx.send(forward)).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break End::Client(None);
                }
            }
            _ = ping.tick() => {
                let sent = tokio::time::timeout(keepalive.timeout, client_tx.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break End::Client(None);
                }
            }
            _ = tokio::time::sleep_until(silent_at) => {
                if heard + keepalive.timeout <= Instant::now() {
                    break End::Silent;
                }
            }
            _ = shutdown_requested(&mut shutdown) => break End::Shutdown,
        }
    };
    let up_close = |code: u16, reason: &str| {
        UpMessage::Close(Some(UpCloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        }))
    };
    match end {
        End::Client(frame) => {
            let frame = frame.map_or_else(
                || up_close(1001, "client gone"),
                |f| up_close(f.code, f.reason.as_str()),
            );
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, upstream.send(frame)).await;
            linger_upstream(&mut upstream).await;
        }
        End::Owner(frame) => {
            let frame = frame.map_or_else(
                || close_frame(1000, ""),
                |f| close_frame(u16::from(f.code), f.reason.as_str()),
            );
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client_tx.send(frame)).await;
            linger_client(&mut client_rx).await;
        }
        End::OwnerLost => {
            tracing::info!("the room's node went away; closing the relayed client");
            let close = close_frame(OWNER_LOST_CLOSE_CODE, "room's node went away");
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client_tx.send(close)).await;
            linger_client(&mut client_rx).await;
        }
        End::Silent => {
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT,
                upstream.send(up_close(1001, "keepalive timeout")),
            )
            .await;
            let close = close_frame(crate::http::KEEPALIVE_CLOSE_CODE, "keepalive timeout");
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client_tx.send(close)).await;
        }
        End::Shutdown => {
            let evacuating = cluster.as_ref().filter(|c| c.is_evacuating());
            let msg = if let Some(node) = evacuating {
                // The client joins afresh elsewhere: its session on the owner ends now,
                // rather than wait parked for a resume that will not come.
                let leave = UpMessage::text(r#"{"type":"leave"}"#);
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, upstream.send(leave)).await;
                node.reconnect_message()
            } else {
                ServerMessage::error(ErrorCode::ServerShutdown, "the server is shutting down")
            };
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT,
                client_tx.send(Message::Text(msg.to_json().into())),
            )
            .await;
            let close = close_frame(crate::http::SHUTDOWN_CLOSE_CODE, "server shutting down");
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client_tx.send(close)).await;
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT,
                upstream.send(up_close(1001, "relay stopping")),
            )
            .await;
            linger_client(&mut client_rx).await;
        }
    }
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
}

/// Reads until the owner answers our close (bounded), so the close is not lost in a reset.
async fn linger_upstream(upstream: &mut Upstream) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(_)) = upstream.next().await {}
    })
    .await;
}

/// Reads until the client answers our close (bounded).
async fn linger_client(client: &mut futures_util::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(msg)) = client.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_urls_become_websocket_urls() {
        assert_eq!(ws_url("http://10.0.0.5:8080"), "ws://10.0.0.5:8080/ws");
        assert_eq!(ws_url("https://n1.internal/"), "wss://n1.internal/ws");
    }
}
