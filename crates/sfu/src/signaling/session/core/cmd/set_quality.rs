//! `set_quality`: the most a subscriber wants of a track (a simulcast layer, or nothing),
//! kept for a track it does not receive yet.
use roomcast_protocol::{ErrorCode, Quality};

use super::super::{Command, SessionCore};
use crate::media::layer_control::quality_layer;

impl SessionCore {
    pub(in super::super) fn on_set_quality(&mut self, track_id: String, quality: Quality) {
        if !self.room.has_track(&track_id) {
            return self.error(
                ErrorCode::UnknownTrack,
                format!("no track {track_id} in this room"),
            );
        }
        if self.subscriptions.contains_key(&track_id) {
            self.order(Command::SetQuality {
                track_id: track_id.clone(),
                layer: quality_layer(quality),
            });
        }
        self.quality.insert(track_id, quality);
    }
}
