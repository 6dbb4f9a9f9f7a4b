//! One client's WebSocket session: the `join` handshake, then one task that owns the
//! participant's PeerConnection and handles, in order, the client's messages, the
//! connection's events and the room's changes. Owning everything in one task means
//! negotiation steps never interleave and need no locks.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use roomcast_protocol::{
    decode_client_message, ClientMessage, ErrorCode, IceCandidate, PublishedMid, Quality, Role,
    ServerMessage, Track, TrackSource,
};
use tokio::sync::{mpsc, Notify};
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
use super::sdp_media::media_sections;
use crate::media::down_track::DownTrack;
use crate::media::layer_selector::MAX_LAYERS;
use crate::media::published_track::{order_rids, PublishedTrack};
use crate::media::subscriber_rtcp;
use crate::peer::Peer;
use crate::room::{JoinRefused, Member, Room};
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
}

/// Runs one client's session until it leaves, drops, or must be cut off.
pub async fn run_session(
    sfu: Arc<Sfu>,
    mut inbound: mpsc::Receiver<Inbound>,
    outbox: Outbox,
) -> SessionEnd {
    let mut joined: Option<Joined> = None;
    let end = loop {
        let Some(state) = joined.as_mut() else {
            tokio::select! {
                _ = outbox.kick.cancelled() => break SessionEnd::Abuse,
                frame = inbound.recv() => match frame {
                    None => break SessionEnd::Normal,
                    Some(Inbound::TooLarge) => break too_large(&outbox),
                    Some(Inbound::Text(text)) => match decode_client_message(&text) {
                        Err(e) => outbox.send(ServerMessage::error(e.code(), e.message)),
                        Ok(ClientMessage::Join { room, name, role, token }) => {
                            let asked = Instant::now();
                            joined = join(&sfu, &outbox, room, name, role, token).await;
                            if joined.is_some() {
                                sfu.metrics.observe_join(asked.elapsed());
                            }
                        }
                        Ok(ClientMessage::Leave) => break SessionEnd::Normal,
                        Ok(_) => outbox.send(ServerMessage::error(ErrorCode::NotJoined, "send join first")),
                    },
                },
            }
            continue;
        };
        let grant_deadline = state.negotiator.grant_deadline();
        tokio::select! {
            _ = outbox.kick.cancelled() => break SessionEnd::Abuse,
            frame = inbound.recv() => match frame {
                None => break SessionEnd::Normal,
                Some(Inbound::TooLarge) => break too_large(&outbox),
                Some(Inbound::Text(text)) => match decode_client_message(&text) {
                    Err(e) => outbox.send(ServerMessage::error(e.code(), e.message)),
                    Ok(ClientMessage::Leave) => break SessionEnd::Normal,
                    Ok(msg) => state.handle(&outbox, msg).await,
                },
            },
            Some(event) = state.peer_events.recv() => {
                if state.on_peer_event(event, &outbox).await.is_err() {
                    break SessionEnd::MediaFailed;
                }
            }
            _ = state.resubscribe.notified() => state.renegotiate(&outbox).await,
            _ = state.layer_tick.tick() => state.on_layer_tick(&outbox),
            _ = sleep_until_opt(grant_deadline) => state.renegotiate(&outbox).await,
        }
    };
    if let Some(state) = joined {
        state.close(&sfu).await;
    }
    end
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
    sfu: &Arc<Sfu>,
    outbox: &Outbox,
    room: String,
    name: String,
    role: Option<Role>,
    token: Option<String>,
) -> Option<Joined> {
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
    let (name, role) = match &sfu.config.jwt_secret {
        None => (name, role.unwrap_or_default()),
        Some(secret) => {
            let now = crate::auth::unix_now();
            match crate::auth::verify_join(secret, token.as_deref(), &room, &name, role, now) {
                Ok(grant) => (grant.name, grant.role),
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
    let member = Member {
        id: id.clone(),
        name: name.clone(),
        role,
        outbox: outbox.clone(),
        resubscribe: Arc::clone(&resubscribe),
        tracks: Vec::new(),
    };
    let (room, participants) = match sfu.join(&room, member) {
        Ok(joined) => joined,
        Err(JoinRefused::Full) => {
            let _ = peer.pc.close().await;
            outbox.send(ServerMessage::error(
                ErrorCode::RoomFull,
                "the room is full",
            ));
            return None;
        }
    };
    let peer_events = watch_peer(&peer);
    tracing::info!(room = %room.name, participant = %id, %name, "joined");
    outbox.send(ServerMessage::Joined {
        participant_id: id.clone(),
        room: room.name.clone(),
        participants,
        ice_servers: sfu.config.ice_servers.clone(),
    });
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
    async fn handle(&mut self, outbox: &Outbox, msg: ClientMessage) {
        match msg {
            ClientMessage::Join { .. } => outbox.send(ServerMessage::error(
                ErrorCode::AlreadyJoined,
                "this connection has joined already",
            )),
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
        self.update_publications(&sections, &tracks).await;
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

    /// Brings the subscriptions in line with the room and offers the change, when the
    /// negotiation rules allow an offer now. Otherwise it runs again once they do.
    async fn renegotiate(&mut self, outbox: &Outbox) {
        if !self.negotiator.may_offer(Instant::now()) {
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
        if changed {
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
    async fn close(self, sfu: &Sfu) {
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
