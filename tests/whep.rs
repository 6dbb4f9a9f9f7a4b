//! WHEP egress: a player POSTs a receive-only offer to `/whep/{room}` and watches the room's
//! presenter on its one audio and one video receiver. The viewer here is the bots' WHEP
//! player (webrtc-rs, decoding the VP8 keyframe headers it receives): it gets a bot
//! presenter's audio and video; when a screen share starts it gets the screen on the same
//! stream, without a new offer; a viewer pinned to one participant keeps that participant.
//! Chromium, driven by `docs/whep-player.html` (the POST and DELETE, nothing else), decodes
//! what it gets, and the screen share on the same stream when it starts
//! (`tests/browser/whep.mjs`). Then the requests a broken client sends, each
//! with its status.
mod common;

use std::time::{Duration, Instant};

use common::browser::{failed_steps, report};
use common::http::{expect, header, Case, Http};
use common::*;
use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::{Bot, RemoteTrackStats, WhepViewer};
use roomcast_protocol::{Role, TrackKind};
use roomcast_sfu::auth::{mint, unix_now};
use tokio::io::{AsyncBufReadExt, BufReader};

const SECRET: &str = "whep-integration-test-secret-0123456789";

async fn start_secured() -> RunningServer {
    let mut args = ServeArgs::local_ephemeral();
    args.jwt_secret = Some(SECRET.to_owned());
    start_with(args).await
}

fn token(room: &str, name: &str, role: Role, ttl_secs: i64) -> String {
    let exp = (unix_now() as i64 + ttl_secs).max(0) as u64;
    mint(SECRET, room, name, role, exp).expect("minted")
}

/// A bot presenting in `room`: Opus and a 640x360 VP8 camera, or a 1280x720 screen share.
async fn presenter(server: &RunningServer, room: &str, name: &str, screen: bool) -> Bot {
    let config = config(server, room, name, Role::Presenter)
        .with_token(token(room, name, Role::Presenter, 600))
        .with_screen_share(screen);
    join_with(config).await
}

/// A WHEP player on `path` (`/whep/...`) with an audience token.
async fn watch(server: &RunningServer, path: &str, room: &str) -> WhepViewer {
    let url = format!("http://{}{path}", server.http_addr);
    let token = token(room, "player", Role::Audience, 600);
    WhepViewer::watch(&url, Some(&token), MESSAGE_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("WHEP POST {path}: {e}"))
}

fn of_kind(tracks: &[RemoteTrackStats], kind: TrackKind) -> Vec<&RemoteTrackStats> {
    tracks.iter().filter(|t| t.kind == kind).collect()
}

/// The viewer's one video stream has `min_packets` and its latest keyframe is
/// `width`x`height`, and its one audio stream has some packets.
fn shows(tracks: &[RemoteTrackStats], width: u16, height: u16, min_packets: u64) -> bool {
    let video = of_kind(tracks, TrackKind::Video);
    let audio = of_kind(tracks, TrackKind::Audio);
    video.len() == 1
        && audio.len() == 1
        && audio[0].packets >= 30
        && video[0].packets >= min_packets
        && video[0]
            .keyframe_sizes
            .last()
            .is_some_and(|k| (k.width, k.height) == (width, height))
}

async fn wait_shows(viewer: &WhepViewer, width: u16, height: u16, min_packets: u64, what: &str) {
    if let Err(e) = viewer
        .wait_for_media(|t| shows(t, width, height, min_packets), MEDIA_TIMEOUT)
        .await
    {
        panic!("{what}: {e}\n{:#?}", viewer.remote_tracks());
    }
}

fn video_of(viewer: &WhepViewer) -> RemoteTrackStats {
    of_kind(&viewer.remote_tracks(), TrackKind::Video)[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_receives_the_presenter_and_follows_a_screen_share_without_renegotiation() {
    let server = start_secured().await;
    let room = "whep-room";
    let ann = presenter(&server, room, "ann", false).await;
    let posted = Instant::now();
    let viewer = watch(&server, &format!("/whep/{room}"), room).await;
    assert!(viewer.location().starts_with(&format!("/whep/{room}/")));
    wait_shows(&viewer, 640, 360, 30, "ann's camera and voice").await;
    let first = viewer
        .remote_tracks()
        .iter()
        .filter_map(|t| t.first_packet_at)
        .min()
        .expect("a first packet");
    println!(
        "WHEP POST to first media: {} ms (201 to first media: {} ms)",
        first.saturating_duration_since(posted).as_millis(),
        first
            .saturating_duration_since(viewer.answered_at)
            .as_millis()
    );
    // Pinned to ann, by name: she stays whatever happens to the room's presenter.
    let pinned = watch(&server, &format!("/whep/{room}/ann"), room).await;
    wait_shows(&pinned, 640, 360, 30, "the pinned viewer gets ann").await;
    let before = video_of(&viewer);

    // Bob shares his screen: the same video stream shows it (same SSRC, same receiver).
    let bob = presenter(&server, room, "bob", true).await;
    wait_shows(&viewer, 1280, 720, before.packets + 30, "bob's screen").await;
    let after = video_of(&viewer);
    assert_eq!(after.ssrc, before.ssrc, "one stream: no renegotiation");
    assert!(
        after.seq_gaps <= 5,
        "the switch continues the sequence numbers: {after:#?}"
    );
    let pinned_video = video_of(&pinned);
    assert!(
        pinned_video
            .keyframe_sizes
            .iter()
            .all(|k| (k.width, k.height) == (640, 360)),
        "the pinned viewer never showed the screen: {pinned_video:#?}"
    );

    // The screen share ends: back to ann's camera, still on the same stream.
    let shown = video_of(&viewer).packets;
    bob.leave().await.expect("bob leaves");
    wait_shows(&viewer, 640, 360, shown + 30, "back to ann's camera").await;
    assert_eq!(video_of(&viewer).ssrc, before.ssrc);

    assert_eq!(viewer.delete().await.expect("DELETE"), 200);
    assert_eq!(pinned.delete().await.expect("DELETE"), 200);
    ann.leave().await.expect("ann leaves");
    server.shutdown().await;
}

fn packets_of(viewer: &WhepViewer, kind: TrackKind) -> u64 {
    of_kind(&viewer.remote_tracks(), kind)
        .iter()
        .map(|t| t.packets)
        .sum()
}

/// A player restarts ICE with a PATCH (RFC 9725 §4.4.1.2), twice: each time it gets the
/// server's new credentials and a new ETag, its new ICE session connects, and the
/// presenter's audio and video keep arriving over it on the same streams. Refused restarts
/// (no If-Match: 428, the old ICE session's: 412) change nothing; a trickle is still 204.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_restarts_ice_through_patch_and_keeps_watching() {
    let server = start_secured().await;
    let http = Http(server.http_addr);
    let room = "whep-restart";
    let ann = presenter(&server, room, "ann", false).await;
    let mut viewer = watch(&server, &format!("/whep/{room}"), room).await;
    wait_shows(&viewer, 640, 360, 30, "ann's camera and voice").await;
    let location = viewer.location().to_owned();
    let first_etag = viewer.etag().to_owned();
    let ssrc = video_of(&viewer).ssrc;

    let frag_type = ("Content-Type", "application/trickle-ice-sdpfrag");
    let other = "a=ice-ufrag:zzzz\r\na=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz\r\n";
    let trickle = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    let bad_tag = ("If-Match", "\"not-this-one\"");
    let cases = [
        Case::new("a restart without If-Match", &[frag_type], other, 428),
        Case::new(
            "a restart naming another ICE session",
            &[frag_type, bad_tag],
            other,
            412,
        ),
        Case::new(
            "a trickle naming another ICE session",
            &[frag_type, bad_tag],
            trickle,
            412,
        ),
        Case::new(
            "a trickle",
            &[frag_type, ("If-Match", &first_etag)],
            trickle,
            204,
        ),
    ];
    for case in &cases {
        let reply = http
            .send("PATCH", &location, &case.headers, case.body)
            .await;
        expect(&reply, case.status, case.what);
    }

    let mut etags = vec![first_etag.clone()];
    for round in 1..=2 {
        let reply = viewer
            .restart_ice(MEDIA_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("ICE restart {round}: {e}"));
        assert_eq!(
            reply.header("content-type"),
            Some("application/trickle-ice-sdpfrag")
        );
        assert!(reply.body.contains("a=ice-ufrag:"), "{}", reply.body);
        assert!(
            !etags.iter().any(|e| e == viewer.etag()),
            "a new ETag each time"
        );
        etags.push(viewer.etag().to_owned());
        assert_eq!(viewer.ice_connections(), 1 + round);
        // The restart dropped the old candidate pairs: what arrives now came over the new one.
        let (audio, video) = (
            packets_of(&viewer, TrackKind::Audio),
            packets_of(&viewer, TrackKind::Video),
        );
        viewer
            .wait_for_media(
                |t| {
                    let sum = |k| of_kind(t, k).iter().map(|t| t.packets).sum::<u64>();
                    sum(TrackKind::Audio) >= audio + 50 && sum(TrackKind::Video) >= video + 50
                },
                MEDIA_TIMEOUT,
            )
            .await
            .unwrap_or_else(|e| panic!("media after ICE restart {round}: {e}"));
        println!(
            "ICE restart {round}: audio {audio} -> {}, video {video} -> {} packets",
            packets_of(&viewer, TrackKind::Audio),
            packets_of(&viewer, TrackKind::Video)
        );
    }
    assert_eq!(video_of(&viewer).ssrc, ssrc, "the same stream throughout");
    expect(
        &http
            .send(
                "PATCH",
                &location,
                &[frag_type, ("If-Match", &first_etag)],
                trickle,
            )
            .await,
        412,
        "a trickle for the first ICE session",
    );
    let current = viewer.etag().to_owned();
    expect(
        &http
            .send(
                "PATCH",
                &location,
                &[frag_type, ("If-Match", &current)],
                trickle,
            )
            .await,
        204,
        "a trickle for the current ICE session",
    );
    assert_eq!(viewer.delete().await.expect("DELETE"), 200);
    ann.leave().await.expect("ann leaves");
    server.shutdown().await;
}

/// A player that offers two audio receivers hears a panel of two at once (each voice on its
/// own stream); one that offers one hears one voice, the loudest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_with_two_audio_receivers_hears_two_speakers() {
    let server = start_secured().await;
    let room = "whep-panel";
    let ann = presenter(&server, room, "ann", false).await;
    let bob = presenter(&server, room, "bob", false).await;
    let url = format!("http://{}/whep/{room}", server.http_addr);
    let token = token(room, "player", Role::Audience, 600);
    let panel = WhepViewer::watch_voices(&url, Some(&token), 2, MESSAGE_TIMEOUT)
        .await
        .expect("a WHEP POST with two audio m-lines");
    let single = watch(&server, &format!("/whep/{room}"), room).await;
    let two_voices = |t: &[RemoteTrackStats]| {
        let audio = of_kind(t, TrackKind::Audio);
        audio.len() == 2 && audio.iter().all(|a| a.packets >= 50)
    };
    if let Err(e) = panel.wait_for_media(two_voices, MEDIA_TIMEOUT).await {
        panic!(
            "the panel viewer hears both: {e}\n{:#?}",
            panel.remote_tracks()
        );
    }
    let audio = of_kind(&panel.remote_tracks(), TrackKind::Audio)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_ne!(audio[0].ssrc, audio[1].ssrc, "two streams");
    let video = |t: &[RemoteTrackStats]| {
        of_kind(t, TrackKind::Video).iter().any(|v| {
            v.packets >= 30
                && v.keyframe_sizes
                    .last()
                    .is_some_and(|k| (k.width, k.height) == (640, 360))
        })
    };
    panel
        .wait_for_media(video, MEDIA_TIMEOUT)
        .await
        .expect("the panel viewer's video");
    wait_shows(&single, 640, 360, 30, "the single viewer").await;
    assert_eq!(of_kind(&single.remote_tracks(), TrackKind::Audio).len(), 1);
    // Bob leaves: one of the two streams was his and falls silent; ann's goes on.
    bob.leave().await.expect("bob leaves");
    let audio_packets = |v: &[RemoteTrackStats]| -> Vec<u64> {
        of_kind(v, TrackKind::Audio)
            .iter()
            .map(|t| t.packets)
            .collect()
    };
    let left = audio_packets(&panel.remote_tracks());
    let gained = |t: &[RemoteTrackStats]| -> Vec<u64> {
        audio_packets(t)
            .iter()
            .zip(&left)
            .map(|(now, then)| now - then)
            .collect()
    };
    let after = panel
        .wait_for_media(|t| gained(t).iter().any(|g| *g >= 100), MEDIA_TIMEOUT)
        .await
        .expect("ann's voice goes on");
    let gains = gained(&after);
    assert!(
        gains.iter().filter(|g| **g < 20).count() == 1,
        "one voice left, one stream silent: {gains:?}"
    );
    assert_eq!(panel.delete().await.expect("DELETE"), 200);
    assert_eq!(single.delete().await.expect("DELETE"), 200);
    ann.leave().await.expect("ann leaves");
    server.shutdown().await;
}

/// A viewer that arrives before anyone presents gets the first presenter when it comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_waiting_in_an_empty_room_gets_the_first_presenter() {
    let server = start_server().await;
    let room = "whep-early";
    let url = format!("http://{}/whep/{room}", server.http_addr);
    let viewer = WhepViewer::watch(&url, None, MESSAGE_TIMEOUT)
        .await
        .expect("an open server lets anyone watch");
    let ann = join_with(config(&server, room, "ann", Role::Presenter)).await;
    wait_shows(&viewer, 640, 360, 30, "the first presenter").await;
    ann.leave().await.expect("ann leaves");
    server.shutdown().await;
}

/// Chromium plays the room's presenter through the WHEP player page; when a screen share
/// starts, the same video stream shows it (no new receiver, same SSRC), and the page (three
/// audio receivers) hears both presenters' voices at once; then the page stops with DELETE,
/// after which the server forgets the viewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_a_presenter_through_the_whep_player_page() {
    let server = start_secured().await;
    let room = "whep-chromium";
    let ann = presenter(&server, room, "ann", false).await;
    let url = format!("http://localhost:{}", server.http_addr.port());
    let token = token(room, "chromium", Role::Audience, 600);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/whep.mjs");
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .args(["--url", &url, "--room", room, "--token", &token])
        .args([
            "--switch-width",
            "1280",
            "--switch-height",
            "720",
            "--voices",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (is tests/browser set up?)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut sharer = None;
    let mut result = None;
    while let Some(line) = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
        .await
        .expect("the browser script reports in time")
        .expect("stdout readable")
    {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["event"] == "watching" {
            sharer = Some(presenter(&server, room, "bob", true).await);
        } else if v.get("ok").is_some() {
            result = Some(v);
        }
    }
    let result = result.expect("a JSON result");
    report("WHEP player", &result);
    let failures = failed_steps(&result, &["watch", "switch", "delete"]);
    assert!(
        failures.is_empty(),
        "the WHEP player failed: {failures:?}\n{result}"
    );
    let room_state = server.sfu.room(room).expect("the room");
    let deadline = Instant::now() + MESSAGE_TIMEOUT;
    while room_state.member_count() > 2 {
        assert!(Instant::now() < deadline, "the DELETEd viewer stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(bob) = sharer {
        bob.leave().await.expect("bob leaves");
    }
    ann.leave().await.expect("ann leaves");
    server.shutdown().await;
}

const RECVONLY: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtcp-mux\r\na=setup:actpass\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=rtcp-mux\r\na=setup:actpass\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_whep_requests_get_their_status() {
    let server = start_secured().await;
    let http = Http(server.http_addr);
    let room = "whep-bad";
    let path = format!("/whep/{room}");
    let audience = format!("Bearer {}", token(room, "watcher", Role::Audience, 600));
    let auth = ("Authorization", audience.as_str());
    let sdp_type = ("Content-Type", "application/sdp");
    let expired = format!("Bearer {}", token(room, "late", Role::Audience, -60));
    let elsewhere = format!("Bearer {}", token("elsewhere", "x", Role::Audience, 600));
    let sendonly = RECVONLY.replace("a=recvonly", "a=sendonly");
    let cases = [
        Case::new("junk", &[sdp_type, auth], "hello", 400),
        Case::new("an offer that sends", &[sdp_type, auth], &sendonly, 400),
        Case::new("no content type", &[auth], RECVONLY, 415),
        Case::new(
            "text/plain",
            &[("Content-Type", "text/plain"), auth],
            RECVONLY,
            415,
        ),
        Case::new("no token", &[sdp_type], RECVONLY, 401),
        Case::new(
            "an expired token",
            &[sdp_type, ("Authorization", &expired)],
            RECVONLY,
            401,
        ),
        Case::new(
            "another room's token",
            &[sdp_type, ("Authorization", &elsewhere)],
            RECVONLY,
            401,
        ),
        Case::new(
            "a malformed token",
            &[sdp_type, ("Authorization", "Bearer x.y.z")],
            RECVONLY,
            401,
        ),
    ];
    for case in &cases {
        let reply = http.send("POST", &path, &case.headers, case.body).await;
        expect(&reply, case.status, case.what);
    }

    // A good viewer: its resource takes PATCH and one DELETE.
    let good = http.send("POST", &path, &[sdp_type, auth], RECVONLY).await;
    expect(&good, 201, "a recvonly offer with an audience token");
    assert!(good.body.contains("a=sendonly"), "{}", good.body);
    let location = header(&good, "location")[0].to_owned();
    let frag_type = ("Content-Type", "application/trickle-ice-sdpfrag");
    let trickle = "a=ice-ufrag:abcd\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    expect(
        &http.send("PATCH", &location, &[frag_type], trickle).await,
        204,
        "a trickle",
    );
    expect(
        &http.send("PATCH", &location, &[sdp_type], trickle).await,
        415,
        "PATCH with the wrong type",
    );
    let as_whip = location.replacen("/whep/", "/whip/", 1);
    expect(
        &http.send("DELETE", &as_whip, &[], "").await,
        404,
        "a WHEP session is no WHIP resource",
    );
    expect(
        &http
            .send(
                "PATCH",
                &format!("{path}/nosuchsession"),
                &[frag_type],
                trickle,
            )
            .await,
        404,
        "an unknown session",
    );
    let options = http.send("OPTIONS", &path, &[], "").await;
    expect(&options, 204, "OPTIONS");
    expect(
        &http.send("DELETE", &location, &[], "").await,
        200,
        "DELETE",
    );
    expect(
        &http.send("DELETE", &location, &[], "").await,
        404,
        "DELETE twice",
    );
    server.shutdown().await;
}
