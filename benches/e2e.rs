//! End-to-end benchmarks on loopback: the release server runs as its own process, the bots
//! (`roomcast_bots::Swarm`, the same library `roomcast bots` uses) run in this one. Each
//! scenario gets a fresh server; after everyone joined and a warm-up, a measured window
//! reads the server's CPU time (/proc), RSS and its own counters (`GET /api/stats`) at both
//! ends, and the bots' loss over the same window.
//!
//!   cargo bench --bench e2e -- [--quick]
//!       [--only meeting,webinar,audio,churn,webinar-big,meeting-big,first-video,junk]
//!       [--json PATH] [--churn-cycles N] [--big-audience N]
//!
//! The server's log goes to `target/bench/server-{scenario}.log`, filtered by `SERVER_LOG`
//! (a `RUST_LOG` value; warnings by default); the bots' own log (a bot that cannot answer
//! the server's offer, say) to `target/bench/bots.log`, filtered by `BOTS_LOG` (the same,
//! warnings by default). `CHURN_ROLE=subscriber` (or `audio`) makes
//! the churning participant watch only (or publish audio only) instead of audio and video.
//!
//! `ROOMCAST_BIN=path` runs another server binary (e.g. an older release, for before/after
//! figures) instead of the one built with the benchmark.
//!
//! `bench/run.sh` runs this and the criterion micro-benchmarks and prints the summary.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roomcast_bots::{BotRole, Swarm, SwarmConfig};
use serde::Serialize;
use serde_json::Value;

#[path = "e2e/big_meeting.rs"]
mod big_meeting;
#[path = "e2e/big_webinar.rs"]
mod big_webinar;
#[path = "e2e/first_video.rs"]
mod first_video;
#[path = "e2e/junk.rs"]
mod junk;

#[derive(Debug, Clone, Copy)]
struct Sizes {
    window: Duration,
    warmup: Duration,
    meeting: usize,
    webinar_audience: usize,
    audio_room: usize,
    audio_speakers: usize,
    churn_room: usize,
    churn_cycles: usize,
    first_video_subscribers: usize,
    junk_datagrams: u64,
    big_webinar_audience: usize,
    big_meeting: usize,
    big_meeting_video: usize,
}

const FULL: Sizes = Sizes {
    window: Duration::from_secs(30),
    warmup: Duration::from_secs(5),
    meeting: 10,
    webinar_audience: 150,
    audio_room: 100,
    audio_speakers: 10,
    churn_room: 5,
    churn_cycles: 500,
    first_video_subscribers: 30,
    junk_datagrams: 20_000,
    big_webinar_audience: 1000,
    big_meeting: 50,
    big_meeting_video: 12,
};

const QUICK: Sizes = Sizes {
    window: Duration::from_secs(8),
    warmup: Duration::from_secs(2),
    meeting: 4,
    webinar_audience: 20,
    audio_room: 20,
    audio_speakers: 4,
    churn_room: 3,
    churn_cycles: 30,
    first_video_subscribers: 8,
    junk_datagrams: 4_000,
    big_webinar_audience: 50,
    big_meeting: 12,
    big_meeting_video: 3,
};

/// One scenario's figures.
#[derive(Debug, Default, Serialize)]
struct Outcome {
    scenario: String,
    participants: usize,
    window_secs: f64,
    tracks_expected: usize,
    tracks_received: usize,
    /// Server CPU time over the window divided by the RTP packets it forwarded.
    cpu_us_per_packet: f64,
    server_cpu_percent: f64,
    /// This process's CPU (the bots) over the window, of 100 % per core: near the number of
    /// cores, the bots were the limit and the other figures measure them.
    bots_cpu_percent: f64,
    forwarded_packets_per_sec: f64,
    forwarded_audio_packets_per_sec: f64,
    forwarded_video_packets_per_sec: f64,
    /// At the subscribers, from sequence gaps, over the window.
    loss_percent: f64,
    /// Video gaps over half a second at the subscribers, over the window.
    freezes: u64,
    rss_idle_mib: f64,
    rss_loaded_mib: f64,
    rss_per_participant_mib: f64,
    join_ms_p50: Option<f64>,
    join_ms_p95: Option<f64>,
    first_media_ms_p50: Option<f64>,
    first_media_ms_p95: Option<f64>,
    /// Churn only: cycles done, and RSS before and after them.
    churn_cycles: Option<usize>,
    churn_failures: Option<usize>,
    rss_after_churn_mib: Option<f64>,
    /// RSS before the cycles, after each fifth of them, and at the end.
    rss_curve_mib: Vec<f64>,
    /// Participants the server counts at the end (the room of five).
    participants_on_server: Option<u64>,
    errors: Vec<String>,
}

struct Server {
    child: Child,
    port: u16,
    udp_port: u16,
    log: String,
}

impl Server {
    /// Starts a fresh server; its log goes to `target/bench/server-{name}.log`, filtered
    /// by `SERVER_LOG` (warnings by default).
    fn start(name: &str) -> Server {
        let filter = std::env::var("SERVER_LOG")
            .unwrap_or_else(|_| "warn,webrtc=error,webrtc_ice=error,webrtc_mdns=error".into());
        Server::start_logged(name, Some(&filter))
    }

    /// Like [`Server::start`], with the given log filter (`None`: the binary's default).
    fn start_logged(name: &str, filter: Option<&str>) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(18500);
        let udp_port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(18501);
        let _ = std::fs::create_dir_all("target/bench");
        let log = format!("target/bench/server-{name}.log");
        let file = std::fs::File::create(&log).ok();
        let (out, err) = match file.as_ref().map(|f| (f.try_clone(), f.try_clone())) {
            Some((Ok(a), Ok(b))) => (Stdio::from(a), Stdio::from(b)),
            _ => (Stdio::null(), Stdio::null()),
        };
        let binary =
            std::env::var("ROOMCAST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_roomcast").into());
        let mut command = Command::new(binary);
        // The README's media bind (every address); only the ports are free ones.
        command
            .args(["--http-addr", &format!("0.0.0.0:{port}")])
            .args(["--udp-port", &udp_port.to_string()])
            // Every bot connects from 127.0.0.1: the per-address limits guard against one
            // abusive client, and would otherwise refuse most of (e)'s 1,000 viewers.
            .args(["--max-joins-per-ip-per-second", "0"])
            .args(["--max-websockets-per-ip", "100000"])
            // (e) is a presenter and 1,000 viewers: one more than a room's default cap.
            .args(["--max-participants-per-room", "2000"])
            .stdout(out)
            .stderr(err);
        match filter {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the server: {e}"));
        let server = Server {
            child,
            port,
            udp_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.get("/healthz").is_none() {
            assert!(Instant::now() < deadline, "the server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn udp_port(&self) -> u16 {
        self.udp_port
    }

    /// Lines in the server's log so far.
    fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log).map_or(0, |l| l.lines().count())
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        s.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    }

    fn stats(&self) -> Value {
        self.get("/api/stats")
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(Value::Null)
    }

    /// User plus system CPU seconds so far.
    fn cpu_secs(&self) -> f64 {
        proc_cpu_secs(self.child.id())
    }

    fn rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User plus system CPU seconds process `pid` has used so far.
fn proc_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks_per_sec()
}

/// The kernel's UDP counters (`/proc/net/snmp`, whole machine): `RcvbufErrors` rising over
/// a window means datagrams were dropped because some socket's reader was behind.
fn udp_counters() -> Value {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Value::Null;
    };
    let pairs = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .filter_map(|(n, v)| Some((n.to_owned(), Value::from(v.parse::<u64>().ok()?))));
    Value::Object(pairs.collect())
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn packets(stats: &Value, field: &str) -> f64 {
    stats["media"][field].as_f64().unwrap_or(0.0)
}

/// Runs a steady scenario: join, wait for every track, warm up, measure one window. With
/// `follow_speaker`, everyone takes the active speaker's video `high` before the warm-up
/// (see [`big_meeting::follow_speaker`]).
async fn steady(
    name: &str,
    mut config: SwarmConfig,
    sizes: Sizes,
    follow_speaker: bool,
) -> Outcome {
    let server = Server::start(name);
    config.url = server.url();
    config.rooms = vec![name.to_owned()];
    config.join_timeout = Duration::from_secs(30);
    let participants = config.bots();
    let rss_idle = server.rss_mib();
    eprintln!("[{name}] {participants} participants joining");
    let swarm = Swarm::start(config).await;
    let all_tracks = swarm.wait_for_tracks(Duration::from_secs(60)).await;
    eprintln!(
        "[{name}] all tracks flowing: {all_tracks}; warm-up {:?}",
        sizes.warmup
    );
    tokio::time::sleep(sizes.warmup).await;
    if follow_speaker {
        let asked = big_meeting::follow_speaker(&swarm).await;
        eprintln!("[{name}] {asked} asked for the speaker's video high");
        tokio::time::sleep(sizes.warmup).await;
    }

    let udp0 = udp_counters();
    let (cpu0, bots0, stats0, snapshot, t0) = (
        server.cpu_secs(),
        proc_cpu_secs(std::process::id()),
        server.stats(),
        swarm.snapshot(),
        Instant::now(),
    );
    tokio::time::sleep(sizes.window).await;
    let (cpu1, bots1, stats1, wall) = (
        server.cpu_secs(),
        proc_cpu_secs(std::process::id()),
        server.stats(),
        t0.elapsed().as_secs_f64(),
    );
    let udp1 = udp_counters();
    let rss_loaded = server.rss_mib();
    let window = swarm.report(Some(&snapshot));
    let whole = swarm.report(None);
    // The bots' per-track rows and the server's counters, to see where a bad figure comes
    // from (which tracks lost what, which counters moved).
    let details = serde_json::json!({
        "window": &window,
        "stats_before": &stats0,
        "stats_after": &stats1,
        "udp_before": udp0,
        "udp_after": udp1,
    });
    if let Ok(text) = serde_json::to_string_pretty(&details) {
        let _ = std::fs::write(format!("target/bench/{name}-details.json"), text);
    }
    let _ = swarm.leave(Duration::from_secs(10)).await;

    let forwarded = packets(&stats1, "packets_out") - packets(&stats0, "packets_out");
    let audio = packets(&stats1, "audio_packets_out") - packets(&stats0, "audio_packets_out");
    let video = packets(&stats1, "video_packets_out") - packets(&stats0, "video_packets_out");
    let cpu = cpu1 - cpu0;
    let s = &whole.summary;
    Outcome {
        scenario: name.to_owned(),
        participants,
        window_secs: wall,
        tracks_expected: s.tracks_expected,
        tracks_received: s.tracks_received,
        cpu_us_per_packet: 1e6 * cpu / forwarded.max(1.0),
        server_cpu_percent: 100.0 * cpu / wall,
        bots_cpu_percent: 100.0 * (bots1 - bots0) / wall,
        forwarded_packets_per_sec: forwarded / wall,
        forwarded_audio_packets_per_sec: audio / wall,
        forwarded_video_packets_per_sec: video / wall,
        loss_percent: window.summary.loss_percent,
        freezes: window.summary.freezes,
        rss_idle_mib: rss_idle,
        rss_loaded_mib: rss_loaded,
        rss_per_participant_mib: (rss_loaded - rss_idle) / participants.max(1) as f64,
        join_ms_p50: s.join_ms.p50,
        join_ms_p95: s.join_ms.p95,
        first_media_ms_p50: s.first_media_ms.p50,
        first_media_ms_p95: s.first_media_ms.p95,
        errors: s
            .errors_by_code
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .chain(s.missing.iter().map(|m| {
                format!(
                    "missing: {} gets no {:?} from {}",
                    m.subscriber, m.kind, m.publisher
                )
            }))
            .collect(),
        ..Default::default()
    }
}

/// A room of `churn_room` publishers; one more participant joins, receives everything and
/// leaves, `churn_cycles` times. RSS is read before and after the cycles.
async fn churn(sizes: Sizes) -> Outcome {
    let name = "churn";
    let server = Server::start(name);
    let mut config = SwarmConfig::new(server.url());
    config.rooms = vec![name.to_owned()];
    config.publishers = sizes.churn_room;
    config.join_timeout = Duration::from_secs(30);
    let rss_idle = server.rss_mib();
    let swarm = Swarm::start(config).await;
    swarm.wait_for_tracks(Duration::from_secs(60)).await;
    // One cycle first, so lazily built state (thread pools, allocator arenas) exists
    // before the baseline is read.
    let timeout = Duration::from_secs(20);
    swarm.churn(name, 1, churn_role(), timeout).await;
    tokio::time::sleep(sizes.warmup).await;
    let rss_before = server.rss_mib();
    eprintln!("[churn] {} join/leave cycles", sizes.churn_cycles);
    // In five steps, with RSS read after each, to tell growth that levels off (allocator
    // caches) from a leak (growth per cycle).
    let step = sizes.churn_cycles.div_ceil(5).max(1);
    let (mut done, mut failures) = (0, 0);
    let (mut join_ms, mut first_media_ms, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut rss_curve = vec![rss_before];
    let started = Instant::now();
    while done + failures < sizes.churn_cycles {
        let cycles = step.min(sizes.churn_cycles - done - failures);
        let r = swarm.churn(name, cycles, churn_role(), timeout).await;
        done += r.cycles_done;
        failures += r.failures;
        join_ms.extend(r.join_ms.p50);
        first_media_ms.extend(r.first_media_ms.p50);
        errors.extend(r.errors_by_code.iter().map(|(c, n)| format!("{c}: {n}")));
        rss_curve.push(server.rss_mib());
    }
    let duration = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server.rss_mib();
    rss_curve.push(rss_after);
    let stats = server.stats();
    let whole = swarm.report(None);
    let _ = swarm.leave(Duration::from_secs(10)).await;
    Outcome {
        scenario: name.to_owned(),
        participants: sizes.churn_room + 1,
        window_secs: duration,
        tracks_expected: whole.summary.tracks_expected,
        tracks_received: whole.summary.tracks_received,
        loss_percent: whole.summary.loss_percent,
        rss_idle_mib: rss_idle,
        rss_loaded_mib: rss_before,
        rss_per_participant_mib: (rss_before - rss_idle) / sizes.churn_room as f64,
        // Medians of the steps' medians.
        join_ms_p50: median(&mut join_ms),
        first_media_ms_p50: median(&mut first_media_ms),
        churn_cycles: Some(done),
        churn_failures: Some(failures),
        rss_after_churn_mib: Some(rss_after),
        rss_curve_mib: rss_curve,
        participants_on_server: stats["participants"].as_u64(),
        errors,
        ..Default::default()
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "{:<11} {:>5} {:>9} {:>9} {:>10} {:>7} {:>7} {:>8} {:>8} {:>9} {:>9} {:>11} {:>11}",
        "scenario",
        "bots",
        "tracks",
        "us/pkt",
        "fwd pkt/s",
        "loss%",
        "freezes",
        "cpu%",
        "bots%",
        "RSS MiB",
        "MiB/bot",
        "1st media",
        "p95 media"
    );
    for o in outcomes {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
        println!(
            "{:<11} {:>5} {:>9} {:>9.2} {:>10.0} {:>7.3} {:>7} {:>8.1} {:>8.1} {:>9.1} {:>9.2} {:>11} {:>11}",
            o.scenario,
            o.participants,
            format!("{}/{}", o.tracks_received, o.tracks_expected),
            o.cpu_us_per_packet,
            o.forwarded_packets_per_sec,
            o.loss_percent,
            o.freezes,
            o.server_cpu_percent,
            o.bots_cpu_percent,
            o.rss_loaded_mib,
            o.rss_per_participant_mib,
            ms(o.first_media_ms_p50),
            ms(o.first_media_ms_p95),
        );
        if let (Some(cycles), Some(after)) = (o.churn_cycles, o.rss_after_churn_mib) {
            let curve: Vec<String> = o.rss_curve_mib.iter().map(|v| format!("{v:.1}")).collect();
            println!(
                "          churn: {cycles} cycles ({} failed); RSS {:.1} MiB before, {:.1} MiB after ({:+.1}%)",
                o.churn_failures.unwrap_or(0),
                o.rss_loaded_mib,
                after,
                100.0 * (after - o.rss_loaded_mib) / o.rss_loaded_mib.max(0.001)
            );
            println!("          RSS along the way (MiB): {}", curve.join(" → "));
        }
        if !o.errors.is_empty() {
            println!("          errors: {}", o.errors.join(", "));
        }
    }
}

/// The bots' log into `target/bench/bots.log` (see the module docs); none if it cannot be
/// created.
fn log_bots() {
    let _ = std::fs::create_dir_all("target/bench");
    let Ok(file) = std::fs::File::create("target/bench/bots.log") else {
        return;
    };
    let filter = std::env::var("BOTS_LOG").unwrap_or_else(|_| "warn".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .try_init();
}

#[tokio::main]
async fn main() {
    log_bots();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let only = value_of("--only");
    let json_path = value_of("--json").unwrap_or_else(|| "target/bench-e2e.json".to_owned());
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|w| w == name))
    };
    let mut sizes = if quick { QUICK } else { FULL };
    if let Some(n) = value_of("--churn-cycles").and_then(|v| v.parse().ok()) {
        sizes.churn_cycles = n;
    }
    if let Some(n) = value_of("--big-audience").and_then(|v| v.parse().ok()) {
        sizes.big_webinar_audience = n;
    }

    let mut outcomes = Vec::new();
    if wanted("meeting") {
        let mut c = SwarmConfig::new("");
        c.publishers = sizes.meeting;
        outcomes.push(steady("meeting", c, sizes, false).await);
    }
    if wanted("webinar") {
        let mut c = SwarmConfig::new("");
        c.publishers = 1;
        c.subscribers = sizes.webinar_audience;
        c.join_rate = 25.0;
        outcomes.push(steady("webinar", c, sizes, false).await);
    }
    if wanted("audio") {
        let mut c = SwarmConfig::new("");
        c.publishers = 0;
        c.audio_publishers = sizes.audio_speakers;
        c.subscribers = sizes.audio_room - sizes.audio_speakers;
        c.join_rate = 25.0;
        outcomes.push(steady("audio", c, sizes, false).await);
    }
    if wanted("meeting-big") {
        let c = big_meeting::config(sizes.big_meeting, sizes.big_meeting_video);
        outcomes.push(steady("meeting-big", c, sizes, true).await);
    }
    if wanted("churn") {
        outcomes.push(churn(sizes).await);
    }
    let big_webinar = if wanted("webinar-big") {
        Some(big_webinar::run(sizes.big_webinar_audience, sizes.window).await)
    } else {
        None
    };
    let mut first_videos = Vec::new();
    if wanted("first-video") {
        let server = Server::start("first-video");
        for simulcast in [false, true] {
            let room = if simulcast { "first-sim" } else { "first" };
            let outcome = first_video::run(
                &server.url(),
                room,
                simulcast,
                sizes.first_video_subscribers,
            )
            .await;
            let stats = server.stats();
            eprintln!(
                "[first video] server: {} PLIs sent so far",
                stats["media"]["plis_sent"]
            );
            first_videos.push(outcome);
        }
    }
    let junk = wanted("junk").then(|| junk::run(sizes.junk_datagrams));
    print_table(&outcomes);
    if let Some(w) = &big_webinar {
        w.print();
    }
    for f in &first_videos {
        f.print();
    }
    if let Some(junk) = &junk {
        junk.print();
    }
    let json = serde_json::json!({
        "quick": quick,
        "window_secs": sizes.window.as_secs_f64(),
        "warmup_secs": sizes.warmup.as_secs_f64(),
        "scenarios": outcomes,
        "webinar_big": big_webinar,
        "first_video": first_videos,
        "junk": junk,
    });
    match serde_json::to_string_pretty(&json) {
        Ok(text) => match std::fs::write(&json_path, text) {
            Ok(()) => println!("results written to {json_path}"),
            Err(e) => eprintln!("cannot write {json_path}: {e}"),
        },
        Err(e) => eprintln!("cannot encode the results: {e}"),
    }
}

fn churn_role() -> BotRole {
    match std::env::var("CHURN_ROLE").as_deref() {
        Ok("subscriber") => BotRole::Subscriber,
        Ok("audio") => BotRole::AudioPublisher,
        _ => BotRole::AvPublisher,
    }
}
