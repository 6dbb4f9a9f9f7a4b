//! First video: how long a new subscriber waits for a publisher's picture. One publisher
//! sends audio and video (simulcast or not) in a room; subscribers join one at a time, at
//! random points of the publisher's keyframe cycle, and each measures from the start of its
//! join to the first packet of the first keyframe it receives (a picture it can decode),
//! and to its first audio packet (what joining itself costs, ICE and DTLS included). Each
//! leaves before the next joins.
use std::time::{Duration, Instant};

use roomcast_bots::{Bot, BotConfig, VideoCodec};
use roomcast_protocol::TrackKind;
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub struct FirstVideo {
    pub simulcast: bool,
    pub subscribers: usize,
    /// Join start → first keyframe packet, in ms.
    pub video_ms: Vec<f64>,
    /// Join start → first audio packet, in ms.
    pub audio_ms: Vec<f64>,
    /// Subscribers that saw no keyframe within the timeout.
    pub timed_out: usize,
    /// Keyframe requests (PLI/FIR) the publisher received over the run, and keyframes it
    /// sent (periodic ones included).
    pub publisher_keyframe_requests: u64,
    pub publisher_keyframes: u64,
    pub run_secs: f64,
}

impl FirstVideo {
    pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(i).copied()
    }

    pub fn print(&self) {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
        println!(
            "first video ({}): {} subscribers, p50 {}, p95 {}, max {}; first audio p50 {}; {} timed out; publisher got {} keyframe requests and sent {} keyframes in {:.0} s",
            if self.simulcast { "simulcast" } else { "no simulcast" },
            self.subscribers,
            ms(Self::percentile(&self.video_ms, 0.5)),
            ms(Self::percentile(&self.video_ms, 0.95)),
            ms(Self::percentile(&self.video_ms, 1.0)),
            ms(Self::percentile(&self.audio_ms, 0.5)),
            self.timed_out,
            self.publisher_keyframe_requests,
            self.publisher_keyframes,
            self.run_secs,
        );
    }
}

/// Runs the scenario against the server at `url` in room `room`.
pub async fn run(url: &str, room: &str, simulcast: bool, subscribers: usize) -> FirstVideo {
    let started = Instant::now();
    let publisher = Bot::join(
        BotConfig::new(url, room, "publisher")
            .with_publish(true, Some(VideoCodec::Vp8))
            .with_simulcast(simulcast),
    )
    .await
    .expect("the publisher joins");
    // Warm: every layer has sent a keyframe, so what follows is a steady publisher.
    publisher
        .wait_for_published(
            |tracks| {
                tracks
                    .iter()
                    .any(|t| t.kind == TrackKind::Video && t.keyframes_sent >= 2)
            },
            Duration::from_secs(30),
        )
        .await
        .expect("the publisher sends video");
    let publisher_id = publisher.participant_id().to_owned();
    let mut outcome = FirstVideo {
        simulcast,
        subscribers,
        ..Default::default()
    };
    for i in 0..subscribers {
        // A random point of the publisher's keyframe cycle (its loops have one keyframe
        // every 2 s or so).
        tokio::time::sleep(Duration::from_millis(rand_below(2000))).await;
        let join_started = Instant::now();
        let bot = match Bot::join(
            BotConfig::new(url, room, format!("viewer-{i}")).with_publish(false, None),
        )
        .await
        {
            Ok(bot) => bot,
            Err(e) => {
                eprintln!("[first video] viewer-{i} cannot join: {e}");
                outcome.timed_out += 1;
                continue;
            }
        };
        let waited = bot
            .wait_for_media(
                |tracks| {
                    tracks.iter().any(|t| {
                        t.publisher_id == publisher_id
                            && t.kind == TrackKind::Video
                            && !t.keyframe_sizes.is_empty()
                    })
                },
                Duration::from_secs(20),
            )
            .await;
        let tracks = bot.remote_tracks();
        let since_join =
            |at: Instant| at.saturating_duration_since(join_started).as_secs_f64() * 1e3;
        match waited {
            Ok(_) => {
                let keyframe = tracks
                    .iter()
                    .filter(|t| t.publisher_id == publisher_id && t.kind == TrackKind::Video)
                    .filter_map(|t| t.keyframe_sizes.first().map(|k| k.at))
                    .min();
                outcome.video_ms.extend(keyframe.map(since_join));
            }
            Err(_) => outcome.timed_out += 1,
        }
        let audio = tracks
            .iter()
            .filter(|t| t.publisher_id == publisher_id && t.kind == TrackKind::Audio)
            .filter_map(|t| t.first_packet_at)
            .min();
        outcome.audio_ms.extend(audio.map(since_join));
        let _ = bot.leave().await;
    }
    let published = publisher.published_tracks();
    for t in published.iter().filter(|t| t.kind == TrackKind::Video) {
        outcome.publisher_keyframe_requests += t.keyframe_requests;
        outcome.publisher_keyframes += t.keyframes_sent;
    }
    let _ = publisher.leave().await;
    outcome.run_secs = started.elapsed().as_secs_f64();
    outcome
}

/// A pseudo-random number below `n` (the bench needs spread, not quality).
fn rand_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos.wrapping_mul(2_654_435_761)) % n
}
