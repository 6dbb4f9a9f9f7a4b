//! roomcast's Selective Forwarding Unit: rooms of participants, each with one
//! PeerConnection, whose published tracks are forwarded unchanged to everyone else.
//!
//! Reading order for one packet: [`ingress`] (taken off the media socket, decrypted) →
//! [`media::published_track`] (the receiving half: layers, keyframes, cache) →
//! [`media::fan_out`] (to every subscriber) → [`media::down_track`] (rewrite for one
//! subscriber) → [`egress`] (number, encrypt, send, record) → [`ingress::rtcp`] (the
//! subscriber's NACK/PLI and feedback coming back). The media port under them is
//! `roomcast_udp`.
//!
//! Reading order for one client message: [`signaling::session`] (the session's task) →
//! [`signaling::session::core`] (its decisions, without I/O) → [`signaling::session::core::cmd`]
//! (one handler per message kind) → `signaling/session/shell.rs` (applies the core's commands
//! to the PeerConnection). A change to a room: [`room`] (one method per action) →
//! [`room::state`] (the rules, returning [`room::effects`]) → each member's [`room::Mailbox`].

pub mod active_speakers;
pub mod auth;
pub mod bandwidth;
pub mod egress;
pub mod error;
pub mod ingress;
pub mod media;
pub mod peer;
pub mod rate;
pub mod room;
pub mod sfu;
pub mod signaling;
pub mod srtp;
pub mod stats;
pub mod ticks;
pub mod transport_feedback;
pub mod turn;
pub mod untrusted;

pub use error::SfuError;
pub use peer::MediaConfig;
pub use sfu::{RoomStats, ServerStats, Sfu, SfuConfig};
pub use signaling::session::{run_session, Client, Inbound, JoinGate, Mode, Sessions};
