//! The loss-based cap on the estimate.
//!
//! Packets lost while a queue stands at the bottleneck (the delay signal shows one) are
//! **congestion loss**: the queue overflowed because we sent too much. Packets lost on a
//! path without a queue are **random loss** (radio, a bad cable, a lossy hop): sending less
//! would not save them, and NACK repairs them, so they do not lower the estimate — unless
//! so much is lost (over a quarter) that the path is useless at this rate either way.
//!
//! Over windows of at least 50 packets and 250 ms: more than 10 % congestion loss cuts the
//! estimate to 0.85 × the smoothed acknowledged throughput (a queue overflowing means the
//! bottleneck is full, so what gets through is its capacity; `acked_throughput.rs`), other
//! loss over a quarter by (1 − 0.5 × loss),
//! at most once per 300 ms + RTT; 2–10 % holds it; less lets it grow again (8 %/s) until
//! the delay-based estimate takes over.

use std::time::{Duration, Instant};

const LOSS_HIGH: f64 = 0.10;
const LOSS_LOW: f64 = 0.02;
/// Any loss above this counts, whatever its cause.
const LOSS_SEVERE: f64 = 0.25;
const MIN_PACKETS: u32 = 50;
const MIN_WINDOW: Duration = Duration::from_millis(250);
const MAX_WINDOW: Duration = Duration::from_secs(1);
const DECREASE_INTERVAL: Duration = Duration::from_millis(300);
/// After congestion loss, the estimate is at most this share of the acknowledged rate.
const ACKED_SHARE: f64 = 0.85;
pub(super) const INCREASE_PER_SECOND: f64 = 1.08;
/// Every increase adds at least this, so very low estimates still move.
pub(super) const MIN_INCREASE_BPS_PER_SECOND: f64 = 1_000.0;
/// Longest step of an increase, so a gap in feedback does not become a jump.
pub(super) const MAX_STEP: Duration = Duration::from_secs(1);

/// One window's losses, as fractions of the packets reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LossFractions {
    /// Lost while a queue stood.
    pub congestion: f64,
    /// Lost at all.
    pub all: f64,
}

impl LossFractions {
    /// Losses whose cause is unknown (receiver reports): all count as congestion.
    pub fn unknown_cause(fraction: f64) -> Self {
        LossFractions {
            congestion: fraction,
            all: fraction,
        }
    }

    /// Whether enough was lost to congestion for a cut on its own.
    fn is_congestion(&self) -> bool {
        self.congestion > LOSS_HIGH
    }

    /// The share of the packets that loss-based control acts on.
    fn counted(&self) -> f64 {
        if self.all > LOSS_SEVERE {
            self.all
        } else {
            self.congestion
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum LossAction {
    Decreased,
    Held,
    Increased { seconds: f64 },
}

/// `cap == None` means loss does not constrain the estimate.
#[derive(Debug, Default)]
pub(super) struct LossControl {
    congested: u32,
    lost: u32,
    total: u32,
    window_start: Option<Instant>,
    pub cap: Option<f64>,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
}

impl LossControl {
    /// Counts one feedback's packets: `lost` of `total` went missing, `congested` of those
    /// while a queue stood. Returns the window's fractions when it is complete.
    pub fn add(
        &mut self,
        now: Instant,
        congested: u32,
        lost: u32,
        total: u32,
    ) -> Option<LossFractions> {
        self.congested = self.congested.saturating_add(congested);
        self.lost = self.lost.saturating_add(lost);
        self.total = self.total.saturating_add(total);
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        let complete = (self.total >= MIN_PACKETS && elapsed >= MIN_WINDOW)
            || (self.total > 0 && elapsed >= MAX_WINDOW);
        if !complete {
            return None;
        }
        let total = f64::from(self.total);
        let fractions = LossFractions {
            congestion: f64::from(self.congested) / total,
            all: f64::from(self.lost) / total,
        };
        *self = LossControl {
            cap: self.cap,
            last_update: self.last_update,
            last_decrease: self.last_decrease,
            ..LossControl::default()
        };
        Some(fractions)
    }

    /// A single feedback showed the bottleneck overflowing while it delivered
    /// `delivered` (`overflow.rs`): the estimate goes just below that at once, without
    /// waiting for the window. Repeated while the queue drains, it does not compound: each
    /// goes to the rate measured, not a share of the last cut.
    pub fn overflow(&mut self, now: Instant, current: f64, delivered: f64) -> LossAction {
        let cap = ACKED_SHARE * delivered;
        if cap.is_nan() || cap >= current {
            return LossAction::Held;
        }
        self.cap = Some(self.cap.map_or(cap, |c| c.min(cap)));
        self.last_decrease = Some(now);
        LossAction::Decreased
    }

    /// Acts on one window: `current` is the estimate, `acked` the acknowledged rate if
    /// known.
    pub fn apply(
        &mut self,
        now: Instant,
        fractions: LossFractions,
        current: f64,
        acked: Option<f64>,
        rtt: Duration,
    ) -> LossAction {
        let seconds = self.last_update.map_or(0.0, |at| {
            now.saturating_duration_since(at)
                .min(MAX_STEP)
                .as_secs_f64()
        });
        self.last_update = Some(now);
        let fraction = fractions.counted();
        if fraction > LOSS_HIGH {
            let interval = DECREASE_INTERVAL + rtt;
            if self
                .last_decrease
                .is_none_or(|at| now.saturating_duration_since(at) >= interval)
            {
                self.last_decrease = Some(now);
                let cap = match acked.filter(|_| fractions.is_congestion()) {
                    // The bottleneck is full, so what gets through is its capacity: go just
                    // below it, however much is lost. Compounding (1 − loss / 2) cuts while
                    // a queue overfilled by a burst drains took the estimate to the floor.
                    Some(acked) => current.min(ACKED_SHARE * acked),
                    None => current * (1.0 - 0.5 * fraction),
                };
                self.cap = Some(cap);
                return LossAction::Decreased;
            }
            self.cap.get_or_insert(current);
            return LossAction::Held;
        }
        if fraction >= LOSS_LOW {
            self.cap.get_or_insert(current);
            return LossAction::Held;
        }
        if let Some(cap) = self.cap.as_mut() {
            *cap = *cap * INCREASE_PER_SECOND.powf(seconds) + MIN_INCREASE_BPS_PER_SECOND * seconds;
        }
        LossAction::Increased { seconds }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(control: &mut LossControl, at: Instant, congested: u32, lost: u32) -> LossAction {
        let fractions = control
            .add(at, congested, lost, 100)
            .or_else(|| control.add(at + MAX_WINDOW, 0, 0, 0))
            .expect("a complete window");
        control.apply(
            at,
            fractions,
            1_000_000.0,
            Some(900_000.0),
            Duration::from_millis(50),
        )
    }

    #[test]
    fn congestion_loss_cuts_random_loss_does_not() {
        let t0 = Instant::now();
        let mut control = LossControl::default();
        assert!(matches!(
            window(&mut control, t0, 0, 15),
            LossAction::Increased { .. }
        ));
        assert_eq!(control.cap, None);
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(window(&mut control, t1, 15, 15), LossAction::Decreased);
        // 0.85 × the 900k that got through is below 1 M × (1 − 0.5 × 0.15).
        assert_eq!(control.cap, Some(0.85 * 900_000.0));
    }

    #[test]
    fn heavy_congestion_loss_cuts_to_below_the_throughput_not_to_the_floor() {
        // A burst overfilled a 600 kbit/s bottleneck: 70 % lost window after window while
        // its queue drains, 600k getting through.
        let mut control = LossControl::default();
        let mut current = 2_000_000.0;
        let t0 = Instant::now();
        for i in 0..10u32 {
            let at = t0 + Duration::from_secs(u64::from(i));
            let fractions = control
                .add(at, 70, 70, 100)
                .or_else(|| control.add(at + MAX_WINDOW, 0, 0, 0))
                .expect("a complete window");
            let action = control.apply(
                at,
                fractions,
                current,
                Some(600_000.0),
                Duration::from_millis(50),
            );
            assert_eq!(action, LossAction::Decreased);
            current = control.cap.expect("capped");
        }
        assert_eq!(current, 0.85 * 600_000.0);
    }

    #[test]
    fn so_much_loss_that_the_cause_does_not_matter_cuts() {
        let mut control = LossControl::default();
        assert_eq!(
            window(&mut control, Instant::now(), 0, 40),
            LossAction::Decreased
        );
        assert_eq!(control.cap, Some(1_000_000.0 * 0.8));
    }

    #[test]
    fn a_window_needs_enough_packets_or_a_second() {
        let t0 = Instant::now();
        let mut control = LossControl::default();
        assert_eq!(control.add(t0, 0, 5, 30), None);
        assert_eq!(control.add(t0 + MIN_WINDOW, 0, 0, 10), None);
        let complete = control.add(t0 + MIN_WINDOW, 2, 0, 10).expect("50 packets");
        assert_eq!(complete.all, 0.1);
        assert_eq!(complete.congestion, 0.04);
        assert_eq!(control.add(t0 + Duration::from_secs(2), 0, 1, 2), None);
        let slow = control
            .add(t0 + Duration::from_secs(3), 0, 0, 2)
            .expect("a second");
        assert_eq!(slow.all, 0.25);
    }
}
