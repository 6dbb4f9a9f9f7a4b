//! Headless roomcast participants for integration and load tests.
//!
//! A [`Bot`] speaks the signaling contract (`docs/protocol.md`, version 1) over a WebSocket
//! and runs one webrtc-rs PeerConnection. It publishes encoded loops from `media/` (Opus
//! with audio levels, VP8 or H.264, optionally as three simulcast layers that follow the
//! server's `publisher_layers`) in real time and counts what it receives per remote track:
//! packets, sequence gaps, keyframes and their frame size (VP8 keyframe header, H.264 SPS).
//!
//! webrtc-rs cannot roll back a local offer, so a bot offers only under the contract's
//! negotiation lock and answers server offers at any other time.
//!
//! ```no_run
//! # async fn demo() -> Result<(), roomcast_bots::BotError> {
//! use std::time::Duration;
//! use roomcast_bots::{Bot, BotConfig};
//!
//! let alice = Bot::join(BotConfig::new("ws://127.0.0.1:8080/ws", "demo", "alice")).await?;
//! let bob = Bot::join(BotConfig::new("ws://127.0.0.1:8080/ws", "demo", "bob")).await?;
//! bob.wait_for_media(
//!     |tracks| tracks.iter().filter(|t| t.publisher_id == alice.participant_id() && t.packets > 50).count() == 2,
//!     Duration::from_secs(10),
//! )
//! .await?;
//! alice.leave().await?;
//! bob.leave().await?;
//! # Ok(())
//! # }
//! ```

mod arrival;
mod bot;
mod config;
mod error;
mod h264;
mod layers;
mod load;
mod media_loop;
mod message_log;
mod negotiation;
mod opus;
mod peer_connection;
mod picture_ids;
mod publisher;
mod report;
mod roster;
mod sequence_tracker;
mod session;
mod signaling;
mod socket_arrivals;
mod subscriber;
mod subscriber_stats;
mod swarm;
mod transport_cc;
pub mod whep;

pub use arrival::FREEZE_GAP;
pub use bot::Bot;
pub use config::{BotConfig, TrackSink, VideoCodec};
pub use error::BotError;
pub use load::CpuUse;
pub use message_log::{CloseInfo, MessageCursor};
pub use publisher::{LayerStats, PublishedTrackStats};
pub use report::{
    expected_tracks_in_room, loss_percent, percentiles, BotFailure, BotPlan, BotRole, ChurnResult,
    JoinFailure, MissingTrack, Percentiles, Report, Summary, SwarmSnapshot, TrackRow,
};
pub use roster::ListedTrack;
pub use subscriber_stats::{KeyframeSize, RemoteTrackStats, KEYFRAME_SIZES_KEPT};
pub use swarm::{
    classify, probe, ExpectedTracks, LeaveResult, Progress, Swarm, SwarmConfig, TokenMinter,
    DEFAULT_MAX_CONCURRENT_JOINS,
};
pub use whep::WhepViewer;
