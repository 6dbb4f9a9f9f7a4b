//! A server that stops while a browser is in a meeting: the web client shows that the server
//! stopped (`tests/browser/shutdown.mjs` drives Chromium) instead of trying to resume. Needs
//! what `tests/run.sh` installs.
mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const LIMIT: Duration = Duration::from_secs(90);

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// The script's next stdout line, as JSON.
async fn next_json(lines: &mut Lines) -> Value {
    let line = tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .expect("the script answers in time")
        .expect("its stdout reads")
        .expect("a line before the script ends");
    serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_the_server_stopped() {
    let server = start_server().await;
    let url = format!("http://localhost:{}", server.http_addr.port());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/shutdown.mjs");
    let mut child = Command::new("node")
        .args([script, "--url", &url])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (is tests/browser set up?)");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let first = next_json(&mut lines).await;
    assert_eq!(first["event"], "in_meeting", "{first}");
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("the server stops in time");

    let result = next_json(&mut lines).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["ended"]["reason"], "server_shutdown", "{result}");
    assert!(
        result["screen_text"]
            .as_str()
            .is_some_and(|t| t.contains("server")),
        "{result}"
    );
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("the script exits")
        .expect("its status");
    assert!(status.success());
}
