//! A joined session's decisions, without I/O: a plain struct driven by inputs (a client
//! message, a PeerConnection event, a room event, a tick, or the outcome of a command it
//! asked for), each with `now`. It answers with outputs: messages for the client, commands
//! for the PeerConnection and the media objects, or the end of the session. The shell
//! (`super::shell`) owns the PeerConnection and the socket, applies the commands and feeds
//! their outcomes back, one at a time, so the core never sees two steps interleave.
//!
//! What the core knows of the PeerConnection is what the shell reports after each command
//! that changes it ([`Transceiver`]s), so reconciling subscriptions, reusing transceivers,
//! the negotiation lock, role changes and park/resume are tested with a fake clock and a fake
//! PeerConnection (`tests`).
//!
//! One handler per client message kind lives in `cmd/`; what the participant receives in
//! `subscriptions.rs`, what it publishes in `publications.rs`.
pub mod cmd;
pub mod limits;
mod publications;
mod subscriptions;
#[cfg(test)]
mod tests;
mod transceivers;
mod view;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_protocol::{
    ClientMessage, ErrorCode, IceCandidate, PublishedMid, Quality, ServerMessage, TrackKind,
};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

pub use limits::ParticipantLimits;
pub use publications::NewTrack;
pub use subscriptions::Subscribe;
pub use transceivers::{Transceiver, TransceiverId};
pub use view::CHECK_INTERVAL as VIEW_CHECK_INTERVAL;

use super::SessionEnd;
use crate::media::published_track::PublishedTrack;
use crate::rate::TokenBucket;
use crate::room::{Order, Room};
use crate::signaling::negotiator::{Negotiator, ANSWER_TIMEOUT};
use crate::signaling::sdp_media::MediaSection;
use transceivers::PeerModel;

#[derive(Debug)]
pub enum Input {
    /// A message from the client.
    Client(ClientMessage),
    /// Something the PeerConnection reported.
    Peer(PeerEvent),
    /// A change in the room that concerns this member.
    Room(RoomEvent),
    /// Time passed: a deadline of [`SessionCore::next_deadline`] may have come.
    Tick,
    /// The outcome of a command, with the transceivers as they are after it.
    Done(Done, Vec<Transceiver>),
}

#[derive(Debug)]
pub enum PeerEvent {
    /// The server gathered a candidate (`None`: gathering is complete).
    Candidate(Option<IceCandidate>),
    State(RTCPeerConnectionState),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomEvent {
    /// The tracks this member may receive changed.
    Resubscribe,
    Order(Order),
}

#[derive(Debug)]
pub enum Output {
    /// A message for the client.
    Send(ServerMessage),
    /// Something for the shell to do.
    Do(Command),
    /// The session is over (after the outputs before this one).
    End(SessionEnd),
    /// Close this connection so the client resumes on a new one (code 4000, as for a client
    /// that fell behind): the session parks meanwhile.
    AskToResume,
}

/// What the shell does for the core. Those with an outcome answer with [`Input::Done`].
#[derive(Debug)]
pub enum Command {
    /// Apply the client's offer. Outcome: [`Done::OfferApplied`].
    ApplyOffer(String),
    /// Create and apply the answer to it. Outcome: [`Done::AnswerCreated`].
    CreateAnswer,
    /// Apply the client's answer to the server's offer. Outcome: [`Done::AnswerApplied`].
    ApplyAnswer(String),
    /// Create and apply an offer. Outcome: [`Done::OfferCreated`].
    CreateOffer,
    AddCandidates(Vec<IceCandidate>),
    SetDirection(TransceiverId, RTCRtpTransceiverDirection),
    /// Build these published tracks (their codec comes from the applied offer). Outcome:
    /// [`Done::Published`].
    Publish(Vec<NewTrack>),
    /// Start receiving this published track's media.
    Receive(Arc<PublishedTrack>),
    /// Forget media that arrived on m-lines not published yet (publishing was refused).
    DropEarlyTracks,
    /// Stop sending these tracks (by id), then start sending these. Outcome:
    /// [`Done::Subscribed`].
    Subscribe {
        remove: Vec<String>,
        add: Vec<Subscribe>,
    },
    /// The most this subscriber wants of a track it receives (`None`: nothing).
    SetQuality {
        track_id: String,
        layer: Option<u8>,
    },
    /// Mute or unmute one of this participant's tracks. Outcome: [`Done::Muted`].
    Mute {
        track: Arc<PublishedTrack>,
        muted: bool,
    },
    /// A host mutes another participant's tracks of `kind` ([`Room::mute_participant`]).
    /// Outcome: [`Done::MutedParticipant`].
    MuteParticipant {
        participant_id: String,
        kind: TrackKind,
        muted: bool,
    },
    /// A host ends the room ([`crate::Sfu::end_room`]).
    EndRoom,
    /// The connection is up: start sending media on it.
    Connect,
    /// A viewer's receiver of `kind` (the client's transceiver) gets `track`'s media from
    /// now on, continuing the stream it had (`None`: nothing, until there is a source).
    View {
        transceiver: TransceiverId,
        kind: TrackKind,
        track: Option<Arc<PublishedTrack>>,
    },
}

/// Outcomes of commands. An `Err` carries what the PeerConnection said.
#[derive(Debug)]
pub enum Done {
    OfferApplied(Result<(), String>),
    AnswerCreated(Result<String, (ErrorCode, String)>),
    AnswerApplied(Result<(), String>),
    OfferCreated(Result<String, String>),
    /// Each new track, built (`None`: no codec was negotiated for its m-line).
    Published(Vec<(NewTrack, Option<Arc<PublishedTrack>>)>),
    /// The transceiver each track that could be added is sent on.
    Subscribed(Vec<(String, TransceiverId)>),
    Muted {
        track_id: String,
        muted: bool,
        changed: bool,
    },
    MutedParticipant {
        participant_id: String,
        found: bool,
    },
}

/// A client offer on its way through the steps of being answered.
#[derive(Debug)]
struct ClientOffer {
    sections: Vec<MediaSection>,
    tracks: Vec<PublishedMid>,
    /// Whether the offer's sending m-lines may publish (decided once it is applied).
    may_publish: bool,
}

/// Where a track the PeerConnection started receiving goes.
#[derive(Debug, Clone)]
pub enum TrackRoute {
    /// Its m-line is published: read it.
    Read(Arc<PublishedTrack>),
    /// An m-line the server refused: its media is never read.
    Ignore,
    /// Not published yet: keep it until it is.
    Hold,
}

/// Candidates kept for a remote description that has not arrived yet.
const MAX_PENDING_CANDIDATES: usize = 64;

pub struct SessionCore {
    id: String,
    room: Arc<Room>,
    negotiator: Negotiator,
    peer: PeerModel,
    /// The transceiver each received track (by id) is sent on.
    subscriptions: HashMap<String, TransceiverId>,
    /// The reconciliation under way removed subscriptions: an offer is due.
    removed_subscriptions: bool,
    /// This participant's published m-lines, by mid.
    published: HashMap<String, Arc<PublishedTrack>>,
    offer: Option<ClientOffer>,
    pending_candidates: Vec<IceCandidate>,
    /// Set while the client's latest offer was ignored: its candidates are dropped until the
    /// client's next description (its answer or a new offer) is applied.
    ignoring_candidates: bool,
    quality: HashMap<String, Quality>,
    /// A server offer is owed even if the subscriptions did not change (a demotion made the
    /// client's sending m-lines inactive).
    offer_owed: bool,
    /// The server's offer waiting for the client's answer, to send again after a resume.
    outstanding_offer: Option<String>,
    /// Set while parked (no connection): when the session leaves unless resumed.
    parked_until: Option<Instant>,
    /// Set once this connection was asked to go (an unanswered offer), until a resume.
    resume_asked: bool,
    /// The client only publishes (WHIP): it is never subscribed nor sent an offer.
    publish_only: bool,
    /// The client only watches (WHEP): see [`view`].
    view: Option<view::View>,
    limits: ParticipantLimits,
    /// Remote candidates taken so far (applied or kept for a remote description).
    candidates: usize,
    /// This participant's chat messages (started by its first).
    chat: Option<TokenBucket>,
    out: Vec<Output>,
}

impl SessionCore {
    pub fn new(id: String, room: Arc<Room>, limits: ParticipantLimits) -> SessionCore {
        SessionCore {
            id,
            room,
            negotiator: Negotiator::default(),
            peer: PeerModel::default(),
            subscriptions: HashMap::new(),
            removed_subscriptions: false,
            published: HashMap::new(),
            offer: None,
            pending_candidates: Vec::new(),
            ignoring_candidates: false,
            quality: HashMap::new(),
            offer_owed: false,
            outstanding_offer: None,
            parked_until: None,
            resume_asked: false,
            publish_only: false,
            view: None,
            limits,
            candidates: 0,
            chat: None,
            out: Vec::new(),
        }
    }

    /// The client receives nothing and takes no offers from the server (a WHIP encoder).
    pub fn publish_only(&mut self) {
        self.publish_only = true;
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }

    /// This participant's published tracks.
    pub fn published(&self) -> impl Iterator<Item = &Arc<PublishedTrack>> {
        self.published.values()
    }

    /// The next time [`Input::Tick`] is due: a negotiation grant, an offer's answer, the
    /// hold for the connection, a parking running out, or a viewer's next look at the
    /// speakers.
    pub fn next_deadline(&self) -> Option<Instant> {
        let connected = self.parked_until.is_none() && !self.resume_asked;
        [
            self.negotiator.grant_deadline(),
            self.negotiator.answer_deadline().filter(|_| connected),
            self.negotiator.connect_hold_deadline(),
            self.parked_until,
            self.view.as_ref().and_then(|v| v.next_check),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Handles one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        match input {
            Input::Client(msg) => self.on_client(msg, now),
            Input::Peer(event) => self.on_peer(event, now),
            Input::Room(RoomEvent::Resubscribe) => self.renegotiate(now),
            Input::Room(RoomEvent::Order(order)) => self.on_order(order, now),
            Input::Tick => self.on_tick(now),
            Input::Done(done, transceivers) => {
                self.peer.update(transceivers);
                self.on_done(done, now);
            }
        }
        std::mem::take(&mut self.out)
    }

    fn send(&mut self, msg: ServerMessage) {
        self.out.push(Output::Send(msg));
    }

    fn error(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.send(ServerMessage::error(code, message));
    }

    fn order(&mut self, command: Command) {
        self.out.push(Output::Do(command));
    }

    fn end(&mut self, end: SessionEnd) {
        self.out.push(Output::End(end));
    }

    fn on_client(&mut self, msg: ClientMessage, now: Instant) {
        match msg {
            ClientMessage::Offer { sdp, tracks } => self.on_offer(sdp, tracks),
            ClientMessage::Answer { sdp } => self.on_answer(sdp),
            ClientMessage::Candidate { candidate } => self.on_candidate(candidate),
            ClientMessage::NegotiateRequest => self.on_negotiate_request(now),
            ClientMessage::SetQuality { track_id, quality } => {
                self.on_set_quality(track_id, quality)
            }
            ClientMessage::Chat { text } => self.on_chat(text, now),
            ClientMessage::Mute { track_id, muted } => self.on_mute(track_id, muted),
            ClientMessage::MuteParticipant {
                participant_id,
                kind,
                muted,
            } => self.on_mute_participant(participant_id, kind, muted),
            ClientMessage::Kick { participant_id } => self.on_kick(participant_id),
            ClientMessage::SetRole {
                participant_id,
                role,
            } => self.on_set_role(participant_id, role),
            ClientMessage::LockRoom => self.on_lock_room(true),
            ClientMessage::UnlockRoom => self.on_lock_room(false),
            ClientMessage::EndRoom => self.on_end_room(),
            ClientMessage::Leave => self.end(SessionEnd::Normal),
            ClientMessage::Join { .. } | ClientMessage::Resume { .. } => self.error(
                ErrorCode::AlreadyJoined,
                "this connection has joined already",
            ),
        }
    }

    fn on_done(&mut self, done: Done, now: Instant) {
        match done {
            Done::OfferApplied(result) => self.on_offer_applied(result, now),
            Done::AnswerCreated(result) => self.on_answer_created(result, now),
            Done::AnswerApplied(result) => self.on_answer_applied(result, now),
            Done::OfferCreated(result) => self.on_offer_created(result, now),
            Done::Published(built) => self.on_published(built, now),
            Done::Subscribed(added) => self.on_subscribed(added),
            Done::Muted {
                track_id,
                muted,
                changed,
            } => self.on_muted(track_id, muted, changed),
            Done::MutedParticipant {
                participant_id,
                found,
            } => self.on_muted_participant(participant_id, found),
        }
    }

    fn on_peer(&mut self, event: PeerEvent, now: Instant) {
        match event {
            PeerEvent::Candidate(candidate) => self.send(ServerMessage::Candidate { candidate }),
            PeerEvent::State(state) => {
                tracing::debug!(participant = %self.id, ?state, "connection state");
                if state == RTCPeerConnectionState::Connected {
                    self.order(Command::Connect);
                    if self.negotiator.connected() {
                        self.renegotiate(now);
                    }
                }
                if matches!(
                    state,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                ) {
                    tracing::info!(participant = %self.id, ?state, "media connection lost");
                    self.end(SessionEnd::MediaFailed);
                }
            }
        }
    }

    fn on_order(&mut self, order: Order, now: Instant) {
        match order {
            Order::Kicked => {
                self.error(ErrorCode::Kicked, "a host removed you from the room");
                self.end(SessionEnd::Normal);
            }
            Order::Ended => self.end(SessionEnd::Normal),
            Order::RoleChanged(role) => self.on_role_changed(role, now),
        }
    }

    fn on_tick(&mut self, now: Instant) {
        if self.parked_until.is_some_and(|until| now >= until) {
            tracing::info!(room = %self.room.name, participant = %self.id, "not resumed in time");
            self.end(SessionEnd::Normal);
            return;
        }
        if self.parked_until.is_none() && !self.resume_asked && self.negotiator.answer_overdue(now)
        {
            // The client applied it and failed to answer, or never read it: either way every
            // later change waits behind it. A resume sends it again on a new connection.
            tracing::warn!(
                room = %self.room.name,
                participant = %self.id,
                timeout_s = ANSWER_TIMEOUT.as_secs(),
                "the client did not answer the server's offer; asking it to resume"
            );
            self.resume_asked = true;
            self.out.push(Output::AskToResume);
            return;
        }
        self.renegotiate(now);
    }

    /// The connection went away: the session stays in the room (its media flowing, its
    /// messages going nowhere, no offers) for `grace`, then leaves unless resumed.
    pub fn park(&mut self, now: Instant, grace: Duration) {
        tracing::info!(room = %self.room.name, participant = %self.id, ?grace, "connection lost; waiting for resume");
        self.parked_until = Some(now + grace);
    }

    pub fn is_parked(&self) -> bool {
        self.parked_until.is_some()
    }

    /// The session continues on a new connection, which may have missed the server's
    /// outstanding offer: it goes out again. Otherwise whatever changed while the session
    /// was parked is offered now.
    pub fn resume(&mut self, now: Instant) -> Vec<Output> {
        self.parked_until = None;
        self.resume_asked = false;
        tracing::info!(room = %self.room.name, participant = %self.id, "resumed");
        match self.outstanding_offer.clone() {
            Some(sdp) if self.negotiator.server_offer_pending() => {
                self.negotiator.offer_sent(now);
                self.send(ServerMessage::Offer { sdp })
            }
            _ => self.renegotiate(now),
        }
        std::mem::take(&mut self.out)
    }

    /// Where media arriving on the m-line `mid` goes.
    pub fn route_track(&self, mid: &str) -> TrackRoute {
        match self.published.get(mid) {
            Some(track) => TrackRoute::Read(Arc::clone(track)),
            None if self.peer.is_refused(mid) => TrackRoute::Ignore,
            None => TrackRoute::Hold,
        }
    }
}
