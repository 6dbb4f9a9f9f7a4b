//! The session's I/O half: it owns the participant's RTCPeerConnection and the media
//! objects (down tracks, readers, RTCP tasks), applies the core's [`Command`]s to them and
//! reports their outcome with the transceivers as they are after it. It also does the
//! periodic layer work (dynacast and bandwidth allocation, see
//! [`crate::media::layer_control`]), which needs the media objects and nothing of the core's.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use roomcast_protocol::{ErrorCode, IceCandidate, Track, TrackKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCRtpTransceiver, RTCRtpTransceiverInit};
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_remote::TrackRemote;

use super::core::{Command, Done, NewTrack, Subscribe, TrackRoute, Transceiver, TransceiverId};
use crate::media::down_track::DownTrack;
use crate::media::layer_control::{self, LayerControl};
use crate::media::layer_selector::MAX_LAYERS;
use crate::media::published_track::{rtp_kind_of, PublishedTrack};
use crate::media::subscriber_rtcp;
use crate::peer::Peer;
use crate::room::Room;
use crate::sfu::Sfu;
use crate::signaling::outbox::Outbox;
use crate::untrusted::Untrusted;

/// What the PeerConnection's callbacks report.
pub(super) enum PeerEvent {
    Track(Arc<TrackRemote>, String),
    Candidate(Option<IceCandidate>),
    State(RTCPeerConnectionState),
}

/// What sending one track to this subscriber takes.
struct Subscription {
    track: Arc<PublishedTrack>,
    down: Arc<DownTrack>,
    sender: Arc<RTCRtpSender>,
    rtcp: JoinHandle<()>,
}

/// A viewer's receiver (WHEP): one sender whose track is replaced when the source changes.
struct ViewSlot {
    sender: Arc<RTCRtpSender>,
    /// What is on the sender now: a copy of `track`, or a placeholder while there is none.
    down: Arc<DownTrack>,
    track: Option<Arc<PublishedTrack>>,
    rtcp: Option<JoinHandle<()>>,
}

impl ViewSlot {
    /// Stops feeding and reading the current source.
    fn detach(&mut self) {
        if let Some(track) = self.track.take() {
            track.remove_down_track(&self.down);
        }
        if let Some(rtcp) = self.rtcp.take() {
            rtcp.abort();
        }
    }
}

pub(super) struct Shell {
    participant_id: String,
    room: Arc<Room>,
    sfu: Arc<Sfu>,
    peer: Peer,
    pub events: mpsc::UnboundedReceiver<PeerEvent>,
    /// By track id.
    subscriptions: HashMap<String, Subscription>,
    /// A viewer's receivers, by transceiver.
    views: HashMap<TransceiverId, ViewSlot>,
    /// Tracks whose RTP arrived before the answer that publishes them was done, by mid.
    early_tracks: HashMap<String, Vec<Arc<TrackRemote>>>,
    readers: Vec<JoinHandle<()>>,
    layers: LayerControl,
    pub layer_tick: tokio::time::Interval,
    /// Share the subscriber's estimated bandwidth among its tracks (see
    /// [`crate::SfuConfig::congestion_control`]).
    congestion_control: bool,
    /// The owner closes the PeerConnection itself (see [`Shell::close_here`]).
    closed_by_owner: bool,
}

/// A transceiver's [`TransceiverId`]: its address, stable while the connection holds it.
fn id_of(t: &Arc<RTCRtpTransceiver>) -> TransceiverId {
    Arc::as_ptr(t) as usize
}

impl Shell {
    pub fn new(participant_id: String, room: Arc<Room>, sfu: Arc<Sfu>, peer: Peer) -> Shell {
        let congestion_control = sfu.config.congestion_control;
        let events = watch_peer(&peer);
        // In phase with every other session's (one wake-up for all).
        let layer_tick = crate::ticks::in_phase(layer_control::INTERVAL);
        Shell {
            participant_id,
            room,
            sfu,
            peer,
            events,
            subscriptions: HashMap::new(),
            views: HashMap::new(),
            early_tracks: HashMap::new(),
            readers: Vec::new(),
            layers: LayerControl::default(),
            layer_tick,
            congestion_control,
            closed_by_owner: false,
        }
    }

    /// Applies one command; returns its outcome for the core, if it has one.
    pub async fn apply(&mut self, command: Command) -> Option<Done> {
        let pc = &self.peer.pc;
        match command {
            Command::ApplyOffer(sdp) => {
                let offer = RTCSessionDescription::offer(sdp);
                return Some(Done::OfferApplied(self.apply_remote(offer, "offer").await));
            }
            Command::CreateAnswer => {
                let cannot = |e: webrtc::Error| (ErrorCode::BadSdp, format!("cannot answer: {e}"));
                let answered = async {
                    let answer = pc.create_answer(None).await.map_err(cannot)?;
                    pc.set_local_description(answer).await.map_err(cannot)?;
                    pc.local_description()
                        .await
                        .map(|d| d.sdp)
                        .ok_or((ErrorCode::InternalError, "no local description".to_owned()))
                }
                .await;
                return Some(Done::AnswerCreated(answered));
            }
            Command::ApplyAnswer(sdp) => {
                let answer = RTCSessionDescription::answer(sdp);
                let applied = self.apply_remote(answer, "answer").await;
                if applied.is_ok() {
                    // The answer to the offer that declared every subscription made so far
                    // (the core offers each one it adds): they may send now.
                    for sub in self.subscriptions.values() {
                        sub.down.activate();
                    }
                }
                return Some(Done::AnswerApplied(applied));
            }
            Command::CreateOffer => {
                let offered = async {
                    let offer = pc.create_offer(None).await?;
                    pc.set_local_description(offer).await?;
                    pc.local_description()
                        .await
                        .map(|d| d.sdp)
                        .ok_or(webrtc::Error::ErrNoRemoteDescription)
                }
                .await;
                return Some(Done::OfferCreated(offered.map_err(|e| e.to_string())));
            }
            Command::AddCandidates(candidates) => {
                for c in candidates {
                    let init = RTCIceCandidateInit {
                        candidate: c.candidate,
                        sdp_mid: c.sdp_mid,
                        sdp_mline_index: c.sdp_mline_index,
                        username_fragment: c.username_fragment,
                    };
                    if let Err(e) = pc.add_ice_candidate(init).await {
                        tracing::debug!(participant = %self.participant_id, error = %Untrusted(&e), "candidate not applied");
                    }
                }
            }
            Command::SetDirection(id, direction) => {
                if let Some(t) = self.transceiver(id).await {
                    t.set_direction(direction).await;
                }
            }
            Command::Publish(new) => {
                let mut built = Vec::with_capacity(new.len());
                let mids: Vec<&str> = new.iter().map(|t| t.mid.as_str()).collect();
                let mut codecs = self.peer.receive_codecs(&mids).await;
                for track in new {
                    let codec = codecs
                        .remove(&track.mid)
                        .and_then(|list| list.into_iter().next());
                    let published = codec.map(|codec| self.build_track(&track, codec));
                    built.push((track, published));
                }
                return Some(Done::Published(built));
            }
            Command::Receive(track) => {
                for remote in self.early_tracks.remove(&track.mid).unwrap_or_default() {
                    self.start_reader(&track, remote);
                }
            }
            Command::DropEarlyTracks => self.early_tracks.clear(),
            Command::Subscribe { remove, add } => {
                for id in remove {
                    self.unsubscribe(&id).await;
                }
                let mut added = Vec::with_capacity(add.len());
                for sub in add {
                    let track_id = sub.track.info.id.clone();
                    match self.subscribe(sub).await {
                        Ok(transceiver) => added.push((track_id, transceiver)),
                        Err(e) => {
                            tracing::warn!(participant = %self.participant_id, %track_id, error = %e, "cannot subscribe")
                        }
                    }
                }
                return Some(Done::Subscribed(added));
            }
            Command::SetQuality { track_id, layer } => {
                if let Some(sub) = self.subscriptions.get(&track_id) {
                    sub.down.set_requested(layer);
                }
            }
            Command::Mute { track, muted } => {
                let changed = track.set_muted(muted).await;
                return Some(Done::Muted {
                    track_id: track.info.id.clone(),
                    muted,
                    changed,
                });
            }
            Command::MuteParticipant {
                participant_id,
                kind,
                muted,
            } => {
                let found = self
                    .room
                    .mute_participant(&participant_id, Some(kind), muted)
                    .await
                    .is_ok();
                return Some(Done::MutedParticipant {
                    participant_id,
                    found,
                });
            }
            Command::EndRoom => {
                self.sfu.end_room(&self.room);
            }
            Command::View {
                transceiver,
                kind,
                track,
            } => {
                if let Err(e) = self.view(transceiver, kind, track).await {
                    tracing::warn!(participant = %self.participant_id, error = %e, "cannot switch the viewer's source");
                }
            }
            Command::Connect => {
                if let Err(e) = self.peer.egress.connect(pc).await {
                    tracing::warn!(participant = %self.participant_id, error = %e, "cannot send media to this participant");
                }
                self.peer.feedback.connect(pc).await;
            }
        }
        None
    }

    /// The connection's send path as a subscriber.
    pub fn egress(&self) -> Arc<crate::egress::Egress> {
        Arc::clone(&self.peer.egress)
    }

    /// Applies the client's description (`what`: offer or answer); `Err` says why not.
    async fn apply_remote(
        &self,
        description: Result<RTCSessionDescription, webrtc::Error>,
        what: &str,
    ) -> Result<(), String> {
        let description = description.map_err(|e| e.to_string())?;
        self.peer
            .pc
            .set_remote_description(description)
            .await
            .map_err(|e| format!("cannot apply the {what}: {e}"))
    }

    /// The connection's transceivers, as the core sees them.
    pub async fn transceivers(&self) -> Vec<Transceiver> {
        let mut seen = Vec::new();
        for t in self.peer.pc.get_transceivers().await {
            seen.push(Transceiver {
                id: id_of(&t),
                mid: t.mid().map(|m| m.to_string()),
                kind: t.kind(),
                direction: t.direction(),
                current_direction: t.current_direction(),
                sending: t.sender().await.track().await.is_some(),
            });
        }
        seen
    }

    async fn transceiver(&self, id: TransceiverId) -> Option<Arc<RTCRtpTransceiver>> {
        self.peer
            .pc
            .get_transceivers()
            .await
            .into_iter()
            .find(|t| id_of(t) == id)
    }

    /// The published track for one of the client's m-lines, on `codec` (the one the client
    /// sends first).
    fn build_track(&self, new: &NewTrack, codec: RTCRtpCodecParameters) -> Arc<PublishedTrack> {
        let info = Track {
            id: self.room.next_track_id(),
            kind: new.kind,
            source: new.source,
            simulcast: !new.rids.is_empty(),
            muted: false,
        };
        Arc::new(PublishedTrack::new(
            info,
            self.participant_id.clone(),
            new.mid.clone(),
            codec,
            &new.rids,
            Arc::downgrade(&self.peer.pc),
        ))
    }

    async fn subscribe(&mut self, sub: Subscribe) -> Result<TransceiverId, webrtc::Error> {
        let track = sub.track;
        let down = track.new_down_track(Arc::clone(&self.peer.egress));
        if let Some(layer) = sub.requested {
            down.set_requested(layer);
        }
        let as_local: Arc<dyn TrackLocal + Send + Sync> = Arc::clone(&down) as _;
        let reused = match sub.reuse {
            Some(id) => self.transceiver(id).await,
            None => None,
        };
        let (transceiver, sender) = match reused {
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
        self.peer.feedback.ingress().subscribe(&track, &down);
        let rtcp = tokio::spawn(subscriber_rtcp::run(
            Arc::clone(&sender),
            Arc::clone(&track),
            Arc::clone(&down),
        ));
        self.subscriptions.insert(
            track.info.id.clone(),
            Subscription {
                track,
                down,
                sender,
                rtcp,
            },
        );
        Ok(id_of(&transceiver))
    }

    /// Puts `track` (or a placeholder) on a viewer's receiver. The first time, the sender is
    /// set before the answer, which starts it; after that the track is replaced on the
    /// running sender (same SSRC) and continues its predecessor's numbering, so the client
    /// sees one stream. The new source starts at a keyframe, which forwarding asks for.
    async fn view(
        &mut self,
        transceiver: TransceiverId,
        kind: TrackKind,
        track: Option<Arc<PublishedTrack>>,
    ) -> Result<(), webrtc::Error> {
        let egress = Arc::clone(&self.peer.egress);
        // A placeholder's id is its msid in the answer: one per receiver (several audio
        // receivers may start with one each, and browsers refuse duplicate msids).
        let placeholder = match (kind, self.views.len()) {
            (TrackKind::Audio, 0) => "audio".to_owned(),
            (TrackKind::Video, 0) => "video".to_owned(),
            (TrackKind::Audio, n) => format!("audio-{n}"),
            (TrackKind::Video, n) => format!("video-{n}"),
        };
        let down = match &track {
            Some(track) => track.new_down_track(egress),
            None => Arc::new(DownTrack::new(
                placeholder,
                "roomcast".to_owned(),
                rtp_kind_of(kind),
                RTCRtpCodecParameters::default(),
                1,
                egress,
            )),
        };
        let as_local: Arc<dyn TrackLocal + Send + Sync> = Arc::clone(&down) as _;
        let sender = match self.views.get_mut(&transceiver) {
            Some(slot) => {
                slot.detach();
                slot.sender.replace_track(Some(as_local)).await?;
                down.continue_from(&slot.down);
                slot.down = Arc::clone(&down);
                Arc::clone(&slot.sender)
            }
            None => {
                let t = self
                    .transceiver(transceiver)
                    .await
                    .ok_or_else(|| webrtc::Error::new("the viewer's transceiver is gone".into()))?;
                let sender = self.peer.new_sender(Arc::clone(&as_local)).await;
                t.set_sender_track(Arc::clone(&sender), Some(as_local))
                    .await?;
                self.views.insert(
                    transceiver,
                    ViewSlot {
                        sender: Arc::clone(&sender),
                        down: Arc::clone(&down),
                        track: None,
                        rtcp: None,
                    },
                );
                sender
            }
        };
        // The client has the answer by the time media can flow (DTLS needs it).
        down.activate();
        if let (Some(track), Some(slot)) = (track, self.views.get_mut(&transceiver)) {
            track.add_down_track(Arc::clone(&down));
            slot.rtcp = Some(tokio::spawn(subscriber_rtcp::run(
                sender,
                Arc::clone(&track),
                down,
            )));
            slot.track = Some(track);
        }
        Ok(())
    }

    async fn unsubscribe(&mut self, track_id: &str) {
        let Some(sub) = self.subscriptions.remove(track_id) else {
            return;
        };
        sub.track.remove_down_track(&sub.down);
        self.peer.feedback.ingress().unsubscribe(&sub.down);
        sub.rtcp.abort();
        if let Err(e) = self.peer.pc.remove_track(&sub.sender).await {
            tracing::debug!(participant = %self.participant_id, error = %e, "remove_track failed");
        }
    }

    /// Media started arriving on the client's m-line `mid`; `route` says where it goes.
    pub fn on_track(&mut self, route: TrackRoute, remote: Arc<TrackRemote>, mid: String) {
        match route {
            TrackRoute::Read(track) => self.start_reader(&track, remote),
            TrackRoute::Ignore => {
                tracing::debug!(participant = %self.participant_id, mid = %Untrusted(&mid), "media on a refused m-line; ignored");
            }
            TrackRoute::Hold => {
                let early = self.early_tracks.entry(mid).or_default();
                if early.len() < usize::from(MAX_LAYERS) {
                    early.push(remote);
                }
            }
        }
    }

    fn start_reader(&mut self, track: &Arc<PublishedTrack>, remote: Arc<TrackRemote>) {
        let Some(layer) = track.layer_of_rid(remote.rid()) else {
            tracing::info!(participant = %self.participant_id, track_id = %track.info.id, rid = %Untrusted(remote.rid()), "a layer the offer did not announce; not forwarded");
            return;
        };
        if !track.claim_reader(layer) {
            tracing::debug!(participant = %self.participant_id, track_id = %track.info.id, layer, "layer already has a reader");
            return;
        }
        let Some(input) = track.start_layer(&remote, layer) else {
            return;
        };
        // From now on the socket's fast path forwards the layer; the reader forwards what
        // webrtc-rs had queued before, and anything the fast path leaves to it.
        self.peer.feedback.ingress().register(track, input.clone());
        self.readers.retain(|r| !r.is_finished());
        self.readers
            .push(tokio::spawn(Arc::clone(track).run_reader(remote, input)));
    }

    /// Dynacast for what this participant publishes, bandwidth allocation for what it
    /// receives.
    pub fn on_layer_tick<'a>(
        &mut self,
        published: impl Iterator<Item = &'a Arc<PublishedTrack>>,
        outbox: &Outbox,
    ) {
        self.layers
            .publisher_tick(Instant::now(), published, outbox);
        self.allocate(outbox);
    }

    /// Bandwidth allocation for what this participant receives: at each layer tick, and
    /// at once when its estimate was cut.
    pub fn allocate(&mut self, outbox: &Outbox) {
        let now = Instant::now();
        let speakers = self.room.active_speakers();
        let bandwidth = &self.peer.egress.bandwidth;
        let probed = self.layers.subscriber_tick(
            now,
            self.subscriptions
                .values()
                .map(|s| (&s.track, &s.down))
                .chain(
                    self.views
                        .values()
                        .filter_map(|v| v.track.as_ref().map(|t| (t, &v.down))),
                ),
            &speakers,
            bandwidth.estimate().filter(|_| self.congestion_control),
            outbox,
        );
        if let Some(outcome) = probed {
            bandwidth.on_probe(outcome);
        }
    }

    /// A received simulcast track changed layers: says which, now (`track_layer`).
    pub fn on_layer_switched(&mut self, outbox: &Outbox) {
        self.layers.tell_layers(
            self.subscriptions
                .values()
                .map(|s| (&s.track, &s.down))
                .chain(
                    self.views
                        .values()
                        .filter_map(|v| v.track.as_ref().map(|t| (t, &v.down))),
                ),
            outbox,
        );
    }

    /// When a bandwidth probe's padding is due next, if one pads.
    pub fn next_padding(&self) -> Option<Instant> {
        self.layers.next_padding()
    }

    /// Sends a bandwidth probe's padding.
    pub fn on_padding_tick(&mut self) {
        let downs = self.subscriptions.values().map(|s| &s.down);
        self.layers.send_padding(Instant::now(), downs);
    }

    /// The PeerConnection, for the caller to close and wait for; dropping the shell then
    /// frees the rest without closing it again.
    pub fn close_here(&mut self) -> Arc<RTCPeerConnection> {
        self.closed_by_owner = true;
        Arc::clone(&self.peer.pc)
    }

    /// A failed connection says which layer gave up: ICE (the peer went silent past the
    /// disconnected and failed timeouts) or DTLS (the handshake failed).
    pub fn on_connection_state(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Failed {
            tracing::info!(
                participant = %self.participant_id,
                ice = %self.peer.pc.ice_connection_state(),
                dtls = %self.peer.pc.sctp().transport().state(),
                "connection failed"
            );
        }
    }
}

/// Frees the media objects however the session ends, a panic included: subscriptions, tasks,
/// the send path, and (unless [`Shell::close_here`] was asked) the PeerConnection, closed in
/// a task of its own.
impl Drop for Shell {
    fn drop(&mut self) {
        for (_, sub) in self.subscriptions.drain() {
            sub.track.remove_down_track(&sub.down);
            sub.rtcp.abort();
        }
        for (_, mut slot) in self.views.drain() {
            slot.detach();
        }
        for reader in self.readers.drain(..) {
            reader.abort();
        }
        self.peer.egress.disconnect();
        self.peer.feedback.stop();
        if self.closed_by_owner {
            return;
        }
        let pc = Arc::clone(&self.peer.pc);
        let participant = std::mem::take(&mut self.participant_id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = pc.close().await {
                    tracing::debug!(%participant, error = %e, "closing the connection");
                }
            });
        }
    }
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
