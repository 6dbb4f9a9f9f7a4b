//! Three real browsers meet through the server using the web client in `web/`: each sees
//! and hears the other two play, chat reaches everyone, and a leaver's tile disappears.
//! Also saves `docs/screenshot.png`. Needs what `tests/run.sh` installs.
mod common;

use std::time::Duration;

use common::*;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browsers_meet() {
    let server = start_server().await;
    // The script ends by closing the browsers without a `leave`: those sessions wait for a
    // resume first. A short grace keeps the cleanup check below quick.
    server.sfu.resume.set_grace(Duration::from_secs(1));
    let url = format!("http://localhost:{}", server.http_addr.port());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/meeting.mjs");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new("node")
            .args([script, "--url", &url])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the meeting script finishes in time")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no JSON result; stdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    assert_eq!(
        result["ok"],
        true,
        "{result}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success());
    assert_eq!(result["chat_delivered"], 3, "{result}");
    // The script closed every browser: the server must have cleaned all of them up.
    let deadline = tokio::time::Instant::now() + MESSAGE_TIMEOUT;
    while server.stats().participants != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "left over: {:?}",
            server.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.stats().rooms, 0);
}
