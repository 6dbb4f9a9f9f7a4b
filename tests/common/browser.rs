//! Running the Chromium scripts in `tests/browser/` from Rust tests: each prints progress to
//! stderr and one JSON result line, `{"ok":…,"steps":{name:{"ok","ms","error",…}}}`, last.
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// Runs `node script args…` under `limit`; its last JSON line and its stderr.
pub async fn run_script(script: &str, args: &[&str], limit: Duration) -> (Value, String) {
    let output = tokio::time::timeout(
        limit,
        Command::new("node")
            .arg(script)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} finishes within {limit:?}"))
    .expect("node runs (is tests/browser set up?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let result = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON result; stdout: {stdout}\nstderr: {stderr}"));
    (result, stderr)
}

/// Prints each step's outcome and figures (shown with `--nocapture`, or on failure).
pub fn report(what: &str, result: &Value) {
    eprintln!("{what}: {} ms in all", result["total_ms"]);
    if let Some(steps) = result["steps"].as_object() {
        for (name, step) in steps {
            eprintln!("  {name}: ok={} in {} ms: {step}", step["ok"], step["ms"]);
        }
    }
}

/// One sentence per step of `names` that did not run or failed.
pub fn failed_steps(result: &Value, names: &[&str]) -> Vec<String> {
    let steps = &result["steps"];
    if steps.as_object().is_none() {
        return vec![format!(
            "the script failed before any step: {}",
            result["error"]
        )];
    }
    let mut failures = Vec::new();
    for name in names {
        let step = &steps[name];
        if step.is_null() {
            failures.push(format!(
                "{name}: did not run (an earlier step it needs failed)"
            ));
        } else if step["ok"] != true {
            failures.push(format!("{name}: {}", step["error"]));
        }
    }
    failures
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Fails the test when `failures` is not empty, with the result and the end of stderr. The
/// caller's `failures` decide (from [`failed_steps`] of the steps it requires), not the
/// script's own `ok`, which is false when any step it ran failed, required or only reported.
pub fn assert_no_failures(what: &str, failures: &[String], result: &Value, stderr: &str) {
    assert!(
        failures.is_empty(),
        "{what} failed:\n  - {}\n\nresult: {result}\n\nstderr (end):\n{}",
        failures.join("\n  - "),
        tail(stderr, 60)
    );
    assert!(
        result["ok"].is_boolean(),
        "the script did not finish: {result}"
    );
}

/// Waits until the server has cleaned up every participant (the browsers closed; those that
/// closed without `leave` go once the resume grace has passed).
pub async fn wait_until_everyone_left(server: &roomcast::RunningServer) {
    let deadline =
        tokio::time::Instant::now() + server.sessions.resume.grace() + super::MESSAGE_TIMEOUT;
    while server.stats().participants != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "left over: {:?}",
            server.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
