//! One subscriber connection's send-side bandwidth estimate.
//!
//! Two controllers look at the same transport-cc results and the lower wins:
//!
//! * **Delay-based** (`delay.rs`): an AIMD controller driven by the overuse signal.
//!   Overuse cuts the estimate to 0.85 × the acknowledged bitrate (at most once per RTT);
//!   underuse holds it (the queue is draining); otherwise it grows: faster (18 %/s) until
//!   the first congestion signal, 8 %/s afterwards, and only additively (half a packet per
//!   response time) while the acknowledged rate is near the capacity measured at earlier
//!   overuses. It never grows past 1.5 × the acknowledged bitrate + 10 kbps, so an idle or
//!   app-limited connection does not claim bandwidth it has never shown.
//! * **Loss-based**: over windows of at least 20 packets, more than 10 % lost cuts the
//!   estimate by (1 − 0.5 × loss) (at most once per 300 ms + RTT), 2–10 % holds it, less
//!   than 2 % lets it grow again (8 %/s) until the delay-based estimate takes over.
//!
//! Clients without transport-cc feedback (none for 2 s) fall back to their REMB as the
//! base estimate and to receiver-report loss fractions for the loss-based cut.

use std::time::{Duration, Instant};

use super::acked_rate::AckedRate;
use super::delay::{DelayDetector, Usage};
use super::feedback::PacketResult;

const DECREASE_FACTOR: f64 = 0.85;
const INCREASE_PER_SECOND: f64 = 1.08;
/// Until the first congestion signal: stands in for the probing a browser would do.
const STARTUP_INCREASE_PER_SECOND: f64 = 1.18;
/// Every increase adds at least this, so very low estimates still move.
const MIN_INCREASE_BPS_PER_SECOND: f64 = 1_000.0;
const MIN_ADDITIVE_BPS_PER_SECOND: f64 = 4_000.0;
/// Added to the RTT: how long a rate change takes to show up in feedback.
const RESPONSE_MARGIN: Duration = Duration::from_millis(100);
const ACKED_HEADROOM: f64 = 1.5;
const ACKED_HEADROOM_BPS: f64 = 10_000.0;
/// Longest step of an increase, so a gap in feedback does not become a jump.
const MAX_STEP: Duration = Duration::from_secs(1);
const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// Transport-cc feedback newer than this disables the REMB and receiver-report fallback.
const TCC_TIMEOUT: Duration = Duration::from_secs(2);
/// Results for packets sent longer ago than this are ignored (history wrap, bad input).
const STALE_RESULT: Duration = Duration::from_secs(10);
/// Relative spread of the capacity samples, bounds of the "near capacity" band (± 3 σ).
const CAPACITY_SIGMA_MIN: f64 = 0.05;
const CAPACITY_SIGMA_MAX: f64 = 0.25;
const CAPACITY_SMOOTHING: f64 = 0.05;
const PACKET_SIZE_SMOOTHING: f64 = 0.05;

const LOSS_HIGH: f64 = 0.10;
const LOSS_LOW: f64 = 0.02;
const LOSS_MIN_PACKETS: u32 = 20;
const LOSS_MIN_WINDOW: Duration = Duration::from_millis(100);
const LOSS_MAX_WINDOW: Duration = Duration::from_secs(1);
const LOSS_DECREASE_INTERVAL: Duration = Duration::from_millis(300);

/// Limits and starting point of one estimator, in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstimatorConfig {
    pub initial_bps: u64,
    pub min_bps: u64,
    pub max_bps: u64,
}

impl Default for EstimatorConfig {
    fn default() -> Self {
        EstimatorConfig {
            initial_bps: 300_000,
            min_bps: 30_000,
            max_bps: 20_000_000,
        }
    }
}

/// The send-side bandwidth estimate for one subscriber connection. Synchronous; every
/// input carries its own `now`, which must not go backwards (if it does, elapsed times
/// count as zero).
#[derive(Debug)]
pub struct BandwidthEstimator {
    min_bps: u64,
    max_bps: u64,
    epoch: Instant,
    delay: DelayDetector,
    acked: AckedRate,
    rate: DelayRate,
    loss: LossControl,
    remb_bps: Option<u64>,
    last_tcc: Option<Instant>,
    /// Whether the last input was transport-cc (else the REMB/receiver-report fallback).
    using_tcc: bool,
    rtt: Duration,
    packet_bytes: f64,
    estimate_bps: u64,
    last_overuse: Option<Instant>,
}

impl BandwidthEstimator {
    pub fn new(config: EstimatorConfig, now: Instant) -> Self {
        let min_bps = config.min_bps.max(1);
        let max_bps = config.max_bps.max(min_bps);
        let initial = config.initial_bps.clamp(min_bps, max_bps);
        BandwidthEstimator {
            min_bps,
            max_bps,
            epoch: now,
            delay: DelayDetector::default(),
            acked: AckedRate::default(),
            rate: DelayRate {
                bps: initial as f64,
                state: RateState::Increase,
                last_update: None,
                last_decrease: None,
                startup: true,
                capacity: None,
            },
            loss: LossControl::default(),
            remb_bps: None,
            last_tcc: None,
            using_tcc: false,
            rtt: DEFAULT_RTT,
            packet_bytes: 1_200.0,
            estimate_bps: initial,
            last_overuse: None,
        }
    }

    /// The current estimate, within the configured limits.
    pub fn estimate_bps(&self) -> u64 {
        self.estimate_bps
    }

    /// What the receiver acknowledged over the last half second of its clock (0 until
    /// transport-cc feedback has covered 100 ms). Not updated by the fallback inputs.
    pub fn acked_bps(&self) -> u64 {
        self.acked.bps().map_or(0, |bps| bps as u64)
    }

    /// The delay signal after the latest feedback (`Normal` while in fallback).
    pub fn usage(&self) -> Usage {
        if self.using_tcc {
            self.delay.usage()
        } else {
            Usage::Normal
        }
    }

    /// When congestion was last seen: a delay overuse signal or a loss-based cut.
    pub fn last_overuse(&self) -> Option<Instant> {
        self.last_overuse
    }

    /// The connection's round-trip time, e.g. from receiver reports (default 100 ms). It
    /// paces decreases and sets the additive increase step.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt.clamp(Duration::from_millis(1), Duration::from_secs(10));
    }

    /// One transport-cc feedback's results, as [`super::FeedbackParser`] produced them.
    pub fn on_packet_results(&mut self, now: Instant, results: &[PacketResult]) {
        let mut lost = 0u32;
        let mut total = 0u32;
        let mut received = false;
        for result in results {
            if now.saturating_duration_since(result.sent_at) > STALE_RESULT {
                continue;
            }
            total = total.saturating_add(1);
            let Some(arrival) = result.arrival else {
                lost = lost.saturating_add(1);
                continue;
            };
            received = true;
            self.acked.add(arrival, result.size);
            self.delay.on_packet(self.micros(result.sent_at), arrival);
            self.packet_bytes +=
                PACKET_SIZE_SMOOTHING * (result.size.min(65_535) as f64 - self.packet_bytes);
        }
        if total == 0 {
            return;
        }
        if !self.using_tcc {
            // First feedback, or back from the fallback: continue from where it was.
            self.rate.bps = self.estimate_bps as f64;
            self.using_tcc = true;
        }
        self.last_tcc = Some(now);
        if received {
            let usage = self.delay.usage();
            if usage == Usage::Overusing {
                self.last_overuse = Some(now);
            }
            let step = RateStep {
                now,
                acked: self.acked.bps(),
                rtt: self.rtt,
                packet_bits: self.packet_bytes * 8.0,
                min: self.min_bps as f64,
                max: self.max_bps as f64,
            };
            self.rate.update(usage, &step);
        }
        if let Some(fraction) = self.loss.add(now, lost, total) {
            self.apply_loss(now, fraction);
        }
        self.recompute();
    }

    /// The receiver's REMB; ignored while transport-cc feedback is arriving.
    pub fn on_remb(&mut self, now: Instant, bitrate_bps: u64) {
        if self.tcc_active(now) {
            return;
        }
        self.using_tcc = false;
        self.remb_bps = Some(bitrate_bps);
        self.recompute();
    }

    /// A receiver report's fraction lost (0.0–1.0); ignored while transport-cc feedback is
    /// arriving.
    pub fn on_receiver_loss(&mut self, now: Instant, fraction_lost: f64) {
        if self.tcc_active(now) || !fraction_lost.is_finite() {
            return;
        }
        self.using_tcc = false;
        self.apply_loss(now, fraction_lost.clamp(0.0, 1.0));
        self.recompute();
    }

    /// A probe (the allocator trying a higher layer for a while) delivered `bps` with no
    /// sign of congestion: the path carries at least that much, so the estimate rises to
    /// it at once instead of creeping up.
    pub fn on_probe_result(&mut self, bps: u64) {
        let bps = (bps as f64).min(self.max_bps as f64);
        if bps > self.rate.bps {
            self.rate.bps = bps;
        }
        if self.loss.cap.is_some_and(|cap| cap < bps) {
            self.loss.cap = None;
        }
        self.recompute();
    }

    fn tcc_active(&self, now: Instant) -> bool {
        self.last_tcc
            .is_some_and(|at| now.saturating_duration_since(at) < TCC_TIMEOUT)
    }

    /// What the loss-based cap is compared with: the delay-based estimate or the REMB.
    fn base_bps(&self) -> f64 {
        match (self.using_tcc, self.remb_bps) {
            (false, Some(remb)) => remb as f64,
            _ => self.rate.bps,
        }
    }

    fn apply_loss(&mut self, now: Instant, fraction: f64) {
        let current = self.estimate_bps as f64;
        match self.loss.apply(now, fraction, current, self.rtt) {
            LossAction::Decreased => {
                self.last_overuse = Some(now);
                self.rate.startup = false;
                if let Some(cap) = self.loss.cap {
                    // Keep the delay-based estimate from sitting far above what is sent.
                    self.rate.bps = self.rate.bps.min(cap).max(self.min_bps as f64);
                }
            }
            LossAction::Held => {}
            LossAction::Increased { seconds } => {
                if !self.using_tcc && self.remb_bps.is_none() {
                    // Receiver reports are all there is: a clean path is the only evidence.
                    self.rate.bps = (self.rate.bps * INCREASE_PER_SECOND.powf(seconds)
                        + MIN_INCREASE_BPS_PER_SECOND * seconds)
                        .min(self.max_bps as f64);
                }
            }
        }
        let base = self.base_bps();
        if self.loss.cap.is_some_and(|cap| cap >= base) {
            self.loss.cap = None;
        }
    }

    fn recompute(&mut self) {
        let base = self.base_bps();
        let bps = self.loss.cap.map_or(base, |cap| base.min(cap));
        if bps.is_finite() {
            self.estimate_bps = (bps.max(0.0) as u64).clamp(self.min_bps, self.max_bps);
        }
    }

    /// `at` in µs since the estimator was created (negative if earlier).
    fn micros(&self, at: Instant) -> i64 {
        match at.checked_duration_since(self.epoch) {
            Some(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            None => {
                let before = self.epoch.saturating_duration_since(at).as_micros();
                i64::try_from(before).map_or(i64::MIN, |b| -b)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateState {
    Hold,
    Increase,
}

/// The inputs of one delay-based update.
struct RateStep {
    now: Instant,
    acked: Option<f64>,
    rtt: Duration,
    packet_bits: f64,
    min: f64,
    max: f64,
}

/// The delay-based AIMD controller.
#[derive(Debug)]
struct DelayRate {
    bps: f64,
    state: RateState,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    /// No congestion seen yet: grow faster.
    startup: bool,
    /// The acknowledged rates at which overuse happened: where the link's limit is.
    capacity: Option<Capacity>,
}

impl DelayRate {
    fn update(&mut self, usage: Usage, step: &RateStep) {
        let seconds = self.last_update.map_or(0.0, |at| {
            step.now
                .saturating_duration_since(at)
                .min(MAX_STEP)
                .as_secs_f64()
        });
        self.last_update = Some(step.now);
        match usage {
            Usage::Overusing => {
                self.decrease(step);
                self.state = RateState::Hold;
            }
            Usage::Underusing => self.state = RateState::Hold,
            Usage::Normal => match self.state {
                RateState::Hold => self.state = RateState::Increase,
                RateState::Increase => self.increase(seconds, step),
            },
        }
        self.bps = self.bps.clamp(step.min, step.max);
    }

    fn decrease(&mut self, step: &RateStep) {
        let interval = step
            .rtt
            .clamp(Duration::from_millis(10), Duration::from_millis(200));
        if self
            .last_decrease
            .is_some_and(|at| step.now.saturating_duration_since(at) < interval)
        {
            return;
        }
        self.last_decrease = Some(step.now);
        self.startup = false;
        let Some(acked) = step.acked else {
            self.bps *= DECREASE_FACTOR;
            return;
        };
        match self.capacity.as_mut() {
            Some(capacity) if acked >= capacity.lower() => capacity.add(acked),
            // Far below what the link did before: that estimate is out of date.
            _ => self.capacity = Some(Capacity::new(acked)),
        }
        self.bps = self.bps.min(DECREASE_FACTOR * acked);
    }

    fn increase(&mut self, seconds: f64, step: &RateStep) {
        if let (Some(capacity), Some(acked)) = (&self.capacity, step.acked) {
            if acked > capacity.upper() {
                // Beyond the old limit: the path changed, search multiplicatively again.
                self.capacity = None;
            }
        }
        let mut grown = if self.startup {
            self.bps * STARTUP_INCREASE_PER_SECOND.powf(seconds)
        } else if self.capacity.is_some() {
            let response = (step.rtt + RESPONSE_MARGIN).as_secs_f64();
            let per_second = (0.5 * step.packet_bits / response).max(MIN_ADDITIVE_BPS_PER_SECOND);
            self.bps + per_second * seconds
        } else {
            self.bps * INCREASE_PER_SECOND.powf(seconds)
        };
        grown = grown.max(self.bps + MIN_INCREASE_BPS_PER_SECOND * seconds);
        if let Some(acked) = step.acked {
            let limit = ACKED_HEADROOM * acked + ACKED_HEADROOM_BPS;
            if grown > limit {
                grown = self.bps.max(limit);
            }
        }
        self.bps = grown;
    }
}

/// Running mean and relative spread of the acknowledged rate at overuse.
#[derive(Debug, Clone, Copy)]
struct Capacity {
    mean: f64,
    relative_variance: f64,
}

impl Capacity {
    fn new(sample: f64) -> Self {
        Capacity {
            mean: sample,
            relative_variance: 0.0,
        }
    }

    fn add(&mut self, sample: f64) {
        let deviation = (sample - self.mean) / self.mean.max(1.0);
        self.relative_variance +=
            CAPACITY_SMOOTHING * (deviation * deviation - self.relative_variance);
        self.mean += CAPACITY_SMOOTHING * (sample - self.mean);
    }

    fn sigma(&self) -> f64 {
        self.relative_variance
            .sqrt()
            .clamp(CAPACITY_SIGMA_MIN, CAPACITY_SIGMA_MAX)
            * self.mean
    }

    fn upper(&self) -> f64 {
        self.mean + 3.0 * self.sigma()
    }

    fn lower(&self) -> f64 {
        self.mean - 3.0 * self.sigma()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum LossAction {
    Decreased,
    Held,
    Increased { seconds: f64 },
}

/// The loss-based cap on the estimate; `cap == None` means loss does not constrain it.
#[derive(Debug, Default)]
struct LossControl {
    lost: u32,
    total: u32,
    window_start: Option<Instant>,
    cap: Option<f64>,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
}

impl LossControl {
    /// Counts one feedback's packets; returns the loss fraction when a window is complete.
    fn add(&mut self, now: Instant, lost: u32, total: u32) -> Option<f64> {
        self.lost = self.lost.saturating_add(lost);
        self.total = self.total.saturating_add(total);
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        let complete = (self.total >= LOSS_MIN_PACKETS && elapsed >= LOSS_MIN_WINDOW)
            || (self.total > 0 && elapsed >= LOSS_MAX_WINDOW);
        if !complete {
            return None;
        }
        let fraction = f64::from(self.lost) / f64::from(self.total);
        self.lost = 0;
        self.total = 0;
        self.window_start = None;
        Some(fraction)
    }

    fn apply(&mut self, now: Instant, fraction: f64, current: f64, rtt: Duration) -> LossAction {
        let seconds = self.last_update.map_or(0.0, |at| {
            now.saturating_duration_since(at)
                .min(MAX_STEP)
                .as_secs_f64()
        });
        self.last_update = Some(now);
        if fraction > LOSS_HIGH {
            let interval = LOSS_DECREASE_INTERVAL + rtt;
            if self
                .last_decrease
                .is_none_or(|at| now.saturating_duration_since(at) >= interval)
            {
                self.last_decrease = Some(now);
                self.cap = Some(current * (1.0 - 0.5 * fraction));
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
mod tests;
