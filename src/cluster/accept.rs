//! A new WebSocket on a cluster node: its first message says where it belongs (see
//! [`super::route`]); it is then served here as on a server alone, or relayed to the node
//! that holds its room.
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use roomcast_protocol::{ErrorCode, ServerMessage};
use roomcast_sfu::Sessions;
use tokio::time::Instant;

use super::route::Route;
use super::{cascade, relay, ClusterNode};
use crate::http::{serve_socket, Connection, Keepalive, DEFAULT_JOIN_TIMEOUT};

/// How long to wait before asking again where a room is, when its node did not answer
/// (it may have died: its rooms are placed afresh once its record expires).
const RETRY_OWNER: Duration = Duration::from_millis(500);
/// Refused `join`s one connection may send before it is closed (each may cost a store
/// round trip).
const MAX_REFUSED: usize = 10;

pub(crate) async fn serve(
    mut socket: WebSocket,
    sessions: Arc<Sessions>,
    keepalive: Keepalive,
    conn: Connection,
    node: Arc<ClusterNode>,
) {
    let deadline = Instant::now() + conn.limits.join_timeout.unwrap_or(DEFAULT_JOIN_TIMEOUT);
    let mut refused = 0;
    loop {
        let first = match tokio::time::timeout_at(deadline, first_text(&mut socket)).await {
            Ok(Some(text)) => text,
            Ok(None) => return,
            Err(_) => {
                return close(socket, crate::http::JOIN_TIMEOUT_CLOSE_CODE, "join timeout").await
            }
        };
        loop {
            let route = match node.route(&first, |t| sessions.resume.contains(t)).await {
                Route::Edge {
                    owner,
                    room,
                    webinar_only,
                } => match node.cascade.mirror(&owner, &room).await {
                    Ok(mirror) if !webinar_only || mirror.settings.webinar => {
                        // Served from this node's mirror, as the audience it is.
                        let first = cascade::as_audience(&first);
                        return serve_socket(socket, sessions, keepalive, conn, Some(first)).await;
                    }
                    Ok(_) => Route::Relay {
                        owner,
                        resume: false,
                    },
                    Err(e) => {
                        tracing::warn!(owner = %owner.id, error = %e, "cascade: cannot mirror the room; relaying instead");
                        Route::Relay {
                            owner,
                            resume: false,
                        }
                    }
                },
                other => other,
            };
            match route {
                Route::Here => {
                    return serve_socket(socket, sessions, keepalive, conn, Some(first)).await
                }
                Route::Relay { owner, resume } => {
                    match relay::connect(&owner, conn.client.ip).await {
                        Ok(upstream) => {
                            return relay::pump(socket, upstream, first, keepalive, conn).await
                        }
                        Err(e) => {
                            tracing::info!(owner = %owner.id, error = %e, "the room's node did not answer");
                            if resume {
                                // Its session died with its node.
                                if send_expired(&mut socket).await.is_err() {
                                    return;
                                }
                                break;
                            }
                            if Instant::now() + RETRY_OWNER >= deadline {
                                let msg = ServerMessage::error(
                                    ErrorCode::ClusterUnavailable,
                                    "the room's node does not answer; try again shortly",
                                );
                                let _ = socket.send(Message::Text(msg.to_json().into())).await;
                                break;
                            }
                            tokio::time::sleep(RETRY_OWNER).await;
                        }
                    }
                }
                // Resolved above.
                Route::Edge { .. } => break,
                Route::Expired => {
                    if send_expired(&mut socket).await.is_err() {
                        return;
                    }
                    break;
                }
                Route::Refuse(msg) => {
                    sessions
                        .sfu
                        .metrics
                        .count_signaling_error(ErrorCode::ClusterUnavailable);
                    if socket
                        .send(Message::Text(msg.to_json().into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    break;
                }
            }
        }
        refused += 1;
        if refused >= MAX_REFUSED {
            return close(
                socket,
                crate::http::RATE_LIMIT_CLOSE_CODE,
                "too many refused joins",
            )
            .await;
        }
    }
}

/// `session_expired`, as a server alone answers a `resume` it cannot take: the client joins
/// afresh on this connection, and that `join` is routed like a first message.
async fn send_expired(socket: &mut WebSocket) -> Result<(), axum::Error> {
    let msg = ServerMessage::error(
        ErrorCode::SessionExpired,
        "no session to resume with this token (its node is gone, or it ended): join again",
    );
    socket.send(Message::Text(msg.to_json().into())).await
}

/// The next data frame as text (a binary frame as the session would see it); `None` when
/// the client is gone.
async fn first_text(socket: &mut WebSocket) -> Option<String> {
    loop {
        match socket.recv().await? {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Binary(_)) => return Some(String::from("binary frame")),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => return None,
        }
    }
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(close)).await;
}
