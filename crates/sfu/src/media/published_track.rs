//! One track a participant publishes, the receiving half: its layers (the receive fast
//! path, [`crate::ingress`], hands it their packets; before that, one webrtc-rs reader per
//! simulcast layer does), whether each is arriving, their keyframes and the cache NACKs are
//! answered from, mute and audio level. Each packet then goes to the track's [`FanOut`],
//! which hands it to every subscriber's down track; each decides whether it takes that
//! layer.
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::Mutex;
use roomcast_codec::VideoCodec;
use roomcast_protocol::{Track, TrackKind};
use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtp::packet::Packet;
use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecParameters, RTPCodecType};
use webrtc::track::track_remote::TrackRemote;

use super::audio_level::AudioLevelMeter;
use super::down_track::{DownTrack, Forwarded, Incoming, LayerState};
use super::fan_out::FanOut;
use super::header_extensions::IncomingExtensions;
use super::keyframe_requester::KeyframeRequester;
use super::layer_rates::LayerRates;
use super::layer_selector::{LayerSet, MAX_LAYERS};
use super::packet_cache::{PacketCache, VIDEO_SLOTS};
use super::red::{self, RedHistory};
use super::retransmission::NotResent;
use crate::egress::Egress;
use crate::stats::MediaCounters;

/// A forwarded packet's largest size: an MTU-sized packet, our header extensions, the
/// SRTP tag, with room to spare.
pub const SEND_BUFFER_BYTES: usize = 1600;
/// What a forwarded packet costs beyond its payload: RTP header, extensions, SRTP tag.
const PACKET_OVERHEAD: usize = 40;
/// A layer with no packet for this long counts as stopped: subscribers move off it.
const LAYER_TIMEOUT_MICROS: u64 = 600_000;

/// What a layer's packets are read with, fixed when its reader starts
/// ([`PublishedTrack::start_layer`]).
#[derive(Debug, Clone)]
pub struct LayerInput {
    pub layer: u8,
    pub ssrc: u32,
    video: Option<VideoCodec>,
    extensions: IncomingExtensions,
    codecs: Vec<RTCRtpCodecParameters>,
    /// The RTP clock rate, for the receiver reports' jitter.
    pub clock_rate: u32,
}

impl LayerInput {
    /// A layer whose stream carries `codec` alone, with no header extensions the server
    /// reads (for tests and benchmarks; the server takes them from webrtc-rs).
    pub fn for_codec(layer: u8, ssrc: u32, codec: RTCRtpCodecParameters) -> Self {
        LayerInput {
            layer,
            ssrc,
            video: VideoCodec::from_mime(&codec.capability.mime_type),
            extensions: IncomingExtensions::default(),
            clock_rate: codec.capability.clock_rate,
            codecs: vec![codec],
        }
    }
}

/// One simulcast layer (or the one stream of a track without simulcast).
struct Layer {
    rid: String,
    ssrc: AtomicU32,
    /// Microseconds since the track's creation when its last packet arrived; 0 = never.
    last_packet: AtomicU64,
    bytes: AtomicU64,
    /// Measured by [`PublishedTrack::update_bitrates`].
    bitrate: AtomicU64,
    cache: Option<Mutex<PacketCache>>,
    keyframes: Mutex<KeyframeRequester>,
    has_reader: AtomicBool,
    /// Where this layer's keyframe requests go when it arrives on a connection of its own
    /// (a cascade edge receives each layer of a mirrored track over its own relay); `None`:
    /// the publisher's connection.
    source: Mutex<Option<Weak<RTCPeerConnection>>>,
}

/// webrtc-rs's name for a kind of track.
pub fn rtp_kind_of(kind: TrackKind) -> RTPCodecType {
    match kind {
        TrackKind::Audio => RTPCodecType::Audio,
        TrackKind::Video => RTPCodecType::Video,
    }
}

pub struct PublishedTrack {
    pub info: Track,
    pub publisher_id: String,
    pub mid: String,
    /// The publisher's first negotiated codec for this m-line: what subscribers bind to.
    pub codec: RTCRtpCodecParameters,
    layers: Vec<Layer>,
    created: Instant,
    /// The subscribers.
    fan_out: FanOut,
    extensions: Mutex<IncomingExtensions>,
    publisher_pc: Weak<RTCPeerConnection>,
    pub counters: MediaCounters,
    /// Loudness of an audio track, read from the RFC 6464 header extension.
    pub audio_level: AudioLevelMeter,
    /// Byte totals per layer at the last bitrate updates.
    bitrate_marks: Mutex<LayerRates>,
    closed: CancellationToken,
    /// Muted by its owner or a host: packets are read and dropped, nothing is forwarded.
    muted: AtomicBool,
    /// An audio track's last Opus payloads, for the RED built for subscribers.
    red_history: Option<Mutex<RedHistory>>,
}

/// Names the track (its state is in its counters).
impl std::fmt::Debug for PublishedTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedTrack")
            .field("id", &self.info.id)
            .field("publisher_id", &self.publisher_id)
            .field("mid", &self.mid)
            .finish_non_exhaustive()
    }
}

impl PublishedTrack {
    /// `rids` are the simulcast layers, lowest first (empty without simulcast; see
    /// [`crate::signaling::simulcast_rids`]).
    pub fn new(
        info: Track,
        publisher_id: String,
        mid: String,
        codec: RTCRtpCodecParameters,
        rids: &[String],
        publisher_pc: Weak<RTCPeerConnection>,
    ) -> Self {
        let rids: Vec<String> = if rids.is_empty() {
            vec![String::new()]
        } else {
            rids.iter().take(MAX_LAYERS as usize).cloned().collect()
        };
        let video = info.kind == TrackKind::Video;
        let layers = rids
            .into_iter()
            .map(|rid| Layer {
                rid,
                ssrc: AtomicU32::new(0),
                last_packet: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                bitrate: AtomicU64::new(0),
                cache: video.then(|| Mutex::new(PacketCache::new(VIDEO_SLOTS))),
                keyframes: Mutex::new(KeyframeRequester::default()),
                has_reader: AtomicBool::new(false),
                source: Mutex::new(None),
            })
            .collect();
        let now = Instant::now();
        PublishedTrack {
            info,
            publisher_id,
            mid,
            codec,
            layers,
            created: now,
            fan_out: FanOut::new(video),
            extensions: Mutex::new(IncomingExtensions::default()),
            publisher_pc,
            counters: MediaCounters::default(),
            audio_level: AudioLevelMeter::default(),
            bitrate_marks: Mutex::new(LayerRates::new(now)),
            closed: CancellationToken::new(),
            muted: AtomicBool::new(false),
            red_history: (!video).then(|| Mutex::new(RedHistory::default())),
        }
    }

    /// The track as the protocol describes it, with its current muted state.
    pub fn describe(&self) -> Track {
        Track {
            muted: self.is_muted(),
            ..self.info.clone()
        }
    }

    pub fn is_muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    /// Mutes or unmutes; returns whether the state changed. While muted the readers drop
    /// every packet on arrival (no forwarding, no caching, so no retransmission either).
    /// On unmute every subscriber restarts at the next keyframe (any packet for audio),
    /// continuing its own sequence numbers, and the publisher is asked for keyframes.
    pub async fn set_muted(&self, muted: bool) -> bool {
        if muted {
            return !self.muted.swap(true, Ordering::Relaxed);
        }
        if !self.is_muted() {
            return false;
        }
        // Reset first, then let packets through: no delta frame may slip out before it.
        for down in self.fan_out.snapshot().iter() {
            down.restart_at_keyframe();
        }
        let changed = self.muted.swap(false, Ordering::Relaxed);
        for layer in 0..self.layer_count() {
            self.request_keyframe(layer).await;
        }
        changed
    }

    pub fn rtp_kind(&self) -> RTPCodecType {
        rtp_kind_of(self.info.kind)
    }

    pub fn layer_count(&self) -> u8 {
        self.layers.len() as u8
    }

    /// The rid of each layer, lowest first (one empty rid without simulcast).
    pub fn rids(&self) -> impl Iterator<Item = &str> {
        self.layers.iter().map(|l| l.rid.as_str())
    }

    pub fn layer_of_rid(&self, rid: &str) -> Option<u8> {
        if self.layers.len() == 1 {
            return Some(0);
        }
        self.layers
            .iter()
            .position(|l| l.rid == rid)
            .map(|i| i as u8)
    }

    /// Each layer's bitrate over the last [`crate::media::layer_rates::WINDOW`], as of the
    /// last [`PublishedTrack::update_bitrates`].
    pub fn layer_bitrates(&self) -> Vec<u64> {
        self.layers
            .iter()
            .map(|l| l.bitrate.load(Ordering::Relaxed))
            .collect()
    }

    /// Re-measures each layer's bitrate from the bytes received up to `now`.
    pub fn update_bitrates(&self, now: Instant) {
        let mut totals = [0; MAX_LAYERS as usize];
        for (total, layer) in totals.iter_mut().zip(&self.layers) {
            *total = layer.bytes.load(Ordering::Relaxed);
        }
        let Some(rates) = self.bitrate_marks.lock().update(now, totals) else {
            return;
        };
        for (layer, rate) in self.layers.iter().zip(rates) {
            layer.bitrate.store(rate, Ordering::Relaxed);
        }
    }

    fn micros_since_created(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.created).as_micros() as u64 + 1
    }

    /// The layers whose packets arrived recently.
    pub fn arriving_layers(&self, now: Instant) -> LayerSet {
        let now = self.micros_since_created(now);
        let mut set = LayerSet::default();
        for (i, layer) in self.layers.iter().enumerate() {
            let last = layer.last_packet.load(Ordering::Relaxed);
            if last != 0 && now.saturating_sub(last) < LAYER_TIMEOUT_MICROS {
                set.insert(i as u8);
            }
        }
        set
    }

    /// A copy of this track for the subscriber connection that sends through `egress`.
    pub fn new_down_track(&self, egress: Arc<Egress>) -> Arc<DownTrack> {
        Arc::new(
            DownTrack::new(
                self.info.id.clone(),
                self.publisher_id.clone(),
                self.rtp_kind(),
                self.codec.clone(),
                self.layer_count(),
                egress,
            )
            .with_layer_switch_counter(Arc::clone(&self.counters.layer_switches)),
        )
    }

    pub fn add_down_track(&self, down: Arc<DownTrack>) {
        self.fan_out.add(down);
    }

    pub fn remove_down_track(&self, down: &Arc<DownTrack>) {
        self.fan_out.remove(down);
    }

    /// This track's copy for the subscriber connection that sends through `egress`.
    pub fn down_track_on(&self, egress: &Egress) -> Option<Arc<DownTrack>> {
        self.fan_out.on(egress)
    }

    pub fn subscriber_count(&self) -> usize {
        self.fan_out.len()
    }

    /// The layers some subscriber takes or is heading for (dynacast). The lowest layer is
    /// always kept, so a new subscriber sees a picture at once.
    pub fn needed_layers(&self) -> LayerSet {
        let mut needed = LayerSet::default();
        needed.insert(0);
        let top = self.layer_count().saturating_sub(1);
        for down in self.fan_out.snapshot().iter() {
            needed = needed.union(needed_by(down.layer_state(), top));
        }
        needed
    }

    /// The layers this node's subscribers need to arrive (cascading: what an edge asks the
    /// room's node for, one stream per layer): each one's wish within its bandwidth, and
    /// the layer it is on until it has switched. Empty when no subscriber takes any.
    pub fn demanded_layers(&self) -> LayerSet {
        let top = self.layer_count().saturating_sub(1);
        self.fan_out
            .snapshot()
            .iter()
            .fold(LayerSet::default(), |set, down| {
                set.union(demanded_by(down.layer_state(), top))
            })
    }

    /// How many subscribers receive each layer now (index = layer).
    pub fn receivers_per_layer(&self) -> [usize; MAX_LAYERS as usize] {
        let mut counts = [0; MAX_LAYERS as usize];
        for down in self.fan_out.snapshot().iter() {
            if let Some(slot) = down
                .layer_state()
                .current
                .and_then(|c| counts.get_mut(usize::from(c)))
            {
                *slot += 1;
            }
        }
        counts
    }

    /// Whether the caller may start the reader of `layer` (true once per layer).
    pub fn claim_reader(&self, layer: u8) -> bool {
        self.layers
            .get(usize::from(layer))
            .is_some_and(|l| !l.has_reader.swap(true, Ordering::Relaxed))
    }

    /// Ends forwarding: the reader tasks stop and subscribers get nothing more.
    pub fn close(&self) {
        self.closed.cancel();
        self.fan_out.clear();
    }

    /// Asks the publisher for a keyframe on `layer`, aggregated with the requests of every
    /// other subscriber waiting on it (see [`KeyframeRequester`]).
    pub async fn request_keyframe(&self, layer: u8) {
        if self.info.kind != TrackKind::Video {
            return;
        }
        let Some(this_layer) = self.layers.get(usize::from(layer)) else {
            return;
        };
        let ssrc = this_layer.ssrc.load(Ordering::Relaxed);
        if ssrc == 0 || !this_layer.keyframes.lock().should_send(Instant::now()) {
            return;
        }
        let source = this_layer.source.lock().clone();
        let Some(pc) = source
            .unwrap_or_else(|| self.publisher_pc.clone())
            .upgrade()
        else {
            return;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        if pc.write_rtcp(&[Box::new(pli)]).await.is_ok() {
            MediaCounters::add(&self.counters.plis_sent, 1);
            tracing::debug!(track_id = %self.info.id, layer, ssrc, "keyframe requested");
        }
    }

    /// Answers a subscriber's NACK for the given outgoing sequence numbers from the cache:
    /// each at most once per round trip to that subscriber, within its retransmission
    /// budget. A NACK can list thousands of numbers: once the budget is spent the rest are
    /// only counted.
    pub fn answer_nack(&self, down: &DownTrack, lost: &[u16], now: Instant, buf: &mut Vec<u8>) {
        let c = &self.counters;
        MediaCounters::add(&c.nacks_received, lost.len() as u64);
        let extensions = *self.extensions.lock();
        let video = VideoCodec::from_mime(&self.codec.capability.mime_type);
        let rtt = down.egress().rtt();
        for (i, &out_seq) in lost.iter().enumerate() {
            let rewind = match down.resend(out_seq, rtt, now) {
                Ok(rewind) => rewind,
                Err(NotResent::Duplicate) => {
                    MediaCounters::add(&c.retransmits_refused_duplicate, 1);
                    continue;
                }
                Err(NotResent::Unknown) => {
                    MediaCounters::add(&c.retransmit_misses, 1);
                    continue;
                }
            };
            let cached = self
                .layers
                .get(usize::from(rewind.layer))
                .and_then(|l| l.cache.as_ref())
                .and_then(|cache| cache.lock().get(rewind.in_seq).cloned());
            let Some(packet) = cached else {
                MediaCounters::add(&c.retransmit_misses, 1);
                continue;
            };
            if !down
                .egress()
                .allow_retransmission(packet.payload.len() + PACKET_OVERHEAD)
            {
                MediaCounters::add(&c.retransmits_refused_budget, (lost.len() - i) as u64);
                return;
            }
            let incoming = Incoming {
                packet: &packet,
                layer: rewind.layer,
                arriving: LayerSet::default(),
                is_keyframe: false,
                vp8: vp8_fields(video, &packet),
                extensions,
                codecs: std::slice::from_ref(&self.codec),
                received_at: now,
                redundancy: Default::default(),
            };
            if down.retransmit(&incoming, out_seq, rewind, buf, now) == Forwarded::Sent {
                MediaCounters::add(&c.retransmits, 1);
                MediaCounters::add(&c.retransmit_bytes, packet.payload.len() as u64);
            }
        }
    }

    /// Binds `layer` to the stream webrtc-rs found for it: its SSRC (for keyframe
    /// requests) and the header extensions the publisher negotiated. What it returns is
    /// what both ways of receiving the layer ([`PublishedTrack::run_reader`] and the
    /// connection's fast path, [`crate::ingress`]) read its packets with.
    pub fn start_layer(&self, remote: &TrackRemote, layer: u8) -> Option<LayerInput> {
        let this_layer = self.layers.get(usize::from(layer))?;
        this_layer.ssrc.store(remote.ssrc(), Ordering::Relaxed);
        let params = remote.params();
        let extensions = IncomingExtensions::from_negotiated(&params.header_extensions);
        *self.extensions.lock() = extensions;
        let codec = remote.codec();
        tracing::debug!(track_id = %self.info.id, rid = %crate::untrusted::Untrusted(&this_layer.rid), layer, ssrc = remote.ssrc(), "layer reader started");
        Some(LayerInput {
            layer,
            ssrc: remote.ssrc(),
            video: VideoCodec::from_mime(&codec.capability.mime_type),
            extensions,
            codecs: params.codecs,
            clock_rate: codec.capability.clock_rate,
        })
    }

    /// [`PublishedTrack::start_layer`] for a layer that arrives on a connection of its own,
    /// `pc`, where its keyframe requests go.
    pub fn start_layer_from(
        &self,
        remote: &TrackRemote,
        layer: u8,
        pc: Weak<RTCPeerConnection>,
    ) -> Option<LayerInput> {
        let input = self.start_layer(remote, layer)?;
        if let Some(l) = self.layers.get(usize::from(layer)) {
            *l.source.lock() = Some(pc);
        }
        Some(input)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Reads one layer's RTP from webrtc-rs until the track ends or is closed, forwarding
    /// each packet. Once the connection's fast path has the layer, webrtc-rs gets none of
    /// its packets and this only drains what it had queued.
    pub async fn run_reader(self: Arc<Self>, remote: Arc<TrackRemote>, input: LayerInput) {
        let mut buf = vec![0u8; 1500];
        // Where each subscriber's copy is built: room for a full packet, our header
        // extensions and the SRTP tag, so it never grows.
        let mut scratch = Vec::with_capacity(SEND_BUFFER_BYTES);
        loop {
            let packet = tokio::select! {
                _ = self.closed.cancelled() => break,
                read = remote.read(&mut buf) => match read {
                    Ok((packet, _)) => packet,
                    Err(_) => break,
                },
            };
            let now = Instant::now();
            let wanted = self.receive(packet, &input, now, now, &mut scratch);
            for wanted in wanted.iter() {
                // Throttled inside: a subscriber stuck without a keyframe keeps asking.
                self.request_keyframe(wanted).await;
            }
        }
        tracing::debug!(track_id = %self.info.id, publisher = %self.publisher_id, layer = input.layer, "layer reader ended");
    }

    /// One packet of a layer, which arrived at `received_at`: forwarded to every
    /// subscriber (sent at `now`), then kept for their NACKs. Returns the layers some
    /// subscriber waits for a keyframe of (the caller asks the publisher, without holding
    /// up the packets behind this one). `scratch` is where each subscriber's copy is built
    /// ([`SEND_BUFFER_BYTES`] of capacity, so it never grows).
    pub fn receive(
        &self,
        packet: Packet,
        input: &LayerInput,
        received_at: Instant,
        now: Instant,
        scratch: &mut Vec<u8>,
    ) -> LayerSet {
        if self.muted.load(Ordering::Relaxed) {
            return LayerSet::default();
        }
        let wanted = self.forward(&packet, input, received_at, now, scratch);
        if let Some(cache) = self
            .layers
            .get(usize::from(input.layer))
            .and_then(|l| l.cache.as_ref())
        {
            cache.lock().insert(packet);
        }
        wanted
    }

    /// Notes what `packet` says about its layer (arriving, keyframe, audio level) and
    /// hands it to the fan-out, which sends it to every subscriber at `now`; returns the
    /// layers some subscriber waits for a keyframe of.
    fn forward(
        &self,
        packet: &Packet,
        input: &LayerInput,
        received_at: Instant,
        now: Instant,
        scratch: &mut Vec<u8>,
    ) -> LayerSet {
        let LayerInput {
            layer,
            video,
            extensions,
            ref codecs,
            ..
        } = *input;
        let c = &self.counters;
        MediaCounters::add(&c.packets_in, 1);
        MediaCounters::add(&c.bytes_in, packet.payload.len() as u64);
        if packet.payload.is_empty() {
            // Padding (a browser probing its bandwidth) says nothing about the layer's media:
            // a layer the browser stopped encoding may still carry it, and counting it as
            // arriving would keep its subscribers on a layer that shows nothing.
            MediaCounters::add(&c.dropped_padding, 1);
            return LayerSet::default();
        }
        let is_keyframe = video.is_none_or(|v| v.is_keyframe(&packet.payload));
        if let Some(l) = self.layers.get(usize::from(layer)) {
            if is_keyframe && video.is_some() {
                l.keyframes.lock().on_keyframe();
            }
            l.last_packet
                .store(self.micros_since_created(received_at), Ordering::Relaxed);
            l.bytes.fetch_add(
                (packet.payload.len() + PACKET_OVERHEAD) as u64,
                Ordering::Relaxed,
            );
        }
        if let Some(id) = extensions.audio_level {
            if let Some(ext) = packet.header.extensions.iter().find(|e| e.id == id) {
                if let Some(&byte) = ext.payload.first() {
                    self.audio_level.record(byte & 0x7f);
                }
            }
        }
        // An audio track's plain Opus goes to subscribers with RED behind the payloads
        // before it (kept in the track's ring, pushed once every copy is written).
        let mut history = self
            .red_history
            .as_ref()
            .filter(|_| red::is_opus_pt(packet.header.payload_type, codecs))
            .map(|h| h.lock());
        let timestamp = packet.header.timestamp;
        let incoming = Incoming {
            packet,
            layer,
            arriving: self.arriving_layers(received_at),
            is_keyframe,
            vp8: vp8_fields(video, packet),
            extensions,
            codecs,
            received_at,
            redundancy: history.as_ref().map_or_else(Default::default, |h| {
                h.redundancy_for(timestamp, packet.payload.len())
            }),
        };
        let wanted = self.fan_out.forward(&incoming, now, scratch, c);
        if let Some(history) = history.as_mut() {
            history.push(timestamp, &packet.payload);
        }
        wanted
    }
}

/// What one subscriber needs the publisher to keep sending: the layer it wants (within its
/// bandwidth) and, until it has that one, every layer from the one it is on up to it. The
/// publisher may fail to send the wanted layer (its own bandwidth or CPU), and then the
/// next one down beats staying on the current one, whose picture must not stop meanwhile.
fn needed_by(state: LayerState, top: u8) -> LayerSet {
    let mut needed = LayerSet::default();
    if let (Some(requested), Some(allowed)) = (state.requested, state.allowed) {
        let wanted = requested.min(allowed).min(top);
        let current = state.current.map(|c| c.min(top));
        needed.insert(wanted);
        if let Some(current) = current {
            needed.insert(current);
        }
        for layer in current.unwrap_or(0)..wanted {
            needed.insert(layer);
        }
    }
    needed
}

/// What one subscriber of a mirrored track needs to arrive ([`PublishedTrack::demanded_layers`]):
/// unlike [`needed_by`], not the layers between, which a node mirroring the track does not
/// need to climb (each layer arrives as a stream of its own).
fn demanded_by(state: LayerState, top: u8) -> LayerSet {
    let mut set = LayerSet::default();
    if let (Some(requested), Some(allowed)) = (state.requested, state.allowed) {
        set.insert(requested.min(allowed).min(top));
        if let Some(current) = state.current {
            set.insert(current.min(top));
        }
    }
    set
}

fn vp8_fields(
    video: Option<VideoCodec>,
    packet: &Packet,
) -> Option<roomcast_codec::vp8::DescriptorFields> {
    (video == Some(VideoCodec::Vp8))
        .then(|| roomcast_codec::vp8::descriptor_fields(&packet.payload))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_keeps_the_layer_it_is_on_until_it_has_the_one_it_wants() {
        let state = |requested, allowed, current| LayerState {
            layers: 3,
            requested,
            allowed,
            current,
        };
        // Wants f, still on h (f not arriving yet): both are needed.
        assert_eq!(
            needed_by(state(Some(2), Some(2), Some(1)), 2),
            LayerSet(0b110)
        );
        // Wants f, on q (the publisher sends no f, say for lack of bandwidth): h would do
        // better than q, so all three are needed.
        assert_eq!(
            needed_by(state(Some(2), Some(2), Some(0)), 2),
            LayerSet(0b111)
        );
        // On f: only f.
        assert_eq!(
            needed_by(state(Some(2), Some(2), Some(2)), 2),
            LayerSet(0b100)
        );
        // Going down from f to q: both until q's keyframe.
        assert_eq!(
            needed_by(state(Some(0), Some(2), Some(2)), 2),
            LayerSet(0b101)
        );
        // Bandwidth allows h only, nothing forwarded yet: h and what is below it.
        assert_eq!(needed_by(state(Some(2), Some(1), None), 2), LayerSet(0b011));
        // Off or paused: nothing.
        assert_eq!(needed_by(state(None, Some(2), Some(1)), 2), LayerSet(0));
        assert_eq!(needed_by(state(Some(2), None, None), 2), LayerSet(0));
    }

    #[test]
    fn a_mirror_needs_the_wanted_layer_and_the_current_one_only() {
        let state = |requested, allowed, current| LayerState {
            layers: 3,
            requested,
            allowed,
            current,
        };
        // Wants f, on q: f and q, not h.
        assert_eq!(
            demanded_by(state(Some(2), Some(2), Some(0)), 2),
            LayerSet(0b101)
        );
        // Wants f, bandwidth allows h, nothing yet: h only.
        assert_eq!(
            demanded_by(state(Some(2), Some(1), None), 2),
            LayerSet(0b010)
        );
        // Off or paused: nothing.
        assert_eq!(demanded_by(state(None, Some(2), Some(1)), 2), LayerSet(0));
        assert_eq!(demanded_by(state(Some(2), None, Some(2)), 2), LayerSet(0));
    }

    #[test]
    fn padding_does_not_keep_a_layer_arriving() {
        let rids: Vec<String> = ["q", "h", "f"].iter().map(|r| r.to_string()).collect();
        let track = PublishedTrack::new(
            roomcast_protocol::Track {
                id: "TR_1".into(),
                kind: TrackKind::Video,
                source: roomcast_protocol::TrackSource::Camera,
                simulcast: true,
                muted: false,
            },
            "PA_1".into(),
            "0".into(),
            RTCRtpCodecParameters::default(),
            &rids,
            std::sync::Weak::new(),
        );
        let packet = |payload: &'static [u8]| Packet {
            payload: bytes::Bytes::from_static(payload),
            ..Default::default()
        };
        let mut scratch = Vec::new();
        let vp8 = RTCRtpCodecParameters {
            capability: webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability {
                mime_type: "video/VP8".into(),
                clock_rate: 90_000,
                ..Default::default()
            },
            ..Default::default()
        };
        let layer = |layer| LayerInput::for_codec(layer, 1, vp8.clone());
        let now = Instant::now();
        track.forward(&packet(&[]), &layer(2), now, now, &mut scratch);
        assert_eq!(track.arriving_layers(Instant::now()), LayerSet(0));
        track.forward(&packet(&[0x90, 0, 0]), &layer(0), now, now, &mut scratch);
        assert_eq!(track.arriving_layers(Instant::now()), LayerSet(0b001));
    }

    /// A subscriber NACKing the same packets twice within a round trip gets them once; one
    /// NACKing everything gets no more than its budget. Counted by the server, and counted
    /// again at the subscriber's socket.
    #[test]
    fn nacks_are_answered_once_per_round_trip_and_within_a_budget() {
        use crate::srtp::{SrtpProfile, SrtpSession};
        use std::time::Duration;
        // A receive buffer for the whole burst of retransmissions below (up to 90 packets,
        // sent in one go): the default one holds about as many, and the sink's reader
        // thread may be slow to run on a loaded machine.
        let sink = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("socket");
        let _ = sink.set_recv_buffer_size(1 << 20);
        let local: std::net::SocketAddr = (std::net::Ipv4Addr::LOCALHOST, 0).into();
        sink.bind(&local.into()).expect("bind");
        let sink: std::net::UdpSocket = sink.into();
        let egress = Arc::new(Egress::new(
            roomcast_udp::UdpMux::bind(std::net::Ipv4Addr::LOCALHOST.into(), 0).expect("bind"),
        ));
        let keys = SrtpSession::new(SrtpProfile::AeadAes128Gcm, &[1; 16], &[2; 12]).expect("keys");
        egress.set_route(sink.local_addr().expect("address"), keys);
        let (arrived, arrivals) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            // RTP only: a sender report follows the first packet.
            while let Ok(n) = sink.recv(&mut buf) {
                if !crate::ingress::is_rtcp(&buf[..n]) && arrived.send(()).is_err() {
                    break;
                }
            }
        });
        let codec = RTCRtpCodecParameters {
            capability: webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability {
                mime_type: "video/VP8".into(),
                clock_rate: 90_000,
                ..Default::default()
            },
            payload_type: 96,
            ..Default::default()
        };
        let track = PublishedTrack::new(
            roomcast_protocol::Track {
                id: "TR_1".into(),
                kind: TrackKind::Video,
                source: roomcast_protocol::TrackSource::Camera,
                simulcast: false,
                muted: false,
            },
            "PA_1".into(),
            "0".into(),
            codec.clone(),
            &[],
            std::sync::Weak::new(),
        );
        let down = track.new_down_track(egress);
        down.bind_negotiated("ctx".into(), 7, vec![codec.clone()], &[], None);
        down.activate();
        let t0 = Instant::now();
        let mut buf = Vec::with_capacity(SEND_BUFFER_BYTES);
        let cache = track.layers[0].cache.as_ref().expect("a video cache");
        for seq in 1..=200u16 {
            let mut packet = Packet {
                payload: bytes::Bytes::from(vec![0x10; 1000]),
                ..Default::default()
            };
            packet.header.payload_type = 96;
            packet.header.sequence_number = seq;
            packet.header.timestamp = u32::from(seq) * 3000;
            let incoming = Incoming {
                packet: &packet,
                layer: 0,
                arriving: LayerSet(1),
                is_keyframe: true,
                vp8: None,
                extensions: IncomingExtensions::default(),
                codecs: std::slice::from_ref(&codec),
                received_at: t0,
                redundancy: Default::default(),
            };
            assert_eq!(down.forward(&incoming, &mut buf, t0), Forwarded::Sent);
            cache.lock().insert(packet);
            // One at a time: the sink's buffer is not what this test is about.
            arrivals
                .recv_timeout(Duration::from_secs(5))
                .expect("a packet arrives");
        }
        let wait_for = |n: usize| {
            for _ in 0..n {
                arrivals
                    .recv_timeout(Duration::from_secs(5))
                    .expect("a packet arrives");
            }
            assert!(
                arrivals.recv_timeout(Duration::from_millis(50)).is_err(),
                "no more than {n}"
            );
        };
        wait_for(0);
        let c = &track.counters;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let lost: Vec<u16> = (1..=3).collect();
        track.answer_nack(&down, &lost, t0, &mut buf);
        track.answer_nack(&down, &lost, t0 + Duration::from_millis(50), &mut buf);
        wait_for(3);
        assert_eq!(get(&c.retransmits), 3);
        assert_eq!(get(&c.retransmits_refused_duplicate), 3);
        // After the round trip (100 ms until a receiver report says otherwise): again.
        track.answer_nack(&down, &lost, t0 + Duration::from_millis(150), &mut buf);
        wait_for(3);
        assert_eq!(get(&c.retransmits), 6);
        // Everything, twice over: the budget (32 KiB to start, plus a quarter of the
        // ~200 kB forwarded) holds it to about 80 packets.
        let everything: Vec<u16> = (1..=200).chain(1..=200).collect();
        track.answer_nack(&down, &everything, t0 + Duration::from_secs(1), &mut buf);
        let resent = get(&c.retransmits) - 6;
        assert!((70..=90).contains(&resent), "{resent}");
        assert_eq!(get(&c.retransmits_refused_budget), 400 - resent);
        wait_for(resent as usize);
    }
}
