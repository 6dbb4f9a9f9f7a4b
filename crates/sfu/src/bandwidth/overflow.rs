//! A bottleneck seen overflowing in a single feedback.
//!
//! When a subscriber's path is suddenly capped far below what is sent (a train of 4 Mbit/s
//! meets a 500 kbit/s link), the bottleneck's queue fills within tens of milliseconds and
//! drops most of what follows. The loss windows (`loss.rs`) need a quarter second and cut
//! to the *smoothed* acknowledged rate, which remembers the rate before the cap for over a
//! second; meanwhile the queue drops audio with the video. But one feedback already says
//! all that is needed: when over a quarter of its packets were lost while a queue stood,
//! the ones that arrived came out of a full queue back to back, so their arrival rate is
//! what the bottleneck carries. [`Train`] gathers that from a feedback's results, or from
//! a few consecutive feedbacks' when one holds too few packets to say.

use std::time::{Duration, Instant};

/// Fewer packets than this say too little.
const MIN_PACKETS: u32 = 20;
/// The share lost that makes a feedback an overflow.
const OVERFLOW_LOSS: f64 = 0.25;
/// Arrivals must span at least this (µs) to give a rate, and so must the bytes: a few
/// packets read at once by a receiver say nothing about the link.
const MIN_SPAN_US: i64 = 15_000;
const MIN_RECEIVED: u32 = 3;
/// Feedbacks are gathered for at most this long: a low-rate stream's packets from longer
/// ago say nothing about the queue now.
const MAX_AGE: Duration = Duration::from_millis(300);

/// A path seen overflowing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Overflow {
    /// What got through, in bits per second.
    pub delivered_bps: f64,
    /// The share of the packets lost.
    pub lost: f64,
}

/// Packets of one or a few consecutive feedbacks: how many, how many lost, and the
/// received ones' arrivals.
#[derive(Debug, Default)]
pub(super) struct Train {
    /// When the first feedback in it came.
    since: Option<Instant>,
    total: u32,
    lost: u32,
    received: u32,
    /// Bytes received, and the earliest arrival with its packet's size (the rate counts
    /// the bytes that arrived after it).
    bytes: u64,
    first: Option<(i64, usize)>,
    last: Option<i64>,
}

impl Train {
    /// A feedback begins at `now`: what was gathered goes if it is too old.
    pub fn begin(&mut self, now: Instant) {
        if self
            .since
            .is_some_and(|since| now.saturating_duration_since(since) > MAX_AGE)
        {
            *self = Train::default();
        }
        self.since.get_or_insert(now);
    }

    pub fn lost(&mut self) {
        self.total = self.total.saturating_add(1);
        self.lost = self.lost.saturating_add(1);
    }

    pub fn received(&mut self, arrival_us: i64, size: usize) {
        self.total = self.total.saturating_add(1);
        self.received = self.received.saturating_add(1);
        self.bytes = self.bytes.saturating_add(size as u64);
        if self.first.is_none_or(|(at, _)| arrival_us < at) {
            self.first = Some((arrival_us, size));
        }
        if self.last.is_none_or(|at| arrival_us > at) {
            self.last = Some(arrival_us);
        }
    }

    /// Once enough packets were gathered: what they show if the path overflowed, and a
    /// fresh start either way. Whether a queue stood is the caller's to know.
    pub fn take_overflow(&mut self) -> Option<Overflow> {
        if self.total < MIN_PACKETS {
            return None;
        }
        let overflow = self.overflow_bps().map(|delivered_bps| Overflow {
            delivered_bps,
            lost: f64::from(self.lost) / f64::from(self.total),
        });
        *self = Train::default();
        overflow
    }

    /// Over a quarter lost, and arrivals that span enough time to measure.
    fn overflow_bps(&self) -> Option<f64> {
        if self.total < MIN_PACKETS
            || self.received < MIN_RECEIVED
            || f64::from(self.lost) <= OVERFLOW_LOSS * f64::from(self.total)
        {
            return None;
        }
        let (first, first_size) = self.first?;
        let span = self.last?.saturating_sub(first);
        if span < MIN_SPAN_US {
            return None;
        }
        let bytes = self.bytes.saturating_sub(first_size as u64);
        Some(bytes as f64 * 8.0 * 1e6 / span as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` packets of 1,000 bytes, every `gap_us`, and `lost` lost among them.
    fn train(n: u32, lost: u32, gap_us: i64) -> Train {
        let mut train = Train::default();
        for i in 0..n {
            if i % (n / lost.max(1)).max(1) == 0 && i / (n / lost.max(1)).max(1) < lost {
                train.lost();
            } else {
                train.received(1_000_000 + i64::from(i) * gap_us, 1_000);
            }
        }
        train
    }

    #[test]
    fn an_overflowing_feedback_gives_what_got_through() {
        // 40 packets sent, 30 lost; 10 of 1,000 bytes arrived 16 ms apart: 500 kbit/s.
        let mut t = Train::default();
        for i in 0..40 {
            if i % 4 == 0 {
                t.received(5_000_000 + i64::from(i / 4) * 16_000, 1_000);
            } else {
                t.lost();
            }
        }
        let bps = t.overflow_bps().expect("overflowing");
        assert!((bps - 500_000.0).abs() < 1.0, "{bps}");
    }

    #[test]
    fn little_loss_few_packets_or_a_burst_read_at_once_is_no_overflow() {
        assert_eq!(train(40, 8, 2_000).overflow_bps(), None, "20 % lost");
        assert_eq!(
            train(15, 10, 10_000).overflow_bps(),
            None,
            "too few packets"
        );
        assert_eq!(train(40, 20, 300).overflow_bps(), None, "read within 12 ms");
        assert!(train(40, 20, 2_000).overflow_bps().is_some());
    }

    #[test]
    fn arrivals_out_of_order_and_extreme_values_are_safe() {
        let mut t = Train::default();
        for _ in 0..30 {
            t.lost();
        }
        for at in [i64::MAX, i64::MIN, 0, 50_000, -3] {
            t.received(at, usize::MAX);
        }
        let _ = t.overflow_bps();
    }
}
