//! One handler per client message kind, as [`SessionCore`](super::SessionCore) methods. A
//! handler checks the message, answers the client, and changes the room or asks the shell
//! for what needs the PeerConnection; the outcome of that comes back to the handler's
//! second half, beside it.
mod answer;
mod candidate;
pub mod chat;
mod end_room;
mod kick;
mod lock_room;
mod mute;
mod mute_participant;
mod negotiate_request;
mod offer;
mod set_quality;
mod set_role;

use roomcast_protocol::{ErrorCode, Role};

use super::SessionCore;

impl SessionCore {
    /// Whether this participant may moderate the room; if not, it is told.
    fn may_moderate(&mut self) -> bool {
        if self.room.role_of(&self.id).is_some_and(Role::can_moderate) {
            return true;
        }
        self.error(ErrorCode::Forbidden, "only a host may moderate the room");
        false
    }

    fn unknown_participant(&mut self, id: &str) {
        self.error(
            ErrorCode::UnknownParticipant,
            format!("no participant {id} in this room"),
        );
    }
}
