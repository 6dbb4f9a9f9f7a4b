//! Media really flows through the SFU: bots publish Opus and VP8/H.264 loops and check what
//! arrives, by packets and by the keyframes' own frame size.
mod common;

use common::*;
use roomcast_bots::{BotConfig, VideoCodec};
use roomcast_protocol::{ServerMessage, TrackKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bots_receive_each_others_audio_and_video() {
    let server = start_server().await;
    let bots = [
        join(&server, "trio", "ann").await,
        join(&server, "trio", "bob").await,
        join(&server, "trio", "cyd").await,
    ];
    for bot in &bots {
        let others: Vec<String> = bots
            .iter()
            .filter(|b| b.participant_id() != bot.participant_id())
            .map(|b| b.participant_id().to_owned())
            .collect();
        bot.wait_for_media(
            |tracks| {
                others.iter().all(|o| {
                    has_audio_from(tracks, o, 50) && has_video_from(tracks, o, 50, 640, 360)
                })
            },
            MEDIA_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} did not get both others' media: {e}",
                bot.participant_id()
            )
        });
        let tracks = bot.remote_tracks();
        assert_eq!(
            tracks.iter().filter(|t| !t.ended).count(),
            4,
            "two tracks from each of two others, nothing else: {tracks:#?}"
        );
    }
    let stats = server.stats();
    assert_eq!(stats.participants, 3);
    assert_eq!(stats.tracks, 6);
    assert!(
        stats.media.packets_out > stats.media.packets_in,
        "each packet goes to two subscribers"
    );
    for bot in bots {
        bot.leave().await.expect("clean leave");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_receives_tracks_published_before_it_came() {
    let server = start_server().await;
    let early = join(&server, "late", "early").await;
    let watcher =
        join_with(BotConfig::new(server.ws_url(), "late", "watcher").with_publish(false, None))
            .await;
    let early_id = early.participant_id().to_owned();
    watcher
        .wait_for_media(
            |t| has_video_from(t, &early_id, 30, 640, 360),
            MEDIA_TIMEOUT,
        )
        .await
        .expect("first watcher gets video");

    let late =
        join_with(BotConfig::new(server.ws_url(), "late", "late").with_publish(false, None)).await;
    let listed = late
        .joined_participants()
        .iter()
        .find(|p| p.id == early_id)
        .map(|p| p.tracks.len());
    assert_eq!(
        listed,
        Some(2),
        "joined lists the early publisher's two tracks"
    );
    late.wait_for_media(
        |t| has_audio_from(t, &early_id, 30) && has_video_from(t, &early_id, 30, 640, 360),
        MEDIA_TIMEOUT,
    )
    .await
    .expect("late joiner gets audio and video at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaver_is_announced_its_tracks_end_and_the_rest_keep_flowing() {
    let server = start_server().await;
    let ann = join(&server, "leave", "ann").await;
    let bob = join(&server, "leave", "bob").await;
    let cyd = join(&server, "leave", "cyd").await;
    let (a, b, c) = (
        ann.participant_id().to_owned(),
        bob.participant_id().to_owned(),
        cyd.participant_id().to_owned(),
    );
    for (bot, others) in [(&ann, [&b, &c]), (&bob, [&a, &c])] {
        bot.wait_for_media(
            |t| {
                others
                    .iter()
                    .all(|o| has_audio_from(t, o, 20) && has_video_from(t, o, 20, 640, 360))
            },
            MEDIA_TIMEOUT,
        )
        .await
        .expect("everyone receives everyone");
    }
    let cursors = (ann.message_cursor(), bob.message_cursor());
    cyd.leave().await.expect("clean leave");
    for (bot, cursor) in [(&ann, cursors.0), (&bob, cursors.1)] {
        bot.wait_for_message_after(
            cursor,
            |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == c),
            MESSAGE_TIMEOUT,
        )
        .await
        .expect("participant_left arrives");
        bot.wait_for_media(
            |t| {
                let from_c: Vec<_> = t.iter().filter(|x| x.publisher_id == c).collect();
                from_c.len() == 2 && from_c.iter().all(|x| x.ended)
            },
            MEDIA_TIMEOUT,
        )
        .await
        .expect("the leaver's tracks end");
    }
    assert_media_keeps_flowing(&ann, &[&b]).await;
    assert_media_keeps_flowing(&bob, &[&a]).await;
    assert_eq!(server.stats().tracks, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_video_is_forwarded() {
    let server = start_server().await;
    let publisher = join_with(
        BotConfig::new(server.ws_url(), "h264", "pub").with_publish(true, Some(VideoCodec::H264)),
    )
    .await;
    let viewer =
        join_with(BotConfig::new(server.ws_url(), "h264", "view").with_publish(false, None)).await;
    let id = publisher.participant_id().to_owned();
    let tracks = viewer
        .wait_for_media(
            |t| {
                t.iter().any(|x| {
                    x.publisher_id == id
                        && x.kind == TrackKind::Video
                        && x.codec_mime.eq_ignore_ascii_case("video/h264")
                        && x.keyframes > 0
                        && x.packets > 50
                })
            },
            MEDIA_TIMEOUT,
        )
        .await
        .expect("H.264 arrives with keyframes");
    assert!(
        tracks.iter().all(|t| t.seq_gaps < 5),
        "little or no loss on loopback: {tracks:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_publishers_all_receive_everything() {
    // Past five publishers, subscribers' m-lines get two-digit mids, which changes the
    // size of the rewritten header extensions: every track must still arrive.
    let server = start_server().await;
    let mut bots = Vec::new();
    for i in 0..6 {
        bots.push(join(&server, "six", &format!("bot{i}")).await);
    }
    let ids: Vec<String> = bots.iter().map(|b| b.participant_id().to_owned()).collect();
    for bot in &bots {
        bot.wait_for_media(
            |t| {
                ids.iter()
                    .filter(|id| *id != bot.participant_id())
                    .all(|id| has_audio_from(t, id, 20) && has_video_from(t, id, 20, 640, 360))
            },
            MEDIA_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| {
            // Every bot's media connection: a publisher's that is not connected explains
            // all of its tracks missing.
            let connections: Vec<(&str, String)> = bots
                .iter()
                .map(|b| (b.participant_id(), b.peer_connection_state().to_string()))
                .collect();
            panic!(
                "{} misses tracks: {e}\n{:#?}\nmedia connections: {connections:?}\n{:#?}",
                bot.participant_id(),
                bot.remote_tracks(),
                server.stats()
            )
        });
    }
    assert_eq!(server.stats().media.dropped.write_failed, 0);
}

/// Two H.264 publishers and a VP8 one, joining in `order`: everyone gets the others' video in
/// the codec its publisher sends. webrtc-rs fixes each connection's codec list at the first
/// description with video in it, so this covers a publisher whose first description was its
/// own single-codec offer (the first to join) and publishers that first answered the
/// server's offer of everything (the later ones).
async fn mixed_codecs_receive_each_others_video(room: &str, order: [VideoCodec; 3]) {
    let server = start_server().await;
    let mut bots = Vec::new();
    for (i, codec) in order.into_iter().enumerate() {
        let config = BotConfig::new(server.ws_url(), room, format!("bot{i}-{codec:?}"))
            .with_publish(true, Some(codec));
        bots.push((join_with(config).await, codec));
    }
    let mime = |codec: VideoCodec| match codec {
        VideoCodec::Vp8 => "video/vp8",
        VideoCodec::H264 => "video/h264",
    };
    for (bot, _) in &bots {
        let others: Vec<(String, VideoCodec)> = bots
            .iter()
            .filter(|(b, _)| b.participant_id() != bot.participant_id())
            .map(|(b, codec)| (b.participant_id().to_owned(), *codec))
            .collect();
        bot.wait_for_media(
            |tracks| {
                others.iter().all(|(publisher, codec)| {
                    tracks.iter().any(|t| {
                        t.publisher_id == *publisher
                            && t.kind == TrackKind::Video
                            && !t.ended
                            && t.codec_mime.eq_ignore_ascii_case(mime(*codec))
                            && t.packets > 30
                            && t.keyframes >= 1
                    })
                })
            },
            MEDIA_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| {
            let got: Vec<_> = bot
                .remote_tracks()
                .into_iter()
                .filter(|t| t.kind == TrackKind::Video)
                .map(|t| (t.publisher_id, t.codec_mime, t.packets, t.keyframes))
                .collect();
            panic!(
                "{} misses the others' video ({others:?}); it has {got:?}: {e}",
                bot.participant_id()
            )
        });
    }
    let dropped = server.stats().media.dropped;
    assert_eq!(dropped.no_codec, 0, "every subscriber negotiated the codec");
    for (bot, _) in bots {
        bot.leave().await.expect("clean leave");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_first_then_vp8_publishers_receive_each_others_video() {
    use VideoCodec::{Vp8, H264};
    mixed_codecs_receive_each_others_video("mixed-h264", [H264, H264, Vp8]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_first_then_h264_publishers_receive_each_others_video() {
    use VideoCodec::{Vp8, H264};
    mixed_codecs_receive_each_others_video("mixed-vp8", [Vp8, H264, H264]).await;
}
