//! Edge viewers as members of the room on its node. Each mirror keeps one internal
//! WebSocket to the owner (`/cluster/cascade/{room}`, believed only from a registered node's
//! address) beside its relay: the edge says who of its audience joins, leaves and chats
//! ([`Up`]), and the owner makes each of them a member of its room whose mailbox
//! ([`Remote`]) sends the host's orders back ([`Down`]): a kick, or a refused join. So the
//! owner's `audience_count`, its hosts' participant lists and `/api/rooms/{room}` count
//! every edge's audience, their chat reaches the hosts in the room's order, and a host can
//! kick them. What the audience is told (staff joining, tracks, chat from the staff, the
//! count) reaches the edge once, over the relay; nothing per edge viewer goes down.
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use roomcast_protocol::{Role, ServerMessage};
use roomcast_sfu::room::{Joining, Mailbox, Order, Room};
use roomcast_sfu::Sfu;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::Cascade;
use crate::cluster::ClusterNode;

/// The path of a room's presence link on its node.
pub const PATH: &str = "/cluster/cascade/{room}";
/// Orders queued for one edge at most; a link that falls this far behind is closed.
pub const QUEUE: usize = 4096;
/// The largest message on a link (a chat message is the largest).
const MAX_MESSAGE: usize = 64 << 10;

/// Edge → owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Up {
    /// A viewer joined the edge's mirror (as audience).
    Join {
        id: String,
        name: String,
    },
    Leave {
        id: String,
    },
    /// A viewer's chat message, which the edge has taken (its rate, its checks).
    Chat {
        id: String,
        text: String,
        ts: u64,
    },
}

/// Owner → edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Down {
    /// A host kicked this viewer: the edge closes it as kicked.
    Kick { id: String },
    /// The room would not take this viewer (full, locked, ended): the edge closes it.
    Refused { id: String },
}

pub fn url(internal_url: &str, room: &str) -> String {
    let ws = crate::cluster::relay::ws_url(internal_url);
    let base = ws.strip_suffix("/ws").unwrap_or(&ws);
    format!("{base}{}", PATH.replace("{room}", room))
}

pub fn routes<S>(node: Arc<ClusterNode>) -> Router<S> {
    Router::new().route(PATH, get(upgrade)).with_state(node)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(node): State<Arc<ClusterNode>>,
    Path(room): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let from_node = peer.is_some_and(|Extension(ConnectInfo(addr))| node.is_node(addr.ip()));
    if !from_node {
        return (StatusCode::FORBIDDEN, "for the cluster's nodes only\n").into_response();
    }
    let Some(room) = node
        .sfu
        .room(&room)
        .filter(|_| !node.cascade.is_mirror(&room))
    else {
        return (StatusCode::NOT_FOUND, "no such room on this node\n").into_response();
    };
    let sfu = Arc::clone(&node.sfu);
    let cascade = Arc::clone(&node.cascade);
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(socket, sfu, cascade, room))
}

/// One edge's viewers of `room`, until the edge goes: then they leave.
async fn serve(mut socket: WebSocket, sfu: Arc<Sfu>, cascade: Arc<Cascade>, room: Arc<Room>) {
    let (tx, mut orders) = mpsc::channel(QUEUE);
    let mut members = Members {
        sfu,
        cascade,
        room: Arc::clone(&room),
        tx,
        ids: HashSet::new(),
    };
    tracing::info!(room = %room.name, "cascade: an edge's audience joined the room");
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<Up>(text.as_str()) {
                    Ok(up) => members.apply(up, Instant::now()),
                    Err(e) => {
                        tracing::warn!(room = %room.name, error = %e, "cascade: bad presence message; closing the link");
                        break;
                    }
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => break,
            },
            Some(down) = orders.recv() => {
                let Ok(text) = serde_json::to_string(&down) else { break };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        }
    }
    tracing::info!(room = %room.name, viewers = members.ids.len(), "cascade: an edge's link ended; its audience leaves");
    members.leave_all();
}

/// The members one edge brought into the room.
struct Members {
    sfu: Arc<Sfu>,
    cascade: Arc<Cascade>,
    room: Arc<Room>,
    tx: mpsc::Sender<Down>,
    ids: HashSet<String>,
}

impl Members {
    fn apply(&mut self, up: Up, now: Instant) {
        match up {
            Up::Join { id, name } => {
                // Ids are random and made by the edge; one already in the room is not taken over.
                if self.ids.contains(&id) || self.room.role_of(&id).is_some() {
                    return;
                }
                let joining = Joining {
                    id: id.clone(),
                    name,
                    role: Role::Audience,
                    role_given: true,
                    room_settings: None,
                    hidden: false,
                };
                let mailbox = Arc::new(Remote {
                    id: id.clone(),
                    tx: self.tx.clone(),
                });
                let max = self.sfu.config.max_participants_per_room;
                match self
                    .room
                    .join(joining, mailbox, max, |_| ServerMessage::RoomEnded)
                {
                    Ok(_) => {
                        self.ids.insert(id);
                        self.cascade.edge_viewers.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(refused) => {
                        tracing::info!(room = %self.room.name, ?refused, "cascade: an edge viewer refused");
                        let _ = self.tx.try_send(Down::Refused { id });
                    }
                }
            }
            Up::Leave { id } => {
                if self.ids.remove(&id) {
                    self.leave(&id);
                }
            }
            Up::Chat { id, text, ts } => {
                if self.ids.contains(&id) {
                    if let Err(refused) = self.room.chat(&id, text, ts, now) {
                        tracing::debug!(room = %self.room.name, ?refused, "cascade: an edge viewer's chat refused");
                    }
                }
            }
        }
    }

    fn leave(&self, id: &str) {
        self.sfu.leave(&self.room, id);
        self.cascade.edge_viewers.fetch_sub(1, Ordering::Relaxed);
    }

    fn leave_all(&mut self) {
        for id in std::mem::take(&mut self.ids) {
            self.leave(&id);
        }
    }
}

/// An edge viewer's mailbox on the owner. What the audience is told reaches the edge over
/// its relay (once, not per viewer), and the viewer's own chat was echoed on the edge, so
/// messages are dropped here; a kick goes to the edge.
struct Remote {
    id: String,
    tx: mpsc::Sender<Down>,
}

impl Mailbox for Remote {
    fn tell(&self, _msg: ServerMessage) {}
    fn resubscribe(&self) {}
    fn order(&self, order: Order) {
        if order == Order::Kicked {
            let kick = Down::Kick {
                id: self.id.clone(),
            };
            if self.tx.try_send(kick).is_err() {
                tracing::warn!(participant = %self.id, "cascade: the edge's link is full or gone; kick not sent");
            }
        }
    }
    fn can_publish_here(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json() {
        let up = Up::Chat {
            id: "PA_1".into(),
            text: "hi".into(),
            ts: 7,
        };
        let text = serde_json::to_string(&up).unwrap();
        assert_eq!(text, r#"{"op":"chat","id":"PA_1","text":"hi","ts":7}"#);
        assert_eq!(serde_json::from_str::<Up>(&text).unwrap(), up);
        let down: Down = serde_json::from_str(r#"{"op":"kick","id":"PA_2"}"#).unwrap();
        assert_eq!(down, Down::Kick { id: "PA_2".into() });
        assert!(serde_json::from_str::<Up>(r#"{"op":"nope"}"#).is_err());
    }

    #[test]
    fn the_link_url_is_on_the_internal_address() {
        assert_eq!(
            url("http://10.0.0.5:8080", "webinar"),
            "ws://10.0.0.5:8080/cluster/cascade/webinar"
        );
    }
}
