//! The delay-based congestion signal: is the path's queue growing, stable or draining?
//!
//! A queue at the bottleneck delays *every* packet behind it. Anything else that makes
//! packets late — a receiver whose reader a busy machine stalls, a reader per track that
//! stamps arrivals when it gets round to them, Wi-Fi or a delay line adding jitter — delays
//! *some* packets, and the ones read promptly in between still show the path's real delay.
//! So the signal is the **floor**: the smallest one-way delay among the packets that arrived
//! in each 50 ms of the receiver's clock, measured above the smallest delay seen in the last
//! 10 s (the path's own delay; the clocks' offset cancels out). Overuse is a floor that is
//! both above a threshold and rising: a least-squares line over the last 8 floors says how
//! fast the queue grows. The threshold adapts to how high the floor sits on this path when
//! nothing is wrong, so a jittery path needs a taller queue before it counts.

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

/// The floor is taken over this much of the receiver's clock.
const INTERVAL_US: i64 = 50_000;
/// The path's own delay is the minimum over this many buckets of one second.
const BASE_BUCKET_US: i64 = 1_000_000;
const BASE_BUCKETS: usize = 10;
/// A jump this large against the path's delay means a clock or route change.
const RESET_JUMP_US: i64 = 3_000_000;

/// Floors in the trend line, and how far apart (in arrival time) they may be.
const TREND_POINTS: usize = 8;
const TREND_SPAN_MS: f64 = 1_000.0;
/// A queue growing slower than this (ms per second: 2 % above the bottleneck's rate)
/// is not overuse, nor one shrinking slower a drain.
const MIN_SLOPE_MS_PER_S: f64 = 20.0;
/// Consecutive floors that must show overuse before it is signalled.
const OVERUSE_FLOORS: u32 = 2;

/// The floor must be this far above the path's delay (ms), plus `NOISE_GAIN` × how high it
/// usually sits, before a queue counts.
const MIN_THRESHOLD_MS: f64 = 10.0;
const MAX_THRESHOLD_MS: f64 = 100.0;
const NOISE_GAIN: f64 = 2.0;
const NOISE_SMOOTHING: f64 = 0.05;

/// The minimum one-way delay over the last [`BASE_BUCKETS`] seconds of arrivals.
#[derive(Debug, Clone, Copy)]
struct BaseDelay {
    /// (bucket number, minimum delay), bucket number = arrival / BASE_BUCKET_US.
    buckets: [(i64, i64); BASE_BUCKETS],
    newest: Option<i64>,
}

impl Default for BaseDelay {
    fn default() -> Self {
        BaseDelay {
            buckets: [(i64::MIN, i64::MAX); BASE_BUCKETS],
            newest: None,
        }
    }
}

impl BaseDelay {
    fn add(&mut self, arrival: i64, delay: i64) {
        let bucket = arrival.div_euclid(BASE_BUCKET_US);
        let newest = *self.newest.get_or_insert(bucket);
        if bucket <= newest.saturating_sub(BASE_BUCKETS as i64) {
            return;
        }
        self.newest = Some(newest.max(bucket));
        let slot = &mut self.buckets[bucket.rem_euclid(BASE_BUCKETS as i64) as usize];
        if slot.0 != bucket {
            *slot = (bucket, delay);
        }
        slot.1 = slot.1.min(delay);
    }

    fn min(&self) -> Option<i64> {
        let newest = self.newest?;
        let oldest = newest.saturating_sub(BASE_BUCKETS as i64 - 1);
        self.buckets
            .iter()
            .filter(|(bucket, _)| (oldest..=newest).contains(bucket))
            .map(|&(_, delay)| delay)
            .min()
    }
}

/// Send times in µs on our clock, arrival times in µs on the receiver's.
#[derive(Debug, Default)]
pub(super) struct DelayDetector {
    base: BaseDelay,
    /// The interval being filled: (interval number, smallest delay so far).
    interval: Option<(i64, i64)>,
    trend: Trend,
    /// How high the floor usually sits when nothing is wrong (ms), and over how many floors
    /// that was learnt.
    noise_ms: f64,
    noise_floors: u32,
    /// Consecutive floors above the threshold and rising.
    rising: u32,
    /// Whether packets are being lost: a standing queue then is no part of the path's
    /// usual delay, so the threshold does not learn from it.
    losing: bool,
    usage: Usage,
}

impl DelayDetector {
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The queue delay the latest floor showed, in ms.
    pub fn queue_ms(&self) -> f64 {
        self.trend.last().map_or(0.0, |(_, floor)| floor)
    }

    /// Whether the floor is above the threshold: a queue is standing or growing.
    pub fn queue_building(&self) -> bool {
        self.queue_ms() > self.threshold_ms()
    }

    /// Whether the feedback being read reports lost packets.
    pub fn set_losing(&mut self, losing: bool) {
        self.losing = losing;
    }

    /// One received packet, in feedback (sequence) order.
    pub fn on_packet(&mut self, send: i64, arrival: i64) {
        let delay = arrival.saturating_sub(send);
        let jumped = self
            .base
            .min()
            .is_some_and(|base| delay.saturating_sub(base).saturating_abs() > RESET_JUMP_US)
            || self.interval.is_some_and(|(current, _)| {
                arrival
                    < current
                        .saturating_mul(INTERVAL_US)
                        .saturating_sub(RESET_JUMP_US)
            });
        if jumped {
            // The receiver's clock or the route jumped: start afresh.
            *self = DelayDetector::default();
        }
        self.base.add(arrival, delay);
        let number = arrival.div_euclid(INTERVAL_US);
        match self.interval {
            Some((current, floor)) if number > current => {
                self.close(current, floor);
                self.interval = Some((number, delay));
            }
            // Earlier stamps (reordered packets) count towards the interval being filled.
            Some((current, floor)) => self.interval = Some((current, floor.min(delay))),
            None => self.interval = Some((number, delay)),
        }
    }

    fn threshold_ms(&self) -> f64 {
        (MIN_THRESHOLD_MS + NOISE_GAIN * self.noise_ms).min(MAX_THRESHOLD_MS)
    }

    fn close(&mut self, number: i64, floor: i64) {
        let Some(base) = self.base.min() else {
            return;
        };
        let floor_ms = floor.saturating_sub(base).max(0) as f64 / 1_000.0;
        let at_ms = number as f64 * (INTERVAL_US as f64 / 1_000.0);
        let previous_ms = self.queue_ms();
        self.trend.add(at_ms, floor_ms);
        let slope = self.trend.slope_ms_per_s().unwrap_or(0.0);
        let threshold = self.threshold_ms();
        if floor_ms > threshold && slope > MIN_SLOPE_MS_PER_S && floor_ms > previous_ms {
            self.rising += 1;
            if self.rising >= OVERUSE_FLOORS {
                self.usage = Usage::Overusing;
            }
            return;
        }
        self.rising = 0;
        self.usage = if floor_ms > threshold / 2.0 && slope < -MIN_SLOPE_MS_PER_S {
            Usage::Underusing
        } else {
            Usage::Normal
        };
        // Learn from every floor that is not part of a growing queue: a standing one
        // (a path that simply has more delay, or jitter) raises the bar, unless it loses
        // packets. The first floors are averaged, so a jittery path is known as such
        // within a second.
        if self.losing {
            return;
        }
        self.noise_floors = self.noise_floors.saturating_add(1);
        let weight = NOISE_SMOOTHING.max(1.0 / f64::from(self.noise_floors));
        self.noise_ms += weight * (floor_ms - self.noise_ms);
    }
}

/// The last [`TREND_POINTS`] floors and the slope of a least-squares line through them.
#[derive(Debug, Default)]
struct Trend {
    /// (arrival ms, floor ms), oldest at `start`.
    points: [(f64, f64); TREND_POINTS],
    start: usize,
    len: usize,
}

impl Trend {
    fn add(&mut self, at_ms: f64, floor_ms: f64) {
        if self
            .last()
            .is_some_and(|(last, _)| at_ms - last > TREND_SPAN_MS)
        {
            // Nothing arrived for a while: the old floors say nothing about now.
            self.len = 0;
        }
        if self.len < TREND_POINTS {
            self.points[(self.start + self.len) % TREND_POINTS] = (at_ms, floor_ms);
            self.len += 1;
        } else {
            self.points[self.start] = (at_ms, floor_ms);
            self.start = (self.start + 1) % TREND_POINTS;
        }
    }

    fn last(&self) -> Option<(f64, f64)> {
        (self.len > 0).then(|| self.points[(self.start + self.len - 1) % TREND_POINTS])
    }

    /// Queue growth in ms per second, once there are three floors.
    fn slope_ms_per_s(&self) -> Option<f64> {
        if self.len < 3 {
            return None;
        }
        let points = (0..self.len).map(|i| self.points[(self.start + i) % TREND_POINTS]);
        let n = self.len as f64;
        let (sum_x, sum_y) = points
            .clone()
            .fold((0.0, 0.0), |(x, y), p| (x + p.0, y + p.1));
        let (mean_x, mean_y) = (sum_x / n, sum_y / n);
        let (numerator, denominator) = points.fold((0.0, 0.0), |(num, den), (x, y)| {
            (
                num + (x - mean_x) * (y - mean_y),
                den + (x - mean_x) * (x - mean_x),
            )
        });
        let slope = numerator / denominator * 1_000.0;
        (denominator > 0.0 && slope.is_finite()).then_some(slope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets every `spacing_us`; each arrives `extra_us × i` later than it was sent.
    fn feed(detector: &mut DelayDetector, count: i64, spacing_us: i64, extra_us: i64) -> Usage {
        let mut seen = Usage::Normal;
        for i in 0..count {
            let send = i * spacing_us;
            detector.on_packet(send, 50_000 + send + extra_us * i);
            if detector.usage() != Usage::Normal {
                seen = detector.usage();
            }
        }
        seen
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
        assert!(detector.queue_building());
    }

    #[test]
    fn draining_queue_is_underuse() {
        let mut detector = DelayDetector::default();
        // No queue, then one grows to 100 ms, then it drains 1 ms per 10 ms.
        feed(&mut detector, 100, 10_000, 0);
        for i in 100..200i64 {
            detector.on_packet(i * 10_000, 50_000 + i * 10_000 + (i - 100) * 1_000);
        }
        for i in 200..250i64 {
            detector.on_packet(i * 10_000, 50_000 + i * 10_000 + (300 - i) * 1_000);
        }
        assert_eq!(detector.usage(), Usage::Underusing);
    }

    #[test]
    fn a_queue_that_grows_too_slowly_or_stays_put_is_not_overuse() {
        // 1 % above the bottleneck: 10 ms more per second, under the slope that counts.
        let mut detector = DelayDetector::default();
        assert_eq!(feed(&mut detector, 400, 10_000, 100), Usage::Normal);
        // The path's delay steps up by 80 ms and stays (a route change, a delay line
        // switched on): it looks like a queue only until the line through the floors
        // flattens, under half a second.
        let mut detector = DelayDetector::default();
        let mut overuse_ms = 0;
        for i in 0..1_000i64 {
            let send = i * 10_000;
            let extra = if i >= 300 { 80_000 } else { 0 };
            detector.on_packet(send, send + extra);
            overuse_ms += 10 * u32::from(detector.usage() == Usage::Overusing);
        }
        assert!(overuse_ms <= 400, "{overuse_ms} ms of overuse");
        assert_eq!(detector.usage(), Usage::Normal);
    }

    #[test]
    fn a_burst_that_queues_for_a_moment_and_drains_is_not_overuse() {
        // 10 ms packets on a path that carries them in 5 ms; every 2 s a burst of 12 packets
        // at once (a keyframe) queues for up to 60 ms, then drains.
        let mut detector = DelayDetector::default();
        let mut free_at = 0i64;
        for i in 0..1_000i64 {
            let send = i * 10_000;
            let burst = if i % 200 == 0 { 12 } else { 1 };
            for _ in 0..burst {
                free_at = free_at.max(send) + 5_000;
                detector.on_packet(send, free_at);
                assert_ne!(detector.usage(), Usage::Overusing, "packet {i}");
            }
        }
    }

    #[test]
    fn late_readings_between_prompt_ones_leave_the_floor_alone() {
        // Every other packet is read 40–80 ms late: the prompt ones show there is no queue.
        let mut detector = DelayDetector::default();
        for i in 0..2_000i64 {
            let send = i * 5_000;
            let late = if i % 2 == 0 {
                40_000 + (i * 7_919) % 40_000
            } else {
                0
            };
            detector.on_packet(send, send + late);
            assert_eq!(detector.usage(), Usage::Normal, "packet {i}");
        }
        assert!(detector.queue_ms() < 1.0);
    }

    #[test]
    fn survives_clock_jumps_and_extremes() {
        let mut detector = DelayDetector::default();
        for (send, arrival) in [
            (0, i64::MAX),
            (i64::MIN, 0),
            (5, i64::MIN),
            (i64::MAX, i64::MAX),
            (1, 1),
        ] {
            detector.on_packet(send, arrival);
            let _ = detector.usage();
        }
        assert_eq!(feed(&mut detector, 200, 10_000, 1_000), Usage::Overusing);
    }
}
