//! A token bucket: a sustained rate with a burst allowance, a plain struct that takes `now`.
//! Used for what clients send: messages per connection and joins per address (the HTTP
//! layer), chat per sender and per room (the session and the room).
use std::time::{Duration, Instant};

/// A sustained rate with a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Most tokens the bucket holds (and what it starts with).
    pub burst: f64,
}

impl Rate {
    /// `None` (no limit) when `per_second` is 0; the burst is at least 1.
    pub fn new(per_second: u32, burst: u32) -> Option<Rate> {
        (per_second > 0).then(|| Rate {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
        })
    }

    /// How long an empty bucket takes to fill up again.
    fn refill_time(&self) -> Duration {
        Duration::from_secs_f64(self.burst / self.per_second)
    }
}

/// Starts full; each allowed event takes one token; tokens come back at `per_second` up to
/// `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: Rate, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: rate.burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
        self.last = self.last.max(now);
    }

    /// Takes a token if there is one: `true` means the event is allowed.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now`: forgetting it changes nothing.
    pub fn is_idle(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= self.rate.refill_time()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn zero_rate_means_no_limit() {
        assert_eq!(Rate::new(0, 50), None);
        assert_eq!(Rate::new(20, 0).unwrap().burst, 1.0);
    }

    #[test]
    fn bucket_allows_the_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(Rate::new(20, 50).unwrap(), t0);
        for i in 0..50 {
            assert!(b.try_take(t0), "burst token {i}");
        }
        assert!(!b.try_take(t0), "the 51st at once is refused");
        // 20 per second: one token every 50 ms.
        assert!(!b.try_take(t0 + ms(40)));
        assert!(b.try_take(t0 + ms(50)));
        assert!(!b.try_take(t0 + ms(60)));
        // One second later: 20 more, no more.
        let t1 = t0 + ms(1050);
        for i in 0..20 {
            assert!(b.try_take(t1), "sustained token {i}");
        }
        assert!(!b.try_take(t1));
    }

    #[test]
    fn bucket_refills_only_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(Rate::new(10, 5).unwrap(), t0);
        assert!(b.try_take(t0));
        let later = t0 + Duration::from_secs(3600);
        let allowed = (0..100).filter(|_| b.try_take(later)).count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(Rate::new(1, 1).unwrap(), t0);
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0 - Duration::from_secs(5)));
        assert!(!b.try_take(t0 + ms(500)));
        assert!(b.try_take(t0 + ms(1000)));
    }

    #[test]
    fn bucket_is_idle_once_it_would_be_full() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(Rate::new(10, 20).unwrap(), t0);
        assert!(b.try_take(t0));
        assert!(!b.is_idle(t0 + ms(1999)));
        assert!(b.is_idle(t0 + ms(2000)));
    }
}
