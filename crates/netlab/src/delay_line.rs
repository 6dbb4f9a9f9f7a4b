//! The decision part of the delay shim: when each packet may leave. Every packet is held
//! `delay` ± up to `jitter` (uniformly), but never released before the one that came in
//! before it (no reordering), as on a real path whose queueing delay varies. Synchronous and
//! driven by the times passed in, so it is tested with a fake clock.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Packets held at most; beyond this the line drops, like a full buffer.
pub const MAX_HELD: usize = 20_000;

pub struct DelayLine {
    delay: Duration,
    jitter: Duration,
    held: VecDeque<(Instant, Vec<u8>)>,
    last_release: Option<Instant>,
    rng: SmallRng,
    dropped: u64,
}

impl DelayLine {
    pub fn new(seed: u64) -> Self {
        DelayLine {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            held: VecDeque::new(),
            last_release: None,
            rng: SmallRng::seed_from_u64(seed),
            dropped: 0,
        }
    }

    /// Applies to packets pushed from now on; `jitter` is capped at `delay`.
    pub fn set(&mut self, delay: Duration, jitter: Duration) {
        self.delay = delay;
        self.jitter = jitter.min(delay);
    }

    /// Takes a packet that arrived at `now`.
    pub fn push(&mut self, now: Instant, packet: Vec<u8>) {
        if self.held.len() >= MAX_HELD {
            self.dropped += 1;
            return;
        }
        let jitter = self.jitter.as_micros() as i64;
        let offset = if jitter > 0 {
            self.rng.random_range(-jitter..=jitter)
        } else {
            0
        };
        let hold = Duration::from_micros((self.delay.as_micros() as i64 + offset).max(0) as u64);
        let mut release = now + hold;
        if let Some(last) = self.last_release {
            release = release.max(last);
        }
        self.last_release = Some(release);
        self.held.push_back((release, packet));
    }

    /// When the next packet is due, if any is held.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.front().map(|(at, _)| *at)
    }

    /// The next packet due at `now`, oldest first.
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_due()? <= now {
            self.held.pop_front().map(|(_, p)| p)
        } else {
            None
        }
    }

    /// Packets dropped because the line was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(line: &mut DelayLine, now: Instant) -> Vec<u8> {
        std::iter::from_fn(|| line.pop_due(now))
            .map(|p| p[0])
            .collect()
    }

    #[test]
    fn without_delay_packets_leave_at_once() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(1);
        line.push(t0, vec![1]);
        line.push(t0, vec![2]);
        assert_eq!(drain(&mut line, t0), [1, 2]);
        assert_eq!(line.next_due(), None);
    }

    #[test]
    fn a_fixed_delay_holds_each_packet_exactly_that_long() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(1);
        line.set(Duration::from_millis(100), Duration::ZERO);
        line.push(t0, vec![1]);
        line.push(t0 + Duration::from_millis(10), vec![2]);
        assert_eq!(line.next_due(), Some(t0 + Duration::from_millis(100)));
        assert!(drain(&mut line, t0 + Duration::from_millis(99)).is_empty());
        assert_eq!(drain(&mut line, t0 + Duration::from_millis(100)), [1]);
        assert_eq!(drain(&mut line, t0 + Duration::from_millis(110)), [2]);
    }

    #[test]
    fn jitter_spreads_delays_within_bounds_and_keeps_order() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(7);
        let (delay, jitter) = (Duration::from_millis(100), Duration::from_millis(30));
        line.set(delay, jitter);
        // One packet every 20 ms for 20 s.
        let n = 1000u32;
        let mut holds = Vec::new();
        for i in 0..n {
            let sent = t0 + Duration::from_millis(u64::from(i) * 20);
            line.push(sent, i.to_le_bytes().to_vec());
        }
        let mut next = 0u32;
        let mut now = t0;
        while let Some(due) = line.next_due() {
            now = now.max(due);
            let packet = line.pop_due(now).expect("due");
            let i = u32::from_le_bytes(packet.try_into().expect("4 bytes"));
            assert_eq!(i, next, "order kept");
            next += 1;
            let sent = t0 + Duration::from_millis(u64::from(i) * 20);
            holds.push(now.duration_since(sent));
        }
        assert_eq!(next, n);
        let min = *holds.iter().min().unwrap();
        let max = *holds.iter().max().unwrap();
        assert!(min >= delay - jitter, "{min:?}");
        assert!(max <= delay + jitter, "{max:?}");
        assert!(max - min > jitter, "the delays vary: {min:?}..{max:?}");
        let mean = holds.iter().sum::<Duration>() / n;
        assert!(
            mean > delay - Duration::from_millis(5) && mean < delay + Duration::from_millis(15),
            "{mean:?}"
        );
    }

    #[test]
    fn a_full_line_drops() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(1);
        line.set(Duration::from_secs(1), Duration::ZERO);
        for _ in 0..MAX_HELD + 5 {
            line.push(t0, vec![0]);
        }
        assert_eq!(line.dropped(), 5);
    }
}
