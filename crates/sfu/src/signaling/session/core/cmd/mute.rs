//! `mute`: the owner of a track mutes or unmutes it. The room is told when the state
//! changes (the owner alone when it does not).
use roomcast_protocol::{ErrorCode, ServerMessage};

use super::super::{Command, SessionCore};

impl SessionCore {
    pub(in super::super) fn on_mute(&mut self, track_id: String, muted: bool) {
        let own = self
            .published
            .values()
            .find(|t| t.info.id == track_id)
            .cloned();
        let Some(track) = own else {
            let (code, why) = if self.room.has_track(&track_id) {
                (ErrorCode::Forbidden, "only its publisher may mute a track")
            } else {
                (ErrorCode::UnknownTrack, "you publish no such track")
            };
            return self.error(code, format!("{why}: {track_id}"));
        };
        self.order(Command::Mute { track, muted });
    }

    pub(in super::super) fn on_muted(&mut self, track_id: String, muted: bool, changed: bool) {
        let msg = ServerMessage::TrackMuted {
            participant_id: self.id.clone(),
            track_id,
            muted,
        };
        if changed {
            tracing::debug!(participant = %self.id, muted, "self mute");
            self.room.broadcast(msg);
        } else {
            self.send(msg);
        }
    }
}
