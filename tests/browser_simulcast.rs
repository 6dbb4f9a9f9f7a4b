//! Simulcast with real browsers: headless Chromium publishes its fake camera at 1280x720 as
//! three simulcast encodings (rids q, h, f), and a second Chromium page (its own browser
//! context, its own protocol client written in `tests/browser/simulcast.mjs`, not the web
//! client) asks for `low`, `medium`, `high`, then `off`. Its `getStats` must show the
//! decoded frameWidth follow (320, 640, 1280, then no new frames), with framesDecoded rising
//! and no freeze of 1 s or more while the video is on, switches included. The publisher must
//! have sent all three layers, each for a sustained while, at their full sizes: the server's
//! transport-cc feedback has to let Chrome's bandwidth estimate rise that far.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules`; `tests/run.sh` installs both.
//! `cargo test --release --test browser_simulcast -- --nocapture` shows the script's progress
//! and the measured switch latencies.
mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Decoded width per requested quality, for the 1280x720 camera.
const PHASES: [(&str, u64); 3] = [("low", 320), ("medium", 640), ("high", 1280)];
/// Width per rid at the publisher.
const RIDS: [(&str, u64); 3] = [("q", 320), ("h", 640), ("f", 1280)];
/// How long each rid must have been sent without a break (the script's `--sustain-ms`):
/// Chrome starts every layer for a moment and then drops what its estimate does not allow.
const SUSTAINED_MS: u64 = 2000;
/// The longest the decoded frame count may stand still while the video is on.
const FREEZE_LIMIT_MS: u64 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_simulcast_follows_set_quality() {
    let server = start_server().await;
    let url = format!("http://localhost:{}", server.http_addr.port());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/simulcast.mjs");
    let mut child = Command::new("node")
        .args([script, "--url", &url, "--room", "simulcast"])
        .args(["--timeout-ms", "80000", "--switch-timeout-ms", "15000"])
        .args(["--layers-timeout-ms", "10000", "--hold-ms", "3000"])
        .args(["--sustain-ms", &SUSTAINED_MS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (is tests/browser set up?)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();

    let mut events = Vec::new();
    let mut result = None;
    while let Some(line) = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
        .await
        .expect("the simulcast script reports in time")
        .expect("stdout readable")
    {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v.get("ok").is_some() {
            result = Some(v);
        } else {
            eprintln!("[simulcast] {line}");
            events.push(v);
        }
    }
    let status = child.wait().await.expect("node exits");
    let result = result.expect("the script printed a result");
    assert_eq!(result["ok"], true, "browser side: {result}");
    assert!(status.success());

    report(&result);
    let failures = check(&result);
    assert!(
        failures.is_empty(),
        "simulcast through the server failed:\n  - {}\n\nlayer events: {}\nresult: {result}",
        failures.join("\n  - "),
        layer_events(&events),
    );
}

/// Prints what was measured (shown with `--nocapture`, or when the test fails).
fn report(result: &Value) {
    let rids = &result["publisher"]["rids"];
    for (rid, want) in RIDS {
        let r = &rids[rid];
        eprintln!(
            "publisher {rid}: widest {} (want {want}), longest run sent {} ms, {} bytes, \
             limitation now {}",
            r["max_frame_width"],
            r["longest_sending_ms"],
            r["bytes_sent"],
            r["quality_limitation_reason"]
        );
    }
    eprintln!(
        "publisher candidate pair: {}; all three layers sustained after {} ms",
        result["publisher"]["candidate_pair"], result["all_layers_within_ms"]
    );
    eprintln!(
        "publisher_layers applied [ms after `low`, rids]: {}",
        result["publisher"]["layer_updates"]
    );
    for phase in result["phases"].as_array().into_iter().flatten() {
        eprintln!(
            "{}: switch to {} took {} ms; widths seen {}; {} frames decoded; longest freeze {} ms",
            phase["quality"],
            phase["want_width"],
            phase["switch_ms"],
            phase["widths_seen"],
            phase["frames_decoded"],
            phase["max_freeze_ms"]
        );
    }
    eprintln!(
        "off: {} frames after the request, {} after the grace, last one {} ms after it",
        result["off"]["frames_after_off"],
        result["off"]["frames_after_grace"],
        result["off"]["last_frame_after_off_ms"]
    );
    eprintln!(
        "longest freeze while on: {} ms (sampled every ~{} ms); width changes [ms after \
         `low`, width]: {}; requests at {}",
        result["max_freeze_ms"],
        result["sample_interval_ms"],
        result["width_changes"],
        result["requests_ms"]
    );
}

/// Everything that is wrong with `result`, one sentence each.
fn check(result: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    let rids = &result["publisher"]["rids"];
    for (rid, want) in RIDS {
        let r = &rids[rid];
        let widest = r["max_frame_width"].as_u64().unwrap_or(0);
        let longest = r["longest_sending_ms"].as_u64().unwrap_or(0);
        if widest != want || longest < SUSTAINED_MS {
            failures.push(format!(
                "the publisher's rid {rid} was sent at most {longest} ms in a row (want \
                 {SUSTAINED_MS}) at widest {widest} (want {want}); Chrome says: limitation \
                 {}, target bitrate {}, candidate pair {}",
                r["quality_limitation_reason"],
                r["target_bitrate"],
                result["publisher"]["candidate_pair"]
            ));
        }
    }

    let phases = result["phases"].as_array().cloned().unwrap_or_default();
    if phases.len() != PHASES.len() {
        failures.push(format!(
            "{} phases instead of {}",
            phases.len(),
            PHASES.len()
        ));
    }
    for (phase, (quality, want)) in phases.iter().zip(PHASES) {
        assert_eq!(phase["quality"], quality);
        if phase["switch_ms"].is_null() {
            failures.push(format!(
                "after `{quality}` the decoded width never became {want} (seen: {})",
                phase["widths_seen"]
            ));
            continue;
        }
        let after: Vec<u64> = phase["widths_after_switch"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect();
        if after.iter().any(|&w| w != want) || phase["final_width"] != want {
            failures.push(format!(
                "after `{quality}` reached {want}, the width did not stay there: {after:?}"
            ));
        }
        if phase["frames_decoded"].as_u64().unwrap_or(0) < 10 {
            failures.push(format!(
                "during `{quality}` only {} frames were decoded",
                phase["frames_decoded"]
            ));
        }
        let freeze = phase["max_freeze_ms"].as_u64().unwrap_or(u64::MAX);
        if freeze >= FREEZE_LIMIT_MS {
            failures.push(format!(
                "during `{quality}` (the switch included) framesDecoded stood still for \
                 {freeze} ms"
            ));
        }
    }
    let freeze = result["max_freeze_ms"].as_u64().unwrap_or(u64::MAX);
    if freeze >= FREEZE_LIMIT_MS {
        failures.push(format!(
            "while on, framesDecoded stood still for {freeze} ms"
        ));
    }

    let off = &result["off"];
    if off["frames_after_grace"].as_u64() != Some(0) {
        failures.push(format!(
            "after `off` frames kept coming: {} decoded from 1.5 s after the request over {} \
             ms ({} bytes)",
            off["frames_after_grace"], off["checked_ms"], off["bytes_after_grace"]
        ));
    }
    if result["subscriber_ssrcs"].as_array().map(Vec::len) != Some(1) {
        failures.push(format!(
            "the subscriber's video came on more than one SSRC: {}",
            result["subscriber_ssrcs"]
        ));
    }
    if let Some(errors) = result["errors"].as_array().filter(|e| !e.is_empty()) {
        failures.push(format!("the clients saw errors: {errors:?}"));
    }
    failures
}

/// The progress lines about the publisher's layers, for a failure message.
fn layer_events(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["event"] == "layers_missing" || e["event"] == "all_layers_sent")
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
