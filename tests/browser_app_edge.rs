//! The web client's edges in real browsers (`tests/browser/app-edge.mjs` drives Chromium; see
//! its header): an audience member never asks for the camera or microphone and watches the
//! host; a denied camera and a missing one each get the right message; a kicked participant
//! is told the host removed them; a join of a locked room is told it is locked; a dropped
//! WebSocket is resumed without anyone noticing. Needs what `tests/run.sh` installs.
//!
//! `cargo test --test browser_app_edge -- --nocapture` prints each step's timings and what
//! the pages showed.
mod common;

use std::time::Duration;

use common::browser::{
    assert_no_failures, failed_steps, report, run_script, wait_until_everyone_left,
};
use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_client_edges() {
    let server = start_server().await;
    // Long enough for the resume step's reconnect (a few failed attempts first, at 0.5, 1
    // and 2 s), short enough that the sessions of the browsers closed at the end (without
    // `leave`) are cleaned up quickly.
    server.sessions.resume.set_grace(Duration::from_secs(8));
    let url = format!("http://localhost:{}", server.http_addr.port());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/app-edge.mjs");
    let (result, stderr) = run_script(script, &["--url", &url], Duration::from_secs(200)).await;

    report("edge script", &result);
    let failures = check(&result);
    assert_no_failures("the web client's edges", &failures, &result, &stderr);

    wait_until_everyone_left(&server).await;
}

/// Everything that is wrong with `result`, one sentence each.
fn check(result: &Value) -> Vec<String> {
    let steps = &result["steps"];
    let mut failures = failed_steps(
        result,
        &["audience", "denied", "notfound", "kick", "locked", "resume"],
    );
    if steps.as_object().is_none() {
        return failures;
    }
    let audience = &steps["audience"];
    if audience["ok"] == true && audience["get_user_media_calls"] != 0 {
        failures.push(format!(
            "the audience member called getUserMedia: {audience}"
        ));
    }
    let denied = &steps["denied"];
    if denied["ok"] == true {
        for key in ["join_error", "banner"] {
            if denied[key].as_str().is_none_or(str::is_empty) {
                failures.push(format!("no {key} text for a denied camera: {denied}"));
            }
        }
    }
    let kick = &steps["kick"];
    if kick["ok"] == true && kick["ended_screen"].as_str().is_none_or(str::is_empty) {
        failures.push(format!("the kicked page's ended screen is empty: {kick}"));
    }
    let locked = &steps["locked"];
    if locked["ok"] == true && locked["fay_screen"] == "meeting" {
        failures.push(format!(
            "a join of a locked room reached the meeting: {locked}"
        ));
    }
    failures
}
