//! Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
//! extensions-01), built from arrival times taken where the packets really arrived: at the
//! socket, before any task or buffer delayed them.
//!
//! A receiver calls [`FeedbackRecorder::record`] for every RTP packet that carries a
//! transport-wide sequence number, with the packet's arrival time, and every 50–100 ms
//! [`FeedbackRecorder::build`], which turns what was recorded into `TransportLayerCc`
//! packets for the sender. The sender's bandwidth estimate reads two things from them, so
//! both are kept exact:
//!
//! - **Arrival times.** Every arrival is rounded to the 250 µs grid of the feedback's
//!   reference time once, and each delta is the difference of two grid points, so rounding
//!   never accumulates along a feedback.
//! - **Losses.** Each feedback starts where the previous one ended, so a packet lost at the
//!   boundary of two feedback intervals is still reported lost (building from the first
//!   packet of each interval would silently skip it).
//!
//! Nothing here reads a clock: times come in as arguments.
pub mod rtp;

use std::time::Instant;

use rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk,
    SymbolSizeTypeTcc, SymbolTypeTcc, TransportLayerCc,
};

pub use rtp::transport_sequence_number;

/// The delta unit on the wire.
const TICK_US: i64 = 250;
/// `reference_time` counts 64 ms, in 24 bits.
const REFERENCE_UNIT_US: i64 = 64_000;
const REFERENCE_MASK: i64 = (1 << 24) - 1;
/// A run-length chunk holds at most this many statuses (13 bits).
const MAX_RUN: usize = 0x1fff;
/// Packets recorded between two builds; beyond this the oldest are reported as they are
/// and recording continues (a build is overdue, e.g. a stalled timer).
pub const MAX_PENDING: usize = 8192;
/// Received packets in one feedback packet, so one stays well under an MTU even when every
/// packet needs a two-byte delta and a chunk of its own: 20 + 250 × (2 + 2) bytes.
const MAX_RECEIVED_PER_FEEDBACK: usize = 250;
/// A gap longer than this is not reported as losses: the stream was idle or restarted
/// (half the sequence space is the limit of unwrapping anyway). Shorter gaps cost a
/// run-length chunk per 8191 lost packets.
const MAX_REPORTED_GAP: u64 = 0x4000;

/// Records arrivals and builds transport-cc feedback for one transport (one
/// PeerConnection: the sequence numbers are shared by all of its streams).
#[derive(Debug)]
pub struct FeedbackRecorder {
    /// Arrival times are kept as µs since this instant.
    epoch: Instant,
    /// (extended sequence number, arrival µs since `epoch`), in arrival order.
    pending: Vec<(u64, i64)>,
    /// The highest extended sequence number recorded, for unwrapping the next one.
    highest: Option<u64>,
    /// The first sequence number the next feedback must describe.
    next_unreported: Option<u64>,
    feedback_count: u8,
    /// Packets recorded after their sequence number had already been reported (as lost).
    late: u64,
    /// Symbols of the feedback being built (reused between builds).
    symbols: Vec<SymbolTypeTcc>,
}

impl FeedbackRecorder {
    /// A recorder whose arrival times count from `epoch` (any instant before the first
    /// arrival; arrivals earlier than it count as arriving at it).
    pub fn new(epoch: Instant) -> Self {
        FeedbackRecorder {
            epoch,
            pending: Vec::new(),
            highest: None,
            next_unreported: None,
            feedback_count: 0,
            late: 0,
            symbols: Vec::new(),
        }
    }

    /// Notes that the packet with transport-wide sequence number `seq` arrived at
    /// `arrival`. Duplicates and packets whose number was already reported are ignored.
    pub fn record(&mut self, seq: u16, arrival: Instant) {
        let extended = self.unwrap(seq);
        if self.next_unreported.is_some_and(|next| extended < next) {
            self.late += 1;
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            return;
        }
        let micros = arrival.saturating_duration_since(self.epoch).as_micros();
        self.pending
            .push((extended, i64::try_from(micros).unwrap_or(i64::MAX)));
    }

    /// Packets that arrived after the feedback covering them had reported them lost.
    pub fn late_packets(&self) -> u64 {
        self.late
    }

    /// Whether anything was recorded since the last build.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Appends to `out` the feedback packets for everything recorded since the last build
    /// (none if nothing was), and forgets it. `sender_ssrc` is this receiver's SSRC,
    /// `media_ssrc` one of the sender's streams (receivers ignore it; libwebrtc sends the
    /// first).
    pub fn build(&mut self, sender_ssrc: u32, media_ssrc: u32, out: &mut Vec<TransportLayerCc>) {
        if self.pending.is_empty() {
            return;
        }
        self.pending.sort_by_key(|&(seq, _)| seq);
        self.pending.dedup_by_key(|&mut (seq, _)| seq);
        let pending = std::mem::take(&mut self.pending);
        let mut next = self.next_unreported.unwrap_or(pending[0].0);
        let mut i = 0;
        while i < pending.len() {
            if pending[i].0 - next > MAX_REPORTED_GAP {
                next = pending[i].0;
            }
            let (feedback, used) = self.one_feedback(next, &pending[i..], sender_ssrc, media_ssrc);
            out.push(feedback);
            i += used;
            next = pending[i - 1].0 + 1;
        }
        self.next_unreported = Some(next);
        self.pending = pending;
        self.pending.clear();
    }

    /// Builds one feedback starting at sequence number `base` from the (sorted) packets
    /// in `packets`; returns it and how many packets it covers (at least one).
    fn one_feedback(
        &mut self,
        base: u64,
        packets: &[(u64, i64)],
        sender_ssrc: u32,
        media_ssrc: u32,
    ) -> (TransportLayerCc, usize) {
        let reference = packets[0].1.max(0) / REFERENCE_UNIT_US;
        let mut last_tick = reference * (REFERENCE_UNIT_US / TICK_US);
        let mut deltas = Vec::new();
        self.symbols.clear();
        let mut seq = base;
        let mut used = 0;
        for &(packet_seq, arrival) in packets {
            let tick = (arrival + TICK_US / 2) / TICK_US;
            let delta = tick - last_tick;
            let missing = packet_seq - seq;
            let fits = i16::try_from(delta).is_ok()
                && missing <= MAX_REPORTED_GAP
                && used < MAX_RECEIVED_PER_FEEDBACK
                && self.symbols.len() as u64 + missing < u64::from(u16::MAX);
            if used > 0 && !fits {
                break;
            }
            let missing = missing as usize;
            self.symbols.extend(std::iter::repeat_n(
                SymbolTypeTcc::PacketNotReceived,
                missing,
            ));
            let symbol = if (0..=255).contains(&delta) {
                SymbolTypeTcc::PacketReceivedSmallDelta
            } else {
                SymbolTypeTcc::PacketReceivedLargeDelta
            };
            self.symbols.push(symbol);
            deltas.push(RecvDelta {
                type_tcc_packet: symbol,
                delta: delta.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) * TICK_US,
            });
            last_tick = tick;
            seq = packet_seq + 1;
            used += 1;
        }
        let feedback = TransportLayerCc {
            sender_ssrc,
            media_ssrc,
            base_sequence_number: base as u16,
            packet_status_count: self.symbols.len() as u16,
            reference_time: (reference & REFERENCE_MASK) as u32,
            fb_pkt_count: self.feedback_count,
            packet_chunks: encode_chunks(&self.symbols),
            recv_deltas: deltas,
        };
        self.feedback_count = self.feedback_count.wrapping_add(1);
        (feedback, used)
    }

    /// The extended sequence number nearest to the highest recorded so far.
    fn unwrap(&mut self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            // Start high enough that numbers before the first never go below zero.
            let extended = (1 << 16) | u64::from(seq);
            self.highest = Some(extended);
            return extended;
        };
        let ahead = seq.wrapping_sub(highest as u16);
        let extended = if ahead < 0x8000 {
            highest + u64::from(ahead)
        } else {
            highest.saturating_sub(u64::from((highest as u16).wrapping_sub(seq)))
        };
        self.highest = Some(highest.max(extended));
        extended
    }
}

/// Packet status chunks for `symbols`, greedily: a run-length chunk where at least seven
/// equal statuses follow, otherwise a one-bit vector of 14 when no large delta is among
/// them, otherwise a two-bit vector of 7. A vector at the end is padded with "not
/// received" (decoders ignore statuses beyond the count, but count deltas for all).
fn encode_chunks(symbols: &[SymbolTypeTcc]) -> Vec<PacketStatusChunk> {
    let mut chunks = Vec::new();
    let mut i = 0;
    while i < symbols.len() {
        let run = symbols[i..]
            .iter()
            .take(MAX_RUN)
            .take_while(|&&s| s == symbols[i])
            .count();
        if run >= 7 || run == symbols.len() - i {
            chunks.push(PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: symbols[i],
                run_length: run as u16,
            }));
            i += run;
            continue;
        }
        let one_bit = symbols[i..]
            .iter()
            .take(14)
            .all(|&s| s != SymbolTypeTcc::PacketReceivedLargeDelta);
        let (size, capacity) = if one_bit {
            (SymbolSizeTypeTcc::OneBit, 14)
        } else {
            (SymbolSizeTypeTcc::TwoBit, 7)
        };
        let taken = capacity.min(symbols.len() - i);
        let mut list: Vec<SymbolTypeTcc> = symbols[i..i + taken].to_vec();
        list.resize(capacity, SymbolTypeTcc::PacketNotReceived);
        chunks.push(PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
            type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
            symbol_size: size,
            symbol_list: list,
        }));
        i += taken;
    }
    chunks
}

#[cfg(test)]
mod tests;
