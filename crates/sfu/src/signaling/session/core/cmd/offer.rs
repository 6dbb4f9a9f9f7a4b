//! `offer`: the client publishes (or stops publishing) m-lines. Within the participant's
//! limits, its offer is applied, its sending m-lines are received (or answered inactive when
//! it may not publish), the answer goes back, and what it now sends is published.
use std::time::Instant;

use roomcast_protocol::{ErrorCode, PublishedMid, ServerMessage};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

use crate::signaling::negotiator::ClientOffer as Verdict;
use crate::signaling::sdp_media::media_sections;

use super::super::publications::sending_mids;
use super::super::{ClientOffer, Command, SessionCore};

impl SessionCore {
    pub(in super::super) fn on_offer(&mut self, sdp: String, tracks: Vec<PublishedMid>) {
        if self.negotiator.on_client_offer() == Verdict::Ignore {
            tracing::debug!(participant = %self.id, "ignoring a client offer that collided with ours");
            self.ignoring_candidates = true;
            return;
        }
        if let Err(why) = self.limits.check_sdp(sdp.len()) {
            return self.error(ErrorCode::LimitExceeded, why);
        }
        let sections = match media_sections(&sdp) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => return self.error(ErrorCode::BadSdp, "the offer has no m-lines"),
            Err(e) => return self.error(ErrorCode::BadSdp, e),
        };
        if let Err(why) = self
            .limits
            .check_offer(&sections, |mid| self.peer.is_own(mid))
        {
            return self.error(ErrorCode::LimitExceeded, why);
        }
        self.offer = Some(ClientOffer {
            sections,
            tracks,
            may_publish: false,
        });
        self.order(Command::ApplyOffer(sdp));
    }

    pub(in super::super) fn on_offer_applied(&mut self, result: Result<(), String>, now: Instant) {
        if let Err(e) = result {
            self.offer = None;
            return self.error(ErrorCode::BadSdp, e);
        }
        self.peer.has_remote = true;
        self.negotiator.remote_description_applied(now);
        self.flush_candidates();
        let Some(offer) = self.offer.as_ref() else {
            return;
        };
        let sending = sending_mids(&offer.sections, &self.peer);
        let may_publish = sending.is_empty() || self.room.claim_publisher(&self.id);
        // Refused m-lines are answered inactive; once allowed (a promotion), a re-offered one
        // is received again.
        let direction = if may_publish {
            RTCRtpTransceiverDirection::Recvonly
        } else {
            RTCRtpTransceiverDirection::Inactive
        };
        let changes: Vec<_> = self
            .peer
            .transceivers()
            .iter()
            .filter(|t| t.mid.as_deref().is_some_and(|m| sending.contains(m)))
            .filter(|t| t.direction != direction)
            .map(|t| t.id)
            .collect();
        for id in changes {
            self.peer.set_direction(id, direction);
            self.order(Command::SetDirection(id, direction));
        }
        if let Some(offer) = self.offer.as_mut() {
            offer.may_publish = may_publish;
        }
        self.attach_view(now);
        self.order(Command::CreateAnswer);
    }

    pub(in super::super) fn on_answer_created(
        &mut self,
        result: Result<String, (ErrorCode, String)>,
        now: Instant,
    ) {
        let Some(offer) = self.offer.take() else {
            return;
        };
        match result {
            Ok(sdp) => self.send(ServerMessage::Answer { sdp }),
            Err((code, message)) => return self.error(code, message),
        }
        self.negotiator.client_offer_answered();
        if offer.may_publish {
            self.update_publications(&offer.sections, &offer.tracks, now);
            return;
        }
        let sending = sending_mids(&offer.sections, &self.peer).len();
        tracing::debug!(participant = %self.id, m_lines = sending, "publishing refused");
        self.order(Command::DropEarlyTracks);
        let why = match self.room.role_of(&self.id) {
            Some(role) if !role.can_publish() => {
                "the audience may not publish: the sending m-lines are inactive"
            }
            _ => "the room has its maximum of publishers: the sending m-lines are inactive",
        };
        self.error(ErrorCode::Forbidden, why);
        self.update_publications(&[], &[], now);
    }
}
