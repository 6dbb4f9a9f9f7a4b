//! How much a subscriber may get as retransmissions: a fixed share of what it gets
//! forwarded. A receiver that NACKs everything (a broken client, or a hostile one listing
//! thousands of sequence numbers) cannot turn the server into an amplifier, and a
//! subscriber on a lossy link still gets its losses repaired.
//!
//! A token bucket filled by forwarding instead of by time: every forwarded byte earns
//! [`SHARE`] of a byte of retransmission, up to [`BURST`] saved.

/// Retransmitted bytes allowed per forwarded byte.
pub const SHARE: f64 = 0.25;
/// The most that can be saved up, about a burst of losses in a keyframe.
pub const BURST: u64 = 128 * 1024;
/// What a connection starts with, so losses in its first keyframe are repaired.
const INITIAL: u64 = 32 * 1024;

#[derive(Debug)]
pub struct RetransmitBudget {
    /// Bytes that may be retransmitted now.
    tokens: u64,
    /// The forwarded total when tokens were last earned.
    forwarded_mark: u64,
}

impl Default for RetransmitBudget {
    fn default() -> Self {
        RetransmitBudget {
            tokens: INITIAL,
            forwarded_mark: 0,
        }
    }
}

impl RetransmitBudget {
    /// Whether `bytes` may be retransmitted now, given the bytes forwarded to this
    /// subscriber so far; if so they are spent.
    pub fn allow(&mut self, forwarded_total: u64, bytes: usize) -> bool {
        let earned = forwarded_total.saturating_sub(self.forwarded_mark) as f64 * SHARE;
        self.forwarded_mark = self.forwarded_mark.max(forwarded_total);
        self.tokens = (self.tokens + earned as u64).min(BURST);
        let bytes = bytes as u64;
        if bytes > self.tokens {
            return false;
        }
        self.tokens -= bytes;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_are_held_to_a_share_of_what_is_forwarded() {
        let mut b = RetransmitBudget::default();
        let mut forwarded = 0u64;
        let mut resent = 0u64;
        // A subscriber NACKing every packet twice over, for a long time.
        for _ in 0..100_000 {
            forwarded += 1_200;
            for _ in 0..2 {
                if b.allow(forwarded, 1_200) {
                    resent += 1_200;
                }
            }
        }
        let share = resent as f64 / forwarded as f64;
        assert!((SHARE - 0.01..=SHARE + 0.01).contains(&share), "{share}");
    }

    #[test]
    fn a_quiet_subscriber_saves_up_to_a_burst_only() {
        let mut b = RetransmitBudget::default();
        assert!(b.allow(0, 30_000), "the first keyframe's losses");
        assert!(!b.allow(0, 30_000), "spent");
        let mut granted = 0;
        while b.allow(100_000_000, 1_000) {
            granted += 1_000;
        }
        assert!((BURST - 1_000..=BURST).contains(&granted), "{granted}");
    }
}
