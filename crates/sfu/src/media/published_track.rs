//! One track a participant publishes: reads its RTP from webrtc-rs and fans every packet out
//! to the subscribers' down tracks. The subscriber list is swapped atomically, so the per
//! packet path takes no room-wide lock and never waits on signaling.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use roomcast_codec::VideoCodec;
use roomcast_protocol::{Track, TrackKind};
use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtp::packet::Packet;
use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecParameters, RTPCodecType};
use webrtc::track::track_remote::TrackRemote;

use super::down_track::{DownTrack, Forwarded, Incoming};
use super::header_extensions::IncomingExtensions;
use super::keyframe_requester::KeyframeRequester;
use super::packet_cache::{PacketCache, VIDEO_SLOTS};
use crate::egress::Egress;
use crate::stats::MediaCounters;

/// A forwarded packet's largest size: an MTU-sized packet, our header extensions, the
/// SRTP tag, with room to spare.
const SEND_BUFFER_BYTES: usize = 1600;

pub struct PublishedTrack {
    pub info: Track,
    pub publisher_id: String,
    pub mid: String,
    /// The publisher's first negotiated codec for this m-line: what subscribers bind to.
    pub codec: RTCRtpCodecParameters,
    down_tracks: ArcSwap<Vec<Arc<DownTrack>>>,
    cache: Option<Mutex<PacketCache>>,
    keyframes: Mutex<KeyframeRequester>,
    media_ssrc: AtomicU32,
    extensions: Mutex<IncomingExtensions>,
    publisher_pc: Weak<RTCPeerConnection>,
    pub counters: MediaCounters,
    closed: CancellationToken,
    has_reader: std::sync::atomic::AtomicBool,
}

impl PublishedTrack {
    pub fn new(
        info: Track,
        publisher_id: String,
        mid: String,
        codec: RTCRtpCodecParameters,
        publisher_pc: Weak<RTCPeerConnection>,
    ) -> Self {
        let cache =
            (info.kind == TrackKind::Video).then(|| Mutex::new(PacketCache::new(VIDEO_SLOTS)));
        PublishedTrack {
            info,
            publisher_id,
            mid,
            codec,
            down_tracks: ArcSwap::from_pointee(Vec::new()),
            cache,
            keyframes: Mutex::new(KeyframeRequester::default()),
            media_ssrc: AtomicU32::new(0),
            extensions: Mutex::new(IncomingExtensions::default()),
            publisher_pc,
            counters: MediaCounters::default(),
            closed: CancellationToken::new(),
            has_reader: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn rtp_kind(&self) -> RTPCodecType {
        match self.info.kind {
            TrackKind::Audio => RTPCodecType::Audio,
            TrackKind::Video => RTPCodecType::Video,
        }
    }

    /// A copy of this track for the subscriber connection that sends through `egress`.
    pub fn new_down_track(&self, egress: Arc<Egress>) -> Arc<DownTrack> {
        Arc::new(DownTrack::new(
            self.info.id.clone(),
            self.publisher_id.clone(),
            self.rtp_kind(),
            self.codec.clone(),
            egress,
        ))
    }

    pub fn add_down_track(&self, down: Arc<DownTrack>) {
        self.down_tracks.rcu(|list| {
            let mut next = Vec::with_capacity(list.len() + 1);
            next.extend(list.iter().cloned());
            next.push(Arc::clone(&down));
            next
        });
    }

    pub fn remove_down_track(&self, down: &Arc<DownTrack>) {
        self.down_tracks.rcu(|list| {
            list.iter()
                .filter(|d| !Arc::ptr_eq(d, down))
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    pub fn subscriber_count(&self) -> usize {
        self.down_tracks.load().len()
    }

    /// Whether the caller may start this track's one reader (true once).
    pub fn claim_reader(&self) -> bool {
        !self.has_reader.swap(true, Ordering::Relaxed)
    }

    /// Ends forwarding: the reader task stops and subscribers get nothing more.
    pub fn close(&self) {
        self.closed.cancel();
        self.down_tracks.store(Arc::new(Vec::new()));
    }

    /// Asks the publisher for a keyframe, at most once per throttle interval.
    pub async fn request_keyframe(&self) {
        if self.info.kind != TrackKind::Video {
            return;
        }
        let ssrc = self.media_ssrc.load(Ordering::Relaxed);
        if ssrc == 0 || !self.keyframes.lock().should_send(Instant::now()) {
            return;
        }
        let Some(pc) = self.publisher_pc.upgrade() else {
            return;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        if pc.write_rtcp(&[Box::new(pli)]).await.is_ok() {
            MediaCounters::add(&self.counters.plis_sent, 1);
        }
    }

    /// Answers a subscriber's NACK for the given outgoing sequence numbers from the cache.
    pub fn answer_nack(&self, down: &DownTrack, lost: &[u16], buf: &mut Vec<u8>) {
        let Some(cache) = &self.cache else { return };
        let extensions = *self.extensions.lock();
        MediaCounters::add(&self.counters.nacks_received, lost.len() as u64);
        let received_at = Instant::now();
        for &out_seq in lost {
            let cached = down
                .publisher_seq(out_seq)
                .and_then(|seq| cache.lock().get(seq).cloned());
            let Some(packet) = cached else {
                MediaCounters::add(&self.counters.retransmit_misses, 1);
                continue;
            };
            let incoming = Incoming {
                packet: &packet,
                is_keyframe: false,
                extensions,
                codecs: std::slice::from_ref(&self.codec),
                received_at,
            };
            if down.retransmit(&incoming, buf) == Forwarded::Sent {
                MediaCounters::add(&self.counters.retransmits, 1);
            }
        }
    }

    /// Reads the publisher's RTP until the track ends or is closed, forwarding each packet.
    pub async fn run_reader(self: Arc<Self>, remote: Arc<TrackRemote>) {
        self.media_ssrc.store(remote.ssrc(), Ordering::Relaxed);
        let params = remote.params();
        let extensions = IncomingExtensions::from_negotiated(&params.header_extensions);
        *self.extensions.lock() = extensions;
        let codecs = params.codecs;
        let video = VideoCodec::from_mime(&remote.codec().capability.mime_type);
        let mut buf = vec![0u8; 1500];
        // Where each subscriber's copy is built: room for a full packet, our header
        // extensions and the SRTP tag, so it never grows.
        let mut scratch = Vec::with_capacity(SEND_BUFFER_BYTES);
        // Ask at once, so the first subscribers don't wait for the next periodic keyframe.
        self.request_keyframe().await;
        loop {
            let packet = tokio::select! {
                _ = self.closed.cancelled() => break,
                read = remote.read(&mut buf) => match read {
                    Ok((packet, _)) => packet,
                    Err(_) => break,
                },
            };
            if self.forward(&packet, video, extensions, &codecs, &mut scratch) {
                // Throttled inside: a subscriber stuck without a keyframe keeps asking.
                self.request_keyframe().await;
            }
            if let Some(cache) = &self.cache {
                cache.lock().insert(packet);
            }
        }
        tracing::debug!(track_id = %self.info.id, publisher = %self.publisher_id, "track reader ended");
    }

    /// Sends `packet` to every subscriber; returns whether one of them needs a keyframe.
    fn forward(
        &self,
        packet: &Packet,
        video: Option<VideoCodec>,
        extensions: IncomingExtensions,
        codecs: &[RTCRtpCodecParameters],
        scratch: &mut Vec<u8>,
    ) -> bool {
        let c = &self.counters;
        MediaCounters::add(&c.packets_in, 1);
        MediaCounters::add(&c.bytes_in, packet.payload.len() as u64);
        if packet.payload.is_empty() {
            MediaCounters::add(&c.dropped_padding, 1);
            return false;
        }
        let is_keyframe = video.is_some_and(|v| v.is_keyframe(&packet.payload));
        let incoming = Incoming {
            packet,
            is_keyframe,
            extensions,
            codecs,
            received_at: Instant::now(),
        };
        let down_tracks = self.down_tracks.load();
        let (mut sent, mut waiting) = (0u64, false);
        for down in down_tracks.iter() {
            match down.forward(&incoming, scratch) {
                Forwarded::Sent => sent += 1,
                Forwarded::WaitingForKeyframe => {
                    waiting = true;
                    MediaCounters::add(&c.dropped_waiting_keyframe, 1);
                }
                Forwarded::NoCodec => MediaCounters::add(&c.dropped_no_codec, 1),
                Forwarded::TooOld => MediaCounters::add(&c.dropped_too_old, 1),
                Forwarded::WriteFailed => MediaCounters::add(&c.dropped_write_failed, 1),
                Forwarded::NotConnected => MediaCounters::add(&c.dropped_not_connected, 1),
                Forwarded::NotBound => {}
            }
        }
        if sent > 0 {
            MediaCounters::add(&c.packets_out, sent);
            let by_kind = match self.info.kind {
                TrackKind::Video => &c.video_packets_out,
                TrackKind::Audio => &c.audio_packets_out,
            };
            MediaCounters::add(by_kind, sent);
            MediaCounters::add(&c.bytes_out, sent * packet.payload.len() as u64);
        }
        waiting
    }
}
