//! Test helpers: a deterministic random source and a transport-cc receiver that encodes
//! arrival times the way a browser would.

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
