//! The acknowledged bitrate: bytes the receiver reports receiving per second of its own
//! arrival clock, over the last half second. Fixed memory whatever the rate.

const BIN_US: i64 = 25_000;
const BINS: usize = 20;
/// Until this much arrival time has been seen, the rate is unknown.
const MIN_SPAN_US: i64 = 100_000;
/// An arrival this far behind the newest one means the receiver's clock restarted.
const CLOCK_RESET_US: i64 = 10_000_000;

#[derive(Debug)]
pub(super) struct AckedRate {
    /// (bin number, bytes), bin number = arrival / BIN_US.
    bins: [(i64, u64); BINS],
    newest_bin: Option<i64>,
    newest_arrival: i64,
    first_arrival: i64,
}

impl Default for AckedRate {
    fn default() -> Self {
        AckedRate {
            bins: [(i64::MIN, 0); BINS],
            newest_bin: None,
            newest_arrival: 0,
            first_arrival: 0,
        }
    }
}

impl AckedRate {
    pub fn add(&mut self, arrival_us: i64, size: usize) {
        let bin = arrival_us.div_euclid(BIN_US);
        match self.newest_bin {
            Some(_) if arrival_us < self.newest_arrival.saturating_sub(CLOCK_RESET_US) => {
                *self = AckedRate::default();
                self.start(bin, arrival_us);
            }
            None => self.start(bin, arrival_us),
            Some(newest) if bin > newest => {
                self.newest_bin = Some(bin);
                self.newest_arrival = arrival_us;
            }
            Some(newest) => {
                if bin <= newest - BINS as i64 {
                    return; // older than the window
                }
                self.newest_arrival = self.newest_arrival.max(arrival_us);
            }
        }
        let slot = &mut self.bins[bin.rem_euclid(BINS as i64) as usize];
        if slot.0 != bin {
            *slot = (bin, 0);
        }
        slot.1 = slot.1.saturating_add(size as u64);
    }

    fn start(&mut self, bin: i64, arrival_us: i64) {
        self.newest_bin = Some(bin);
        self.newest_arrival = arrival_us;
        self.first_arrival = arrival_us;
    }

    /// Bits per second over the window, once there is enough to say.
    pub fn bps(&self) -> Option<f64> {
        let newest = self.newest_bin?;
        let oldest = newest - (BINS as i64 - 1);
        let window_start = oldest.saturating_mul(BIN_US).max(self.first_arrival);
        let span = self.newest_arrival.saturating_sub(window_start);
        if span < MIN_SPAN_US {
            return None;
        }
        let bytes = self
            .bins
            .iter()
            .filter(|(bin, _)| (oldest..=newest).contains(bin))
            .fold(0u64, |sum, (_, bytes)| sum.saturating_add(*bytes));
        Some(bytes as f64 * 8.0 * 1e6 / span as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_steady_rate_and_follows_changes() {
        let mut rate = AckedRate::default();
        assert_eq!(rate.bps(), None);
        // 1200-byte packets every 4.8 ms: 2 Mbps.
        let mut at = 7_000_000i64;
        for _ in 0..500 {
            rate.add(at, 1_200);
            at += 4_800;
        }
        let bps = rate.bps().expect("known");
        assert!((bps - 2e6).abs() < 0.05 * 2e6, "{bps}");
        for _ in 0..200 {
            rate.add(at, 1_200);
            at += 9_600;
        }
        let bps = rate.bps().expect("known");
        assert!((bps - 1e6).abs() < 0.05 * 1e6, "{bps}");
    }

    #[test]
    fn survives_clock_jumps_and_extremes() {
        let mut rate = AckedRate::default();
        for at in [i64::MAX, 0, i64::MIN, -5, i64::MAX / 2, 3] {
            rate.add(at, usize::MAX);
            let _ = rate.bps();
        }
        let mut rate = AckedRate::default();
        rate.add(100_000_000, 1_000);
        rate.add(1_000, 1_000); // the receiver restarted its clock
        rate.add(201_000, 1_000);
        assert!(rate.bps().is_some());
    }
}
