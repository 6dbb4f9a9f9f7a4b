//! The acknowledged throughput the estimator decreases to: a smoothed estimate of what the
//! receiver gets, in the manner of libwebrtc's `AcknowledgedBitrateEstimator`.
//!
//! Bytes acknowledged are summed over windows of the receiver's arrival clock (the first
//! 500 ms, then 150 ms), and each window's rate is a sample for a one-dimensional Kalman
//! filter. A sample's uncertainty grows with how far it is from the estimate, so one
//! window that reads far below what came before (a receiver that read its socket late, a
//! burst after a gap) moves the estimate a little, while a run of them moves it all the
//! way. A gap in arrivals longer than a window starts a fresh window at the next arrival:
//! the silence itself is no sample, so the estimate never reads near zero because nothing
//! happened to arrive for a while. Fixed memory; synchronous.

const INITIAL_WINDOW_US: i64 = 500_000;
const WINDOW_US: i64 = 150_000;
/// How strongly a sample's distance from the estimate makes it uncertain.
const UNCERTAINTY_SCALE: f64 = 10.0;
/// Added to the estimate's variance per sample (kbit/s squared): how fast it may move.
const PROCESS_NOISE: f64 = 5.0;
const INITIAL_VARIANCE: f64 = 50.0;
/// An arrival this far behind the newest one means the receiver's clock restarted.
const CLOCK_RESET_US: i64 = 10_000_000;

#[derive(Debug, Default)]
pub(super) struct AckedThroughput {
    /// The newest arrival seen, µs on the receiver's clock.
    last_arrival: Option<i64>,
    /// Arrival time covered by the current window so far, and the bytes in it.
    window_us: i64,
    window_bytes: u64,
    /// Whether a first (long) window has completed.
    started: bool,
    /// The estimate in kbit/s (the filter's tuning is in those units) and its variance.
    estimate_kbps: Option<f64>,
    variance: f64,
}

impl AckedThroughput {
    /// One acknowledged packet of `size` bytes that arrived at `arrival_us`.
    pub fn add(&mut self, arrival_us: i64, size: usize) {
        let window = if self.started {
            WINDOW_US
        } else {
            INITIAL_WINDOW_US
        };
        let elapsed = match self.last_arrival {
            Some(last) if arrival_us < last.saturating_sub(CLOCK_RESET_US) => {
                // A new clock: what was summed belongs to the old one.
                self.window_us = 0;
                self.window_bytes = 0;
                self.last_arrival = Some(arrival_us);
                0
            }
            // Reordered packets arrived within the time already covered.
            Some(last) => {
                self.last_arrival = Some(last.max(arrival_us));
                arrival_us.saturating_sub(last).max(0)
            }
            None => {
                self.last_arrival = Some(arrival_us);
                0
            }
        };
        if elapsed > window {
            // A gap: nothing arrived for longer than a window. Start over after it.
            self.window_us = 0;
            self.window_bytes = 0;
        } else {
            self.window_us = self.window_us.saturating_add(elapsed);
            if self.window_us >= window {
                let kbps = self.window_bytes as f64 * 8.0 / (window as f64 / 1_000.0);
                self.update(kbps);
                self.started = true;
                self.window_us -= window;
                self.window_bytes = 0;
            }
        }
        self.window_bytes = self.window_bytes.saturating_add(size as u64);
    }

    fn update(&mut self, sample_kbps: f64) {
        if !sample_kbps.is_finite() {
            return;
        }
        let Some(estimate) = self.estimate_kbps else {
            self.estimate_kbps = Some(sample_kbps);
            self.variance = INITIAL_VARIANCE;
            return;
        };
        let uncertainty = UNCERTAINTY_SCALE * (estimate - sample_kbps).abs() / estimate.max(1.0);
        let sample_variance = uncertainty * uncertainty;
        let predicted_variance = self.variance + PROCESS_NOISE;
        let total = sample_variance + predicted_variance;
        if total <= 0.0 {
            self.estimate_kbps = Some(sample_kbps);
            return;
        }
        self.estimate_kbps =
            Some((sample_variance * estimate + predicted_variance * sample_kbps) / total);
        self.variance = sample_variance * predicted_variance / total;
    }

    /// Bits per second, once a first window has completed.
    pub fn bps(&self) -> Option<f64> {
        self.estimate_kbps.map(|kbps| kbps * 1_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bandwidth::acked_rate::AckedRate;

    /// `bps` of 1200-byte packets from `from_us` for `seconds`, into both measures.
    fn steady(
        smoothed: &mut AckedThroughput,
        windowed: &mut AckedRate,
        from_us: i64,
        seconds: f64,
        bps: f64,
    ) -> i64 {
        let gap = (1_200.0 * 8e6 / bps) as i64;
        let mut at = from_us;
        while at < from_us + (seconds * 1e6) as i64 {
            smoothed.add(at, 1_200);
            windowed.add(at, 1_200);
            at += gap;
        }
        at
    }

    #[test]
    fn measures_a_steady_rate_and_follows_a_lasting_change() {
        let (mut smoothed, mut windowed) = (AckedThroughput::default(), AckedRate::default());
        assert_eq!(smoothed.bps(), None);
        let at = steady(&mut smoothed, &mut windowed, 7_000_000, 3.0, 600_000.0);
        let bps = smoothed.bps().expect("known");
        assert!((bps - 600_000.0).abs() < 0.05 * 600_000.0, "{bps}");
        // Down to 300 kbit/s for good: followed within a couple of seconds.
        let at = steady(&mut smoothed, &mut windowed, at, 2.0, 300_000.0);
        let bps = smoothed.bps().expect("known");
        assert!((bps - 300_000.0).abs() < 0.1 * 300_000.0, "{bps}");
        // And up again.
        steady(&mut smoothed, &mut windowed, at, 4.0, 1_000_000.0);
        let bps = smoothed.bps().expect("known");
        assert!(bps > 800_000.0, "{bps}");
    }

    /// The collapse this replaces: 600 kbit/s delivered, then nothing for 1.2 s (an outage,
    /// a starved receiver's reader), then packets again. The half-second window read a few
    /// tens of kbit/s at the first packets after the gap, and a delay overuse then cut the
    /// estimate to 0.85 × that, to the floor.
    #[test]
    fn a_gap_in_arrivals_is_no_sample() {
        let (mut smoothed, mut windowed) = (AckedThroughput::default(), AckedRate::default());
        let at = steady(&mut smoothed, &mut windowed, 0, 3.0, 600_000.0);
        let resumed = at + 1_200_000;
        for i in 0..3 {
            smoothed.add(resumed + i * 16_000, 1_200);
            windowed.add(resumed + i * 16_000, 1_200);
        }
        let window = windowed.bps().expect("known");
        assert!(window < 100_000.0, "the old window reads {window}");
        let bps = smoothed.bps().expect("known");
        assert!(bps > 550_000.0, "{bps}");
    }

    /// A bursty receiver: every other 150 ms nearly nothing is acknowledged, then twice as
    /// much (600 kbit/s on average). The estimate stays near the average, far above the
    /// quiet windows.
    #[test]
    fn bursts_and_lulls_average_out() {
        let mut smoothed = AckedThroughput::default();
        let mut at = 0i64;
        for round in 0..40 {
            let (packets, span) = if round % 2 == 0 {
                (19, 150_000)
            } else {
                (0, 150_000)
            };
            let mut t = at;
            for _ in 0..packets {
                smoothed.add(t, 1_200);
                t += span / 19;
            }
            if packets == 0 {
                smoothed.add(at + span / 2, 60); // an audio packet
            }
            at += span;
        }
        let bps = smoothed.bps().expect("known");
        assert!((400_000.0..900_000.0).contains(&bps), "{bps}");
    }

    #[test]
    fn survives_clock_jumps_and_extremes() {
        let mut smoothed = AckedThroughput::default();
        for at in [i64::MAX, 0, i64::MIN, -5, i64::MAX / 2, 3] {
            smoothed.add(at, usize::MAX);
            assert!(smoothed.bps().is_none_or(|bps| !bps.is_nan()));
        }
        let mut smoothed = AckedThroughput::default();
        let (mut windowed, mut at) = (AckedRate::default(), 100_000_000);
        at = steady(&mut smoothed, &mut windowed, at, 1.0, 600_000.0);
        let before = smoothed.bps().expect("known");
        // The receiver restarted its clock: the estimate carries on.
        steady(&mut smoothed, &mut windowed, 1_000, 1.0, 600_000.0);
        let after = smoothed.bps().expect("known");
        assert!(
            (after - before).abs() < 0.1 * before,
            "{before} -> {after} ({at})"
        );
    }
}
