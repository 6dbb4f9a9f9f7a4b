//! How evenly one RTP stream arrives: RFC 3550 interarrival jitter, and the gaps between
//! packets (the longest, and how many were long enough to be a visible freeze). Pure
//! arithmetic per packet: no allocation, no clock reads (the caller passes the arrival time).
use std::time::{Duration, Instant};

/// A video gap longer than this counts as a freeze.
pub const FREEZE_GAP: Duration = Duration::from_millis(500);

/// RFC 3550 §6.4.1 interarrival jitter, in RTP timestamp units internally.
#[derive(Debug, Clone)]
pub(crate) struct JitterEstimator {
    clock_rate: u32,
    /// Arrival time and RTP timestamp of the previous packet.
    last: Option<(Instant, u32)>,
    /// J, in timestamp units.
    jitter: f64,
}

impl JitterEstimator {
    /// `clock_rate` is the codec's RTP clock (48 000 for Opus, 90 000 for video); 0 is
    /// taken as 90 000.
    pub(crate) fn new(clock_rate: u32) -> Self {
        JitterEstimator {
            clock_rate: if clock_rate == 0 { 90_000 } else { clock_rate },
            last: None,
            jitter: 0.0,
        }
    }

    /// `D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1})`, `J += (|D| - J) / 16`.
    pub(crate) fn record(&mut self, timestamp: u32, arrival: Instant) {
        if let Some((prev_arrival, prev_timestamp)) = self.last {
            let arrived = arrival
                .saturating_duration_since(prev_arrival)
                .as_secs_f64()
                * f64::from(self.clock_rate);
            // Signed distance in the 32-bit timestamp space, so wrapping is one step.
            let sent = f64::from(timestamp.wrapping_sub(prev_timestamp) as i32);
            let d = (arrived - sent).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last = Some((arrival, timestamp));
    }

    /// Starts over: a new SSRC is a new timestamp space.
    pub(crate) fn reset(&mut self) {
        self.last = None;
        self.jitter = 0.0;
    }

    pub(crate) fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    pub(crate) fn jitter_ms(&self) -> f64 {
        self.jitter / f64::from(self.clock_rate) * 1000.0
    }
}

/// Gaps between consecutive packets while the track is live.
#[derive(Debug, Clone, Default)]
pub(crate) struct GapTracker {
    last: Option<Instant>,
    count_freezes: bool,
    pub max_gap: Duration,
    /// Gaps longer than [`FREEZE_GAP`] (only counted for video).
    pub freezes: u64,
}

impl GapTracker {
    pub(crate) fn new(count_freezes: bool) -> Self {
        GapTracker {
            count_freezes,
            ..Default::default()
        }
    }

    pub(crate) fn record(&mut self, arrival: Instant) {
        if let Some(last) = self.last {
            let gap = arrival.saturating_duration_since(last);
            self.max_gap = self.max_gap.max(gap);
            if self.count_freezes && gap > FREEZE_GAP {
                self.freezes += 1;
            }
        }
        self.last = Some(arrival);
    }

    /// The track ended (or is starting again): the time until its next packet is no gap.
    pub(crate) fn restart(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: f64) -> Instant {
        start + Duration::from_secs_f64(ms / 1000.0)
    }

    #[test]
    fn perfectly_paced_audio_has_no_jitter() {
        let start = Instant::now();
        let mut j = JitterEstimator::new(48_000);
        for i in 0..100u32 {
            j.record(i * 960, at(start, f64::from(i) * 20.0));
        }
        assert!(j.jitter_ms() < 1e-6, "{}", j.jitter_ms());
    }

    #[test]
    fn one_late_packet_moves_jitter_by_a_sixteenth() {
        let start = Instant::now();
        let mut j = JitterEstimator::new(48_000);
        j.record(0, at(start, 0.0));
        // 20 ms of audio that arrives after 36 ms: D = 16 ms, J = 16/16 = 1 ms.
        j.record(960, at(start, 36.0));
        assert!((j.jitter_ms() - 1.0).abs() < 1e-6, "{}", j.jitter_ms());
        // Back on schedule: D = |(40 - 36) - 20| = 16 ms again, J = 1 + (16 - 1)/16.
        j.record(1920, at(start, 40.0));
        assert!((j.jitter_ms() - (1.0 + 15.0 / 16.0)).abs() < 1e-6);
    }

    #[test]
    fn converges_to_the_mean_deviation_with_the_video_clock() {
        // Frames every 33.3 ms arriving alternately 5 ms early and 5 ms late: |D| = 10 ms
        // for every frame after the first, so J converges to 10 ms.
        let start = Instant::now();
        let mut j = JitterEstimator::new(90_000);
        for i in 0..400u32 {
            let offset = if i % 2 == 0 { -5.0 } else { 5.0 };
            j.record(
                i.wrapping_mul(3000).wrapping_add(u32::MAX - 50_000),
                at(start, 100.0 + f64::from(i) * 1000.0 / 30.0 + offset),
            );
        }
        assert!((j.jitter_ms() - 10.0).abs() < 0.01, "{}", j.jitter_ms());
        j.reset();
        assert_eq!(j.jitter_ms(), 0.0);
    }

    #[test]
    fn packets_of_one_frame_arriving_together_are_not_jitter() {
        let start = Instant::now();
        let mut j = JitterEstimator::new(90_000);
        for frame in 0..50u32 {
            for _ in 0..3 {
                j.record(frame * 3000, at(start, f64::from(frame) * 100.0 / 3.0));
            }
        }
        assert!(j.jitter_ms() < 1e-3, "{}", j.jitter_ms());
    }

    #[test]
    fn video_gaps_over_half_a_second_are_freezes() {
        let start = Instant::now();
        let mut g = GapTracker::new(true);
        for ms in [0.0, 33.0, 66.0, 700.0, 733.0, 1234.0, 1800.0] {
            g.record(at(start, ms));
        }
        // 634 ms and 566 ms are freezes; 501 ms is too, exactly 500 would not be.
        assert_eq!(g.freezes, 3);
        assert_eq!(g.max_gap, Duration::from_millis(634));
    }

    #[test]
    fn a_restart_forgets_the_gap_while_ended() {
        let start = Instant::now();
        let mut g = GapTracker::new(true);
        g.record(at(start, 0.0));
        g.restart();
        g.record(at(start, 5000.0));
        g.record(at(start, 5030.0));
        assert_eq!((g.freezes, g.max_gap), (0, Duration::from_millis(30)));
    }

    #[test]
    fn audio_gaps_count_towards_the_longest_gap_only() {
        let start = Instant::now();
        let mut g = GapTracker::new(false);
        g.record(at(start, 0.0));
        g.record(at(start, 900.0));
        assert_eq!((g.freezes, g.max_gap), (0, Duration::from_millis(900)));
    }
}
