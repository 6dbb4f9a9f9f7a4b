//! The roomcast server as users run it (its defaults: HTTP on 0.0.0.0:8080, media on UDP
//! 0.0.0.0:50000), a process of its own in the lab's server namespace, and a sampler that
//! reads its admin API's room detail a few times a second: per subscriber the bandwidth
//! estimate, what was sent, and the layer of each track.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::clock::now_ms;
use crate::lab::{Lab, SERVER_IP};

pub const HTTP_PORT: u16 = 8080;
const ADMIN_KEY: &str = "netlab-admin-key-0123456789";

pub struct Server {
    child: Child,
    ns: String,
}

impl Server {
    /// Starts `binary serve` in the lab's server namespace with `extra` flags, and waits
    /// until it answers.
    pub fn start(lab: &Lab, binary: &Path, extra: &[&str], log: &Path) -> Result<Server> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = lab
            .server
            .command(&binary.to_string_lossy())
            .arg("serve")
            .args(extra)
            .env("ROOMCAST_ADMIN_KEY", ADMIN_KEY)
            .env(
                "RUST_LOG",
                std::env::var("NETLAB_SERVER_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut server = Server {
            child,
            ns: lab.server.name().to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!(
                    "the server exited at start ({status}); see {}",
                    log.display()
                );
            }
            if in_namespace(&server.ns, || get("/healthz")).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("the server did not answer in 20 s; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The URL participants reach the WebSocket at.
    pub fn ws_url() -> String {
        format!("ws://{SERVER_IP}:{HTTP_PORT}/ws")
    }

    /// Starts reading room `room`'s detail every `every`.
    pub fn sample(&self, room: &str, every: Duration) -> Sampler {
        Sampler::start(self.ns.clone(), room.to_owned(), every)
    }

    /// `GET /api/stats`: the server's counters.
    pub fn stats(&self) -> Result<serde_json::Value> {
        let body = in_namespace(&self.ns, || get("/api/stats"))?;
        Ok(serde_json::from_str(&body)?)
    }

    /// The process's CPU time so far (user + system).
    pub fn cpu_time(&self) -> Option<Duration> {
        crate::cpu::process_cpu(self.child.id())
    }

    /// SIGTERM, then waits (the server stops within 5 s).
    pub fn stop(mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(6);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `f` on a thread that has entered namespace `ns`.
fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        crate::netns::enter(&ns)?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread panicked"))?
}

/// `GET path` on the server's HTTP port, from inside its namespace: the body.
fn get(path: &str) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", HTTP_PORT))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no HTTP header end")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_owned())
}

/// One reading of the room.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct RoomSample {
    #[serde(default)]
    pub t: f64,
    pub participants: Vec<ParticipantSample>,
    #[serde(default)]
    pub active_speakers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ParticipantSample {
    pub id: String,
    pub subscriber: Option<SubscriberSample>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct SubscriberSample {
    pub estimate_bps: Option<u64>,
    pub acked_bps: Option<u64>,
    pub sent_bps: u64,
    pub tracks: Vec<ReceivedTrackSample>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ReceivedTrackSample {
    pub track_id: String,
    pub publisher_id: String,
    pub kind: String,
    pub requested: Option<u8>,
    pub allowed: Option<u8>,
    pub current: Option<u8>,
    pub paused: bool,
}

impl RoomSample {
    pub fn subscriber(&self, id: &str) -> Option<&SubscriberSample> {
        self.participants
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.subscriber.as_ref())
    }
}

impl SubscriberSample {
    /// The received video track of `publisher`.
    pub fn video_from(&self, publisher: &str) -> Option<&ReceivedTrackSample> {
        self.tracks
            .iter()
            .find(|t| t.kind == "video" && t.publisher_id == publisher)
    }
}

/// Reads the room detail periodically on a thread inside the server's namespace.
pub struct Sampler {
    samples: Arc<Mutex<Vec<RoomSample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    fn start(ns: String, room: String, every: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (Arc::clone(&samples), Arc::clone(&stop));
            std::thread::spawn(move || {
                if crate::netns::enter(&ns).is_err() {
                    return;
                }
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let t = now_ms();
                    if let Ok(body) = get(&format!("/api/rooms/{room}")) {
                        if let Ok(mut sample) = serde_json::from_str::<RoomSample>(&body) {
                            sample.t = t;
                            if let Ok(mut all) = samples.lock() {
                                all.push(sample);
                            }
                        }
                    }
                    std::thread::sleep(every.saturating_sub(started.elapsed()));
                }
            })
        };
        Sampler {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    pub fn samples(&self) -> Vec<RoomSample> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
