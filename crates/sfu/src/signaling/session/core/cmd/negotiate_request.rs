//! `negotiate_request`: a client that cannot roll back asks for the negotiation lock before
//! it offers (see [`crate::signaling::negotiator`]).
use std::time::Instant;

use roomcast_protocol::ServerMessage;

use super::super::SessionCore;
use crate::signaling::negotiator::LockRequest;

impl SessionCore {
    pub(in super::super) fn on_negotiate_request(&mut self, now: Instant) {
        match self.negotiator.on_lock_request(now) {
            LockRequest::GrantNow => self.send(ServerMessage::NegotiateGrant),
            // Granted with the answer to the server's outstanding offer.
            LockRequest::GrantAfterAnswer => {}
        }
    }
}
