//! Many bots at once, for load tests: a [`Swarm`] joins publishers and subscribers into one
//! or more rooms at a paced rate, tracks what every bot receives, and reports per-track and
//! summary figures ([`Report`]). It never fails as a whole: bots that cannot join are counted
//! by error code.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use roomcast_bots::{Swarm, SwarmConfig};
//!
//! let mut config = SwarmConfig::new("ws://127.0.0.1:8080/ws");
//! config.publishers = 2;
//! config.subscribers = 8;
//! config.join_rate = 20.0;
//! let swarm = Swarm::start(config).await; // every join attempted
//! let all_there = swarm.wait_for_tracks(Duration::from_secs(20)).await;
//! let before = swarm.snapshot();
//! tokio::time::sleep(Duration::from_secs(10)).await;
//! let report = swarm.report(Some(&before)); // the last 10 s
//! println!("{all_there} {}", serde_json::to_string_pretty(&report).unwrap());
//! swarm.leave(Duration::from_secs(5)).await;
//! # }
//! ```
//!
//! Cost per bot: a subscriber-only bot is one WebSocket, one PeerConnection, one session task,
//! and one reader task (with a 1500-byte buffer) per received track; it never decodes, it
//! only counts. Publishers add two tasks per published encoding (a simulcast video track has
//! three); the media loops are parsed once per process and shared by every bot.
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use roomcast_protocol::{ClientMessage, Quality, Role, TrackKind};
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;
use tracing::debug;

use crate::load::{CpuSample, CpuUse};
use crate::report::{self, Observation};
use crate::{
    percentiles, Bot, BotConfig, BotError, BotPlan, BotRole, ChurnResult, JoinFailure,
    MessageCursor, Report, SwarmSnapshot, VideoCodec,
};

/// Joins in flight at once, unless [`SwarmConfig::max_concurrent_joins`] says otherwise.
pub const DEFAULT_MAX_CONCURRENT_JOINS: usize = 16;
/// Swarm bots keep only the newest server messages; they need them for joining only.
const MESSAGE_LOG_CAPACITY: usize = 64;
/// `progress` rates cover about this much time.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// How often `wait_for_tracks` re-counts.
const TRACK_POLL: Duration = Duration::from_millis(100);
/// How often new video tracks are looked for to send `set_quality`.
const QUALITY_POLL: Duration = Duration::from_millis(250);
/// Slowest pacing honoured: one join per hour.
const MAX_JOIN_GAP_SECS: f64 = 3600.0;

/// Makes the `join` token of one bot (e.g. a JWT with its room, name and role). An `Err`
/// fails that bot's join with code `token`.
#[derive(Clone)]
pub struct TokenMinter(Arc<MintFn>);

type MintFn = dyn Fn(&BotPlan) -> Result<String, String> + Send + Sync;

impl TokenMinter {
    pub fn new(mint: impl Fn(&BotPlan) -> Result<String, String> + Send + Sync + 'static) -> Self {
        TokenMinter(Arc::new(mint))
    }

    pub fn mint(&self, plan: &BotPlan) -> Result<String, String> {
        (self.0)(plan)
    }
}

impl fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenMinter(..)")
    }
}

/// What a swarm is made of and how it joins.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// `ws://host:port/ws`, or several comma-separated (the nodes of a cluster): bot `i`
    /// connects to the `i mod n`-th.
    pub url: String,
    /// Bots are spread round-robin over these rooms, in join order (an empty list is
    /// `["load"]`).
    pub rooms: Vec<String>,
    /// Bots that publish Opus audio and video ([`SwarmConfig::codec`]).
    pub publishers: usize,
    /// Bots that publish Opus audio only.
    pub audio_publishers: usize,
    /// Bots that publish nothing (role `audience`).
    pub subscribers: usize,
    /// Joins started per second; 0, negative, NaN or infinite: as fast as
    /// `max_concurrent_joins` allows.
    pub join_rate: f64,
    /// Joins in flight at once (at least 1).
    pub max_concurrent_joins: usize,
    pub codec: VideoCodec,
    /// Publishers send their video as three simulcast layers (`q`, `h`, `f`).
    pub simulcast: bool,
    /// The same `join` token for every bot.
    pub token: Option<String>,
    /// One token per bot; takes precedence over `token`.
    pub token_minter: Option<TokenMinter>,
    /// If set, every bot sends `set_quality` with it for each video track it receives.
    pub quality: Option<Quality>,
    /// If set, only the first this many publishers (in join order) speak; the others'
    /// audio is silence, sent with DTX (see [`BotConfig::dtx`]), as in a meeting where one
    /// or two talk at a time.
    pub speakers: Option<usize>,
    /// Where `media/make-loops.sh` put the loops.
    pub media_dir: PathBuf,
    /// Bound on one bot's whole join (connect, `joined`, publish answered), and on its leave.
    pub join_timeout: Duration,
    /// Bot names are `{prefix}-pub-N`, `{prefix}-apub-N`, `{prefix}-sub-N`.
    pub name_prefix: String,
    /// Fault injection for tests: every bot leaves the server's first this many offers
    /// unanswered ([`BotConfig::unanswered_server_offers`]).
    pub unanswered_server_offers: u32,
}

impl SwarmConfig {
    /// One AV publisher in room `load`, VP8, as fast as possible, 20 s timeout.
    /// Every URL of [`SwarmConfig::url`].
    pub fn urls(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect()
    }

    /// The URL bot `index` connects to.
    pub fn url_for(&self, index: usize) -> String {
        let urls = self.urls();
        urls.get(index % urls.len().max(1))
            .map_or_else(String::new, |u| (*u).to_owned())
    }

    pub fn new(url: impl Into<String>) -> Self {
        SwarmConfig {
            url: url.into(),
            rooms: vec!["load".to_owned()],
            publishers: 1,
            audio_publishers: 0,
            subscribers: 0,
            join_rate: 0.0,
            max_concurrent_joins: DEFAULT_MAX_CONCURRENT_JOINS,
            codec: VideoCodec::Vp8,
            simulcast: false,
            token: None,
            token_minter: None,
            quality: None,
            speakers: None,
            media_dir: BotConfig::default_media_dir(),
            join_timeout: Duration::from_secs(20),
            name_prefix: "bot".to_owned(),
            unanswered_server_offers: 0,
        }
    }

    /// Bots in total.
    pub fn bots(&self) -> usize {
        self.publishers + self.audio_publishers + self.subscribers
    }

    /// Every bot in join order: AV publishers, audio publishers, subscribers; bot `i` goes
    /// to room `i % rooms`.
    pub fn plan(&self) -> Vec<BotPlan> {
        let default_room = ["load".to_owned()];
        let rooms: &[String] = if self.rooms.is_empty() {
            &default_room
        } else {
            &self.rooms
        };
        let groups = [
            (BotRole::AvPublisher, self.publishers, "pub"),
            (BotRole::AudioPublisher, self.audio_publishers, "apub"),
            (BotRole::Subscriber, self.subscribers, "sub"),
        ];
        let mut plans = Vec::with_capacity(self.bots());
        for (role, count, label) in groups {
            for n in 0..count {
                let index = plans.len();
                plans.push(BotPlan {
                    index,
                    name: format!("{}-{label}-{n}", self.name_prefix),
                    room: rooms[index % rooms.len()].clone(),
                    role,
                });
            }
        }
        plans
    }

    fn join_gap(&self) -> Option<Duration> {
        (self.join_rate.is_finite() && self.join_rate > 0.0)
            .then(|| Duration::from_secs_f64((1.0 / self.join_rate).min(MAX_JOIN_GAP_SECS)))
    }
}

impl BotRole {
    /// The `role` a bot of this kind joins with: `presenter` for publishers, `audience`
    /// for subscribers.
    pub fn protocol_role(self) -> Role {
        match self {
            BotRole::Subscriber => Role::Audience,
            _ => Role::Presenter,
        }
    }
}

/// Live figures for a progress display; see [`Swarm::progress`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub bots_expected: usize,
    /// Bots that joined (and have not left).
    pub bots_connected: usize,
    pub bots_failed: usize,
    /// Every join has been attempted and has finished one way or the other.
    pub joins_finished: bool,
    /// Expected tracks with at least one packet and not ended.
    pub tracks_received: usize,
    pub tracks_expected: usize,
    /// RTP payload bitrate received by all bots together, over about the last second (or
    /// since the previous call, if that was longer ago).
    pub rx_bitrate_bps: f64,
    /// Packets lost from sequence gaps over the same period, in percent.
    pub loss_percent: f64,
    /// Packets received by all bots so far.
    pub packets: u64,
}

/// Expected tracks per room and in total; see [`Swarm::expected_tracks`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedTracks {
    pub per_room: BTreeMap<String, usize>,
    pub total: usize,
}

/// How [`Swarm::leave`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeaveResult {
    /// Left cleanly: `leave` sent and the server closed with 1000.
    pub left: usize,
    /// Anything else (timed out, closed otherwise); resources are released anyway.
    pub failed: usize,
}

#[derive(Default)]
struct Slot {
    started: Option<Instant>,
    took: Option<Duration>,
    participant_id: Option<String>,
    failure: Option<JoinFailure>,
    bot: Option<Arc<Bot>>,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    /// `leave` has begun: joins that finish now are dropped, not kept.
    stopping: bool,
}

struct Inner {
    config: SwarmConfig,
    plans: Vec<BotPlan>,
    started_at: Instant,
    state: Mutex<State>,
    joins_done: watch::Sender<bool>,
    rate: Mutex<RateWindow>,
}

impl Inner {
    fn observe(&self) -> Vec<Observation> {
        let (mut observations, bots): (Vec<Observation>, Vec<Option<Arc<Bot>>>) = {
            let state = self.state.lock();
            state
                .slots
                .iter()
                .map(|slot| {
                    (
                        Observation {
                            participant_id: slot.participant_id.clone(),
                            join_started: slot.started,
                            join_took: slot.took,
                            failure: slot.failure.clone(),
                            tracks: Vec::new(),
                            listed: Vec::new(),
                            connection: None,
                        },
                        slot.bot.clone(),
                    )
                })
                .unzip()
        };
        for (observation, bot) in observations.iter_mut().zip(bots) {
            if let Some(bot) = bot {
                observation.tracks = bot.remote_tracks();
                observation.listed = bot.listed_tracks();
                observation.connection = Some(bot.peer_connection_state().to_string());
            }
        }
        observations
    }

    fn present_bots(&self) -> Vec<(usize, Arc<Bot>)> {
        let state = self.state.lock();
        state
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.bot.clone().map(|bot| (i, bot)))
            .collect()
    }
}

/// Marks the joins finished however the driver ends (done, aborted, panicked).
struct JoinsDone(Arc<Inner>);

impl Drop for JoinsDone {
    fn drop(&mut self) {
        self.0.joins_done.send_replace(true);
    }
}

/// A running swarm of bots. Dropping it stops its tasks and drops its bots without `leave`
/// (their connections close); [`Swarm::leave`] first to leave cleanly.
pub struct Swarm {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Swarm {
    /// Starts the joins in the background and returns at once; see [`Swarm::wait_joined`].
    /// Must be called inside a tokio runtime.
    pub fn spawn(config: SwarmConfig) -> Swarm {
        let plans = config.plan();
        let quality = config.quality;
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                slots: plans.iter().map(|_| Slot::default()).collect(),
                stopping: false,
            }),
            plans,
            config,
            started_at: Instant::now(),
            joins_done: watch::Sender::new(false),
            rate: Mutex::new(RateWindow::default()),
        });
        let mut tasks = vec![tokio::spawn(drive_joins(Arc::clone(&inner)))];
        if let Some(quality) = quality {
            tasks.push(tokio::spawn(request_quality(Arc::clone(&inner), quality)));
        }
        Swarm {
            inner,
            tasks: Mutex::new(tasks),
        }
    }

    /// Joins every bot at the configured rate (publishers first) and returns once every
    /// join has succeeded or failed; each is bounded by `join_timeout`.
    pub async fn start(config: SwarmConfig) -> Swarm {
        let swarm = Swarm::spawn(config);
        let mut done = swarm.inner.joins_done.subscribe();
        // The sender lives in `inner`, which `swarm` holds: this cannot fail.
        let _ = done.wait_for(|d| *d).await;
        swarm
    }

    /// Waits until every join has been attempted and finished; `false` on timeout.
    pub async fn wait_joined(&self, timeout: Duration) -> bool {
        let mut done = self.inner.joins_done.subscribe();
        let finished = tokio::time::timeout(timeout, done.wait_for(|d| *d))
            .await
            .is_ok_and(|r| r.is_ok());
        finished
    }

    pub fn joins_finished(&self) -> bool {
        *self.inner.joins_done.borrow()
    }

    pub fn config(&self) -> &SwarmConfig {
        &self.inner.config
    }

    /// Every bot, in join order.
    pub fn plans(&self) -> &[BotPlan] {
        &self.inner.plans
    }

    /// The bots that joined and have not left, with their plans.
    pub fn joined_bots(&self) -> Vec<(BotPlan, Arc<Bot>)> {
        self.inner
            .present_bots()
            .into_iter()
            .map(|(i, bot)| (self.inner.plans[i].clone(), bot))
            .collect()
    }

    /// Tracks the bots that joined should receive, per room: each receives every other
    /// publisher's tracks in its room (2 per AV publisher, 1 per audio publisher).
    pub fn expected_tracks(&self) -> ExpectedTracks {
        let tally = report::tally(&self.inner.plans, &self.inner.observe(), false);
        ExpectedTracks {
            per_room: tally.expected_per_room,
            total: tally.tracks_expected,
        }
    }

    /// Counts for a live display; cheap enough for several calls a second.
    pub fn progress(&self) -> Progress {
        let tally = report::tally(&self.inner.plans, &self.inner.observe(), false);
        let (rx_bitrate_bps, loss_percent) = self.inner.rate.lock().push(RateSample {
            at: Instant::now(),
            bytes: tally.bytes,
            packets: tally.packets,
            lost: tally.lost,
        });
        Progress {
            bots_expected: self.inner.plans.len(),
            bots_connected: tally.joined,
            bots_failed: tally.failed,
            joins_finished: self.joins_finished(),
            tracks_received: tally.tracks_received,
            tracks_expected: tally.tracks_expected,
            rx_bitrate_bps,
            loss_percent,
            packets: tally.packets,
        }
    }

    /// Waits until the joins are finished and every expected track has packets (and has
    /// not ended). Re-counts every 100 ms; `false` once `timeout` passes.
    pub async fn wait_for_tracks(&self, timeout: Duration) -> bool {
        self.wait_for_tracks_from(0, timeout).await
    }

    /// As [`Swarm::wait_for_tracks`], and until the rooms list at least `least` tracks: a
    /// swarm of viewers only waits for its presenter (a WHIP encoder, a browser) to publish
    /// rather than measuring an empty room.
    pub async fn wait_for_tracks_from(&self, least: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.joins_finished() {
                let tally = report::tally(&self.inner.plans, &self.inner.observe(), false);
                if tally.tracks_received >= tally.tracks_expected && tally.tracks_expected >= least
                {
                    return true;
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            tokio::time::sleep_until((now + TRACK_POLL).min(deadline)).await;
        }
    }

    /// Every track's counters now, to report a window later: `report(Some(&snapshot))`.
    pub fn snapshot(&self) -> SwarmSnapshot {
        let mut snapshot =
            report::snapshot(&self.inner.plans, &self.inner.observe(), Instant::now());
        snapshot.cpu = CpuSample::now();
        snapshot
    }

    /// One row per track the bots receive from the swarm's publishers, and the summary.
    /// With `since`, packets, bytes, bitrates, losses and freezes cover the time since that
    /// snapshot; without, the whole run. Take it before [`Swarm::leave`].
    pub fn report(&self, since: Option<&SwarmSnapshot>) -> Report {
        let mut report = report::build_report(
            &self.inner.plans,
            &self.inner.observe(),
            since,
            self.inner.started_at,
            Instant::now(),
        );
        let start = since.and_then(|s| s.cpu);
        report.cpu = start
            .zip(CpuSample::now())
            .and_then(|(start, end)| CpuUse::between(&start, &end));
        report
    }

    /// One extra bot of `role` joins `room`, waits until it receives every track the
    /// swarm's publishers in that room publish, and leaves again; `cycles` times one after
    /// the other. Each join, media wait and leave is bounded by `timeout`; a cycle whose media
    /// does not arrive fails with code `no_media`.
    pub async fn churn(
        &self,
        room: &str,
        cycles: usize,
        role: BotRole,
        timeout: Duration,
    ) -> ChurnResult {
        let started = Instant::now();
        let mut join_ms = Vec::with_capacity(cycles);
        let mut first_media_ms = Vec::with_capacity(cycles);
        let mut errors_by_code: BTreeMap<String, usize> = BTreeMap::new();
        let mut cycles_done = 0;
        for cycle in 0..cycles {
            let plan = BotPlan {
                index: self.inner.plans.len() + cycle,
                name: format!("{}-churn-{cycle}", self.inner.config.name_prefix),
                room: room.to_owned(),
                role,
            };
            let publishers = self.room_publishers(room);
            let join_started = Instant::now();
            let failure = match join_bot(&self.inner.config, &plan, timeout).await {
                Ok(bot) => {
                    join_ms.push(millis(join_started.elapsed()));
                    let media = bot
                        .wait_for_media(|tracks| receives_all(tracks, &publishers), timeout)
                        .await;
                    if let Ok(tracks) = &media {
                        if let Some(first) = tracks.iter().filter_map(|t| t.first_packet_at).min() {
                            first_media_ms
                                .push(millis(first.saturating_duration_since(join_started)));
                        }
                    }
                    let left = tokio::time::timeout(timeout, bot.leave()).await;
                    match (media, left) {
                        (Err(_), _) => Some("no_media".to_owned()),
                        (Ok(_), Ok(Ok(()))) => None,
                        (Ok(_), Ok(Err(e))) => Some(classify(&e).code),
                        (Ok(_), Err(_)) => Some("timeout".to_owned()),
                    }
                }
                Err(failure) => Some(failure.code),
            };
            match failure {
                None => cycles_done += 1,
                Some(code) => *errors_by_code.entry(code).or_insert(0) += 1,
            }
        }
        ChurnResult {
            room: room.to_owned(),
            role,
            cycles,
            cycles_done,
            failures: cycles - cycles_done,
            errors_by_code,
            join_ms: percentiles(&join_ms),
            first_media_ms: percentiles(&first_media_ms),
            duration_secs: started.elapsed().as_secs_f64(),
        }
    }

    /// The swarm's joined publishers in `room`: participant id and role.
    fn room_publishers(&self, room: &str) -> Vec<(String, BotRole)> {
        let state = self.inner.state.lock();
        state
            .slots
            .iter()
            .zip(&self.inner.plans)
            .filter(|(slot, plan)| {
                plan.room == room && plan.role != BotRole::Subscriber && slot.bot.is_some()
            })
            .filter_map(|(slot, plan)| slot.participant_id.clone().map(|id| (id, plan.role)))
            .collect()
    }

    /// Stops joining, and makes every joined bot leave (all at once, each bounded by
    /// `timeout`). Joins still in flight are abandoned.
    pub async fn leave(&self, timeout: Duration) -> LeaveResult {
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().drain(..).collect();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        let bots: Vec<Arc<Bot>> = {
            let mut state = self.inner.state.lock();
            state.stopping = true;
            state
                .slots
                .iter_mut()
                .filter_map(|s| s.bot.take())
                .collect()
        };
        let mut leaving = JoinSet::new();
        for bot in bots {
            leaving.spawn(leave_bot(bot, timeout));
        }
        let mut result = LeaveResult { left: 0, failed: 0 };
        while let Some(left) = leaving.join_next().await {
            if matches!(left, Ok(true)) {
                result.left += 1;
            } else {
                result.failed += 1;
            }
        }
        result
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        // The bots go with `inner` once the aborted tasks have let go of it; each stops its
        // own tasks and closes its PeerConnection.
        let mut state = self.inner.state.lock();
        state.stopping = true;
        for slot in &mut state.slots {
            slot.bot = None;
        }
    }
}

async fn leave_bot(bot: Arc<Bot>, timeout: Duration) -> bool {
    match Arc::try_unwrap(bot) {
        Ok(bot) => matches!(tokio::time::timeout(timeout, bot.leave()).await, Ok(Ok(()))),
        // Someone still holds the bot (from `joined_bots`): say `leave` on its behalf.
        Err(shared) => {
            let leave = async {
                shared.send(&ClientMessage::Leave).await?;
                shared.wait_for_close(timeout).await
            };
            matches!(
                tokio::time::timeout(timeout, leave).await,
                Ok(Ok(close)) if close.code == Some(1000)
            )
        }
    }
}

async fn drive_joins(inner: Arc<Inner>) {
    let _done = JoinsDone(Arc::clone(&inner));
    let permits = Arc::new(Semaphore::new(inner.config.max_concurrent_joins.max(1)));
    let gap = inner.config.join_gap();
    let start = tokio::time::Instant::now();
    // Dropping the set (when the driver is aborted) aborts the joins in flight.
    let mut joins = JoinSet::new();
    for index in 0..inner.plans.len() {
        if let Some(gap) = gap {
            tokio::time::sleep_until(start + gap.mul_f64(index as f64)).await;
        }
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let inner = Arc::clone(&inner);
        joins.spawn(async move {
            join_one(&inner, index).await;
            drop(permit);
            tokio::spawn(follow_reconnects(Arc::downgrade(&inner), index));
        });
        while joins.try_join_next().is_some() {}
    }
    while joins.join_next().await.is_some() {}
}

async fn join_one(inner: &Inner, index: usize) {
    let plan = &inner.plans[index];
    let started = Instant::now();
    inner.state.lock().slots[index].started = Some(started);
    let result = join_bot(&inner.config, plan, inner.config.join_timeout).await;
    let took = started.elapsed();
    let mut state = inner.state.lock();
    let stopping = state.stopping;
    let slot = &mut state.slots[index];
    slot.took = Some(took);
    match result {
        Ok(bot) if !stopping => {
            slot.participant_id = Some(bot.participant_id().to_owned());
            slot.bot = Some(Arc::new(bot));
        }
        Ok(bot) => {
            slot.failure = Some(JoinFailure {
                code: "cancelled".to_owned(),
                message: "joined after the swarm started leaving".to_owned(),
            });
            drop(state);
            drop(bot);
        }
        Err(failure) => {
            debug!(bot = %plan.name, code = %failure.code, message = %failure.message, "join failed");
            slot.failure = Some(failure);
        }
    }
}

/// How often a bot's follower lets go of it to see whether the swarm is still there.
const FOLLOW_RECHECK: Duration = Duration::from_secs(1);

/// How many times one bot resumes after the server closed it with 4000: a server that
/// keeps asking is reported (the bot ends) rather than followed for good.
const MAX_RESUMES: u32 = 5;

/// Bot `index` told to `reconnect` (its server is draining), or whose connection was lost
/// (its node died: closed without a close frame, or with 1012 by a node that relayed it
/// there), joins again, afresh, in its slot, as the web client does: on a cluster it lands
/// on a node that stays. A bot the server closed with 4000 (it fell behind, or left an
/// offer unanswered) resumes its session at once, as the contract asks, up to
/// [`MAX_RESUMES`] times; if the resume fails it joins afresh. Ends when the bot's
/// connection closes otherwise (a leave, a kick, a server shutting down), a rejoin fails,
/// or the swarm leaves or is gone.
async fn follow_reconnects(inner: std::sync::Weak<Inner>, index: usize) {
    let mut resumes = 0;
    loop {
        let bot = {
            let Some(inner) = inner.upgrade() else { return };
            let state = inner.state.lock();
            match (&state.slots[index].bot, state.stopping) {
                (Some(bot), false) => Arc::clone(bot),
                _ => return,
            }
        };
        let told = bot
            .wait_for_message_after(
                MessageCursor::START,
                |m| matches!(m, roomcast_protocol::ServerMessage::Reconnect { .. }),
                FOLLOW_RECHECK,
            )
            .await;
        let told_to_resume = bot.was_told_to_resume();
        if told_to_resume {
            if resumes == MAX_RESUMES {
                debug!(bot = %bot.participant_id(), "told to resume once too often; ending");
                return;
            }
            resumes += 1;
            match bot.resume().await {
                Ok(_) => {
                    debug!(bot = %bot.participant_id(), resumes, "resumed after 4000");
                    continue;
                }
                Err(e) => {
                    debug!(bot = %bot.participant_id(), error = %e, "resume failed; joining again")
                }
            }
        }
        let lost = told_to_resume || bot.closed().is_some_and(|c| connection_lost(c.code));
        drop(bot);
        let named = match told {
            Ok(roomcast_protocol::ServerMessage::Reconnect { url, .. }) => url,
            Ok(_) => None,
            Err(BotError::Timeout(_)) => continue,
            Err(_) if lost => None,
            Err(_) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        debug!(bot = %inner.plans[index].name, lost, "joining again");
        let result = rejoin(&inner, index, named.as_deref()).await;
        let mut state = inner.state.lock();
        let stopping = state.stopping;
        let slot = &mut state.slots[index];
        match result {
            Ok(bot) if !stopping => {
                slot.participant_id = Some(bot.participant_id().to_owned());
                slot.bot = Some(Arc::new(bot));
            }
            Ok(_) => return,
            Err(failure) => {
                slot.bot = None;
                slot.failure = Some(failure);
                return;
            }
        }
    }
}

/// Whether a connection that closed with `code` was lost rather than ended: no close frame
/// (the server or its node died, or the network broke) or 1012, "service restart" (the node
/// relaying it lost the room's node). A client comes back after these.
fn connection_lost(code: Option<u16>) -> bool {
    matches!(code, None | Some(1006) | Some(1012))
}

/// A fresh join of bot `index` after `reconnect` or a lost connection: at the URL the
/// `reconnect` named (a node that serves), else at its own URL, then at each other URL of
/// the list in turn while a node cannot be reached (its node may be the one that died or
/// drained), at most once each.
async fn rejoin(inner: &Inner, index: usize, named: Option<&str>) -> Result<Bot, JoinFailure> {
    let urls = inner.config.urls();
    let first = index % urls.len().max(1);
    let listed = (0..urls.len()).map(|k| urls[(first + k) % urls.len()]);
    let mut result = Err(JoinFailure {
        code: "unreachable".to_owned(),
        message: "no URL to join at".to_owned(),
    });
    for url in named.into_iter().chain(listed) {
        result = join_bot_at(
            &inner.config,
            &inner.plans[index],
            url,
            inner.config.join_timeout,
        )
        .await;
        match &result {
            Err(failure) if failure.code == "unreachable" && !inner.state.lock().stopping => {}
            _ => break,
        }
    }
    result
}

async fn join_bot(
    config: &SwarmConfig,
    plan: &BotPlan,
    timeout: Duration,
) -> Result<Bot, JoinFailure> {
    join_bot_at(config, plan, &config.url_for(plan.index), timeout).await
}

async fn join_bot_at(
    config: &SwarmConfig,
    plan: &BotPlan,
    url: &str,
    timeout: Duration,
) -> Result<Bot, JoinFailure> {
    let token = match &config.token_minter {
        Some(minter) => Some(minter.mint(plan).map_err(|message| JoinFailure {
            code: "token".to_owned(),
            message,
        })?),
        None => config.token.clone(),
    };
    let (audio, video) = match plan.role {
        BotRole::AvPublisher => (true, Some(config.codec)),
        BotRole::AudioPublisher => (true, None),
        BotRole::Subscriber => (false, None),
    };
    let silent = config.speakers.is_some_and(|n| plan.index >= n);
    let mut bot_config = BotConfig::new(url.to_owned(), plan.room.clone(), plan.name.clone())
        .with_role(plan.role.protocol_role())
        .with_publish(audio, video)
        .with_audio_attenuation_db(if silent { 127 } else { 0 })
        .with_dtx(silent)
        .with_simulcast(config.simulcast)
        .with_media_dir(config.media_dir.clone())
        .with_connect_timeout(timeout);
    bot_config.token = token;
    bot_config.message_log_capacity = MESSAGE_LOG_CAPACITY;
    bot_config.unanswered_server_offers = config.unanswered_server_offers;
    match tokio::time::timeout(timeout, Bot::join(bot_config)).await {
        Ok(Ok(bot)) => Ok(bot),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(JoinFailure {
            code: "timeout".to_owned(),
            message: format!("not joined within {timeout:?}"),
        }),
    }
}

/// The error code a failed join is counted under.
pub fn classify(error: &BotError) -> JoinFailure {
    let code = match error {
        BotError::Refused { code, .. } => code.as_str(),
        BotError::Connect { reason, .. } if reason.starts_with("no WebSocket after") => "timeout",
        BotError::Connect { .. } => "unreachable",
        BotError::Timeout(_) => "timeout",
        BotError::WebRtc(_) => "webrtc",
        BotError::Protocol(_) => "protocol",
        BotError::Closed => "closed",
        BotError::Media { .. } => "media",
        BotError::Socket(_) => "socket",
    };
    let message = match error {
        BotError::Refused { message, .. } => message.clone(),
        other => other.to_string(),
    };
    JoinFailure {
        code: code.to_owned(),
        message,
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Packets flow on every track `publishers` publish.
fn receives_all(tracks: &[crate::RemoteTrackStats], publishers: &[(String, BotRole)]) -> bool {
    publishers.iter().all(|(id, role)| {
        let flowing = |kind| {
            tracks
                .iter()
                .any(|t| &t.publisher_id == id && t.kind == kind && t.packets > 0 && !t.ended)
        };
        flowing(TrackKind::Audio) && (*role != BotRole::AvPublisher || flowing(TrackKind::Video))
    })
}

/// Sends `set_quality` once for every video track a bot starts receiving.
async fn request_quality(inner: Arc<Inner>, quality: Quality) {
    let mut sent: HashSet<(usize, String)> = HashSet::new();
    let mut ticks = tokio::time::interval(QUALITY_POLL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        for (index, bot) in inner.present_bots() {
            for track in bot.remote_tracks() {
                if track.kind != TrackKind::Video || track.ended || track.packets == 0 {
                    continue;
                }
                if !sent.insert((index, track.track_id.clone())) {
                    continue;
                }
                let bot_name = &inner.plans[index].name;
                let message = ClientMessage::SetQuality {
                    track_id: track.track_id,
                    quality,
                };
                match bot.send(&message).await {
                    Ok(()) => debug!(bot = %bot_name, ?message, "asked for a quality"),
                    Err(e) => debug!(bot = %bot_name, error = %e, "set_quality not sent"),
                }
            }
        }
    }
}

/// Checks once that `url` accepts a WebSocket, so a wrong address fails in one line before
/// any bot starts. The error is the reason, e.g. `connection refused`.
pub async fn probe(url: &str, timeout: Duration) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let connected = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url)).await;
    match connected {
        Err(_) => Err(format!("no answer within {}", human_duration(timeout))),
        Ok(Ok((mut socket, _))) => {
            // Best effort: the server drops a connection that never joins anyway.
            let _ = tokio::time::timeout(timeout, socket.close(None)).await;
            Ok(())
        }
        Ok(Err(WsError::Io(e))) => Err(io_reason(&e)),
        Ok(Err(WsError::Http(response))) => Err(format!(
            "the server answered HTTP {} instead of a WebSocket",
            response.status()
        )),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::ConnectionReset => "connection reset".to_owned(),
        ErrorKind::TimedOut => "connection timed out".to_owned(),
        _ => {
            // "Network is unreachable (os error 101)" → "network is unreachable".
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => text,
            }
        }
    }
}

fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[derive(Debug, Clone, Copy)]
struct RateSample {
    at: Instant,
    bytes: u64,
    packets: u64,
    lost: u64,
}

/// Recent totals, for rates over about [`RATE_WINDOW`].
#[derive(Debug, Default)]
struct RateWindow {
    samples: VecDeque<RateSample>,
}

impl RateWindow {
    /// Adds `now`'s totals; returns the bitrate (bit/s) and loss (%) since the newest sample
    /// at least a window old (or the oldest one kept).
    fn push(&mut self, now: RateSample) -> (f64, f64) {
        self.samples.push_back(now);
        while self.samples.len() > 2
            && now.at.saturating_duration_since(self.samples[1].at) >= RATE_WINDOW
        {
            self.samples.pop_front();
        }
        let Some(base) = self.samples.front().copied() else {
            return (0.0, 0.0);
        };
        let secs = now.at.saturating_duration_since(base.at).as_secs_f64();
        if secs <= 0.0 {
            return (0.0, 0.0);
        }
        let bytes = now.bytes.saturating_sub(base.bytes);
        let packets = now.packets.saturating_sub(base.packets);
        let lost = now.lost.saturating_sub(base.lost);
        (
            bytes as f64 * 8.0 / secs,
            report::loss_percent(packets, lost),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_puts_publishers_first_and_spreads_rooms_round_robin() {
        let mut config = SwarmConfig::new("ws://127.0.0.1:1/ws");
        config.rooms = vec!["a".into(), "b".into()];
        config.publishers = 2;
        config.audio_publishers = 1;
        config.subscribers = 3;
        config.name_prefix = "lt".into();
        let plans = config.plan();
        let summary: Vec<(&str, &str, BotRole)> = plans
            .iter()
            .map(|p| (p.name.as_str(), p.room.as_str(), p.role))
            .collect();
        use BotRole::*;
        assert_eq!(
            summary,
            [
                ("lt-pub-0", "a", AvPublisher),
                ("lt-pub-1", "b", AvPublisher),
                ("lt-apub-0", "a", AudioPublisher),
                ("lt-sub-0", "b", Subscriber),
                ("lt-sub-1", "a", Subscriber),
                ("lt-sub-2", "b", Subscriber),
            ]
        );
        assert!(plans.iter().enumerate().all(|(i, p)| p.index == i));
        config.rooms.clear();
        assert!(config.plan().iter().all(|p| p.room == "load"));
    }

    #[test]
    fn join_pacing() {
        let mut config = SwarmConfig::new("ws://x/ws");
        assert_eq!(config.join_gap(), None);
        config.join_rate = f64::INFINITY;
        assert_eq!(config.join_gap(), None);
        config.join_rate = f64::NAN;
        assert_eq!(config.join_gap(), None);
        config.join_rate = 4.0;
        assert_eq!(config.join_gap(), Some(Duration::from_millis(250)));
        config.join_rate = 1e-12;
        assert_eq!(config.join_gap(), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn rates_cover_about_a_second() {
        let start = Instant::now();
        let sample = |ms: u64, bytes: u64, packets: u64, lost: u64| RateSample {
            at: start + Duration::from_millis(ms),
            bytes,
            packets,
            lost,
        };
        let mut window = RateWindow::default();
        assert_eq!(window.push(sample(0, 0, 0, 0)), (0.0, 0.0));
        // 250 ms later: 10 kB → 320 kbit/s.
        let (bps, _) = window.push(sample(250, 10_000, 10, 0));
        assert!((bps - 320_000.0).abs() < 1e-6);
        window.push(sample(500, 20_000, 20, 0));
        window.push(sample(750, 30_000, 30, 0));
        // At 1.25 s the base is the 250 ms sample: 40 kB in 1 s, 1 lost of 41 due.
        let (bps, loss) = window.push(sample(1250, 50_000, 50, 1));
        assert!((bps - 320_000.0).abs() < 1e-6, "{bps}");
        assert!((loss - 100.0 / 41.0).abs() < 1e-9);
        // Called rarely: since the previous call.
        let (bps, _) = window.push(sample(6250, 100_000, 100, 1));
        assert!((bps - 80_000.0).abs() < 1e-6, "{bps}");
    }

    #[test]
    fn a_churn_bot_needs_every_publisher_track() {
        use roomcast_protocol::TrackKind;
        let track = |publisher: &str, kind, packets, ended| crate::RemoteTrackStats {
            publisher_id: publisher.into(),
            track_id: format!("{publisher}-{kind:?}"),
            kind,
            codec_mime: String::new(),
            ssrc: 0,
            packets,
            bytes: 0,
            padding_packets: 0,
            first_packet_at: None,
            last_packet_at: None,
            keyframes: 0,
            vp8_width: None,
            vp8_height: None,
            frame_width: 0,
            frame_height: 0,
            keyframe_sizes: vec![],
            ended,
            seq_gaps: 0,
            max_seq_jump: 0,
            out_of_order: 0,
            duplicates: 0,
            highest_sequence_number: None,
            clock_rate: 0,
            jitter_ms: 0.0,
            freezes: 0,
            max_gap: Duration::ZERO,
            picture_id_breaks: 0,
        };
        let publishers = vec![
            ("av".to_owned(), BotRole::AvPublisher),
            ("mic".to_owned(), BotRole::AudioPublisher),
        ];
        assert!(receives_all(&[], &[]));
        let mut tracks = vec![
            track("av", TrackKind::Audio, 5, false),
            track("mic", TrackKind::Audio, 5, false),
        ];
        assert!(!receives_all(&tracks, &publishers), "no video from av yet");
        tracks.push(track("av", TrackKind::Video, 0, false));
        assert!(!receives_all(&tracks, &publishers), "video without packets");
        tracks[2].packets = 1;
        assert!(receives_all(&tracks, &publishers));
        tracks[1].ended = true;
        assert!(!receives_all(&tracks, &publishers), "mic ended");
    }

    #[test]
    fn join_errors_are_counted_by_code() {
        use roomcast_protocol::ErrorCode;
        let refused = classify(&BotError::Refused {
            code: ErrorCode::RoomFull,
            message: "the room is full".into(),
        });
        assert_eq!(
            (refused.code.as_str(), refused.message.as_str()),
            ("room_full", "the room is full")
        );
        let refused = BotError::Connect {
            url: "ws://x".into(),
            reason: "IO error: Connection refused (os error 111)".into(),
        };
        assert_eq!(classify(&refused).code, "unreachable");
        let slow = BotError::Connect {
            url: "ws://x".into(),
            reason: "no WebSocket after 1s".into(),
        };
        assert_eq!(classify(&slow).code, "timeout");
        assert_eq!(classify(&BotError::Timeout("joined")).code, "timeout");
        assert_eq!(classify(&BotError::Closed).code, "closed");
    }

    #[test]
    fn io_reasons_read_like_a_sentence() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            io_reason(&Error::from(ErrorKind::ConnectionRefused)),
            "connection refused"
        );
        assert_eq!(
            io_reason(&Error::from_raw_os_error(101)),
            "network is unreachable"
        );
    }

    #[test]
    fn a_bot_comes_back_after_a_lost_connection_not_after_an_ending() {
        // Its node died (no close frame), or the node relaying it lost the room's node.
        for code in [None, Some(1006), Some(1012)] {
            assert!(connection_lost(code), "{code:?}");
        }
        // It left, was sent away (shutdown, keepalive), was too slow or misbehaved.
        for code in [1000, 1001, 1008, 1011, 4000, 4408] {
            assert!(!connection_lost(Some(code)), "{code}");
        }
    }

    #[tokio::test]
    async fn probing_a_closed_port_fails_fast_and_clearly() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("ws://127.0.0.1:{port}/ws");
        let err = probe(&url, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err, "connection refused");
    }

    #[tokio::test]
    async fn a_swarm_that_cannot_connect_counts_every_bot_as_failed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut config = SwarmConfig::new(format!("ws://127.0.0.1:{port}/ws"));
        config.publishers = 1;
        config.subscribers = 3;
        config.join_timeout = Duration::from_secs(5);
        let swarm = Swarm::start(config).await;
        assert!(
            swarm.wait_for_tracks(Duration::from_secs(1)).await,
            "0 expected"
        );
        let progress = swarm.progress();
        assert_eq!(
            (
                progress.bots_connected,
                progress.bots_failed,
                progress.tracks_expected
            ),
            (0, 4, 0)
        );
        let report = swarm.report(None);
        assert_eq!(report.summary.errors_by_code.get("unreachable"), Some(&4));
        assert_eq!(
            swarm.leave(Duration::from_secs(1)).await,
            LeaveResult { left: 0, failed: 0 }
        );
    }
}
