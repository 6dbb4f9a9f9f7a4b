//! The one task that owns a bot's PeerConnection signaling. Server messages and local events
//! reach it through channels and are handled strictly one after the other, so the bot never
//! offers while it is answering, and every local candidate goes out after the description it
//! belongs to.
use std::collections::VecDeque;
use std::sync::Arc;

use roomcast_protocol::{ClientMessage, ErrorCode, IceCandidate, PublishedMid, ServerMessage};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn, Instrument, Span};
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::signaling_state::RTCSignalingState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCRtpTransceiver, RTCRtpTransceiverInit};

use crate::negotiation::{Negotiation, Phase, Step};
use crate::peer_connection;
use crate::publisher::{NegotiatedTrack, OutgoingTrack};
use crate::roster::Roster;
use crate::signaling::Signaling;
use crate::subscriber_stats::Subscriptions;
use crate::BotError;

/// Remote candidates kept while no remote description exists; more are dropped.
const MAX_EARLY_CANDIDATES: usize = 64;

pub(crate) type PublishResult = Result<Vec<NegotiatedTrack>, BotError>;

pub(crate) enum Command {
    /// Offer these tracks under the negotiation lock; `done` gets them back once answered.
    Publish {
        tracks: Vec<OutgoingTrack>,
        /// Offer with new ICE credentials (an ICE restart); `tracks` may be empty then.
        ice_restart: bool,
        done: oneshot::Sender<PublishResult>,
    },
    /// From `on_ice_candidate`; `None` is the end of gathering.
    LocalCandidate(Option<RTCIceCandidate>),
}

struct PublishJob {
    tracks: Vec<OutgoingTrack>,
    ice_restart: bool,
    done: oneshot::Sender<PublishResult>,
}

impl PublishJob {
    fn fail(self, error: BotError) {
        // The requester may have given up (timed out); nothing to tell then.
        let _ = self.done.send(Err(error));
    }
}

/// A publish whose offer is out, with the transceivers it added.
struct Offered {
    job: PublishJob,
    transceivers: Vec<Arc<RTCRtpTransceiver>>,
}

pub(crate) struct Session {
    pc: Arc<RTCPeerConnection>,
    signaling: Arc<Signaling>,
    subscriptions: Arc<Subscriptions>,
    /// What the room lists, kept from the messages.
    roster: Arc<Roster>,
    negotiation: Negotiation,
    /// Publishes not offered yet; the front one is what a pending grant is for.
    queue: VecDeque<PublishJob>,
    offered: Option<Offered>,
    early_candidates: Vec<RTCIceCandidateInit>,
    /// The server is on this machine: only its loopback candidates are used (see
    /// [`peer_connection::is_loopback_candidate`]).
    loopback_only: bool,
    /// [`crate::BotConfig::unanswered_server_offers`] still to leave unanswered.
    unanswered_offers: u32,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn(
        pc: Arc<RTCPeerConnection>,
        signaling: Arc<Signaling>,
        subscriptions: Arc<Subscriptions>,
        roster: Arc<Roster>,
        inbox: mpsc::Receiver<ServerMessage>,
        commands: mpsc::Receiver<Command>,
        unanswered_offers: u32,
        span: Span,
    ) -> JoinHandle<()> {
        let loopback_only = peer_connection::is_loopback_url(signaling.url());
        let session = Session {
            pc,
            signaling,
            subscriptions,
            roster,
            negotiation: Negotiation::new(),
            queue: VecDeque::new(),
            offered: None,
            early_candidates: Vec::new(),
            loopback_only,
            unanswered_offers,
        };
        tokio::spawn(session.run(inbox, commands).instrument(span))
    }

    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<ServerMessage>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        loop {
            tokio::select! {
                biased;
                message = inbox.recv() => match message {
                    Some(message) => self.on_server_message(message).await,
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
            }
        }
        debug!("session ended");
        // Dropping the jobs tells their requesters the connection is gone.
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish {
                tracks,
                ice_restart,
                done,
            } => {
                self.queue.push_back(PublishJob {
                    tracks,
                    ice_restart,
                    done,
                });
                self.start_next_publish().await;
            }
            Command::LocalCandidate(candidate) => self.send_local_candidate(candidate).await,
        }
    }

    async fn on_server_message(&mut self, message: ServerMessage) {
        self.roster.on_message(&message);
        match message {
            ServerMessage::Offer { .. } if self.unanswered_offers > 0 => {
                self.unanswered_offers -= 1;
                debug!("leaving the server's offer unanswered (fault injection)");
            }
            ServerMessage::Offer { sdp } => match self.negotiation.remote_offer() {
                Step::AnswerRemoteOffer => {
                    if let Err(e) = self.answer(sdp).await {
                        // An offer that crosses the bot's own leave (others leaving at the
                        // same time) finds it closed: no news.
                        if self.is_closed(&e) {
                            debug!(error = %e, "not answering the server's offer: closed");
                        } else {
                            warn!(error = %e, "cannot answer the server's offer");
                        }
                    }
                }
                step => self.contract_broken(step),
            },
            ServerMessage::Answer { sdp } => match self.negotiation.remote_answer() {
                Step::ApplyAnswer => self.apply_answer(sdp).await,
                step => self.contract_broken(step),
            },
            ServerMessage::NegotiateGrant => match self.negotiation.grant() {
                Step::SendOffer => self.send_offer().await,
                step => self.contract_broken(step),
            },
            ServerMessage::Candidate { candidate } => self.add_remote_candidate(candidate).await,
            ServerMessage::Error { code, message } => self.on_error(code, message).await,
            ServerMessage::TrackUnpublished {
                participant_id,
                track_id,
            } => self
                .subscriptions
                .mark_ended(&participant_id, Some(&track_id)),
            ServerMessage::ParticipantLeft { participant_id } => {
                self.subscriptions.mark_ended(&participant_id, None)
            }
            _ => {}
        }
    }

    /// An `error` while a publish is in flight is the server refusing it.
    async fn on_error(&mut self, code: ErrorCode, message: String) {
        if self.negotiation.error() != Step::FailPublish {
            return;
        }
        let refusal = BotError::Refused { code, message };
        if let Some(offered) = self.offered.take() {
            offered.job.fail(refusal);
        } else if let Some(job) = self.queue.pop_front() {
            job.fail(refusal);
        }
        self.start_next_publish().await;
    }

    fn contract_broken(&self, step: Step) {
        if let Step::Ignore(what) = step {
            warn!(phase = ?self.negotiation.phase(), "ignoring {what}");
        }
    }

    async fn start_next_publish(&mut self) {
        if self.negotiation.phase() == Phase::Wedged {
            for job in self.queue.drain(..) {
                job.fail(BotError::Protocol(
                    "an earlier offer was refused and webrtc-rs cannot roll it back".into(),
                ));
            }
            return;
        }
        if self.queue.is_empty() || !self.negotiation.request_lock() {
            return;
        }
        if let Err(e) = self.signaling.send(&ClientMessage::NegotiateRequest).await {
            self.negotiation.offer_abandoned(false);
            if let Some(job) = self.queue.pop_front() {
                job.fail(e);
            }
        }
    }

    async fn send_offer(&mut self) {
        let Some(job) = self.queue.pop_front() else {
            self.negotiation.offer_abandoned(false);
            return;
        };
        match self.offer(&job.tracks, job.ice_restart).await {
            Ok(transceivers) => self.offered = Some(Offered { job, transceivers }),
            Err(e) => {
                let local_offer_set =
                    self.pc.signaling_state() == RTCSignalingState::HaveLocalOffer;
                self.negotiation.offer_abandoned(local_offer_set);
                job.fail(e);
                self.start_next_publish().await;
            }
        }
    }

    async fn offer(
        &self,
        tracks: &[OutgoingTrack],
        ice_restart: bool,
    ) -> Result<Vec<Arc<RTCRtpTransceiver>>, BotError> {
        let mut transceivers = Vec::with_capacity(tracks.len());
        for outgoing in tracks {
            let mut layers = outgoing.layers.iter();
            let first = layers
                .next()
                .ok_or_else(|| BotError::Protocol("a track without encodings".into()))?;
            let transceiver = self
                .pc
                .add_transceiver_from_track(
                    Arc::clone(&first.track) as _,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        send_encodings: vec![],
                    }),
                )
                .await?;
            // Simulcast: the other layers become further encodings of the same sender,
            // which makes the offer list them in `a=rid` and `a=simulcast:send`.
            let sender = transceiver.sender().await;
            for layer in layers {
                sender.add_encoding(Arc::clone(&layer.track) as _).await?;
            }
            transceiver
                .set_codec_preferences(crate::peer_connection::codec_preferences(&outgoing.codec))
                .await?;
            transceivers.push(transceiver);
        }
        let options = ice_restart.then(|| RTCOfferOptions {
            ice_restart: true,
            ..Default::default()
        });
        let offer = self.pc.create_offer(options).await?;
        self.pc.set_local_description(offer).await?;
        let sdp = self.local_sdp().await?;
        let published = tracks
            .iter()
            .zip(&transceivers)
            .map(|(outgoing, transceiver)| {
                let mid = transceiver
                    .mid()
                    .ok_or_else(|| BotError::Protocol("offered transceiver without mid".into()))?;
                Ok(PublishedMid {
                    mid: mid.to_string(),
                    source: outgoing.source,
                })
            })
            .collect::<Result<Vec<_>, BotError>>()?;
        debug!(tracks = ?published, "offering");
        self.signaling
            .send(&ClientMessage::Offer {
                sdp,
                tracks: published,
            })
            .await?;
        Ok(transceivers)
    }

    async fn apply_answer(&mut self, sdp: String) {
        let Some(Offered { job, transceivers }) = self.offered.take() else {
            return;
        };
        let applied = match RTCSessionDescription::answer(self.usable_candidates(sdp)) {
            Ok(answer) => self.pc.set_remote_description(answer).await,
            Err(e) => Err(e),
        };
        match applied {
            Ok(()) => {
                self.apply_early_candidates().await;
                let mut negotiated = Vec::with_capacity(transceivers.len());
                for (outgoing, transceiver) in job.tracks.into_iter().zip(&transceivers) {
                    negotiated.push(NegotiatedTrack {
                        outgoing,
                        mid: transceiver.mid().map(|m| m.to_string()).unwrap_or_default(),
                        sender: transceiver.sender().await,
                    });
                }
                let _ = job.done.send(Ok(negotiated));
            }
            Err(e) => {
                let local_offer_set =
                    self.pc.signaling_state() == RTCSignalingState::HaveLocalOffer;
                self.negotiation.offer_abandoned(local_offer_set);
                job.fail(e.into());
            }
        }
        self.start_next_publish().await;
    }

    async fn answer(&mut self, sdp: String) -> Result<(), BotError> {
        self.pc
            .set_remote_description(RTCSessionDescription::offer(self.usable_candidates(sdp))?)
            .await?;
        self.apply_early_candidates().await;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        let sdp = self.local_sdp().await?;
        self.signaling.send(&ClientMessage::Answer { sdp }).await
    }

    /// The failure only says that the bot's connections are already closed.
    fn is_closed(&self, error: &BotError) -> bool {
        matches!(
            error,
            BotError::Closed
                | BotError::WebRtc(webrtc::Error::ErrConnectionClosed)
                // Closing tears the ICE agent down before the state reads Closed.
                | BotError::WebRtc(webrtc::Error::ErrICEAgentNotExist)
        ) || self.pc.connection_state() == RTCPeerConnectionState::Closed
    }

    async fn local_sdp(&self) -> Result<String, BotError> {
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| BotError::Protocol("no local description after setting it".into()))
    }

    async fn add_remote_candidate(&mut self, candidate: Option<IceCandidate>) {
        // webrtc-rs needs no end-of-candidates marker.
        let Some(candidate) = candidate.filter(|c| !c.is_end_of_candidates()) else {
            return;
        };
        if self.loopback_only && !peer_connection::is_loopback_candidate(&candidate.candidate) {
            debug!("not a loopback candidate: not used for a server on this machine");
            return;
        }
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
            username_fragment: candidate.username_fragment,
        };
        if self.pc.remote_description().await.is_none() {
            if self.early_candidates.len() < MAX_EARLY_CANDIDATES {
                self.early_candidates.push(init);
            } else {
                warn!("dropping a remote candidate: too many before any description");
            }
            return;
        }
        if let Err(e) = self.pc.add_ice_candidate(init).await {
            warn!(error = %e, "cannot add remote candidate");
        }
    }

    /// The server's description with only the candidates the bot may pair with.
    fn usable_candidates(&self, sdp: String) -> String {
        if self.loopback_only {
            peer_connection::keep_loopback_candidates(&sdp)
        } else {
            sdp
        }
    }

    async fn apply_early_candidates(&mut self) {
        for init in std::mem::take(&mut self.early_candidates) {
            if let Err(e) = self.pc.add_ice_candidate(init).await {
                warn!(error = %e, "cannot add buffered remote candidate");
            }
        }
    }

    async fn send_local_candidate(&self, candidate: Option<RTCIceCandidate>) {
        let candidate = match candidate.map(|c| c.to_json()).transpose() {
            Ok(None) => None,
            Ok(Some(init)) => Some(IceCandidate {
                candidate: init.candidate,
                // webrtc-rs leaves the mid empty; with BUNDLE the first m-line's is right.
                sdp_mid: self.first_local_mid().await,
                sdp_mline_index: Some(0),
                username_fragment: init.username_fragment,
            }),
            Err(e) => {
                warn!(error = %e, "cannot encode local candidate");
                return;
            }
        };
        if let Err(e) = self
            .signaling
            .send(&ClientMessage::Candidate { candidate })
            .await
        {
            debug!(error = %e, "local candidate not sent");
        }
    }

    async fn first_local_mid(&self) -> Option<String> {
        let local = self.pc.local_description().await?;
        local
            .sdp
            .lines()
            .find_map(|line| line.strip_prefix("a=mid:"))
            .map(|mid| mid.trim().to_owned())
    }
}
