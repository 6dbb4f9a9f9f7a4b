//! Where an SRTP packet sits in its stream: the 48-bit packet index (rollover counter and
//! sequence number, RFC 3711 §3.3.1) both ways, and the receiver's replay protection
//! (§3.3.2) for SRTP and SRTCP.

/// The rollover counter of one outgoing SSRC, from the sequence numbers the stream sends,
/// including late ones (retransmissions) from before a wrap.
#[derive(Debug, Default, Clone, Copy)]
pub struct RolloverCounter {
    highest: Option<u16>,
    roc: u32,
}

impl RolloverCounter {
    pub fn roc_for(&mut self, seq: u16) -> u32 {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            return self.roc;
        };
        let ahead = seq.wrapping_sub(highest);
        if ahead != 0 && ahead < 0x8000 {
            if seq < highest {
                self.roc = self.roc.wrapping_add(1);
            }
            self.highest = Some(seq);
            self.roc
        } else if seq > highest {
            // Older than the highest, from before the last wrap.
            self.roc.wrapping_sub(1)
        } else {
            self.roc
        }
    }
}

/// Packets this far behind the newest are refused as too old. libwebrtc uses the same
/// size for video: a high-bitrate stream reorders by hundreds of packets.
pub const REPLAY_WINDOW: u64 = 1024;
const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Why a packet is refused before it is even authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its index was accepted before.
    Replayed,
    /// Older than the window remembers.
    TooOld,
}

/// Which of the last [`REPLAY_WINDOW`] indices of one stream were accepted. Check a
/// packet's index before authenticating it, and accept it only once it authenticated, so
/// forged packets move nothing.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    highest: Option<u64>,
    seen: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            highest: None,
            seen: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    pub fn check(&self, index: u64) -> Result<(), Refused> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if index > highest {
            return Ok(());
        }
        if highest - index >= REPLAY_WINDOW {
            return Err(Refused::TooOld);
        }
        if self.is_seen(index) {
            return Err(Refused::Replayed);
        }
        Ok(())
    }

    /// Records an authenticated packet's index (which passed [`ReplayWindow::check`]).
    pub fn accept(&mut self, index: u64) {
        match self.highest {
            Some(highest) if index <= highest => {}
            Some(highest) if index - highest < REPLAY_WINDOW => {
                for forgotten in highest + 1..index {
                    self.set(forgotten, false);
                }
                self.highest = Some(index);
            }
            _ => {
                self.seen = [0; WORDS];
                self.highest = Some(index);
            }
        }
        self.set(index, true);
    }

    /// The highest index accepted.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    fn is_seen(&self, index: u64) -> bool {
        let bit = index % REPLAY_WINDOW;
        self.seen[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    fn set(&mut self, index: u64, seen: bool) {
        let bit = index % REPLAY_WINDOW;
        let word = &mut self.seen[(bit / 64) as usize];
        if seen {
            *word |= 1 << (bit % 64);
        } else {
            *word &= !(1 << (bit % 64));
        }
    }
}

/// The receiving side of one SRTP stream: estimates each packet's index from its sequence
/// number and the highest index so far (the index nearest to it, which is RFC 3711's
/// choice among ROC − 1, ROC and ROC + 1), and refuses replays.
#[derive(Debug, Clone, Default)]
pub struct RtpIndex {
    window: ReplayWindow,
}

impl RtpIndex {
    /// The packet index of `seq` (rollover counter in the high bits), or why it is refused.
    /// The first packet of a stream gets rollover counter 0, as senders start.
    pub fn estimate(&self, seq: u16) -> Result<u64, Refused> {
        let index = match self.window.highest() {
            None => u64::from(seq),
            Some(highest) => {
                let behind_or_ahead = seq.wrapping_sub(highest as u16) as i16;
                highest
                    .checked_add_signed(i64::from(behind_or_ahead))
                    .ok_or(Refused::TooOld)?
            }
        };
        self.window.check(index)?;
        Ok(index)
    }

    /// Records a packet that authenticated with the index [`RtpIndex::estimate`] gave.
    pub fn accept(&mut self, index: u64) {
        self.window.accept(index);
    }

    /// The extended highest sequence number received (RFC 3550's, for receiver reports).
    pub fn highest(&self) -> Option<u64> {
        self.window.highest()
    }
}

/// The rollover counter part of a packet index.
pub fn roc_of(index: u64) -> u32 {
    (index >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollover_counter_follows_wraps_and_late_packets() {
        let mut c = RolloverCounter::default();
        assert_eq!(c.roc_for(65_534), 0);
        assert_eq!(c.roc_for(65_535), 0);
        assert_eq!(c.roc_for(1), 1);
        assert_eq!(
            c.roc_for(65_533),
            0,
            "a retransmission from before the wrap"
        );
        assert_eq!(c.roc_for(2), 1);
    }

    fn receive(index: &mut RtpIndex, seq: u16) -> Result<u64, Refused> {
        let i = index.estimate(seq)?;
        index.accept(i);
        Ok(i)
    }

    #[test]
    fn the_receiver_estimates_the_rollover_counter_across_wraps_both_ways() {
        let mut r = RtpIndex::default();
        assert_eq!(receive(&mut r, 65_500), Ok(65_500));
        assert_eq!(receive(&mut r, 65_535), Ok(65_535));
        assert_eq!(receive(&mut r, 3), Ok(65_536 + 3), "wrapped");
        assert_eq!(
            receive(&mut r, 65_534),
            Ok(65_534),
            "late, from before the wrap"
        );
        assert_eq!(roc_of(receive(&mut r, 4).unwrap()), 1);
        // Half the sequence space ahead is still ahead.
        assert_eq!(receive(&mut r, 4 + 32_767), Ok(65_536 + 4 + 32_767));
    }

    #[test]
    fn replays_and_packets_older_than_the_window_are_refused() {
        let mut r = RtpIndex::default();
        for seq in 100..200 {
            receive(&mut r, seq).unwrap();
        }
        assert_eq!(r.estimate(150), Err(Refused::Replayed));
        assert_eq!(r.estimate(199), Err(Refused::Replayed));
        receive(&mut r, 1500).unwrap();
        assert_eq!(r.estimate(150), Err(Refused::TooOld));
        // Skipped numbers inside the window are still welcome, once.
        assert_eq!(receive(&mut r, 1000), Ok(1000));
        assert_eq!(r.estimate(1000), Err(Refused::Replayed));
        assert_eq!(receive(&mut r, 477), Ok(477), "1023 behind");
        assert_eq!(r.estimate(476), Err(Refused::TooOld), "1024 behind");
    }

    #[test]
    fn a_checked_packet_that_failed_authentication_moves_nothing() {
        let mut r = RtpIndex::default();
        receive(&mut r, 10).unwrap();
        // A forged packet far ahead passes the check but is never accepted...
        assert!(r.estimate(30_000).is_ok());
        // ...so the real stream continues as if it never came.
        assert_eq!(receive(&mut r, 11), Ok(11));
        assert_eq!(r.highest(), Some(11));
    }

    #[test]
    fn slots_reused_by_newer_indices_start_unseen() {
        let mut w = ReplayWindow::default();
        w.accept(5);
        w.accept(6);
        w.accept(6 + REPLAY_WINDOW);
        assert_eq!(w.check(5 + REPLAY_WINDOW), Ok(()), "shares 5's slot");
        assert_eq!(w.check(6), Err(Refused::TooOld));
        let far = 6 + 10 * REPLAY_WINDOW;
        w.accept(far);
        assert_eq!(w.check(far - REPLAY_WINDOW + 1), Ok(()), "shares 6's slot");
        assert_eq!(w.check(far), Err(Refused::Replayed));
    }
}
