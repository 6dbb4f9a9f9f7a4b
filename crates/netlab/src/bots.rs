//! Headless bots ([`roomcast_bots::Bot`]) inside a participant's namespace: each namespace
//! gets a thread that enters it and runs a tokio runtime, so every socket a bot opens (its
//! WebSocket, its ICE candidates) lives there and its media crosses that link.
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use roomcast_bots::{Bot, BotConfig, RemoteTrackStats};
use roomcast_protocol::{ServerMessage, TrackKind};
use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::netns::Netns;

/// A tokio runtime that lives in a namespace: its threads are started from a thread that
/// entered it, so they are all inside.
pub struct NsRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl NsRuntime {
    pub fn start(ns: &Netns) -> Result<NsRuntime> {
        let name = ns.name().to_owned();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("netlab-ns".into())
            .spawn(move || {
                let runtime = crate::netns::enter(&name).and_then(|()| {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .context("tokio runtime")
                });
                match runtime {
                    Ok(runtime) => {
                        let _ = ready_tx.send(Ok(runtime.handle().clone()));
                        let _ = runtime.block_on(stopped);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        let handle = ready_rx.recv().context("namespace thread died")??;
        Ok(NsRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `future` inside the namespace and waits for its result.
    pub async fn run<F>(&self, future: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle
            .spawn(future)
            .await
            .context("task in the namespace failed")
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One bot's view at one time: per received track.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BotSample {
    pub t: f64,
    pub tracks: Vec<BotTrack>,
    /// `track_paused` and `track_resumed` messages received so far.
    pub paused_messages: usize,
    pub resumed_messages: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BotTrack {
    pub publisher_id: String,
    pub track_id: String,
    pub kind: TrackKind,
    pub packets: u64,
    pub bytes: u64,
    /// Packets still missing (gaps not filled by retransmission).
    pub seq_gaps: u64,
    pub duplicates: u64,
    /// Width of the latest keyframe.
    pub frame_width: u16,
    /// Milliseconds since the last packet (`None` before any).
    pub idle_ms: Option<f64>,
    pub freezes: u64,
    pub max_gap_ms: f64,
    /// When (our clock) the first keyframe arrived.
    pub first_keyframe_t: Option<f64>,
}

impl BotTrack {
    fn from_stats(t: &RemoteTrackStats, now: Instant, now_t: f64) -> BotTrack {
        let ms_before = |at: Instant| now.saturating_duration_since(at).as_secs_f64() * 1000.0;
        BotTrack {
            publisher_id: t.publisher_id.clone(),
            track_id: t.track_id.clone(),
            kind: t.kind,
            packets: t.packets,
            bytes: t.bytes,
            seq_gaps: t.seq_gaps,
            duplicates: t.duplicates,
            frame_width: t.frame_width,
            idle_ms: t.last_packet_at.map(ms_before),
            freezes: t.freezes,
            max_gap_ms: t.max_gap.as_secs_f64() * 1000.0,
            first_keyframe_t: t.keyframe_sizes.first().map(|k| now_t - ms_before(k.at)),
        }
    }
}

/// A bot in a namespace, sampled periodically.
pub struct NsBot {
    pub bot: Arc<Bot>,
    pub id: String,
    samples: Arc<Mutex<Vec<BotSample>>>,
    sampler: Option<tokio::task::JoinHandle<()>>,
    /// When the bot sent `join`, its WebSocket open (our clock), as the page's
    /// `join_sent_t`.
    pub join_sent: f64,
    // Dropped last: the runtime the bot runs on.
    runtime: NsRuntime,
}

impl NsBot {
    /// Joins `config` from inside `ns` and samples what it receives every `every`.
    pub async fn join(ns: &Netns, config: BotConfig, every: Duration) -> Result<NsBot> {
        let runtime = NsRuntime::start(ns)?;
        let name = config.name.clone();
        let bot = runtime
            .run(Bot::join(config))
            .await?
            .with_context(|| format!("bot {name} joins"))?;
        let join_sent = now_ms() - bot.join_sent().elapsed().as_secs_f64() * 1000.0;
        let bot = Arc::new(bot);
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sampler = {
            let (bot, samples) = (Arc::clone(&bot), Arc::clone(&samples));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let sample = snapshot(&bot);
                    if let Ok(mut all) = samples.lock() {
                        all.push(sample);
                    }
                }
            })
        };
        Ok(NsBot {
            id: bot.participant_id().to_owned(),
            bot,
            samples,
            sampler: Some(sampler),
            join_sent,
            runtime,
        })
    }

    pub fn samples(&self) -> Vec<BotSample> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Runs `f(bot)` on the bot's runtime (inside its namespace).
    pub async fn with_bot<F, Fut, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Arc<Bot>) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime.run(f(Arc::clone(&self.bot))).await
    }
}

impl Drop for NsBot {
    fn drop(&mut self) {
        if let Some(sampler) = self.sampler.take() {
            sampler.abort();
        }
    }
}

fn snapshot(bot: &Bot) -> BotSample {
    let now = Instant::now();
    let t = now_ms();
    let messages = bot.messages();
    BotSample {
        t,
        tracks: bot
            .remote_tracks()
            .iter()
            .map(|s| BotTrack::from_stats(s, now, t))
            .collect(),
        paused_messages: messages
            .iter()
            .filter(|m| matches!(m, ServerMessage::TrackPaused { .. }))
            .count(),
        resumed_messages: messages
            .iter()
            .filter(|m| matches!(m, ServerMessage::TrackResumed { .. }))
            .count(),
    }
}
