//! The hook that takes a connection's media off the socket without webrtc-rs.
use crate::socket::Received;

/// Installed on a connection (by its ufrag) once DTLS has given it keys; see
/// [`crate::UdpMux::set_fast_path`].
pub trait FastPath: Send + Sync {
    /// Offered every datagram in the SRTP/SRTCP range (first byte 128–191) that arrives
    /// from one of the connection's validated remote addresses, in arrival order, on the
    /// socket's reader task.
    ///
    /// `packet` is exactly the datagram, in the reader's buffer: decrypt it in place, and
    /// copy out only what must outlive the call. The reader waits for this to return, so
    /// it must not block, and should not allocate.
    ///
    /// Return [`Verdict::Pass`] only with `packet` unchanged: it then goes to webrtc-rs,
    /// as if no handler were installed.
    fn receive(&self, packet: &mut [u8], received: &Received) -> Verdict;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The handler took it.
    Consumed,
    /// Not for the handler: webrtc-rs gets it.
    Pass,
}
