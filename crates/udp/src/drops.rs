//! Datagrams the mux dropped, counted by reason. Junk costs a counter increment: it is
//! never logged one by one, so a flood cannot fill the logs.
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The first byte is none of STUN, DTLS, SRTP/SRTCP.
    NotWebrtc,
    /// Looked like STUN but the header or an attribute does not fit the datagram.
    MalformedStun,
    /// A STUN request for a ufrag no connection has (or with no USERNAME).
    UnknownUfrag,
    /// Not a STUN request, from an address no connection has validated.
    UnknownRemote,
    /// Bigger than the receive buffer (no WebRTC peer sends that).
    Truncated,
    /// webrtc-rs did not keep up with this connection's STUN/DTLS/media: its queue was full.
    Backlog,
    /// SRTP or SRTCP that waited in the socket longer than [`crate::STALE_MEDIA`]: the
    /// reader fell behind.
    Stale,
}

impl DropReason {
    pub const ALL: [DropReason; 7] = [
        DropReason::NotWebrtc,
        DropReason::MalformedStun,
        DropReason::UnknownUfrag,
        DropReason::UnknownRemote,
        DropReason::Truncated,
        DropReason::Backlog,
        DropReason::Stale,
    ];

    /// The `reason` label of `roomcast_udp_dropped_total`.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::NotWebrtc => "not_webrtc",
            DropReason::MalformedStun => "malformed_stun",
            DropReason::UnknownUfrag => "unknown_ufrag",
            DropReason::UnknownRemote => "unknown_remote",
            DropReason::Truncated => "truncated",
            DropReason::Backlog => "backlog",
            DropReason::Stale => "stale",
        }
    }
}

#[derive(Debug, Default)]
pub struct Drops([AtomicU64; DropReason::ALL.len()]);

impl Drops {
    pub fn count(&self, reason: DropReason) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every reason with its total so far.
    pub fn totals(&self) -> [(DropReason, u64); DropReason::ALL.len()] {
        DropReason::ALL.map(|r| (r, self.0[r as usize].load(Ordering::Relaxed)))
    }

    pub fn total(&self) -> u64 {
        self.totals().iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_its_own_counter() {
        let drops = Drops::default();
        drops.count(DropReason::UnknownRemote);
        drops.count(DropReason::UnknownRemote);
        drops.count(DropReason::Backlog);
        let totals = drops.totals();
        for (reason, n) in totals {
            let expected = match reason {
                DropReason::UnknownRemote => 2,
                DropReason::Backlog => 1,
                _ => 0,
            };
            assert_eq!(n, expected, "{}", reason.label());
        }
        assert_eq!(drops.total(), 3);
    }
}
