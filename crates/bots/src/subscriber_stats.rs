//! Counters for every track the bot receives, keyed by (publisher id, track id) from the
//! msid, because one receiver can carry different publishers' tracks over time.
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use roomcast_protocol::TrackKind;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::timeout_at;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_VP8};

use crate::arrival::{GapTracker, JitterEstimator};
use crate::picture_ids::PictureIds;
use crate::sequence_tracker::SequenceTracker;
use crate::BotError;

/// How many of the latest keyframe sizes [`RemoteTrackStats::keyframe_sizes`] keeps.
pub const KEYFRAME_SIZES_KEPT: usize = 64;

/// The size of one received keyframe, read from its VP8 keyframe header or from the H.264
/// SPS sent with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeSize {
    /// When its first packet arrived.
    pub at: Instant,
    pub width: u16,
    pub height: u16,
    /// RTP sequence number of that packet.
    pub sequence_number: u16,
}

/// What the bot has received of one remote track so far.
///
/// To assert that the sequence numbers had no gaps, read [`RemoteTrackStats::seq_gaps`]
/// (packets still missing: 0 means every number between the first and the highest arrived,
/// late or retransmitted ones included); [`RemoteTrackStats::is_sequence_continuous`] is
/// stricter (every packet exactly one after the previous, none late).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteTrackStats {
    /// The msid stream id: the publisher's participant id.
    pub publisher_id: String,
    /// The msid track id: the contract's `Track.id`.
    pub track_id: String,
    pub kind: TrackKind,
    /// e.g. `video/VP8`, as negotiated.
    pub codec_mime: String,
    /// SSRC of the latest stream that carried this track.
    pub ssrc: u32,
    /// Media packets (padding-only packets are counted apart).
    pub packets: u64,
    /// RTP payload bytes.
    pub bytes: u64,
    /// Padding-only packets: they fill sequence numbers, nothing else.
    pub padding_packets: u64,
    pub first_packet_at: Option<Instant>,
    pub last_packet_at: Option<Instant>,
    /// VP8 keyframes or H.264 IDR pictures (counted once per RTP timestamp).
    pub keyframes: u64,
    /// Size from the latest VP8 keyframe (`None` for H.264: see `frame_width`).
    pub vp8_width: Option<u16>,
    pub vp8_height: Option<u16>,
    /// Size of the latest keyframe whose size is known (VP8 keyframe header, H.264 SPS);
    /// 0 before any.
    pub frame_width: u16,
    pub frame_height: u16,
    /// The latest [`KEYFRAME_SIZES_KEPT`] keyframes with a known size, oldest first: one
    /// entry per picture (RTP timestamp). A switch of simulcast layer shows as a change of
    /// size here.
    pub keyframe_sizes: Vec<KeyframeSize>,
    /// The track stopped: its receiver ended, or the server said it was unpublished or its
    /// publisher left.
    pub ended: bool,
    /// Packets missing from sequence gaps, now: late arrivals (reordered, or retransmitted
    /// after a NACK) fill their gap again. 0 = no gaps. Restarts with a new SSRC.
    pub seq_gaps: u64,
    /// Largest step between consecutive highest sequence numbers; 1 means no gap ever
    /// opened (even one filled later), 0 that fewer than two packets arrived.
    pub max_seq_jump: u16,
    /// Packets older than the highest sequence number seen (reordered, retransmitted, or a
    /// jump backwards).
    pub out_of_order: u64,
    pub duplicates: u64,
    /// The highest sequence number received (of the current SSRC), if any.
    pub highest_sequence_number: Option<u16>,
    /// RTP clock rate the jitter is measured in (48 000 for Opus, 90 000 for video).
    pub clock_rate: u32,
    /// RFC 3550 interarrival jitter of the current SSRC, in milliseconds.
    pub jitter_ms: f64,
    /// Video only: gaps between packets longer than [`crate::FREEZE_GAP`] while the track
    /// was live (the time a track spends ended is no gap).
    pub freezes: u64,
    /// Longest gap between two packets while the track was live.
    pub max_gap: Duration,
    /// VP8: packets whose picture id broke the run of ids a decoder follows (neither the
    /// same picture nor the next one, right after the packet before it). 0 when the
    /// stream decodes; anything else means frames a browser would drop.
    pub picture_id_breaks: u64,
}

impl RemoteTrackStats {
    /// A track nothing has arrived on yet.
    pub fn new(
        publisher_id: String,
        track_id: String,
        kind: TrackKind,
        codec_mime: &str,
        ssrc: u32,
    ) -> Self {
        RemoteTrackStats {
            publisher_id,
            track_id,
            kind,
            codec_mime: codec_mime.to_owned(),
            ssrc,
            packets: 0,
            bytes: 0,
            padding_packets: 0,
            first_packet_at: None,
            last_packet_at: None,
            keyframes: 0,
            vp8_width: None,
            vp8_height: None,
            frame_width: 0,
            frame_height: 0,
            keyframe_sizes: Vec::new(),
            ended: false,
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
        }
    }

    /// Every packet so far was exactly one sequence number after the one before it: no
    /// gap ever opened and nothing arrived late (of the current SSRC).
    pub fn is_sequence_continuous(&self) -> bool {
        self.max_seq_jump <= 1 && self.out_of_order == 0
    }

    /// Whether a packet arrived within `window` before `now`.
    pub fn is_flowing(&self, now: Instant, window: Duration) -> bool {
        !self.ended
            && self
                .last_packet_at
                .is_some_and(|at| now.saturating_duration_since(at) <= window)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depacketizer {
    Vp8,
    H264,
    Opaque,
}

/// The counters of one track and how they change with each packet.
#[derive(Debug)]
pub(crate) struct TrackCounters {
    stats: RemoteTrackStats,
    sequence: SequenceTracker,
    depacketizer: Depacketizer,
    last_keyframe_timestamp: Option<u32>,
    /// H.264: the size of the latest SPS, for the IDR pictures that follow it.
    sps_size: Option<(u16, u16)>,
    keyframe_sizes: VecDeque<KeyframeSize>,
    jitter: JitterEstimator,
    gaps: GapTracker,
    picture_ids: Option<PictureIds>,
    /// Which reader currently feeds these counters; only it may mark them ended.
    reader: u64,
}

impl TrackCounters {
    fn new(key: TrackKey, kind: TrackKind, codec_mime: &str, clock_rate: u32, ssrc: u32) -> Self {
        let depacketizer = if codec_mime.eq_ignore_ascii_case(MIME_TYPE_VP8) {
            Depacketizer::Vp8
        } else if codec_mime.eq_ignore_ascii_case(MIME_TYPE_H264) {
            Depacketizer::H264
        } else {
            Depacketizer::Opaque
        };
        TrackCounters {
            stats: RemoteTrackStats::new(key.publisher_id, key.track_id, kind, codec_mime, ssrc),
            sequence: SequenceTracker::default(),
            depacketizer,
            last_keyframe_timestamp: None,
            sps_size: None,
            keyframe_sizes: VecDeque::new(),
            jitter: JitterEstimator::new(clock_rate_or_default(kind, clock_rate)),
            gaps: GapTracker::new(kind == TrackKind::Video),
            picture_ids: (depacketizer == Depacketizer::Vp8).then(PictureIds::default),
            reader: 0,
        }
    }

    /// Counts one packet. Returns whether it is news worth waking waiters for at once
    /// (the first packet, a keyframe).
    pub(crate) fn record(
        &mut self,
        seq: u16,
        timestamp: u32,
        payload: &[u8],
        now: Instant,
    ) -> bool {
        let stats = &mut self.stats;
        self.sequence.record(seq);
        if let Some(ids) = &mut self.picture_ids {
            ids.record(seq, timestamp, payload);
        }
        if payload.is_empty() {
            // Padding (the server probing the bandwidth) takes a sequence number but is no
            // media: it must not hide a frozen picture.
            stats.padding_packets += 1;
            return false;
        }
        let first = stats.first_packet_at.is_none();
        stats.packets += 1;
        stats.bytes += payload.len() as u64;
        stats.first_packet_at.get_or_insert(now);
        stats.last_packet_at = Some(now);
        self.jitter.record(timestamp, now);
        self.gaps.record(now);

        // The size this packet tells, if any, and whether it starts a keyframe.
        let (size, keyframe) = match self.depacketizer {
            Depacketizer::Vp8 => match roomcast_codec::vp8::keyframe_size(payload) {
                Some(size) => {
                    stats.vp8_width = Some(size.width);
                    stats.vp8_height = Some(size.height);
                    (Some((size.width, size.height)), true)
                }
                None => (None, false),
            },
            Depacketizer::H264 => {
                let keyframe = roomcast_codec::h264::is_keyframe(payload);
                let sps = keyframe
                    .then(|| roomcast_codec::h264::payload_sps_size(payload))
                    .flatten()
                    .map(|size| (size.width, size.height));
                if sps.is_some() {
                    self.sps_size = sps;
                }
                (sps, keyframe)
            }
            Depacketizer::Opaque => (None, false),
        };
        let same_picture = self.last_keyframe_timestamp == Some(timestamp);
        let new_keyframe = keyframe && !same_picture;
        if new_keyframe {
            self.last_keyframe_timestamp = Some(timestamp);
            stats.keyframes += 1;
            if let Some((width, height)) = size.or(self.sps_size) {
                self.keyframe_sizes.push_back(KeyframeSize {
                    at: now,
                    width,
                    height,
                    sequence_number: seq,
                });
                if self.keyframe_sizes.len() > KEYFRAME_SIZES_KEPT {
                    self.keyframe_sizes.pop_front();
                }
                (stats.frame_width, stats.frame_height) = (width, height);
            }
        } else if let (true, Some((width, height))) = (same_picture, size) {
            // An H.264 SPS after the IDR of its picture (reordered): it sizes that picture.
            if let Some(latest) = self.keyframe_sizes.back_mut() {
                if (latest.width, latest.height) != (width, height) {
                    (latest.width, latest.height) = (width, height);
                    (stats.frame_width, stats.frame_height) = (width, height);
                }
            }
        }
        first || new_keyframe
    }

    fn snapshot(&self) -> RemoteTrackStats {
        RemoteTrackStats {
            seq_gaps: self.sequence.lost,
            max_seq_jump: self.sequence.max_jump,
            out_of_order: self.sequence.out_of_order,
            duplicates: self.sequence.duplicates,
            highest_sequence_number: self.sequence.highest(),
            clock_rate: self.jitter.clock_rate(),
            jitter_ms: self.jitter.jitter_ms(),
            freezes: self.gaps.freezes,
            max_gap: self.gaps.max_gap,
            picture_id_breaks: self.picture_ids.as_ref().map_or(0, |ids| ids.breaks),
            keyframe_sizes: self.keyframe_sizes.iter().copied().collect(),
            ..self.stats.clone()
        }
    }
}

/// The clock rate webrtc-rs negotiated, or the usual one for the kind if it said none.
fn clock_rate_or_default(kind: TrackKind, clock_rate: u32) -> u32 {
    match (clock_rate, kind) {
        (0, TrackKind::Audio) => 48_000,
        (0, TrackKind::Video) => 90_000,
        (rate, _) => rate,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackKey {
    pub publisher_id: String,
    pub track_id: String,
}

/// A reader's claim on a track's counters.
pub(crate) struct Feed {
    pub key: TrackKey,
    pub counters: Arc<Mutex<TrackCounters>>,
    reader: u64,
}

/// Every received track's counters, and who is waiting for them to change.
pub(crate) struct Subscriptions {
    tracks: Mutex<Vec<Arc<Mutex<TrackCounters>>>>,
    next_reader: Mutex<u64>,
    readers: Mutex<Vec<AbortHandle>>,
    changed: watch::Sender<()>,
}

impl Subscriptions {
    pub(crate) fn new() -> Self {
        Subscriptions {
            tracks: Mutex::new(Vec::new()),
            next_reader: Mutex::new(0),
            readers: Mutex::new(Vec::new()),
            changed: watch::Sender::new(()),
        }
    }

    /// Starts feeding a track's counters: new ones, or the existing ones for the same key
    /// (then no longer ended; a new SSRC starts a new sequence and timestamp space).
    pub(crate) fn open(
        &self,
        key: TrackKey,
        kind: TrackKind,
        codec_mime: &str,
        clock_rate: u32,
        ssrc: u32,
    ) -> Feed {
        let reader = {
            let mut next = self.next_reader.lock();
            *next += 1;
            *next
        };
        let counters = {
            let mut tracks = self.tracks.lock();
            let existing = tracks.iter().find(|t| {
                let t = t.lock();
                t.stats.publisher_id == key.publisher_id && t.stats.track_id == key.track_id
            });
            match existing {
                Some(counters) => {
                    let mut c = counters.lock();
                    c.stats.ended = false;
                    c.gaps.restart();
                    if c.stats.ssrc != ssrc {
                        c.stats.ssrc = ssrc;
                        c.sequence = SequenceTracker::default();
                        c.jitter.reset();
                        if let Some(ids) = &mut c.picture_ids {
                            ids.restart();
                        }
                    }
                    c.reader = reader;
                    drop(c);
                    Arc::clone(counters)
                }
                None => {
                    let mut fresh =
                        TrackCounters::new(key.clone(), kind, codec_mime, clock_rate, ssrc);
                    fresh.reader = reader;
                    let fresh = Arc::new(Mutex::new(fresh));
                    tracks.push(Arc::clone(&fresh));
                    fresh
                }
            }
        };
        self.notify();
        Feed {
            key,
            counters,
            reader,
        }
    }

    /// The reader of `feed` stopped; the track ended unless another reader took it over.
    pub(crate) fn close(&self, feed: &Feed) {
        let mut counters = feed.counters.lock();
        if counters.reader == feed.reader {
            counters.stats.ended = true;
        }
        drop(counters);
        self.notify();
    }

    /// The server said a track (or, with `track_id: None`, every track of a publisher) is gone.
    pub(crate) fn mark_ended(&self, publisher_id: &str, track_id: Option<&str>) {
        for counters in self.tracks.lock().iter() {
            let mut c = counters.lock();
            if c.stats.publisher_id == publisher_id
                && track_id.is_none_or(|id| c.stats.track_id == id)
            {
                c.stats.ended = true;
                c.gaps.restart();
            }
        }
        self.notify();
    }

    pub(crate) fn snapshot(&self) -> Vec<RemoteTrackStats> {
        self.tracks
            .lock()
            .iter()
            .map(|c| c.lock().snapshot())
            .collect()
    }

    pub(crate) fn notify(&self) {
        self.changed.send_replace(());
    }

    pub(crate) fn add_reader(&self, reader: AbortHandle) {
        let mut readers = self.readers.lock();
        readers.retain(|r| !r.is_finished());
        readers.push(reader);
    }

    pub(crate) fn abort_readers(&self) {
        for reader in self.readers.lock().drain(..) {
            reader.abort();
        }
    }

    /// Re-checks `pred` on a fresh snapshot whenever a reader reports progress.
    pub(crate) async fn wait_for(
        &self,
        pred: impl Fn(&[RemoteTrackStats]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<RemoteTrackStats>, BotError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.changed.subscribe();
        loop {
            changes.borrow_and_update();
            let snapshot = self.snapshot();
            if pred(&snapshot) {
                return Ok(snapshot);
            }
            match timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(BotError::Closed),
                Err(_) => return Err(BotError::Timeout("the media condition")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(publisher: &str, track: &str) -> TrackKey {
        TrackKey {
            publisher_id: publisher.into(),
            track_id: track.into(),
        }
    }

    const VP8_KEYFRAME_PACKET: [u8; 11] = [
        0x10, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
    ];

    #[test]
    fn counts_packets_gaps_and_vp8_keyframes_once_per_frame() {
        let subs = Subscriptions::new();
        let feed = subs.open(key("p1", "t1"), TrackKind::Video, "video/VP8", 0, 7);
        let now = Instant::now();
        let mut c = feed.counters.lock();
        assert!(
            c.record(10, 1000, &VP8_KEYFRAME_PACKET, now),
            "first packet is news"
        );
        assert!(!c.record(11, 1000, &[0x00, 1, 2], now), "continuation");
        assert!(!c.record(13, 4000, &[0x10, 0x51, 0, 0], now), "interframe");
        assert!(
            c.record(14, 7000, &VP8_KEYFRAME_PACKET, now),
            "keyframe is news"
        );
        assert!(
            !c.record(15, 7000, &VP8_KEYFRAME_PACKET, now),
            "same picture"
        );
        drop(c);
        let stats = &subs.snapshot()[0];
        assert_eq!(stats.packets, 5);
        assert_eq!(stats.bytes, 11 * 3 + 3 + 4);
        assert_eq!(stats.keyframes, 2);
        assert_eq!((stats.vp8_width, stats.vp8_height), (Some(640), Some(360)));
        assert_eq!((stats.seq_gaps, stats.max_seq_jump), (1, 2));
        assert_eq!(stats.first_packet_at, Some(now));
        assert!(stats.is_flowing(now, Duration::from_secs(1)));
    }

    #[test]
    fn padding_fills_sequence_numbers_but_is_no_media() {
        let subs = Subscriptions::new();
        let feed = subs.open(key("p1", "t1"), TrackKind::Video, "video/VP8", 0, 7);
        let start = Instant::now();
        let mut c = feed.counters.lock();
        assert!(!c.record(9, 1000, &[], start), "padding first is no news");
        c.record(10, 1000, &VP8_KEYFRAME_PACKET, start);
        // A second of padding only, then media again: the picture froze for that second.
        for (i, ms) in (100..1_000).step_by(100).enumerate() {
            c.record(11 + i as u16, 1000, &[], start + Duration::from_millis(ms));
        }
        c.record(
            20,
            91_000,
            &[0x10, 0x51, 0, 0],
            start + Duration::from_secs(1),
        );
        drop(c);
        let stats = &subs.snapshot()[0];
        assert_eq!((stats.packets, stats.padding_packets), (2, 10));
        assert_eq!(stats.first_packet_at, Some(start));
        assert_eq!(stats.seq_gaps, 0);
        assert_eq!(stats.freezes, 1);
    }

    /// The first packet of a VP8 keyframe of this size (plain payload descriptor).
    fn vp8_keyframe(width: u16, height: u16) -> Vec<u8> {
        let mut p = vec![0x10, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a];
        p.extend_from_slice(&width.to_le_bytes());
        p.extend_from_slice(&height.to_le_bytes());
        p
    }

    #[test]
    fn keyframe_sizes_follow_a_vp8_layer_switch() {
        let subs = Subscriptions::new();
        let feed = subs.open(key("p", "v"), TrackKind::Video, "video/VP8", 90_000, 1);
        let start = Instant::now();
        let before = subs.snapshot().remove(0);
        assert_eq!((before.frame_width, before.frame_height), (0, 0));
        assert!(before.keyframe_sizes.is_empty());
        {
            let mut c = feed.counters.lock();
            c.record(100, 0, &vp8_keyframe(320, 180), start);
            c.record(101, 0, &[0x00, 1], start);
            c.record(102, 3000, &[0x10, 0x51, 0, 0], start);
            c.record(
                103,
                6000,
                &vp8_keyframe(1280, 720),
                start + Duration::from_secs(1),
            );
            c.record(
                104,
                6000,
                &vp8_keyframe(1280, 720),
                start + Duration::from_secs(1),
            );
        }
        let stats = subs.snapshot().remove(0);
        assert_eq!((stats.frame_width, stats.frame_height), (1280, 720));
        assert_eq!((stats.vp8_width, stats.vp8_height), (Some(1280), Some(720)));
        assert_eq!(
            stats.keyframe_sizes,
            [
                KeyframeSize {
                    at: start,
                    width: 320,
                    height: 180,
                    sequence_number: 100
                },
                KeyframeSize {
                    at: start + Duration::from_secs(1),
                    width: 1280,
                    height: 720,
                    sequence_number: 103
                },
            ]
        );
        assert_eq!(stats.seq_gaps, 0);
        assert!(stats.is_sequence_continuous());
    }

    #[test]
    fn only_the_latest_keyframe_sizes_are_kept() {
        let subs = Subscriptions::new();
        let feed = subs.open(key("p", "v"), TrackKind::Video, "video/VP8", 90_000, 1);
        let now = Instant::now();
        for i in 0..100u16 {
            let width = 100 + i;
            feed.counters
                .lock()
                .record(i, u32::from(i) * 3000, &vp8_keyframe(width, 100), now);
        }
        let stats = subs.snapshot().remove(0);
        assert_eq!(stats.keyframes, 100);
        assert_eq!(stats.keyframe_sizes.len(), KEYFRAME_SIZES_KEPT);
        assert_eq!(stats.keyframe_sizes[0].width, 100 + 100 - 64);
        assert_eq!(stats.keyframe_sizes[63].sequence_number, 99);
        assert_eq!(stats.frame_width, 199);
    }

    /// x264's SPS of `media/h264-320x180.h264`, and of the 1280x720 loop.
    const SPS_320X180: [u8; 23] = [
        0x67, 0x42, 0xc0, 0x1f, 0xda, 0x05, 0x06, 0x7e, 0x7c, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00,
        0x40, 0x00, 0x00, 0x0f, 0x03, 0xc6, 0x0c, 0xa8,
    ];
    const SPS_1280X720: [u8; 23] = [
        0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00,
        0x40, 0x00, 0x00, 0x0f, 0x03, 0xc6, 0x0c, 0xa8,
    ];

    /// A STAP-A with SPS and PPS, as webrtc-rs and browsers send them before an IDR.
    fn stap_a(sps: &[u8]) -> Vec<u8> {
        let mut p = vec![0x78];
        p.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        p.extend_from_slice(sps);
        p.extend_from_slice(&[0x00, 0x04, 0x68, 0xce, 0x3c, 0x80]);
        p
    }

    #[test]
    fn h264_keyframes_are_sized_by_their_sps() {
        let subs = Subscriptions::new();
        let feed = subs.open(key("p", "v"), TrackKind::Video, "video/H264", 90_000, 1);
        let now = Instant::now();
        let idr_start = [0x7c, 0x85, 0x88, 0x84];
        let idr_end = [0x7c, 0x45, 0x00];
        let slice = [0x41, 0x9a, 0x02];
        {
            let mut c = feed.counters.lock();
            c.record(1, 0, &stap_a(&SPS_320X180), now);
            c.record(2, 0, &idr_start, now);
            c.record(3, 0, &idr_end, now);
            c.record(4, 3000, &slice, now);
        }
        let stats = subs.snapshot().remove(0);
        assert_eq!(stats.keyframes, 1);
        assert_eq!((stats.frame_width, stats.frame_height), (320, 180));
        assert_eq!((stats.vp8_width, stats.vp8_height), (None, None));
        assert_eq!(stats.keyframe_sizes[0].sequence_number, 1);
        {
            let mut c = feed.counters.lock();
            // An IDR whose SPS arrives after it (reordered): the SPS sizes that picture.
            c.record(6, 6000, &idr_start, now);
            c.record(5, 6000, &stap_a(&SPS_1280X720), now);
            // An IDR without SPS of its own keeps the latest one's size.
            c.record(7, 9000, &[0x65, 0x88], now);
        }
        let stats = subs.snapshot().remove(0);
        let sizes: Vec<(u16, u16, u16)> = stats
            .keyframe_sizes
            .iter()
            .map(|k| (k.width, k.height, k.sequence_number))
            .collect();
        assert_eq!(sizes, [(320, 180, 1), (1280, 720, 6), (1280, 720, 7)]);
        assert_eq!((stats.frame_width, stats.frame_height), (1280, 720));
        assert_eq!(stats.seq_gaps, 0, "5 arrived late");
        assert!(!stats.is_sequence_continuous(), "but it was late");
    }

    #[test]
    fn jitter_and_freezes_reach_the_stats_and_ending_is_no_freeze() {
        let subs = Subscriptions::new();
        let feed = subs.open(key("p", "v"), TrackKind::Video, "video/VP8", 90_000, 9);
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        {
            let mut c = feed.counters.lock();
            c.record(1, 0, &[0], ms(0));
            c.record(2, 3000, &[0], ms(33));
            c.record(3, 6000, &[0], ms(800));
        }
        let stats = subs.snapshot().remove(0);
        assert_eq!(stats.clock_rate, 90_000);
        assert_eq!(stats.freezes, 1);
        assert_eq!(stats.max_gap, Duration::from_millis(767));
        // |D| is 33.3 - 33 ms, then 767 - 33.3 ms.
        let j1 = (100.0 / 3.0 - 33.0) / 16.0;
        let j2 = j1 + ((767.0 - 100.0 / 3.0) - j1) / 16.0;
        assert!((stats.jitter_ms - j2).abs() < 0.001, "{}", stats.jitter_ms);

        subs.mark_ended("p", None);
        let again = subs.open(key("p", "v"), TrackKind::Video, "video/VP8", 90_000, 9);
        again.counters.lock().record(4, 9000, &[0], ms(5000));
        let stats = subs.snapshot().remove(0);
        assert_eq!(
            (stats.freezes, stats.max_gap),
            (1, Duration::from_millis(767))
        );

        let audio = subs.open(key("p", "a"), TrackKind::Audio, "audio/opus", 0, 3);
        audio.counters.lock().record(1, 0, &[0], ms(0));
        audio.counters.lock().record(2, 960, &[0], ms(900));
        let stats = subs.snapshot().remove(1);
        assert_eq!(stats.clock_rate, 48_000, "Opus default");
        assert_eq!(
            (stats.freezes, stats.max_gap),
            (0, Duration::from_millis(900))
        );
    }

    #[test]
    fn counts_h264_idr() {
        let subs = Subscriptions::new();
        let feed = subs.open(key("p", "t"), TrackKind::Video, "video/h264", 0, 1);
        let mut c = feed.counters.lock();
        c.record(1, 0, &[0x7c, 0x85, 0], Instant::now());
        c.record(2, 0, &[0x7c, 0x05, 0], Instant::now());
        c.record(3, 3000, &[0x41, 0x9a], Instant::now());
        drop(c);
        assert_eq!(subs.snapshot()[0].keyframes, 1);
    }

    #[test]
    fn reused_receiver_keeps_tracks_apart_and_ends_only_its_own() {
        let subs = Subscriptions::new();
        let first = subs.open(key("alice", "a1"), TrackKind::Audio, "audio/opus", 0, 1);
        // The same receiver now carries bob's track: alice's reader hands over.
        subs.close(&first);
        let second = subs.open(key("bob", "b1"), TrackKind::Audio, "audio/opus", 0, 2);
        let snapshot = subs.snapshot();
        assert_eq!(snapshot.len(), 2);
        assert!(snapshot[0].ended);
        assert!(!snapshot[1].ended);

        // alice's track comes back on another receiver; a stale reader cannot end it.
        let again = subs.open(key("alice", "a1"), TrackKind::Audio, "audio/opus", 0, 3);
        subs.close(&first);
        assert!(!subs.snapshot()[0].ended);
        assert_eq!(subs.snapshot()[0].ssrc, 3);
        subs.close(&again);
        assert!(subs.snapshot()[0].ended);
        drop(second);
    }

    #[test]
    fn server_side_ends() {
        let subs = Subscriptions::new();
        subs.open(key("alice", "a1"), TrackKind::Audio, "audio/opus", 0, 1);
        subs.open(key("alice", "a2"), TrackKind::Video, "video/VP8", 0, 2);
        subs.open(key("bob", "b1"), TrackKind::Audio, "audio/opus", 0, 3);
        subs.mark_ended("alice", Some("a2"));
        let ended: Vec<bool> = subs.snapshot().iter().map(|s| s.ended).collect();
        assert_eq!(ended, [false, true, false]);
        subs.mark_ended("alice", None);
        let ended: Vec<bool> = subs.snapshot().iter().map(|s| s.ended).collect();
        assert_eq!(ended, [true, true, false]);
    }

    #[tokio::test]
    async fn wait_for_wakes_on_progress() {
        let subs = Arc::new(Subscriptions::new());
        let writer = Arc::clone(&subs);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let feed = writer.open(key("p", "t"), TrackKind::Audio, "audio/opus", 0, 1);
            for seq in 0..5 {
                feed.counters.lock().record(seq, 0, &[1], Instant::now());
                writer.notify();
            }
        });
        let found = subs
            .wait_for(
                |tracks| tracks.iter().any(|t| t.packets >= 5),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(found[0].packets, 5);
        assert!(matches!(
            subs.wait_for(|_| false, Duration::from_millis(10)).await,
            Err(BotError::Timeout(_))
        ));
    }
}
