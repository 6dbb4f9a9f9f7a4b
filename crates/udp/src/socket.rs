//! The media socket: one UDP socket that tells, for every datagram, who sent it, which of
//! our addresses it was sent to and when the kernel received it, and that sends from the
//! local address we choose.
//!
//! Bound to the unspecified IPv4 address (the default), it is one dual-stack IPv6 socket
//! when the host has IPv6, so IPv4 and IPv6 peers share the port. Addresses are handed
//! out canonical: an IPv4 peer is `V4` even though the kernel reports it IPv4-mapped.
//! `quinn-udp` does the system calls: `recvmmsg` with `IP_PKTINFO`/`IPV6_PKTINFO` and
//! `SO_TIMESTAMPNS`, and `sendmsg` with a source address.
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The largest datagram read whole; anything longer is truncated (and dropped by the mux).
/// The same as webrtc-ice's receive buffer.
pub const MAX_DATAGRAM: usize = 8192;

/// Asked of the kernel for the receive buffer; it caps this at `net.core.rmem_max`.
const RECV_BUFFER: usize = 4 << 20;

/// How one datagram arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub from: SocketAddr,
    /// Our address it was sent to: where replies to `from` must come from.
    pub local: IpAddr,
    /// When the kernel received it (the socket's timestamp), not when it was read.
    pub at: Instant,
}

pub struct MediaSocket {
    io: std::net::UdpSocket,
    state: UdpSocketState,
    /// An IPv6 socket (dual-stack when bound to `::`): IPv4 peers are addressed mapped.
    ipv6: bool,
    local: SocketAddr,
}

impl MediaSocket {
    /// Binds `ip:port` (port 0 picks one). `0.0.0.0` binds both families where the host
    /// has IPv6. The socket never blocks; [`AsyncSocket`] waits on it.
    pub fn bind(ip: IpAddr, port: u16) -> io::Result<MediaSocket> {
        let socket = match ip {
            IpAddr::V4(v4) if v4.is_unspecified() => {
                dual_stack(port).or_else(|_| plain(SocketAddr::new(ip, port)))?
            }
            IpAddr::V6(v6) if v6.is_unspecified() => dual_stack(port)?,
            _ => plain(SocketAddr::new(ip, port))?,
        };
        let ipv6 = socket.domain()? == Domain::IPV6;
        // A bigger buffer rides out a burst (a keyframe from every publisher at once)
        // while the reader is busy; the kernel may grant less.
        let _ = socket.set_recv_buffer_size(RECV_BUFFER);
        socket.set_nonblocking(true)?;
        let io: std::net::UdpSocket = socket.into();
        let state = UdpSocketState::new(UdpSockRef::from(&io))?;
        disable_gro(&io);
        let local = canonical(io.local_addr()?);
        Ok(MediaSocket {
            io,
            state,
            ipv6,
            local,
        })
    }

    /// The bound address (`[::]:port` for a dual-stack socket).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether IPv6 peers can reach this socket.
    pub fn has_ipv6(&self) -> bool {
        self.ipv6
    }

    /// Sends `packet` to `to` from our address `from` (`None`: the kernel picks). Never
    /// waits: a full send buffer is `WouldBlock`.
    pub fn send(&self, packet: &[u8], to: SocketAddr, from: Option<IpAddr>) -> io::Result<()> {
        let destination = match to {
            SocketAddr::V4(v4) if self.ipv6 => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            _ => to,
        };
        let transmit = Transmit {
            destination,
            ecn: None,
            contents: packet,
            segment_size: None,
            // The unspecified address means "any": let the kernel pick.
            src_ip: from.filter(|ip| !ip.is_unspecified()),
        };
        self.state.try_send(UdpSockRef::from(&self.io), &transmit)
    }

    /// Reads the datagrams waiting, as many as `batch` holds; `WouldBlock` if none.
    pub fn try_recv(&self, batch: &mut RecvBatch) -> io::Result<()> {
        let mut slots = batch.storage.chunks_exact_mut(MAX_DATAGRAM);
        let mut slices: [IoSliceMut<'_>; MAX_BATCH] =
            std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
        let n = batch.meta.len();
        let count = self.state.recv(
            UdpSockRef::from(&self.io),
            &mut slices[..n],
            &mut batch.meta,
        )?;
        batch.arrived(count, self.local.ip());
        Ok(())
    }
}

/// The media socket registered with tokio, to wait until it can be read.
pub struct AsyncSocket {
    socket: Arc<MediaSocket>,
    /// A duplicate of the socket's descriptor (the same socket), registered for
    /// readability only. Registered for writability too, the runtime's driver would be
    /// woken each time the kernel frees a datagram we sent: once per copy the fast path
    /// sends.
    readable: AsyncFd<std::net::UdpSocket>,
}

/// How often, and how far apart, [`AsyncSocket::send`] retries a full send buffer.
const SEND_RETRIES: u32 = 20;
const SEND_RETRY: Duration = Duration::from_millis(1);

impl AsyncSocket {
    /// Must be called within a tokio runtime.
    pub fn new(socket: Arc<MediaSocket>) -> io::Result<AsyncSocket> {
        let duplicate = socket.io.try_clone()?;
        // SAFETY: `duplicate` owns its descriptor, and nothing replaces or closes it while
        // the `AsyncFd` holds it (it is closed when the `AsyncFd` is dropped).
        let readable = unsafe { AsyncFd::register_with_interest(duplicate, Interest::READABLE)? };
        Ok(AsyncSocket { socket, readable })
    }

    /// Waits for datagrams and reads as many as `batch` holds (at least one).
    pub async fn recv(&self, batch: &mut RecvBatch) -> io::Result<()> {
        loop {
            let mut ready = self.readable.readable().await?;
            if let Ok(read) = ready.try_io(|_| self.socket.try_recv(batch)) {
                return read;
            }
        }
    }

    /// Like [`MediaSocket::send`], but a full send buffer is tried again, a millisecond
    /// later, up to [`SEND_RETRIES`] times (what the ICE agent and DTLS send is rare and
    /// small; waiting for writability would need the registration above to include it).
    pub async fn send(
        &self,
        packet: &[u8],
        to: SocketAddr,
        from: Option<IpAddr>,
    ) -> io::Result<()> {
        let mut tries = 0;
        loop {
            match self.socket.send(packet, to, from) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries < SEND_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(SEND_RETRY).await;
                }
                sent => return sent,
            }
        }
    }
}

/// Most datagrams one `recvmmsg` reads (quinn-udp's limit).
pub const MAX_BATCH: usize = 32;

/// Buffers for one batch read, reused for every read: the reader allocates nothing per
/// datagram.
pub struct RecvBatch {
    storage: Vec<u8>,
    meta: Vec<RecvMeta>,
    received: Vec<(usize, Received)>,
}

impl RecvBatch {
    /// Room for `slots` datagrams per read (1 to [`MAX_BATCH`]).
    pub fn new(slots: usize) -> RecvBatch {
        let slots = slots.clamp(1, MAX_BATCH);
        RecvBatch {
            storage: vec![0; slots * MAX_DATAGRAM],
            meta: vec![RecvMeta::default(); slots],
            received: Vec::with_capacity(slots),
        }
    }

    /// The datagrams of the last read, each in its own buffer (mutable, so it can be
    /// decrypted in place) and how it arrived. A datagram of [`MAX_DATAGRAM`] bytes was
    /// probably truncated.
    pub fn datagrams(&mut self) -> impl Iterator<Item = (&mut [u8], Received)> {
        self.storage
            .chunks_exact_mut(MAX_DATAGRAM)
            .zip(&self.received)
            .map(|(slot, (len, received))| (&mut slot[..*len], *received))
    }

    fn arrived(&mut self, count: usize, bound: IpAddr) {
        // The kernel stamps with the wall clock; one reading of both clocks per batch
        // turns the stamps into `Instant`s.
        let now = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.received.clear();
        for meta in &self.meta[..count] {
            let age = meta
                .timestamp
                .map_or(Duration::ZERO, |stamp| wall.saturating_sub(stamp));
            self.received.push((
                meta.len.min(MAX_DATAGRAM),
                Received {
                    from: canonical(meta.addr),
                    local: meta.dst_ip.map_or(bound, |ip| ip.to_canonical()),
                    at: now.checked_sub(age).unwrap_or(now),
                },
            ));
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address turned back into IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

fn dual_stack(port: u16) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(false)?;
    socket.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
    Ok(socket)
}

fn plain(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// quinn-udp turns on UDP generic receive offload, which merges same-sized datagrams of a
/// flow into one buffer of up to 64 of them; ours hold one datagram each, so it goes off.
fn disable_gro(io: &std::net::UdpSocket) {
    let off: libc::c_int = 0;
    // SAFETY: a valid socket descriptor and a pointer to an int of the given size.
    unsafe {
        libc::setsockopt(
            io.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
