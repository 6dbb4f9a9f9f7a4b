//! roomcast's media port: one UDP socket shared by every peer connection's ICE, DTLS and
//! SRTP.
//!
//! - [`MediaSocket`] reads datagrams in batches with their source, the local address
//!   they were sent to and their arrival time, and sends from a chosen local address.
//! - [`UdpMux`] routes each datagram (the decisions live in [`table`], without I/O) and
//!   is webrtc-ice's `UDPMux`: ICE and DTLS stay with webrtc-rs, and a connection's media
//!   can be taken off the socket by its [`FastPath`] before webrtc-rs sees it.
//!
//! Replies leave from the address the peer sent to. A host with several addresses
//! announces a candidate for each; answering a check from another address than the one
//! it was sent to makes the peer discard the answer ("transaction source and
//! destination does not match"), so the connection never comes up.
pub mod drops;
pub mod fast_path;
pub mod socket;
pub mod stun;
pub mod table;

mod conn;
mod mux;
mod queue;

pub use drops::{DropReason, Drops};
pub use fast_path::{FastPath, Verdict};
pub use mux::{Checks, UdpMux, STALE_MEDIA};
pub use socket::{AsyncSocket, MediaSocket, Received, RecvBatch};
pub use table::Path;
