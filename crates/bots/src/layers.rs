//! Simulcast layers of a publishing bot: which ones the server wants (`publisher_layers`),
//! and where each layer's loop stands as it is paused and resumed. Decisions only; the
//! publisher's tasks do the I/O and pass the time in.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::media_loop::MediaLoop;

/// `publisher_layers` for m-lines not published yet are kept (the server may answer the
/// publish and ask for layers before the bot has started its loops), up to this many.
const MAX_PENDING_MIDS: usize = 64;

/// Whether each simulcast layer of each published m-line should send. All layers start
/// active; `publisher_layers` switches them.
#[derive(Default)]
pub(crate) struct LayerDirectory {
    mids: Mutex<HashMap<String, MidLayers>>,
}

#[derive(Default)]
struct MidLayers {
    /// The latest `rids` the server sent for this m-line.
    requested: Option<Vec<String>>,
    gates: Vec<(String, watch::Sender<bool>)>,
}

impl LayerDirectory {
    /// The layers of a simulcast m-line that starts sending: one receiver per rid, in
    /// order, true while the layer should send.
    pub(crate) fn register(&self, mid: &str, rids: &[String]) -> Vec<watch::Receiver<bool>> {
        let mut mids = self.mids.lock();
        let entry = mids.entry(mid.to_owned()).or_default();
        entry.gates = rids
            .iter()
            .map(|rid| {
                let active = entry
                    .requested
                    .as_ref()
                    .is_none_or(|wanted| wanted.contains(rid));
                (rid.clone(), watch::Sender::new(active))
            })
            .collect();
        entry
            .gates
            .iter()
            .map(|(_, gate)| gate.subscribe())
            .collect()
    }

    /// The server's `publisher_layers`: exactly the listed layers of `mid` send. Rids the
    /// m-line does not have are ignored.
    pub(crate) fn request(&self, mid: &str, rids: &[String]) {
        let mut mids = self.mids.lock();
        if !mids.contains_key(mid) && mids.len() >= MAX_PENDING_MIDS {
            return;
        }
        let entry = mids.entry(mid.to_owned()).or_default();
        entry.requested = Some(rids.to_vec());
        for (rid, gate) in &entry.gates {
            gate.send_if_modified(|active| {
                let wanted = rids.contains(rid);
                std::mem::replace(active, wanted) != wanted
            });
        }
    }
}

/// What to send at one tick of a layer's loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    /// The frame of the loop.
    pub index: usize,
    /// RTP timestamp units to skip before it, so timestamps keep to real time across a
    /// pause or ticks missed under load (sequence numbers go on without a gap, as an
    /// encoder's do).
    pub skip_samples: u32,
}

/// Where one layer's loop stands.
#[derive(Debug)]
pub(crate) struct Playhead {
    index: usize,
    samples_per_frame: u32,
    clock_rate: u32,
    /// When the first frame was due.
    origin: Option<Instant>,
    /// Timestamp units the stream has advanced since the first frame.
    written: u64,
    /// Jump to the next keyframe before sending: after a pause, or on PLI/FIR.
    jump_to_keyframe: bool,
}

impl Playhead {
    pub(crate) fn new(frame_interval: Duration, clock_rate: u32) -> Self {
        let samples = (frame_interval.as_secs_f64() * f64::from(clock_rate)).round();
        Playhead {
            index: 0,
            samples_per_frame: samples.clamp(1.0, f64::from(u32::MAX)) as u32,
            clock_rate,
            origin: None,
            written: 0,
            jump_to_keyframe: false,
        }
    }

    /// How far each frame advances the RTP timestamp.
    pub(crate) fn samples_per_frame(&self) -> u32 {
        self.samples_per_frame
    }

    /// The layer stopped sending; it resumes at a keyframe, as an encoder does.
    pub(crate) fn pause(&mut self) {
        self.jump_to_keyframe = true;
    }

    /// A PLI or FIR: the next frame sent is the loop's next keyframe.
    pub(crate) fn request_keyframe(&mut self) {
        self.jump_to_keyframe = true;
    }

    /// The frame to send for the tick that was due at `due`, and moves on.
    pub(crate) fn next(&mut self, media: &MediaLoop, due: Instant) -> Due {
        if std::mem::take(&mut self.jump_to_keyframe) {
            self.index = media.keyframe_at_or_after(self.index);
        }
        let index = self.index % media.frames.len().max(1);
        self.index = (index + 1) % media.frames.len().max(1);
        let origin = *self.origin.get_or_insert(due);
        let elapsed = due.saturating_duration_since(origin).as_secs_f64();
        let target = (elapsed * f64::from(self.clock_rate)).round() as u64;
        // Half a frame of slack: rounding is no reason to skip.
        let behind = target.saturating_sub(self.written);
        let skip_samples = if behind > u64::from(self.samples_per_frame / 2) {
            u32::try_from(behind).unwrap_or(u32::MAX)
        } else {
            0
        };
        self.written += u64::from(skip_samples) + u64::from(self.samples_per_frame);
        Due {
            index,
            skip_samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::media_loop::Frame;

    /// 10 frames at 30 fps, keyframes at 0 and 5.
    fn media() -> MediaLoop {
        MediaLoop {
            frames: (0..10)
                .map(|i| Frame {
                    data: Bytes::from_static(&[0]),
                    keyframe: i % 5 == 0,
                    audio_level: None,
                })
                .collect(),
            frame_interval: Duration::from_nanos(33_333_333),
        }
    }

    fn rids(list: &[&str]) -> Vec<String> {
        list.iter().map(|r| (*r).to_owned()).collect()
    }

    #[test]
    fn plays_in_order_with_whole_frames_of_timestamp() {
        let media = media();
        let mut head = Playhead::new(media.frame_interval, 90_000);
        assert_eq!(head.samples_per_frame(), 3000);
        let start = Instant::now();
        let due: Vec<Due> = (0..12u32)
            .map(|i| head.next(&media, start + media.frame_interval * i))
            .collect();
        let indexes: Vec<usize> = due.iter().map(|d| d.index).collect();
        assert_eq!(indexes, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
        assert!(due.iter().all(|d| d.skip_samples == 0), "{due:?}");
    }

    #[test]
    fn a_keyframe_request_jumps_to_the_next_keyframe_once() {
        let media = media();
        let mut head = Playhead::new(media.frame_interval, 90_000);
        let start = Instant::now();
        let at = |i: u32| start + media.frame_interval * i;
        assert_eq!(head.next(&media, at(0)).index, 0);
        assert_eq!(head.next(&media, at(1)).index, 1);
        head.request_keyframe();
        assert_eq!(head.next(&media, at(2)).index, 5);
        assert_eq!(head.next(&media, at(3)).index, 6);
        head.request_keyframe();
        head.request_keyframe();
        assert_eq!(
            head.next(&media, at(4)).index,
            0,
            "wraps to the loop's start"
        );
        assert_eq!(head.next(&media, at(5)).index, 1);
    }

    #[test]
    fn resuming_starts_at_a_keyframe_with_timestamps_in_real_time() {
        let media = media();
        let mut head = Playhead::new(media.frame_interval, 90_000);
        let start = Instant::now();
        for i in 0..3u32 {
            head.next(&media, start + media.frame_interval * i);
        }
        head.pause();
        // Paused from frame 3 on; resumed 2 s after the start.
        let resumed = head.next(&media, start + Duration::from_secs(2));
        assert_eq!(
            resumed.index, 5,
            "the keyframe at or after where it stopped"
        );
        // Three frames (9000) written; 2 s is 180 000: skip the difference.
        assert_eq!(resumed.skip_samples, 180_000 - 9000);
        let after = head.next(
            &media,
            start + Duration::from_secs(2) + media.frame_interval,
        );
        assert_eq!((after.index, after.skip_samples), (6, 0));
    }

    #[test]
    fn missed_ticks_skip_their_samples_too() {
        let media = media();
        let mut head = Playhead::new(Duration::from_millis(20), 48_000);
        let start = Instant::now();
        head.next(&media, start);
        head.next(&media, start + Duration::from_millis(20));
        // Two ticks missed under load.
        let late = head.next(&media, start + Duration::from_millis(80));
        assert_eq!((late.index, late.skip_samples), (2, 2 * 960));
        assert_eq!(
            head.next(&media, start + Duration::from_millis(100))
                .skip_samples,
            0
        );
    }

    #[test]
    fn layers_start_active_and_follow_publisher_layers() {
        let dir = LayerDirectory::default();
        let gates = dir.register("1", &rids(&["q", "h", "f"]));
        let state = |gates: &[watch::Receiver<bool>]| -> Vec<bool> {
            gates.iter().map(|g| *g.borrow()).collect()
        };
        assert_eq!(state(&gates), [true, true, true]);
        dir.request("1", &rids(&["q"]));
        assert_eq!(state(&gates), [true, false, false]);
        dir.request("1", &rids(&["q", "f", "x"]));
        assert_eq!(state(&gates), [true, false, true]);
        dir.request("1", &[]);
        assert_eq!(state(&gates), [false, false, false]);
        dir.request("2", &rids(&["q"]));
        assert_eq!(state(&gates), [false, false, false], "another m-line");
    }

    #[tokio::test]
    async fn a_paused_layer_wakes_when_listed_again() {
        let dir = LayerDirectory::default();
        let mut gates = dir.register("0", &rids(&["q", "h"]));
        dir.request("0", &rids(&["q"]));
        let mut h = gates.remove(1);
        assert!(!*h.borrow_and_update());
        dir.request("0", &rids(&["q"]));
        assert!(!h.has_changed().unwrap(), "no news, no wake-up");
        dir.request("0", &rids(&["h", "q"]));
        let woke = tokio::time::timeout(Duration::from_secs(5), h.wait_for(|a| *a)).await;
        assert!(matches!(woke, Ok(Ok(_))));
    }

    #[test]
    fn requests_before_the_layers_start_apply_when_they_do() {
        let dir = LayerDirectory::default();
        dir.request("3", &rids(&["h"]));
        let gates = dir.register("3", &rids(&["q", "h", "f"]));
        let state: Vec<bool> = gates.iter().map(|g| *g.borrow()).collect();
        assert_eq!(state, [false, true, false]);
        // Unknown m-lines are remembered up to a bound.
        for mid in 0..200 {
            dir.request(&format!("x{mid}"), &[]);
        }
        assert!(dir.mids.lock().len() <= MAX_PENDING_MIDS);
    }
}
