//! The mux's routing decisions, without sockets or tasks: which connection a datagram
//! belongs to, and which of our addresses a reply must come from.
//!
//! - A STUN request names its connection in USERNAME (our ufrag, then theirs): it goes to
//!   that connection's ICE agent whatever address it came from, which checks its
//!   integrity. We remember which of our addresses it was sent to, so the agent's
//!   response leaves from that address (the peer matches a response to its request by
//!   transaction id *and* addresses, and drops it otherwise).
//! - When the agent answers a remote address, that address is validated and registered
//!   to the connection; from then on anything it sends (DTLS, SRTP) is found by address.
//! - Each registered remote has a [`Path`]: the local address it uses, where everything
//!   else we send it leaves from. Media and DTLS move it (they only flow on the pair in
//!   use), and so does a nominating check; other checks don't, as peers keep probing
//!   their other pairs.
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::drops::DropReason;
use crate::stun::{self, Class, Kind, TransactionId};

/// The remote addresses one connection may have registered; the oldest goes first. A
/// peer with more candidates than this is unusual, and the limit bounds what one
/// connection can make the table hold.
pub const MAX_REMOTES_PER_CONN: usize = 16;

/// One remote address of a connection, and our address it uses.
#[derive(Debug)]
pub struct Path {
    remote: SocketAddr,
    local: Mutex<Option<IpAddr>>,
}

impl Path {
    /// A path whose local address is not known yet (the kernel picks until it is).
    pub fn new(remote: SocketAddr, local: Option<IpAddr>) -> Path {
        Path {
            remote,
            local: Mutex::new(local),
        }
    }

    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Where datagrams to [`Path::remote`] leave from.
    pub fn local(&self) -> Option<IpAddr> {
        *self.local.lock()
    }

    fn arrived_at(&self, local: IpAddr) {
        let mut current = self.local.lock();
        if *current != Some(local) {
            *current = Some(local);
        }
    }
}

/// Where a received datagram goes.
#[derive(Debug)]
pub enum Route<C> {
    /// From a validated remote of `conn`. SRTP/SRTCP is offered to its fast path first.
    Known {
        conn: C,
        kind: Kind,
    },
    /// A STUN request for `conn`: to its ICE agent.
    Check {
        conn: C,
        transaction: TransactionId,
    },
    Drop(DropReason),
}

struct Remote<C> {
    conn: C,
    path: Arc<Path>,
}

/// Connections by ufrag and by validated remote address. `C` is a cheap handle on a
/// connection, compared by identity.
pub struct Table<C> {
    by_ufrag: HashMap<String, C>,
    by_remote: HashMap<SocketAddr, Remote<C>>,
    /// Each connection's registered remotes, oldest first.
    remotes_of: HashMap<C, Vec<SocketAddr>>,
}

impl<C> Default for Table<C> {
    fn default() -> Self {
        Table {
            by_ufrag: HashMap::new(),
            by_remote: HashMap::new(),
            remotes_of: HashMap::new(),
        }
    }
}

impl<C: Clone + Eq + Hash> Table<C> {
    pub fn conn(&self, ufrag: &str) -> Option<&C> {
        self.by_ufrag.get(ufrag)
    }

    pub fn add_conn(&mut self, ufrag: &str, conn: C) {
        self.by_ufrag.insert(ufrag.to_owned(), conn);
    }

    /// Every connection.
    pub fn conns(&self) -> Vec<C> {
        self.by_ufrag.values().cloned().collect()
    }

    /// Forgets `conn`: its ufrag and every remote registered to it.
    pub fn remove_conn(&mut self, conn: &C) {
        self.by_ufrag.retain(|_, c| c != conn);
        for remote in self.remotes_of.remove(conn).unwrap_or_default() {
            self.by_remote.remove(&remote);
        }
    }

    /// Decides where a datagram from `from`, sent to our address `local`, goes. Reads
    /// `datagram` only up to its length.
    pub fn route(&self, datagram: &[u8], from: SocketAddr, local: IpAddr) -> Route<C> {
        let kind = stun::classify(datagram);
        match kind {
            Kind::Other => Route::Drop(DropReason::NotWebrtc),
            Kind::Stun => {
                let Some(message) = stun::parse(datagram) else {
                    return Route::Drop(DropReason::MalformedStun);
                };
                if message.class != Class::Request {
                    return self.known(from, kind, None);
                }
                let Some(conn) = message.ufrag.and_then(|u| self.by_ufrag.get(u)) else {
                    return Route::Drop(DropReason::UnknownUfrag);
                };
                if message.use_candidate {
                    if let Some(remote) = self.by_remote.get(&from).filter(|r| &r.conn == conn) {
                        remote.path.arrived_at(local);
                    }
                }
                Route::Check {
                    conn: conn.clone(),
                    transaction: message.transaction,
                }
            }
            Kind::Dtls | Kind::Rtp => self.known(from, kind, Some(local)),
        }
    }

    fn known(&self, from: SocketAddr, kind: Kind, moves_to: Option<IpAddr>) -> Route<C> {
        match self.by_remote.get(&from) {
            Some(remote) => {
                if let Some(local) = moves_to {
                    remote.path.arrived_at(local);
                }
                Route::Known {
                    conn: remote.conn.clone(),
                    kind,
                }
            }
            None => Route::Drop(DropReason::UnknownRemote),
        }
    }

    /// The path to `remote` if it is registered to `conn`.
    pub fn path(&self, conn: &C, remote: SocketAddr) -> Option<Arc<Path>> {
        self.by_remote
            .get(&remote)
            .filter(|r| &r.conn == conn)
            .map(|r| Arc::clone(&r.path))
    }

    /// The path to `remote`, whichever connection it belongs to.
    pub fn path_to(&self, remote: SocketAddr) -> Option<Arc<Path>> {
        self.by_remote.get(&remote).map(|r| Arc::clone(&r.path))
    }

    /// `conn` is sending to `remote`: its agent has validated it. Registers it (moving it
    /// from another connection if needed) and returns its path. `local` is the address of
    /// the check being answered, if any.
    pub fn register(&mut self, conn: &C, remote: SocketAddr, local: Option<IpAddr>) -> Arc<Path> {
        if let Some(existing) = self.by_remote.get_mut(&remote) {
            if &existing.conn != conn {
                let previous = std::mem::replace(&mut existing.conn, conn.clone());
                if let Some(list) = self.remotes_of.get_mut(&previous) {
                    list.retain(|r| *r != remote);
                }
                self.remotes_of
                    .entry(conn.clone())
                    .or_default()
                    .push(remote);
            }
            if let Some(local) = local {
                if existing.path.local().is_none() {
                    existing.path.arrived_at(local);
                }
            }
            return Arc::clone(&existing.path);
        }
        let list = self.remotes_of.entry(conn.clone()).or_default();
        if list.len() >= MAX_REMOTES_PER_CONN {
            let oldest = list.remove(0);
            self.by_remote.remove(&oldest);
        }
        list.push(remote);
        let path = Arc::new(Path::new(remote, local));
        self.by_remote.insert(
            remote,
            Remote {
                conn: conn.clone(),
                path: Arc::clone(&path),
            },
        );
        path
    }
}

/// The last STUN requests a connection received, with our address each was sent to, so
/// the agent's response can leave from it. A fixed ring: a flood of checks pushes out the
/// oldest instead of growing it.
#[derive(Debug, Default)]
pub struct Requests {
    recent: [Option<(TransactionId, IpAddr)>; 32],
    next: usize,
}

impl Requests {
    pub fn record(&mut self, transaction: TransactionId, local: IpAddr) {
        self.recent[self.next] = Some((transaction, local));
        self.next = (self.next + 1) % self.recent.len();
    }

    /// Our address the request `transaction` was sent to (once: a response answers one
    /// request).
    pub fn take(&mut self, transaction: &TransactionId) -> Option<IpAddr> {
        let slot = self
            .recent
            .iter_mut()
            .find(|s| s.is_some_and(|(t, _)| t == *transaction))?;
        slot.take().map(|(_, local)| local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun::tests::{binding_request, binding_success};

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const LAN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    fn rtp() -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.resize(100, 0);
        p
    }

    fn dtls() -> Vec<u8> {
        vec![22, 254, 253, 0, 0]
    }

    fn table() -> Table<u32> {
        let mut t = Table::default();
        t.add_conn("alice", 1);
        t.add_conn("bob", 2);
        t
    }

    #[test]
    fn a_check_goes_to_the_connection_its_username_names() {
        let t = table();
        let from = addr("127.0.0.1:4000");
        match t.route(&binding_request("bob", [9; 12], false), from, LOOPBACK) {
            Route::Check { conn, transaction } => {
                assert_eq!(conn, 2);
                assert_eq!(transaction, [9; 12]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.route(&binding_request("carol", [9; 12], false), from, LOOPBACK),
            Route::Drop(DropReason::UnknownUfrag)
        ));
    }

    #[test]
    fn the_username_wins_over_a_known_address() {
        // After an ICE restart the same remote address checks a new ufrag.
        let mut t = table();
        let from = addr("127.0.0.1:4000");
        t.register(&1, from, Some(LOOPBACK));
        assert!(matches!(
            t.route(&binding_request("bob", [1; 12], false), from, LOOPBACK),
            Route::Check { conn: 2, .. }
        ));
    }

    #[test]
    fn media_and_dtls_need_a_validated_address() {
        let mut t = table();
        let from = addr("127.0.0.1:4000");
        for packet in [rtp(), dtls()] {
            assert!(matches!(
                t.route(&packet, from, LOOPBACK),
                Route::Drop(DropReason::UnknownRemote)
            ));
        }
        t.register(&1, from, Some(LOOPBACK));
        assert!(matches!(
            t.route(&rtp(), from, LOOPBACK),
            Route::Known {
                conn: 1,
                kind: Kind::Rtp
            }
        ));
        assert!(matches!(
            t.route(&dtls(), from, LOOPBACK),
            Route::Known {
                conn: 1,
                kind: Kind::Dtls
            }
        ));
        // A response to a request of ours comes from a known remote, or from nobody.
        assert!(matches!(
            t.route(&binding_success([2; 12]), from, LOOPBACK),
            Route::Known {
                conn: 1,
                kind: Kind::Stun
            }
        ));
        assert!(matches!(
            t.route(&binding_success([2; 12]), addr("127.0.0.1:4001"), LOOPBACK),
            Route::Drop(DropReason::UnknownRemote)
        ));
    }

    #[test]
    fn junk_is_dropped_by_reason() {
        let mut t = table();
        let from = addr("127.0.0.1:4000");
        t.register(&1, from, Some(LOOPBACK));
        let mut bad_stun = binding_request("alice", [1; 12], false);
        bad_stun.truncate(30);
        let cases: [(&[u8], DropReason); 4] = [
            (&[], DropReason::NotWebrtc),
            (&[0xFF; 50], DropReason::NotWebrtc),
            (&[100, 0, 0], DropReason::NotWebrtc),
            (&bad_stun, DropReason::MalformedStun),
        ];
        for (packet, reason) in cases {
            match t.route(packet, from, LOOPBACK) {
                Route::Drop(r) => assert_eq!(r, reason, "{packet:?}"),
                other => panic!("{packet:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn replies_leave_from_the_address_media_arrives_at() {
        let mut t = table();
        let from = addr("127.0.0.1:4000");
        let path = t.register(&1, from, Some(LAN));
        assert_eq!(path.local(), Some(LAN));
        t.route(&rtp(), from, LOOPBACK);
        assert_eq!(path.local(), Some(LOOPBACK));
        t.route(&dtls(), from, LAN);
        assert_eq!(path.local(), Some(LAN));
    }

    #[test]
    fn only_a_nominating_check_moves_the_path() {
        let mut t = table();
        let from = addr("127.0.0.1:4000");
        let path = t.register(&1, from, Some(LOOPBACK));
        // The peer keeps probing its other pair: replies stay on the one in use.
        t.route(&binding_request("alice", [1; 12], false), from, LAN);
        assert_eq!(path.local(), Some(LOOPBACK));
        t.route(&binding_request("alice", [2; 12], true), from, LAN);
        assert_eq!(path.local(), Some(LAN));
        // A nomination for another connection does not touch this one's path.
        t.route(&binding_request("bob", [3; 12], true), from, LOOPBACK);
        assert_eq!(path.local(), Some(LAN));
    }

    #[test]
    fn a_remote_moves_to_the_connection_that_answers_it() {
        let mut t = table();
        let from = addr("127.0.0.1:4000");
        let first = t.register(&1, from, Some(LOOPBACK));
        let second = t.register(&2, from, None);
        assert!(Arc::ptr_eq(&first, &second), "the path is the remote's");
        assert!(t.path(&1, from).is_none());
        assert!(t.path(&2, from).is_some());
        t.remove_conn(&1);
        assert!(matches!(
            t.route(&rtp(), from, LOOPBACK),
            Route::Known { conn: 2, .. }
        ));
        t.remove_conn(&2);
        assert!(matches!(
            t.route(&rtp(), from, LOOPBACK),
            Route::Drop(DropReason::UnknownRemote)
        ));
        assert!(t.conn("bob").is_none());
    }

    #[test]
    fn one_connection_holds_a_bounded_number_of_remotes() {
        let mut t = table();
        for port in 0..(MAX_REMOTES_PER_CONN as u16 + 5) {
            t.register(&1, SocketAddr::new(LOOPBACK, 5000 + port), Some(LOOPBACK));
        }
        assert_eq!(t.by_remote.len(), MAX_REMOTES_PER_CONN);
        // The oldest went first.
        assert!(t.path_to(SocketAddr::new(LOOPBACK, 5000)).is_none());
        assert!(t
            .path_to(SocketAddr::new(
                LOOPBACK,
                5000 + MAX_REMOTES_PER_CONN as u16 + 4
            ))
            .is_some());
    }

    #[test]
    fn a_response_leaves_from_the_address_its_request_arrived_at() {
        let mut requests = Requests::default();
        requests.record([1; 12], LOOPBACK);
        requests.record([2; 12], LAN);
        assert_eq!(requests.take(&[2; 12]), Some(LAN));
        assert_eq!(requests.take(&[2; 12]), None, "answered once");
        assert_eq!(requests.take(&[1; 12]), Some(LOOPBACK));
        // A flood of checks forgets the oldest, never grows.
        for i in 0..100u8 {
            requests.record([i; 12], LAN);
        }
        assert_eq!(requests.take(&[0; 12]), None);
        assert_eq!(requests.take(&[99; 12]), Some(LAN));
    }
}
