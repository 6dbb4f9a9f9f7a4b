//! A real browser against the server: headless Chromium (fake camera and microphone) joins
//! beside a bot. The browser must decode the bot's video and play its audio; the bot must
//! receive the browser's audio and video. Chrome's SDP (BUNDLE, rtcp-mux, mid/rid,
//! transport-cc) is what real users send.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules`; `tests/run.sh` installs both.
mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use roomcast_protocol::TrackKind;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_and_a_bot_exchange_audio_and_video() {
    let server = start_server().await;
    let bot = join(&server, "interop", "bot").await;
    let url = format!("http://localhost:{}", server.http_addr.port());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/interop.mjs");
    let mut child = Command::new("node")
        .args([
            script, "--url", &url, "--room", "interop", "--name", "Chromium",
        ])
        .args([
            "--expect-remote",
            bot.participant_id(),
            "--timeout-ms",
            "40000",
            "--hold-ms",
            "4000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (is tests/browser set up?)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();

    let mut browser_id = None;
    let mut result = None;
    while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the browser script reports in time")
        .expect("stdout readable")
    {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["event"] == "joined" {
            let id = v["participant_id"].as_str().expect("id").to_owned();
            bot.wait_for_media(
                |t| {
                    let from = |kind| {
                        t.iter()
                            .any(|x| x.publisher_id == id && x.kind == kind && x.packets > 50)
                    };
                    let keyframe = t.iter().any(|x| {
                        x.publisher_id == id && x.kind == TrackKind::Video && x.keyframes > 0
                    });
                    from(TrackKind::Audio) && from(TrackKind::Video) && keyframe
                },
                Duration::from_secs(40),
            )
            .await
            .expect("the bot receives the browser's audio and video");
            browser_id = Some(id);
        } else if v.get("ok").is_some() {
            result = Some(v);
        }
    }
    let status = child.wait().await.expect("node exits");
    let result = result.expect("the script printed a result");
    assert_eq!(result["ok"], true, "browser side: {result}");
    assert!(status.success());
    assert!(browser_id.is_some(), "the browser joined");
    assert!(
        result["frames_decoded"].as_u64().unwrap_or(0) > 10,
        "{result}"
    );
    assert_eq!(
        result["frame_width"], 640,
        "the bot's 640x360 loop: {result}"
    );
    assert!(
        result["audio_bytes_received"].as_u64().unwrap_or(0) > 0,
        "{result}"
    );
}
