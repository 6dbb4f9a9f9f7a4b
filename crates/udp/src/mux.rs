//! The mux: one reader task on the media socket that hands each datagram to its
//! connection, and webrtc-ice's `UDPMux` on top, so every ICE agent shares the port.
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use webrtc_ice::udp_mux::UDPMux;
use webrtc_util::{Conn, Error};

use crate::conn::MuxConn;
use crate::drops::{DropReason, Drops};
use crate::fast_path::{FastPath, Verdict};
use crate::queue::{AgentQueue, Push};
use crate::socket::{
    canonical, AsyncSocket, MediaSocket, Received, RecvBatch, MAX_BATCH, MAX_DATAGRAM,
};
use crate::stun::{self, Class, Kind};
use crate::table::{Path, Requests, Route, Table};

/// Datagrams read per system call.
const READ_BATCH: usize = MAX_BATCH;

/// Media that waited longer than this in the socket is dropped unread. It only happens
/// when the reader has fallen behind (the server is short of CPU): the kernel queue then
/// holds seconds of media, and STUN and DTLS wait behind it. Measured in `browser_firefox`
/// on a loaded 2-core machine with a debug build: 7 MB waiting, ICE checks answered 4–9 s
/// late, and a new participant's ICE failed because webrtc-ice drops a response after
/// 4 s. A packet this late is of no use to a real-time receiver, and skipping it costs
/// next to nothing, so the reader catches up and the wait stays near this bound.
pub const STALE_MEDIA: Duration = Duration::from_millis(500);

pub struct UdpMux {
    socket: Arc<MediaSocket>,
    /// Set once reading has started (see [`UdpMux::start`]).
    io: OnceLock<Arc<AsyncSocket>>,
    starting: Mutex<()>,
    table: RwLock<Table<ConnRef>>,
    drops: Drops,
    checks: Checks,
    closed: watch::Sender<bool>,
    /// What [`ConnShared::bypassed`] counts from.
    epoch: Instant,
}

/// ICE checks (STUN binding requests: connectivity checks, then consent checks) counted on
/// the socket: those addressed to an agent, and those its agents sent.
#[derive(Default)]
pub struct Checks {
    received: AtomicU64,
    sent: AtomicU64,
}

impl Checks {
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// One ICE agent's share of the mux (one local ufrag).
pub(crate) struct ConnShared {
    queue: AgentQueue,
    requests: Mutex<Requests>,
    fast_path: ArcSwapOption<Arc<dyn FastPath>>,
    /// When the fast path last took a datagram (nanoseconds after the mux's epoch, plus
    /// one; 0: never), for the agent's liveness check (`UDPMux::last_bypassed_receive`).
    bypassed: AtomicU64,
}

/// A connection, compared by identity.
#[derive(Clone)]
pub(crate) struct ConnRef(Arc<ConnShared>);

impl PartialEq for ConnRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ConnRef {}

impl std::hash::Hash for ConnRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state);
    }
}

impl ConnRef {
    pub(crate) fn queue(&self) -> &AgentQueue {
        &self.0.queue
    }
}

impl UdpMux {
    /// Binds the media socket (see [`MediaSocket::bind`]). Nothing is read until
    /// [`UdpMux::start`]; sending works at once.
    pub fn bind(ip: IpAddr, port: u16) -> io::Result<Arc<UdpMux>> {
        Ok(Arc::new(UdpMux {
            socket: Arc::new(MediaSocket::bind(ip, port)?),
            io: OnceLock::new(),
            starting: Mutex::new(()),
            table: RwLock::default(),
            drops: Drops::default(),
            checks: Checks::default(),
            closed: watch::channel(false).0,
            epoch: Instant::now(),
        }))
    }

    /// Starts the reader task, once (later calls do nothing); it runs until
    /// [`UdpMux::shutdown`]. Must be called within a tokio runtime.
    pub fn start(self: &Arc<Self>) -> io::Result<()> {
        let _starting = self.starting.lock();
        if self.io.get().is_some() {
            return Ok(());
        }
        let io = Arc::new(AsyncSocket::new(Arc::clone(&self.socket))?);
        tokio::spawn(Arc::clone(self).read(Arc::clone(&io), self.closed.subscribe()));
        let _ = self.io.set(io);
        Ok(())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr()
    }

    /// Whether IPv6 peers can reach the socket (announce IPv6 candidates).
    pub fn has_ipv6(&self) -> bool {
        self.socket.has_ipv6()
    }

    /// Datagrams dropped so far, by reason.
    pub fn drops(&self) -> &Drops {
        &self.drops
    }

    /// The ICE checks (STUN binding requests) the agents received and sent so far.
    pub fn checks(&self) -> &Checks {
        &self.checks
    }

    /// Installs (or with `None` removes) the fast path of the connection whose local ufrag
    /// is `ufrag`. False if there is no such connection.
    pub fn set_fast_path(&self, ufrag: &str, handler: Option<Arc<dyn FastPath>>) -> bool {
        let table = self.table.read();
        let Some(conn) = table.conn(ufrag) else {
            return false;
        };
        conn.0.fast_path.store(handler.map(Arc::new));
        true
    }

    /// The path to `remote` (as ICE selected it). If no connection has validated it, a
    /// path of its own that lets the kernel pick the source address.
    pub fn path(&self, remote: SocketAddr) -> Arc<Path> {
        let remote = canonical(remote);
        self.table
            .read()
            .path_to(remote)
            .unwrap_or_else(|| Arc::new(Path::new(remote, None)))
    }

    /// Sends `datagram` along `path`, from the local address the remote uses. Never waits:
    /// a full send buffer is `WouldBlock`.
    pub fn send(&self, datagram: &[u8], path: &Path) -> io::Result<()> {
        self.socket.send(datagram, path.remote(), path.local())
    }

    /// Stops reading and closes every connection. The socket closes once the last
    /// handle on the mux is gone.
    pub fn shutdown(&self) {
        self.closed.send_replace(true);
        let conns: Vec<ConnRef> = {
            let mut table = self.table.write();
            let conns = table.conns();
            *table = Table::default();
            conns
        };
        for conn in conns {
            conn.0.queue.close();
        }
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    async fn read(self: Arc<Self>, io: Arc<AsyncSocket>, mut closed: watch::Receiver<bool>) {
        let mut batch = RecvBatch::new(READ_BATCH);
        loop {
            let read = tokio::select! {
                biased;
                _ = closed.changed() => return,
                read = io.recv(&mut batch) => read,
            };
            match read {
                Ok(()) => {
                    let read_at = Instant::now();
                    for (datagram, received) in batch.datagrams() {
                        self.dispatch(datagram, &received, read_at);
                    }
                }
                Err(e) => {
                    // Not a datagram's fault (those are counted, not failed): the socket
                    // itself. Back off instead of spinning on it.
                    tracing::warn!(error = %e, "media socket read failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// One datagram: to its connection's fast path, its ICE agent, or the drop counters.
    fn dispatch(&self, datagram: &mut [u8], received: &Received, read_at: Instant) {
        if datagram.len() >= MAX_DATAGRAM {
            return self.drops.count(DropReason::Truncated);
        }
        if stale(datagram, received, read_at) {
            return self.drops.count(DropReason::Stale);
        }
        let route = self
            .table
            .read()
            .route(datagram, received.from, received.local);
        match route {
            Route::Drop(reason) => self.drops.count(reason),
            Route::Check { conn, transaction } => {
                self.checks.received.fetch_add(1, Ordering::Relaxed);
                conn.0.requests.lock().record(transaction, received.local);
                self.to_agent(&conn, datagram, received.from);
            }
            Route::Known { conn, kind } => {
                if kind == Kind::Rtp {
                    if let Some(handler) = conn.0.fast_path.load().as_ref() {
                        if handler.receive(datagram, received) == Verdict::Consumed {
                            let since = received.at.saturating_duration_since(self.epoch);
                            let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX - 1);
                            conn.0.bypassed.store(nanos + 1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
                self.to_agent(&conn, datagram, received.from);
            }
        }
    }

    fn to_agent(&self, conn: &ConnRef, datagram: &[u8], from: SocketAddr) {
        if conn.0.queue.push(datagram, from) == Push::Full {
            self.drops.count(DropReason::Backlog);
        }
    }

    /// What a connection's agent sends (STUN responses, DTLS, webrtc-rs's RTCP): a
    /// response leaves from the address its request arrived at, anything else from the
    /// one the remote uses. Sending to a remote registers it: the agent only answers
    /// checks that passed its integrity check.
    pub(crate) async fn send_from(
        &self,
        conn: &ConnRef,
        datagram: &[u8],
        to: SocketAddr,
    ) -> Result<(), Error> {
        if conn.0.queue.is_closed() {
            return Err(Error::ErrUseClosedNetworkConn);
        }
        let to = canonical(to);
        if stun::parse(datagram).is_some_and(|m| m.class == Class::Request) {
            self.checks.sent.fetch_add(1, Ordering::Relaxed);
        }
        let check = stun::response_transaction(datagram)
            .and_then(|transaction| conn.0.requests.lock().take(&transaction));
        let known = self.table.read().path(conn, to);
        let path = match known {
            Some(path) => path,
            None => self.table.write().register(conn, to, check),
        };
        let from = check.or_else(|| path.local());
        match self.io.get() {
            Some(io) => io.send(datagram, to, from).await,
            None => self.socket.send(datagram, to, from),
        }
        .map_err(Error::from)
    }

    /// Forgets `conn` and wakes its readers with an error.
    pub(crate) fn remove(&self, conn: &ConnRef) {
        self.table.write().remove_conn(conn);
        conn.0.queue.close();
    }
}

/// Media (never STUN or DTLS) that waited in the socket longer than [`STALE_MEDIA`].
fn stale(datagram: &[u8], received: &Received, read_at: Instant) -> bool {
    stun::classify(datagram) == Kind::Rtp
        && read_at.saturating_duration_since(received.at) > STALE_MEDIA
}

#[async_trait]
impl UDPMux for UdpMux {
    async fn close(&self) -> Result<(), Error> {
        self.shutdown();
        Ok(())
    }

    async fn get_conn(self: Arc<Self>, ufrag: &str) -> Result<Arc<dyn Conn + Send + Sync>, Error> {
        if self.is_closed() {
            return Err(Error::ErrUseClosedNetworkConn);
        }
        self.start()?;
        let conn = {
            let mut table = self.table.write();
            match table.conn(ufrag) {
                Some(conn) => conn.clone(),
                None => {
                    let conn = ConnRef(Arc::new(ConnShared {
                        queue: AgentQueue::default(),
                        requests: Mutex::default(),
                        fast_path: ArcSwapOption::empty(),
                        bypassed: AtomicU64::new(0),
                    }));
                    table.add_conn(ufrag, conn.clone());
                    conn
                }
            }
        };
        let mux: Weak<UdpMux> = Arc::downgrade(&self);
        Ok(Arc::new(MuxConn::new(conn, mux, self.local_addr())))
    }

    /// The agent hears only the peer's checks once the fast path takes its media, and some
    /// clients check every 25 s (libnice): without this, a lite agent would fail them after
    /// `disconnected + failed` timeouts of silence while their media flows.
    fn last_bypassed_receive(&self, ufrag: &str) -> Option<SystemTime> {
        let nanos = self
            .table
            .read()
            .conn(ufrag)?
            .0
            .bypassed
            .load(Ordering::Relaxed);
        let at = self.epoch + Duration::from_nanos(nanos.checked_sub(1)?);
        SystemTime::now().checked_sub(Instant::now().saturating_duration_since(at))
    }

    async fn remove_conn_by_ufrag(&self, ufrag: &str) {
        let conn = self.table.read().conn(ufrag).cloned();
        if let Some(conn) = conn {
            self.remove(&conn);
        }
    }
}
