//! The WebSocket side: one session per connection, negotiation decisions, SDP reading.
pub mod negotiator;
pub mod outbox;
pub mod sdp_media;
pub mod session;
pub mod simulcast_rids;
