//! Three real browsers meet through the server using the web client in `web/`, and the test
//! checks what each person sees (`tests/browser/meeting.mjs` drives Chromium; see its header):
//! the other two's camera tiles playing, chat with the unread badge, the stats overlay, the
//! received resolution following the tile's size, a muted microphone and a camera turned off
//! shown on the tile, a screen share as an extra tile, a leaver's tile going away. Saves
//! `target/screenshots/screenshot.png` (1280x800) and `screenshot-phone.png` (390x844) there;
//! `bash tests/browser/refresh-screenshots.sh` copies a run's to `docs/`. Needs what
//! `tests/run.sh` installs.
//!
//! `cargo test --test browser_meeting -- --nocapture` prints each step's timings and the
//! measured widths.
mod common;

use std::time::Duration;

use common::browser::{
    assert_no_failures, failed_steps, report, run_script, wait_until_everyone_left,
};
use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browsers_meet() {
    let server = start_server().await;
    // The script ends by closing the browsers without a `leave`: those sessions wait for a
    // resume first. A short grace keeps the cleanup check below quick.
    server.sessions.resume.set_grace(Duration::from_secs(1));
    let url = format!("http://localhost:{}", server.http_addr.port());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/meeting.mjs");
    let screenshot = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/screenshots/screenshot.png"
    );
    let phone = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/screenshots/screenshot-phone.png"
    );
    let started = std::time::SystemTime::now();
    let (result, stderr) = run_script(
        script,
        &[
            "--url",
            &url,
            "--screenshot",
            screenshot,
            "--phone-screenshot",
            phone,
        ],
        Duration::from_secs(420),
    )
    .await;

    report("meeting script", &result);
    let mut failures = check(&result);
    if result["steps"]["screenshots"]["ok"] == true {
        for path in [screenshot, phone] {
            let fresh = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= started);
            let png =
                std::fs::read(path).is_ok_and(|b| b.starts_with(b"\x89PNG") && b.len() > 10_000);
            if !fresh || !png {
                failures.push(format!("{path} was not written as a PNG by this run"));
            }
        }
    }
    assert_no_failures("the meeting in the browser", &failures, &result, &stderr);

    // The script closed every browser: the server must have cleaned all of them up.
    wait_until_everyone_left(&server).await;
    assert_eq!(server.stats().rooms, 0);
}

/// Everything that is wrong with `result`, one sentence each.
///
/// The `screen` and `leave` steps renegotiate every subscriber's PeerConnection (a track
/// added, a participant gone). They were only reported for a while: in about half the runs a
/// subscriber's video stopped right after. The cause was the server's ICE agent keeping the
/// first pair the browser nominated while the browser had moved to another (see
/// vendor/webrtc-ice/ROOMCAST-PATCH.md): the connection was declared failed while media flowed.
fn check(result: &Value) -> Vec<String> {
    let steps = &result["steps"];
    let mut failures = failed_steps(
        result,
        &[
            "join",
            "screenshots",
            "chat",
            "stats",
            "resolution",
            "mute",
            "camera",
            "screen",
            "leave",
        ],
    );
    if steps.as_object().is_none() {
        return failures;
    }
    let join = &steps["join"];
    if join["ok"] == true {
        for who in ["Ann", "Ben", "Cleo"] {
            let tiles = join["tiles"][who].as_array().map_or(0, Vec::len);
            if tiles != 2 {
                failures.push(format!("{who} showed {tiles} remote camera tiles, want 2"));
            }
        }
    }
    let chat = &steps["chat"];
    if chat["ok"] == true {
        for who in ["Ben", "Cleo"] {
            if !chat["delivered_ms"][who].is_u64() {
                failures.push(format!("no chat delivery time for {who}: {chat}"));
            }
        }
    }
    let screen = &steps["screen"];
    if screen["ok"] == true {
        for who in ["Ann", "Ben"] {
            if !screen["shown"][who]["ms"].is_u64() || !screen["gone_ms"][who].is_u64() {
                failures.push(format!(
                    "the screen share at {who} is not accounted for: {screen}"
                ));
            }
        }
    }
    let resolution = &steps["resolution"];
    if resolution["ok"] == true {
        let width = |key: &str| resolution[key].as_u64().unwrap_or(0);
        let (large, small, again) = (
            width("large_width"),
            width("small_width"),
            width("large_again_width"),
        );
        if large < 640 || small == 0 || small > 320 || small >= large {
            failures.push(format!(
                "shrinking the tile did not lower the received width: {large} -> {small}"
            ));
        }
        if again < 640 || again <= small {
            failures.push(format!(
                "enlarging the tile did not raise the received width: {small} -> {again}"
            ));
        }
    }
    failures
}
