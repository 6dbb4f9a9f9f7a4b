//! The delay-based AIMD controller: what the delay signal does to the estimate.
//!
//! Overuse cuts the estimate to 0.85 × the smoothed acknowledged throughput (at most once per
//! RTT; see `acked_throughput.rs`);
//! underuse holds it (the queue is draining); otherwise it grows: faster (18 %/s) until the
//! first congestion signal, 8 %/s afterwards, and only additively (half a packet per
//! response time) while the acknowledged rate is near the capacity measured at earlier
//! overuses. It never grows past 1.5 × the acknowledged bitrate + 10 kbps, so an idle or
//! app-limited connection does not claim bandwidth it has never shown.

use std::time::{Duration, Instant};

use super::delay::Usage;
use super::loss::{INCREASE_PER_SECOND, MAX_STEP, MIN_INCREASE_BPS_PER_SECOND};

const DECREASE_FACTOR: f64 = 0.85;
/// Until the first congestion signal: stands in for the probing a browser would do.
const STARTUP_INCREASE_PER_SECOND: f64 = 1.18;
const MIN_ADDITIVE_BPS_PER_SECOND: f64 = 4_000.0;
/// Added to the RTT: how long a rate change takes to show up in feedback.
const RESPONSE_MARGIN: Duration = Duration::from_millis(100);
const ACKED_HEADROOM: f64 = 1.5;
const ACKED_HEADROOM_BPS: f64 = 10_000.0;
/// Relative spread of the capacity samples, bounds of the "near capacity" band (± 3 σ).
const CAPACITY_SIGMA_MIN: f64 = 0.05;
const CAPACITY_SIGMA_MAX: f64 = 0.25;
const CAPACITY_SMOOTHING: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateState {
    Hold,
    Increase,
}

/// The inputs of one delay-based update.
pub(super) struct RateStep {
    pub now: Instant,
    /// What the receiver acknowledged over the last half second: bounds increases.
    pub acked: Option<f64>,
    /// The smoothed acknowledged throughput (`acked_throughput.rs`): what decreases go to.
    pub throughput: Option<f64>,
    pub rtt: Duration,
    pub packet_bits: f64,
    pub min: f64,
    pub max: f64,
}

/// The delay-based AIMD controller.
#[derive(Debug)]
pub(super) struct DelayRate {
    pub bps: f64,
    state: RateState,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    /// No congestion seen yet: grow faster.
    pub startup: bool,
    /// The acknowledged rates at which overuse happened: where the link's limit is.
    capacity: Option<Capacity>,
}

impl DelayRate {
    pub fn new(bps: f64) -> Self {
        DelayRate {
            bps,
            state: RateState::Increase,
            last_update: None,
            last_decrease: None,
            startup: true,
            capacity: None,
        }
    }

    pub fn update(&mut self, usage: Usage, step: &RateStep) {
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
        let Some(throughput) = step.throughput else {
            self.bps *= DECREASE_FACTOR;
            return;
        };
        match self.capacity.as_mut() {
            Some(capacity) if throughput >= capacity.lower() => capacity.add(throughput),
            // Far below what the link did before: that estimate is out of date.
            _ => self.capacity = Some(Capacity::new(throughput)),
        }
        self.bps = self.bps.min(DECREASE_FACTOR * throughput);
    }

    fn increase(&mut self, seconds: f64, step: &RateStep) {
        if let (Some(capacity), Some(throughput)) = (&self.capacity, step.throughput) {
            if throughput > capacity.upper() {
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
