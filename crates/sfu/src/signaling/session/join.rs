//! `join`: if [`super::admission`] allows it, a PeerConnection, a member in the room (whose
//! `joined` is its first message) and a resume token; together, a running session.
use std::sync::Arc;
use std::time::Instant;

use roomcast_protocol::ServerMessage;
use tokio::sync::{mpsc, Notify};

use super::admission::{self, Admitted, Client, JoinRequest, Mode};
use super::core::SessionCore;
use super::mailbox::SessionMailbox;
use super::shell::Shell;
use super::{Session, Sessions};
use crate::room::{Joining, Welcome};
use crate::signaling::outbox::Outbox;

/// Joins the room `request` names, or tells the client why not (and creates nothing).
pub(super) async fn join(
    sessions: &Arc<Sessions>,
    client: &Client,
    outbox: &Outbox,
    request: JoinRequest,
) -> Option<Box<Session>> {
    let sfu = &sessions.sfu;
    let admitted = admission::admit(
        &sfu.config,
        client,
        &request,
        Instant::now(),
        crate::auth::unix_now(),
    );
    let Admitted {
        name,
        role,
        role_given,
    } = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => {
            outbox.send(ServerMessage::from(refusal));
            return None;
        }
    };
    let peer = match sfu.peers.new_peer().await {
        Ok(peer) => peer,
        Err(e) => {
            tracing::error!(error = %e, "cannot create a PeerConnection");
            outbox.send(ServerMessage::error(
                roomcast_protocol::ErrorCode::InternalError,
                "cannot create a media connection",
            ));
            return None;
        }
    };
    let id = random_id("PA");
    let resubscribe = Arc::new(Notify::new());
    let (orders_tx, orders) = mpsc::unbounded_channel();
    let mailbox = Arc::new(SessionMailbox {
        outbox: outbox.clone(),
        resubscribe: Arc::clone(&resubscribe),
        orders: orders_tx.clone(),
        egress: Arc::clone(&peer.egress),
    });
    let (takeover_tx, takeover) = mpsc::channel(1);
    let token = sessions.resume.register(takeover_tx.clone());
    let joining = Joining {
        id: id.clone(),
        name: name.clone(),
        role,
        role_given,
        room_settings: request.room_settings,
        hidden: client.hidden,
    };
    let welcome = |welcome: Welcome| ServerMessage::Joined {
        participant_id: id.clone(),
        room: request.room.clone(),
        participants: welcome.participants,
        ice_servers: sfu.config.ice.for_participant(&id, crate::auth::unix_now()),
        role: Some(welcome.role),
        room_settings: Some(welcome.settings),
        session_token: Some(token.clone()),
    };
    let room = match sfu.join(&request.room, joining, mailbox, welcome) {
        Ok((room, _role)) => room,
        Err(refused) => {
            sessions.resume.remove(&token);
            let _ = peer.pc.close().await;
            outbox.send(ServerMessage::from(admission::refusal(
                refused,
                &sfu.config,
            )));
            return None;
        }
    };
    tracing::info!(room = %room.name, participant = %id, "joined");
    // Something may already be published: offer it at once.
    resubscribe.notify_one();
    let shell = Shell::new(id.clone(), Arc::clone(&room), Arc::clone(sfu), peer);
    let mut core = SessionCore::new(id, room, sessions.limits);
    match &client.mode {
        Mode::Full => {}
        Mode::PublishOnly => core.publish_only(),
        Mode::View { pinned } => core.view(pinned.clone()),
    }
    Some(Box::new(Session {
        sessions: Arc::clone(sessions),
        core,
        shell,
        resubscribe,
        orders,
        orders_tx,
        token,
        takeover,
        takeover_tx,
    }))
}

fn random_id(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| char::from(b"abcdefghijkmnopqrstuvwxyz23456789"[rng.random_range(0..33)]))
        .collect();
    format!("{prefix}_{tail}")
}
