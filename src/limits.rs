//! Rate limits on what clients send: a token bucket per WebSocket connection (messages per
//! second) and one per client IP (joins per second). Both are plain synchronous structs that
//! take `now`, so they are tested with a fake clock.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
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

/// Most client addresses tracked at once. Reaching it evicts idle addresses; if most are
/// still active, everything is forgotten (the limit fails open rather than grow memory).
pub const MAX_TRACKED_IPS: usize = 65_536;
/// Idle addresses are also evicted this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// One token bucket per client IP, bounded in size.
#[derive(Debug)]
pub struct PerIpLimiter {
    rate: Rate,
    capacity: usize,
    state: Mutex<PerIpState>,
}

#[derive(Debug)]
struct PerIpState {
    buckets: HashMap<IpAddr, TokenBucket>,
    last_prune: Instant,
}

impl PerIpLimiter {
    pub fn new(rate: Rate, now: Instant) -> PerIpLimiter {
        Self::with_capacity(rate, MAX_TRACKED_IPS, now)
    }

    pub fn with_capacity(rate: Rate, capacity: usize, now: Instant) -> PerIpLimiter {
        PerIpLimiter {
            rate,
            capacity: capacity.max(1),
            state: Mutex::new(PerIpState {
                buckets: HashMap::new(),
                last_prune: now,
            }),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Counts one event from `ip`: `true` if it is within the rate.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = ip.to_canonical();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let full = state.buckets.len() >= self.capacity && !state.buckets.contains_key(&ip);
        if full || now.saturating_duration_since(state.last_prune) >= PRUNE_EVERY {
            state.buckets.retain(|_, b| !b.is_idle(now));
            state.last_prune = now;
            // Still mostly busy: start over rather than prune again at every new address.
            if state.buckets.len() > self.capacity * 3 / 4 {
                tracing::warn!(
                    tracked = state.buckets.len(),
                    "too many client addresses to rate-limit joins; forgetting them all"
                );
                state.buckets.clear();
            }
        }
        let rate = self.rate;
        state
            .buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(rate, now))
            .try_take(now)
    }

    /// How many addresses are tracked now.
    pub fn tracked(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buckets
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

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

    #[test]
    fn per_ip_limits_each_address_separately() {
        let t0 = Instant::now();
        let limiter = PerIpLimiter::new(Rate::new(2, 3).unwrap(), t0);
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!((0..10).filter(|_| limiter.allow(a, t0)).count(), 3);
        assert!(limiter.allow(b, t0), "another address has its own bucket");
        assert!(!limiter.allow(a, t0 + ms(400)));
        assert!(limiter.allow(a, t0 + ms(500)));
        // The IPv4-mapped IPv6 form is the same client.
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert!(!limiter.allow(mapped, t0 + ms(500)));
    }

    #[test]
    fn per_ip_map_stays_bounded_and_evicts_idle_addresses() {
        let t0 = Instant::now();
        let limiter = PerIpLimiter::with_capacity(Rate::new(1, 1).unwrap(), 100, t0);
        for i in 0..100u32 {
            assert!(limiter.allow(IpAddr::V4(Ipv4Addr::from(i)), t0));
        }
        assert_eq!(limiter.tracked(), 100);
        // A second later every one of them is idle: a new address evicts them.
        let t1 = t0 + Duration::from_secs(1);
        assert!(limiter.allow(IpAddr::V4(Ipv4Addr::from(1000)), t1));
        assert_eq!(limiter.tracked(), 1);
        // All busy at once: the map is reset instead of growing past its capacity.
        for i in 0..10_000u32 {
            limiter.allow(IpAddr::V4(Ipv4Addr::from(i)), t1);
            assert!(limiter.tracked() <= 100);
        }
    }

    #[test]
    fn idle_addresses_are_evicted_periodically() {
        let t0 = Instant::now();
        let limiter = PerIpLimiter::new(Rate::new(10, 10).unwrap(), t0);
        for i in 0..50u32 {
            limiter.allow(IpAddr::V4(Ipv4Addr::from(i)), t0);
        }
        assert_eq!(limiter.tracked(), 50);
        limiter.allow(IpAddr::V4(Ipv4Addr::from(7)), t0 + PRUNE_EVERY);
        assert_eq!(limiter.tracked(), 1);
    }
}
