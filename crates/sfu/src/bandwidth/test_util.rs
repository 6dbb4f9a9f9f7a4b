//! Test helpers: a deterministic random source, a transport-cc receiver that encodes
//! arrival times the way a browser would, and a simulated path (a bottleneck with loss, and
//! a receiver whose timestamps may be late) to run estimators against on a fake clock.

use std::collections::VecDeque;

use rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, StatusChunkTypeTcc, StatusVectorChunk, SymbolSizeTypeTcc,
    SymbolTypeTcc, TransportLayerCc, TYPE_TCC_DELTA_SCALE_FACTOR,
};

/// A small deterministic generator (64-bit LCG, high bits out).
pub(crate) struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 13) as f64 / (1u64 << 40) as f64
    }
}

/// Feedback for consecutive sequence numbers from `base`: `arrivals[i]` is the arrival in
/// µs (≥ 0) of `base + i`, or `None` if lost. Uses two-bit status vectors, quantises to
/// 250 µs like a real receiver, and picks small or large deltas as needed.
pub(crate) fn build_feedback(base: u16, arrivals: &[Option<i64>]) -> TransportLayerCc {
    let unit = TYPE_TCC_DELTA_SCALE_FACTOR;
    let first = arrivals.iter().flatten().next().copied().unwrap_or(0);
    let reference_time = first / 64_000;
    let mut previous_ticks = reference_time * 64_000 / unit;
    let mut symbols = Vec::with_capacity(arrivals.len());
    let mut recv_deltas = Vec::new();
    for arrival in arrivals {
        match arrival {
            None => symbols.push(SymbolTypeTcc::PacketNotReceived),
            Some(at) => {
                let ticks = (at + unit / 2) / unit;
                let delta = ticks - previous_ticks;
                previous_ticks = ticks;
                assert!(i64::from(i16::MIN) <= delta && delta <= i64::from(i16::MAX));
                let symbol = if (0..=255).contains(&delta) {
                    SymbolTypeTcc::PacketReceivedSmallDelta
                } else {
                    SymbolTypeTcc::PacketReceivedLargeDelta
                };
                symbols.push(symbol);
                recv_deltas.push(RecvDelta {
                    type_tcc_packet: symbol,
                    delta: delta * unit,
                });
            }
        }
    }
    let packet_chunks = symbols
        .chunks(7)
        .map(|seven| {
            let mut symbol_list = seven.to_vec();
            symbol_list.resize(7, SymbolTypeTcc::PacketNotReceived);
            PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                symbol_size: SymbolSizeTypeTcc::TwoBit,
                symbol_list,
            })
        })
        .collect();
    TransportLayerCc {
        sender_ssrc: 1,
        media_ssrc: 2,
        base_sequence_number: base,
        packet_status_count: arrivals.len() as u16,
        reference_time: reference_time as u32,
        fb_pkt_count: 0,
        packet_chunks,
        recv_deltas,
    }
}

/// A bottleneck: a FIFO queue drained at `capacity_bps` after a fixed propagation delay,
/// with tail drop once the queue holds `max_queue_us` of sending, and optional random or
/// bursty loss in front of it.
pub(crate) struct Link {
    pub capacity_bps: f64,
    pub propagation_us: i64,
    pub max_queue_us: i64,
    /// Probability that a packet is lost at random, independently of the others.
    pub random_loss: f64,
    /// Probability that a loss burst of 3–8 packets starts at a packet.
    pub burst_start: f64,
    burst_left: u32,
    free_at_us: f64,
    pub dropped: u32,
    pub queue_dropped: u32,
}

impl Link {
    pub fn new(capacity_bps: f64) -> Self {
        Link {
            capacity_bps,
            propagation_us: 20_000,
            max_queue_us: 300_000,
            random_loss: 0.0,
            burst_start: 0.0,
            burst_left: 0,
            free_at_us: 0.0,
            dropped: 0,
            queue_dropped: 0,
        }
    }

    /// When a packet of `size` bytes sent at `sent_us` arrives, or `None` if it is lost.
    pub fn carry(&mut self, sent_us: i64, size: usize, rng: &mut Lcg) -> Option<i64> {
        if self.burst_left == 0 && rng.unit() < self.burst_start {
            self.burst_left = 3 + rng.below(6) as u32;
        }
        if self.burst_left > 0 {
            self.burst_left -= 1;
            self.dropped += 1;
            return None;
        }
        if rng.unit() < self.random_loss {
            self.dropped += 1;
            return None;
        }
        let start = self.free_at_us.max(sent_us as f64);
        if start - sent_us as f64 > self.max_queue_us as f64 {
            self.dropped += 1;
            self.queue_dropped += 1;
            return None;
        }
        self.free_at_us = start + size as f64 * 8e6 / self.capacity_bps;
        Some(self.free_at_us as i64 + self.propagation_us)
    }
}

/// When the receiver writes down a packet's arrival, relative to when it really arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stamping {
    /// At the socket, exactly.
    Exact,
    /// By a reader that a busy machine stops now and then: every `mean_gap_us` on average
    /// it stalls for up to `max_stall_us`, then reads the backlog in order. A loaded load
    /// tester stamping packets as its interceptor reads them looks like this.
    Stalls { mean_gap_us: i64, max_stall_us: i64 },
    /// Each packet delayed by 0..2 × `jitter_us` more (a delay shim's D ± J), optionally
    /// without keeping their order.
    Jitter { jitter_us: i64, reorder: bool },
}

/// What a transport-cc receiver sees of the packets sent over a [`Link`], and the
/// feedback it sends back.
pub(crate) struct Path {
    pub link: Link,
    pub stamping: Stamping,
    pub rng: Lcg,
    /// (transport seq, arrival stamp on the receiver's clock), in sending order.
    in_flight: VecDeque<Report>,
    /// Per stream (a receiver reads each track on its own), the last stamp and the next
    /// stall (start, end).
    readers: [(i64, (i64, i64)); STREAMS],
    /// Feedback takes this long to come back.
    pub return_delay_us: i64,
}

/// What the receiver said about one packet: (transport seq, arrival stamp or `None` if
/// lost).
pub(crate) type Report = (u16, Option<i64>);

/// The receiver's clock is unrelated to ours; only differences may matter.
pub(crate) const RECEIVER_CLOCK_OFFSET_US: i64 = 1_000_000_000;
/// Streams a [`Path`] tells apart (e.g. audio and video).
pub(crate) const STREAMS: usize = 4;

impl Path {
    pub fn new(link: Link, stamping: Stamping) -> Self {
        Path {
            link,
            stamping,
            rng: Lcg(42),
            in_flight: VecDeque::new(),
            readers: [(i64::MIN, (i64::MAX, i64::MAX)); STREAMS],
            return_delay_us: 20_000,
        }
    }

    /// A packet of `stream` (0..STREAMS) sent at `sent_us` (sender clock, µs).
    pub fn send(&mut self, seq: u16, size: usize, sent_us: i64, stream: usize) {
        let stamp = self
            .link
            .carry(sent_us, size, &mut self.rng)
            .map(|arrival| self.stamp(arrival, stream % STREAMS));
        self.in_flight.push_back((seq, stamp));
    }

    fn stamp(&mut self, arrival: i64, stream: usize) -> i64 {
        let stamp = match self.stamping {
            Stamping::Exact => arrival,
            Stamping::Stalls {
                mean_gap_us,
                max_stall_us,
            } => {
                let (last, mut stall) = self.readers[stream];
                if stall.0 == i64::MAX {
                    stall = self.next_stall(arrival, mean_gap_us, max_stall_us);
                }
                let mut at = arrival.max(last.saturating_add(20));
                while at >= stall.1 {
                    stall = self.next_stall(stall.1, mean_gap_us, max_stall_us);
                }
                if at >= stall.0 {
                    at = stall.1;
                }
                self.readers[stream] = (at, stall);
                at
            }
            Stamping::Jitter { jitter_us, reorder } => {
                let last = self.readers[0].0;
                let mut at = arrival + (self.rng.unit() * 2.0 * jitter_us as f64) as i64;
                if !reorder {
                    at = at.max(last);
                }
                self.readers[0].0 = last.max(at);
                at
            }
        };
        stamp + RECEIVER_CLOCK_OFFSET_US
    }
    fn next_stall(&mut self, after: i64, mean_gap_us: i64, max_stall_us: i64) -> (i64, i64) {
        let gap = (-(1.0 - self.rng.unit()).ln() * mean_gap_us as f64) as i64;
        let start = after + gap.max(1);
        (
            start,
            start + 1 + self.rng.below(max_stall_us as u64) as i64,
        )
    }

    /// The feedback a receiver sends at `now_us`: every packet up to the last one it has
    /// written down by then (`None` if there is nothing new), and those packets' (transport
    /// seq, arrival stamp or `None` if lost).
    pub fn feedback(&mut self, now_us: i64) -> Option<(TransportLayerCc, Vec<Report>)> {
        let cutoff = now_us - self.return_delay_us + RECEIVER_CLOCK_OFFSET_US;
        let mut last = None;
        for (i, (_, stamp)) in self.in_flight.iter().enumerate() {
            match stamp {
                Some(at) if *at <= cutoff => last = Some(i),
                Some(_) => break,
                None => {}
            }
        }
        let reported: Vec<_> = self.in_flight.drain(..=last?).collect();
        let arrivals: Vec<_> = reported.iter().map(|(_, at)| *at).collect();
        Some((build_feedback(reported[0].0, &arrivals), reported))
    }
}
