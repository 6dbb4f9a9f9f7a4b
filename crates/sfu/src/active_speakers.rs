//! Who is speaking in a room, from the audio levels publishers put in their packets
//! (RFC 6464), without decoding anything. Every interval the room's detector takes each
//! audio track's average level, smooths it over the last second or so, and announces the
//! speakers loudest first, only when that list changed.
use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

use roomcast_protocol::{ServerMessage, Speaker};

use crate::room::Room;

pub const INTERVAL: Duration = Duration::from_millis(500);
/// Smoothed amplitude above which a participant counts as speaking (about -50 dBov).
const SPEAKING_AMPLITUDE: f64 = 0.003;
/// Weight of the newest interval in the smoothed level.
const SMOOTHING: f64 = 0.5;

#[derive(Debug, Default)]
pub struct SpeakerDetector {
    smoothed: HashMap<String, f64>,
    announced: Vec<String>,
}

impl SpeakerDetector {
    /// Takes each participant's average amplitude over the last interval (0.0 when it sent
    /// no audio) and returns the new speaker list when it differs from the last one.
    pub fn update(&mut self, levels: &[(String, f64)]) -> Option<Vec<Speaker>> {
        self.smoothed
            .retain(|id, _| levels.iter().any(|(present, _)| present == id));
        for (id, level) in levels {
            let s = self.smoothed.entry(id.clone()).or_insert(0.0);
            *s = SMOOTHING * level + (1.0 - SMOOTHING) * *s;
        }
        let mut speaking: Vec<(&String, f64)> = self
            .smoothed
            .iter()
            .filter(|(_, &level)| level >= SPEAKING_AMPLITUDE)
            .map(|(id, &level)| (id, level))
            .collect();
        speaking.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let ids: Vec<String> = speaking.iter().map(|(id, _)| (*id).clone()).collect();
        if ids == self.announced {
            return None;
        }
        self.announced = ids;
        Some(
            speaking
                .into_iter()
                .map(|(id, level)| Speaker {
                    participant_id: id.clone(),
                    level: ((level * 1000.0).round() / 1000.0) as f32,
                })
                .collect(),
        )
    }

    /// The current speakers, loudest first.
    pub fn speakers(&self) -> &[String] {
        &self.announced
    }
}

/// Runs a room's detector until the room is gone.
pub async fn run(room: Weak<Room>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut detector = SpeakerDetector::default();
    loop {
        tick.tick().await;
        let Some(room) = room.upgrade() else { break };
        if room.is_closed() {
            break;
        }
        // The same per-room tick paces `audience_count` (at most once a second).
        room.announce_audience_count(std::time::Instant::now());
        if let Some(speakers) = detector.update(&room.audio_levels()) {
            room.set_active_speakers(detector.speakers().to_vec());
            room.broadcast(ServerMessage::ActiveSpeakers { speakers });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(v: &[(&str, f64)]) -> Vec<(String, f64)> {
        v.iter().map(|(id, l)| (id.to_string(), *l)).collect()
    }

    #[test]
    fn orders_by_level_and_announces_only_changes() {
        let mut d = SpeakerDetector::default();
        let first = d
            .update(&levels(&[("quiet", 0.02), ("loud", 0.2), ("silent", 0.0)]))
            .expect("a first list");
        let ids: Vec<&str> = first.iter().map(|s| s.participant_id.as_str()).collect();
        assert_eq!(ids, ["loud", "quiet"]);
        assert!(first[0].level > first[1].level);
        assert_eq!(
            d.update(&levels(&[("quiet", 0.03), ("loud", 0.25), ("silent", 0.0)])),
            None,
            "same order"
        );
        assert_eq!(d.speakers(), ["loud", "quiet"]);
    }

    #[test]
    fn a_short_pause_keeps_the_speaker_and_silence_removes_them() {
        let mut d = SpeakerDetector::default();
        d.update(&levels(&[("a", 0.1)]));
        assert_eq!(d.update(&levels(&[("a", 0.0)])), None, "smoothed");
        for _ in 0..10 {
            d.update(&levels(&[("a", 0.0)]));
        }
        assert!(d.speakers().is_empty());
    }

    #[test]
    fn participants_who_leave_are_forgotten() {
        let mut d = SpeakerDetector::default();
        d.update(&levels(&[("a", 0.1), ("b", 0.05)]));
        let after = d.update(&levels(&[("b", 0.05)])).expect("changed");
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].participant_id, "b");
    }
}
