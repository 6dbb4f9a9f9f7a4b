//! Which NACKed packets a subscriber gets again. Each is resent at most once per round
//! trip to that subscriber: a NACK repeated before the first copy could have arrived asks
//! for nothing new, and answering it would only add to the congestion that lost the packet.
//! The other limit, a budget of bytes per subscriber, is the egress's
//! ([`crate::egress::retransmit_budget`]). What is refused is counted, never logged.
use std::time::{Duration, Instant};

use super::packet_cache::VIDEO_SLOTS;

/// Outgoing sequence numbers remembered per down track: as many as the packet cache holds
/// (an older one is a cache miss anyway).
const LOG_SLOTS: usize = VIDEO_SLOTS;

/// Why a NACKed packet is not resent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotResent {
    /// Resent less than a round trip ago.
    Duplicate,
    /// Not a packet this subscriber was sent (or from too long ago).
    Unknown,
}

/// When each recently resent outgoing sequence number was resent, for one down track.
pub struct ResendLog {
    epoch: Instant,
    /// (sequence number, milliseconds since `epoch` + 1; 0 = never).
    slots: [(u16, u32); LOG_SLOTS],
}

impl ResendLog {
    pub fn new(now: Instant) -> Self {
        ResendLog {
            epoch: now,
            slots: [(0, 0); LOG_SLOTS],
        }
    }

    /// Whether `seq` was resent less than `rtt` before `now`.
    pub fn recently_resent(&self, seq: u16, rtt: Duration, now: Instant) -> bool {
        let rtt_ms = rtt.as_millis().min(u128::from(u32::MAX)) as u32;
        let (logged, at) = self.slots[usize::from(seq) % LOG_SLOTS];
        at != 0 && logged == seq && self.millis(now).saturating_sub(at) < rtt_ms
    }

    /// `seq` was resent at `now`.
    pub fn record(&mut self, seq: u16, now: Instant) {
        self.slots[usize::from(seq) % LOG_SLOTS] = (seq, self.millis(now));
    }

    /// Milliseconds since the epoch, plus one (0 marks an empty slot).
    fn millis(&self, now: Instant) -> u32 {
        (now.saturating_duration_since(self.epoch).as_millis() as u32).saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_is_resent_once_per_round_trip() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let rtt = ms(80);
        let mut log = ResendLog::new(t0);
        assert!(!log.recently_resent(7, rtt, t0), "never resent");
        log.record(7, t0);
        assert!(log.recently_resent(7, rtt, t0 + ms(79)));
        assert!(!log.recently_resent(8, rtt, t0), "another packet");
        assert!(!log.recently_resent(7, rtt, t0 + ms(80)));
        log.record(7, t0 + ms(80));
        assert!(log.recently_resent(7, rtt, t0 + ms(100)));
        // A different packet in the same slot does not inherit the wait.
        let other = 7 + LOG_SLOTS as u16;
        assert!(!log.recently_resent(other, rtt, t0 + ms(101)));
    }
}
