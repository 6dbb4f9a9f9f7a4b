//! `set_role` (host only): gives a participant another role ([`crate::room::Room::set_role`]).
use roomcast_protocol::{ErrorCode, Role};

use crate::room::ModerationError;

use super::super::SessionCore;

impl SessionCore {
    pub(in super::super) fn on_set_role(&mut self, participant_id: String, role: Role) {
        if !self.may_moderate() {
            return;
        }
        match self.room.set_role(&participant_id, role) {
            // Logged once the target is known to be one of ours (not whatever the client wrote).
            Ok(()) => {
                tracing::info!(participant = %self.id, target = %participant_id, ?role, "set_role")
            }
            Err(ModerationError::ElsewhereAudience) => self.error(
                ErrorCode::Forbidden,
                "that participant watches through another node and cannot publish; they must join again with a role that publishes",
            ),
            Err(ModerationError::UnknownParticipant) => self.unknown_participant(&participant_id),
        }
    }
}
