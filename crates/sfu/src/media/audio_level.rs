//! How loud a published audio track is, from the RFC 6464 audio level the sender puts in
//! each packet's header extension: no decoding. The reader records every packet's level;
//! the room's speaker detector takes the average every interval.
use std::sync::atomic::{AtomicU64, Ordering};

/// Levels are kept as linear amplitude in millionths, summed, with a count beside them.
#[derive(Debug, Default)]
pub struct AudioLevelMeter {
    /// High 40 bits: sum of amplitudes in millionths; low 24 bits: packet count.
    packed: AtomicU64,
}

const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// RFC 6464 level (0 = 0 dBov, loudest; 127 = -127 dBov) to linear amplitude, 0.0–1.0.
pub fn amplitude(level: u8) -> f64 {
    10f64.powf(-f64::from(level.min(127)) / 20.0)
}

impl AudioLevelMeter {
    /// One packet's level (0–127, -dBov).
    pub fn record(&self, level: u8) {
        let micro = (amplitude(level) * 1e6) as u64;
        self.packed
            .fetch_add((micro << COUNT_BITS) | 1, Ordering::Relaxed);
    }

    /// The average amplitude since the last call, and how many packets it covers.
    pub fn take(&self) -> (f64, u64) {
        let packed = self.packed.swap(0, Ordering::Relaxed);
        let count = packed & COUNT_MASK;
        if count == 0 {
            return (0.0, 0);
        }
        let sum = (packed >> COUNT_BITS) as f64 / 1e6;
        (sum / count as f64, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_amplitudes_and_resets() {
        let m = AudioLevelMeter::default();
        assert_eq!(m.take(), (0.0, 0));
        m.record(0);
        m.record(127);
        let (avg, n) = m.take();
        assert_eq!(n, 2);
        assert!((avg - 0.5).abs() < 1e-3, "{avg}");
        assert_eq!(m.take().1, 0);
        m.record(20);
        assert!((m.take().0 - 0.1).abs() < 1e-3);
    }

    #[test]
    fn louder_is_larger() {
        assert!(amplitude(10) > amplitude(30));
        assert_eq!(amplitude(200), amplitude(127));
    }
}
