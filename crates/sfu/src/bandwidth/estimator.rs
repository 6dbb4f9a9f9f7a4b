//! One subscriber connection's send-side bandwidth estimate.
//!
//! Two controllers look at the same transport-cc results and the lower wins: the
//! delay-based one (`rate.rs`, driven by the queue signal of `delay.rs`) and the loss-based
//! cap (`loss.rs`), which counts a loss as congestion only when a queue stood at the time.
//!
//! Clients without transport-cc feedback (none for 2 s) fall back to their REMB as the
//! base estimate and to receiver-report loss fractions for the loss-based cut.

use std::time::{Duration, Instant};

use super::acked_rate::AckedRate;
use super::acked_throughput::AckedThroughput;
use super::delay::{DelayDetector, Usage};
use super::feedback::PacketResult;
use super::loss::{
    LossAction, LossControl, LossFractions, INCREASE_PER_SECOND, MIN_INCREASE_BPS_PER_SECOND,
};
use super::overflow::Train;
use super::rate::{DelayRate, RateStep};

const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// Transport-cc feedback newer than this disables the REMB and receiver-report fallback.
const TCC_TIMEOUT: Duration = Duration::from_secs(2);
/// Results for packets sent longer ago than this are ignored (history wrap, bad input).
const STALE_RESULT: Duration = Duration::from_secs(10);
const PACKET_SIZE_SMOOTHING: f64 = 0.05;
/// A loss within this of the delay signal last showing a queue is congestion loss: the
/// queue may show in the feedback just before or after the one reporting the loss.
const QUEUE_MEMORY: Duration = Duration::from_millis(500);

/// Loss without a queue in sight that still counts as the path overflowing: more than a
/// burst of random loss takes from a feedback's packets.
const OVERFLOW_WITHOUT_QUEUE: f64 = 0.5;

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
    /// The smoothed acknowledged rate that decreases go to.
    throughput: AckedThroughput,
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
    last_loss_cut: Option<Instant>,
    /// When a single feedback last showed the path overflowing (`overflow.rs`).
    last_overflow: Option<Instant>,
    /// The feedbacks' packets since the last overflow check.
    train: Train,
    /// When the delay signal last showed a standing or growing queue.
    last_queue: Option<Instant>,
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
            throughput: AckedThroughput::default(),
            rate: DelayRate::new(initial as f64),
            loss: LossControl::default(),
            remb_bps: None,
            last_tcc: None,
            using_tcc: false,
            rtt: DEFAULT_RTT,
            packet_bytes: 1_200.0,
            estimate_bps: initial,
            last_overuse: None,
            last_loss_cut: None,
            last_overflow: None,
            train: Train::default(),
            last_queue: None,
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

    /// When loss last cut the estimate: packets were lost to congestion (or so many that
    /// the cause no longer mattered), not only delayed.
    pub fn last_loss_cut(&self) -> Option<Instant> {
        self.last_loss_cut
    }

    /// When the delay signal last showed a queue standing or growing.
    pub fn last_queue(&self) -> Option<Instant> {
        self.last_queue
    }

    /// When a single feedback last showed the path overflowing: over a quarter of its
    /// packets lost (`overflow.rs`).
    pub fn last_overflow(&self) -> Option<Instant> {
        self.last_overflow
    }

    /// The connection's round-trip time, e.g. from receiver reports (default 100 ms). It
    /// paces decreases and sets the additive increase step.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt.clamp(Duration::from_millis(1), Duration::from_secs(10));
    }

    /// One transport-cc feedback's results, as [`super::FeedbackParser`] produced them.
    pub fn on_packet_results(&mut self, now: Instant, results: &[PacketResult]) {
        let fresh =
            |result: &&PacketResult| now.saturating_duration_since(result.sent_at) <= STALE_RESULT;
        // A queue that loses packets is not the path's usual state, however long it stands.
        self.delay
            .set_losing(results.iter().filter(fresh).any(|r| !r.received()));
        let mut lost = 0u32;
        let mut congested = 0u32;
        let mut total = 0u32;
        let mut received = false;
        self.train.begin(now);
        for result in results.iter().filter(fresh) {
            total = total.saturating_add(1);
            let Some(arrival) = result.arrival else {
                self.train.lost();
                lost = lost.saturating_add(1);
                if self.queue_seen(now) {
                    congested = congested.saturating_add(1);
                }
                continue;
            };
            received = true;
            self.train.received(arrival, result.size);
            self.acked.add(arrival, result.size);
            self.throughput.add(arrival, result.size);
            self.delay.on_packet(self.micros(result.sent_at), arrival);
            if self.delay.queue_building() {
                self.last_queue = Some(now);
            }
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
                throughput: self.throughput.bps(),
                rtt: self.rtt,
                packet_bits: self.packet_bytes * 8.0,
                min: self.min_bps as f64,
                max: self.max_bps as f64,
            };
            self.rate.update(usage, &step);
        }
        if let Some(overflow) = self.train.take_overflow() {
            if self.queue_seen(now) {
                self.last_overflow = Some(now);
                let current = self.estimate_bps as f64;
                let action = self.loss.overflow(now, current, overflow.delivered_bps);
                self.after_loss(now, action);
            } else if overflow.lost > OVERFLOW_WITHOUT_QUEUE {
                // No queue to blame: a queue that stood so long it became the baseline, and
                // a probe's padding overflows it. No cut, but a signal, which ends a probe.
                // (Random loss that heavy is too rare to matter: 11 of 20 packets at 10 %.)
                self.last_overflow = Some(now);
                self.last_overuse = Some(now);
            }
        }
        if let Some(fractions) = self.loss.add(now, congested, lost, total) {
            self.apply_loss(now, fractions);
        }
        self.recompute();
    }

    /// Whether the delay signal showed a queue lately.
    fn queue_seen(&self, now: Instant) -> bool {
        self.delay.queue_building()
            || self
                .last_queue
                .is_some_and(|at| now.saturating_duration_since(at) <= QUEUE_MEMORY)
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
        self.apply_loss(
            now,
            LossFractions::unknown_cause(fraction_lost.clamp(0.0, 1.0)),
        );
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

    /// A probe made the path congested and stopped: the estimate goes back to at least
    /// what it was before (`bps`), and so does the loss-based cap.
    pub fn on_probe_failed(&mut self, bps: u64) {
        let bps = (bps as f64).min(self.max_bps as f64);
        self.rate.bps = self.rate.bps.max(bps);
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

    fn apply_loss(&mut self, now: Instant, fractions: LossFractions) {
        let current = self.estimate_bps as f64;
        let acked = self.throughput.bps().filter(|_| self.using_tcc);
        let action = self.loss.apply(now, fractions, current, acked, self.rtt);
        self.after_loss(now, action);
    }

    fn after_loss(&mut self, now: Instant, action: LossAction) {
        match action {
            LossAction::Decreased => {
                self.last_overuse = Some(now);
                self.last_loss_cut = Some(now);
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

#[cfg(test)]
mod tests;
