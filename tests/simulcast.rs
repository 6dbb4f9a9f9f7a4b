//! Simulcast through the real server with real WebRTC bots: a publisher sends three layers
//! (320, 640 and 1280 wide, from three encoded loops), subscribers pick one with
//! `set_quality`, and what they receive is read from the keyframes' own headers (VP8) or
//! SPS (H.264). Also dynacast (`publisher_layers`) and active speakers.
mod common;

use std::time::{Duration, Instant};

use common::*;
use roomcast_bots::{Bot, BotConfig, MessageCursor, RemoteTrackStats, VideoCodec};
use roomcast_protocol::{ClientMessage, Quality, ServerMessage, TrackKind};

/// How long a switch may take from `set_quality` to the first keyframe of the new layer.
const SWITCH_LIMIT: Duration = Duration::from_secs(2);

fn video_from<'a>(tracks: &'a [RemoteTrackStats], publisher: &str) -> Option<&'a RemoteTrackStats> {
    tracks
        .iter()
        .find(|t| t.publisher_id == publisher && t.kind == TrackKind::Video && !t.ended)
}

async fn simulcast_publisher(
    server: &roomcast::RunningServer,
    room: &str,
    codec: VideoCodec,
) -> Bot {
    join_with(
        BotConfig::new(server.ws_url(), room, "publisher")
            .with_publish(false, Some(codec))
            .with_simulcast(true),
    )
    .await
}

async fn subscriber(server: &roomcast::RunningServer, room: &str, name: &str) -> Bot {
    join_with(BotConfig::new(server.ws_url(), room, name).with_publish(false, None)).await
}

/// Waits for `track_layer` telling `bot` it now receives layer `rid` of `track_id`.
async fn wait_for_layer(bot: &Bot, cursor: MessageCursor, track_id: &str, rid: Option<&str>) {
    bot.wait_for_message_after(
        cursor,
        |m| {
            matches!(m, ServerMessage::TrackLayer { track_id: t, rid: r, .. }
                if t == track_id && r.as_deref() == rid)
        },
        MESSAGE_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("no track_layer {rid:?} for {track_id}: {e}"));
}

async fn set_quality(bot: &Bot, track_id: &str, quality: Quality) -> Instant {
    bot.send(&ClientMessage::SetQuality {
        track_id: track_id.to_owned(),
        quality,
    })
    .await
    .expect("set_quality sent");
    Instant::now()
}

/// Waits for the first keyframe `width` wide received after `since`; returns when it came
/// and its stats at that moment.
async fn wait_for_width(
    bot: &Bot,
    publisher: &str,
    width: u16,
    since: Instant,
) -> (Instant, RemoteTrackStats) {
    let tracks = bot
        .wait_for_media(
            |t| {
                video_from(t, publisher).is_some_and(|v| {
                    v.keyframe_sizes
                        .iter()
                        .any(|k| k.at >= since && k.width == width)
                })
            },
            MEDIA_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no {width}-wide keyframe: {e}\n{:#?}",
                video_from(&bot.remote_tracks(), publisher)
            )
        });
    let video = video_from(&tracks, publisher).expect("video").clone();
    let at = video
        .keyframe_sizes
        .iter()
        .find(|k| k.at >= since && k.width == width)
        .expect("found above")
        .at;
    (at, video)
}

/// Holds until `count` more keyframes have arrived after `since`, and checks every keyframe
/// after `since` is `width` wide: the subscriber gets only that layer.
async fn assert_only_width(bot: &Bot, publisher: &str, width: u16, since: Instant, count: usize) {
    let tracks = bot
        .wait_for_media(
            |t| {
                video_from(t, publisher).is_some_and(|v| {
                    v.keyframe_sizes.iter().filter(|k| k.at > since).count() >= count
                })
            },
            MEDIA_TIMEOUT,
        )
        .await
        .expect("more keyframes arrive");
    let video = video_from(&tracks, publisher).expect("video");
    let widths: Vec<u16> = video
        .keyframe_sizes
        .iter()
        .filter(|k| k.at > since)
        .map(|k| k.width)
        .collect();
    assert!(
        widths.iter().all(|w| *w == width),
        "only {width}-wide keyframes expected after the switch, got {widths:?}"
    );
}

async fn low_high_off(codec: VideoCodec) {
    let server = start_server().await;
    let room = format!("simulcast-{codec:?}");
    let viewer = subscriber(&server, &room, "viewer").await;
    let publisher = simulcast_publisher(&server, &room, codec).await;
    let pid = publisher.participant_id().to_owned();

    // Default is high: the 1280 layer arrives.
    let (_, first) = wait_for_width(
        &viewer,
        &pid,
        1280,
        Instant::now() - Duration::from_secs(60),
    )
    .await;
    let track_id = first.track_id.clone();
    // The publisher was told its track's id, and the viewer which layer it gets.
    assert!(
        publisher.messages().iter().any(|m| matches!(m,
            ServerMessage::Published { track, .. } if track.id == track_id && track.simulcast)),
        "no `published` for {track_id}: {:?}",
        publisher.messages()
    );
    wait_for_layer(&viewer, MessageCursor::START, &track_id, Some("f")).await;

    let cursor = viewer.message_cursor();
    let asked = set_quality(&viewer, &track_id, Quality::Low).await;
    wait_for_layer(&viewer, cursor, &track_id, Some("q")).await;
    let (low_at, _) = wait_for_width(&viewer, &pid, 320, asked).await;
    // The loops have a keyframe every 2 s; two more prove nothing else is forwarded.
    assert_only_width(&viewer, &pid, 320, low_at, 2).await;

    let asked = set_quality(&viewer, &track_id, Quality::High).await;
    let (high_at, at_switch) = wait_for_width(&viewer, &pid, 1280, asked).await;
    let took = high_at - asked;
    println!("{codec:?}: low → high took {took:?}");
    assert!(took < SWITCH_LIMIT, "switch to high took {took:?}");
    assert_only_width(&viewer, &pid, 1280, high_at, 1).await;
    let after = video_from(&viewer.remote_tracks(), &pid)
        .expect("video")
        .clone();
    assert_eq!(after.ssrc, first.ssrc, "one SSRC throughout");
    assert_eq!(
        after.seq_gaps, 0,
        "no sequence gaps across the switches: {after:#?}"
    );
    // Each layer has its own reader task, so at a switch the old layer's last packet and the
    // new layer's first may leave in either order (numbered in order, sent a microsecond
    // apart): at most one packet out of order per switch, never a gap or a duplicate.
    assert!(
        at_switch.out_of_order <= 2 && after.duplicates == 0,
        "{after:#?}"
    );

    // Off: the video stops. Silence is not an event, so this watches for a 1.5 s window
    // with no video packet, checking every 100 ms.
    let cursor = viewer.message_cursor();
    let off_at = set_quality(&viewer, &track_id, Quality::Off).await;
    wait_for_layer(&viewer, cursor, &track_id, None).await;
    let quiet = Duration::from_millis(1500);
    loop {
        let last = video_from(&viewer.remote_tracks(), &pid).and_then(|v| v.last_packet_at);
        if last.is_some_and(|l| l.elapsed() >= quiet) {
            println!(
                "{codec:?}: last video packet {:?} after off",
                last.map(|l| l.saturating_duration_since(off_at))
            );
            break;
        }
        assert!(
            off_at.elapsed() < MEDIA_TIMEOUT,
            "video still flowing after off"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And on again: it resumes, still without a gap.
    let asked = set_quality(&viewer, &track_id, Quality::Medium).await;
    wait_for_width(&viewer, &pid, 640, asked).await;
    let resumed = video_from(&viewer.remote_tracks(), &pid)
        .expect("video")
        .clone();
    assert_eq!(resumed.seq_gaps, 0, "{resumed:#?}");
    // And a decoder could have followed it all: picture ids ran on across every switch.
    if codec == VideoCodec::Vp8 {
        assert_eq!(resumed.picture_id_breaks, 0, "{resumed:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_subscriber_gets_the_layer_it_asks_for() {
    low_high_off(VideoCodec::Vp8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_simulcast_switches_too() {
    low_high_off(VideoCodec::H264).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynacast_stops_layers_nobody_takes() {
    let server = start_server().await;
    let room = "dynacast";
    let a = subscriber(&server, room, "a").await;
    let b = subscriber(&server, room, "b").await;
    let publisher = simulcast_publisher(&server, room, VideoCodec::Vp8).await;
    let pid = publisher.participant_id().to_owned();
    let mut track_id = String::new();
    for viewer in [&a, &b] {
        let tracks = viewer
            .wait_for_media(|t| video_from(t, &pid).is_some(), MEDIA_TIMEOUT)
            .await
            .expect("video arrives");
        track_id = video_from(&tracks, &pid).expect("video").track_id.clone();
    }
    let cursor = publisher.message_cursor();
    set_quality(&a, &track_id, Quality::Low).await;
    set_quality(&b, &track_id, Quality::Low).await;
    let told = publisher
        .wait_for_message_after(
            cursor,
            |m| matches!(m, ServerMessage::PublisherLayers { rids, .. } if rids == &["q"]),
            MEDIA_TIMEOUT,
        )
        .await
        .expect("the publisher is told only q is needed");
    let ServerMessage::PublisherLayers {
        track_id: told_id, ..
    } = told
    else {
        unreachable!()
    };
    assert_eq!(told_id, track_id);
    // The bot honours it: h and f stop, q goes on.
    let frames = |rid: &str| {
        publisher.published_tracks()[0]
            .layers
            .iter()
            .find(|l| l.rid == rid)
            .map(|l| l.frames_sent)
            .expect("layer")
    };
    let (h, f, q) = (frames("h"), frames("f"), frames("q"));
    publisher
        .wait_for_published(
            |p| {
                p[0].layers
                    .iter()
                    .any(|l| l.rid == "q" && l.frames_sent >= q + 30)
            },
            MEDIA_TIMEOUT,
        )
        .await
        .expect("q keeps going");
    assert!(
        frames("h") <= h + 1 && frames("f") <= f + 1,
        "h and f stopped"
    );

    // One viewer wants high again: f comes back for it.
    let cursor = publisher.message_cursor();
    let asked = set_quality(&a, &track_id, Quality::High).await;
    publisher
        .wait_for_message_after(
            cursor,
            |m| matches!(m, ServerMessage::PublisherLayers { rids, .. } if rids.iter().any(|r| r == "f")),
            MEDIA_TIMEOUT,
        )
        .await
        .expect("f is needed again");
    let (at, _) = wait_for_width(&a, &pid, 1280, asked).await;
    println!("dynacast: high after a paused f took {:?}", at - asked);
    assert!(at - asked < SWITCH_LIMIT, "took {:?}", at - asked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_louder_speaker_is_ranked_first() {
    let server = start_server().await;
    let room = "speakers";
    let listener = subscriber(&server, room, "listener").await;
    let cursor = listener.message_cursor();
    let speaker = |name: &str, attenuation: u8| {
        BotConfig::new(server.ws_url(), room, name)
            .with_publish(true, None)
            .with_audio_attenuation_db(attenuation)
    };
    let loud = join_with(speaker("loud", 0)).await;
    let quiet = join_with(speaker("quiet", 12)).await;
    let (loud_id, quiet_id) = (
        loud.participant_id().to_owned(),
        quiet.participant_id().to_owned(),
    );
    let both = listener
        .wait_for_message_after(
            cursor,
            |m| match m {
                ServerMessage::ActiveSpeakers { speakers } => {
                    let ids: Vec<&str> =
                        speakers.iter().map(|s| s.participant_id.as_str()).collect();
                    ids.contains(&loud_id.as_str()) && ids.contains(&quiet_id.as_str())
                }
                _ => false,
            },
            Duration::from_secs(30),
        )
        .await
        .expect("both speakers are announced together");
    let ServerMessage::ActiveSpeakers { speakers } = both else {
        unreachable!()
    };
    assert_eq!(speakers[0].participant_id, loud_id, "{speakers:?}");
    assert!(speakers[0].level > speakers[1].level, "{speakers:?}");
}
