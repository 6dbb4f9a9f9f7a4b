//! `end_room` (host only): ends the room for everyone ([`crate::Sfu::end_room`]).
use super::super::{Command, SessionCore};

impl SessionCore {
    pub(in super::super) fn on_end_room(&mut self) {
        if !self.may_moderate() {
            return;
        }
        tracing::info!(participant = %self.id, room = %self.room.name, "end_room");
        self.order(Command::EndRoom);
    }
}
