//! The `roomcast` binary as users start it, for what only the real process shows: signals, its
//! default log filter, its default addresses.
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{server_log, MESSAGE_TIMEOUT};

pub const ROOMCAST: &str = env!("CARGO_BIN_EXE_roomcast");

/// A running `roomcast serve`, killed when dropped. All it writes (stdout: its log, at the
/// filter it was started with; stderr) goes to a log file ([`server_log`]), deleted when the
/// handle drops, or shown when a panic drops it.
pub struct ServeProcess {
    child: Child,
    /// The HTTP address it listens on (`host:port`).
    pub http_addr: String,
    logs: Arc<Mutex<Vec<Value>>>,
    /// Set when its stdout ends.
    logs_ended: Arc<tokio::sync::Notify>,
    log_path: PathBuf,
}

impl ServeProcess {
    /// `roomcast serve --http-addr 127.0.0.1:0 --udp-port 0 --log-format json` plus `args`,
    /// with `RUST_LOG` set to `rust_log` (or unset: the server's default filter). Returns once
    /// it logged `roomcast listening`; every JSON log line after that is kept ([`Self::logs`]).
    /// The binary as a cluster node: `id`, sharing the Redis at `redis_url`, with
    /// `admin_key`, draining within `drain_timeout`, and `more` arguments.
    pub async fn cluster_node(
        redis_url: &str,
        id: &str,
        admin_key: &str,
        drain_timeout: &str,
        more: &[&str],
    ) -> ServeProcess {
        let mut args = vec![
            "--redis-url",
            redis_url,
            "--node-id",
            id,
            "--admin-key",
            admin_key,
            "--drain-timeout",
            drain_timeout,
        ];
        args.extend_from_slice(more);
        ServeProcess::start(&args, None).await
    }

    pub async fn start(args: &[&str], rust_log: Option<&str>) -> ServeProcess {
        let (log_path, mut log) = server_log::create_log_file().expect("a server log file");
        let mut command = Command::new(ROOMCAST);
        command
            .args(["serve", "--http-addr", "127.0.0.1:0", "--udp-port", "0"])
            .args(["--log-format", "json"])
            .args(args)
            .env_remove("ROOMCAST_JWT_SECRET")
            .stdout(Stdio::piped())
            .stderr(log.try_clone().expect("the log file's handle"))
            .kill_on_drop(true);
        match rust_log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        let mut child = command.spawn().expect("roomcast starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let http_addr = tokio::time::timeout(MESSAGE_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.expect("stdout readable") {
                keep(&mut log, &line);
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v["fields"]["message"] == "roomcast listening" {
                    return v["fields"]["http_addr"]
                        .as_str()
                        .expect("http_addr logged")
                        .to_owned();
                }
            }
            panic!("stdout ended before the server listened");
        })
        .await
        .expect("the server starts in time");
        // Keep reading, so the server never blocks on a full pipe.
        let logs = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&logs);
        let logs_ended = Arc::new(tokio::sync::Notify::new());
        let ended = Arc::clone(&logs_ended);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&mut log, &line);
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    kept.lock().expect("log lines").push(v);
                }
            }
            ended.notify_one();
        });
        ServeProcess {
            child,
            http_addr,
            logs,
            logs_ended,
            log_path,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http_addr)
    }

    pub fn port(&self) -> &str {
        self.http_addr.rsplit(':').next().expect("a port")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits at most `limit` for the process to exit.
    pub async fn exited_within(&mut self, limit: Duration) -> ExitStatus {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the process exits within {limit:?}"))
            .expect("wait works")
    }

    /// The JSON log lines so far.
    pub fn logs(&self) -> Vec<Value> {
        self.logs.lock().expect("log lines").clone()
    }

    /// Every JSON log line the process wrote, once it has exited and its stdout has ended.
    pub async fn final_logs(&mut self, limit: Duration) -> Vec<Value> {
        self.exited_within(limit).await;
        tokio::time::timeout(limit, self.logs_ended.notified())
            .await
            .expect("stdout ends after the exit");
        self.logs()
    }
}

impl ServeProcess {
    /// Sends SIGKILL, as a crash would, and waits for the process to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", server_log::shown_from_file(&self.log_path));
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

/// Appends a line of the server's stdout to its log file (the log is for reading, so a
/// failed write is not the test's failure).
fn keep(log: &mut File, line: &str) {
    let _ = writeln!(log, "{line}");
}
