//! Rate limits on what clients send: a token bucket ([`TokenBucket`]) per WebSocket
//! connection (messages per second) and one per client IP (joins per second). Both are plain
//! synchronous structs that take `now`, so they are tested with a fake clock.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use roomcast_sfu::rate::{Rate, TokenBucket};

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

    /// Counts one event from `ip` (an IPv6 address under its /64, see
    /// [`crate::admission::client_key`]): `true` if it is within the rate.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = crate::admission::client_key(ip);
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
    fn one_ipv6_64_shares_one_bucket() {
        let t0 = Instant::now();
        let limiter = PerIpLimiter::new(Rate::new(1, 3).unwrap(), t0);
        let allowed = (0..100u16)
            .filter(|i| {
                let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 7, *i, 0, 0, 1));
                limiter.allow(ip, t0)
            })
            .count();
        assert_eq!(
            allowed, 3,
            "rotating the low 64 bits does not escape the limit"
        );
        let other = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 8, 0, 0, 0, 1));
        assert!(limiter.allow(other, t0));
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
