//! Loss and reordering of one RTP stream, from its 16-bit sequence numbers alone.

/// How many sequence numbers behind the highest one a late packet can still be matched
/// against the gap it fills.
const WINDOW: u16 = 128;

#[derive(Debug, Default, Clone)]
pub(crate) struct SequenceTracker {
    highest: Option<u16>,
    /// Bit `i` set: `highest - i` has arrived.
    seen: u128,
    /// Sequence numbers skipped and not (yet) filled by a late packet.
    pub lost: u64,
    /// Largest step forward between consecutive highest sequence numbers (1 = no gap).
    pub max_jump: u16,
    pub out_of_order: u64,
    pub duplicates: u64,
}

impl SequenceTracker {
    /// The highest sequence number seen (in the sequence space's order, across wraps).
    pub(crate) fn highest(&self) -> Option<u16> {
        self.highest
    }

    pub(crate) fn record(&mut self, seq: u16) {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.seen = 1;
            return;
        };
        // Distance in the sequence space, so wrapping at 65535 -> 0 is one step forward.
        let delta = seq.wrapping_sub(highest) as i16;
        if delta > 0 {
            let step = delta as u16;
            self.lost += u64::from(step - 1);
            self.max_jump = self.max_jump.max(step);
            self.seen = if step >= WINDOW { 0 } else { self.seen << step };
            self.seen |= 1;
            self.highest = Some(seq);
        } else if delta == 0 {
            self.duplicates += 1;
        } else {
            let behind = delta.unsigned_abs();
            if behind < WINDOW {
                let bit = 1u128 << behind;
                if self.seen & bit != 0 {
                    self.duplicates += 1;
                    return;
                }
                self.seen |= bit;
                self.lost = self.lost.saturating_sub(1);
            }
            self.out_of_order += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(seqs: &[u16]) -> SequenceTracker {
        let mut t = SequenceTracker::default();
        for &s in seqs {
            t.record(s);
        }
        t
    }

    #[test]
    fn contiguous_across_the_wrap_loses_nothing() {
        let t = track(&[65533, 65534, 65535, 0, 1, 2]);
        assert_eq!((t.lost, t.max_jump, t.out_of_order), (0, 1, 0));
    }

    #[test]
    fn gap_across_the_wrap_counts_the_missing_ones() {
        let t = track(&[65534, 65535, 2, 3]);
        assert_eq!(t.lost, 2);
        assert_eq!(t.max_jump, 3);
    }

    #[test]
    fn reordering_fills_the_gap_it_opened() {
        let t = track(&[10, 12, 11, 13]);
        assert_eq!((t.lost, t.out_of_order, t.duplicates), (0, 1, 0));
        let t = track(&[65535, 1, 0, 2]);
        assert_eq!((t.lost, t.out_of_order), (0, 1));
    }

    #[test]
    fn duplicates_do_not_fill_gaps() {
        let t = track(&[1, 2, 4, 2, 4]);
        assert_eq!((t.lost, t.duplicates, t.out_of_order), (1, 2, 0));
    }

    #[test]
    fn very_late_packets_are_out_of_order_but_stay_lost() {
        let mut t = track(&[0, 2]);
        for s in 3..=300 {
            t.record(s);
        }
        t.record(1);
        assert_eq!((t.lost, t.out_of_order), (1, 1));
    }

    #[test]
    fn a_big_jump_is_all_loss() {
        let t = track(&[100, 101, 20101]);
        assert_eq!((t.lost, t.max_jump), (19999, 20000));
    }
}
