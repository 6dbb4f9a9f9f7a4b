//! `mute_participant` (host only): mutes or unmutes every track of a kind that another
//! participant publishes, as the admin API's mute does ([`crate::room::Room::mute_participant`]).
use roomcast_protocol::TrackKind;

use super::super::{Command, SessionCore};

impl SessionCore {
    pub(in super::super) fn on_mute_participant(
        &mut self,
        participant_id: String,
        kind: TrackKind,
        muted: bool,
    ) {
        if !self.may_moderate() {
            return;
        }
        self.order(Command::MuteParticipant {
            participant_id,
            kind,
            muted,
        });
    }

    pub(in super::super) fn on_muted_participant(&mut self, participant_id: String, found: bool) {
        // Logged once the target is known to be one of ours: the id is then the server's
        // own, not whatever the client wrote.
        if found {
            tracing::debug!(participant = %self.id, target = %participant_id, "mute_participant");
        } else {
            self.unknown_participant(&participant_id);
        }
    }
}
