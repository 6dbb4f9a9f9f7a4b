//! Shared set-up for the integration tests: a server in-process on ephemeral loopback ports,
//! and bots that join it.
#![allow(dead_code)]

pub mod binary;
pub mod browser;
pub mod http;
pub mod raw;
pub mod safari;
pub mod server_log;
pub mod shaped_client;

use std::time::Duration;

use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::{Bot, BotConfig, MessageCursor, RemoteTrackStats};
use roomcast_protocol::{Role, ServerMessage, TrackKind};

pub const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Logs to the test's output, filtered by `RUST_LOG` (warnings by default), and to the
/// server log a failing test shows ([`server_log`]), filtered by `RUST_LOG` or
/// [`server_log::diagnosis_filter`]. Call it on the test's thread before starting a server.
pub fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter =
        |default: &str| EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let output = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(filter("warn"));
    let kept = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(|| server_log::RingWriter)
        .with_filter(filter(&server_log::diagnosis_filter()));
    let _ = tracing_subscriber::registry()
        .with(output)
        .with(kept)
        .try_init();
    server_log::show_on_panic();
}

pub async fn start_server() -> RunningServer {
    start_with(ServeArgs::local_ephemeral()).await
}

pub async fn start_with(args: ServeArgs) -> RunningServer {
    init_logs();
    RunningServer::start(&args).await.expect("server starts")
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

/// A bot joining `room` with `role`, publishing audio and video.
pub fn config(server: &RunningServer, room: &str, name: &str, role: Role) -> BotConfig {
    BotConfig::new(server.ws_url(), room, name).with_role(role)
}

/// A bot joining `room` with `role` that publishes nothing.
pub fn viewer(server: &RunningServer, room: &str, name: &str, role: Role) -> BotConfig {
    config(server, room, name, role).with_publish(false, None)
}

/// Packets `bot` received from `publisher`'s tracks of `kind`.
pub fn packets_of(bot: &Bot, publisher: &str, kind: TrackKind) -> u64 {
    bot.remote_tracks()
        .iter()
        .filter(|t| t.publisher_id == publisher && t.kind == kind)
        .map(|t| t.packets)
        .sum()
}

/// Waits until `bot` has received more than `above` packets from `publisher`'s tracks of
/// `kind`; `what` names the wait when it times out.
pub async fn wait_packets_above(
    bot: &Bot,
    publisher: &str,
    kind: TrackKind,
    above: u64,
    what: &str,
) {
    bot.wait_for_media(
        |t| {
            t.iter()
                .filter(|x| x.publisher_id == publisher && x.kind == kind)
                .map(|x| x.packets)
                .sum::<u64>()
                > above
        },
        MEDIA_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Waits until `bot` has received `n` more video packets from `publisher`: an observation
/// window measured in media, not in sleeps.
pub async fn video_window(bot: &Bot, publisher: &str, n: u64) {
    let start = packets_of(bot, publisher, TrackKind::Video);
    wait_packets_above(
        bot,
        publisher,
        TrackKind::Video,
        start + n - 1,
        "video keeps flowing",
    )
    .await;
}

/// Waits until `publisher` has sent `n` more frames of its track of `kind`: an observation
/// window measured in what it sends, for when nothing arrives anywhere.
pub async fn sent_window(publisher: &Bot, kind: TrackKind, n: u64) {
    let frames = |tracks: &[roomcast_bots::PublishedTrackStats]| -> u64 {
        tracks
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.frames_sent)
            .sum()
    };
    let start = frames(&publisher.published_tracks());
    publisher
        .wait_for_published(|t| frames(t) >= start + n, MEDIA_TIMEOUT)
        .await
        .expect("the publisher keeps sending");
}

/// Waits until `bot` is told, after `from`, that `publisher`'s `track` is `muted` (or not).
pub async fn wait_muted(bot: &Bot, from: MessageCursor, publisher: &str, track: &str, muted: bool) {
    bot.wait_for_message_after(
        from,
        |m| {
            matches!(m, ServerMessage::TrackMuted { participant_id, track_id, muted: m }
                if participant_id == publisher && track_id == track && *m == muted)
        },
        MESSAGE_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{} gets track_muted {muted}: {e}", bot.participant_id()));
}
