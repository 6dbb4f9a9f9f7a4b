//! Rewrites one forwarded stream's sequence numbers, timestamps and VP8 picture ids so the
//! subscriber sees one continuous stream, whichever simulcast layer it comes from.
//!
//! Each stretch forwarded from one layer is a *segment* with its own offsets. A segment
//! starts at a keyframe: its first packet gets the sequence number after the last one sent,
//! a timestamp advanced by the wall-clock time since the last packet, and the next picture
//! id and TL0PICIDX, so a switch leaves no gap and no jump. Within a segment, loss and
//! reordering on the incoming layer pass through unchanged. The last few segments are kept
//! so a NACK for a packet sent before a switch still finds its layer and number.
use std::time::Instant;

/// Sequence-number distance that counts as "older" rather than "newer" (half the space).
const SEQ_HALF: u16 = 0x8000;
/// Segments remembered for answering NACKs: switches are seconds apart, but while a probe
/// pads, each batch of padding starts one (every 20 ms); NACKs come within a round trip.
const SEGMENTS: usize = 32;
const PICTURE_ID_MASK: u16 = 0x7fff;

/// The VP8 ids of a packet, when it carries them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vp8Ids {
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Munged {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub vp8: Vp8Ids,
}

/// How to renumber an old packet the subscriber NACKed: which layer and publisher sequence
/// number it was, and the offsets of the segment it was sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewind {
    pub layer: u8,
    pub in_seq: u16,
    segment: Offsets,
}

impl Rewind {
    /// The packet as it was first sent, given its incoming timestamp and VP8 ids.
    pub fn munged(&self, out_seq: u16, in_ts: u32, vp8: Vp8Ids) -> Munged {
        Munged {
            sequence_number: out_seq,
            timestamp: in_ts.wrapping_add(self.segment.ts),
            vp8: self.segment.vp8(vp8),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offsets {
    /// `out = in + seq` on extended (64-bit) sequence numbers, wrapping.
    seq: u64,
    ts: u32,
    picture_id: u16,
    tl0_pic_idx: u8,
}

impl Offsets {
    fn vp8(&self, ids: Vp8Ids) -> Vp8Ids {
        Vp8Ids {
            picture_id: ids
                .picture_id
                .map(|p| p.wrapping_add(self.picture_id) & PICTURE_ID_MASK),
            tl0_pic_idx: ids.tl0_pic_idx.map(|t| t.wrapping_add(self.tl0_pic_idx)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    layer: u8,
    /// Incoming sequence numbers of this layer, extended: the first forwarded (anything
    /// older is not ours to send) and the highest seen since.
    first_in: u64,
    highest_in: u64,
    first_out: u64,
    offsets: Offsets,
}

/// The newest packet sent: where the next segment continues from.
#[derive(Debug, Clone, Copy)]
struct Last {
    seq: u64,
    ts: u32,
    at: Instant,
    vp8: Vp8Ids,
}

/// The keyframe packet that starts a segment.
#[derive(Debug, Clone, Copy)]
pub struct SegmentStart {
    pub layer: u8,
    pub seq: u16,
    pub ts: u32,
    pub vp8: Vp8Ids,
    /// When the packet arrived.
    pub at: Instant,
    pub clock_rate: u32,
}

#[derive(Debug, Default)]
pub struct RtpMunger {
    segments: [Option<Segment>; SEGMENTS],
    newest: usize,
    last: Option<Last>,
}

/// `seq` extended to the value nearest `near`.
fn extend(near: u64, seq: u16) -> u64 {
    let delta = seq.wrapping_sub(near as u16);
    if delta < SEQ_HALF {
        near + u64::from(delta)
    } else {
        near.saturating_sub(u64::from(delta.wrapping_neg()))
    }
}

impl RtpMunger {
    pub fn is_started(&self) -> bool {
        self.segments[self.newest].is_some()
    }

    /// Starts a segment at `start`, the first packet of a keyframe. The very first segment
    /// keeps the publisher's numbers; later ones continue the subscriber's.
    pub fn start_segment(&mut self, start: SegmentStart) {
        // One cycle up, so packets from just before the start extend below it.
        let in_ext = (1u64 << 16) | u64::from(start.seq);
        let (out_seq, out_ts, out_vp8) = match self.last {
            None => (in_ext, start.ts, start.vp8),
            Some(last) => {
                let elapsed = start.at.saturating_duration_since(last.at);
                let ticks = (elapsed.as_nanos() * u128::from(start.clock_rate) / 1_000_000_000)
                    .clamp(1, u128::from(u32::MAX / 4)) as u32;
                let vp8 = Vp8Ids {
                    picture_id: last
                        .vp8
                        .picture_id
                        .map(|p| p.wrapping_add(1) & PICTURE_ID_MASK),
                    tl0_pic_idx: last.vp8.tl0_pic_idx.map(|t| t.wrapping_add(1)),
                };
                (last.seq + 1, last.ts.wrapping_add(ticks), vp8)
            }
        };
        let offsets = Offsets {
            seq: out_seq.wrapping_sub(in_ext),
            ts: out_ts.wrapping_sub(start.ts),
            picture_id: match (out_vp8.picture_id, start.vp8.picture_id) {
                (Some(out), Some(inc)) => out.wrapping_sub(inc) & PICTURE_ID_MASK,
                _ => 0,
            },
            tl0_pic_idx: match (out_vp8.tl0_pic_idx, start.vp8.tl0_pic_idx) {
                (Some(out), Some(inc)) => out.wrapping_sub(inc),
                _ => 0,
            },
        };
        if self.is_started() {
            self.newest = (self.newest + 1) % SEGMENTS;
        }
        self.segments[self.newest] = Some(Segment {
            layer: start.layer,
            first_in: in_ext,
            highest_in: in_ext,
            first_out: out_seq,
            offsets,
        });
    }

    /// A munger for another source sent on the same stream (a viewer's one receiver
    /// switching presenter): its first segment continues this one's numbers, as a layer
    /// switch does. NACKs for packets sent before are not answered by it.
    pub fn continuation(&self) -> RtpMunger {
        RtpMunger {
            segments: [None; SEGMENTS],
            newest: 0,
            last: self.last,
        }
    }

    /// The outgoing numbers for a packet of the current segment's layer, or `None` before
    /// any segment or for a packet older than the segment's first (a late reordered one).
    pub fn munge(&mut self, seq: u16, ts: u32, vp8: Vp8Ids, at: Instant) -> Option<Munged> {
        let segment = self.segments[self.newest].as_mut()?;
        let extended = extend(segment.highest_in, seq);
        if extended < segment.first_in {
            return None;
        }
        segment.highest_in = segment.highest_in.max(extended);
        let out = extended.wrapping_add(segment.offsets.seq);
        let munged = Munged {
            sequence_number: out as u16,
            timestamp: ts.wrapping_add(segment.offsets.ts),
            vp8: segment.offsets.vp8(vp8),
        };
        if self.last.is_none_or(|last| out > last.seq) {
            self.last = Some(Last {
                seq: out,
                ts: munged.timestamp,
                at,
                vp8: Vp8Ids {
                    picture_id: munged
                        .vp8
                        .picture_id
                        .or(self.last.and_then(|l| l.vp8.picture_id)),
                    tl0_pic_idx: munged
                        .vp8
                        .tl0_pic_idx
                        .or(self.last.and_then(|l| l.vp8.tl0_pic_idx)),
                },
            });
        }
        Some(munged)
    }

    /// Takes `count` sequence numbers after the last packet sent, for padding-only packets
    /// (a bandwidth probe); the packets forwarded after them continue behind, in a segment
    /// of their own, so a NACK for a padding number finds nothing to resend. Returns the
    /// first number and the timestamp to give them (the last packet's), or `None` before
    /// anything was sent.
    pub fn pad(&mut self, count: u16) -> Option<(u16, u32)> {
        let mut last = self.last?;
        let segment = self.segments[self.newest]?;
        let first = last.seq + 1;
        last.seq += u64::from(count);
        self.last = Some(last);
        self.newest = (self.newest + 1) % SEGMENTS;
        self.segments[self.newest] = Some(Segment {
            first_in: segment.highest_in + 1,
            first_out: last.seq + 1,
            offsets: Offsets {
                seq: segment.offsets.seq.wrapping_add(u64::from(count)),
                ..segment.offsets
            },
            ..segment
        });
        Some((first as u16, last.ts))
    }

    /// Where an outgoing sequence number came from (for answering NACKs).
    pub fn rewind(&self, out_seq: u16) -> Option<Rewind> {
        let last = self.last?;
        let out = extend(last.seq, out_seq);
        if out > last.seq {
            return None;
        }
        for back in 0..SEGMENTS {
            let Some(segment) = self.segments[(self.newest + SEGMENTS - back) % SEGMENTS] else {
                break;
            };
            if out >= segment.first_out {
                let in_ext = out.wrapping_sub(segment.offsets.seq);
                return (in_ext >= segment.first_in && in_ext <= segment.highest_in).then_some(
                    Rewind {
                        layer: segment.layer,
                        in_seq: in_ext as u16,
                        segment: segment.offsets,
                    },
                );
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const NONE: Vp8Ids = Vp8Ids {
        picture_id: None,
        tl0_pic_idx: None,
    };

    fn start(layer: u8, seq: u16, ts: u32, at: Instant) -> SegmentStart {
        SegmentStart {
            layer,
            seq,
            ts,
            vp8: NONE,
            at,
            clock_rate: 90_000,
        }
    }

    /// Sends `count` packets of one layer from `seq`/`ts`, one frame (3000 ticks, 33 ms)
    /// per packet, returning the outgoing numbers and the time after the last.
    fn run(
        m: &mut RtpMunger,
        seq: u16,
        ts: u32,
        count: u16,
        mut at: Instant,
    ) -> (Vec<(u16, u32)>, Instant) {
        let mut out = Vec::new();
        for i in 0..count {
            let p = m
                .munge(
                    seq.wrapping_add(i),
                    ts.wrapping_add(u32::from(i) * 3000),
                    NONE,
                    at,
                )
                .expect("forwarded");
            out.push((p.sequence_number, p.timestamp));
            at += Duration::from_millis(33);
        }
        (out, at)
    }

    fn assert_continuous(out: &[(u16, u32)]) {
        for pair in out.windows(2) {
            assert_eq!(
                pair[1].0,
                pair[0].0.wrapping_add(1),
                "sequence gap in {pair:?}"
            );
            let advance = pair[1].1.wrapping_sub(pair[0].1);
            assert!(
                (1..=9000).contains(&advance),
                "timestamp jump {advance} in {pair:?}"
            );
        }
    }

    #[test]
    fn keeps_forwarding_long_after_the_start() {
        let t0 = Instant::now();
        let mut m = RtpMunger::default();
        m.start_segment(start(0, 100, 0, t0));
        // Several full cycles of the 16-bit space, in order.
        for i in 0..200_000u32 {
            let seq = (100 + i) as u16;
            assert_eq!(
                m.munge(seq, i, NONE, t0).map(|p| p.sequence_number),
                Some(seq),
                "packet {i}"
            );
        }
        assert_eq!(
            m.rewind(50).map(|r| r.in_seq),
            Some(50),
            "a recent packet can still be NACKed"
        );
    }

    #[test]
    fn another_source_continues_the_stream() {
        let t0 = Instant::now();
        let mut first = RtpMunger::default();
        first.start_segment(start(0, 100, 5_000, t0));
        let (mut out, at) = run(&mut first, 100, 5_000, 10, t0);
        // A different publisher: unrelated numbers, a new clock.
        let mut next = first.continuation();
        assert!(!next.is_started());
        next.start_segment(start(0, 40_000, 123_456_789, at));
        let (more, _) = run(&mut next, 40_000, 123_456_789, 10, at);
        out.extend(more);
        assert_continuous(&out);
        assert_eq!(
            next.rewind(out[0].0),
            None,
            "the old source's packets are gone"
        );
    }

    #[test]
    fn nothing_before_start() {
        let mut m = RtpMunger::default();
        assert_eq!(m.munge(1, 1, NONE, Instant::now()), None);
        assert_eq!(m.rewind(1), None);
    }

    #[test]
    fn switches_up_and_down_leave_no_gap_and_advance_timestamps_in_real_time() {
        let t0 = Instant::now();
        let mut m = RtpMunger::default();
        m.start_segment(start(0, 100, 10_000, t0));
        let (mut all, at) = run(&mut m, 100, 10_000, 30, t0);
        // Up to layer 2: unrelated numbering, 33 ms after the last packet.
        m.start_segment(start(2, 40_000, 999_999, at));
        let (up, at) = run(&mut m, 40_000, 999_999, 30, at);
        all.extend(&up);
        // Down to layer 1, 100 ms after the last packet.
        let at = at + Duration::from_millis(67);
        m.start_segment(start(1, 7, 5, at));
        let (down, _) = run(&mut m, 7, 5, 30, at);
        assert_eq!(down[0].1.wrapping_sub(up[29].1), 9000, "100 ms at 90 kHz");
        all.extend(&down);
        assert_continuous(&all);
        assert_eq!(
            all[0],
            (100, 10_000),
            "the first segment keeps the publisher's numbers"
        );
    }

    #[test]
    fn continuity_holds_across_16_bit_wraparound_on_both_sides() {
        let t0 = Instant::now();
        let mut m = RtpMunger::default();
        m.start_segment(start(0, 65_530, u32::MAX - 10_000, t0));
        let (mut all, at) = run(&mut m, 65_530, u32::MAX - 10_000, 20, t0);
        m.start_segment(start(1, 65_520, 0, at));
        let (more, _) = run(&mut m, 65_520, 0, 40, at);
        all.extend(&more);
        assert_continuous(&all);
        let rewind = m.rewind(all[10].0).expect("an old packet");
        assert_eq!(
            (rewind.layer, rewind.in_seq),
            (0, 65_530u16.wrapping_add(10))
        );
    }

    #[test]
    fn padding_takes_numbers_the_media_continues_after_and_nacks_do_not_resend() {
        let t0 = Instant::now();
        let mut m = RtpMunger::default();
        assert_eq!(m.pad(3), None, "nothing sent yet");
        m.start_segment(start(0, 500, 9000, t0));
        let (before, at) = run(&mut m, 500, 9000, 5, t0);
        assert_eq!(m.pad(3), Some((505, 9000 + 4 * 3000)));
        let (after, _) = run(&mut m, 505, 9000 + 5 * 3000, 5, at);
        assert_eq!(after[0].0, 508, "after the three padding numbers");
        assert_continuous(&after);
        assert_eq!(m.rewind(503).map(|r| r.in_seq), Some(503), "media before");
        assert_eq!(m.rewind(509).map(|r| r.in_seq), Some(506), "media after");
        for padding in 505..508 {
            assert_eq!(m.rewind(padding), None, "padding {padding}");
        }
        // Many batches later the media of the last few hundred ms is still found.
        for seq in (510..).take(SEGMENTS - 2) {
            m.pad(2);
            m.munge(seq, 0, NONE, t0);
        }
        assert_eq!(m.rewind(509).map(|r| r.in_seq), Some(506));
        assert_continuous(&before);
    }

    #[test]
    fn loss_and_reordering_on_the_incoming_layer_pass_through() {
        let t0 = Instant::now();
        let mut m = RtpMunger::default();
        m.start_segment(start(0, 1000, 0, t0));
        m.munge(1000, 0, NONE, t0);
        run(&mut m, 1001, 0, 10, t0);
        let at = t0 + Duration::from_millis(500);
        m.start_segment(start(1, 500, 0, at));
        let first = m.munge(500, 0, NONE, at).unwrap().sequence_number;
        assert_eq!(first, 1011);
        // 501 lost, 503 before 502.
        assert_eq!(m.munge(503, 0, NONE, at).unwrap().sequence_number, 1014);
        assert_eq!(m.munge(502, 0, NONE, at).unwrap().sequence_number, 1013);
        assert_eq!(m.munge(499, 0, NONE, at), None, "older than the switch");
        // The NACK for the lost one maps to layer 1's 501; one from before the switch to
        // layer 0.
        let lost = m.rewind(1012).unwrap();
        assert_eq!((lost.layer, lost.in_seq), (1, 501));
        let old = m.rewind(1005).unwrap();
        assert_eq!((old.layer, old.in_seq), (0, 1005));
        assert_eq!(m.rewind(1015), None, "not sent yet");
    }

    #[test]
    fn vp8_picture_id_and_tl0picidx_continue_across_switches() {
        let t0 = Instant::now();
        let mut m = RtpMunger::default();
        let ids = |p: u16, t: u8| Vp8Ids {
            picture_id: Some(p),
            tl0_pic_idx: Some(t),
        };
        let mut first = start(0, 1, 0, t0);
        first.vp8 = ids(0x7ffe, 255);
        m.start_segment(first);
        let a = m.munge(1, 0, ids(0x7ffe, 255), t0).unwrap();
        let b = m.munge(2, 3000, ids(0x7fff, 255), t0).unwrap();
        assert_eq!((a.vp8, b.vp8), (ids(0x7ffe, 255), ids(0x7fff, 255)));
        let mut up = start(2, 900, 0, t0 + Duration::from_millis(33));
        up.vp8 = ids(1234, 17);
        m.start_segment(up);
        let c = m.munge(900, 0, ids(1234, 17), up.at).unwrap();
        let d = m.munge(901, 0, ids(1234, 17), up.at).unwrap();
        let e = m.munge(902, 3000, ids(1235, 17), up.at).unwrap();
        assert_eq!(c.vp8, ids(0, 0), "both wrap to the next value");
        assert_eq!(d.vp8, ids(0, 0), "same picture, same id");
        assert_eq!(e.vp8, ids(1, 0));
        // A retransmission of the pre-switch packet gets its original ids back.
        let rewind = m.rewind(b.sequence_number).unwrap();
        assert_eq!(rewind.munged(b.sequence_number, 3000, ids(0x7fff, 255)), b);
    }
}
