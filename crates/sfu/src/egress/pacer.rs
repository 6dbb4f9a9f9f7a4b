//! Pacing one subscriber connection's RTP, so that a burst (a keyframe, the keyframes of
//! tracks resuming together, a batch of retransmissions) is spread over time instead of
//! landing in the bottleneck's queue at once, where the audio queued behind it is late or
//! dropped.
//!
//! - **Audio is never queued.** It goes at once and only counts towards the pace, so the
//!   video after it waits for the time the audio took.
//! - **Video and retransmissions** go at once while the connection is within its pace and
//!   nothing waits; otherwise they wait in a FIFO and leave at the pacing rate. Each is
//!   numbered for transport-cc and recorded in the send history when it really leaves, so
//!   the estimator sees our pacing as ours, not as the network's delay.
//! - **Padding** (probes) goes only when nothing waits: it is never queued (a late probe is
//!   worthless), and it goes at the probe's own rate, not the pace, and does not count
//!   towards it: a probe is how the estimate, and so the pace, finds out it may grow.
//! - **Bounded.** At most [`MAX_PACKETS`] wait, and none longer than [`MAX_WAIT`]: the oldest
//!   is dropped (and counted); the subscriber NACKs it like a packet lost on the way.
//! - **Pass-through when not limited.** The pacing rate is [`PACING_FACTOR`] times the
//!   bandwidth estimate (times the acknowledged rate if lower while packets are lost: a
//!   cap that just fell) only while the subscriber's path has shown congestion in the last
//!   [`PACED_AFTER_CONGESTION`]; otherwise (loopback, any path with room) it is 0, nothing
//!   waits, and the send path costs two atomic loads more than without a pacer.
//!
//! The decisions are here, synchronous and driven by `now`; the egress holds a [`Pacer`]
//! behind a lock (made the first time a connection is paced), sends what it says, and one
//! drain task per connection (started the first time a packet waits, idle while none does)
//! calls [`Pacer::pop_due`] at [`Pacer::next_due`].
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Prepared;
use crate::bandwidth::Estimate;

/// The pacing rate over the bandwidth estimate (or the acknowledged rate, while packets
/// are lost). libwebrtc paces at 2.5 times its target, an encoder's average, so a keyframe
/// still goes out within a few frame intervals. Here the estimate (and the acknowledged
/// rate) count RTP bytes and sit about a fifth under what the link carries: at 2.5 a cap's
/// first second still put 1.1 Mbit/s into a 500 kbit/s link, and Chromium lost 3.0 % of its
/// audio in scenario 4 (main: 2.1 %); at 1.5, 1.5 % (docs/network.md, branch `pace5`). A
/// keyframe of 15 KB leaves over about 200 ms at a 400 kbit/s estimate.
pub const PACING_FACTOR: f64 = 1.5;
/// Paced for this long after the path last showed congestion that limited layers.
pub const PACED_AFTER_CONGESTION: Duration = Duration::from_secs(30);
/// While packets are being lost to congestion, the pace follows what the receiver
/// acknowledged if that is less than the estimate: when a cap falls, the estimate takes a
/// second or two to come down from what the path carried before, and the receiver's
/// acknowledged rate already says what it carries now.
const LOSSY_RECENT: Duration = Duration::from_secs(2);
/// The pace never goes below this, however little was acknowledged.
const MIN_PACING_BPS: u64 = 100_000;
/// The most packets that wait: about 150 KiB of buffers for a connection that had to wait
/// that much, allocated as the queue first grows and reused after.
pub const MAX_PACKETS: usize = 128;
/// Video waiting longer than this is dropped, oldest first: past it the picture would be
/// late anyway, and a queue that only grows means the allocator sends more than the path
/// carries (it pauses a track within a second of losses).
pub const MAX_WAIT: Duration = Duration::from_millis(300);
/// Packets may leave back to back while the pace is this far behind (the drain timer's
/// resolution is a millisecond).
const SLACK: Duration = Duration::from_millis(2);
/// A buffer holds a full packet and the SRTP tag added when it is protected.
const BUFFER_BYTES: usize = 1_500;

/// What a packet is, for the pacer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    Audio,
    Video,
    /// A NACK answer.
    Retransmission,
    /// Padding-only, for a bandwidth probe.
    Padding,
}

/// What to do with a packet now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Send,
    Queue,
    /// Padding that cannot go now: not sent at all.
    Refuse,
}

/// A packet waiting, unprotected, its transport-cc slot not yet written.
#[derive(Debug)]
pub struct Waiting {
    pub since: Instant,
    pub packet: Prepared,
    pub data: Vec<u8>,
}

/// The pacing rate for a subscriber at `now`: `factor` times the estimate while its path
/// has shown congestion in the last [`PACED_AFTER_CONGESTION`] (times the acknowledged
/// rate, if lower, while it loses packets: [`LOSSY_RECENT`]), else 0 (not paced). No
/// estimate (no feedback yet, or congestion control off): not paced.
pub fn pacing_rate(now: Instant, estimate: Option<Estimate>, factor: f64) -> u64 {
    let Some(estimate) = estimate else {
        return 0;
    };
    let within =
        |at: Option<Instant>, span| at.is_some_and(|at| now.saturating_duration_since(at) < span);
    if !within(estimate.last_congestion, PACED_AFTER_CONGESTION) || factor <= 0.0 {
        return 0;
    }
    let base = if within(estimate.last_severe, LOSSY_RECENT) {
        estimate.bps.min(estimate.acked_bps)
    } else {
        estimate.bps
    };
    ((base as f64 * factor) as u64).max(MIN_PACING_BPS)
}

#[derive(Debug, Default)]
pub struct Pacer {
    /// 0: not paced.
    rate_bps: u64,
    /// Bytes sent that the pace has not yet accounted for: a packet may go when it is
    /// under [`SLACK`] at the rate.
    debt_bytes: f64,
    last: Option<Instant>,
    queue: VecDeque<Waiting>,
    spare: Vec<Vec<u8>>,
    dropped: u64,
}

impl Pacer {
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    pub fn set_rate(&mut self, now: Instant, bps: u64) {
        self.settle(now);
        self.rate_bps = bps;
        if bps == 0 {
            self.debt_bytes = 0.0;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Pays off the debt for the time since the last call.
    fn settle(&mut self, now: Instant) {
        let elapsed = self
            .last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.last = Some(now.max(self.last.unwrap_or(now)));
        let paid = self.rate_bps as f64 / 8.0 * elapsed.as_secs_f64();
        self.debt_bytes = (self.debt_bytes - paid).max(0.0);
    }

    fn within_pace(&self) -> bool {
        self.rate_bps == 0 || self.debt_bytes <= self.rate_bps as f64 / 8.0 * SLACK.as_secs_f64()
    }

    /// `bytes` went out at `now` (audio, or what [`Pacer::admit`] or [`Pacer::pop_due`]
    /// let go).
    pub fn on_sent(&mut self, now: Instant, bytes: usize) {
        self.settle(now);
        if self.rate_bps > 0 {
            self.debt_bytes += bytes as f64;
        }
    }

    /// Whether a packet of `class` goes now, waits, or (padding) does not go. Tell
    /// [`Pacer::on_sent`] what went, but padding.
    pub fn admit(&mut self, now: Instant, class: PacketClass) -> Admit {
        match class {
            PacketClass::Audio => Admit::Send,
            PacketClass::Padding if self.queue.is_empty() => Admit::Send,
            PacketClass::Padding => Admit::Refuse,
            PacketClass::Video | PacketClass::Retransmission => {
                self.settle(now);
                if self.queue.is_empty() && self.within_pace() {
                    Admit::Send
                } else {
                    Admit::Queue
                }
            }
        }
    }

    /// Makes `data` (the packet as written, before protection) wait; the oldest waiting
    /// is dropped if [`MAX_PACKETS`] already wait.
    pub fn enqueue(&mut self, now: Instant, packet: Prepared, data: &[u8]) {
        if self.queue.len() >= MAX_PACKETS {
            self.drop_front();
        }
        let mut buf = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUFFER_BYTES));
        buf.clear();
        buf.extend_from_slice(data);
        self.queue.push_back(Waiting {
            since: now,
            packet,
            data: buf,
        });
    }

    fn drop_front(&mut self) {
        if let Some(w) = self.queue.pop_front() {
            self.spare.push(w.data);
            self.dropped += 1;
        }
    }

    /// The next packet to send at `now`, if one is due; packets that waited past
    /// [`MAX_WAIT`] are dropped first. Give its buffer back with [`Pacer::recycle`] and
    /// say it went with [`Pacer::on_sent`].
    pub fn pop_due(&mut self, now: Instant) -> Option<Waiting> {
        while self
            .queue
            .front()
            .is_some_and(|w| now.saturating_duration_since(w.since) > MAX_WAIT)
        {
            self.drop_front();
        }
        self.settle(now);
        if !self.within_pace() {
            return None;
        }
        self.queue.pop_front()
    }

    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.spare.push(buf);
    }

    /// When the next waiting packet is due (`None`: none waits).
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        self.queue.front()?;
        if self.within_pace() {
            return Some(now);
        }
        let slack = self.rate_bps as f64 / 8.0 * SLACK.as_secs_f64();
        let secs = (self.debt_bytes - slack) * 8.0 / self.rate_bps as f64;
        Some(now + Duration::from_secs_f64(secs.max(0.0)))
    }

    /// Packets dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16) -> Prepared {
        Prepared {
            header_len: 12,
            transport_seq_at: None,
            ssrc: 1,
            sequence_number: seq,
            roc: 0,
            class: PacketClass::Video,
        }
    }

    /// Sends what is due at each millisecond from `from` for `ms`, as the drain task would;
    /// returns (sequence number, when) of each packet sent.
    fn drain(p: &mut Pacer, from: Instant, ms: u64) -> Vec<(u16, Duration)> {
        let mut out = Vec::new();
        for t in 0..=ms {
            let now = from + Duration::from_millis(t);
            while let Some(w) = p.pop_due(now) {
                p.on_sent(now, w.data.len());
                out.push((w.packet.sequence_number, now - from));
                p.recycle(w.data);
            }
        }
        out
    }

    #[test]
    fn unpaced_everything_goes_at_once() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        for class in [
            PacketClass::Audio,
            PacketClass::Video,
            PacketClass::Retransmission,
            PacketClass::Padding,
        ] {
            for _ in 0..100 {
                assert_eq!(p.admit(t0, class), Admit::Send);
                p.on_sent(t0, 1_200);
            }
        }
        assert_eq!(p.next_due(t0), None);
    }

    #[test]
    fn a_keyframe_burst_is_spread_at_the_rate_and_audio_never_waits() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        p.set_rate(t0, 960_000); // 120 bytes a millisecond
                                 // A keyframe of 20 packets of 1,200 bytes arrives at once.
        let mut sent_now = 0;
        for seq in 0..20u16 {
            match p.admit(t0, PacketClass::Video) {
                Admit::Send => {
                    p.on_sent(t0, 1_200);
                    sent_now += 1;
                }
                Admit::Queue => p.enqueue(t0, packet(seq), &[0; 1_200]),
                Admit::Refuse => panic!("video is never refused"),
            }
        }
        assert_eq!(sent_now, 1, "the first goes at once");
        assert_eq!(p.len(), 19);
        // Audio in the middle of it goes at once, and only delays the video after it.
        assert_eq!(p.admit(t0, PacketClass::Audio), Admit::Send);
        p.on_sent(t0, 120);
        assert_eq!(
            p.admit(t0, PacketClass::Padding),
            Admit::Refuse,
            "a probe does not add to a queue"
        );
        let due = p.next_due(t0).expect("packets wait");
        assert_eq!(
            due - t0,
            Duration::from_millis(9),
            "1,320 bytes, less 2 ms of slack"
        );
        let sent = drain(&mut p, t0, 400);
        assert_eq!(sent.len(), 19);
        // 19 packets 10 ms apart, from 9 ms on: the first packet and the audio took 11.
        let last = sent.last().expect("sent").1;
        assert_eq!(sent[0].1, Duration::from_millis(9));
        assert!(
            (Duration::from_millis(187)..=Duration::from_millis(191)).contains(&last),
            "{last:?}"
        );
        let gaps: Vec<_> = sent.windows(2).map(|w| w[1].1 - w[0].1).collect();
        assert!(
            gaps.iter()
                .all(|g| *g >= Duration::from_millis(9) && *g <= Duration::from_millis(11)),
            "{gaps:?}"
        );
        assert_eq!(p.take_dropped(), 0);
        assert_eq!(p.next_due(t0 + Duration::from_millis(400)), None);
        // Idle, the debt is paid: the next packet goes at once again.
        assert_eq!(
            p.admit(t0 + Duration::from_millis(400), PacketClass::Video),
            Admit::Send
        );
    }

    #[test]
    fn what_waits_too_long_or_overflows_is_dropped_oldest_first() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        // 96 kbit/s: 12 bytes a millisecond, far below what comes.
        p.set_rate(t0, 96_000);
        p.on_sent(t0, 1_200);
        for seq in 0..(MAX_PACKETS as u16 + 10) {
            assert_eq!(p.admit(t0, PacketClass::Video), Admit::Queue);
            p.enqueue(t0, packet(seq), &[0; 1_200]);
        }
        assert_eq!(p.len(), MAX_PACKETS);
        assert_eq!(p.take_dropped(), 10, "the oldest ten made room");
        let sent = drain(&mut p, t0, 1_000);
        // One packet each 100 ms until the rest waited past MAX_WAIT.
        let seqs: Vec<u16> = sent.iter().map(|s| s.0).collect();
        assert_eq!(seqs, [10, 11, 12]);
        assert_eq!(p.take_dropped(), MAX_PACKETS as u64 - 3);
        assert!(p.is_empty());
        // The buffers are kept for reuse, never more than the queue held.
        assert!(p.spare.len() <= MAX_PACKETS + 1);
    }

    #[test]
    fn a_rate_lifted_to_zero_flushes_what_waits() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        p.set_rate(t0, 96_000);
        p.on_sent(t0, 1_200);
        for seq in 0..5 {
            p.enqueue(t0, packet(seq), &[0; 100]);
        }
        p.set_rate(t0, 0);
        assert_eq!(p.next_due(t0), Some(t0));
        assert_eq!(drain(&mut p, t0, 0).len(), 5);
    }

    #[test]
    fn paced_only_while_congestion_is_recent() {
        let t0 = Instant::now();
        let estimate = |last_congestion| {
            Some(Estimate {
                bps: 400_000,
                acked_bps: 400_000,
                last_congestion,
                last_severe: None,
                last_overuse: None,
                cluster: None,
            })
        };
        // A cap just fell: the estimate still says 1.2M, the receiver acknowledged 450k
        // and is losing packets.
        let falling = Some(Estimate {
            bps: 1_200_000,
            acked_bps: 450_000,
            last_congestion: Some(t0),
            last_severe: Some(t0),
            last_overuse: Some(t0),
            cluster: None,
        });
        assert_eq!(pacing_rate(t0, falling, 2.0), 900_000);
        assert_eq!(
            pacing_rate(t0 + LOSSY_RECENT, falling, 2.0),
            2_400_000,
            "no loss lately: the estimate"
        );
        let starved = falling.map(|e| Estimate { acked_bps: 0, ..e });
        assert_eq!(pacing_rate(t0, starved, 2.0), MIN_PACING_BPS);
        assert_eq!(
            pacing_rate(t0, None, 2.5),
            0,
            "no feedback, or no congestion control"
        );
        assert_eq!(pacing_rate(t0, estimate(None), 2.5), 0, "never congested");
        assert_eq!(pacing_rate(t0, estimate(Some(t0)), 2.5), 1_000_000);
        let later = t0 + PACED_AFTER_CONGESTION;
        assert_eq!(pacing_rate(later, estimate(Some(t0)), 2.5), 0);
        assert_eq!(pacing_rate(t0, estimate(Some(t0)), 0.0), 0, "pacing off");
    }
}
