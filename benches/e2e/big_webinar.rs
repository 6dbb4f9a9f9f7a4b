//! (e) A webinar of one presenter and a large audience, with the bots in a process of their
//! own (`roomcast bots`), so the benchmark can read their CPU time beside the server's and
//! tell which side was the limit. The window is the bots' measuring phase: it starts when
//! they print `measuring` (every track arrived, or their timeout passed).
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{packets, proc_cpu_secs, Server};

#[derive(Debug, Default, Serialize)]
pub struct BigWebinar {
    pub audience: usize,
    pub window_secs: f64,
    pub tracks_expected: u64,
    pub tracks_received: u64,
    pub loss_percent: f64,
    pub freezes: u64,
    pub server_cpu_percent: f64,
    /// The bots' process, over the same window: near 100 % per core they were the limit.
    pub bots_cpu_percent: f64,
    pub cpu_us_per_packet: f64,
    pub forwarded_packets_per_sec: f64,
    pub rss_per_participant_mib: f64,
    pub errors: Vec<String>,
}

impl BigWebinar {
    pub fn print(&self) {
        println!(
            "webinar 1 -> {}: tracks {}/{}, loss {:.3} %, {} freezes, {:.2} us/pkt at {:.0} pkt/s, server CPU {:.0} %, bots CPU {:.0} % (of 200 %), RSS {:.3} MiB per participant{}",
            self.audience,
            self.tracks_received,
            self.tracks_expected,
            self.loss_percent,
            self.freezes,
            self.cpu_us_per_packet,
            self.forwarded_packets_per_sec,
            self.server_cpu_percent,
            self.bots_cpu_percent,
            self.rss_per_participant_mib,
            if self.errors.is_empty() {
                String::new()
            } else {
                format!("; {}", self.errors.join(", "))
            }
        );
    }
}

pub async fn run(audience: usize, window: Duration) -> BigWebinar {
    let server = Server::start("webinar-big");
    let rss_idle = server.rss_mib();
    let json = "target/bench/webinar-big-bots.json";
    let mut bots = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["bots", "--url", &server.url(), "--room", "webinar"])
        .args(["--publishers", "1", "--subscribers", &audience.to_string()])
        .args(["--join-rate", "50", "--timeout", "120s"])
        .args(["--duration", &format!("{}s", window.as_secs())])
        .args(["--json", json])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("roomcast bots runs");
    let bots_pid = bots.id().unwrap_or(0);
    let mut lines = BufReader::new(bots.stderr.take().expect("stderr")).lines();
    let mut outcome = BigWebinar {
        audience,
        ..Default::default()
    };
    let mut measuring = false;
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("] measuring") {
            measuring = true;
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    if measuring {
        eprintln!("[webinar-big] measuring for {window:?}");
        // Inside the bots' window, a second short at each end.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (server0, bots0, stats0, t0) = (
            server.cpu_secs(),
            proc_cpu_secs(bots_pid),
            server.stats(),
            Instant::now(),
        );
        tokio::time::sleep(window.saturating_sub(Duration::from_secs(2))).await;
        let wall = t0.elapsed().as_secs_f64();
        let (server1, bots1, stats1) = (server.cpu_secs(), proc_cpu_secs(bots_pid), server.stats());
        let forwarded = packets(&stats1, "packets_out") - packets(&stats0, "packets_out");
        outcome.window_secs = wall;
        outcome.server_cpu_percent = 100.0 * (server1 - server0) / wall;
        outcome.bots_cpu_percent = 100.0 * (bots1 - bots0) / wall;
        outcome.cpu_us_per_packet = 1e6 * (server1 - server0) / forwarded.max(1.0);
        outcome.forwarded_packets_per_sec = forwarded / wall;
        outcome.rss_per_participant_mib = (server.rss_mib() - rss_idle) / (audience + 1) as f64;
    } else {
        outcome
            .errors
            .push("the bots never started measuring".into());
    }
    let _ = tokio::time::timeout(Duration::from_secs(180), bots.wait()).await;
    let report: Value = std::fs::read_to_string(json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let s = &report["summary"];
    outcome.tracks_expected = s["tracks_expected"].as_u64().unwrap_or(0);
    outcome.tracks_received = s["tracks_received"].as_u64().unwrap_or(0);
    outcome.loss_percent = s["loss_percent"].as_f64().unwrap_or(0.0);
    outcome.freezes = s["freezes"].as_u64().unwrap_or(0);
    outcome
}
