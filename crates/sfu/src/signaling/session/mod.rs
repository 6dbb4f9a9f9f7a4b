//! One client's WebSocket session: the `join` handshake, then one task that owns the
//! participant's PeerConnection and handles, in order, the client's messages, the
//! connection's events and the room's changes. Owning everything in one task means
//! negotiation steps never interleave and need no locks.
//!
//! This file runs the session (join, resume, the event loop, closing); what the participant
//! publishes is in `publishing.rs`, what it receives in `subscribing.rs`, and moderation in
//! `moderation.rs`, all beside this file.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_protocol::{
    decode_client_message, ClientMessage, ErrorCode, IceCandidate, PublishedMid, Quality, Role,
    ServerMessage, Track, TrackSource,
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

mod admission;
mod mailbox;
mod moderation;
mod publishing;
mod resume;
mod subscribing;

use super::negotiator::{ClientOffer, LockRequest, Negotiator};
use super::outbox::Outbox;
use super::sdp_media::media_sections;
use crate::media::down_track::DownTrack;
use crate::media::layer_control::{self, quality_layer, LayerControl};
use crate::media::layer_selector::MAX_LAYERS;
use crate::media::published_track::{order_rids, PublishedTrack};
use crate::media::subscriber_rtcp;
use crate::peer::Peer;
use crate::room::{Joining, ModerationError, Order as Control, Room};
use crate::sfu::Sfu;
use admission::JoinRequest;
pub use admission::{Client, JoinGate};
use mailbox::SessionMailbox;
pub use resume::ResumeRegistry;
use resume::Takeover;

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
    control_tx: mpsc::UnboundedSender<Control>,
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

/// What every session of the server shares: the SFU, and the sessions that can be resumed.
pub struct Sessions {
    pub sfu: Arc<Sfu>,
    /// Session tokens of joined sessions, for `resume`, and the grace period.
    pub resume: ResumeRegistry,
}

impl Sessions {
    pub fn new(sfu: Arc<Sfu>) -> Arc<Sessions> {
        Arc::new(Sessions {
            sfu,
            resume: ResumeRegistry::default(),
        })
    }
}

/// Runs one client's session until it leaves, drops, or must be cut off. A joined session
/// whose connection drops lives on (parked, media flowing) for the resume grace period.
pub async fn run_session(
    sessions: Arc<Sessions>,
    client: Client,
    mut inbound: mpsc::Receiver<Inbound>,
    outbox: Outbox,
) -> SessionEnd {
    let sfu = &sessions.sfu;
    let mut state = match until_joined(&sessions, &client, &mut inbound, &outbox).await {
        Ok(state) => state,
        Err(end) => return end,
    };
    loop {
        match state.drive(sfu, &mut inbound, &outbox).await {
            Exit::End(end) => {
                state.close(&sessions).await;
                return end;
            }
            Exit::Dropped => {
                if sessions.resume.grace().is_zero()
                    || sessions.resume.shutdown_token().is_cancelled()
                {
                    state.close(&sessions).await;
                } else {
                    tokio::spawn(park(Arc::clone(&sessions), state));
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
    sessions: &Arc<Sessions>,
    client: &Client,
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
                        let request = JoinRequest { room, name, role, token, room_settings };
                        let joined = join(sessions, client, outbox, request).await;
                        if let Some(state) = joined {
                            sessions.sfu.metrics.observe_join(asked.elapsed());
                            return Ok(Box::new(state));
                        }
                    }
                    Ok(ClientMessage::Resume { session_token }) => {
                        if let Some(state) = resume(sessions, outbox, &session_token).await {
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
async fn park(sessions: Arc<Sessions>, mut state: Box<Joined>) {
    let nowhere = Outbox::new().0;
    let grace = sessions.resume.grace();
    let deadline = tokio::time::Instant::now() + grace;
    let shutdown = sessions.resume.shutdown_token().clone();
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
    state.close(&sessions).await;
}

/// Takes over the session of `token` for this connection, or answers `session_expired`.
async fn resume(sessions: &Sessions, outbox: &Outbox, token: &str) -> Option<Box<Joined>> {
    let expired = || {
        outbox.send(ServerMessage::error(
            ErrorCode::SessionExpired,
            "no session to resume with this token (it ended, or its grace period ran out): join again",
        ))
    };
    let Some(slot) = sessions.resume.take(token) else {
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
            sessions.resume.restore(token, slot);
            outbox.send(ServerMessage::error(
                ErrorCode::InternalError,
                "the session did not answer in time; try again",
            ));
            return None;
        }
    };
    state.parked = false;
    state.token = sessions.resume.register(state.takeover_tx.clone());
    let welcome = |welcome: crate::room::Welcome| ServerMessage::Resumed {
        participant_id: state.id.clone(),
        room: state.room.name.clone(),
        participants: welcome.participants,
        role: welcome.role,
        session_token: state.token.clone(),
    };
    let mailbox = Arc::new(SessionMailbox {
        outbox: outbox.clone(),
        resubscribe: Arc::clone(&state.resubscribe),
        orders: state.control_tx.clone(),
        egress: Arc::clone(&state.peer.egress),
    });
    state.room.rebind(&state.id, mailbox, welcome);
    tracing::info!(room = %state.room.name, participant = %state.id, "resumed");
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

async fn join(
    sessions: &Sessions,
    client: &Client,
    outbox: &Outbox,
    request: JoinRequest,
) -> Option<Joined> {
    let sfu = &sessions.sfu;
    let unix_now = crate::auth::unix_now();
    let admitted = match admission::admit(&sfu.config, client, &request, Instant::now(), unix_now) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            outbox.send(refusal.into());
            return None;
        }
    };
    let JoinRequest {
        room,
        room_settings,
        ..
    } = request;
    let admission::Admitted {
        name,
        role,
        role_given,
    } = admitted;
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
    let joining = Joining {
        id: id.clone(),
        name: name.clone(),
        role,
        role_given,
        room_settings,
    };
    let mailbox = Arc::new(SessionMailbox {
        outbox: outbox.clone(),
        resubscribe: Arc::clone(&resubscribe),
        orders: control_tx.clone(),
        egress: Arc::clone(&peer.egress),
    });
    let (takeover_tx, takeover) = mpsc::channel(1);
    let session_token = sessions.resume.register(takeover_tx.clone());
    let welcome = |welcome: crate::room::Welcome| ServerMessage::Joined {
        participant_id: id.clone(),
        room: room.clone(),
        participants: welcome.participants,
        ice_servers: sfu.config.ice_servers.clone(),
        role: Some(welcome.role),
        room_settings: Some(welcome.settings),
        session_token: Some(session_token.clone()),
    };
    let room = match sfu.join(&room, joining, mailbox, welcome) {
        Ok((room, _role)) => room,
        Err(refused) => {
            sessions.resume.remove(&session_token);
            let _ = peer.pc.close().await;
            outbox.send(admission::refusal(refused, &sfu.config).into());
            return None;
        }
    };
    let peer_events = watch_peer(&peer);
    tracing::info!(room = %room.name, participant = %id, %name, "joined");
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
        control_tx,
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
        self.room.broadcast(ServerMessage::Chat {
            participant_id: self.id.clone(),
            name: self.name.clone(),
            text,
            ts,
        });
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

    /// Leaves the room and frees everything: tracks, tasks, the PeerConnection.
    async fn close(self: Box<Self>, sessions: &Sessions) {
        let this = *self;
        sessions.resume.remove(&this.token);
        this.close_inner(&sessions.sfu).await;
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
