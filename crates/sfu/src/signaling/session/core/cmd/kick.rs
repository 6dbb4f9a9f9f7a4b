//! `kick` (host only): removes a participant from the room ([`crate::room::Room::kick`]).
use super::super::SessionCore;

impl SessionCore {
    pub(in super::super) fn on_kick(&mut self, participant_id: String) {
        if !self.may_moderate() {
            return;
        }
        match self.room.kick(&participant_id) {
            // Logged once the target is known to be one of ours (not whatever the client wrote).
            Ok(()) => tracing::info!(participant = %self.id, target = %participant_id, "kick"),
            Err(_) => self.unknown_participant(&participant_id),
        }
    }
}
