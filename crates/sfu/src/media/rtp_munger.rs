//! Rewrites one forwarded stream's sequence numbers and timestamps so the subscriber sees a
//! stream that starts where forwarding started, whatever the publisher's numbering, and can
//! map a subscriber's NACK back to the publisher's packet.

/// Sequence-number distance that counts as "older" rather than "newer" (half the space).
const SEQ_HALF: u16 = 0x8000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Munged {
    pub sequence_number: u16,
    pub timestamp: u32,
}

#[derive(Debug, Default)]
pub struct RtpMunger {
    /// `out = in + offset` (wrapping), fixed once forwarding starts.
    seq_offset: u16,
    ts_offset: u32,
    /// Incoming sequence numbers extended past 16 bits: the first one forwarded (anything
    /// older is not ours to send) and the highest seen since.
    first_in: Option<u64>,
    highest_in: u64,
}

impl RtpMunger {
    /// `out_first_seq`/`out_first_ts` are what the subscriber sees for the first forwarded
    /// packet (random per binding in production, fixed in tests).
    pub fn start(&mut self, in_seq: u16, in_ts: u32, out_first_seq: u16, out_first_ts: u32) {
        self.seq_offset = out_first_seq.wrapping_sub(in_seq);
        self.ts_offset = out_first_ts.wrapping_sub(in_ts);
        // Start one cycle up, so packets from just before the start extend below it.
        let first = (1u64 << 16) | u64::from(in_seq);
        self.first_in = Some(first);
        self.highest_in = first;
    }

    pub fn is_started(&self) -> bool {
        self.first_in.is_some()
    }

    /// `seq` extended to the value nearest the highest one seen.
    fn extend(&self, seq: u16) -> u64 {
        let delta = seq.wrapping_sub(self.highest_in as u16);
        if delta < SEQ_HALF {
            self.highest_in + u64::from(delta)
        } else {
            self.highest_in
                .saturating_sub(u64::from(delta.wrapping_neg()))
        }
    }

    /// The outgoing numbers for an incoming packet, or `None` when forwarding has not started
    /// or the packet is older than the first one forwarded (a late reordered packet).
    pub fn munge(&mut self, in_seq: u16, in_ts: u32) -> Option<Munged> {
        let first = self.first_in?;
        let extended = self.extend(in_seq);
        if extended < first {
            return None;
        }
        self.highest_in = self.highest_in.max(extended);
        Some(Munged {
            sequence_number: in_seq.wrapping_add(self.seq_offset),
            timestamp: in_ts.wrapping_add(self.ts_offset),
        })
    }

    /// The publisher's sequence number behind an outgoing one (for answering NACKs).
    pub fn incoming_seq(&self, out_seq: u16) -> Option<u16> {
        let first = self.first_in?;
        let in_seq = out_seq.wrapping_sub(self.seq_offset);
        (self.extend(in_seq) >= first).then_some(in_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_forwarding_long_after_the_start() {
        let mut m = RtpMunger::default();
        m.start(100, 0, 100, 0);
        // Several full cycles of the 16-bit space, in order.
        for i in 1..200_000u32 {
            let seq = (100 + i) as u16;
            assert_eq!(
                m.munge(seq, i).map(|p| p.sequence_number),
                Some(seq),
                "packet {i}"
            );
        }
        assert_eq!(
            m.incoming_seq(50),
            Some(50),
            "a recent packet can still be NACKed"
        );
    }

    #[test]
    fn nothing_before_start() {
        let mut m = RtpMunger::default();
        assert_eq!(m.munge(1, 1), None);
        assert_eq!(m.incoming_seq(1), None);
    }

    #[test]
    fn offsets_apply_across_wraparound() {
        let mut m = RtpMunger::default();
        m.start(65_534, u32::MAX - 100, 10, 5000);
        assert_eq!(
            m.munge(65_534, u32::MAX - 100),
            Some(Munged {
                sequence_number: 10,
                timestamp: 5000
            })
        );
        let after_wrap = m.munge(1, 2899).unwrap();
        assert_eq!(after_wrap.sequence_number, 13);
        assert_eq!(after_wrap.timestamp, 5000 + 3000);
        assert_eq!(m.incoming_seq(13), Some(1));
    }

    #[test]
    fn reordered_packets_after_start_pass_but_older_ones_do_not() {
        let mut m = RtpMunger::default();
        m.start(1000, 0, 1000, 0);
        assert_eq!(m.munge(1003, 0).map(|p| p.sequence_number), Some(1003));
        assert_eq!(m.munge(1002, 0).map(|p| p.sequence_number), Some(1002));
        assert_eq!(m.munge(999, 0), None);
        assert_eq!(m.incoming_seq(999), None);
    }
}
