//! What a [`crate::Swarm`] measured, as plain serializable data, and the pure arithmetic
//! that turns per-bot observations into it: expected tracks, percentiles, per-track rows,
//! window differences. No sockets and no clocks here; the swarm passes `now` in.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use roomcast_protocol::TrackKind;
use serde::Serialize;

use crate::arrival::FREEZE_GAP;
use crate::load::{CpuSample, CpuUse};
use crate::roster::ListedTrack;
use crate::RemoteTrackStats;

/// What a swarm bot does in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BotRole {
    /// Publishes Opus audio and video (2 tracks).
    AvPublisher,
    /// Publishes Opus audio only (1 track).
    AudioPublisher,
    /// Publishes nothing, receives everything.
    Subscriber,
}

impl BotRole {
    /// How many tracks a bot of this role publishes.
    pub fn published_tracks(self) -> usize {
        match self {
            BotRole::AvPublisher => 2,
            BotRole::AudioPublisher => 1,
            BotRole::Subscriber => 0,
        }
    }

    fn publishes(self, kind: TrackKind) -> bool {
        matches!(
            (self, kind),
            (BotRole::AvPublisher, _) | (BotRole::AudioPublisher, TrackKind::Audio)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BotRole::AvPublisher => "av_publisher",
            BotRole::AudioPublisher => "audio_publisher",
            BotRole::Subscriber => "subscriber",
        }
    }
}

/// One bot of a swarm, before it joins: where it goes and what it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BotPlan {
    /// Position in the join order (publishers first).
    pub index: usize,
    /// Its `join` name, e.g. `bot-pub-0`, `bot-apub-1`, `bot-sub-7`.
    pub name: String,
    pub room: String,
    pub role: BotRole,
}

/// Why a bot could not join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JoinFailure {
    /// The server's error code for a refusal (`room_full`, `bad_request`, ...), else one of
    /// `unreachable`, `timeout`, `closed`, `protocol`, `webrtc`, `media`, `token`.
    pub code: String,
    pub message: String,
}

/// p50/p95/max of a set of values (nearest rank); `None` when there are no values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

/// Nearest-rank percentiles (the smallest value with at least p% of the values at or below it).
pub fn percentiles(values: &[f64]) -> Percentiles {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return Percentiles::default();
    }
    sorted.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let n = sorted.len() as f64;
        let index = ((p / 100.0 * n).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    };
    Percentiles {
        count: sorted.len(),
        p50: Some(rank(50.0)),
        p95: Some(rank(95.0)),
        max: sorted.last().copied(),
    }
}

/// Tracks the bots of one room should receive: each of `members` (the bots that joined)
/// receives every other member's published tracks, so `(members - 1) × published`.
pub fn expected_tracks_in_room(members: &[BotRole]) -> usize {
    let published: usize = members.iter().map(|r| r.published_tracks()).sum();
    members.len().saturating_sub(1) * published
}

/// `lost / (received + lost)` in percent; 0 when nothing was due.
pub fn loss_percent(packets: u64, lost: u64) -> f64 {
    let due = packets + lost;
    if due == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / due as f64
    }
}

/// One received track of one swarm bot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackRow {
    /// The receiving bot's name and participant id.
    pub subscriber: String,
    pub subscriber_id: String,
    pub room: String,
    /// The publishing bot's name and participant id.
    pub publisher: String,
    pub publisher_id: String,
    pub track_id: String,
    pub kind: TrackKind,
    /// e.g. `video/VP8`.
    pub codec: String,
    /// Packets and RTP payload bytes (in the window, for a window report).
    pub packets: u64,
    pub bytes: u64,
    /// RTP payload bitrate while the track was live (in the window).
    pub bitrate_kbps: f64,
    /// Packets missing from sequence gaps.
    pub lost: u64,
    pub loss_percent: f64,
    /// RFC 3550 interarrival jitter at the time of the report.
    pub jitter_ms: f64,
    /// From the receiving bot's join start to the track's first packet.
    pub time_to_first_packet_ms: Option<f64>,
    /// Video gaps over 500 ms while live (in the window), counting one still going on.
    pub freezes: u64,
    /// Longest gap between packets while live, over the track's whole life.
    pub max_gap_ms: f64,
    /// VP8 picture ids that broke the run a decoder follows, over the track's whole life:
    /// pictures a browser would drop until the next keyframe (0 when it decodes).
    pub picture_id_breaks: u64,
    pub keyframes: u64,
    /// Size of the latest received keyframe (VP8 header, H.264 SPS); 0 x 0 for audio and
    /// before any keyframe.
    pub frame_width: u16,
    pub frame_height: u16,
    pub ended: bool,
}

/// An expected track that is not flowing (no packet yet, or ended).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingTrack {
    pub subscriber: String,
    pub room: String,
    pub publisher: String,
    pub kind: TrackKind,
    /// The subscriber's media connection when the track was found missing (`new`,
    /// `connecting`, `connected`, `failed`…): `connected` points at forwarding, anything
    /// else at ICE/DTLS.
    pub connection: String,
    /// The publisher's media connection at the same time, for a publisher of the swarm
    /// (`None` for one outside it): a whole publisher's tracks missing while its own
    /// connection is not `connected` means its media never reached the server.
    pub publisher_connection: Option<String>,
}

/// A bot that did not join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BotFailure {
    pub bot: String,
    pub room: String,
    pub code: String,
    pub message: String,
}

/// The whole swarm in a few numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Whether the traffic figures cover a window (`report(Some(snapshot))`) rather than
    /// the whole run.
    pub window: bool,
    /// Length of the window, or time since the swarm started.
    pub duration_secs: f64,
    pub bots_expected: usize,
    pub bots_joined: usize,
    pub bots_failed: usize,
    pub tracks_expected: usize,
    /// Expected tracks with at least one packet and not ended, at the time of the report.
    pub tracks_received: usize,
    pub missing_tracks: usize,
    pub missing: Vec<MissingTrack>,
    /// Payload bytes of every row over the duration.
    pub total_bitrate_kbps: f64,
    /// Mean of the rows' bitrates (rows with packets only), overall and per kind.
    pub avg_bitrate_kbps: f64,
    pub avg_audio_kbps: f64,
    pub avg_video_kbps: f64,
    pub packets: u64,
    pub lost: u64,
    pub loss_percent: f64,
    /// Over the rows with packets.
    pub jitter_ms: Percentiles,
    pub freezes: u64,
    /// Summed over the rows (see [`TrackRow::picture_id_breaks`]).
    pub picture_id_breaks: u64,
    /// Join start to `joined` (and the publish answered), over the bots that joined.
    pub join_ms: Percentiles,
    /// Per bot that expects media: join start to the first packet of its first track.
    pub first_media_ms: Percentiles,
    pub errors_by_code: BTreeMap<String, usize>,
    pub errors: Vec<BotFailure>,
}

/// What [`crate::Swarm::churn`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChurnResult {
    pub room: String,
    pub role: BotRole,
    pub cycles: usize,
    /// Cycles that joined and left cleanly.
    pub cycles_done: usize,
    pub failures: usize,
    pub errors_by_code: BTreeMap<String, usize>,
    pub join_ms: Percentiles,
    /// Join start to the first packet of the room's media, per cycle that got it.
    pub first_media_ms: Percentiles,
    pub duration_secs: f64,
}

/// The result of a swarm run: one row per received track, and the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub summary: Summary,
    pub tracks: Vec<TrackRow>,
    /// Filled in by whoever ran [`crate::Swarm::churn`]; `report` leaves it `None`.
    pub churn: Option<ChurnResult>,
    /// How busy the bots and the machine were over the window (Linux only): whether the
    /// figures above measure the server or the bots.
    pub cpu: Option<CpuUse>,
}

/// Per-track counters at one instant, for window figures: see [`crate::Swarm::snapshot`].
#[derive(Debug, Clone)]
pub struct SwarmSnapshot {
    pub(crate) at: Instant,
    pub(crate) tracks: HashMap<TrackRef, WindowBase>,
    pub(crate) cpu: Option<CpuSample>,
}

impl SwarmSnapshot {
    /// When the snapshot was taken.
    pub fn at(&self) -> Instant {
        self.at
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TrackRef {
    bot: usize,
    publisher_id: String,
    track_id: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WindowBase {
    packets: u64,
    bytes: u64,
    lost: u64,
    freezes: u64,
}

/// What the swarm knows about one of its bots at one instant.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observation {
    pub participant_id: Option<String>,
    pub join_started: Option<Instant>,
    pub join_took: Option<Duration>,
    pub failure: Option<JoinFailure>,
    /// Empty once the bot has left.
    pub tracks: Vec<RemoteTrackStats>,
    /// The tracks the bot's room lists (publishers outside the swarm among them).
    pub listed: Vec<ListedTrack>,
    /// The bot's media connection state (`None` before it has a bot).
    pub connection: Option<String>,
}

/// Counts that `progress` needs, cheap enough for several times a second.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    pub joined: usize,
    pub failed: usize,
    pub expected_per_room: BTreeMap<String, usize>,
    pub tracks_expected: usize,
    pub tracks_received: usize,
    pub missing: Vec<MissingTrack>,
    /// Over every track from a swarm publisher, ended ones included, so they only grow.
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
}

/// Joined swarm publishers by participant id: their index.
fn publishers<'a>(plans: &[BotPlan], obs: &'a [Observation]) -> HashMap<&'a str, usize> {
    obs.iter()
        .enumerate()
        .filter(|(i, _)| plans[*i].role != BotRole::Subscriber)
        .filter_map(|(i, o)| o.participant_id.as_deref().map(|id| (id, i)))
        .collect()
}

/// The track comes from a publisher of the swarm in the receiving bot's room.
fn swarm_publisher(
    publishers: &HashMap<&str, usize>,
    plans: &[BotPlan],
    receiver: usize,
    track: &RemoteTrackStats,
) -> Option<usize> {
    publishers
        .get(track.publisher_id.as_str())
        .copied()
        .filter(|&p| p != receiver && plans[p].room == plans[receiver].room)
}

/// The listed track of a publisher outside the swarm (an encoder, a browser) that `track`
/// is, if it is one.
fn outside_publisher<'a>(
    publishers: &HashMap<&str, usize>,
    observation: &'a Observation,
    track: &RemoteTrackStats,
) -> Option<&'a ListedTrack> {
    outside_tracks(publishers, observation)
        .into_iter()
        .find(|l| l.publisher_id == track.publisher_id && l.track_id == track.track_id)
}

/// The tracks the bot's room lists from publishers outside the swarm.
fn outside_tracks<'a>(
    publishers: &HashMap<&str, usize>,
    observation: &'a Observation,
) -> Vec<&'a ListedTrack> {
    observation
        .listed
        .iter()
        .filter(|l| !publishers.contains_key(l.publisher_id.as_str()))
        .filter(|l| observation.participant_id.as_deref() != Some(l.publisher_id.as_str()))
        .collect()
}

/// Whose track a bot receives: a swarm publisher's of its room, or a listed one of the
/// room's other publishers.
fn counted(
    publishers: &HashMap<&str, usize>,
    plans: &[BotPlan],
    receiver: usize,
    observation: &Observation,
    track: &RemoteTrackStats,
) -> bool {
    swarm_publisher(publishers, plans, receiver, track).is_some()
        || outside_publisher(publishers, observation, track).is_some()
}

fn is_received(track: &RemoteTrackStats) -> bool {
    track.packets > 0 && !track.ended
}

pub(crate) fn tally(plans: &[BotPlan], obs: &[Observation], list_missing: bool) -> Tally {
    let publishers = publishers(plans, obs);
    let mut tally = Tally::default();
    let mut members: BTreeMap<&str, Vec<BotRole>> = BTreeMap::new();
    for (i, o) in obs.iter().enumerate() {
        if o.failure.is_some() {
            tally.failed += 1;
        }
        if o.participant_id.is_some() {
            tally.joined += 1;
            members
                .entry(plans[i].room.as_str())
                .or_default()
                .push(plans[i].role);
        }
    }
    for (room, roles) in &members {
        let expected = expected_tracks_in_room(roles);
        tally.expected_per_room.insert((*room).to_owned(), expected);
        tally.tracks_expected += expected;
    }
    for (i, o) in obs.iter().enumerate() {
        if o.participant_id.is_none() {
            continue;
        }
        let outside = outside_tracks(&publishers, o).len();
        *tally
            .expected_per_room
            .entry(plans[i].room.clone())
            .or_default() += outside;
        tally.tracks_expected += outside;
    }

    let mut flowing: HashSet<(usize, TrackKind)> = HashSet::new();
    for (i, o) in obs.iter().enumerate() {
        let Some(own_id) = o.participant_id.as_deref() else {
            continue;
        };
        flowing.clear();
        for track in &o.tracks {
            if let Some(listed) = outside_publisher(&publishers, o, track) {
                tally.packets += track.packets;
                tally.bytes += track.bytes;
                tally.lost += track.seq_gaps;
                if is_received(track) {
                    tally.tracks_received += 1;
                } else if list_missing {
                    tally.missing.push(missing(plans, i, o, listed));
                }
                continue;
            }
            let Some(p) = swarm_publisher(&publishers, plans, i, track) else {
                continue;
            };
            tally.packets += track.packets;
            tally.bytes += track.bytes;
            tally.lost += track.seq_gaps;
            if is_received(track) && plans[p].role.publishes(track.kind) {
                flowing.insert((p, track.kind));
            }
        }
        tally.tracks_received += flowing.len();
        if list_missing {
            for listed in outside_tracks(&publishers, o) {
                let arrived = o.tracks.iter().any(|t| {
                    t.publisher_id == listed.publisher_id && t.track_id == listed.track_id
                });
                if !arrived {
                    tally.missing.push(missing(plans, i, o, listed));
                }
            }
            for (&publisher_id, &p) in &publishers {
                if publisher_id == own_id || plans[p].room != plans[i].room {
                    continue;
                }
                for kind in [TrackKind::Audio, TrackKind::Video] {
                    if plans[p].role.publishes(kind) && !flowing.contains(&(p, kind)) {
                        tally.missing.push(MissingTrack {
                            subscriber: plans[i].name.clone(),
                            room: plans[i].room.clone(),
                            publisher: plans[p].name.clone(),
                            kind,
                            connection: o.connection.clone().unwrap_or_else(|| "none".into()),
                            publisher_connection: Some(
                                obs[p].connection.clone().unwrap_or_else(|| "none".into()),
                            ),
                        });
                    }
                }
            }
        }
    }
    tally.missing.sort_by(|a, b| {
        (&a.subscriber, &a.publisher, a.kind as u8).cmp(&(
            &b.subscriber,
            &b.publisher,
            b.kind as u8,
        ))
    });
    tally
}

fn missing(
    plans: &[BotPlan],
    receiver: usize,
    observation: &Observation,
    listed: &ListedTrack,
) -> MissingTrack {
    MissingTrack {
        subscriber: plans[receiver].name.clone(),
        room: plans[receiver].room.clone(),
        publisher: listed.publisher_name.clone(),
        kind: listed.kind,
        connection: observation
            .connection
            .clone()
            .unwrap_or_else(|| "none".into()),
        publisher_connection: None,
    }
}

pub(crate) fn snapshot(plans: &[BotPlan], obs: &[Observation], at: Instant) -> SwarmSnapshot {
    let publishers = publishers(plans, obs);
    let mut tracks = HashMap::new();
    for (i, o) in obs.iter().enumerate() {
        for t in &o.tracks {
            if !counted(&publishers, plans, i, o, t) {
                continue;
            }
            tracks.insert(
                TrackRef {
                    bot: i,
                    publisher_id: t.publisher_id.clone(),
                    track_id: t.track_id.clone(),
                },
                WindowBase {
                    packets: t.packets,
                    bytes: t.bytes,
                    lost: t.seq_gaps,
                    freezes: t.freezes,
                },
            );
        }
    }
    SwarmSnapshot {
        at,
        tracks,
        cpu: None,
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The gap still going on at `now` for a live track.
fn ongoing_gap(t: &RemoteTrackStats, now: Instant) -> Duration {
    match t.last_packet_at {
        Some(last) if !t.ended => now.saturating_duration_since(last),
        _ => Duration::ZERO,
    }
}

/// One row: figures since `base` (zero for the whole run) from the window start `from`.
pub(crate) fn track_row(
    t: &RemoteTrackStats,
    base: WindowBase,
    window_start: Option<Instant>,
    join_started: Option<Instant>,
    now: Instant,
) -> TrackRow {
    let packets = t.packets.saturating_sub(base.packets);
    let bytes = t.bytes.saturating_sub(base.bytes);
    let lost = t.seq_gaps.saturating_sub(base.lost);
    let live_secs = match t.first_packet_at {
        Some(first) => {
            let from = window_start.map_or(first, |w| w.max(first));
            let to = if t.ended {
                t.last_packet_at.unwrap_or(first)
            } else {
                now
            };
            to.saturating_duration_since(from).as_secs_f64()
        }
        None => 0.0,
    };
    let bitrate_kbps = if live_secs > 0.0 {
        bytes as f64 * 8.0 / live_secs / 1000.0
    } else {
        0.0
    };
    let ongoing = ongoing_gap(t, now);
    let ongoing_freeze = u64::from(t.kind == TrackKind::Video && ongoing > FREEZE_GAP);
    TrackRow {
        subscriber: String::new(),
        subscriber_id: String::new(),
        room: String::new(),
        publisher: String::new(),
        publisher_id: t.publisher_id.clone(),
        track_id: t.track_id.clone(),
        kind: t.kind,
        codec: t.codec_mime.clone(),
        packets,
        bytes,
        bitrate_kbps,
        lost,
        loss_percent: loss_percent(packets, lost),
        jitter_ms: t.jitter_ms,
        time_to_first_packet_ms: match (join_started, t.first_packet_at) {
            (Some(start), Some(first)) => Some(millis(first.saturating_duration_since(start))),
            _ => None,
        },
        freezes: t.freezes.saturating_sub(base.freezes) + ongoing_freeze,
        max_gap_ms: millis(t.max_gap.max(ongoing)),
        picture_id_breaks: t.picture_id_breaks,
        keyframes: t.keyframes,
        frame_width: t.frame_width,
        frame_height: t.frame_height,
        ended: t.ended,
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

pub(crate) fn build_report(
    plans: &[BotPlan],
    obs: &[Observation],
    since: Option<&SwarmSnapshot>,
    started_at: Instant,
    now: Instant,
) -> Report {
    let tally = tally(plans, obs, true);
    let publishers = publishers(plans, obs);
    let mut rows = Vec::new();
    let mut first_media = Vec::new();
    for (i, o) in obs.iter().enumerate() {
        let Some(own_id) = o.participant_id.as_deref() else {
            continue;
        };
        let mut first_packet: Option<Instant> = None;
        for t in &o.tracks {
            let publisher = match swarm_publisher(&publishers, plans, i, t) {
                Some(p) => plans[p].name.clone(),
                None => match outside_publisher(&publishers, o, t) {
                    Some(listed) => listed.publisher_name.clone(),
                    None => continue,
                },
            };
            if let Some(at) = t.first_packet_at {
                first_packet = Some(first_packet.map_or(at, |f| f.min(at)));
            }
            let base = since
                .and_then(|s| {
                    s.tracks.get(&TrackRef {
                        bot: i,
                        publisher_id: t.publisher_id.clone(),
                        track_id: t.track_id.clone(),
                    })
                })
                .copied()
                .unwrap_or_default();
            let mut row = track_row(t, base, since.map(|s| s.at), o.join_started, now);
            row.subscriber = plans[i].name.clone();
            row.subscriber_id = own_id.to_owned();
            row.room = plans[i].room.clone();
            row.publisher = publisher;
            rows.push(row);
        }
        let expects_media = publishers
            .values()
            .any(|&p| p != i && plans[p].room == plans[i].room)
            || !outside_tracks(&publishers, o).is_empty();
        if let (true, Some(start), Some(first)) = (expects_media, o.join_started, first_packet) {
            first_media.push(millis(first.saturating_duration_since(start)));
        }
    }
    rows.sort_by(|a, b| {
        (&a.room, &a.subscriber, &a.publisher, a.kind as u8).cmp(&(
            &b.room,
            &b.subscriber,
            &b.publisher,
            b.kind as u8,
        ))
    });

    let duration = match since {
        Some(s) => now.saturating_duration_since(s.at),
        None => now.saturating_duration_since(started_at),
    };
    // Whole run: the traffic started with the first packet, not with the first join.
    let traffic_secs = match since {
        Some(_) => duration.as_secs_f64(),
        None => obs
            .iter()
            .flat_map(|o| o.tracks.iter().filter_map(|t| t.first_packet_at))
            .min()
            .map_or(0.0, |first| {
                now.saturating_duration_since(first).as_secs_f64()
            }),
    };
    let bytes: u64 = rows.iter().map(|r| r.bytes).sum();
    let packets: u64 = rows.iter().map(|r| r.packets).sum();
    let lost: u64 = rows.iter().map(|r| r.lost).sum();
    let with_packets = || rows.iter().filter(|r| r.packets > 0);
    let join_ms: Vec<f64> = obs
        .iter()
        .filter(|o| o.participant_id.is_some())
        .filter_map(|o| o.join_took.map(millis))
        .collect();
    let mut errors_by_code = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, o) in obs.iter().enumerate() {
        if let Some(failure) = &o.failure {
            *errors_by_code.entry(failure.code.clone()).or_insert(0) += 1;
            errors.push(BotFailure {
                bot: plans[i].name.clone(),
                room: plans[i].room.clone(),
                code: failure.code.clone(),
                message: failure.message.clone(),
            });
        }
    }
    let jitter: Vec<f64> = with_packets().map(|r| r.jitter_ms).collect();
    let summary = Summary {
        window: since.is_some(),
        duration_secs: duration.as_secs_f64(),
        bots_expected: plans.len(),
        bots_joined: tally.joined,
        bots_failed: tally.failed,
        tracks_expected: tally.tracks_expected,
        tracks_received: tally.tracks_received,
        missing_tracks: tally.missing.len(),
        missing: tally.missing,
        total_bitrate_kbps: if traffic_secs > 0.0 {
            bytes as f64 * 8.0 / traffic_secs / 1000.0
        } else {
            0.0
        },
        avg_bitrate_kbps: mean(with_packets().map(|r| r.bitrate_kbps)),
        avg_audio_kbps: mean(
            with_packets()
                .filter(|r| r.kind == TrackKind::Audio)
                .map(|r| r.bitrate_kbps),
        ),
        avg_video_kbps: mean(
            with_packets()
                .filter(|r| r.kind == TrackKind::Video)
                .map(|r| r.bitrate_kbps),
        ),
        packets,
        lost,
        loss_percent: loss_percent(packets, lost),
        jitter_ms: percentiles(&jitter),
        freezes: rows.iter().map(|r| r.freezes).sum(),
        picture_id_breaks: rows.iter().map(|r| r.picture_id_breaks).sum(),
        join_ms: percentiles(&join_ms),
        first_media_ms: percentiles(&first_media),
        errors_by_code,
        errors,
    };
    Report {
        summary,
        tracks: rows,
        churn: None,
        cpu: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentiles(&[]), Percentiles::default());
        let p = percentiles(&[5.0]);
        assert_eq!(
            (p.count, p.p50, p.p95, p.max),
            (1, Some(5.0), Some(5.0), Some(5.0))
        );
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = percentiles(&values);
        assert_eq!((p.p50, p.p95, p.max), (Some(50.0), Some(95.0), Some(100.0)));
        let p = percentiles(&[3.0, 1.0, 2.0, f64::NAN]);
        assert_eq!(
            (p.count, p.p50, p.p95, p.max),
            (3, Some(2.0), Some(3.0), Some(3.0))
        );
        let p = percentiles(&[10.0, 20.0]);
        assert_eq!((p.p50, p.p95), (Some(10.0), Some(20.0)));
    }

    #[test]
    fn expected_track_math() {
        use BotRole::*;
        // 2 AV publishers + 8 subscribers: the publishers see each other's 2 tracks, the
        // subscribers all 4.
        let mut room = vec![AvPublisher; 2];
        room.extend([Subscriber; 8]);
        assert_eq!(expected_tracks_in_room(&room), 2 * 2 + 8 * 4);
        assert_eq!(expected_tracks_in_room(&[AvPublisher]), 0);
        assert_eq!(expected_tracks_in_room(&[Subscriber; 5]), 0);
        assert_eq!(expected_tracks_in_room(&[]), 0);
        // 1 AV + 2 audio-only + 3 subscribers: 4 tracks, each seen by the 5 others.
        assert_eq!(
            expected_tracks_in_room(&[
                AvPublisher,
                AudioPublisher,
                AudioPublisher,
                Subscriber,
                Subscriber,
                Subscriber
            ]),
            20
        );
    }

    #[test]
    fn loss_is_a_share_of_what_was_due() {
        assert_eq!(loss_percent(0, 0), 0.0);
        assert_eq!(loss_percent(99, 1), 1.0);
        assert_eq!(loss_percent(0, 5), 100.0);
    }

    fn plan(index: usize, name: &str, room: &str, role: BotRole) -> BotPlan {
        BotPlan {
            index,
            name: name.into(),
            room: room.into(),
            role,
        }
    }

    fn track(publisher: &str, id: &str, kind: TrackKind, start: Instant) -> RemoteTrackStats {
        let codec = match kind {
            TrackKind::Audio => "audio/opus",
            TrackKind::Video => "video/VP8",
        };
        RemoteTrackStats {
            clock_rate: 48_000,
            ..RemoteTrackStats::new(publisher.into(), id.into(), kind, codec, 1)
        }
        .flowing(start)
    }

    impl RemoteTrackStats {
        fn flowing(mut self, start: Instant) -> Self {
            self.first_packet_at = Some(start);
            self.last_packet_at = Some(start);
            self
        }

        fn counted(mut self, packets: u64, bytes: u64, lost: u64, last: Instant) -> Self {
            self.packets = packets;
            self.bytes = bytes;
            self.seq_gaps = lost;
            self.last_packet_at = Some(last);
            self
        }
    }

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    /// pub (AV, "P"), apub (audio, "A") and sub in room r; a failed sub; a lone sub in r2.
    fn swarm(start: Instant) -> (Vec<BotPlan>, Vec<Observation>) {
        let plans = vec![
            plan(0, "pub", "r", BotRole::AvPublisher),
            plan(1, "apub", "r", BotRole::AudioPublisher),
            plan(2, "sub", "r", BotRole::Subscriber),
            plan(3, "sub2", "r", BotRole::Subscriber),
            plan(4, "lone", "r2", BotRole::Subscriber),
        ];
        let joined = |id: &str, tracks: Vec<RemoteTrackStats>| Observation {
            participant_id: Some(id.into()),
            join_started: Some(start),
            join_took: Some(Duration::from_millis(100)),
            failure: None,
            tracks,
            listed: Vec::new(),
            connection: Some("connected".into()),
        };
        let now = ms(start, 2000);
        let obs = vec![
            joined(
                "P",
                vec![
                    track("A", "a1", TrackKind::Audio, ms(start, 300)).counted(100, 10_000, 0, now)
                ],
            ),
            joined(
                "A",
                vec![
                    track("P", "p1", TrackKind::Audio, ms(start, 200)).counted(100, 10_000, 0, now),
                    // No video yet.
                    RemoteTrackStats {
                        packets: 0,
                        first_packet_at: None,
                        last_packet_at: None,
                        ..track("P", "p2", TrackKind::Video, start)
                    },
                ],
            ),
            joined(
                "S",
                vec![
                    track("P", "p1", TrackKind::Audio, ms(start, 250)).counted(99, 9_900, 1, now),
                    RemoteTrackStats {
                        frame_width: 1280,
                        frame_height: 720,
                        ..track("P", "p2", TrackKind::Video, ms(start, 500)).counted(
                            300,
                            150_000,
                            0,
                            ms(start, 1200),
                        )
                    },
                    track("A", "a1", TrackKind::Audio, ms(start, 400)).counted(100, 10_000, 0, now),
                    // A churn bot's track: not the swarm's, not a row.
                    track("X", "x1", TrackKind::Audio, ms(start, 400)).counted(100, 10_000, 0, now),
                ],
            ),
            Observation {
                failure: Some(JoinFailure {
                    code: "room_full".into(),
                    message: "the room is full".into(),
                }),
                join_started: Some(start),
                join_took: Some(Duration::from_millis(5)),
                ..Default::default()
            },
            joined("L", vec![]),
        ];
        (plans, obs)
    }

    #[test]
    fn tally_counts_expected_received_and_missing() {
        let start = Instant::now();
        let (plans, mut obs) = swarm(start);
        // The publisher's own media connection shows beside each of its missing tracks.
        obs[0].connection = Some("checking".into());
        let t = tally(&plans, &obs, true);
        assert_eq!((t.joined, t.failed), (4, 1));
        // Room r: 3 joined members, 3 published tracks → 6; r2: a lone subscriber → 0.
        assert_eq!(t.tracks_expected, 6);
        assert_eq!(t.expected_per_room.get("r2"), Some(&0));
        // pub: apub's audio; apub: pub's audio (video has no packet); sub: all 3.
        assert_eq!(t.tracks_received, 5);
        assert_eq!(
            t.missing,
            vec![MissingTrack {
                subscriber: "apub".into(),
                room: "r".into(),
                publisher: "pub".into(),
                kind: TrackKind::Video,
                connection: "connected".into(),
                publisher_connection: Some("checking".into()),
            }]
        );
        assert_eq!(t.packets, 100 + 100 + 99 + 300 + 100);
        assert_eq!(t.lost, 1);
    }

    #[test]
    fn whole_run_report() {
        let start = Instant::now();
        let (plans, obs) = swarm(start);
        let now = ms(start, 2000);
        let r = build_report(&plans, &obs, None, start, now);
        let s = &r.summary;
        assert_eq!(
            r.tracks.len(),
            6,
            "one row per swarm track: {:#?}",
            r.tracks
        );
        assert_eq!(
            (s.tracks_expected, s.tracks_received, s.missing_tracks),
            (6, 5, 1)
        );
        assert_eq!((s.bots_expected, s.bots_joined, s.bots_failed), (5, 4, 1));
        assert_eq!(s.errors_by_code.get("room_full"), Some(&1));
        assert_eq!(s.errors[0].bot, "sub2");
        assert_eq!(s.join_ms.count, 4);
        assert_eq!(s.join_ms.max, Some(100.0));
        // pub 300 ms, apub 200 ms, sub 250 ms; the lone bot expects nothing.
        assert_eq!(s.first_media_ms.count, 3);
        assert_eq!(s.first_media_ms.p50, Some(250.0));
        assert_eq!(s.first_media_ms.max, Some(300.0));
        assert_eq!(s.duration_secs, 2.0);

        let video = r
            .tracks
            .iter()
            .find(|t| t.subscriber == "sub" && t.kind == TrackKind::Video)
            .unwrap();
        assert_eq!(video.publisher, "pub");
        assert_eq!(video.time_to_first_packet_ms, Some(500.0));
        // 150 kB over 1.5 s of life (500 ms → now); silent for the last 800 ms: a freeze.
        assert!((video.bitrate_kbps - 800.0).abs() < 1e-6);
        assert_eq!(video.freezes, 1);
        assert_eq!(video.max_gap_ms, 800.0);
        assert_eq!((video.frame_width, video.frame_height), (1280, 720));
        let lossy = r
            .tracks
            .iter()
            .find(|t| t.subscriber == "sub" && t.track_id == "p1")
            .unwrap();
        assert_eq!((lossy.lost, lossy.loss_percent), (1, 1.0));
        assert_eq!((s.packets, s.lost), (699, 1));
    }

    #[test]
    fn window_report_counts_only_the_window() {
        let start = Instant::now();
        let (plans, mut obs) = swarm(start);
        let snap = snapshot(&plans, &obs, ms(start, 2000));
        assert_eq!(snap.tracks.len(), 6, "swarm tracks only");
        // One more second: sub's audio from pub gets 50 packets and loses 2; the video
        // freezes once more and then ends at 2.5 s.
        let now = ms(start, 3000);
        let sub = &mut obs[2].tracks;
        sub[0].packets += 50;
        sub[0].bytes += 5_000;
        sub[0].seq_gaps += 2;
        sub[0].last_packet_at = Some(now);
        sub[1].packets += 10;
        sub[1].bytes += 10_000;
        sub[1].freezes = 2;
        sub[1].ended = true;
        sub[1].last_packet_at = Some(ms(start, 2500));
        let r = build_report(&plans, &obs, Some(&snap), start, now);
        assert!(r.summary.window);
        assert_eq!(r.summary.duration_secs, 1.0);
        let audio = r
            .tracks
            .iter()
            .find(|t| t.subscriber == "sub" && t.track_id == "p1")
            .unwrap();
        assert_eq!((audio.packets, audio.bytes, audio.lost), (50, 5_000, 2));
        assert!((audio.bitrate_kbps - 40.0).abs() < 1e-6);
        assert!((audio.loss_percent - 2.0 * 100.0 / 52.0).abs() < 1e-9);
        let video = r
            .tracks
            .iter()
            .find(|t| t.subscriber == "sub" && t.track_id == "p2")
            .unwrap();
        // 10 kB over the 0.5 s it was live in the window; ended, so no ongoing freeze.
        assert_eq!((video.packets, video.freezes), (10, 2));
        assert!((video.bitrate_kbps - 160.0).abs() < 1e-6);
        // The ended video is missing now.
        assert_eq!(r.summary.tracks_received, 4);
        // Traffic over the 1 s window: 5 kB + 10 kB + the others' nothing.
        assert_eq!(r.summary.packets, 60);
        assert!((r.summary.total_bitrate_kbps - 120.0).abs() < 1e-6);
    }
}
