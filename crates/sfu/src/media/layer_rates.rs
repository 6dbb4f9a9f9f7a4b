//! Each layer's bitrate as the allocator prices it: the bytes received over the last
//! [`WINDOW`], not over the last quarter second. A quarter second of a layer holds a
//! keyframe or none, and a loaded publisher's packets come in bursts: in the lab, the same
//! `q` layer of 150 kbit/s read anywhere from 16 to 280 kbit/s from one reading to the next,
//! and four of them "fitted" a 500 kbit/s link whenever they read low, to be paused again
//! once their real rate overflowed it (with the subscriber's audio lost in that queue).
//! Synchronous; every input carries its own `now`.
use std::time::{Duration, Instant};

use super::layer_selector::MAX_LAYERS;

const LAYERS: usize = MAX_LAYERS as usize;
/// How far back a reading looks: longer than the gap between a layer's keyframes is
/// needed to see none or several, which is the publisher's choice; this is a few frames
/// short of the bots' and Chrome's usual two seconds, and still answers a layer that
/// stopped within it.
pub const WINDOW: Duration = Duration::from_millis(1_500);
/// Readings closer together than this say nothing (the caller ticks every 250 ms).
const MIN_SPAN: Duration = Duration::from_millis(100);
/// Enough snapshots for [`WINDOW`] at the caller's 250 ms.
const SNAPSHOTS: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    totals: [u64; LAYERS],
}

/// Byte totals per layer at the last few readings, in a fixed ring.
#[derive(Debug)]
pub struct LayerRates {
    snapshots: [Option<Snapshot>; SNAPSHOTS],
    /// Where the next snapshot goes; the one before it is the newest.
    next: usize,
}

impl LayerRates {
    pub fn new(now: Instant) -> Self {
        let mut snapshots = [None; SNAPSHOTS];
        snapshots[0] = Some(Snapshot {
            at: now,
            totals: [0; LAYERS],
        });
        LayerRates { snapshots, next: 1 }
    }

    /// Takes the byte totals received so far per layer at `now`, and returns each layer's
    /// rate in bits per second over the last [`WINDOW`] (over the time since the last
    /// reading if that is longer ago); `None` within [`MIN_SPAN`] of the last reading.
    pub fn update(&mut self, now: Instant, totals: [u64; LAYERS]) -> Option<[u64; LAYERS]> {
        let newest = self.snapshots[(self.next + SNAPSHOTS - 1) % SNAPSHOTS]?;
        if now.saturating_duration_since(newest.at) < MIN_SPAN {
            return None;
        }
        let base = self
            .snapshots
            .iter()
            .flatten()
            .filter(|s| now.saturating_duration_since(s.at) <= WINDOW)
            .min_by_key(|s| s.at)
            .copied()
            .unwrap_or(newest);
        let span = now.saturating_duration_since(base.at).as_secs_f64();
        let mut rates = [0; LAYERS];
        for (rate, (total, before)) in rates.iter_mut().zip(totals.iter().zip(base.totals)) {
            *rate = (total.saturating_sub(before).saturating_mul(8) as f64 / span) as u64;
        }
        self.snapshots[self.next] = Some(Snapshot { at: now, totals });
        self.next = (self.next + 1) % SNAPSHOTS;
        Some(rates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(250);

    #[test]
    fn a_keyframe_and_the_frames_between_read_as_their_average() {
        let t0 = Instant::now();
        let mut rates = LayerRates::new(t0);
        // 150 kbit/s in 2 s GOPs: 120 kbit/s of frames between keyframes (3,750 bytes a
        // quarter second) and a 7,500-byte keyframe every 2 s, read every 250 ms as
        // layer_control does.
        let mut total = 0u64;
        let mut readings = Vec::new();
        for tick in 1..=24u32 {
            total += 3_750;
            if tick % 8 == 1 {
                total += 7_500;
            }
            let r = rates
                .update(t0 + TICK * tick, [total, 0, 0])
                .expect("a reading");
            readings.push(r[0]);
        }
        // A quarter second alone reads 120 kbit/s between keyframes and 360 kbit/s with
        // one; over the window, 120 to 160.
        let settled = &readings[6..];
        let (low, high) = (
            *settled.iter().min().unwrap(),
            *settled.iter().max().unwrap(),
        );
        assert!(low >= 119_000 && high <= 161_000, "{readings:?}");
    }

    #[test]
    fn a_layer_that_stops_reads_zero_once_the_window_has_passed() {
        let t0 = Instant::now();
        let mut rates = LayerRates::new(t0);
        let mut total = 0;
        for tick in 1..=8u32 {
            total += 5_000;
            rates.update(t0 + TICK * tick, [total, total, 0]);
        }
        let stopped = t0 + TICK * 8;
        let mut last = [1; LAYERS];
        for tick in 1..=6u32 {
            last = rates
                .update(
                    stopped + TICK * tick,
                    [total, total + u64::from(tick) * 5_000, 0],
                )
                .unwrap();
        }
        assert_eq!(last[0], 0, "no byte in the last 1.5 s");
        assert_eq!(last[1], 160_000, "5 kB every 250 ms");
        assert_eq!(last[2], 0);
    }

    #[test]
    fn readings_too_close_together_say_nothing() {
        let t0 = Instant::now();
        let mut rates = LayerRates::new(t0);
        assert_eq!(
            rates.update(t0 + Duration::from_millis(50), [1_000, 0, 0]),
            None
        );
        // A gap longer than the window: the rate since the last reading.
        let late = t0 + Duration::from_secs(4);
        assert_eq!(rates.update(late, [4_000, 0, 0]), Some([8_000, 0, 0]));
    }
}
