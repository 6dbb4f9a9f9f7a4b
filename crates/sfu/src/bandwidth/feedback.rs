//! Reading one transport-cc feedback (`TransportLayerCc`) into per-packet results: which of
//! our packets arrived, and when on the receiver's clock.
//!
//! The feedback lists `packet_status_count` consecutive sequence numbers from
//! `base_sequence_number`, described by status chunks (a run of one status, or a vector of
//! 7 or 14 statuses). Every packet received "with a delta" consumes the next receive delta,
//! a signed multiple of 250 µs (the rtcp crate already hands them over in µs) relative to
//! the previous received packet, the first one relative to `reference_time` (64 ms units).
//!
//! This is network input: any inconsistency (more statuses than deltas, counts larger than
//! the chunks describe, absurd deltas) ends or trims the result list, never panics.

use std::time::Instant;

use rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, SymbolTypeTcc, TransportLayerCc,
};

use super::send_history::SendHistory;

/// `reference_time` is counted in 64 ms.
const REFERENCE_TIME_UNIT_US: i64 = 64_000;
/// ... in a 24-bit field, so it wraps every 2^24 × 64 ms (about 12.4 days).
const REFERENCE_TIME_BITS: u32 = 24;
const REFERENCE_TIME_MODULO: i64 = 1 << REFERENCE_TIME_BITS;

/// What the receiver said about one packet we sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketResult {
    /// Transport-wide sequence number.
    pub seq: u16,
    /// Size as recorded in the [`SendHistory`].
    pub size: usize,
    /// When we sent it.
    pub sent_at: Instant,
    /// When it arrived, in µs on the receiver's clock (only differences mean anything);
    /// `None` if the receiver reports it lost.
    pub arrival: Option<i64>,
}

impl PacketResult {
    pub fn received(&self) -> bool {
        self.arrival.is_some()
    }
}

/// Turns transport-cc feedback into [`PacketResult`]s. It keeps only the unwrapping state
/// of the 24-bit reference time, so use one per subscriber connection.
#[derive(Debug, Default, Clone)]
pub struct FeedbackParser {
    /// The previous feedback's reference time, unwrapped (in 64 ms units).
    last_reference: Option<i64>,
}

impl FeedbackParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Clears `out` and fills it, in sequence-number order, with one result per reported
    /// packet that `history` still knows (others are skipped: too old, or not ours).
    /// Packets with the reserved status "received without delta" are skipped too, since
    /// they carry no arrival time. Reuse `out` between calls: in steady state nothing is
    /// allocated.
    pub fn parse(
        &mut self,
        feedback: &TransportLayerCc,
        history: &SendHistory,
        out: &mut Vec<PacketResult>,
    ) {
        out.clear();
        let mut walk = Walk {
            history,
            out,
            seq: feedback.base_sequence_number,
            remaining: usize::from(feedback.packet_status_count),
            deltas: feedback.recv_deltas.iter(),
            arrival: self
                .unwrap_reference(feedback.reference_time)
                .saturating_mul(REFERENCE_TIME_UNIT_US),
        };
        for chunk in &feedback.packet_chunks {
            let more = match chunk {
                PacketStatusChunk::RunLengthChunk(run) => {
                    let n = usize::from(run.run_length).min(walk.remaining);
                    (0..n).all(|_| walk.status(run.packet_status_symbol))
                }
                PacketStatusChunk::StatusVectorChunk(vector) => vector
                    .symbol_list
                    .iter()
                    .take(walk.remaining)
                    .all(|&symbol| walk.status(symbol)),
            };
            if !more || walk.remaining == 0 {
                break;
            }
        }
    }

    /// The reference time continued across its 24-bit wrap (and tolerating feedback that
    /// arrives out of order): the nearest value to the previous one.
    fn unwrap_reference(&mut self, reference_time: u32) -> i64 {
        let raw = i64::from(reference_time) & (REFERENCE_TIME_MODULO - 1);
        let unwrapped = match self.last_reference {
            None => raw,
            Some(last) => {
                let mut diff = (raw - last).rem_euclid(REFERENCE_TIME_MODULO);
                if diff >= REFERENCE_TIME_MODULO / 2 {
                    diff -= REFERENCE_TIME_MODULO;
                }
                last.saturating_add(diff)
            }
        };
        self.last_reference = Some(unwrapped);
        unwrapped
    }
}

/// The cursor over one feedback's statuses.
struct Walk<'a, 'h, I> {
    history: &'h SendHistory,
    out: &'a mut Vec<PacketResult>,
    seq: u16,
    remaining: usize,
    deltas: I,
    /// Receiver clock, µs, of the last received packet (or the reference time).
    arrival: i64,
}

impl<'d, I: Iterator<Item = &'d RecvDelta>> Walk<'_, '_, I> {
    /// Handles the next sequence number; false if the feedback is used up or malformed.
    fn status(&mut self, symbol: SymbolTypeTcc) -> bool {
        if self.remaining == 0 {
            return false;
        }
        let arrival = match symbol {
            SymbolTypeTcc::PacketNotReceived => None,
            SymbolTypeTcc::PacketReceivedSmallDelta | SymbolTypeTcc::PacketReceivedLargeDelta => {
                // A received packet without its delta: the rest cannot be placed in time.
                let Some(delta) = self.deltas.next() else {
                    self.remaining = 0;
                    return false;
                };
                self.arrival = self.arrival.saturating_add(delta.delta);
                Some(self.arrival)
            }
            SymbolTypeTcc::PacketReceivedWithoutDelta => {
                self.advance();
                return true;
            }
        };
        if let Some(sent) = self.history.get(self.seq) {
            self.out.push(PacketResult {
                seq: self.seq,
                size: sent.size,
                sent_at: sent.sent_at,
                arrival,
            });
        }
        self.advance();
        true
    }

    fn advance(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        self.remaining -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{build_feedback, Lcg};
    use super::*;
    use rtcp::transport_feedbacks::transport_layer_cc::{
        RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk, SymbolSizeTypeTcc,
        TYPE_TCC_DELTA_SCALE_FACTOR,
    };
    use std::time::Duration;
    use webrtc::util::marshal::{Marshal, Unmarshal};

    fn history_with(t0: Instant, seqs: impl IntoIterator<Item = u16>) -> SendHistory {
        let history = SendHistory::new(t0);
        for (i, seq) in seqs.into_iter().enumerate() {
            history.record(seq, 1_000 + i, t0 + Duration::from_millis(i as u64));
        }
        history
    }

    fn round_trip(feedback: &TransportLayerCc) -> TransportLayerCc {
        let raw = feedback.marshal().expect("marshal");
        let mut buf = raw.clone();
        TransportLayerCc::unmarshal(&mut buf).expect("unmarshal")
    }

    fn small(us: i64) -> RecvDelta {
        RecvDelta {
            type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
            delta: us,
        }
    }

    fn large(us: i64) -> RecvDelta {
        RecvDelta {
            type_tcc_packet: SymbolTypeTcc::PacketReceivedLargeDelta,
            delta: us,
        }
    }

    fn run(symbol: SymbolTypeTcc, run_length: u16) -> PacketStatusChunk {
        PacketStatusChunk::RunLengthChunk(RunLengthChunk {
            type_tcc: StatusChunkTypeTcc::RunLengthChunk,
            packet_status_symbol: symbol,
            run_length,
        })
    }

    fn vector(size: SymbolSizeTypeTcc, symbols: &[SymbolTypeTcc]) -> PacketStatusChunk {
        PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
            type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
            symbol_size: size,
            symbol_list: symbols.to_vec(),
        })
    }

    #[test]
    fn run_length_and_two_bit_vectors_with_small_large_and_negative_deltas() {
        use SymbolTypeTcc::*;
        let t0 = Instant::now();
        let base = 65_533u16; // wraps within the feedback
        let history = history_with(t0, (0..12).map(|i| base.wrapping_add(i)));
        let feedback = TransportLayerCc {
            base_sequence_number: base,
            packet_status_count: 12,
            reference_time: 5,
            fb_pkt_count: 1,
            packet_chunks: vec![
                run(PacketReceivedSmallDelta, 3),
                vector(
                    SymbolSizeTypeTcc::TwoBit,
                    &[
                        PacketNotReceived,
                        PacketReceivedLargeDelta,
                        PacketReceivedSmallDelta,
                        PacketNotReceived,
                        PacketNotReceived,
                        PacketReceivedLargeDelta,
                        PacketReceivedSmallDelta,
                    ],
                ),
                run(PacketNotReceived, 2),
            ],
            recv_deltas: vec![
                small(1_000),
                small(250),
                small(63_750),
                large(-2_000),
                small(0),
                large(100_000),
                small(500),
            ],
            ..Default::default()
        };
        let decoded = round_trip(&feedback);
        assert_eq!(
            decoded, feedback,
            "the rtcp crate round-trips what we built"
        );

        let mut out = Vec::new();
        FeedbackParser::new().parse(&decoded, &history, &mut out);
        let reference = 5 * 64_000;
        let expected_arrivals = [
            Some(reference + 1_000),
            Some(reference + 1_250),
            Some(reference + 65_000),
            None,
            Some(reference + 63_000),
            Some(reference + 63_000),
            None,
            None,
            Some(reference + 163_000),
            Some(reference + 163_500),
            None,
            None,
        ];
        assert_eq!(out.len(), 12);
        for (i, (result, arrival)) in out.iter().zip(expected_arrivals).enumerate() {
            let seq = base.wrapping_add(i as u16);
            assert_eq!(result.seq, seq);
            assert_eq!(result.arrival, arrival, "seq {seq}");
            assert_eq!(result.size, 1_000 + i);
            assert_eq!(result.sent_at, t0 + Duration::from_millis(i as u64));
        }
    }

    #[test]
    fn one_bit_vector_is_trimmed_to_the_status_count() {
        use SymbolTypeTcc::*;
        let t0 = Instant::now();
        let history = history_with(t0, 100..120);
        let mut symbols = [PacketReceivedSmallDelta; 14];
        symbols[1] = PacketNotReceived;
        let feedback = TransportLayerCc {
            base_sequence_number: 100,
            packet_status_count: 4,
            reference_time: 0,
            packet_chunks: vec![vector(SymbolSizeTypeTcc::OneBit, &symbols)],
            recv_deltas: (0..13)
                .map(|_| small(TYPE_TCC_DELTA_SCALE_FACTOR))
                .collect(),
            ..Default::default()
        };
        let mut out = Vec::new();
        FeedbackParser::new().parse(&round_trip(&feedback), &history, &mut out);
        let arrivals: Vec<_> = out.iter().map(|r| (r.seq, r.arrival)).collect();
        assert_eq!(
            arrivals,
            [
                (100, Some(250)),
                (101, None),
                (102, Some(500)),
                (103, Some(750))
            ]
        );
    }

    #[test]
    fn packets_the_history_no_longer_has_are_skipped() {
        let t0 = Instant::now();
        let history = history_with(t0, [11, 13]);
        let feedback = TransportLayerCc {
            base_sequence_number: 10,
            packet_status_count: 5,
            packet_chunks: vec![run(SymbolTypeTcc::PacketReceivedSmallDelta, 5)],
            recv_deltas: (0..5).map(|_| small(1_000)).collect(),
            ..Default::default()
        };
        let mut out = Vec::new();
        FeedbackParser::new().parse(&feedback, &history, &mut out);
        let got: Vec<_> = out.iter().map(|r| (r.seq, r.arrival)).collect();
        assert_eq!(got, [(11, Some(2_000)), (13, Some(4_000))]);
    }

    #[test]
    fn reference_time_unwraps_across_its_24_bit_wrap() {
        let t0 = Instant::now();
        let history = history_with(t0, [1, 2]);
        let feedback = |seq, reference_time| TransportLayerCc {
            base_sequence_number: seq,
            packet_status_count: 1,
            reference_time,
            packet_chunks: vec![run(SymbolTypeTcc::PacketReceivedSmallDelta, 1)],
            recv_deltas: vec![small(0)],
            ..Default::default()
        };
        let mut parser = FeedbackParser::new();
        let mut out = Vec::new();
        parser.parse(&feedback(1, 0xFF_FFFF), &history, &mut out);
        let before = out[0].arrival.expect("received");
        parser.parse(&feedback(2, 0), &history, &mut out);
        let after = out[0].arrival.expect("received");
        assert_eq!(after - before, 64_000);
    }

    #[test]
    fn feedback_built_by_the_test_receiver_matches_its_arrivals() {
        let t0 = Instant::now();
        let history = history_with(t0, (0..40).map(|i| 65_520u16.wrapping_add(i)));
        let arrivals: Vec<Option<i64>> = (0..40)
            .map(|i| (i % 7 != 3).then_some(9_000_000 + i * 3_100 + (i % 5) * 700))
            .collect();
        let feedback = build_feedback(65_520, &arrivals);
        let mut out = Vec::new();
        FeedbackParser::new().parse(&round_trip(&feedback), &history, &mut out);
        assert_eq!(out.len(), 40);
        for (result, expected) in out.iter().zip(&arrivals) {
            match (result.arrival, expected) {
                (None, None) => {}
                (Some(got), Some(want)) => assert!((got - want).abs() < 250, "{got} {want}"),
                other => panic!("status mismatch {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_feedback_never_panics_and_stays_bounded() {
        use SymbolTypeTcc::*;
        let t0 = Instant::now();
        let history = SendHistory::new(t0);
        for seq in 0..=u16::MAX {
            history.record(seq, 1_200, t0 + Duration::from_micros(u64::from(seq)));
        }
        let mut parser = FeedbackParser::new();
        let mut out = Vec::new();
        let cases = [
            // A count with no chunks at all.
            TransportLayerCc {
                packet_status_count: u16::MAX,
                ..Default::default()
            },
            // Statuses say received, deltas are missing.
            TransportLayerCc {
                packet_status_count: 100,
                packet_chunks: vec![run(PacketReceivedLargeDelta, 100)],
                recv_deltas: vec![large(1_000)],
                ..Default::default()
            },
            // Huge runs covering the whole sequence space, extreme deltas and times.
            TransportLayerCc {
                base_sequence_number: 40_000,
                packet_status_count: u16::MAX,
                reference_time: u32::MAX,
                packet_chunks: (0..20)
                    .map(|_| run(PacketReceivedLargeDelta, 8_191))
                    .collect(),
                recv_deltas: (0..70_000)
                    .map(|i| large(if i % 2 == 0 { i64::MAX } else { i64::MIN }))
                    .collect(),
                ..Default::default()
            },
            // Vectors longer than 14, reserved symbols, zero-length runs.
            TransportLayerCc {
                packet_status_count: 50,
                packet_chunks: vec![
                    run(PacketReceivedWithoutDelta, 0),
                    vector(SymbolSizeTypeTcc::OneBit, &[PacketReceivedWithoutDelta; 40]),
                    vector(SymbolSizeTypeTcc::TwoBit, &[]),
                ],
                ..Default::default()
            },
        ];
        for feedback in &cases {
            parser.parse(feedback, &history, &mut out);
            assert!(out.len() <= usize::from(feedback.packet_status_count));
        }
        let mut rng = Lcg(7);
        let symbols = [
            PacketNotReceived,
            PacketReceivedSmallDelta,
            PacketReceivedLargeDelta,
            PacketReceivedWithoutDelta,
        ];
        for _ in 0..2_000 {
            let chunks = (0..rng.below(12))
                .map(|_| {
                    if rng.below(2) == 0 {
                        run(symbols[rng.below(4) as usize], rng.below(9_000) as u16)
                    } else {
                        let list: Vec<_> = (0..rng.below(20))
                            .map(|_| symbols[rng.below(4) as usize])
                            .collect();
                        vector(SymbolSizeTypeTcc::TwoBit, &list)
                    }
                })
                .collect();
            let feedback = TransportLayerCc {
                base_sequence_number: rng.next() as u16,
                packet_status_count: rng.next() as u16,
                reference_time: rng.next() as u32,
                packet_chunks: chunks,
                recv_deltas: (0..rng.below(300))
                    .map(|_| large(rng.next() as i64))
                    .collect(),
                ..Default::default()
            };
            parser.parse(&feedback, &history, &mut out);
            assert!(out.len() <= usize::from(feedback.packet_status_count));
        }
    }
}
