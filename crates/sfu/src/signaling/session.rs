//! One client's WebSocket session: the `join` handshake, then one task that owns the
//! participant's PeerConnection and handles, in order, the client's messages, the
//! connection's events and the room's changes. Owning everything in one task means
//! negotiation steps never interleave and need no locks.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_protocol::{
    decode_client_message, ClientMessage, ErrorCode, IceCandidate, PublishedMid, Quality, Role,
    RoomSettings, ServerMessage, Track, TrackSource,
};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCRtpTransceiver, RTCRtpTransceiverInit};
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_remote::TrackRemote;

use super::layer_control::{self, quality_layer, LayerControl};
use super::negotiator::{ClientOffer, LockRequest, Negotiator};
use super::outbox::Outbox;
use super::resume::Takeover;
use super::sdp_media::media_sections;
use crate::media::down_track::DownTrack;
use crate::media::layer_selector::MAX_LAYERS;
use crate::media::published_track::{order_rids, PublishedTrack};
use crate::media::subscriber_rtcp;
use crate::peer::Peer;
use crate::room::{Control, JoinRefused, Member, ModerationError, Room};
use crate::sfu::Sfu;

/// What the transport (the WebSocket) hands the session.
#[derive(Debug)]
pub enum Inbound {
    Text(String),
    /// A frame over the size limit: answered, then the connection closes.
    TooLarge,
}

/// Why a session ended, so the transport can close with the right code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client went away or sent `leave`.
    Normal,
    /// The client must be cut off (frame too large, too slow to read).
    Abuse,
    /// The media connection failed.
    MediaFailed,
}

/// Candidates kept for a remote description that has not arrived yet.
const MAX_PENDING_CANDIDATES: usize = 64;

enum PeerEvent {
    Track(Arc<TrackRemote>, String),
    Candidate(Option<IceCandidate>),
    State(RTCPeerConnectionState),
}

struct Subscription {
    track: Arc<PublishedTrack>,
    down: Arc<DownTrack>,
    sender: Arc<RTCRtpSender>,
    transceiver: Arc<RTCRtpTransceiver>,
    rtcp: JoinHandle<()>,
}

struct Joined {
    id: String,
    name: String,
    room: Arc<Room>,
    peer: Peer,
    negotiator: Negotiator,
    subscriptions: HashMap<String, Subscription>,
    /// Transceivers the server created to send on (reusable once inactive).
    own_mids: HashSet<String>,
    /// Published m-lines of this participant, by mid.
    published: HashMap<String, Arc<PublishedTrack>>,
    /// Tracks whose RTP arrived before the answer that publishes them was done.
    early_tracks: HashMap<String, Vec<Arc<TrackRemote>>>,
    pending_candidates: Vec<RTCIceCandidateInit>,
    /// Set while the client's latest offer was ignored: its candidates are dropped until the
    /// client's next description (its answer or a new offer) is applied.
    ignoring_candidates: bool,
    resubscribe: Arc<Notify>,
    peer_events: mpsc::UnboundedReceiver<PeerEvent>,
    readers: Vec<JoinHandle<()>>,
    quality: HashMap<String, Quality>,
    layers: LayerControl,
    layer_tick: tokio::time::Interval,
    congestion_control: bool,
    /// Orders from hosts (kick, role change, room end).
    control: mpsc::UnboundedReceiver<Control>,
    /// A server offer is owed even if the subscriptions did not change (a demotion made
    /// the client's sending m-lines inactive).
    offer_owed: bool,
    /// The `session_token` a `resume` names to take this session over.
    token: String,
    takeover: mpsc::Receiver<Takeover>,
    takeover_tx: mpsc::Sender<Takeover>,
    /// No connection: the session waits for `resume` and sends no offers.
    parked: bool,
}

/// A session on its way from one task to another (see [`super::resume`]).
pub struct Parked(Box<Joined>);

/// How a joined session's run on one connection ended.
enum Exit {
    /// The session is over: it leaves the room.
    End(SessionEnd),
    /// The connection went away without `leave`: the session parks, waiting for `resume`.
    Dropped,
    /// A `resume` on another connection asks for the session.
    TakenOver(oneshot::Sender<Parked>),
}

/// How long a `resume` waits for the session to hand itself over.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one client's session until it leaves, drops, or must be cut off. A joined session
/// whose connection drops lives on (parked, media flowing) for the resume grace period.
pub async fn run_session(
    sfu: Arc<Sfu>,
    mut inbound: mpsc::Receiver<Inbound>,
    outbox: Outbox,
) -> SessionEnd {
    let mut state = match until_joined(&sfu, &mut inbound, &outbox).await {
        Ok(state) => state,
        Err(end) => return end,
    };
    loop {
        match state.drive(&sfu, &mut inbound, &outbox).await {
            Exit::End(end) => {
                state.close(&sfu).await;
                return end;
            }
            Exit::Dropped => {
                if sfu.resume.grace().is_zero() || sfu.resume.shutdown_token().is_cancelled() {
                    state.close(&sfu).await;
                } else {
                    tokio::spawn(park(Arc::clone(&sfu), state));
                }
                return SessionEnd::Normal;
            }
            Exit::TakenOver(reply) => match reply.send(Parked(state)) {
                Ok(()) => return SessionEnd::Normal,
                Err(Parked(back)) => state = back,
            },
        }
    }
}

/// Handles a connection's messages until it joins (or resumes) a session.
async fn until_joined(
    sfu: &Arc<Sfu>,
    inbound: &mut mpsc::Receiver<Inbound>,
    outbox: &Outbox,
) -> Result<Box<Joined>, SessionEnd> {
    loop {
        tokio::select! {
            _ = outbox.kick.cancelled() => return Err(SessionEnd::Abuse),
            frame = inbound.recv() => match frame {
                None => return Err(SessionEnd::Normal),
                Some(Inbound::TooLarge) => return Err(too_large(outbox)),
                Some(Inbound::Text(text)) => match decode_client_message(&text) {
                    Err(e) => outbox.send(ServerMessage::error(e.code(), e.message)),
                    Ok(ClientMessage::Join { room, name, role, token, room_settings }) => {
                        let asked = Instant::now();
                        let joined = join(sfu, outbox, JoinRequest { room, name, role, token, room_settings }).await;
                        if let Some(state) = joined {
                            sfu.metrics.observe_join(asked.elapsed());
                            return Ok(Box::new(state));
                        }
                    }
                    Ok(ClientMessage::Resume { session_token }) => {
                        if let Some(state) = resume(sfu, outbox, &session_token).await {
                            return Ok(state);
                        }
                    }
                    Ok(ClientMessage::Leave) => return Err(SessionEnd::Normal),
                    Ok(_) => outbox.send(ServerMessage::error(ErrorCode::NotJoined, "send join first")),
                },
            },
        }
    }
}

/// A session whose connection dropped: it stays in the room, its media flowing, until a
/// `resume` takes it or the grace period runs out (then it leaves as if it had sent
/// `leave`). Messages to it meanwhile are dropped; `resumed` carries the room as it is.
async fn park(sfu: Arc<Sfu>, mut state: Box<Joined>) {
    let nowhere = Outbox::new().0;
    let grace = sfu.resume.grace();
    let deadline = tokio::time::Instant::now() + grace;
    let shutdown = sfu.resume.shutdown_token().clone();
    state.parked = true;
    tracing::info!(room = %state.room.name, participant = %state.id, ?grace, "connection lost; waiting for resume");
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!(room = %state.room.name, participant = %state.id, "not resumed in time");
                break;
            }
            _ = shutdown.cancelled() => break,
            Some(takeover) = state.takeover.recv() => match takeover.reply.send(Parked(state)) {
                Ok(()) => return,
                Err(Parked(back)) => state = back,
            },
            Some(control) = state.control.recv() => match control {
                Control::RoleChanged(role) => state.on_role_changed(role, &nowhere).await,
                Control::Kicked | Control::Ended => break,
            },
            Some(event) = state.peer_events.recv() => {
                if state.on_peer_event(event, &nowhere).await.is_err() {
                    break;
                }
            }
            _ = state.layer_tick.tick() => state.on_layer_tick(&nowhere),
        }
    }
    state.close(&sfu).await;
}

/// Takes over the session of `token` for this connection, or answers `session_expired`.
async fn resume(sfu: &Arc<Sfu>, outbox: &Outbox, token: &str) -> Option<Box<Joined>> {
    let expired = || {
        outbox.send(ServerMessage::error(
            ErrorCode::SessionExpired,
            "no session to resume with this token (it ended, or its grace period ran out): join again",
        ))
    };
    let Some(slot) = sfu.resume.take(token) else {
        expired();
        return None;
    };
    let (reply, handed) = oneshot::channel();
    if slot.try_send(Takeover { reply }).is_err() {
        expired();
        return None;
    }
    let mut state = match tokio::time::timeout(HANDOFF_TIMEOUT, handed).await {
        Ok(Ok(Parked(state))) => state,
        Ok(Err(_)) => {
            expired();
            return None;
        }
        Err(_) => {
            tracing::warn!("a session did not hand itself over in time");
            sfu.resume.restore(token, slot);
            outbox.send(ServerMessage::error(
                ErrorCode::InternalError,
                "the session did not answer in time; try again",
            ));
            return None;
        }
    };
    state.parked = false;
    state.token = sfu.resume.register(state.takeover_tx.clone());
    state.room.set_outbox(&state.id, outbox.clone());
    let role = state.room.role_of(&state.id).unwrap_or_default();
    tracing::info!(room = %state.room.name, participant = %state.id, "resumed");
    outbox.send(ServerMessage::Resumed {
        participant_id: state.id.clone(),
        room: state.room.name.clone(),
        participants: state.room.participants_for(&state.id),
        role,
        session_token: state.token.clone(),
    });
    if role.is_audience() {
        outbox.send(ServerMessage::AudienceCount {
            count: state.room.audience_count(),
        });
    }
    // The client may have missed the server's outstanding offer: it goes out again.
    // Otherwise whatever changed while the session was parked is offered now.
    if state.negotiator.server_offer_pending() {
        if let Some(local) = state.peer.pc.local_description().await {
            outbox.send(ServerMessage::Offer { sdp: local.sdp });
        }
    } else {
        state.renegotiate(outbox).await;
    }
    Some(state)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn too_large(outbox: &Outbox) -> SessionEnd {
    outbox.send(ServerMessage::error(
        ErrorCode::FrameTooLarge,
        format!(
            "frames are limited to {} bytes",
            roomcast_protocol::MAX_FRAME_BYTES
        ),
    ));
    SessionEnd::Abuse
}

fn random_id(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| char::from(b"abcdefghijkmnopqrstuvwxyz23456789"[rng.random_range(0..33)]))
        .collect();
    format!("{prefix}_{tail}")
}

/// A `join`'s fields.
struct JoinRequest {
    room: String,
    name: String,
    role: Option<Role>,
    token: Option<String>,
    room_settings: Option<RoomSettings>,
}

async fn join(sfu: &Arc<Sfu>, outbox: &Outbox, request: JoinRequest) -> Option<Joined> {
    let JoinRequest {
        room,
        name,
        role,
        token,
        room_settings,
    } = request;
    if !roomcast_protocol::is_valid_room_name(&room) {
        outbox.send(ServerMessage::error(
            ErrorCode::BadRequest,
            "room must be 1-64 characters of A-Z a-z 0-9 _ - .",
        ));
        return None;
    }
    if !roomcast_protocol::is_valid_display_name(&name) {
        outbox.send(ServerMessage::error(
            ErrorCode::BadRequest,
            "name must be 1-64 characters",
        ));
        return None;
    }
    // Tokens are checked before anything is created: a refused join leaves no trace.
    let (name, role, role_given) = match &sfu.config.jwt_secret {
        None => (name, role.unwrap_or_default(), role.is_some()),
        Some(secret) => {
            let now = crate::auth::unix_now();
            match crate::auth::verify_join(secret, token.as_deref(), &room, &name, role, now) {
                Ok(grant) => (grant.name, grant.role, true),
                Err(e) => {
                    tracing::info!(%room, error = %e, "join refused");
                    outbox.send(ServerMessage::error(ErrorCode::Unauthorized, e.to_string()));
                    return None;
                }
            }
        }
    };
    let peer = match sfu.peers.new_peer().await {
        Ok(peer) => peer,
        Err(e) => {
            tracing::error!(error = %e, "cannot create a PeerConnection");
            outbox.send(ServerMessage::error(
                ErrorCode::InternalError,
                "cannot create a media connection",
            ));
            return None;
        }
    };
    let id = random_id("PA");
    let resubscribe = Arc::new(Notify::new());
    let (control_tx, control) = mpsc::unbounded_channel();
    let member = Member {
        id: id.clone(),
        name: name.clone(),
        role,
        outbox: outbox.clone(),
        resubscribe: Arc::clone(&resubscribe),
        tracks: Vec::new(),
        control: control_tx,
        role_given,
        room_settings,
        publisher: false,
    };
    let (room, participants) = match sfu.join(&room, member) {
        Ok(joined) => joined,
        Err(refused) => {
            let _ = peer.pc.close().await;
            let (code, message) = match refused {
                JoinRefused::Full => (ErrorCode::RoomFull, "the room is full"),
                JoinRefused::Locked => (ErrorCode::RoomLocked, "the room is locked"),
                JoinRefused::Ended => (ErrorCode::RoomLocked, "the room is ending"),
            };
            outbox.send(ServerMessage::error(code, message));
            return None;
        }
    };
    // A webinar may have made the member audience.
    let role = room.role_of(&id).unwrap_or(role);
    let peer_events = watch_peer(&peer);
    let (takeover_tx, takeover) = mpsc::channel(1);
    let session_token = sfu.resume.register(takeover_tx.clone());
    tracing::info!(room = %room.name, participant = %id, %name, "joined");
    outbox.send(ServerMessage::Joined {
        participant_id: id.clone(),
        room: room.name.clone(),
        participants,
        ice_servers: sfu.config.ice_servers.clone(),
        role: Some(role),
        room_settings: Some(room.settings()),
        session_token: Some(session_token.clone()),
    });
    if role.is_audience() {
        outbox.send(ServerMessage::AudienceCount {
            count: room.audience_count(),
        });
    }
    // Something may already be published: offer it at once.
    resubscribe.notify_one();
    Some(Joined {
        id,
        name,
        room,
        peer,
        negotiator: Negotiator::default(),
        subscriptions: HashMap::new(),
        own_mids: HashSet::new(),
        published: HashMap::new(),
        early_tracks: HashMap::new(),
        pending_candidates: Vec::new(),
        ignoring_candidates: false,
        resubscribe,
        peer_events,
        readers: Vec::new(),
        quality: HashMap::new(),
        layers: LayerControl::default(),
        congestion_control: sfu.config.congestion_control,
        layer_tick: {
            let mut tick = tokio::time::interval(layer_control::INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        },
        control,
        offer_owed: false,
        token: session_token,
        takeover,
        takeover_tx,
        parked: false,
    })
}

/// Routes the connection's callbacks into the session task. The handlers hold only a
/// channel, never the session, so the PeerConnection can be dropped cleanly.
fn watch_peer(peer: &Peer) -> mpsc::UnboundedReceiver<PeerEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    let on_track = tx.clone();
    peer.pc
        .on_track(Box::new(move |track, _receiver, transceiver| {
            if let Some(mid) = transceiver.mid() {
                let _ = on_track.send(PeerEvent::Track(track, mid.to_string()));
            }
            Box::pin(async {})
        }));
    let on_candidate = tx.clone();
    peer.pc.on_ice_candidate(Box::new(move |candidate| {
        let msg = match candidate.map(|c| c.to_json()) {
            Some(Ok(init)) => Some(IceCandidate {
                candidate: init.candidate,
                sdp_mid: init.sdp_mid,
                sdp_mline_index: init.sdp_mline_index,
                username_fragment: init.username_fragment,
            }),
            Some(Err(_)) => return Box::pin(async {}),
            None => None,
        };
        let _ = on_candidate.send(PeerEvent::Candidate(msg));
        Box::pin(async {})
    }));
    peer.pc
        .on_peer_connection_state_change(Box::new(move |state| {
            let _ = tx.send(PeerEvent::State(state));
            Box::pin(async {})
        }));
    rx
}

impl Joined {
    /// Runs the session on one connection until it ends, drops or is taken over.
    async fn drive(
        &mut self,
        sfu: &Arc<Sfu>,
        inbound: &mut mpsc::Receiver<Inbound>,
        outbox: &Outbox,
    ) -> Exit {
        // A connection cut off for a broken write (not for abuse) is a drop as well.
        let lost = |outbox: &Outbox| {
            if outbox.is_abusive() {
                Exit::End(SessionEnd::Abuse)
            } else {
                Exit::Dropped
            }
        };
        loop {
            let grant_deadline = self.negotiator.grant_deadline();
            tokio::select! {
                _ = outbox.kick.cancelled() => return lost(outbox),
                frame = inbound.recv() => match frame {
                    None => return lost(outbox),
                    Some(Inbound::TooLarge) => return Exit::End(too_large(outbox)),
                    Some(Inbound::Text(text)) => match decode_client_message(&text) {
                        Err(e) => outbox.send(ServerMessage::error(e.code(), e.message)),
                        Ok(ClientMessage::Leave) => return Exit::End(SessionEnd::Normal),
                        Ok(msg) => self.handle(sfu, outbox, msg).await,
                    },
                },
                Some(takeover) = self.takeover.recv() => {
                    if !takeover.reply.is_closed() {
                        return Exit::TakenOver(takeover.reply);
                    }
                }
                Some(control) = self.control.recv() => match control {
                    Control::Kicked => {
                        outbox.send(ServerMessage::error(ErrorCode::Kicked, "a host removed you from the room"));
                        return Exit::End(SessionEnd::Normal);
                    }
                    Control::Ended => return Exit::End(SessionEnd::Normal),
                    Control::RoleChanged(role) => self.on_role_changed(role, outbox).await,
                },
                Some(event) = self.peer_events.recv() => {
                    if self.on_peer_event(event, outbox).await.is_err() {
                        return Exit::End(SessionEnd::MediaFailed);
                    }
                }
                _ = self.resubscribe.notified() => self.renegotiate(outbox).await,
                _ = self.layer_tick.tick() => self.on_layer_tick(outbox),
                _ = sleep_until_opt(grant_deadline) => self.renegotiate(outbox).await,
            }
        }
    }

    async fn handle(&mut self, sfu: &Sfu, outbox: &Outbox, msg: ClientMessage) {
        match msg {
            ClientMessage::Mute { track_id, muted } => self.on_mute(outbox, track_id, muted).await,
            ClientMessage::MuteParticipant { .. }
            | ClientMessage::Kick { .. }
            | ClientMessage::SetRole { .. }
            | ClientMessage::LockRoom
            | ClientMessage::UnlockRoom
            | ClientMessage::EndRoom => self.moderate(sfu, outbox, msg).await,
            ClientMessage::Join { .. } | ClientMessage::Resume { .. } => {
                outbox.send(ServerMessage::error(
                    ErrorCode::AlreadyJoined,
                    "this connection has joined already",
                ))
            }
            ClientMessage::Offer { sdp, tracks } => self.on_offer(outbox, sdp, tracks).await,
            ClientMessage::Answer { sdp } => self.on_answer(outbox, sdp).await,
            ClientMessage::Candidate { candidate } => self.on_candidate(candidate).await,
            ClientMessage::NegotiateRequest => {
                match self.negotiator.on_lock_request(Instant::now()) {
                    LockRequest::GrantNow => outbox.send(ServerMessage::NegotiateGrant),
                    LockRequest::GrantAfterAnswer => {}
                }
            }
            ClientMessage::SetQuality { track_id, quality } => {
                if self.room.has_track(&track_id) {
                    if let Some(sub) = self.subscriptions.get(&track_id) {
                        sub.down.set_requested(quality_layer(quality));
                    }
                    self.quality.insert(track_id, quality);
                } else {
                    outbox.send(ServerMessage::error(
                        ErrorCode::UnknownTrack,
                        format!("no track {track_id} in this room"),
                    ));
                }
            }
            ClientMessage::Chat { text } => self.on_chat(outbox, text),
            ClientMessage::Leave => {}
        }
    }

    /// `mute` by the owner of a track: `track_muted` to the room when the state changes
    /// (to the owner alone when it does not).
    async fn on_mute(&mut self, outbox: &Outbox, track_id: String, muted: bool) {
        let own = self
            .published
            .values()
            .find(|t| t.info.id == track_id)
            .cloned();
        let Some(track) = own else {
            let (code, why) = if self.room.has_track(&track_id) {
                (ErrorCode::Forbidden, "only its publisher may mute a track")
            } else {
                (ErrorCode::UnknownTrack, "you publish no such track")
            };
            return outbox.send(ServerMessage::error(code, format!("{why}: {track_id}")));
        };
        let changed = track.set_muted(muted).await;
        let msg = ServerMessage::TrackMuted {
            participant_id: self.id.clone(),
            track_id,
            muted,
        };
        if changed {
            tracing::info!(participant = %self.id, track_id = %track.info.id, muted, "self mute");
            self.room.broadcast(&msg);
        } else {
            outbox.send(msg);
        }
    }

    /// The host-only messages. Anyone else gets `forbidden` and nothing changes.
    async fn moderate(&mut self, sfu: &Sfu, outbox: &Outbox, msg: ClientMessage) {
        if !self.room.role_of(&self.id).is_some_and(Role::can_moderate) {
            return outbox.send(ServerMessage::error(
                ErrorCode::Forbidden,
                "only a host may moderate the room",
            ));
        }
        let unknown = |id: &str| {
            ServerMessage::error(
                ErrorCode::UnknownParticipant,
                format!("no participant {id} in this room"),
            )
        };
        match msg {
            ClientMessage::MuteParticipant {
                participant_id,
                kind,
                muted,
            } => {
                let Some(tracks) = self.room.tracks_of(&participant_id) else {
                    return outbox.send(unknown(&participant_id));
                };
                tracing::info!(participant = %self.id, target = %participant_id, ?kind, muted, "mute_participant");
                for track in tracks.iter().filter(|t| t.info.kind == kind) {
                    if track.set_muted(muted).await {
                        self.room.broadcast(&ServerMessage::TrackMuted {
                            participant_id: participant_id.clone(),
                            track_id: track.info.id.clone(),
                            muted,
                        });
                    }
                }
            }
            ClientMessage::Kick { participant_id } => {
                tracing::info!(participant = %self.id, target = %participant_id, "kick");
                if let Err(ModerationError::UnknownParticipant) = self.room.kick(&participant_id) {
                    outbox.send(unknown(&participant_id));
                }
            }
            ClientMessage::SetRole {
                participant_id,
                role,
            } => {
                tracing::info!(participant = %self.id, target = %participant_id, ?role, "set_role");
                if let Err(ModerationError::UnknownParticipant) =
                    self.room.set_role(&participant_id, role)
                {
                    outbox.send(unknown(&participant_id));
                }
            }
            ClientMessage::LockRoom | ClientMessage::UnlockRoom => {
                let locked = matches!(msg, ClientMessage::LockRoom);
                tracing::info!(participant = %self.id, locked, "room lock");
                self.room.set_locked(locked);
            }
            ClientMessage::EndRoom => {
                tracing::info!(participant = %self.id, room = %self.room.name, "end_room");
                if self.room.end() {
                    sfu.end_room(&self.room);
                }
            }
            _ => {}
        }
    }

    /// A host changed this participant's role. Demoted to audience, it stops publishing:
    /// its tracks are unpublished and its sending m-lines are offered back inactive.
    async fn on_role_changed(&mut self, role: Role, outbox: &Outbox) {
        if role.can_publish() {
            return;
        }
        for (_, track) in self.published.drain() {
            tracing::info!(participant = %self.id, track_id = %track.info.id, "unpublished: demoted to audience");
            self.room.unpublish(&self.id, &track.info.id);
        }
        self.room.release_publisher(&self.id);
        for t in self.peer.pc.get_transceivers().await {
            let own = t.mid().is_some_and(|m| self.own_mids.contains(m.as_str()));
            if !own && t.direction().has_recv() {
                t.set_direction(RTCRtpTransceiverDirection::Inactive).await;
                self.offer_owed = true;
            }
        }
        self.renegotiate(outbox).await;
    }

    fn on_layer_tick(&mut self, outbox: &Outbox) {
        let now = Instant::now();
        self.layers
            .publisher_tick(now, self.published.values(), outbox);
        let speakers = self.room.active_speakers();
        let bandwidth = &self.peer.egress.bandwidth;
        let probed = self.layers.subscriber_tick(
            now,
            self.subscriptions.values().map(|s| (&s.track, &s.down)),
            &speakers,
            bandwidth.estimate().filter(|_| self.congestion_control),
            outbox,
        );
        if let Some(bps) = probed {
            bandwidth.on_probe_result(bps);
        }
    }

    fn on_chat(&self, outbox: &Outbox, text: String) {
        if text.trim().is_empty() || text.chars().count() > 4000 {
            outbox.send(ServerMessage::error(
                ErrorCode::BadRequest,
                "chat text must be 1-4000 characters",
            ));
            return;
        }
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.room.broadcast(&ServerMessage::Chat {
            participant_id: self.id.clone(),
            name: self.name.clone(),
            text,
            ts,
        });
    }

    async fn on_offer(&mut self, outbox: &Outbox, sdp: String, tracks: Vec<PublishedMid>) {
        if self.negotiator.on_client_offer() == ClientOffer::Ignore {
            tracing::debug!(participant = %self.id, "ignoring a client offer that collided with ours");
            self.ignoring_candidates = true;
            return;
        }
        let sections = match media_sections(&sdp) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                return outbox.send(ServerMessage::error(
                    ErrorCode::BadSdp,
                    "the offer has no m-lines",
                ))
            }
            Err(e) => return outbox.send(ServerMessage::error(ErrorCode::BadSdp, e)),
        };
        let offer = match RTCSessionDescription::offer(sdp) {
            Ok(o) => o,
            Err(e) => return outbox.send(ServerMessage::error(ErrorCode::BadSdp, e.to_string())),
        };
        if let Err(e) = self.peer.pc.set_remote_description(offer).await {
            return outbox.send(ServerMessage::error(
                ErrorCode::BadSdp,
                format!("cannot apply the offer: {e}"),
            ));
        }
        self.apply_pending_candidates().await;
        let sending: HashSet<String> = sections
            .iter()
            .filter(|s| s.sends && s.kind.is_some() && !self.own_mids.contains(&s.mid))
            .map(|s| s.mid.clone())
            .collect();
        let may_publish = sending.is_empty() || self.room.claim_publisher(&self.id);
        for t in self.peer.pc.get_transceivers().await {
            let Some(mid) = t.mid() else { continue };
            if !sending.contains(mid.as_str()) {
                continue;
            }
            // Refused m-lines are answered inactive; once allowed (a promotion), a
            // re-offered one is received again.
            let direction = if may_publish {
                RTCRtpTransceiverDirection::Recvonly
            } else {
                RTCRtpTransceiverDirection::Inactive
            };
            if t.direction() != direction {
                t.set_direction(direction).await;
            }
        }
        let answer = match self.peer.pc.create_answer(None).await {
            Ok(a) => a,
            Err(e) => {
                return outbox.send(ServerMessage::error(
                    ErrorCode::BadSdp,
                    format!("cannot answer: {e}"),
                ))
            }
        };
        if let Err(e) = self.peer.pc.set_local_description(answer).await {
            return outbox.send(ServerMessage::error(
                ErrorCode::BadSdp,
                format!("cannot answer: {e}"),
            ));
        }
        let Some(local) = self.peer.pc.local_description().await else {
            return outbox.send(ServerMessage::error(
                ErrorCode::InternalError,
                "no local description",
            ));
        };
        outbox.send(ServerMessage::Answer { sdp: local.sdp });
        self.negotiator.client_offer_answered();
        if may_publish {
            self.update_publications(&sections, &tracks).await;
        } else {
            tracing::info!(participant = %self.id, mids = ?sending, "publishing refused");
            self.early_tracks.clear();
            outbox.send(ServerMessage::error(
                ErrorCode::Forbidden,
                match self.room.role_of(&self.id) {
                    Some(role) if !role.can_publish() => {
                        "the audience may not publish: the sending m-lines are inactive"
                    }
                    _ => "the room has its maximum of publishers: the sending m-lines are inactive",
                },
            ));
            self.update_publications(&[], &[]).await;
        }
        if self.published.is_empty() {
            self.room.release_publisher(&self.id);
        }
        self.renegotiate(outbox).await;
    }

    /// Publishes the m-lines the client now sends on and unpublishes the ones it stopped.
    async fn update_publications(
        &mut self,
        sections: &[super::sdp_media::MediaSection],
        tracks: &[PublishedMid],
    ) {
        let sending: HashSet<&str> = sections
            .iter()
            .filter(|s| s.sends && s.kind.is_some() && !self.own_mids.contains(&s.mid))
            .map(|s| s.mid.as_str())
            .collect();
        let stopped: Vec<String> = self
            .published
            .keys()
            .filter(|mid| !sending.contains(mid.as_str()))
            .cloned()
            .collect();
        for mid in stopped {
            if let Some(track) = self.published.remove(&mid) {
                tracing::info!(participant = %self.id, track_id = %track.info.id, "unpublished");
                self.room.unpublish(&self.id, &track.info.id);
            }
        }
        for section in sections {
            let Some(kind) = section.kind else { continue };
            if !sending.contains(section.mid.as_str()) || self.published.contains_key(&section.mid)
            {
                continue;
            }
            let source = tracks
                .iter()
                .find(|t| t.mid == section.mid)
                .map_or(TrackSource::default_for(kind), |t| t.source);
            let Some(codec) = self
                .peer
                .receive_codecs(&section.mid)
                .await
                .into_iter()
                .next()
            else {
                tracing::warn!(participant = %self.id, mid = %section.mid, "no codec negotiated; not published");
                continue;
            };
            let rids = if section.rids.len() > 1 {
                order_rids(&section.rids)
            } else {
                Vec::new()
            };
            let info = Track {
                id: self.room.next_track_id(),
                kind,
                source,
                simulcast: !rids.is_empty(),
                muted: false,
            };
            let track = Arc::new(PublishedTrack::new(
                info,
                self.id.clone(),
                section.mid.clone(),
                codec,
                &rids,
                Arc::downgrade(&self.peer.pc),
            ));
            tracing::info!(participant = %self.id, track_id = %track.info.id, mid = %section.mid, "published");
            self.published
                .insert(section.mid.clone(), Arc::clone(&track));
            for remote in self.early_tracks.remove(&section.mid).unwrap_or_default() {
                self.start_reader(&track, remote);
            }
            self.room.publish(&self.id, track);
        }
    }

    fn start_reader(&mut self, track: &Arc<PublishedTrack>, remote: Arc<TrackRemote>) {
        let Some(layer) = track.layer_of_rid(remote.rid()) else {
            tracing::info!(participant = %self.id, track_id = %track.info.id, rid = %remote.rid(), "a layer the offer did not announce; not forwarded");
            return;
        };
        if !track.claim_reader(layer) {
            tracing::debug!(participant = %self.id, track_id = %track.info.id, layer, "layer already has a reader");
            return;
        }
        self.readers.retain(|r| !r.is_finished());
        self.readers
            .push(tokio::spawn(Arc::clone(track).run_reader(remote, layer)));
    }

    async fn on_answer(&mut self, outbox: &Outbox, sdp: String) {
        if !self.negotiator.server_offer_pending() {
            return outbox.send(ServerMessage::error(
                ErrorCode::InvalidState,
                "no offer of the server is waiting for an answer",
            ));
        }
        tracing::trace!(participant = %self.id, %sdp, "client answer");
        let answer = match RTCSessionDescription::answer(sdp) {
            Ok(a) => a,
            Err(e) => return outbox.send(ServerMessage::error(ErrorCode::BadSdp, e.to_string())),
        };
        if let Err(e) = self.peer.pc.set_remote_description(answer).await {
            tracing::info!(participant = %self.id, error = %e, "answer refused");
            return outbox.send(ServerMessage::error(
                ErrorCode::BadSdp,
                format!("cannot apply the answer: {e}"),
            ));
        }
        self.ignoring_candidates = false;
        if let Ok(true) = self.negotiator.on_client_answer(Instant::now()) {
            outbox.send(ServerMessage::NegotiateGrant);
        }
        self.apply_pending_candidates().await;
        self.renegotiate(outbox).await;
    }

    async fn on_candidate(&mut self, candidate: Option<IceCandidate>) {
        let Some(c) = candidate.filter(|c| !c.is_end_of_candidates()) else {
            return;
        };
        if self.ignoring_candidates {
            return;
        }
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: c.username_fragment,
        };
        if self.peer.pc.remote_description().await.is_none() {
            if self.pending_candidates.len() < MAX_PENDING_CANDIDATES {
                self.pending_candidates.push(init);
            }
            return;
        }
        if let Err(e) = self.peer.pc.add_ice_candidate(init).await {
            tracing::debug!(participant = %self.id, error = %e, "candidate not applied");
        }
    }

    async fn apply_pending_candidates(&mut self) {
        for init in std::mem::take(&mut self.pending_candidates) {
            if let Err(e) = self.peer.pc.add_ice_candidate(init).await {
                tracing::debug!(participant = %self.id, error = %e, "buffered candidate not applied");
            }
        }
    }

    async fn on_peer_event(&mut self, event: PeerEvent, outbox: &Outbox) -> Result<(), ()> {
        match event {
            PeerEvent::Candidate(candidate) => outbox.send(ServerMessage::Candidate { candidate }),
            PeerEvent::Track(remote, mid) => match self.published.get(&mid).cloned() {
                Some(track) => self.start_reader(&track, remote),
                // Media on an m-line the server refused (answered inactive) is never read.
                None if self.refused_mid(&mid).await => {
                    tracing::debug!(participant = %self.id, %mid, "media on a refused m-line; ignored");
                }
                None => {
                    let early = self.early_tracks.entry(mid).or_default();
                    if early.len() < usize::from(MAX_LAYERS) {
                        early.push(remote);
                    }
                }
            },
            PeerEvent::State(state) => {
                tracing::debug!(participant = %self.id, ?state, "connection state");
                if state == RTCPeerConnectionState::Connected {
                    if let Err(e) = self.peer.egress.connect(&self.peer.pc).await {
                        tracing::warn!(participant = %self.id, error = %e, "cannot send media to this participant");
                    }
                }
                if matches!(
                    state,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                ) {
                    tracing::info!(participant = %self.id, ?state, "media connection lost");
                    return Err(());
                }
            }
        }
        Ok(())
    }

    /// Whether `mid` is one of the client's m-lines that the server answered inactive.
    async fn refused_mid(&self, mid: &str) -> bool {
        for t in self.peer.pc.get_transceivers().await {
            if t.mid().is_some_and(|m| m.as_str() == mid) {
                return !self.own_mids.contains(mid)
                    && t.direction() == RTCRtpTransceiverDirection::Inactive;
            }
        }
        false
    }

    /// Brings the subscriptions in line with the room and offers the change, when the
    /// negotiation rules allow an offer now. Otherwise it runs again once they do.
    async fn renegotiate(&mut self, outbox: &Outbox) {
        // A parked session has nobody to offer to; it renegotiates when resumed.
        if self.parked || !self.negotiator.may_offer(Instant::now()) {
            return;
        }
        let wanted = self.room.tracks_for(&self.id);
        let wanted_ids: HashSet<&str> = wanted.iter().map(|t| t.info.id.as_str()).collect();
        let mut changed = false;
        let gone: Vec<String> = self
            .subscriptions
            .keys()
            .filter(|id| !wanted_ids.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            if let Some(sub) = self.subscriptions.remove(&id) {
                sub.track.remove_down_track(&sub.down);
                sub.rtcp.abort();
                if let Err(e) = self.peer.pc.remove_track(&sub.sender).await {
                    tracing::debug!(participant = %self.id, error = %e, "remove_track failed");
                }
                changed = true;
            }
        }
        for track in wanted {
            if self.subscriptions.contains_key(&track.info.id) {
                continue;
            }
            match self.subscribe(&track).await {
                Ok(sub) => {
                    self.subscriptions.insert(track.info.id.clone(), sub);
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(participant = %self.id, track_id = %track.info.id, error = %e, "cannot subscribe")
                }
            }
        }
        if changed || std::mem::take(&mut self.offer_owed) {
            self.send_offer(outbox).await;
        }
    }

    async fn subscribe(
        &mut self,
        track: &Arc<PublishedTrack>,
    ) -> Result<Subscription, webrtc::Error> {
        let down = track.new_down_track(Arc::clone(&self.peer.egress));
        if let Some(&quality) = self.quality.get(&track.info.id) {
            down.set_requested(quality_layer(quality));
        }
        let as_local: Arc<dyn TrackLocal + Send + Sync> = Arc::clone(&down) as _;
        let (transceiver, sender) = match self.reusable_transceiver(track).await {
            Some(t) => {
                let sender = self.peer.new_sender(Arc::clone(&as_local)).await;
                t.set_sender_track(Arc::clone(&sender), Some(as_local))
                    .await?;
                (t, sender)
            }
            None => {
                let t = self
                    .peer
                    .pc
                    .add_transceiver_from_track(
                        as_local,
                        Some(RTCRtpTransceiverInit {
                            direction: RTCRtpTransceiverDirection::Sendonly,
                            send_encodings: vec![],
                        }),
                    )
                    .await?;
                let sender = t.sender().await;
                (t, sender)
            }
        };
        track.add_down_track(Arc::clone(&down));
        let rtcp = tokio::spawn(subscriber_rtcp::run(
            Arc::clone(&sender),
            Arc::clone(track),
            Arc::clone(&down),
        ));
        Ok(Subscription {
            track: Arc::clone(track),
            down,
            sender,
            transceiver,
            rtcp,
        })
    }

    /// A transceiver the server made earlier whose track is gone and whose inactive state
    /// the client has already accepted, so the next offer shows the client a fresh track.
    async fn reusable_transceiver(&self, track: &PublishedTrack) -> Option<Arc<RTCRtpTransceiver>> {
        let in_use: HashSet<usize> = self
            .subscriptions
            .values()
            .map(|s| Arc::as_ptr(&s.transceiver) as usize)
            .collect();
        for t in self.peer.pc.get_transceivers().await {
            let own = t.mid().is_some_and(|m| self.own_mids.contains(m.as_str()));
            if own
                && t.kind() == track.rtp_kind()
                && !in_use.contains(&(Arc::as_ptr(&t) as usize))
                && t.direction() == RTCRtpTransceiverDirection::Inactive
                && t.current_direction() == RTCRtpTransceiverDirection::Inactive
                && t.sender().await.track().await.is_none()
            {
                return Some(t);
            }
        }
        None
    }

    async fn send_offer(&mut self, outbox: &Outbox) {
        let result = async {
            let offer = self.peer.pc.create_offer(None).await?;
            self.peer.pc.set_local_description(offer).await?;
            self.peer
                .pc
                .local_description()
                .await
                .ok_or(webrtc::Error::ErrNoRemoteDescription)
        }
        .await;
        match result {
            Ok(local) => {
                for t in self.peer.pc.get_transceivers().await {
                    let sending = t.direction().has_send()
                        || self
                            .subscriptions
                            .values()
                            .any(|s| Arc::ptr_eq(&s.transceiver, &t));
                    if let (true, Some(mid)) = (sending, t.mid()) {
                        self.own_mids.insert(mid.to_string());
                    }
                }
                self.negotiator.offer_sent();
                outbox.send(ServerMessage::Offer { sdp: local.sdp });
            }
            Err(e) => {
                tracing::error!(participant = %self.id, error = %e, "cannot create an offer");
                if self.negotiator.offer_failed(Instant::now()) {
                    outbox.send(ServerMessage::NegotiateGrant);
                }
            }
        }
    }

    /// Leaves the room and frees everything: tracks, tasks, the PeerConnection.
    async fn close(self: Box<Self>, sfu: &Sfu) {
        let this = *self;
        sfu.resume.remove(&this.token);
        this.close_inner(sfu).await;
    }

    async fn close_inner(self, sfu: &Sfu) {
        sfu.leave(&self.room, &self.id);
        for (_, sub) in self.subscriptions {
            sub.track.remove_down_track(&sub.down);
            sub.rtcp.abort();
        }
        for track in self.published.values() {
            track.close();
        }
        for reader in self.readers {
            reader.abort();
        }
        self.peer.egress.disconnect();
        if let Err(e) = self.peer.pc.close().await {
            tracing::debug!(participant = %self.id, error = %e, "closing the connection");
        }
        tracing::info!(room = %self.room.name, participant = %self.id, "left");
    }
}
