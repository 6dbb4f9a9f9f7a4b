//! Shared set-up for the integration tests: a server in-process on ephemeral loopback ports,
//! and bots that join it.
#![allow(dead_code)]

pub mod browser;
pub mod raw;

use std::time::Duration;

use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::{Bot, BotConfig, RemoteTrackStats};
use roomcast_protocol::TrackKind;

pub const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn start_server() -> RunningServer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    RunningServer::start(&ServeArgs::local_ephemeral())
        .await
        .expect("server starts")
}

pub async fn join(server: &RunningServer, room: &str, name: &str) -> Bot {
    Bot::join(BotConfig::new(server.ws_url(), room, name))
        .await
        .unwrap_or_else(|e| panic!("{name} joins {room}: {e}"))
}

pub async fn join_with(config: BotConfig) -> Bot {
    let name = config.name.clone();
    Bot::join(config)
        .await
        .unwrap_or_else(|e| panic!("{name} joins: {e}"))
}

/// A received audio track of `publisher` with packets flowing.
pub fn has_audio_from(tracks: &[RemoteTrackStats], publisher: &str, min_packets: u64) -> bool {
    tracks.iter().any(|t| {
        t.publisher_id == publisher
            && t.kind == TrackKind::Audio
            && !t.ended
            && t.packets >= min_packets
    })
}

/// A received VP8 video track of `publisher` that has shown a keyframe of the given size.
pub fn has_video_from(
    tracks: &[RemoteTrackStats],
    publisher: &str,
    min_packets: u64,
    width: u16,
    height: u16,
) -> bool {
    tracks.iter().any(|t| {
        t.publisher_id == publisher
            && t.kind == TrackKind::Video
            && !t.ended
            && t.packets >= min_packets
            && t.keyframes > 0
            && t.vp8_width == Some(width)
            && t.vp8_height == Some(height)
    })
}

/// Total packets received from `publisher` so far.
pub fn packets_from(tracks: &[RemoteTrackStats], publisher: &str) -> u64 {
    tracks
        .iter()
        .filter(|t| t.publisher_id == publisher)
        .map(|t| t.packets)
        .sum()
}

/// Waits until `bot` has received more packets from each of `publishers` than it had: media
/// keeps flowing.
pub async fn assert_media_keeps_flowing(bot: &Bot, publishers: &[&str]) {
    let before = bot.remote_tracks();
    let baseline: Vec<u64> = publishers
        .iter()
        .map(|p| packets_from(&before, p))
        .collect();
    bot.wait_for_media(
        |tracks| {
            publishers
                .iter()
                .zip(&baseline)
                .all(|(p, b)| packets_from(tracks, p) > b + 20)
        },
        MEDIA_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("media to {} stopped: {e}", bot.participant_id()));
}
