//! How long a simulcast layer switch takes: from a subscriber's `set_quality` to the first
//! keyframe of the new layer arriving at it. A release server runs in this process on
//! loopback with a bot publishing three VP8 layers (320, 640, 1280 wide) and a bot
//! subscribing; the subscriber cycles low → high → medium → ... and every switch is timed
//! from the keyframe headers it receives.
//!
//!   cargo bench --bench switch [-- --quick] [--json PATH]
use std::time::{Duration, Instant};

use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::{Bot, BotConfig, RemoteTrackStats, VideoCodec};
use roomcast_protocol::{ClientMessage, Quality, TrackKind};

const WAIT: Duration = Duration::from_secs(20);

fn video(tracks: &[RemoteTrackStats]) -> Option<&RemoteTrackStats> {
    tracks
        .iter()
        .find(|t| t.kind == TrackKind::Video && !t.ended)
}

async fn first_keyframe_of(bot: &Bot, width: u16, since: Instant) -> Option<Instant> {
    let tracks = bot
        .wait_for_media(
            |t| {
                video(t).is_some_and(|v| {
                    v.keyframe_sizes
                        .iter()
                        .any(|k| k.at >= since && k.width == width)
                })
            },
            WAIT,
        )
        .await
        .ok()?;
    video(&tracks)?
        .keyframe_sizes
        .iter()
        .find(|k| k.at >= since && k.width == width)
        .map(|k| k.at)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let json = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1).cloned());
    let switches = if quick { 12 } else { 60 };

    let server = RunningServer::start(&ServeArgs::local_ephemeral())
        .await
        .expect("server starts");
    let url = server.ws_url();
    let viewer = Bot::join(BotConfig::new(&url, "switch", "viewer").with_publish(false, None))
        .await
        .expect("viewer joins");
    let _publisher = Bot::join(
        BotConfig::new(&url, "switch", "publisher")
            .with_publish(false, Some(VideoCodec::Vp8))
            .with_simulcast(true),
    )
    .await
    .expect("publisher joins");
    let start = Instant::now() - Duration::from_secs(60);
    first_keyframe_of(&viewer, 1280, start)
        .await
        .expect("the full layer arrives");
    let track_id = video(&viewer.remote_tracks())
        .expect("video")
        .track_id
        .clone();

    let plan = [
        (Quality::Low, 320u16),
        (Quality::High, 1280),
        (Quality::Medium, 640),
        (Quality::Low, 320),
        (Quality::Medium, 640),
        (Quality::High, 1280),
    ];
    let mut took = Vec::new();
    for i in 0..switches {
        let (quality, width) = plan[i % plan.len()];
        viewer
            .send(&ClientMessage::SetQuality {
                track_id: track_id.clone(),
                quality,
            })
            .await
            .expect("set_quality sent");
        let asked = Instant::now();
        match first_keyframe_of(&viewer, width, asked).await {
            Some(at) => took.push(at.saturating_duration_since(asked)),
            None => eprintln!("switch {i} to {quality:?} never arrived"),
        }
        // Let the keyframe throttle (300 ms) reset, as a user's clicks would.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let gaps = video(&viewer.remote_tracks()).map_or(0, |v| v.seq_gaps);
    took.sort();
    let (p50, p95, max) = (
        percentile(&took, 0.5),
        percentile(&took, 0.95),
        *took.last().unwrap_or(&Duration::ZERO),
    );
    println!(
        "layer switch, set_quality → first keyframe of the new layer ({} of {switches} switches): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms; sequence gaps at the subscriber: {gaps}",
        took.len(),
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
    );
    if let Some(path) = json {
        let v = serde_json::json!({
            "switches": switches,
            "completed": took.len(),
            "p50_ms": p50.as_secs_f64() * 1e3,
            "p95_ms": p95.as_secs_f64() * 1e3,
            "max_ms": max.as_secs_f64() * 1e3,
            "seq_gaps": gaps,
        });
        std::fs::write(&path, v.to_string()).expect("write JSON");
    }
}
