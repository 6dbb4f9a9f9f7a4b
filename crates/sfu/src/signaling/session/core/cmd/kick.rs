//! `kick` (host only): removes a participant from the room ([`crate::room::Room::kick`]).
use super::super::SessionCore;

impl SessionCore {
    pub(in super::super) fn on_kick(&mut self, participant_id: String) {
        if !self.may_moderate() {
            return;
        }
        tracing::info!(participant = %self.id, target = %participant_id, "kick");
        if self.room.kick(&participant_id).is_err() {
            self.unknown_participant(&participant_id);
        }
    }
}
