//! Safari cannot run here, so the shape of what it sends is kept working at the SDP level.
//! A test client (`common::safari`) offers the web client's microphone and simulcast camera
//! exactly as Safari writes it (H.264 High first, then constrained baseline, no VP8,
//! RTX/RED/ULPFEC beside them, libwebrtc's header-extension ids, `a=rid` and `a=simulcast` as
//! the page gave them), then sends the H.264 layers it promised. The server
//! must answer it correctly (checked line by line), publish the simulcast camera, forward its
//! H.264 to an H.264-capable subscriber layer by layer, and tell a VP8-only subscriber with
//! `track_unsupported` instead of leaving it a black tile.
mod common;

use common::safari::{self, section, values, Safari};
use common::shaped_client::{codec, Codecs, ShapedClient};
use common::*;
use roomcast_bots::BotConfig;
use roomcast_protocol::{ClientMessage, Quality, TrackKind};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_safari_shaped_offer_is_answered_and_its_h264_reaches_who_can_decode_it() {
    let server = start_server().await;
    let url = server.ws_url();
    let room = "safari";
    // An H.264-capable subscriber (a bot: VP8 and H.264) and a VP8-only one are there first.
    let decoder =
        join_with(BotConfig::new(url.clone(), room, "decoder").with_publish(false, None)).await;
    let vp8_only = ShapedClient::join(
        &url,
        room,
        "vp8-only",
        Codecs {
            audio: safari::codecs().audio,
            video: vec![codec("video/VP8", 90_000, 0, "", 96)],
        },
    )
    .await;

    let safari = Safari::publish(&url, room, "Safari").await;
    let (answer, offered) = (&safari.answer, &safari.offer);

    // --- the answer, line by line ---
    assert!(answer.contains("a=group:BUNDLE 0 1\r\n"), "{answer}");
    let video = section(answer, "1");
    let offer_video = section(offered, "1");
    assert!(
        video[0].starts_with("video 9 "),
        "the camera is accepted: {}",
        video[0]
    );
    assert!(video.contains(&"a=recvonly"), "{video:?}");
    let formats: Vec<&str> = video[0].split_whitespace().skip(3).collect();
    assert_eq!(
        formats,
        ["98"],
        "constrained-baseline H.264 alone, under Safari's payload type (not High, no RTX, RED or ULPFEC): {}",
        video[0]
    );
    assert!(
        values(&video, "rtpmap").contains(&"98 H264/90000"),
        "{video:?}"
    );
    assert!(
        values(&video, "fmtp")
            .iter()
            .any(|f| f.starts_with("98 ") && f.contains("profile-level-id=42e01f")),
        "{video:?}"
    );
    assert_eq!(values(&video, "rid"), ["q recv", "h recv", "f recv"]);
    assert_eq!(values(&video, "simulcast"), ["recv q;h;f"]);
    // Header extensions: Safari's ids, and only ones its m-line offered (RFC 8285).
    let offered_extmaps = values(&offer_video, "extmap");
    for extmap in values(&video, "extmap") {
        assert!(
            offered_extmaps.contains(&extmap),
            "the answer adds {extmap}; the offer has {offered_extmaps:?}"
        );
    }
    for needed in [
        "4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    ] {
        assert!(
            values(&video, "extmap").contains(&needed),
            "{needed} missing: {video:?}"
        );
    }
    let audio = section(answer, "0");
    assert!(audio[0].starts_with("audio 9 "), "{}", audio[0]);
    // Opus first, so Safari sends plain Opus; RED after it, for what the server sends.
    assert_eq!(
        audio[0].split_whitespace().skip(3).collect::<Vec<_>>(),
        ["111", "63"]
    );
    let camera = safari
        .client
        .wait_for(|m| m["type"] == "published" && m["mid"] == "1")
        .await;
    assert_eq!(camera["track"]["kind"], "video");
    assert_eq!(camera["track"]["source"], "camera");
    assert_eq!(camera["track"]["simulcast"], true);
    let camera_id = camera["track"]["id"].as_str().expect("track id").to_owned();

    // --- its H.264 reaches the subscriber that decodes H.264, layer by layer ---
    let from_safari = |kind: TrackKind, width: u16| {
        let id = safari.client.participant_id.clone();
        move |tracks: &[roomcast_bots::RemoteTrackStats]| {
            tracks.iter().any(|t| {
                t.publisher_id == id
                    && t.kind == kind
                    && t.codec_mime.eq_ignore_ascii_case("video/H264")
                    && t.keyframe_sizes.iter().any(|k| k.width == width)
            })
        }
    };
    decoder
        .wait_for_media(from_safari(TrackKind::Video, 1280), MEDIA_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("the full layer (1280x720 H.264) arrives: {e}"));
    decoder
        .send(&ClientMessage::SetQuality {
            track_id: camera_id.clone(),
            quality: Quality::Low,
        })
        .await
        .expect("set_quality sent");
    decoder
        .wait_for_media(from_safari(TrackKind::Video, 320), MEDIA_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("asking for low gives the q layer (320x180): {e}"));

    // --- the VP8-only subscriber is told, once, and only about the video ---
    let told = vp8_only
        .wait_for(|m| m["type"] == "track_unsupported")
        .await;
    assert_eq!(told["track_id"], camera_id.as_str(), "{told}");
    assert_eq!(told["codec"], "video/H264", "{told}");
    assert_eq!(told["receivable"], json!(["video/VP8"]), "{told}");
    let notices: Vec<Value> = vp8_only
        .messages()
        .into_iter()
        .filter(|m| m["type"] == "track_unsupported")
        .collect();
    assert_eq!(
        notices.len(),
        1,
        "one notice, for the camera alone: {notices:?}"
    );

    safari.leave().await;
    vp8_only.leave().await;
    decoder.leave().await.expect("the decoder leaves");
}
