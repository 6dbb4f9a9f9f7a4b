//! Firefox is a full participant: Debian's firefox-esr (driven by puppeteer-core over WebDriver
//! BiDi, fake camera and microphone) meets Chromium and a bot through the web client, against
//! the real `roomcast` binary with its default log filter. `tests/browser/firefox-meeting.mjs`
//! checks what each browser shows (see its header): both browsers play each other's video and
//! audio; each one's tile of the other follows its size (Firefox's simulcast layers at
//! Chromium, Chromium's at Firefox: `getStats` frameWidth <= 320 small, >= 640 large); with the
//! bot in, both play the other two; mute, camera off and on, screen share, a resume after a
//! dropped connection, a reload, and a Safari-shaped publisher sending H.264 only (see
//! [`STEPS`]): Chromium plays it, Firefox (Debian's has no H.264) shows its tile as unplayable
//! (`track_unsupported`). This test checks that the bot receives both browsers' audio and
//! video, and that the server logged no DTLS warning for Firefox's handshakes (it offers DTLS
//! 1.3 and falls back, a normal handshake).
//!
//! Needs `/usr/bin/firefox-esr`, `/usr/bin/chromium` and `tests/browser/node_modules`;
//! `tests/run.sh` installs them. `cargo test --test browser_firefox -- --nocapture` prints
//! each step's figures.
mod common;

use std::process::Stdio;
use std::time::Duration;

use common::binary::ServeProcess;
use common::browser::{assert_no_failures, failed_steps, report};
use common::safari::Safari;
use common::*;
use roomcast_bots::RemoteTrackStats;
use roomcast_protocol::TrackKind;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// The script's steps this test runs, in order. `simulcast` and `receive` run while the two
/// browsers are alone in the room, before the bot joins (`meet`): with the bot in as well
/// (three publishers, Firefox encoding every layer for someone, on 2 loaded cores) the switch
/// to the small layer did not come within 20 s in two of three runs (Chromium kept Firefox's
/// 640 or 1280 layer, waiting for a keyframe of `q`; Firefox had also scaled its layers down to
/// 960/480/240 for CPU), while the two browsers alone switched within 12 s in five runs of
/// five. Every step must pass. `screen`, `resume` and `rejoin` were left out for a while: once
/// Firefox's PeerConnection had been renegotiated in the three-party room, the server's ICE
/// agent declared it failed while media flowed (it kept watching the first pair Firefox
/// nominated, not the one Firefox moved to after its ICE restart; see
/// vendor/webrtc-ice/ROOMCAST-PATCH.md), so the client restarted ICE every 15 s or so.
const STEPS: [&str; 9] = [
    "join",
    "simulcast",
    "receive",
    "meet",
    "mute",
    "screen",
    "resume",
    "rejoin",
    "codec",
];

/// `publisher`'s audio and VP8 video (a keyframe with its size seen) reach the bot.
fn receives_from(tracks: &[RemoteTrackStats], publisher: &str) -> bool {
    has_audio_from(tracks, publisher, 50)
        && tracks.iter().any(|t| {
            t.publisher_id == publisher
                && t.kind == TrackKind::Video
                && t.packets > 50
                && t.keyframes > 0
                && t.vp8_width.is_some_and(|w| w > 0)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_chromium_and_a_bot_meet() {
    // The binary as users start it (media on all addresses: Firefox pairs none of its
    // candidates with a loopback address), with its default log filter. Without congestion
    // control: this test is about Firefox's media path, and a debug server starved of CPU (two
    // browsers and a bot on two cores) estimates so little bandwidth that it pauses every
    // track for a while; the estimator has its own tests.
    let mut server = ServeProcess::start(&["--no-congestion-control"], None).await;
    let room = "firefox";
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/firefox-meeting.mjs"
    );
    let url = format!(
        "http://localhost:{}",
        server.http_addr.rsplit(':').next().expect("port")
    );
    let mut node = Command::new("node")
        .args([script, "--url", &url, "--room", room, "--bot-name", "Bot"])
        .args(["--steps", &STEPS.join(",")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (is tests/browser set up?)");
    let stderr = node.stderr.take().expect("stderr");
    let progress = tokio::spawn(async move {
        let mut all = String::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    let mut bot_check = None;
    let mut safari = None;
    let mut result = None;
    let ws_url = server.ws_url();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(600), lines.next_line())
        .await
        .expect("the Firefox script finishes")
        .expect("stdout readable")
    {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["event"] == "joined" {
            // Both browsers are in: the bot joins, and must receive both of them.
            let ids: Vec<String> = ["Fox", "Cam"]
                .iter()
                .map(|n| v["participants"][n].as_str().expect("id").to_owned())
                .collect();
            let bot = join_with(roomcast_bots::BotConfig::new(ws_url.clone(), room, "Bot")).await;
            bot_check = Some(tokio::spawn(async move {
                let seen = bot
                    .wait_for_media(
                        |t| ids.iter().all(|id| receives_from(t, id)),
                        Duration::from_secs(60),
                    )
                    .await;
                (seen.map_err(|e| e.to_string()), bot)
            }));
        } else if v["event"] == "add_h264_publisher" {
            safari = Some(Safari::publish(&ws_url, room, "Safari").await);
        } else if v.get("ok").is_some() {
            result = Some(v);
        }
    }
    node.wait().await.expect("node exits");
    let stderr = progress.await.expect("stderr read");
    let result = result.expect("the script printed a result");
    report("firefox meeting", &result);
    let mut failures = failed_steps(&result, &STEPS);
    failures.extend(check(&result));
    match bot_check {
        None => failures.push("the script never said both browsers had joined".into()),
        Some(check) => {
            let (seen, bot) = check.await.expect("bot task");
            if let Err(e) = seen {
                failures.push(format!(
                    "the bot did not receive both browsers' audio and video: {e}; it has {:?}",
                    bot.remote_tracks()
                ));
            }
            bot.leave().await.expect("the bot leaves");
        }
    }
    if let Some(safari) = safari {
        safari.leave().await;
    }
    server.terminate();
    server.exited_within(Duration::from_secs(10)).await;
    let logs = server.logs();
    let dtls_warnings: Vec<&Value> = logs
        .iter()
        .filter(|v| {
            v["level"] == "WARN" && v["target"].as_str().is_some_and(|t| t.starts_with("dtls"))
        })
        .collect();
    if !dtls_warnings.is_empty() {
        failures.push(format!(
            "the default log filter let {} DTLS warnings through, e.g. {}",
            dtls_warnings.len(),
            dtls_warnings[0]
        ));
    }
    // On failure, the end of the server's log follows the script's progress.
    let server_log: Vec<String> = logs
        .iter()
        .map(|v| format!("server {} {}: {}", v["level"], v["target"], v["fields"]))
        .collect();
    let shown = server_log.len().saturating_sub(25);
    let stderr = format!("{stderr}{}", server_log[shown..].join("\n"));
    assert_no_failures("Firefox in a meeting", &failures, &result, &stderr);
}

/// What the steps measured that is wrong, one sentence each.
fn check(result: &Value) -> Vec<String> {
    let steps = &result["steps"];
    let mut failures = Vec::new();
    for (step, want) in [("join", 1), ("meet", 2)] {
        if steps[step]["ok"] != true {
            continue;
        }
        for who in ["Fox", "Cam"] {
            let tiles = steps[step]["tiles"][who].as_array().map_or(0, Vec::len);
            if tiles != want {
                failures.push(format!(
                    "{step}: {who} showed {tiles} remote camera tiles, want {want}"
                ));
            }
        }
    }
    for (step, whose) in [
        ("simulcast", "Firefox's camera at Chromium"),
        ("receive", "Chromium's camera at Firefox"),
    ] {
        let s = &steps[step];
        if s["ok"] != true {
            continue;
        }
        let width = |key: &str| s[key].as_u64().unwrap_or(0);
        let (large, small, again) = (
            width("large_width"),
            width("small_width"),
            width("large_again_width"),
        );
        if large < 640 || small == 0 || small > 320 || again < 640 {
            failures.push(format!(
                "{whose} did not follow the tile's size: {large} -> {small} -> {again}"
            ));
        }
    }
    failures
}
