//! `set_role` (host only): gives a participant another role ([`crate::room::Room::set_role`]).
use roomcast_protocol::Role;

use super::super::SessionCore;

impl SessionCore {
    pub(in super::super) fn on_set_role(&mut self, participant_id: String, role: Role) {
        if !self.may_moderate() {
            return;
        }
        tracing::info!(participant = %self.id, target = %participant_id, ?role, "set_role");
        if self.room.set_role(&participant_id, role).is_err() {
            self.unknown_participant(&participant_id);
        }
    }
}
