//! WHIP ingest (RFC 9725) with a real third-party encoder: Meetecho's `whip-client`
//! (Debian's simple-whip-client, GStreamer's webrtcbin) publishes a VP8 test pattern and an
//! Opus tone into a room with a join token; a bot in the room receives both. Then the
//! requests a broken or hostile client sends, each with its status, while a bystander pair's
//! media goes on; and moderation ends a WHIP session like any other.
//!
//! Needs `whip-client` and the GStreamer plugins (`bash tests/whip/setup.sh`, run by
//! `tests/run.sh`).
mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::browser::{run_script, tail};
use common::http::{expect, header, Case, Http};
use common::*;
use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::whep::{restart_ice, IceConnections, Target};
use roomcast_bots::Bot;
use roomcast_protocol::{ClientMessage, Role, ServerMessage, TrackKind};
use roomcast_sfu::auth::{mint, unix_now};
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::APIBuilder;
use webrtc::media::Sample;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::track::track_local::TrackLocal;

const SECRET: &str = "whip-integration-test-secret-0123456789";

async fn start_secured() -> RunningServer {
    let mut args = ServeArgs::local_ephemeral();
    args.jwt_secret = Some(SECRET.to_owned());
    start_with(args).await
}

fn token(room: &str, name: &str, role: Role, ttl_secs: i64) -> String {
    let exp = (unix_now() as i64 + ttl_secs).max(0) as u64;
    mint(SECRET, room, name, role, exp).expect("minted")
}

/// The participant id of the one named `name` that `bot` saw join (before or after now).
async fn joined_as(bot: &Bot, name: &str) -> String {
    let id_of = |msg: &ServerMessage| match msg {
        ServerMessage::ParticipantJoined { participant } if participant.name == name => {
            Some(participant.id.clone())
        }
        _ => None,
    };
    if let Some(p) = bot.joined_participants().iter().find(|p| p.name == name) {
        return p.id.clone();
    }
    let cursor = bot.message_cursor();
    if let Some(id) = bot.messages().iter().find_map(id_of) {
        return id;
    }
    let msg = bot
        .wait_for_message_after(cursor, |m| id_of(m).is_some(), MEDIA_TIMEOUT * 2)
        .await
        .unwrap_or_else(|e| panic!("{name} never joined: {e}"));
    id_of(&msg).expect("the message matched")
}

async fn wait_left(bot: &Bot, cursor: roomcast_bots::MessageCursor, id: &str) {
    bot.wait_for_message_after(
        cursor,
        |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if participant_id == id),
        MEDIA_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{id} did not leave: {e}"));
}

/// The preload that lets Debian 12's `whip-client` start (see `tests/whip/soupcheck.c`),
/// compiled with the C compiler Rust links with.
fn soup_shim() -> std::path::PathBuf {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("whip-soupcheck.so");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/whip/soupcheck.c");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&out)
        .arg(source)
        .arg("-ldl")
        .status()
        .expect("cc runs");
    assert!(built.success(), "the whip-client preload compiles");
    out
}

/// `whip-client` publishing a 320×240 VP8 ball and an Opus tone, killed with the test.
fn whip_client(url: &str, token: &str) -> tokio::process::Child {
    tokio::process::Command::new("whip-client")
        .env("LD_PRELOAD", soup_shim())
        .args([
            "-u",
            url,
            "-t",
            token,
            "-l",
            "3",
            "-A",
            "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! queue ! \
             opusenc ! rtpopuspay pt=111 ssrc=1 ! queue ! \
             application/x-rtp,media=audio,encoding-name=OPUS,payload=111",
            "-V",
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 ! \
             videoconvert ! queue ! vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 ssrc=2 ! \
             queue ! application/x-rtp,media=video,encoding-name=VP8,payload=96",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("whip-client starts (bash tests/whip/setup.sh installs it)")
}

/// A bot watching `room` with an audience token.
async fn audience_bot(server: &RunningServer, room: &str) -> Bot {
    let token = token(room, "viewer", Role::Audience, 600);
    join_with(viewer(server, room, "viewer", Role::Audience).with_token(token)).await
}

/// `whip-client` publishing into `room` as "OBS" with a presenter token, and its
/// participant id as `viewer` saw it join.
async fn encoder_in(
    server: &RunningServer,
    room: &str,
    viewer: &Bot,
) -> (tokio::process::Child, String) {
    let url = format!("http://{}/whip/{room}", server.http_addr);
    let mut encoder = whip_client(&url, &token(room, "OBS", Role::Presenter, 600));
    // GStreamer's start-up is slow on a loaded machine: the media timeout, not the message one.
    match tokio::time::timeout(MEDIA_TIMEOUT, joined_as(viewer, "OBS")).await {
        Ok(id) => (encoder, id),
        Err(_) => {
            encoder.start_kill().ok();
            let out = encoder
                .wait_with_output()
                .await
                .expect("whip-client output");
            panic!(
                "whip-client never joined {room} within {MEDIA_TIMEOUT:?}; it said:\n{}\n{}",
                tail(&String::from_utf8_lossy(&out.stdout), 30),
                tail(&String::from_utf8_lossy(&out.stderr), 30)
            );
        }
    }
}

/// Asks a running `whip-client` to stop as Ctrl-C would: it sends DELETE, then exits.
fn interrupt(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(pid as i32, libc::SIGINT);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_client_publishes_vp8_and_opus_that_a_bot_receives() {
    let server = start_secured().await;
    let room = "whip-room";
    let viewer = audience_bot(&server, room).await;
    let started = Instant::now();
    let (mut encoder, id) = encoder_in(&server, room, &viewer).await;
    let joined = Instant::now();
    let tracks = viewer
        .wait_for_media(
            |t| has_audio_from(t, &id, 50) && has_video_from(t, &id, 30, 320, 240),
            MEDIA_TIMEOUT,
        )
        .await;
    let tracks = match tracks {
        Ok(tracks) => tracks,
        Err(e) => {
            encoder.start_kill().ok();
            let out = encoder
                .wait_with_output()
                .await
                .expect("whip-client output");
            panic!(
                "the viewer did not get the encoder's audio and video: {e}\n{:?}\nwhip-client said:\n{}\n{}",
                viewer.remote_tracks(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    let first = tracks
        .iter()
        .filter(|t| t.publisher_id == id)
        .filter_map(|t| t.first_packet_at)
        .min()
        .expect("a first packet");
    println!(
        "whip-client start to first media at the viewer: {} ms; its join (participant_joined \
         at the viewer) to first media: {} ms",
        first.saturating_duration_since(started).as_millis(),
        first.saturating_duration_since(joined).as_millis()
    );
    let video = tracks
        .iter()
        .find(|t| t.publisher_id == id && t.kind == TrackKind::Video)
        .expect("video");
    assert_eq!(video.codec_mime.to_ascii_lowercase(), "video/vp8");
    let audio = tracks
        .iter()
        .find(|t| t.publisher_id == id && t.kind == TrackKind::Audio)
        .expect("audio");
    assert_eq!(audio.codec_mime.to_ascii_lowercase(), "audio/opus");
    assert_media_keeps_flowing(&viewer, &[id.as_str()]).await;

    // Ctrl-C: whip-client sends DELETE and the participant leaves at once (not after an ICE
    // timeout).
    let cursor = viewer.message_cursor();
    let asked = Instant::now();
    interrupt(&encoder);
    wait_left(&viewer, cursor, &id).await;
    println!(
        "whip-client interrupted to participant_left: {} ms",
        asked.elapsed().as_millis()
    );
    let _ = tokio::time::timeout(MESSAGE_TIMEOUT, encoder.wait()).await;
    server.shutdown().await;
}

/// A Chromium participant (the web client, `tests/browser/interop.mjs`) in the room plays
/// the encoder's video and hears its audio. On an open server: the encoder's bearer is
/// anything, its name comes from the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_a_whip_client() {
    let server = start_server().await;
    let room = "whip-chromium";
    let viewer = join_with(viewer(&server, room, "viewer", Role::Audience)).await;
    let url = format!("http://{}/whip/{room}?name=OBS", server.http_addr);
    let mut encoder = whip_client(&url, "any");
    let id = joined_as(&viewer, "OBS").await;
    let page = format!("http://localhost:{}", server.http_addr.port());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/interop.mjs");
    let args = [
        "--url",
        page.as_str(),
        "--room",
        room,
        "--name",
        "Chromium",
        "--expect-remote",
        id.as_str(),
        "--timeout-ms",
        "40000",
        "--hold-ms",
        "2000",
    ];
    let (result, stderr) = run_script(script, &args, Duration::from_secs(90)).await;
    println!("Chromium playing whip-client: {result}");
    assert_eq!(
        result["ok"],
        true,
        "Chromium did not play the encoder: {result}\n{}",
        tail(&stderr, 40)
    );
    assert!(
        result["frames_decoded"].as_u64().unwrap_or(0) > 10,
        "{result}"
    );
    assert!(
        result["audio_bytes_received"].as_u64().unwrap_or(0) > 0,
        "{result}"
    );
    encoder.start_kill().ok();
    server.shutdown().await;
}

/// An encoder whose ICE agent (libnice) checks its pair only every 25 s stays as long as its
/// media flows. The server's media port takes SRTP past the ICE agent, which then heard
/// only the encoder's checks: it declared the encoder gone 20 s after connecting
/// (disconnected after 5 s, failed 15 s later) and the webinar lost its presenter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_client_that_only_sends_media_stays_past_the_ice_timeouts() {
    let server = start_secured().await;
    let room = "whip-long";
    let viewer = audience_bot(&server, room).await;
    let (mut encoder, id) = encoder_in(&server, room, &viewer).await;
    viewer
        .wait_for_media(|t| has_audio_from(t, &id, 20), MEDIA_TIMEOUT)
        .await
        .expect("the encoder's audio flows");
    let cursor = viewer.message_cursor();
    // Past the server's ICE disconnected + failed timeouts (5 + 15 s) since the encoder
    // connected, with a margin for the agent's checking interval.
    let left = viewer
        .wait_for_message_after(
            cursor,
            |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == id),
            Duration::from_secs(23),
        )
        .await;
    assert!(
        left.is_err(),
        "the encoder was removed while its media flowed: {left:?}"
    );
    assert_media_keeps_flowing(&viewer, &[id.as_str()]).await;
    encoder.start_kill().ok();
    let _ = encoder.wait().await;
    server.shutdown().await;
}

/// An encoder that vanishes without DELETE (killed, unplugged) is removed when ICE gives up
/// on it, as any participant is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_client_that_vanishes_leaves_when_ice_fails() {
    let server = start_secured().await;
    let room = "whip-gone";
    let viewer = audience_bot(&server, room).await;
    let (mut encoder, id) = encoder_in(&server, room, &viewer).await;
    viewer
        .wait_for_media(|t| has_audio_from(t, &id, 20), MEDIA_TIMEOUT)
        .await
        .expect("the encoder's audio flows");
    let cursor = viewer.message_cursor();
    let killed = Instant::now();
    encoder.start_kill().expect("SIGKILL");
    let _ = encoder.wait().await;
    // ICE's consent runs out after its disconnected (5 s) and failed (25 s) timeouts at most.
    viewer
        .wait_for_message_after(
            cursor,
            |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == id),
            Duration::from_secs(45),
        )
        .await
        .expect("the vanished encoder leaves");
    println!(
        "whip-client killed to participant_left: {} ms",
        killed.elapsed().as_millis()
    );
    server.shutdown().await;
}

/// A webrtc-rs offer publishing audio and video, as an encoder would send it.
async fn offer() -> (Arc<RTCPeerConnection>, String) {
    let mut media = MediaEngine::default();
    media.register_default_codecs().expect("codecs");
    let api = APIBuilder::new().with_media_engine(media).build();
    let pc = Arc::new(
        api.new_peer_connection(RTCConfiguration::default())
            .await
            .expect("a PeerConnection"),
    );
    for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                send_encodings: Vec::new(),
            }),
        )
        .await
        .expect("a transceiver");
    }
    let offer = pc.create_offer(None).await.expect("an offer");
    pc.set_local_description(offer.clone())
        .await
        .expect("offer applied");
    (pc, offer.sdp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_whip_requests_get_their_status_and_the_room_plays_on() {
    let server = start_secured().await;
    let http = Http(server.http_addr);
    let room = "whip-bad";
    let path = format!("/whip/{room}");
    // A bystander pair exchanging media the whole time.
    let speaker = join_with(
        config(&server, room, "speaker", Role::Host).with_token(token(
            room,
            "speaker",
            Role::Host,
            600,
        )),
    )
    .await;
    let listener = join_with(
        viewer(&server, room, "listener", Role::Audience).with_token(token(
            room,
            "listener",
            Role::Audience,
            600,
        )),
    )
    .await;
    let speaker_id = speaker.participant_id().to_owned();
    listener
        .wait_for_media(|t| has_audio_from(t, &speaker_id, 20), MEDIA_TIMEOUT)
        .await
        .expect("the bystanders' media flows");

    let (_pc, sdp) = offer().await;
    let presenter = token(room, "enc-a", Role::Presenter, 600);
    let bearer = format!("Bearer {presenter}");
    let auth = ("Authorization", bearer.as_str());
    let sdp_type = ("Content-Type", "application/sdp");

    // The refusals, none of which joins anyone.
    let bearer_of = |t: String| format!("Bearer {t}");
    let expired = bearer_of(token(room, "late", Role::Presenter, -60));
    let elsewhere = bearer_of(token("elsewhere", "x", Role::Presenter, 600));
    let audience = bearer_of(token(room, "watcher", Role::Audience, 600));
    // It joins before its offer is refused, and leaves again.
    let broken = bearer_of(token(room, "enc-broken", Role::Presenter, 600));
    let json = "{\"sdp\":\"v=0\"}";
    let cases = [
        Case::new("a JSON body", &[sdp_type, auth], json, 400),
        Case::new("junk", &[sdp_type, auth], "hello", 400),
        Case::new(
            "a broken SDP",
            &[sdp_type, ("Authorization", &broken)],
            "v=0\r\nm=audio x\r\n",
            400,
        ),
        Case::new("no content type", &[auth], &sdp, 415),
        Case::new(
            "text/plain",
            &[("Content-Type", "text/plain"), auth],
            &sdp,
            415,
        ),
        Case::new("no token", &[sdp_type], &sdp, 401),
        Case::new(
            "a malformed token",
            &[sdp_type, ("Authorization", "Bearer not.a.jwt")],
            &sdp,
            401,
        ),
        Case::new(
            "an expired token",
            &[sdp_type, ("Authorization", &expired)],
            &sdp,
            401,
        ),
        Case::new(
            "another room's token",
            &[sdp_type, ("Authorization", &elsewhere)],
            &sdp,
            401,
        ),
        Case::new(
            "an audience token",
            &[sdp_type, ("Authorization", &audience)],
            &sdp,
            403,
        ),
    ];
    for case in &cases {
        let reply = http.send("POST", &path, &case.headers, case.body).await;
        expect(&reply, case.status, case.what);
        if case.status == 401 {
            assert_eq!(
                header(&reply, "www-authenticate"),
                ["Bearer"],
                "{}",
                case.what
            );
        }
    }
    let oversized = "v=0\r\n".to_owned() + &"a=x\r\n".repeat(20_000);
    expect(
        &http
            .send("POST", &path, &[sdp_type, auth], &oversized)
            .await,
        413,
        "a 100 kB body",
    );

    // Two real sessions.
    let a = http.send("POST", &path, &[sdp_type, auth], &sdp).await;
    expect(&a, 201, "a good offer");
    assert_eq!(header(&a, "content-type"), ["application/sdp"]);
    assert!(a.body.starts_with("v=0"), "{}", a.body);
    assert!(
        a.body.contains("a=candidate:"),
        "non-trickle: candidates in the answer\n{}",
        a.body
    );
    assert!(a.body.contains("a=end-of-candidates"), "{}", a.body);
    let location_a = header(&a, "location")[0].to_owned();
    assert!(location_a.starts_with(&format!("{path}/")), "{location_a}");
    let etag_a = header(&a, "etag")[0].to_owned();
    let id_a = joined_as(&listener, "enc-a").await;

    let (_pc_b, sdp_b) = offer().await;
    let bearer_b = format!("Bearer {}", token(room, "enc-b", Role::Presenter, 600));
    let b = http
        .send(
            "POST",
            &path,
            &[sdp_type, ("Authorization", &bearer_b)],
            &sdp_b,
        )
        .await;
    expect(&b, 201, "a second encoder");
    let location_b = header(&b, "location")[0].to_owned();
    let id_b = joined_as(&listener, "enc-b").await;

    let frag = "a=ice-ufrag:zzzz\r\na=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    let frag_type = ("Content-Type", "application/trickle-ice-sdpfrag");
    let own_ufrag = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .expect("the offer's ufrag")
        .to_owned();
    let trickle = format!(
        "a=ice-ufrag:{own_ufrag}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
    );
    let unknown = format!("{path}/nosuchsession");
    let other_room = location_a.replacen(room, "other-room", 1);
    let patches = [
        (
            &location_a,
            Case::new(
                "a trickle",
                &[frag_type, ("If-Match", &etag_a)],
                &trickle,
                204,
            ),
        ),
        (
            &location_a,
            Case::new("a trickle without If-Match", &[frag_type], &trickle, 204),
        ),
        (
            &location_b,
            Case::new(
                "If-Match naming another session",
                &[frag_type, ("If-Match", &etag_a)],
                &trickle,
                412,
            ),
        ),
        (
            &location_b,
            Case::new(
                "an ICE restart naming another session",
                &[frag_type, ("If-Match", &etag_a)],
                frag,
                412,
            ),
        ),
        (
            &location_a,
            Case::new("an ICE restart without If-Match", &[frag_type], frag, 428),
        ),
        (
            &location_a,
            Case::new("JSON as a fragment", &[frag_type], "{\"candidate\":1}", 400),
        ),
        (
            &location_a,
            Case::new(
                "the wrong content type",
                &[("Content-Type", "application/sdp")],
                &trickle,
                415,
            ),
        ),
        (
            &unknown,
            Case::new("an unknown session", &[frag_type], &trickle, 404),
        ),
        (
            &other_room,
            Case::new(
                "a session under another room's path",
                &[frag_type],
                &trickle,
                404,
            ),
        ),
    ];
    for (location, case) in &patches {
        let reply = http.send("PATCH", location, &case.headers, case.body).await;
        expect(&reply, case.status, case.what);
    }
    let options = http.send("OPTIONS", &path, &[], "").await;
    expect(&options, 204, "OPTIONS");
    assert!(header(&options, "allow")[0].contains("POST"));

    // DELETE: the participant leaves; a second DELETE and a PATCH find nothing.
    let cursor = listener.message_cursor();
    expect(
        &http.send("DELETE", &location_a, &[], "").await,
        200,
        "DELETE",
    );
    wait_left(&listener, cursor, &id_a).await;
    expect(
        &http.send("DELETE", &location_a, &[], "").await,
        404,
        "DELETE twice",
    );
    expect(
        &http
            .send("PATCH", &location_a, &[frag_type], &trickle)
            .await,
        404,
        "PATCH after DELETE",
    );

    // A host's kick ends a WHIP session as any other: its resource is gone too.
    let cursor = listener.message_cursor();
    speaker
        .send(&ClientMessage::Kick {
            participant_id: id_b.clone(),
        })
        .await
        .expect("kick sent");
    wait_left(&listener, cursor, &id_b).await;
    let deadline = Instant::now() + MESSAGE_TIMEOUT;
    loop {
        let reply = http.send("DELETE", &location_b, &[], "").await;
        if reply.status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the kicked session's resource stays: {}",
            reply.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The bystanders noticed nothing.
    assert_media_keeps_flowing(&listener, &[speaker_id.as_str()]).await;
    server.shutdown().await;
}

/// A webrtc-rs encoder publishing an Opus track over WHIP, as OBS would: 50 packets a second
/// (for a minute at most) once connected.
struct WhipPublisher {
    pc: Arc<RTCPeerConnection>,
    connections: IceConnections,
    location: String,
    etag: String,
    sender: tokio::task::JoinHandle<()>,
}

impl WhipPublisher {
    async fn publish(server: &RunningServer, room: &str, token: &str) -> WhipPublisher {
        let mut media = MediaEngine::default();
        media.register_default_codecs().expect("codecs");
        let api = APIBuilder::new().with_media_engine(media).build();
        let pc = Arc::new(
            api.new_peer_connection(RTCConfiguration::default())
                .await
                .expect("a PeerConnection"),
        );
        let connections = IceConnections::watch(&pc);
        let track = Arc::new(TrackLocalStaticSample::new(
            RTCRtpCodecCapability {
                mime_type: "audio/opus".to_owned(),
                clock_rate: 48_000,
                channels: 2,
                ..Default::default()
            },
            "audio".to_owned(),
            "encoder".to_owned(),
        ));
        pc.add_transceiver_from_track(
            Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                send_encodings: Vec::new(),
            }),
        )
        .await
        .expect("an audio sender");
        let offer = pc.create_offer(None).await.expect("an offer");
        pc.set_local_description(offer.clone())
            .await
            .expect("offer applied");
        let bearer = format!("Bearer {token}");
        let reply = Http(server.http_addr)
            .send(
                "POST",
                &format!("/whip/{room}"),
                &[
                    ("Content-Type", "application/sdp"),
                    ("Authorization", &bearer),
                ],
                &offer.sdp,
            )
            .await;
        expect(&reply, 201, "the encoder's POST");
        pc.set_remote_description(RTCSessionDescription::answer(reply.body.clone()).expect("SDP"))
            .await
            .expect("answer applied");
        let sender = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for _ in 0..3_000 {
                tick.tick().await;
                // An Opus TOC byte and a silent frame: the bots count packets, not sound.
                let sample = Sample {
                    data: bytes::Bytes::from_static(&[0xf8, 0xff, 0xfe]),
                    duration: Duration::from_millis(20),
                    ..Default::default()
                };
                let _ = track.write_sample(&sample).await;
            }
        });
        WhipPublisher {
            pc,
            connections,
            location: header(&reply, "location")[0].to_owned(),
            etag: header(&reply, "etag")[0].to_owned(),
            sender,
        }
    }
}

/// An encoder whose network changed restarts ICE with a PATCH (RFC 9725 §4.4.1.2): it gets
/// the server's new credentials and candidates in the 200 and a new ETag, its new ICE
/// session connects, and its audio keeps reaching the room over it. A restart without
/// If-Match (428) or naming the old ICE session (412) changes nothing; a plain trickle is
/// still 204.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_encoder_restarts_ice_through_patch_and_keeps_publishing() {
    let server = start_secured().await;
    let http = Http(server.http_addr);
    let room = "whip-restart";
    let viewer = audience_bot(&server, room).await;
    let mut encoder =
        WhipPublisher::publish(&server, room, &token(room, "enc", Role::Presenter, 600)).await;
    let id = joined_as(&viewer, "enc").await;
    viewer
        .wait_for_media(|t| has_audio_from(t, &id, 50), MEDIA_TIMEOUT)
        .await
        .expect("the encoder's audio arrives");
    assert!(encoder.connections.count() >= 1);

    let frag_type = ("Content-Type", "application/trickle-ice-sdpfrag");
    let other = "a=ice-ufrag:zzzz\r\na=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz\r\n";
    let refused = [
        Case::new("a restart without If-Match", &[frag_type], other, 428),
        Case::new(
            "a restart naming another ICE session",
            &[frag_type, ("If-Match", "\"not-this-one\"")],
            other,
            412,
        ),
        Case::new(
            "a restart without a password",
            &[frag_type, ("If-Match", "*")],
            "a=ice-ufrag:zzzz\r\n",
            400,
        ),
    ];
    for case in &refused {
        let reply = http
            .send("PATCH", &encoder.location, &case.headers, case.body)
            .await;
        expect(&reply, case.status, case.what);
    }
    let trickle = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    expect(
        &http
            .send(
                "PATCH",
                &encoder.location,
                &[frag_type, ("If-Match", &encoder.etag)],
                trickle,
            )
            .await,
        204,
        "a trickle",
    );

    let before = encoder.connections.count();
    let target = Target {
        authority: &server.http_addr.to_string(),
        location: &encoder.location,
    };
    let reply = restart_ice(&encoder.pc, target, "*", MESSAGE_TIMEOUT)
        .await
        .expect("the ICE restart is answered");
    assert_eq!(
        reply.header("content-type"),
        Some("application/trickle-ice-sdpfrag")
    );
    let etag = reply.header("etag").expect("a new ETag").to_owned();
    assert_ne!(etag, encoder.etag, "a new ICE session, a new entity tag");
    assert!(reply.body.contains("a=ice-ufrag:"), "{}", reply.body);
    assert!(reply.body.contains("a=candidate:"), "{}", reply.body);
    encoder
        .connections
        .wait_beyond(before, MEDIA_TIMEOUT)
        .await
        .expect("the new ICE session connects");
    // The restart dropped the old candidate pairs: what arrives now came over the new one.
    let after = packets_from(&viewer.remote_tracks(), &id);
    viewer
        .wait_for_media(|t| packets_from(t, &id) >= after + 100, MEDIA_TIMEOUT)
        .await
        .expect("the encoder's audio arrives over the new ICE session");
    println!(
        "ICE restart: {} packets before the new session connected, {} after",
        after,
        packets_from(&viewer.remote_tracks(), &id)
    );
    // The old ICE session's entity tag is refused now; the new one trickles.
    let stale = [("If-Match", encoder.etag.as_str()), frag_type];
    expect(
        &http.send("PATCH", &encoder.location, &stale, trickle).await,
        412,
        "a trickle for the old ICE session",
    );
    encoder.etag = etag;
    expect(
        &http
            .send(
                "PATCH",
                &encoder.location,
                &[frag_type, ("If-Match", &encoder.etag)],
                trickle,
            )
            .await,
        204,
        "a trickle for the new ICE session",
    );
    let cursor = viewer.message_cursor();
    expect(
        &http.send("DELETE", &encoder.location, &[], "").await,
        200,
        "DELETE",
    );
    wait_left(&viewer, cursor, &id).await;
    encoder.sender.abort();
    let _ = encoder.pc.close().await;
    server.shutdown().await;
}
