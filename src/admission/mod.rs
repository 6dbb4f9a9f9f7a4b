//! Who may open a connection, and how many: the client's address (from `X-Forwarded-For`
//! behind trusted proxies, see [`proxy`]), caps per address and in total ([`Slots`]), the
//! Origin check on `/ws` ([`origin`]), and the count of everything refused, by reason, for
//! `/metrics`.
//!
//! IPv6 clients are counted by their /64: one host usually holds a whole /64, so keying on
//! the full address would let it rotate around every per-address limit.
pub mod origin;
pub mod proxy;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// The address a client is counted under: IPv4 as it is (IPv4-mapped IPv6 as IPv4), IPv6
/// by its /64 prefix.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !(u128::from(u64::MAX));
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Why something was refused or cut off, as `/metrics` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A TCP connection beyond `--max-http-connections` (answered 503).
    HttpConnections,
    /// A TCP connection beyond `--max-http-connections-per-ip` (answered 429).
    HttpConnectionsPerIp,
    /// Request headers not complete within `--header-read-timeout` (closed).
    HeaderTimeout,
    /// A WebSocket beyond `--max-websockets` (answered 503).
    Websockets,
    /// A WebSocket beyond `--max-websockets-per-ip` (answered 429).
    WebsocketsPerIp,
    /// A browser's WebSocket from an origin not allowed (answered 403).
    Origin,
    /// No `join` (or `resume`) succeeded within `--join-timeout` (closed 4408).
    JoinTimeout,
    /// The client fell too far behind reading its messages (closed 4000, may resume).
    Lagging,
    /// Nothing arrived within the keepalive timeout, or a write could not finish in it
    /// (closed 1001, may resume).
    KeepaliveTimeout,
    /// The client left a server offer unanswered past its timeout (closed 4000, may resume).
    OfferUnanswered,
}

impl Refusal {
    pub const ALL: [Refusal; 10] = [
        Refusal::HttpConnections,
        Refusal::HttpConnectionsPerIp,
        Refusal::HeaderTimeout,
        Refusal::Websockets,
        Refusal::WebsocketsPerIp,
        Refusal::Origin,
        Refusal::JoinTimeout,
        Refusal::Lagging,
        Refusal::KeepaliveTimeout,
        Refusal::OfferUnanswered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::HttpConnections => "http_connections",
            Refusal::HttpConnectionsPerIp => "http_connections_per_ip",
            Refusal::HeaderTimeout => "header_timeout",
            Refusal::Websockets => "websockets",
            Refusal::WebsocketsPerIp => "websockets_per_ip",
            Refusal::Origin => "origin",
            Refusal::JoinTimeout => "join_timeout",
            Refusal::Lagging => "lagging",
            Refusal::KeepaliveTimeout => "keepalive_timeout",
            Refusal::OfferUnanswered => "offer_unanswered",
        }
    }
}

/// Refusals counted since the server started, by reason.
#[derive(Debug, Default)]
pub struct RefusalCounts([AtomicU64; Refusal::ALL.len()]);

impl RefusalCounts {
    pub fn count(&self, refusal: Refusal) {
        self.0[refusal as usize].fetch_add(1, Ordering::Relaxed);
        tracing::debug!(reason = refusal.as_str(), "connection refused or cut off");
    }

    pub fn get(&self, refusal: Refusal) -> u64 {
        self.0[refusal as usize].load(Ordering::Relaxed)
    }
}

/// Why [`Slots::try_take`] said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The client's address holds its maximum.
    PerIp,
    /// The server holds its maximum.
    Total,
}

/// Things open now (connections, WebSockets), per client address and in total, with a cap
/// on each (0: none). A [`Slot`] is one of them; dropping it frees its place.
#[derive(Debug)]
pub struct Slots {
    max_per_ip: usize,
    max_total: usize,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Slots {
    pub fn new(max_per_ip: usize, max_total: usize) -> Slots {
        Slots {
            max_per_ip,
            max_total,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a place for a client at `ip` (counted under its [`client_key`]); `None`
    /// counts only towards the total.
    pub fn try_take(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, Full> {
        let key = ip.map(client_key);
        let mut per_ip = self.per_ip.lock();
        let open = self.open.load(Ordering::Relaxed);
        if self.max_total > 0 && open >= self.max_total {
            return Err(Full::Total);
        }
        if let Some(key) = key {
            let n = per_ip.entry(key).or_insert(0);
            if self.max_per_ip > 0 && *n >= self.max_per_ip {
                return Err(Full::PerIp);
            }
            *n += 1;
        }
        self.open.store(open + 1, Ordering::Relaxed);
        Ok(Slot {
            slots: Arc::clone(self),
            key,
        })
    }

    /// How many are open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// How many addresses hold at least one.
    pub fn addresses(&self) -> usize {
        self.per_ip.lock().len()
    }
}

/// One place in [`Slots`], given back on drop.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    key: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.slots.per_ip.lock();
        if let Some(key) = self.key {
            if let Some(n) = per_ip.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&key);
                }
            }
        }
        self.slots.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn v4(last: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    fn v6(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn ipv6_is_keyed_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            client_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(
            client_key("2001:db8:1:2::1".parse().unwrap()),
            client_key("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(
            client_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_key(v4(9).unwrap()), v4(9).unwrap());
    }

    #[test]
    fn places_are_capped_per_address_and_in_total_and_given_back() {
        let slots = Arc::new(Slots::new(2, 3));
        let a1 = slots.try_take(v4(1)).unwrap();
        let _a2 = slots.try_take(v4(1)).unwrap();
        assert_eq!(slots.try_take(v4(1)).unwrap_err(), Full::PerIp);
        let _b1 = slots.try_take(v4(2)).unwrap();
        assert_eq!(slots.try_take(v4(3)).unwrap_err(), Full::Total);
        assert_eq!(slots.open(), 3);
        drop(a1);
        assert_eq!(slots.open(), 2);
        let _c1 = slots.try_take(v4(3)).unwrap();
        assert_eq!(slots.addresses(), 3);
    }

    #[test]
    fn one_ipv6_host_cannot_rotate_around_the_per_address_cap() {
        let slots = Arc::new(Slots::new(2, 0));
        let _a = slots.try_take(v6("2001:db8::1")).unwrap();
        let _b = slots.try_take(v6("2001:db8::ffff:2")).unwrap();
        assert_eq!(
            slots.try_take(v6("2001:db8::dead:beef")).unwrap_err(),
            Full::PerIp
        );
        assert!(slots.try_take(v6("2001:db8:0:1::1")).is_ok(), "another /64");
    }

    #[test]
    fn zero_means_no_cap_and_forgotten_addresses_leave_no_trace() {
        let slots = Arc::new(Slots::new(0, 0));
        let held: Vec<_> = (0..1000).map(|_| slots.try_take(v4(1)).unwrap()).collect();
        assert_eq!(slots.open(), 1000);
        drop(held);
        assert_eq!((slots.open(), slots.addresses()), (0, 0));
        let _anonymous = slots.try_take(None).unwrap();
        assert_eq!((slots.open(), slots.addresses()), (1, 0));
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let counts = RefusalCounts::default();
        counts.count(Refusal::Origin);
        counts.count(Refusal::Origin);
        counts.count(Refusal::Lagging);
        assert_eq!(counts.get(Refusal::Origin), 2);
        assert_eq!(counts.get(Refusal::Lagging), 1);
        assert_eq!(counts.get(Refusal::JoinTimeout), 0);
        let names: Vec<_> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), 10);
        assert!(Refusal::ALL
            .iter()
            .enumerate()
            .all(|(i, r)| *r as usize == i));
    }
}
