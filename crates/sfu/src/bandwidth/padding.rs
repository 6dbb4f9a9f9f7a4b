//! Pacing a probe's padding: how many padding-only packets are due at each tick, so a
//! rate goes out evenly rather than in bursts a token-bucket shaper would let through
//! (and so overstate what the path carries). The rate ramps up over [`RAMP`]: if the path
//! cannot carry the whole of it, the queue starts growing when the rate crosses what it
//! can carry, slowly, and the probe is stopped before much is queued.
use std::time::{Duration, Instant};

/// Padding bytes in one padding-only RTP packet: the most the one-byte padding count of
/// RFC 3550 can describe.
pub const PADDING_BYTES: usize = 255;
/// What one padding packet costs on the wire as the send history counts it: the padding,
/// an RTP header with extensions and the SRTP tag.
pub const PADDING_PACKET_BYTES: usize = PADDING_BYTES + 45;
/// Credit never builds up beyond this much time at the rate (or two packets): a late tick
/// does not turn into a burst.
const MAX_CREDIT: Duration = Duration::from_millis(20);
/// The rate grows from nothing to its full value over this long.
pub const RAMP: Duration = Duration::from_millis(400);

#[derive(Debug, Default)]
pub struct PaddingPacer {
    bps: u64,
    started: Option<Instant>,
    last: Option<Instant>,
    credit_bytes: f64,
}

impl PaddingPacer {
    /// Sets the padding rate (0 stops it); a pacer that was stopped starts its ramp at
    /// `now`.
    pub fn set_rate(&mut self, now: Instant, bps: u64) {
        if bps == 0 {
            *self = PaddingPacer::default();
            return;
        }
        if self.bps == 0 {
            self.started = Some(now);
            self.last = Some(now);
        }
        self.bps = bps;
    }

    pub fn is_active(&self) -> bool {
        self.bps > 0
    }

    /// How many padding packets to send at `now`.
    pub fn due(&mut self, now: Instant) -> usize {
        let (Some(started), Some(last)) = (self.started, self.last) else {
            return 0;
        };
        let elapsed = now.saturating_duration_since(last).min(MAX_CREDIT);
        self.last = Some(now);
        let ramp =
            (now.saturating_duration_since(started).as_secs_f64() / RAMP.as_secs_f64()).min(1.0);
        let bps = self.bps as f64 * ramp;
        // At least two packets' worth, or a low rate would lose credit (or send nothing).
        let max = (bps / 8.0 * MAX_CREDIT.as_secs_f64()).max(2.0 * PADDING_PACKET_BYTES as f64);
        self.credit_bytes = (self.credit_bytes + bps / 8.0 * elapsed.as_secs_f64()).min(max);
        let packets = (self.credit_bytes / PADDING_PACKET_BYTES as f64).floor();
        self.credit_bytes -= packets * PADDING_PACKET_BYTES as f64;
        packets as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_up_then_paces_the_rate_evenly_and_never_bursts_after_a_late_tick() {
        let t0 = Instant::now();
        let mut pacer = PaddingPacer::default();
        assert_eq!(pacer.due(t0), 0);
        pacer.set_rate(t0, 1_200_000);
        let mut sent = 0;
        let mut ramp = 0;
        for ms in (5..=1_400).step_by(5) {
            let due = pacer.due(t0 + Duration::from_millis(ms));
            assert!(due <= 3, "{due} at {ms} ms");
            sent += due;
            if ms == 200 {
                ramp = sent;
            }
        }
        // Half-way through the ramp, a quarter of what the full rate would have sent.
        let quarter = 1_200_000 / 8 / 5 / 4 / PADDING_PACKET_BYTES;
        assert!(
            ramp.abs_diff(quarter) <= 2,
            "{ramp} packets, {quarter} expected"
        );
        // Half the ramp's worth, then the full rate for a second.
        let bps = (sent * PADDING_PACKET_BYTES * 8) as f64 / 1.2;
        assert!((1_130_000.0..=1_210_000.0).contains(&bps), "{bps}");
        // A tick 500 ms late sends 20 ms worth, not 500.
        assert!(pacer.due(t0 + Duration::from_millis(1_500)) <= 10);
        pacer.set_rate(t0, 0);
        assert!(!pacer.is_active());
        // A rate below one packet per 20 ms still goes out, evenly.
        pacer.set_rate(t0, 100_000);
        let low: usize = (15..=2_400)
            .step_by(15)
            .map(|ms| pacer.due(t0 + Duration::from_millis(ms)))
            .sum();
        let bps = (low * PADDING_PACKET_BYTES * 8) as f64 / 2.2;
        assert!((90_000.0..=100_000.0).contains(&bps), "{bps}");
        pacer.set_rate(t0, 0);
        assert_eq!(pacer.due(t0 + Duration::from_secs(2)), 0);
    }
}
