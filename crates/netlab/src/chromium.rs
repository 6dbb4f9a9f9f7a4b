//! A real Chromium participant: `tests/browser/netlab.mjs` run inside the participant's
//! namespace, opening the web client through a loopback forwarder so the page is
//! http://localhost while its traffic crosses the lab's link. Its `getStats` samples and
//! protocol messages arrive here as JSON lines.
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};

use crate::lab::SERVER_IP;
use crate::netns::Netns;
use crate::server::HTTP_PORT;

/// What to open.
#[derive(Debug, Clone)]
pub struct PageOptions {
    pub room: String,
    pub name: String,
    /// `audience` or `presenter` (publishes the fake camera and microphone).
    pub role: &'static str,
    pub width: u32,
    pub height: u32,
}

pub struct Chromium {
    child: Child,
    stdin: ChildStdin,
    events: Arc<Mutex<Vec<Event>>>,
}

/// One line from the script.
#[derive(Debug, Clone, serde::Serialize)]
pub enum Event {
    Joined {
        t: f64,
        id: String,
        join_sent_t: Option<f64>,
    },
    FirstFrame {
        t: f64,
    },
    Signal {
        t: f64,
        sent: bool,
        message: Value,
    },
    Sample(Box<PageSample>),
    Error(String),
}

/// One `getStats` reading.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageSample {
    pub t: f64,
    pub connection_state: String,
    pub ufrag: Option<String>,
    pub inbound: Vec<Inbound>,
    pub outbound: Vec<Outbound>,
    pub pair: Option<Pair>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inbound {
    pub kind: String,
    pub mid: Option<String>,
    /// Whose track this is (from the client's state), when known.
    pub participant_id: Option<String>,
    pub packets_received: f64,
    pub packets_lost: f64,
    pub bytes_received: f64,
    pub frames_decoded: f64,
    pub frame_width: f64,
    pub freeze_count: f64,
    pub total_freezes_duration: f64,
    pub concealed_samples: f64,
    pub total_samples_received: f64,
    pub jitter_buffer_delay: f64,
    pub jitter_buffer_emitted_count: f64,
    /// The received codec's MIME type (`audio/red` where the server sends RED).
    #[serde(default)]
    pub codec: Option<String>,
    /// Audio packets recovered from redundancy (RED, Opus FEC), and those of them not needed.
    #[serde(default)]
    pub fec_packets_received: f64,
    #[serde(default)]
    pub fec_packets_discarded: f64,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outbound {
    pub rid: Option<String>,
    pub bytes_sent: f64,
    pub frame_width: f64,
    pub quality_limitation_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pair {
    pub rtt: Option<f64>,
    pub available_outgoing_bitrate: Option<f64>,
}

impl Chromium {
    /// Starts the page in `ns`; `script` is `tests/browser/netlab.mjs`.
    pub async fn start(ns: &Netns, script: &Path, page: &PageOptions, log: &Path) -> Result<Self> {
        let stderr = std::fs::File::create(log)?;
        let mut command = tokio::process::Command::from(ns.command("node"));
        command
            .arg(script)
            .args(["--server", &format!("{SERVER_IP}:{HTTP_PORT}")])
            .args([
                "--room", &page.room, "--name", &page.name, "--role", page.role,
            ])
            .args(["--width", &page.width.to_string()])
            .args(["--height", &page.height.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .context("node runs (is tests/browser set up?)")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let events = Arc::new(Mutex::new(Vec::new()));
        {
            let events = Arc::clone(&events);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(event) = parse(&line) {
                        if let Ok(mut all) = events.lock() {
                            all.push(event);
                        }
                    }
                }
            });
        }
        Ok(Chromium {
            child,
            stdin,
            events,
        })
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub fn samples(&self) -> Vec<PageSample> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Sample(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    /// Waits until the client joined: its participant id.
    pub async fn joined(&mut self, timeout: Duration) -> Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            for event in self.events() {
                match event {
                    Event::Joined { id, .. } => return Ok(id),
                    Event::Error(e) => bail!("the Chromium page failed: {e}"),
                    _ => {}
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("the Chromium script exited ({status}) before joining");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the Chromium page did not join in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resizes the window: the web client asks for the layer its tiles then need.
    pub async fn resize(&mut self, width: u32, height: u32) -> Result<()> {
        let line = format!("{{\"cmd\":\"viewport\",\"width\":{width},\"height\":{height}}}\n");
        self.stdin.write_all(line.as_bytes()).await?;
        Ok(())
    }

    pub async fn stop(mut self) {
        let _ = self.stdin.write_all(b"{\"cmd\":\"stop\"}\n").await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn parse(line: &str) -> Option<Event> {
    let v: Value = serde_json::from_str(line).ok()?;
    let t = v["t"].as_f64().unwrap_or_default();
    Some(match v["event"].as_str()? {
        "joined" => Event::Joined {
            t,
            id: v["participant_id"].as_str()?.to_owned(),
            join_sent_t: v["join_sent_t"].as_f64(),
        },
        "first_frame" => Event::FirstFrame { t },
        "signal" => Event::Signal {
            t,
            sent: v["dir"] == "sent",
            message: v["message"].clone(),
        },
        "sample" => Event::Sample(Box::new(serde_json::from_value(v).ok()?)),
        "error" => Event::Error(v["error"].as_str().unwrap_or_default().to_owned()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_scripts_lines() {
        let sample = r#"{"t":5,"event":"sample","connectionState":"connected","ufrag":"ab","inbound":[{"kind":"video","mid":"1","participantId":"PA_1","packetsReceived":10,"packetsLost":1,"bytesReceived":1000,"framesDecoded":3,"frameWidth":320,"freezeCount":0,"totalFreezesDuration":0,"concealedSamples":0,"totalSamplesReceived":0,"jitterBufferDelay":0.1,"jitterBufferEmittedCount":3,"nackCount":0}],"outbound":[],"pair":null}"#;
        match parse(sample) {
            Some(Event::Sample(s)) => {
                assert_eq!(s.inbound[0].frame_width, 320.0);
                assert_eq!(s.inbound[0].participant_id.as_deref(), Some("PA_1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(r#"{"t":1,"event":"joined","participant_id":"PA_2","join_sent_t":0.5}"#),
            Some(Event::Joined { .. })
        ));
        assert!(parse("not json").is_none());
    }
}
