//! The abuse suite's harness: the server as its own process with the README's defaults
//! (only the ports are ephemeral), a bystander pair exchanging real media in a room, and a
//! watch over one case that samples the bystanders' media, the server's RSS and the size of
//! its log. A case is: start, join the bystanders, start the watch, attack, finish the
//! watch, check the bounds.
//!
//! `ABUSE_SERVER_BIN=path` runs the cases against another build (e.g. the release binary,
//! or a baseline for before/after figures); the default is the test build of `roomcast`.
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_bots::{Bot, BotConfig, RemoteTrackStats};
use roomcast_protocol::{ServerMessage, TrackKind};

use crate::common::{self, MEDIA_TIMEOUT};

/// One case at a time: they measure the server's memory and the bystanders' timing, which
/// another case running beside them would disturb.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A gap in the bystanders' media longer than this fails the case.
pub const MAX_GAP: Duration = Duration::from_millis(500);
/// Packets lost in either direction beyond this share fail the case.
pub const MAX_LOSS: f64 = 0.02;

/// The server, started as `roomcast` with the README's defaults on ephemeral ports.
pub struct ServerProcess {
    child: Child,
    pub http: SocketAddr,
    /// The media port, on loopback.
    pub udp: SocketAddr,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts the server with `args` added to the defaults and `env` set (`RUST_LOG` and
    /// `RUST_BACKTRACE` are removed: the server's own defaults apply, as for a user).
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let _ = rlimit::increase_nofile_limit(u64::MAX);
        let binary = std::env::var("ABUSE_SERVER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_roomcast").to_owned());
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let log = std::env::temp_dir().join(format!(
            "roomcast-abuse-{}-{}.log",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(&binary)
            .args(["--http-addr", "0.0.0.0:0", "--udp-port", "0"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("RUST_BACKTRACE")
            .envs(env.iter().copied())
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let mut server = ServerProcess {
            child,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            udp: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let (port, udp_port) = loop {
            if let Some(ports) = server.listening_ports() {
                break ports;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the server exited ({status}):\n{}", server.log_tail(40));
            }
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        server.http = SocketAddr::from(([127, 0, 0, 1], port));
        server.udp = SocketAddr::from(([127, 0, 0, 1], udp_port));
        server
    }

    /// The ports from the log's `roomcast listening http_addr=0.0.0.0:PORT udp_port=PORT`.
    fn listening_ports(&self) -> Option<(u16, u16)> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let line = log.lines().find(|l| l.contains("roomcast listening"))?;
        let addr = line.split("http_addr=").nth(1)?.split_whitespace().next()?;
        let http = addr.rsplit(':').next()?.parse().ok()?;
        let udp = line.split("udp_port=").nth(1)?.split_whitespace().next()?;
        Some((http, udp.parse().ok()?))
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http)
    }

    pub fn rss_kib(&self) -> u64 {
        rss_of(self.child.id())
    }

    /// CPU time the server has used so far (user and system).
    pub fn cpu_time(&self) -> Duration {
        cpu_time_of(self.child.id())
    }

    pub fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        common::browser::tail(&text, lines)
    }

    /// One `/metrics` sample.
    pub async fn metric(&self, sample: &str) -> f64 {
        common::http::metric(self.http, sample).await
    }

    pub async fn refused(&self, reason: &str) -> f64 {
        self.metric(&format!(
            "roomcast_connections_refused_total{{reason=\"{reason}\"}}"
        ))
        .await
    }

    /// Waits until `/metrics` shows `sample` at `value`.
    pub async fn wait_for_metric(&self, sample: &str, value: f64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.metric(sample).await;
            if now == value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{sample} is {now}, not {value}, after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("server log (end):\n{}", self.log_tail(60));
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Two participants in one room, each publishing audio and video and receiving the other's.
pub struct Bystanders {
    pub room: String,
    pub a: Arc<Bot>,
    pub b: Arc<Bot>,
}

impl Bystanders {
    pub async fn join(server: &ServerProcess, room: &str) -> Bystanders {
        let a = common::join_with(BotConfig::new(server.ws_url(), room, "bystander-a")).await;
        let b = common::join_with(BotConfig::new(server.ws_url(), room, "bystander-b")).await;
        for (bot, other) in [(&a, &b), (&b, &a)] {
            let from = other.participant_id().to_owned();
            bot.wait_for_media(
                |t| {
                    common::has_audio_from(t, &from, 50)
                        && common::has_video_from(t, &from, 50, 640, 360)
                },
                MEDIA_TIMEOUT,
            )
            .await
            .unwrap_or_else(|e| panic!("bystander media never flowed: {e}"));
        }
        Bystanders {
            room: room.to_owned(),
            a: Arc::new(a),
            b: Arc::new(b),
        }
    }

    fn tracks(&self) -> Vec<RemoteTrackStats> {
        let mut all = self.a.remote_tracks();
        all.extend(self.b.remote_tracks());
        all
    }
}

/// Bounds a case must stay within.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Most the server's RSS may grow over the case, from its start to its peak.
    pub rss_growth_mib: f64,
    /// Most the server's log may grow over the case.
    pub log_bytes: u64,
}

/// What was seen during one case.
#[derive(Debug, Clone, Default)]
pub struct CaseReport {
    pub name: String,
    pub seconds: f64,
    pub rss_before_mib: f64,
    pub rss_peak_mib: f64,
    pub rss_after_mib: f64,
    /// CPU time the server used over the case.
    pub server_cpu: Duration,
    pub log_bytes: u64,
    /// Media packets the bystanders received, and lost, over the case.
    pub received: u64,
    pub lost: u64,
    /// The longest time without a packet on any audio track, and on any video track not
    /// paused by the server.
    pub audio_gap: Gap,
    pub video_gap: Gap,
    pub max_jitter_ms: f64,
    pub max_send_stall: Duration,
    pub max_tick_late: Duration,
    /// Times the server paused a bystander's video for bandwidth (its congestion control,
    /// announced with `track_paused`).
    pub bandwidth_pauses: u64,
}

/// A stretch without packets, and when it was seen (from the start of the case).
#[derive(Debug, Clone, Copy, Default)]
pub struct Gap {
    pub len: Duration,
    pub at: Duration,
}

impl Gap {
    fn note(&mut self, len: Duration, at: Duration) {
        if len > self.len {
            *self = Gap { len, at };
        }
    }
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ms (at {:.1} s)",
            self.len.as_millis(),
            self.at.as_secs_f64()
        )
    }
}

impl CaseReport {
    pub fn loss(&self) -> f64 {
        self.lost as f64 / (self.received + self.lost).max(1) as f64
    }

    pub fn print(&self) {
        eprintln!(
            "abuse case {}: {:.1} s; server RSS {:.1} MiB before, {:.1} peak, {:.1} after; \
             server CPU {:.2} s; log +{} bytes; bystanders received {} packets, lost {} ({:.2} %), longest gap \
             {} audio, {} video, highest jitter {:.1} ms, video paused for bandwidth {} times; \
             this process: longest send stall {} ms, sampler late by {} ms at worst",
            self.name,
            self.seconds,
            self.rss_before_mib,
            self.rss_peak_mib,
            self.rss_after_mib,
            self.server_cpu.as_secs_f64(),
            self.log_bytes,
            self.received,
            self.lost,
            self.loss() * 100.0,
            self.audio_gap,
            self.video_gap,
            self.max_jitter_ms,
            self.bandwidth_pauses,
            self.max_send_stall.as_millis(),
            self.max_tick_late.as_millis(),
        );
    }

    /// Fails the case if the bystanders noticed it or the server went past `bounds`.
    pub fn check(&self, bounds: Bounds) {
        self.print();
        assert!(
            self.received > 100,
            "the bystanders received almost nothing: {self:?}"
        );
        // This process runs the bystanders too: when it was itself held up (its sampler's
        // tick came late), that much of a gap may be its own doing, not the server's.
        let allowed = MAX_GAP + self.max_tick_late;
        assert!(
            self.audio_gap.len <= allowed,
            "{}: a bystander's audio stopped for {} (allowed {} ms)",
            self.name,
            self.audio_gap,
            allowed.as_millis()
        );
        // Video the server's congestion control paused and resumed (it then restarts at a
        // keyframe) is its adaptation at work, judged by its own tests; otherwise video
        // must not stop either.
        assert!(
            self.video_gap.len <= allowed || self.bandwidth_pauses > 0,
            "{}: a bystander's video stopped for {} without a bandwidth pause (allowed {} ms)",
            self.name,
            self.video_gap,
            allowed.as_millis()
        );
        assert!(
            self.loss() <= MAX_LOSS,
            "{}: the bystanders lost {:.2} % of their packets",
            self.name,
            self.loss() * 100.0
        );
        let growth = self.rss_peak_mib - self.rss_before_mib;
        assert!(
            growth <= bounds.rss_growth_mib,
            "{}: server RSS grew {growth:.1} MiB (bound {} MiB)",
            self.name,
            bounds.rss_growth_mib
        );
        assert!(
            self.log_bytes <= bounds.log_bytes,
            "{}: the server logged {} bytes (bound {})",
            self.name,
            self.log_bytes,
            bounds.log_bytes
        );
    }
}

/// Samples the bystanders' media and the server every 50 ms while a case runs.
pub struct Watch {
    stop: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<Sampled>,
    name: String,
    started: Instant,
    rss_before: u64,
    cpu_before: Duration,
    log_before: u64,
    packets_before: u64,
    gaps_before: u64,
}

#[derive(Default)]
struct Sampled {
    rss_peak: u64,
    audio_gap: Gap,
    video_gap: Gap,
    max_jitter_ms: f64,
    /// The longest the bystanders went without sending a frame: if this is as long as the
    /// gap, this process (not the server) held them up.
    max_send_stall: Duration,
    /// How late the sampler's own tick came at worst (this process's scheduling delay).
    max_tick_late: Duration,
    /// Video tracks the server has paused for bandwidth now (`track_paused`), and how many
    /// times one was paused.
    paused_tracks: Vec<String>,
    pauses: u64,
}

/// The tracks `bot` was last told are paused for bandwidth (and not resumed since).
fn paused(bot: &Bot) -> Vec<String> {
    let mut paused = Vec::new();
    for m in bot.messages() {
        match m {
            ServerMessage::TrackPaused { track_id, .. } => paused.push(track_id),
            ServerMessage::TrackResumed { track_id } => paused.retain(|t| *t != track_id),
            _ => {}
        }
    }
    paused
}

const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// The shortest a case is watched.
pub const MIN_WATCH: Duration = Duration::from_secs(3);

fn totals(tracks: &[RemoteTrackStats]) -> (u64, u64) {
    tracks
        .iter()
        .fold((0, 0), |(p, g), t| (p + t.packets, g + t.seq_gaps))
}

impl Watch {
    pub fn start(name: &str, server: &ServerProcess, bystanders: &Bystanders) -> Watch {
        let (packets_before, gaps_before) = totals(&bystanders.tracks());
        let stop = Arc::new(AtomicBool::new(false));
        let pid = server.child.id();
        let (a, b) = (Arc::clone(&bystanders.a), Arc::clone(&bystanders.b));
        let stopping = Arc::clone(&stop);
        let rss_before = server.rss_kib();
        let sampler = tokio::spawn(async move {
            let mut sampled = Sampled {
                rss_peak: rss_before,
                ..Sampled::default()
            };
            let started = Instant::now();
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut expected = tokio::time::Instant::now();
            let mut frames_sent = 0;
            let mut last_sent_at = Instant::now();
            while !stopping.load(Ordering::Relaxed) {
                let fired = tick.tick().await;
                let late =
                    tokio::time::Instant::now().saturating_duration_since(fired.max(expected));
                sampled.max_tick_late = sampled.max_tick_late.max(late);
                expected = fired + SAMPLE_EVERY;
                let now = Instant::now();
                let paused_now = paused(&a).into_iter().chain(paused(&b)).collect::<Vec<_>>();
                for id in &paused_now {
                    if !sampled.paused_tracks.contains(id) {
                        sampled.pauses += 1;
                    }
                }
                sampled.paused_tracks = paused_now;
                for t in a.remote_tracks().iter().chain(b.remote_tracks().iter()) {
                    if t.ended {
                        continue;
                    }
                    // A track the server paused for bandwidth (and said so) is not a gap.
                    if sampled.paused_tracks.contains(&t.track_id) {
                        continue;
                    }
                    if let Some(last) = t.last_packet_at {
                        let gap = now.saturating_duration_since(last);
                        let at = now.saturating_duration_since(started);
                        match t.kind {
                            TrackKind::Audio => sampled.audio_gap.note(gap, at),
                            TrackKind::Video => sampled.video_gap.note(gap, at),
                        }
                    }
                    sampled.max_jitter_ms = sampled.max_jitter_ms.max(t.jitter_ms);
                }
                let sent: u64 = a
                    .published_tracks()
                    .iter()
                    .chain(b.published_tracks().iter())
                    .map(|t| t.frames_sent)
                    .sum();
                if sent != frames_sent {
                    frames_sent = sent;
                    last_sent_at = now;
                }
                sampled.max_send_stall = sampled
                    .max_send_stall
                    .max(now.saturating_duration_since(last_sent_at));
                sampled.rss_peak = sampled.rss_peak.max(rss_of(pid));
            }
            sampled
        });
        Watch {
            stop,
            sampler,
            name: name.to_owned(),
            started: Instant::now(),
            rss_before,
            cpu_before: server.cpu_time(),
            log_before: server.log_bytes(),
            packets_before,
            gaps_before,
        }
    }

    /// Stops sampling (after [`MIN_WATCH`] at least, so a quick attack is still watched
    /// for what it leaves behind): what the case did to the bystanders and the server.
    pub async fn finish(self, server: &ServerProcess, bystanders: &Bystanders) -> CaseReport {
        tokio::time::sleep(MIN_WATCH.saturating_sub(self.started.elapsed())).await;
        self.stop.store(true, Ordering::Relaxed);
        let sampled = self.sampler.await.expect("the sampler ran");
        let (packets, gaps) = totals(&bystanders.tracks());
        let mib = |kib: u64| kib as f64 / 1024.0;
        CaseReport {
            name: self.name,
            seconds: self.started.elapsed().as_secs_f64(),
            rss_before_mib: mib(self.rss_before),
            rss_peak_mib: mib(sampled.rss_peak),
            rss_after_mib: mib(server.rss_kib()),
            server_cpu: server.cpu_time().saturating_sub(self.cpu_before),
            log_bytes: server.log_bytes().saturating_sub(self.log_before),
            received: packets.saturating_sub(self.packets_before),
            lost: gaps.saturating_sub(self.gaps_before),
            audio_gap: sampled.audio_gap,
            video_gap: sampled.video_gap,
            max_jitter_ms: sampled.max_jitter_ms,
            max_send_stall: sampled.max_send_stall,
            max_tick_late: sampled.max_tick_late,
            bandwidth_pauses: sampled.pauses,
        }
    }
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User and system CPU time of process `pid` (fields 14 and 15 of `/proc/PID/stat`, after
/// the command name in parentheses).
fn cpu_time_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}
