//! `roomcast bots` as a user runs it: the real binary, as a subprocess, against a server this
//! test starts in-process. Checks what the user sees: exit status, stdout, stderr, the JSON.
mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use common::*;
use roomcast::{RunningServer, ServeArgs};
use serde_json::Value;
use tokio::process::Command;

const ROOMCAST: &str = env!("CARGO_BIN_EXE_roomcast");

/// Runs `roomcast bots ARGS`, killed if it takes longer than `limit`.
async fn bots(args: &[&str], limit: Duration) -> Output {
    let mut command = Command::new(ROOMCAST);
    command
        .arg("bots")
        .args(args)
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("roomcast bots {args:?} still running after {limit:?}"))
        .expect("roomcast runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "roomcast-loadtest-{}-{name}.json",
        std::process::id()
    ))
}

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).expect("the JSON report parses")
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

const SUMMARY_FIELDS: [&str; 19] = [
    "bots_expected",
    "bots_joined",
    "bots_failed",
    "tracks_expected",
    "tracks_received",
    "missing_tracks",
    "total_bitrate_kbps",
    "avg_bitrate_kbps",
    "packets",
    "lost",
    "loss_percent",
    "jitter_ms",
    "freezes",
    "join_ms",
    "first_media_ms",
    "errors_by_code",
    "errors",
    "duration_secs",
    "missing",
];

const ROW_FIELDS: [&str; 17] = [
    "subscriber",
    "subscriber_id",
    "publisher",
    "publisher_id",
    "track_id",
    "kind",
    "codec",
    "packets",
    "bytes",
    "bitrate_kbps",
    "lost",
    "loss_percent",
    "jitter_ms",
    "time_to_first_packet_ms",
    "freezes",
    "max_gap_ms",
    "ended",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_publishers_and_eight_subscribers_receive_every_track() {
    let server = start_server().await;
    let url = server.ws_url();
    let json = json_path("full");
    let out = bots(
        &[
            "--url",
            &url,
            "--publishers",
            "2",
            "--subscribers",
            "8",
            "--duration",
            "5s",
            "--join-rate",
            "20",
            "--quality",
            "low",
            "--timeout",
            "30s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(50),
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // Each publisher receives the other's 2 tracks, each subscriber both publishers' 4.
    let expected = 2 * 2 + 8 * 4;
    let report = read_json(&json);
    let summary = &report["summary"];
    for field in SUMMARY_FIELDS {
        assert!(summary.get(field).is_some(), "summary.{field} missing");
    }
    assert_eq!(summary["bots_expected"], 10);
    assert_eq!(summary["bots_joined"], 10);
    assert_eq!(summary["bots_failed"], 0);
    assert_eq!(summary["tracks_expected"], expected);
    assert_eq!(summary["tracks_received"], expected);
    assert_eq!(summary["missing_tracks"], 0);
    assert_eq!(summary["errors_by_code"], serde_json::json!({}));
    assert!(summary["loss_percent"].is_number());
    assert!(summary["total_bitrate_kbps"].as_f64().unwrap() > 0.0);
    assert!(summary["duration_secs"].as_f64().unwrap() >= 5.0);
    for percentiles in ["join_ms", "first_media_ms"] {
        for key in ["p50", "p95", "max"] {
            assert!(
                summary[percentiles][key].as_f64().is_some(),
                "summary.{percentiles}.{key}: {}",
                summary[percentiles]
            );
        }
    }
    assert_eq!(summary["join_ms"]["count"], 10);
    assert_eq!(summary["first_media_ms"]["count"], 10);
    assert_eq!(report["config"]["publishers"], 2);
    assert_eq!(report["config"]["subscribers"], 8);
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["leave"]["left"], 10);

    let rows = report["tracks"].as_array().expect("tracks is a list");
    assert_eq!(rows.len(), expected, "one row per received track");
    for row in rows {
        for field in ROW_FIELDS {
            assert!(row.get(field).is_some(), "track row without {field}: {row}");
        }
        assert!(row["packets"].as_u64().unwrap() > 0, "{row}");
        assert!(row["loss_percent"].is_number(), "{row}");
        assert!(row["jitter_ms"].is_number(), "{row}");
        assert_eq!(row["ended"], false, "{row}");
    }
    for subscriber in ["bot-sub-0", "bot-sub-7"] {
        let received = rows
            .iter()
            .filter(|r| r["subscriber"] == subscriber)
            .count();
        assert_eq!(received, 4, "{subscriber}");
    }
    let video = rows.iter().filter(|r| r["kind"] == "video").count();
    assert_eq!(video, expected / 2);

    // stdout: a header, one line per track, the summary and the verdict.
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("room"), "{stdout}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("load ")).count(),
        expected,
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{expected}/{expected} received, 0 missing")),
        "{stdout}"
    );
    assert_eq!(lines.last().copied(), Some("result: ok (exit 0)"));
    assert!(
        !stderr.contains("error"),
        "no errors on a clean run: {stderr}"
    );
}

/// Subscribers alone watch what the room lists: here a presenter that is not one of the
/// swarm's bots (as an encoder over WHIP or a browser would be). Each of the three
/// subscribers must report the presenter's audio and video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_alone_measure_a_presenter_outside_the_swarm() {
    let server = start_server().await;
    let url = server.ws_url();
    let presenter = join_with(config(
        &server,
        "stage",
        "Stage",
        roomcast_protocol::Role::Presenter,
    ))
    .await;
    let json = json_path("outside");
    let out = bots(
        &[
            "--url",
            &url,
            "--publishers",
            "0",
            "--subscribers",
            "3",
            "--room",
            "stage",
            "--duration",
            "3s",
            "--timeout",
            "30s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(50),
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let report = read_json(&json);
    let summary = &report["summary"];
    assert_eq!(summary["tracks_expected"], 6, "{summary}");
    assert_eq!(summary["tracks_received"], 6, "{summary}");
    let rows = report["tracks"].as_array().expect("tracks is a list");
    assert_eq!(rows.len(), 6, "{rows:?}");
    for row in rows {
        assert_eq!(row["publisher"], "Stage", "{row}");
        assert!(row["packets"].as_u64().unwrap() > 0, "{row}");
    }
    assert_eq!(summary["first_media_ms"]["count"], 3, "{summary}");
    presenter.leave().await.expect("the presenter leaves");
    server.shutdown().await;
}

/// An operator load-tests a webinar before its presenter arrives: the viewers wait for the
/// presenter's tracks (within `--timeout`) and measure them, rather than an empty room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_alone_wait_for_a_presenter_who_comes_later() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let server = start_server().await;
    let json = json_path("later");
    let mut child = Command::new(ROOMCAST)
        .arg("bots")
        .args(["--url", &server.ws_url(), "--room", "later"])
        .args(["--publishers", "0", "--subscribers", "2"])
        .args(["--duration", "2s", "--timeout", "30s"])
        .args(["--json", json.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("roomcast bots starts");
    // The progress lines (`[  0.2s] tracks: …`) go to stderr.
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut printed = Vec::new();
    let mut presenter = None;
    let first_window = tokio::time::timeout(Duration::from_secs(50), async {
        while let Some(line) = lines.next_line().await.expect("stderr readable") {
            printed.push(line.clone());
            // Both viewers are in the room and wait for tracks: now the presenter comes.
            if presenter.is_none() && line.contains("] tracks:") {
                presenter = Some(
                    join_with(config(
                        &server,
                        "later",
                        "Stage",
                        roomcast_protocol::Role::Presenter,
                    ))
                    .await,
                );
            }
            if line.contains("] measuring") {
                return line;
            }
        }
        panic!("no measuring window: {printed:#?}");
    })
    .await
    .expect("the viewers measure within 50 s");
    assert!(
        presenter.is_some() && !first_window.contains("tracks 0/0"),
        "the window began before the presenter's tracks: {first_window}"
    );
    while lines.next_line().await.ok().flatten().is_some() {}
    let status = child.wait().await.expect("roomcast bots exits");
    assert_eq!(status.code(), Some(0), "{first_window}");
    let summary = &read_json(&json)["summary"];
    assert_eq!(summary["tracks_expected"], 4, "{summary}");
    assert_eq!(summary["tracks_received"], 4, "{summary}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_one_clear_line() {
    let port = closed_port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let out = bots(
        &["--url", &url, "--publishers", "1", "--subscribers", "100"],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!("error: cannot reach {url}: connection refused")
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_with_a_clear_line() {
    let url = format!("ws://127.0.0.1:{}/ws", closed_port());
    let cases: [(&[&str], &str); 5] = [
        (&["--publishers", "0", "--subscribers", "0"], "no bots"),
        (
            &[
                "--publishers",
                "1",
                "--subscribers",
                "1",
                "--duration",
                "-5s",
            ],
            "invalid value '-5s' for '--duration <DURATION>': must be positive",
        ),
        (
            &["--publishers", "1", "--subscribers", "1", "--duration", "0"],
            "must be more than zero",
        ),
        (
            &[
                "--publishers",
                "1",
                "--subscribers",
                "1",
                "--join-rate",
                "0",
            ],
            "invalid value '0' for '--join-rate <PER_SECOND>'",
        ),
        (
            &["--publishers", "-2", "--subscribers", "1"],
            "invalid value '-2' for '--publishers <N>'",
        ),
    ];
    for (args, said) in cases {
        let mut all = vec!["--url", url.as_str()];
        all.extend(args);
        let out = bots(&all, Duration::from_secs(10)).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(said),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_join_names_the_error_code() {
    let server = start_server().await;
    let url = server.ws_url();
    // The contract allows at most 64 characters in a room name.
    let room = "r".repeat(65);
    let json = json_path("refused");
    let out = bots(
        &[
            "--url",
            &url,
            "--room",
            &room,
            "--publishers",
            "1",
            "--subscribers",
            "1",
            "--duration",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: 2 of 2 bots could not join: bad_request (room must be"),
        "{stderr}"
    );
    let report = read_json(&json);
    assert_eq!(report["summary"]["errors_by_code"]["bad_request"], 2);
    assert_eq!(report["summary"]["bots_joined"], 0);
    assert_eq!(report["exit_code"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_fails_the_run_but_measures_the_others() {
    init_logs();
    let server = RunningServer::start(&ServeArgs {
        max_participants_per_room: 2,
        ..ServeArgs::local_ephemeral()
    })
    .await
    .expect("server starts");
    let json = json_path("full-room");
    let out = bots(
        &[
            "--url",
            &server.ws_url(),
            "--publishers",
            "2",
            "--subscribers",
            "1",
            "--duration",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(40),
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("error: 1 of 3 bots could not join: room_full"),
        "{stderr}"
    );
    assert!(stdout.contains("room_full ×1"), "{stdout}");
    let summary = &read_json(&json)["summary"];
    assert_eq!(summary["errors_by_code"]["room_full"], 1);
    assert_eq!(summary["bots_joined"], 2);
    // Whoever got in still sees the other's media.
    assert_eq!(summary["tracks_received"], summary["tracks_expected"]);
    assert!(summary["tracks_expected"].as_u64().unwrap() >= 2);
}
