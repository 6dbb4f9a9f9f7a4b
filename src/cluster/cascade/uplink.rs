//! The edge's side of a room's presence link ([`super::presence`]). A hidden host in the
//! mirror room (the uplink) sees what a host sees of the edge's audience, their joins,
//! leaves and chat, in the room's order, and sends it to the owner; the owner's orders (a
//! kick, a refused join) are carried out on the local room.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use roomcast_protocol::ServerMessage;
use roomcast_sfu::room::{Mailbox, Order};
use roomcast_sfu::Sfu;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::presence::{self, Down, Up};

/// How long connecting the link may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The uplink's id in the mirror room (hidden: never announced, listed or counted).
pub const UPLINK_ID: &str = "cascade-uplink";

/// The mirror room's hidden host: passes the edge audience's presence and chat up.
pub struct Uplink {
    tx: mpsc::Sender<Up>,
    /// The edge's viewers as the owner knows them.
    viewers: Mutex<HashSet<String>>,
    /// Cancelled when the link cannot keep up (or ends): the mirror closes.
    broken: CancellationToken,
}

impl Uplink {
    pub fn is_viewer(&self, id: &str) -> bool {
        self.viewers.lock().contains(id)
    }

    fn send(&self, up: Up) {
        if self.tx.try_send(up).is_err() {
            tracing::warn!("cascade: the presence link is full or gone; closing the mirror");
            self.broken.cancel();
        }
    }
}

impl Mailbox for Uplink {
    fn tell(&self, msg: ServerMessage) {
        let up = match msg {
            // The owner's staff are mirrored here with their roles; only the audience is ours.
            ServerMessage::ParticipantJoined { participant } if participant.role.is_audience() => {
                if !self.viewers.lock().insert(participant.id.clone()) {
                    return;
                }
                Up::Join {
                    id: participant.id,
                    name: participant.name,
                }
            }
            ServerMessage::ParticipantLeft { participant_id } => {
                if !self.viewers.lock().remove(&participant_id) {
                    return;
                }
                Up::Leave { id: participant_id }
            }
            ServerMessage::Chat {
                participant_id,
                text,
                ts,
                ..
            } if self.is_viewer(&participant_id) => Up::Chat {
                id: participant_id,
                text,
                ts,
            },
            _ => return,
        };
        self.send(up);
    }
    fn resubscribe(&self) {}
    fn order(&self, _order: Order) {}
}

/// Opens `room`'s presence link on the owner at `internal_url`. Returns the uplink (to join
/// the mirror room) and the task that runs the link until it breaks or `closed` is
/// cancelled; when it ends, it cancels `closed` (the mirror closes).
pub async fn connect(
    sfu: Arc<Sfu>,
    internal_url: &str,
    room: &str,
    closed: CancellationToken,
) -> anyhow::Result<(Arc<Uplink>, impl std::future::Future<Output = ()>)> {
    let url = presence::url(internal_url, room);
    let (socket, _) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await??;
    let (tx, mut rx) = mpsc::channel(presence::QUEUE);
    let uplink = Arc::new(Uplink {
        tx,
        viewers: Mutex::new(HashSet::new()),
        broken: closed.clone(),
    });
    let this = Arc::clone(&uplink);
    let room = room.to_owned();
    let run = async move {
        let (mut out, mut inp) = socket.split();
        loop {
            tokio::select! {
                _ = closed.cancelled() => break,
                Some(up) = rx.recv() => {
                    let Ok(text) = serde_json::to_string(&up) else { break };
                    if out.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                msg = inp.next() => match msg {
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<Down>(text.as_str()) {
                        Ok(down) => carry_out(&sfu, &room, &this, down),
                        Err(e) => tracing::warn!(%room, error = %e, "cascade: bad order from the owner"),
                    },
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                },
            }
        }
        let _ = out.close().await;
        closed.cancel();
    };
    Ok((uplink, run))
}

/// A host's kick (or a refused join) for one of this edge's viewers: its session here
/// sends `kicked` and closes, as for a kick on this node.
fn carry_out(sfu: &Sfu, room: &str, uplink: &Uplink, down: Down) {
    let (Down::Kick { id } | Down::Refused { id }) = down;
    if !uplink.is_viewer(&id) {
        return;
    }
    if let Some(room) = sfu.room(room) {
        let _ = room.kick(&id);
    }
}
