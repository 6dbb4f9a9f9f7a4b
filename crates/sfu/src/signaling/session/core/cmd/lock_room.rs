//! `lock_room` and `unlock_room` (host only): no new joins while locked
//! ([`crate::room::Room::set_locked`]).
use super::super::SessionCore;

impl SessionCore {
    pub(in super::super) fn on_lock_room(&mut self, locked: bool) {
        if !self.may_moderate() {
            return;
        }
        tracing::debug!(participant = %self.id, locked, "room lock");
        self.room.set_locked(locked);
    }
}
