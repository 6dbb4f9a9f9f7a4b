//! Media counters. Each published track owns one set, written only by its own reader task
//! (so the counters never contend); rooms and the server add them up when asked.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use serde::Serialize;

#[derive(Debug, Default)]
pub struct MediaCounters {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub audio_packets_out: AtomicU64,
    pub video_packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub dropped_waiting_keyframe: AtomicU64,
    pub dropped_no_codec: AtomicU64,
    pub dropped_too_old: AtomicU64,
    pub dropped_padding: AtomicU64,
    pub dropped_write_failed: AtomicU64,
    pub dropped_not_connected: AtomicU64,
    pub dropped_not_negotiated: AtomicU64,
    pub nacks_received: AtomicU64,
    pub retransmits: AtomicU64,
    /// Payload bytes of those retransmissions.
    pub retransmit_bytes: AtomicU64,
    pub retransmit_misses: AtomicU64,
    /// NACKed packets not resent: asked for again within a round trip of the last resend.
    pub retransmits_refused_duplicate: AtomicU64,
    /// NACKed packets not resent: over the subscriber's retransmission budget.
    pub retransmits_refused_budget: AtomicU64,
    pub plis_received: AtomicU64,
    pub plis_sent: AtomicU64,
    /// Shared with the track's DownTracks, which count their own simulcast layer switches
    /// (each runs on the reader task of the layer it switches to).
    pub layer_switches: Arc<AtomicU64>,
}

/// A point-in-time copy of [`MediaCounters`], as served by `GET /api/stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MediaStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    /// `packets_out` split by the kind of track.
    pub audio_packets_out: u64,
    pub video_packets_out: u64,
    pub bytes_out: u64,
    pub dropped: DroppedStats,
    pub nacks_received: u64,
    pub retransmits: u64,
    /// Payload bytes retransmitted (not in `bytes_out`).
    pub retransmit_bytes: u64,
    pub retransmit_misses: u64,
    pub retransmits_refused: RefusedStats,
    pub plis_received: u64,
    pub plis_sent: u64,
    /// Times a subscriber's forwarding moved to another simulcast layer (the first layer it
    /// starts on not included).
    pub layer_switches: u64,
}

/// NACKed packets the server chose not to resend, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RefusedStats {
    /// Resent less than a round trip before.
    pub duplicate: u64,
    /// Over the subscriber's retransmission budget.
    pub budget: u64,
}

/// Packets not forwarded to a subscriber, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DroppedStats {
    pub waiting_keyframe: u64,
    pub no_codec: u64,
    pub too_old: u64,
    pub padding: u64,
    pub write_failed: u64,
    /// Negotiated, but the subscriber's DTLS had not finished.
    pub not_connected: u64,
    /// The subscriber had not yet applied the description that declares the track (or
    /// webrtc-rs had not bound it): held back, since a client that does not know the SSRC
    /// may drop the stream for good.
    pub not_negotiated: u64,
}

impl MediaCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> MediaStats {
        let get = |c: &AtomicU64| c.load(Relaxed);
        MediaStats {
            packets_in: get(&self.packets_in),
            bytes_in: get(&self.bytes_in),
            packets_out: get(&self.packets_out),
            audio_packets_out: get(&self.audio_packets_out),
            video_packets_out: get(&self.video_packets_out),
            bytes_out: get(&self.bytes_out),
            dropped: DroppedStats {
                waiting_keyframe: get(&self.dropped_waiting_keyframe),
                no_codec: get(&self.dropped_no_codec),
                too_old: get(&self.dropped_too_old),
                padding: get(&self.dropped_padding),
                write_failed: get(&self.dropped_write_failed),
                not_connected: get(&self.dropped_not_connected),
                not_negotiated: get(&self.dropped_not_negotiated),
            },
            nacks_received: get(&self.nacks_received),
            retransmits: get(&self.retransmits),
            retransmit_bytes: get(&self.retransmit_bytes),
            retransmit_misses: get(&self.retransmit_misses),
            retransmits_refused: RefusedStats {
                duplicate: get(&self.retransmits_refused_duplicate),
                budget: get(&self.retransmits_refused_budget),
            },
            plis_received: get(&self.plis_received),
            plis_sent: get(&self.plis_sent),
            layer_switches: get(&self.layer_switches),
        }
    }

    /// Folds a finished track's totals in, so totals never go down.
    pub fn absorb(&self, s: &MediaStats) {
        Self::add(&self.packets_in, s.packets_in);
        Self::add(&self.bytes_in, s.bytes_in);
        Self::add(&self.packets_out, s.packets_out);
        Self::add(&self.audio_packets_out, s.audio_packets_out);
        Self::add(&self.video_packets_out, s.video_packets_out);
        Self::add(&self.bytes_out, s.bytes_out);
        Self::add(&self.dropped_waiting_keyframe, s.dropped.waiting_keyframe);
        Self::add(&self.dropped_no_codec, s.dropped.no_codec);
        Self::add(&self.dropped_too_old, s.dropped.too_old);
        Self::add(&self.dropped_padding, s.dropped.padding);
        Self::add(&self.dropped_write_failed, s.dropped.write_failed);
        Self::add(&self.dropped_not_connected, s.dropped.not_connected);
        Self::add(&self.dropped_not_negotiated, s.dropped.not_negotiated);
        Self::add(&self.nacks_received, s.nacks_received);
        Self::add(&self.retransmits, s.retransmits);
        Self::add(&self.retransmit_bytes, s.retransmit_bytes);
        Self::add(&self.retransmit_misses, s.retransmit_misses);
        Self::add(
            &self.retransmits_refused_duplicate,
            s.retransmits_refused.duplicate,
        );
        Self::add(
            &self.retransmits_refused_budget,
            s.retransmits_refused.budget,
        );
        Self::add(&self.plis_received, s.plis_received);
        Self::add(&self.plis_sent, s.plis_sent);
        Self::add(&self.layer_switches, s.layer_switches);
    }
}

impl std::ops::AddAssign for MediaStats {
    fn add_assign(&mut self, o: MediaStats) {
        self.packets_in += o.packets_in;
        self.bytes_in += o.bytes_in;
        self.packets_out += o.packets_out;
        self.audio_packets_out += o.audio_packets_out;
        self.video_packets_out += o.video_packets_out;
        self.bytes_out += o.bytes_out;
        self.dropped.waiting_keyframe += o.dropped.waiting_keyframe;
        self.dropped.no_codec += o.dropped.no_codec;
        self.dropped.too_old += o.dropped.too_old;
        self.dropped.padding += o.dropped.padding;
        self.dropped.write_failed += o.dropped.write_failed;
        self.dropped.not_connected += o.dropped.not_connected;
        self.dropped.not_negotiated += o.dropped.not_negotiated;
        self.nacks_received += o.nacks_received;
        self.retransmits += o.retransmits;
        self.retransmit_bytes += o.retransmit_bytes;
        self.retransmit_misses += o.retransmit_misses;
        self.retransmits_refused.duplicate += o.retransmits_refused.duplicate;
        self.retransmits_refused.budget += o.retransmits_refused.budget;
        self.plis_received += o.plis_received;
        self.plis_sent += o.plis_sent;
        self.layer_switches += o.layer_switches;
    }
}

/// Upper bounds, in seconds, of the join latency histogram's buckets (`+Inf` is implied).
pub const JOIN_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Server-wide counters that are not per track: join latency and signaling errors.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    /// Joins per bucket of [`JOIN_BUCKETS`] (not cumulative), the last one for `+Inf`.
    join_buckets: [AtomicU64; JOIN_BUCKETS.len() + 1],
    join_micros: AtomicU64,
    /// `error` messages sent to clients, by code.
    signaling_errors: Mutex<BTreeMap<&'static str, u64>>,
}

/// A point-in-time copy of the join latency histogram, buckets cumulative as Prometheus
/// wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinHistogram {
    /// `(upper bound in seconds, joins that took at most that)`, in [`JOIN_BUCKETS`] order.
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl ServerMetrics {
    /// Records one successful join: from the `join` message to `joined` being sent.
    pub fn observe_join(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let at = JOIN_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(JOIN_BUCKETS.len());
        self.join_buckets[at].fetch_add(1, Relaxed);
        self.join_micros
            .fetch_add(took.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    pub fn join_histogram(&self) -> JoinHistogram {
        let mut cumulative = 0;
        let buckets = JOIN_BUCKETS
            .iter()
            .zip(&self.join_buckets)
            .map(|(&le, n)| {
                cumulative += n.load(Relaxed);
                (le, cumulative)
            })
            .collect();
        let count = cumulative + self.join_buckets[JOIN_BUCKETS.len()].load(Relaxed);
        JoinHistogram {
            buckets,
            sum_seconds: self.join_micros.load(Relaxed) as f64 / 1e6,
            count,
        }
    }

    /// Counts one `error` message sent to a client.
    pub fn count_signaling_error(&self, code: roomcast_protocol::ErrorCode) {
        *self
            .signaling_errors
            .lock()
            .entry(code.as_str())
            .or_default() += 1;
    }

    /// `error` messages sent so far, by code.
    pub fn signaling_errors(&self) -> Vec<(&'static str, u64)> {
        self.signaling_errors
            .lock()
            .iter()
            .map(|(&code, &n)| (code, n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_histogram_is_cumulative() {
        let m = ServerMetrics::default();
        m.observe_join(Duration::from_millis(3));
        m.observe_join(Duration::from_millis(40));
        m.observe_join(Duration::from_secs(9));
        let h = m.join_histogram();
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets[0], (0.005, 1));
        assert_eq!(h.buckets[3], (0.05, 2));
        assert_eq!(h.buckets.last(), Some(&(5.0, 2)));
        assert!((h.sum_seconds - 9.043).abs() < 1e-9);
    }

    #[test]
    fn layer_switches_survive_absorb() {
        let c = MediaCounters::default();
        MediaCounters::add(&c.layer_switches, 2);
        let total = MediaCounters::default();
        total.absorb(&c.snapshot());
        assert_eq!(total.snapshot().layer_switches, 2);
    }
}
