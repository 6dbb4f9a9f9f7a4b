//! Figures from sampled series: what Chromium's `getStats`, the bots and the server's admin
//! API said over a window of time. Times are wall-clock ms ([`crate::clock::now_ms`]).
use roomcast_protocol::TrackKind;

use crate::bots::{BotSample, BotTrack};
use crate::chromium::{Inbound, PageSample};
use crate::server::{ReceivedTrackSample, RoomSample};

/// A bot's video gap longer than this is a freeze (as in `roomcast bots`).
pub const BOT_FREEZE_MS: f64 = 500.0;

/// The last sample at or before `t` (the first one if none is that early).
pub fn at<T>(samples: &[T], t: f64, time: impl Fn(&T) -> f64) -> Option<&T> {
    let i = samples.partition_point(|s| time(s) <= t);
    samples.get(i.saturating_sub(1))
}

/// The first time in `[from, to]` when `holds` is true of a sample.
pub fn first_when<T>(
    samples: &[T],
    from: f64,
    to: f64,
    time: impl Fn(&T) -> f64,
    holds: impl Fn(&T) -> bool,
) -> Option<f64> {
    samples
        .iter()
        .filter(|s| time(s) >= from && time(s) <= to)
        .find(|s| holds(s))
        .map(time)
}

/// The first time in `[from, to]` from which `holds` stays true to `to`.
pub fn settled_when<T>(
    samples: &[T],
    from: f64,
    to: f64,
    time: impl Fn(&T) -> f64,
    holds: impl Fn(&T) -> bool,
) -> Option<f64> {
    let mut since = None;
    for s in samples.iter().filter(|s| time(s) >= from && time(s) <= to) {
        if holds(s) {
            since = since.or(Some(time(s)));
        } else {
            since = None;
        }
    }
    since
}

// ---- Chromium ----

/// The page's video stream from `publisher` (or its only video stream).
pub fn page_video<'a>(s: &'a PageSample, publisher: Option<&str>) -> Option<&'a Inbound> {
    let mut videos = s.inbound.iter().filter(|r| r.kind == "video");
    match publisher {
        Some(p) => videos.find(|r| r.participant_id.as_deref() == Some(p)),
        None => videos.max_by(|a, b| a.bytes_received.total_cmp(&b.bytes_received)),
    }
}

fn page_sum(s: &PageSample, kind: &str, f: impl Fn(&Inbound) -> f64) -> f64 {
    s.inbound
        .iter()
        .filter(|r| kind.is_empty() || r.kind == kind)
        .map(f)
        .sum()
}

/// The change of `value` over `[a, b]`.
pub fn page_delta(
    samples: &[PageSample],
    a: f64,
    b: f64,
    value: impl Fn(&PageSample) -> f64,
) -> f64 {
    match (at(samples, a, |s| s.t), at(samples, b, |s| s.t)) {
        (Some(x), Some(y)) => value(y) - value(x),
        _ => 0.0,
    }
}

/// Total freeze duration over the window's length (Chromium's `totalFreezesDuration`).
pub fn page_freeze_ratio(samples: &[PageSample], a: f64, b: f64, publisher: Option<&str>) -> f64 {
    let frozen = page_delta(samples, a, b, |s| {
        page_video(s, publisher).map_or(0.0, |r| r.total_freezes_duration)
    });
    frozen / ((b - a) / 1000.0)
}

/// Packets lost for good (after retransmission) over those expected, of `kind` (`""` is
/// every kind).
pub fn page_loss(samples: &[PageSample], a: f64, b: f64, kind: &str) -> f64 {
    let lost = page_delta(samples, a, b, |s| page_sum(s, kind, |r| r.packets_lost));
    let received = page_delta(samples, a, b, |s| page_sum(s, kind, |r| r.packets_received));
    ratio(lost, lost + received)
}

/// Concealed audio samples over those received.
pub fn page_concealment(samples: &[PageSample], a: f64, b: f64) -> f64 {
    let concealed = page_delta(samples, a, b, |s| {
        page_sum(s, "audio", |r| r.concealed_samples)
    });
    let total = page_delta(samples, a, b, |s| {
        page_sum(s, "audio", |r| r.total_samples_received)
    });
    ratio(concealed, total)
}

/// The longest time `framesDecoded` of `publisher`'s video stood still within `[a, b]`, ms.
pub fn page_longest_stall(samples: &[PageSample], a: f64, b: f64, publisher: Option<&str>) -> f64 {
    let mut longest: f64 = 0.0;
    let mut last_change: Option<(f64, f64)> = None;
    for s in samples.iter().filter(|s| s.t >= a && s.t <= b) {
        let frames = page_video(s, publisher).map_or(0.0, |r| r.frames_decoded);
        match last_change {
            Some((t, f)) if f == frames => longest = longest.max(s.t - t),
            _ => last_change = Some((s.t, frames)),
        }
    }
    longest
}

/// Video frozen intervals of the page, from increases of `totalFreezesDuration`.
pub fn page_freezes(samples: &[PageSample], publisher: Option<&str>) -> Vec<(f64, f64)> {
    samples
        .windows(2)
        .filter_map(|w| {
            let before = page_video(&w[0], publisher)?.total_freezes_duration;
            let after = page_video(&w[1], publisher)?.total_freezes_duration;
            (after > before).then(|| (w[1].t - (after - before) * 1000.0, w[1].t))
        })
        .collect()
}

/// Received kbit/s of the page, between consecutive samples.
pub fn page_received_kbps(samples: &[PageSample]) -> Vec<(f64, f64)> {
    samples
        .windows(2)
        .filter(|w| w[1].t > w[0].t)
        .map(|w| {
            let bytes = |s: &PageSample| s.inbound.iter().map(|r| r.bytes_received).sum::<f64>();
            let kbps = (bytes(&w[1]) - bytes(&w[0])).max(0.0) * 8.0 / (w[1].t - w[0].t);
            (w[1].t, kbps)
        })
        .collect()
}

// ---- bots ----

/// The bot's received track of `kind` from `publisher`.
pub fn bot_track<'a>(s: &'a BotSample, publisher: &str, kind: TrackKind) -> Option<&'a BotTrack> {
    s.tracks
        .iter()
        .find(|t| t.publisher_id == publisher && t.kind == kind)
}

/// Packets missing for good over those expected, of `kind` (`None`: every kind) from all
/// publishers.
pub fn bot_loss(samples: &[BotSample], a: f64, b: f64, kind: Option<TrackKind>) -> f64 {
    let totals = |s: &BotSample| {
        s.tracks
            .iter()
            .filter(|t| kind.is_none_or(|k| t.kind == k))
            .fold((0.0, 0.0), |(gaps, expected), t| {
                let g = t.seq_gaps as f64;
                (gaps + g, expected + (t.packets - t.duplicates) as f64 + g)
            })
    };
    match (at(samples, a, |s| s.t), at(samples, b, |s| s.t)) {
        (Some(x), Some(y)) => {
            let (gx, ex) = totals(x);
            let (gy, ey) = totals(y);
            ratio(gy - gx, ey - ex)
        }
        _ => 0.0,
    }
}

/// Audio packets a second each publisher sends (the bots' Opus file has 20 ms frames).
pub const AUDIO_PACKETS_PER_SECOND: f64 = 50.0;
/// Below this share of that, before any impairment, the publishing bots were starved.
const STARVED_RATE: f64 = 0.9;
/// A bot subscriber that lost more than this before any impairment, while the Chromium
/// subscriber of the same server did not, was starved itself.
const STARVED_LOSS: f64 = 0.01;

/// Why the bot's audio figures measure the lab's machine rather than the server, if they
/// do: over `[a, b]`, a stretch before any impairment, its audio reached it well below the
/// rate the publishers send (the publishing bots were starved of CPU), or it missed packets
/// that the Chromium subscriber, fed by the same server at the same time, did not miss (the
/// subscribing bot was). `None` when the figures stand.
pub fn bot_machine_limited(
    bots: &[BotSample],
    pages: &[PageSample],
    a: f64,
    b: f64,
) -> Option<String> {
    let (x, y) = (at(bots, a, |s| s.t)?, at(bots, b, |s| s.t)?);
    let seconds = (y.t - x.t) / 1000.0;
    let tracks = y
        .tracks
        .iter()
        .filter(|t| t.kind == TrackKind::Audio)
        .count() as f64;
    if seconds <= 0.0 || tracks == 0.0 {
        return None;
    }
    let audio = |s: &BotSample| {
        s.tracks
            .iter()
            .filter(|t| t.kind == TrackKind::Audio)
            .map(|t| (t.packets - t.duplicates + t.seq_gaps) as f64)
            .sum::<f64>()
    };
    let rate = (audio(y) - audio(x)) / seconds;
    let nominal = tracks * AUDIO_PACKETS_PER_SECOND;
    let bot = bot_loss(bots, a, b, Some(TrackKind::Audio));
    let page = page_loss(pages, a, b, "audio");
    let before = format!("{seconds:.0} s before the impairment");
    if rate < STARVED_RATE * nominal {
        Some(format!(
            "{before}: audio reached the bot at {rate:.0} of the {nominal:.0} packets/s the publishers send"
        ))
    } else if bot > STARVED_LOSS && page < STARVED_LOSS {
        Some(format!(
            "{before}: the bot lost {:.1} % of its audio, Chromium {:.1} %",
            bot * 100.0,
            page * 100.0
        ))
    } else {
        None
    }
}

/// The bot's video gaps over [`BOT_FREEZE_MS`] that overlap `[a, b]`: (start, end).
pub fn bot_freezes(samples: &[BotSample], publisher: &str, a: f64, b: f64) -> Vec<(f64, f64)> {
    let mut freezes = Vec::new();
    let mut last_packet: Option<f64> = None;
    for s in samples {
        let Some(track) = bot_track(s, publisher, TrackKind::Video) else {
            continue;
        };
        let Some(idle) = track.idle_ms else { continue };
        let packet_at = s.t - idle;
        if let Some(previous) = last_packet {
            if packet_at - previous > BOT_FREEZE_MS && packet_at > a && previous < b {
                freezes.push((previous.max(a), packet_at.min(b)));
            }
        }
        last_packet = Some(packet_at.max(last_packet.unwrap_or(packet_at)));
    }
    // A gap still open at the end.
    if let (Some(last), Some(s)) = (last_packet, samples.last()) {
        let end = s.t.min(b);
        if end - last > BOT_FREEZE_MS && freezes.last().is_none_or(|f| f.1 < last) {
            freezes.push((last.max(a), end));
        }
    }
    freezes
}

/// Share of `[a, b]` the bot's video from `publisher` was frozen.
pub fn bot_freeze_ratio(samples: &[BotSample], publisher: &str, a: f64, b: f64) -> f64 {
    let frozen: f64 = bot_freezes(samples, publisher, a, b)
        .iter()
        .map(|(x, y)| y - x)
        .sum();
    frozen / (b - a)
}

// ---- server ----

/// The server's view of `subscriber`'s video from `publisher`.
pub fn server_video<'a>(
    s: &'a RoomSample,
    subscriber: &str,
    publisher: &str,
) -> Option<&'a ReceivedTrackSample> {
    s.subscriber(subscriber)?.video_from(publisher)
}

/// The layer forwarded (-1 for none).
pub fn layer_value(track: Option<&ReceivedTrackSample>) -> f64 {
    track.and_then(|t| t.current).map_or(-1.0, f64::from)
}

fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        (part / whole).max(0.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot_sample(t: f64, idle: f64, packets: u64, gaps: u64) -> BotSample {
        BotSample {
            t,
            tracks: vec![BotTrack {
                publisher_id: "P".into(),
                track_id: "T".into(),
                kind: TrackKind::Video,
                packets,
                bytes: 0,
                seq_gaps: gaps,
                duplicates: 0,
                frame_width: 1280,
                idle_ms: Some(idle),
                freezes: 0,
                max_gap_ms: 0.0,
                first_keyframe_t: None,
            }],
            paused_messages: 0,
            resumed_messages: 0,
        }
    }

    #[test]
    fn a_bot_freeze_is_a_gap_between_packets() {
        // Packets every 100 ms until 1000, none until 2500, then again.
        let mut samples = Vec::new();
        for i in 0..=40 {
            let t = f64::from(i) * 100.0;
            let idle = if (1000.0..2500.0).contains(&t) {
                t - 1000.0
            } else {
                0.0
            };
            samples.push(bot_sample(t, idle, i as u64, 0));
        }
        let freezes = bot_freezes(&samples, "P", 0.0, 4000.0);
        assert_eq!(freezes, vec![(1000.0, 2500.0)]);
        assert!((bot_freeze_ratio(&samples, "P", 0.0, 4000.0) - 0.375).abs() < 1e-9);
        assert!(bot_freezes(&samples, "P", 3000.0, 4000.0).is_empty());
    }

    #[test]
    fn bot_loss_counts_what_stays_missing() {
        let samples = vec![
            bot_sample(0.0, 0.0, 100, 0),
            bot_sample(1000.0, 0.0, 195, 5),
        ];
        assert!((bot_loss(&samples, 0.0, 1000.0, Some(TrackKind::Video)) - 0.05).abs() < 1e-9);
    }

    #[test]
    fn settled_means_true_to_the_end() {
        let samples = [
            (0.0, false),
            (1.0, true),
            (2.0, false),
            (3.0, true),
            (4.0, true),
        ];
        let t = |s: &(f64, bool)| s.0;
        assert_eq!(settled_when(&samples, 0.0, 4.0, t, |s| s.1), Some(3.0));
        assert_eq!(first_when(&samples, 0.0, 4.0, t, |s| s.1), Some(1.0));
    }
}
