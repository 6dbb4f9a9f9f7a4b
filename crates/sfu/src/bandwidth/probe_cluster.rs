//! What a probe's cluster measured. A probe sends padding at its rate for a short
//! [`CLUSTER`] only, on top of the media; the transport-cc feedback then says when each
//! packet sent in that span arrived. Sent faster than the bottleneck drains, they arrive
//! spread at the bottleneck's rate: that rate is what the path carries. Sent slower, they
//! arrive as they were sent, and the path carried at least the probe's rate. So the
//! cluster's rate is the lower of its send and receive rates, and the probe costs the
//! bottleneck's queue a few tens of milliseconds, not the second of overshoot a probe
//! judged by the acknowledged rate over half a second took.
//!
//! A token-bucket shaper lets a cluster through unshaped until its bucket is spent: the
//! receive rate is read over the arrivals of the second half of the cluster's bytes, so a
//! bucket spent within the first half does not make the path look faster than it is.
use std::time::{Duration, Instant};

use super::PacketResult;

/// How long a probe's padding goes out at its rate.
pub const CLUSTER: Duration = Duration::from_millis(100);
/// Too few packets to tell a rate from.
const MIN_PACKETS: usize = 8;
/// The share of the cluster's bytes (by arrival) a shaper's bucket may have let through
/// unshaped.
const BUCKET_SHARE: f64 = 0.5;

#[derive(Debug, Default)]
pub struct ClusterMeter {
    /// The cluster being measured: its first and last send time.
    window: Option<(Instant, Instant)>,
    /// (sent, arrival µs on the receiver's clock, bytes) of its packets that arrived.
    arrived: Vec<(Instant, i64, usize)>,
    lost: usize,
    /// The last cluster's (start, rate in bit/s).
    result: Option<(Instant, u64)>,
}

impl ClusterMeter {
    /// Measures the packets sent from `from` to `to` (what was measured before is
    /// forgotten).
    pub fn start(&mut self, from: Instant, to: Instant) {
        self.window = Some((from, to));
        self.arrived.clear();
        self.lost = 0;
        self.result = None;
    }

    /// The last cluster's (start, rate), once its feedback is complete.
    pub fn result(&self) -> Option<(Instant, u64)> {
        self.result
    }

    /// Takes one transport-cc feedback's results. The cluster is complete once a packet
    /// sent after it was reported.
    pub fn on_results(&mut self, results: &[PacketResult]) {
        let Some((from, to)) = self.window else {
            return;
        };
        let mut after = false;
        for r in results {
            if r.sent_at > to {
                after = true;
            } else if r.sent_at >= from {
                match r.arrival {
                    Some(arrival) => self.arrived.push((r.sent_at, arrival, r.size)),
                    None => self.lost += 1,
                }
            }
        }
        if after {
            self.window = None;
            self.result = self.rate().map(|bps| (from, bps));
        }
    }

    /// The lower of the send and receive rates of what arrived.
    fn rate(&mut self) -> Option<u64> {
        if self.arrived.len() < MIN_PACKETS {
            return None;
        }
        // Sent: all but the last packet's bytes over the span of send times.
        self.arrived.sort_by_key(|p| p.0);
        let first = self.arrived.first()?.0;
        let last = self.arrived.last()?.0;
        let bytes: usize = self.arrived.iter().map(|p| p.2).sum();
        let tail = self.arrived.last()?.2;
        let span = last.saturating_duration_since(first).as_secs_f64();
        let send_bps = if span > 0.0 {
            (bytes - tail) as f64 * 8.0 / span
        } else {
            f64::INFINITY
        };
        // Received: the bytes after the first half, over their arrival span.
        self.arrived.sort_by_key(|p| p.1);
        let skip = (bytes as f64 * BUCKET_SHARE) as usize;
        let mut seen = 0;
        let start = self.arrived.iter().position(|p| {
            seen += p.2;
            seen > skip
        })?;
        let from = self.arrived[start].1;
        let to = self.arrived.last()?.1;
        let counted: usize = self.arrived[start + 1..].iter().map(|p| p.2).sum();
        if self.arrived.len() - start <= MIN_PACKETS / 2 || to <= from {
            return None;
        }
        let receive_bps = counted as f64 * 8.0 / ((to - from) as f64 / 1e6);
        Some(send_bps.min(receive_bps) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster of `n` packets of `size` bytes sent at `send_bps` through a bottleneck
    /// draining `link_bps` after a bucket of `bucket` bytes; then one packet after it.
    fn cluster(
        t0: Instant,
        n: usize,
        size: usize,
        send_bps: f64,
        link_bps: f64,
        bucket: usize,
    ) -> Vec<PacketResult> {
        let mut out = Vec::new();
        let mut link_free_us = 0.0f64;
        let mut tokens = bucket as f64;
        for i in 0..=n {
            let sent_us = (i * size) as f64 * 8.0 / send_bps * 1e6;
            let arrival = if tokens >= size as f64 {
                tokens -= size as f64;
                sent_us
            } else {
                link_free_us = link_free_us.max(sent_us) + size as f64 * 8.0 / link_bps * 1e6;
                link_free_us
            };
            out.push(PacketResult {
                seq: i as u16,
                size,
                sent_at: t0 + Duration::from_micros(sent_us as u64),
                arrival: Some(1_000_000 + arrival as i64),
            });
        }
        out
    }

    fn measure(results: &[PacketResult], t0: Instant, cluster_us: u64) -> Option<u64> {
        let mut m = ClusterMeter::default();
        m.start(t0, t0 + Duration::from_micros(cluster_us));
        let (first, rest) = results.split_at(results.len() / 2);
        m.on_results(first);
        assert_eq!(
            m.result(),
            None,
            "not complete before a later packet is reported"
        );
        m.on_results(rest);
        m.result().map(|(at, bps)| {
            assert_eq!(at, t0);
            bps
        })
    }

    #[test]
    fn a_cluster_through_a_bottleneck_reads_the_bottlenecks_rate() {
        let t0 = Instant::now();
        // 1 Mbit/s of 300-byte packets for 100 ms into 500 kbit/s.
        let results = cluster(t0, 42, 300, 1_000_000.0, 500_000.0, 0);
        let bps = measure(&results, t0, 100_000).expect("measured");
        assert!((480_000..=520_000).contains(&bps), "{bps}");
    }

    #[test]
    fn a_clear_path_reads_the_send_rate() {
        let t0 = Instant::now();
        let results = cluster(t0, 42, 300, 1_000_000.0, 20_000_000.0, 0);
        let bps = measure(&results, t0, 100_000).expect("measured");
        assert!((950_000..=1_050_000).contains(&bps), "{bps}");
    }

    #[test]
    fn a_shapers_bucket_does_not_make_the_path_look_faster() {
        let t0 = Instant::now();
        // The lab's tbf at 500 kbit/s: a bucket of two full packets.
        let results = cluster(t0, 42, 300, 1_000_000.0, 500_000.0, 3_028);
        let bps = measure(&results, t0, 100_000).expect("measured");
        assert!((480_000..=530_000).contains(&bps), "{bps}");
    }

    #[test]
    fn a_probe_just_past_the_cap_is_not_fooled_by_the_bucket() {
        let t0 = Instant::now();
        // Scenario 4's probe for a second q: at twice the 440k believed, through the
        // lab's 500 kbit/s tbf (440k of RTP) and its bucket. It wanted 527k: not carried.
        let results = cluster(t0, 37, 300, 880_000.0, 440_000.0, 3_028);
        let bps = measure(&results, t0, 100_000).expect("measured");
        assert!(bps < 480_000, "{bps}");
    }

    #[test]
    fn too_few_packets_or_no_cluster_measure_nothing() {
        let t0 = Instant::now();
        let results = cluster(t0, 4, 300, 1_000_000.0, 500_000.0, 0);
        assert_eq!(measure(&results, t0, 9_000), None);
        let mut m = ClusterMeter::default();
        m.on_results(&cluster(t0, 42, 300, 1_000_000.0, 500_000.0, 0));
        assert_eq!(m.result(), None);
    }
}
