//! `answer`: the client answers the server's offer. Applying it ends the server's turn: a
//! waiting negotiation lock is granted, buffered candidates are applied, and whatever
//! changed meanwhile is offered next.
use std::time::Instant;

use roomcast_protocol::{ErrorCode, ServerMessage};

use super::super::{Command, SessionCore};
use crate::untrusted::Untrusted;

impl SessionCore {
    pub(in super::super) fn on_answer(&mut self, sdp: String) {
        if !self.negotiator.server_offer_pending() {
            return self.error(
                ErrorCode::InvalidState,
                "no offer of the server is waiting for an answer",
            );
        }
        if let Err(why) = self.limits.check_sdp(sdp.len()) {
            return self.error(ErrorCode::LimitExceeded, why);
        }
        self.order(Command::ApplyAnswer(sdp));
    }

    pub(in super::super) fn on_answer_applied(&mut self, result: Result<(), String>, now: Instant) {
        if let Err(e) = result {
            tracing::debug!(participant = %self.id, error = %Untrusted(&e), "answer refused");
            return self.error(ErrorCode::BadSdp, e);
        }
        self.peer.has_remote = true;
        self.negotiator.remote_description_applied(now);
        self.ignoring_candidates = false;
        self.outstanding_offer = None;
        if let Ok(true) = self.negotiator.on_client_answer(now) {
            self.send(ServerMessage::NegotiateGrant);
        }
        self.flush_candidates();
        self.renegotiate(now);
    }
}
