//! When each transport-wide sequence number left the server, and how big it was.
//!
//! Every forwarding task writes here once per packet, so [`SendHistory::record`] is one
//! relaxed atomic store into a fixed ring: no lock, no allocation, no contention unless two
//! packets 4096 sequence numbers apart are recorded at the same instant.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Number of remembered packets: 4096 × 8 bytes = 32 KiB per subscriber connection.
/// A power of two, so a slot is the low 12 bits of the sequence number.
pub const HISTORY_SLOTS: usize = 4096;
const SLOT_BITS: u32 = HISTORY_SLOTS.trailing_zeros();

// One slot, one u64, high bit first:
//   1 bit   occupied
//   4 bits  the sequence number's high bits (the low 12 are the slot index)
//  16 bits  size in bytes (saturated at 65535)
//  43 bits  send time in µs since the history was created (about 101 days)
const OCCUPIED: u64 = 1 << 63;
const SEQ_HI_SHIFT: u32 = 59;
const SEQ_HI_MASK: u64 = (1 << (16 - SLOT_BITS)) - 1;
const SIZE_SHIFT: u32 = 43;
const SIZE_MASK: u64 = 0xFFFF;
const TIME_MASK: u64 = (1 << SIZE_SHIFT) - 1;

/// One packet the server sent, as remembered by [`SendHistory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentPacket {
    /// Bytes on the wire as recorded (RTP header and payload; sizes above 65535 saturate).
    pub size: usize,
    /// When it was sent, to the microsecond.
    pub sent_at: Instant,
}

/// A bounded, lock-free record of the last [`HISTORY_SLOTS`] packets of one connection.
pub struct SendHistory {
    epoch: Instant,
    slots: Box<[AtomicU64]>,
}

impl SendHistory {
    /// An empty history whose send times count from `now` (a send recorded with an
    /// earlier time is remembered as sent at `now`).
    pub fn new(now: Instant) -> Self {
        SendHistory {
            epoch: now,
            slots: (0..HISTORY_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Remembers that `transport_seq` left at `now` with `size` bytes, replacing whatever
    /// packet used the same slot 4096 sequence numbers ago.
    #[inline]
    pub fn record(&self, transport_seq: u16, size: usize, now: Instant) {
        let micros = now.saturating_duration_since(self.epoch).as_micros();
        let time = (micros.min(u128::from(TIME_MASK))) as u64;
        let size = (size.min(SIZE_MASK as usize)) as u64;
        let seq_hi = u64::from(transport_seq >> SLOT_BITS) & SEQ_HI_MASK;
        let word = OCCUPIED | (seq_hi << SEQ_HI_SHIFT) | (size << SIZE_SHIFT) | time;
        self.slots[Self::slot(transport_seq)].store(word, Ordering::Relaxed);
    }

    /// The packet sent with `transport_seq`, or `None` if it was never recorded or its
    /// slot now holds a newer packet. (A sequence number exactly 65536 packets old is
    /// indistinguishable from the current one; the estimator ignores results that old.)
    pub fn get(&self, transport_seq: u16) -> Option<SentPacket> {
        let word = self.slots[Self::slot(transport_seq)].load(Ordering::Relaxed);
        if word & OCCUPIED == 0 {
            return None;
        }
        if (word >> SEQ_HI_SHIFT) & SEQ_HI_MASK != u64::from(transport_seq >> SLOT_BITS) {
            return None;
        }
        Some(SentPacket {
            size: ((word >> SIZE_SHIFT) & SIZE_MASK) as usize,
            sent_at: self.epoch + Duration::from_micros(word & TIME_MASK),
        })
    }

    /// What was sent in the `window` before `now`, in bits per second, from the packets the
    /// ring still holds (all of them while fewer than [`HISTORY_SLOTS`] were sent in the
    /// window). Reads every slot: for occasional reports, not per packet.
    pub fn sent_bps(&self, now: Instant, window: Duration) -> u64 {
        let end = now.saturating_duration_since(self.epoch).as_micros() as u64;
        let window = (window.as_micros() as u64).max(1);
        let start = end.saturating_sub(window);
        let bytes: u64 = self
            .slots
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .filter(|word| word & OCCUPIED != 0 && (start..end).contains(&(word & TIME_MASK)))
            .map(|word| (word >> SIZE_SHIFT) & SIZE_MASK)
            .sum();
        bytes * 8 * 1_000_000 / window
    }

    #[inline]
    fn slot(transport_seq: u16) -> usize {
        usize::from(transport_seq) & (HISTORY_SLOTS - 1)
    }
}

impl std::fmt::Debug for SendHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendHistory")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn remembers_size_and_send_time_to_the_microsecond() {
        let t0 = Instant::now();
        let history = SendHistory::new(t0);
        let sent = t0 + Duration::from_micros(1_234_567);
        history.record(65_535, 1_200, sent);
        assert_eq!(
            history.get(65_535),
            Some(SentPacket {
                size: 1_200,
                sent_at: sent
            })
        );
        assert_eq!(history.get(0), None, "never recorded");
    }

    #[test]
    fn sent_bps_counts_the_window_only() {
        let t0 = Instant::now();
        let history = SendHistory::new(t0);
        // 100 packets of 1000 bytes, one every 20 ms: 2 s at 400 kbit/s.
        for i in 0..100u16 {
            history.record(i, 1_000, t0 + Duration::from_millis(u64::from(i) * 20));
        }
        let end = t0 + Duration::from_secs(2);
        assert_eq!(history.sent_bps(end, Duration::from_secs(1)), 400_000);
        assert_eq!(history.sent_bps(end, Duration::from_millis(500)), 400_000);
        let later = end + Duration::from_secs(5);
        assert_eq!(history.sent_bps(later, Duration::from_secs(1)), 0);
    }

    #[test]
    fn a_newer_packet_in_the_same_slot_hides_the_old_one() {
        let t0 = Instant::now();
        let history = SendHistory::new(t0);
        history.record(10, 100, t0);
        history.record(
            10 + HISTORY_SLOTS as u16,
            200,
            t0 + Duration::from_millis(1),
        );
        assert_eq!(history.get(10), None);
        assert_eq!(
            history.get(10 + HISTORY_SLOTS as u16).map(|p| p.size),
            Some(200)
        );
    }

    #[test]
    fn oversized_packets_and_times_before_the_epoch_saturate() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let history = SendHistory::new(t0);
        history.record(7, 1 << 20, t0 - Duration::from_millis(500));
        assert_eq!(
            history.get(7),
            Some(SentPacket {
                size: 65_535,
                sent_at: t0
            })
        );
    }

    #[test]
    fn concurrent_writers_each_keep_their_packets() {
        let t0 = Instant::now();
        let history = Arc::new(SendHistory::new(t0));
        let writers: Vec<_> = (0..4u16)
            .map(|w| {
                let history = Arc::clone(&history);
                std::thread::spawn(move || {
                    for i in 0..1_000u16 {
                        let seq = w * 1_000 + i;
                        let at = t0 + Duration::from_micros(u64::from(seq) * 10);
                        history.record(seq, usize::from(seq % 1_500), at);
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer thread");
        }
        for seq in 0..4_000u16 {
            let packet = history.get(seq).expect("recorded");
            assert_eq!(packet.size, usize::from(seq % 1_500));
            assert_eq!(
                packet.sent_at,
                t0 + Duration::from_micros(u64::from(seq) * 10)
            );
        }
    }
}
