//! The delay-based congestion signal: is the path's queue growing, stable or draining?
//!
//! Packets are grouped into bursts by send time (a group spans at most 5 ms of sending).
//! For each pair of consecutive groups, the *delay variation* is how much longer the
//! groups took to arrive apart than they were sent apart. Accumulated, that is the queuing
//! delay (plus an unknown constant); it is smoothed and a least-squares line is fitted
//! over the last 20 groups. A rising line means a growing queue. The slope, scaled, is
//! compared with a threshold that itself adapts to the recent signal, so a noisy path
//! (Wi-Fi) does not read as permanent overuse while a clean path still reacts early.

/// What the path's queue is doing, as the delay signal sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Usage {
    /// No clear trend: the send rate fits.
    #[default]
    Normal,
    /// The queue is growing: sending faster than the bottleneck drains.
    Overusing,
    /// The queue is draining: the previous overuse is clearing.
    Underusing,
}

/// Packets sent within this of a group's first packet belong to the group.
const BURST_US: i64 = 5_000;
/// Packets arriving within this of the group's last one, and earlier than their send
/// spacing predicts, are one burst released by the network (Wi-Fi aggregation).
const ARRIVAL_BURST_US: i64 = 5_000;
const MAX_BURST_SPAN_US: i64 = 100_000;
/// A jump this large between arrival and send spacing means a clock or route change.
const RESET_JUMP_US: i64 = 3_000_000;

const WINDOW: usize = 20;
const SMOOTHING: f64 = 0.9;
const TREND_GAIN: f64 = 4.0;
const MAX_DELTA_COUNT: u32 = 60;

const INITIAL_THRESHOLD: f64 = 12.5;
const MIN_THRESHOLD: f64 = 6.0;
const MAX_THRESHOLD: f64 = 600.0;
/// How fast the threshold follows a signal above it (rising) or below it (falling), per ms.
const THRESHOLD_UP: f64 = 0.0087;
const THRESHOLD_DOWN: f64 = 0.039;
/// Signals this far above the threshold are outliers and do not move it.
const THRESHOLD_OUTLIER: f64 = 15.0;
/// Overuse must persist this long (in send time) before it is signalled.
const OVERUSE_TIME_MS: f64 = 10.0;

#[derive(Debug, Clone, Copy)]
struct Group {
    first_send: i64,
    last_send: i64,
    first_arrival: i64,
    last_arrival: i64,
}

impl Group {
    fn new(send: i64, arrival: i64) -> Self {
        Group {
            first_send: send,
            last_send: send,
            first_arrival: arrival,
            last_arrival: arrival,
        }
    }

    fn takes(&self, send: i64, arrival: i64) -> bool {
        if send <= self.first_send.saturating_add(BURST_US) {
            // Also a packet sent before the group started (sent out of sequence order by
            // another forwarding thread): too little to be worth a group of its own.
            return true;
        }
        let arrival_delta = arrival.saturating_sub(self.last_arrival);
        let send_delta = send.saturating_sub(self.last_send);
        (0..=ARRIVAL_BURST_US).contains(&arrival_delta)
            && arrival_delta < send_delta
            && arrival.saturating_sub(self.first_arrival) < MAX_BURST_SPAN_US
    }

    fn add(&mut self, send: i64, arrival: i64) {
        self.last_send = self.last_send.max(send);
        self.last_arrival = self.last_arrival.max(arrival);
    }
}

/// Send times in µs on our clock, arrival times in µs on the receiver's.
#[derive(Debug, Default)]
pub(super) struct DelayDetector {
    current: Option<Group>,
    previous: Option<Group>,
    trend: Trendline,
    overuse: OveruseDetector,
}

impl DelayDetector {
    pub fn usage(&self) -> Usage {
        self.overuse.usage
    }

    /// One received packet, in feedback (sequence) order.
    pub fn on_packet(&mut self, send: i64, arrival: i64) {
        let Some(current) = self.current.as_mut() else {
            self.current = Some(Group::new(send, arrival));
            return;
        };
        if current.takes(send, arrival) {
            current.add(send, arrival);
            return;
        }
        let done = *current;
        self.current = Some(Group::new(send, arrival));
        if let Some(previous) = self.previous.replace(done) {
            self.on_group_pair(&previous, &done);
        }
    }

    fn on_group_pair(&mut self, previous: &Group, group: &Group) {
        let send_delta = group.last_send.saturating_sub(previous.last_send);
        let arrival_delta = group.last_arrival.saturating_sub(previous.last_arrival);
        let variation = arrival_delta.saturating_sub(send_delta);
        if variation.saturating_abs() > RESET_JUMP_US {
            // The receiver's clock or the route jumped: start afresh.
            self.trend = Trendline::default();
            self.overuse = OveruseDetector::default();
            return;
        }
        if arrival_delta < 0 || send_delta < 0 {
            // Reordered groups say nothing about the queue.
            return;
        }
        let trend = self.trend.update(
            variation as f64 / 1_000.0,
            group.last_arrival as f64 / 1_000.0,
        );
        self.overuse.detect(
            trend,
            send_delta as f64 / 1_000.0,
            group.last_arrival as f64 / 1_000.0,
        );
    }
}

/// The smoothed accumulated delay over the last [`WINDOW`] groups, and its slope.
#[derive(Debug)]
struct Trendline {
    /// (arrival ms since the first group, smoothed delay ms), oldest at `start`.
    points: [(f64, f64); WINDOW],
    start: usize,
    len: usize,
    first_arrival_ms: Option<f64>,
    accumulated_ms: f64,
    smoothed_ms: f64,
    deltas: u32,
    slope: f64,
}

impl Default for Trendline {
    fn default() -> Self {
        Trendline {
            points: [(0.0, 0.0); WINDOW],
            start: 0,
            len: 0,
            first_arrival_ms: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            deltas: 0,
            slope: 0.0,
        }
    }
}

impl Trendline {
    /// Adds one group's delay variation; returns the scaled trend the detector compares
    /// with its threshold.
    fn update(&mut self, variation_ms: f64, arrival_ms: f64) -> f64 {
        self.deltas = (self.deltas + 1).min(MAX_DELTA_COUNT);
        self.accumulated_ms += variation_ms;
        self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
        let first = *self.first_arrival_ms.get_or_insert(arrival_ms);
        let point = (arrival_ms - first, self.smoothed_ms);
        if self.len < WINDOW {
            self.points[(self.start + self.len) % WINDOW] = point;
            self.len += 1;
        } else {
            self.points[self.start] = point;
            self.start = (self.start + 1) % WINDOW;
        }
        if self.len == WINDOW {
            if let Some(slope) = self.fit() {
                self.slope = slope;
            }
        }
        f64::from(self.deltas) * self.slope * TREND_GAIN
    }

    /// Least-squares slope of smoothed delay over arrival time.
    fn fit(&self) -> Option<f64> {
        let n = self.len as f64;
        let (sum_x, sum_y) = self
            .points
            .iter()
            .fold((0.0, 0.0), |(x, y), p| (x + p.0, y + p.1));
        let (mean_x, mean_y) = (sum_x / n, sum_y / n);
        let (mut numerator, mut denominator) = (0.0, 0.0);
        for &(x, y) in &self.points {
            numerator += (x - mean_x) * (y - mean_y);
            denominator += (x - mean_x) * (x - mean_x);
        }
        let slope = numerator / denominator;
        (denominator > 0.0 && slope.is_finite()).then_some(slope)
    }
}

/// Compares the trend with an adaptive threshold.
#[derive(Debug)]
struct OveruseDetector {
    usage: Usage,
    threshold: f64,
    last_update_ms: Option<f64>,
    /// How long (ms of send time) the trend has been above the threshold; < 0 = not.
    overuse_ms: f64,
    overuse_count: u32,
    previous_trend: f64,
}

impl Default for OveruseDetector {
    fn default() -> Self {
        OveruseDetector {
            usage: Usage::Normal,
            threshold: INITIAL_THRESHOLD,
            last_update_ms: None,
            overuse_ms: -1.0,
            overuse_count: 0,
            previous_trend: 0.0,
        }
    }
}

impl OveruseDetector {
    fn detect(&mut self, trend: f64, send_delta_ms: f64, now_ms: f64) {
        if trend > self.threshold {
            if self.overuse_ms < 0.0 {
                // Assume it started halfway through this interval.
                self.overuse_ms = send_delta_ms / 2.0;
            } else {
                self.overuse_ms += send_delta_ms;
            }
            self.overuse_count += 1;
            if self.overuse_ms > OVERUSE_TIME_MS
                && self.overuse_count > 1
                && trend >= self.previous_trend
            {
                self.overuse_ms = 0.0;
                self.overuse_count = 0;
                self.usage = Usage::Overusing;
            }
        } else if trend < -self.threshold {
            self.overuse_ms = -1.0;
            self.overuse_count = 0;
            self.usage = Usage::Underusing;
        } else {
            self.overuse_ms = -1.0;
            self.overuse_count = 0;
            self.usage = Usage::Normal;
        }
        self.previous_trend = trend;
        self.adapt_threshold(trend, now_ms);
    }

    fn adapt_threshold(&mut self, trend: f64, now_ms: f64) {
        let last = *self.last_update_ms.get_or_insert(now_ms);
        self.last_update_ms = Some(now_ms);
        let magnitude = trend.abs();
        if magnitude > self.threshold + THRESHOLD_OUTLIER {
            return;
        }
        let k = if magnitude < self.threshold {
            THRESHOLD_DOWN
        } else {
            THRESHOLD_UP
        };
        let elapsed_ms = (now_ms - last).clamp(0.0, 100.0);
        self.threshold += k * (magnitude - self.threshold) * elapsed_ms;
        self.threshold = self.threshold.clamp(MIN_THRESHOLD, MAX_THRESHOLD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets every `spacing_us`; each arrives `extra_us × i` later than it was sent.
    fn feed(detector: &mut DelayDetector, count: i64, spacing_us: i64, extra_us: i64) -> Usage {
        let mut seen_overuse = Usage::Normal;
        for i in 0..count {
            let send = i * spacing_us;
            detector.on_packet(send, 50_000 + send + extra_us * i);
            if detector.usage() != Usage::Normal {
                seen_overuse = detector.usage();
            }
        }
        seen_overuse
    }

    #[test]
    fn steady_spacing_is_normal() {
        let mut detector = DelayDetector::default();
        assert_eq!(feed(&mut detector, 500, 10_000, 0), Usage::Normal);
    }

    #[test]
    fn growing_queue_is_overuse() {
        let mut detector = DelayDetector::default();
        // 10 % slower arrivals than sends: the queue grows 1 ms per 10 ms.
        assert_eq!(feed(&mut detector, 200, 10_000, 1_000), Usage::Overusing);
    }

    #[test]
    fn draining_queue_is_underuse() {
        let mut detector = DelayDetector::default();
        assert_eq!(feed(&mut detector, 200, 10_000, -1_000), Usage::Underusing);
    }

    #[test]
    fn packets_within_five_ms_of_sending_form_one_group() {
        let mut detector = DelayDetector::default();
        // Bursts of 5 packets 1 ms apart every 20 ms: groups, not single packets, are
        // compared, so the in-burst spread of arrivals is not a delay variation.
        for burst in 0..100i64 {
            for k in 0..5i64 {
                let send = burst * 20_000 + k * 1_000;
                detector.on_packet(send, send + k * 1_500);
            }
        }
        assert_eq!(detector.usage(), Usage::Normal);
        assert_eq!(detector.trend.deltas, MAX_DELTA_COUNT);
        assert!(detector.trend.slope.abs() < 1e-9);
    }
}
