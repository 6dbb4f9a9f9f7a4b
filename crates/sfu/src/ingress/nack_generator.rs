//! Which of a publisher's packets to ask for again (RFC 4585 generic NACK), from the packet
//! indices that arrived: what libwebrtc's `NackRequester` and webrtc-rs's NACK generator
//! interceptor do, for the streams the fast path receives.
//!
//! A gap in the indices makes its packets missing. Each missing packet is asked for at
//! once, then again every retry interval (about a round trip), at most [`MAX_RETRIES`]
//! times and for at most [`GIVE_UP_AFTER`]: later than that a retransmission would come too
//! late to be played, and a keyframe serves better. A gap larger than [`MAX_MISSING`]
//! (a publisher restarting its sequence, or a long outage) is not asked for at all: the
//! caller asks for a keyframe instead.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Missing packets remembered at once (libwebrtc keeps 1,000).
pub const MAX_MISSING: usize = 500;
/// Times one packet is asked for (libwebrtc's limit too).
pub const MAX_RETRIES: u8 = 10;
/// A packet missing for longer is given up on.
pub const GIVE_UP_AFTER: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Copy)]
struct Missing {
    index: u64,
    since: Instant,
    last_asked: Option<Instant>,
    asked: u8,
}

/// What one arriving packet did to the missing list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// In order, or a duplicate: nothing changed.
    InOrder,
    /// Packets before it are missing now.
    Gap,
    /// It was missing (a retransmission, or reordered).
    Recovered,
    /// The gap before it was too large to ask for: ask for a keyframe instead.
    TooLarge,
}

/// One stream's missing packets.
#[derive(Debug, Default)]
pub struct NackGenerator {
    highest: Option<u64>,
    /// Oldest first, indices increasing.
    missing: VecDeque<Missing>,
}

impl NackGenerator {
    /// Notes the packet with extended index `index` (RFC 3711's, as [`crate::srtp::RtpIndex`]
    /// gives it), arrived at `now`.
    pub fn on_packet(&mut self, index: u64, now: Instant) -> Arrival {
        let Some(highest) = self.highest else {
            self.highest = Some(index);
            return Arrival::InOrder;
        };
        if index <= highest {
            return match self.missing.binary_search_by_key(&index, |m| m.index) {
                Ok(at) => {
                    self.missing.remove(at);
                    Arrival::Recovered
                }
                Err(_) => Arrival::InOrder,
            };
        }
        self.highest = Some(index);
        let gap = index - highest - 1;
        if gap == 0 {
            return Arrival::InOrder;
        }
        if gap > MAX_MISSING as u64 {
            self.missing.clear();
            return Arrival::TooLarge;
        }
        for lost in highest + 1..index {
            if self.missing.len() == MAX_MISSING {
                self.missing.pop_front();
            }
            self.missing.push_back(Missing {
                index: lost,
                since: now,
                last_asked: None,
                asked: 0,
            });
        }
        Arrival::Gap
    }

    /// Appends the sequence numbers to ask for at `now` (never asked, or last asked at
    /// least `retry_after` ago), and forgets those asked for too often or too long.
    pub fn due(&mut self, now: Instant, retry_after: Duration, out: &mut Vec<u16>) {
        self.missing.retain(|m| {
            m.asked < MAX_RETRIES && now.saturating_duration_since(m.since) < GIVE_UP_AFTER
        });
        for m in self.missing.iter_mut() {
            let due = m
                .last_asked
                .is_none_or(|at| now.saturating_duration_since(at) >= retry_after);
            if due {
                m.last_asked = Some(now);
                m.asked += 1;
                out.push(m.index as u16);
            }
        }
    }

    pub fn missing(&self) -> usize {
        self.missing.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Duration = Duration::from_millis(100);

    fn due(nacks: &mut NackGenerator, now: Instant) -> Vec<u16> {
        let mut out = Vec::new();
        nacks.due(now, RETRY, &mut out);
        out
    }

    #[test]
    fn a_gap_is_asked_for_at_once_then_once_per_retry_interval() {
        let t0 = Instant::now();
        let mut nacks = NackGenerator::default();
        assert_eq!(nacks.on_packet(10, t0), Arrival::InOrder);
        assert_eq!(nacks.on_packet(11, t0), Arrival::InOrder);
        assert_eq!(nacks.on_packet(14, t0), Arrival::Gap);
        assert_eq!(due(&mut nacks, t0), vec![12, 13]);
        assert!(due(&mut nacks, t0 + Duration::from_millis(50)).is_empty());
        assert_eq!(nacks.on_packet(12, t0), Arrival::Recovered);
        assert_eq!(due(&mut nacks, t0 + RETRY), vec![13]);
        assert_eq!(nacks.on_packet(13, t0), Arrival::Recovered);
        assert_eq!(nacks.on_packet(13, t0), Arrival::InOrder, "a duplicate");
        assert!(due(&mut nacks, t0 + RETRY * 2).is_empty());
        assert_eq!(nacks.missing(), 0);
    }

    #[test]
    fn retries_are_bounded_in_count_and_in_age() {
        let t0 = Instant::now();
        let mut nacks = NackGenerator::default();
        nacks.on_packet(1, t0);
        nacks.on_packet(3, t0);
        let mut asked = 0;
        for i in 0..30 {
            asked += due(&mut nacks, t0 + RETRY * i).len();
        }
        assert_eq!(asked, usize::from(MAX_RETRIES));
        assert_eq!(nacks.missing(), 0);
        // With a long retry interval, age gives up first.
        nacks.on_packet(5, t0);
        assert_eq!(due(&mut nacks, t0), vec![4]);
        assert!(due(&mut nacks, t0 + GIVE_UP_AFTER).is_empty());
        assert_eq!(nacks.missing(), 0);
    }

    #[test]
    fn sequence_numbers_wrap_and_huge_gaps_ask_for_a_keyframe() {
        let t0 = Instant::now();
        let mut nacks = NackGenerator::default();
        nacks.on_packet(65_534, t0);
        assert_eq!(nacks.on_packet(65_536 + 1, t0), Arrival::Gap);
        assert_eq!(due(&mut nacks, t0), vec![65_535, 0]);
        assert_eq!(
            nacks.on_packet(65_537 + MAX_MISSING as u64 + 2, t0),
            Arrival::TooLarge
        );
        assert_eq!(nacks.missing(), 0);
        assert!(due(&mut nacks, t0).is_empty());
    }

    #[test]
    fn the_missing_list_stays_bounded() {
        let t0 = Instant::now();
        let mut nacks = NackGenerator::default();
        let mut index = 0;
        nacks.on_packet(index, t0);
        for _ in 0..100 {
            index += MAX_MISSING as u64;
            nacks.on_packet(index, t0);
        }
        assert_eq!(nacks.missing(), MAX_MISSING);
    }
}
