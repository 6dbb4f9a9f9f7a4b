//! `roomcast bots`: a load tester in the spirit of LiveKit's `lk load-test`, built on
//! [`roomcast_bots::Swarm`].
//!
//! A run goes through these phases, each bounded by `--timeout` or `--duration`:
//!
//! 1. check the flags (usage errors exit with 2) and that the URL takes a WebSocket (one
//!    `error: cannot reach ...` line and exit 1 if not);
//! 2. join every bot at `--join-rate`, publishers first; each failed join is counted by
//!    error code and reported in one line per code;
//! 3. wait until every bot receives every other publisher's tracks in its room;
//! 4. measure for `--duration`, then take the report over that window;
//! 5. optionally `--churn N` join/leave cycles into the first room;
//! 6. every bot leaves; the per-track table and the summary go to stdout, and with
//!    `--json PATH` the same report (plus the configuration) to a file.
//!
//! Exit status: 0 when every bot joined and every expected track was flowing at the end,
//! 1 when a bot failed to join, a track was missing or the server could not be reached,
//! 2 for usage errors. Ctrl-C ends the current phase early and still reports; a second one
//! quits at once (status 130).
pub mod args;
pub mod progress;
pub mod table;

use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant};

use roomcast_bots::{BotRole, LeaveResult, Report, Swarm};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

pub use args::BotsArgs;
use args::RunConfig;
use progress::{Display, Phase};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// The log filter when `RUST_LOG` is not set: roomcast's warnings, and only errors from the
/// webrtc-rs crates (which warn routinely while a hundred connections close at once), so
/// the display stays readable.
pub const DEFAULT_LOG_FILTER: &str = "error,roomcast=warn,roomcast_bots=warn";

/// How often the display refreshes.
const DISPLAY_EVERY: Duration = Duration::from_millis(250);
/// Bound on leaving, whatever `--timeout` says.
const MAX_LEAVE_WAIT: Duration = Duration::from_secs(10);

/// What `--json` writes.
#[derive(Serialize)]
struct JsonReport<'a> {
    config: &'a RunConfig,
    interrupted: bool,
    exit_code: i32,
    #[serde(flatten)]
    report: &'a Report,
    leave: Option<LeaveResult>,
}

/// Runs the load test; returns the exit status.
pub async fn run(args: BotsArgs) -> i32 {
    let config = match args.swarm_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    let run_config = args.run_config(&config);
    for url in config.urls() {
        if let Err(reason) = roomcast_bots::probe(url, args.timeout).await {
            eprintln!("error: cannot reach {url}: {reason}");
            return EXIT_FAILED;
        }
    }

    let stop = watch_ctrl_c();
    let first_room = config.rooms.first().cloned().unwrap_or_default();
    let bots = config.bots();
    let join_bound = join_bound(&args, bots);
    let swarm = Swarm::spawn(config);
    let mut display = Display::new(args.quiet);

    during(
        &swarm,
        &mut display,
        &stop,
        Phase::Joining,
        true,
        swarm.wait_joined(join_bound),
    )
    .await;
    let joined = report_join_failures(&swarm, &display, bots);

    let mut snapshot = None;
    if joined > 0 {
        let arrived = during(
            &swarm,
            &mut display,
            &stop,
            Phase::WaitingForTracks,
            true,
            // Viewers only: wait (within the timeout) for the presenter's first track.
            swarm.wait_for_tracks_from(
                usize::from(args.publishers == 0 && args.audio_publishers == 0),
                args.timeout,
            ),
        )
        .await;
        if arrived == Some(false) {
            let p = swarm.progress();
            display.line(&format!(
                "warning: {}/{} tracks arrived within {}; measuring anyway",
                p.tracks_received,
                p.tracks_expected,
                humantime::format_duration(args.timeout)
            ));
        }
        if !interrupted(&stop) {
            snapshot = Some(swarm.snapshot());
            let phase = Phase::Measuring {
                since: Instant::now(),
                duration: args.duration,
            };
            let sleep = tokio::time::sleep(args.duration);
            during(&swarm, &mut display, &stop, phase, true, sleep).await;
        }
    }
    let mut report = swarm.report(snapshot.as_ref());

    if args.churn > 0 && joined > 0 {
        let churn = swarm.churn(&first_room, args.churn, BotRole::Subscriber, args.timeout);
        let phase = Phase::Churn { cycles: args.churn };
        report.churn = during(&swarm, &mut display, &stop, phase, true, churn).await;
    }
    let was_interrupted = interrupted(&stop);
    if was_interrupted {
        display.line("interrupted: reporting what was measured so far (Ctrl-C again quits)");
    }
    let leave_wait = args.timeout.min(MAX_LEAVE_WAIT);
    let leave = during(
        &swarm,
        &mut display,
        &stop,
        Phase::Leaving,
        false,
        swarm.leave(leave_wait),
    )
    .await;
    display.finish();
    drop(swarm);

    let exit_code = exit_code(&report);
    print_report(&report, leave, was_interrupted, exit_code);
    if let Some(path) = &args.json {
        let json = JsonReport {
            config: &run_config,
            interrupted: was_interrupted,
            exit_code,
            report: &report,
            leave,
        };
        let written = serde_json::to_string_pretty(&json)
            .map_err(|e| e.to_string())
            .and_then(|text| std::fs::write(path, text + "\n").map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return EXIT_FAILED;
        }
    }
    exit_code
}

/// Long enough for every join at the configured pace, each bounded by the timeout.
fn join_bound(args: &BotsArgs, bots: usize) -> Duration {
    let pacing = if args.join_rate.is_finite() {
        Duration::from_secs_f64((bots as f64 / args.join_rate).min(86_400.0))
    } else {
        Duration::ZERO
    };
    let waves = bots.div_ceil(roomcast_bots::DEFAULT_MAX_CONCURRENT_JOINS) as u32 + 1;
    pacing + args.timeout.saturating_mul(waves)
}

/// One line per error code; returns how many bots joined.
fn report_join_failures(swarm: &Swarm, display: &Display, bots: usize) -> usize {
    let report = swarm.report(None);
    let summary = &report.summary;
    for (code, count) in &summary.errors_by_code {
        let example = summary
            .errors
            .iter()
            .find(|e| &e.code == code)
            .map(|e| e.message.as_str())
            .unwrap_or_default();
        display.line(&format!(
            "error: {count} of {bots} bots could not join: {code} ({example})"
        ));
        if code == "rate_limited" {
            display.line(PER_ADDRESS_HINT);
        }
    }
    summary.bots_joined
}

/// Said when the server's per-address limits refused bots: that is its protection
/// against one abusive client working, not a server that cannot keep up.
const PER_ADDRESS_HINT: &str = "hint: every bot connects from this machine's address, and \
    the server limits joins per address (--max-joins-per-ip-per-second, 20 by default, and \
    --join-burst-per-ip) and WebSockets per address (--max-websockets-per-ip, 500): lower \
    --join-rate, or raise those limits on the server you are load-testing";

fn exit_code(report: &Report) -> i32 {
    let s = &report.summary;
    let churn_failed = report.churn.as_ref().is_some_and(|c| c.failures > 0);
    if s.bots_failed == 0
        && s.bots_joined == s.bots_expected
        && s.tracks_received == s.tracks_expected
        && s.tracks_expected > 0
        && !churn_failed
    {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

fn verdict(report: &Report, exit_code: i32) -> String {
    if exit_code == EXIT_OK {
        return format!("result: ok (exit {exit_code})");
    }
    let s = &report.summary;
    let mut reasons = Vec::new();
    if s.bots_joined < s.bots_expected {
        reasons.push(format!(
            "{} of {} bots did not join",
            s.bots_expected - s.bots_joined,
            s.bots_expected
        ));
    }
    if s.tracks_received < s.tracks_expected {
        reasons.push(format!(
            "{} of {} tracks missing",
            s.tracks_expected - s.tracks_received,
            s.tracks_expected
        ));
    }
    if s.tracks_expected == 0 && s.bots_joined > 0 {
        reasons.push("the rooms list no track to receive".to_owned());
    }
    if let Some(churn) = report.churn.as_ref().filter(|c| c.failures > 0) {
        reasons.push(format!(
            "{} of {} churn cycles failed",
            churn.failures, churn.cycles
        ));
    }
    format!("result: FAILED, {} (exit {exit_code})", reasons.join(", "))
}

fn print_report(report: &Report, leave: Option<LeaveResult>, interrupted: bool, exit_code: i32) {
    let mut text = String::new();
    if report.tracks.is_empty() {
        text.push_str("no tracks received\n");
    } else {
        text.push_str(&table::track_table(&report.tracks));
    }
    text.push('\n');
    text.push_str(&table::summary(report, leave, interrupted));
    let verdict = verdict(report, exit_code);
    text.push_str(&verdict);
    text.push('\n');
    // A closed stdout (`| head`) is not worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if exit_code != EXIT_OK {
        eprintln!("{}", verdict.replacen("result: FAILED, ", "error: ", 1));
    }
    if let Some(cpu) = report.cpu.filter(|cpu| cpu.machine_saturated()) {
        eprintln!("warning: {}", table::cpu_use(&cpu));
    }
}

fn interrupted(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

/// `true` from the first Ctrl-C on; the second one exits at once.
fn watch_ctrl_c() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handling here: never interrupted.
            return std::future::pending::<()>().await;
        }
        tx.send_replace(true);
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted twice: quitting without a report");
            std::process::exit(130);
        }
        std::future::pending::<()>().await
    });
    rx
}

/// Runs `work` while refreshing the display; with `interruptible`, Ctrl-C abandons it
/// (`None`), as does having been interrupted before.
async fn during<F: Future>(
    swarm: &Swarm,
    display: &mut Display,
    stop: &watch::Receiver<bool>,
    phase: Phase,
    interruptible: bool,
    work: F,
) -> Option<F::Output> {
    if interruptible && interrupted(stop) {
        return None;
    }
    let mut stop = stop.clone();
    let mut ticks = tokio::time::interval(DISPLAY_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tokio::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => {
                display.update(&phase, &swarm.progress());
                return Some(output);
            }
            _ = ticks.tick() => display.update(&phase, &swarm.progress()),
            Ok(_) = stop.wait_for(|s| *s), if interruptible => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomcast_bots::{ChurnResult, Percentiles, Summary};

    fn report(joined: usize, failed: usize, received: usize) -> Report {
        Report {
            summary: Summary {
                window: true,
                duration_secs: 5.0,
                bots_expected: 10,
                bots_joined: joined,
                bots_failed: failed,
                tracks_expected: 36,
                tracks_received: received,
                missing_tracks: 36 - received,
                missing: vec![],
                total_bitrate_kbps: 0.0,
                avg_bitrate_kbps: 0.0,
                avg_audio_kbps: 0.0,
                avg_video_kbps: 0.0,
                packets: 0,
                lost: 0,
                loss_percent: 0.0,
                jitter_ms: Percentiles::default(),
                freezes: 0,
                picture_id_breaks: 0,
                join_ms: Percentiles::default(),
                first_media_ms: Percentiles::default(),
                errors_by_code: Default::default(),
                errors: vec![],
            },
            tracks: vec![],
            churn: None,
            cpu: None,
        }
    }

    #[test]
    fn exit_status_and_verdict() {
        let ok = report(10, 0, 36);
        assert_eq!(exit_code(&ok), EXIT_OK);
        assert_eq!(verdict(&ok, EXIT_OK), "result: ok (exit 0)");
        let bad = report(9, 1, 34);
        assert_eq!(exit_code(&bad), EXIT_FAILED);
        assert_eq!(
            verdict(&bad, EXIT_FAILED),
            "result: FAILED, 1 of 10 bots did not join, 2 of 36 tracks missing (exit 1)"
        );
        let mut churned = report(10, 0, 36);
        churned.churn = Some(ChurnResult {
            room: "load".into(),
            role: BotRole::Subscriber,
            cycles: 5,
            cycles_done: 4,
            failures: 1,
            errors_by_code: Default::default(),
            join_ms: Percentiles::default(),
            first_media_ms: Percentiles::default(),
            duration_secs: 1.0,
        });
        assert_eq!(exit_code(&churned), EXIT_FAILED);
    }
}
