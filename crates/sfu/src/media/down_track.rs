//! One subscriber's copy of one published track: a webrtc-rs `TrackLocal`, so it is
//! negotiated like any other sender, but whose packets the publisher's reader writes and
//! sends itself through the subscriber connection's [`Egress`]. It rewrites only what the
//! subscriber's connection needs (SSRC, payload type, sequence numbers/timestamps,
//! header-extension ids); the payload is forwarded unchanged.
use std::any::Any;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use parking_lot::Mutex;
use rtcp::sender_report::SenderReport;
use rtp::packet::Packet;
use webrtc::error::{Error as WebRtcError, Result as WebRtcResult};
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTPCodecType,
};
use webrtc::track::track_local::{TrackLocal, TrackLocalContext};

use super::codec_map::same_codec;
use super::header_extensions::{ExtensionList, IncomingExtensions, OutgoingExtensions};
use super::layer_selector::{Decision, LayerSelector, LayerSet};
use super::red::{self, PayloadMode, Redundancy};
use super::retransmission::{NotResent, ResendLog};
use super::rtp_munger::{Munged, Rewind, RtpMunger, SegmentStart, Vp8Ids};
use crate::bandwidth::padding::PADDING_BYTES;
use crate::egress::rtp_header::{write_rtp_header_at, RtpHeader};
use crate::egress::{Egress, Prepared, SendError};
use crate::srtp::RolloverCounter;
use roomcast_codec::vp8::{extend_widened, write_picture_id, DescriptorFields};

/// How often a stream that is sending gets a sender report (RFC 3550 §6.4.1), so the
/// subscriber can sync audio with video and its receiver reports give the round trip.
pub const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What the subscriber's connection negotiated for this track (set by `bind`).
struct Binding {
    context_id: String,
    ssrc: u32,
    codecs: Vec<RTCRtpCodecParameters>,
    extensions: OutgoingExtensions,
}

struct ForwardState {
    /// The same as [`DownTrack::binding`], for the forwarding path (under the lock it takes).
    binding: Option<Arc<Binding>>,
    selector: LayerSelector,
    munger: RtpMunger,
    /// Last (incoming, outgoing) payload type pair and how the payload goes (RED built,
    /// forwarded or stripped), so the lookup runs once per change.
    payload_types: Option<(u8, u8, PayloadMode)>,
    rollover: RolloverCounter,
    sent: SentCounters,
    /// When the next sender report goes out with a forwarded packet; None before the
    /// first, which goes with the first packet.
    report_due: Option<Instant>,
    /// When NACKed packets were last resent; made on the first NACK.
    resent: Option<Box<ResendLog>>,
    /// The last packet forwarded ended a frame: padding may go in after it.
    at_frame_end: bool,
    /// The outgoing sequence number of the keyframe the current layer started at.
    layer_start: Option<u16>,
}

impl ForwardState {
    fn new(layers: u8) -> Self {
        ForwardState {
            binding: None,
            selector: LayerSelector::new(layers),
            munger: RtpMunger::default(),
            payload_types: None,
            rollover: RolloverCounter::default(),
            sent: SentCounters::default(),
            report_due: None,
            resent: None,
            at_frame_end: false,
            layer_start: None,
        }
    }
}

/// What a sender report says about the stream.
#[derive(Default, Clone, Copy)]
struct SentCounters {
    packets: u32,
    payload_octets: u32,
    /// The latest packet's outgoing timestamp and when its original arrived.
    last: Option<(u32, Instant)>,
}

/// Everything the publisher's side knows about a packet that a down track needs.
pub struct Incoming<'a> {
    pub packet: &'a Packet,
    /// The simulcast layer it belongs to (0 without simulcast).
    pub layer: u8,
    /// The layers the publisher is sending now.
    pub arriving: LayerSet,
    /// Whether forwarding may start or switch layers here: the first packet of a keyframe
    /// (video), or any packet (audio).
    pub is_keyframe: bool,
    /// Where the VP8 ids are in the payload, for VP8.
    pub vp8: Option<DescriptorFields>,
    pub extensions: IncomingExtensions,
    pub codecs: &'a [RTCRtpCodecParameters],
    pub received_at: Instant,
    /// The track's earlier Opus payloads, for subscribers that get RED built (empty for
    /// video, and where the publisher sends RED itself).
    pub redundancy: Redundancy<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    Sent,
    /// Video starts (and changes layer) at a keyframe of `layer`; until it comes, packets
    /// of other layers are not forwarded (those of the current layer are).
    WaitingForKeyframe {
        layer: u8,
    },
    /// Not the layer this subscriber takes now, or the track is off or paused for it.
    NotSelected,
    /// Not bound yet, or the subscriber has not applied the offer declaring it.
    NotBound,
    /// Negotiated, but DTLS has not finished yet.
    NotConnected,
    /// The subscriber did not negotiate the publisher's codec.
    NoCodec,
    /// A reordered packet from before forwarding started.
    TooOld,
    WriteFailed,
}

pub struct DownTrack {
    track_id: String,
    publisher_id: String,
    kind: RTPCodecType,
    /// The publisher's codec, answered from `bind` so interceptors see the right one.
    codec: RTCRtpCodecParameters,
    egress: Arc<Egress>,
    binding: ArcSwapOption<Binding>,
    /// Nothing is sent until the subscriber has applied the description that declares
    /// this track ([`DownTrack::activate`]).
    active: std::sync::atomic::AtomicBool,
    layers: u8,
    state: Mutex<ForwardState>,
    /// The last [`Forwarded`] outcome of each layer's packets, a small code per byte, for
    /// logging its changes.
    last_outcome: std::sync::atomic::AtomicU32,
    /// Set after the first failed write, so a broken subscriber is logged once.
    write_failed: std::sync::atomic::AtomicBool,
    /// Whether RED sent on this track carries earlier payloads, or only the primary: the
    /// subscriber's allocator allows redundancy from headroom only
    /// ([`DownTrack::set_redundancy`]).
    redundancy: std::sync::atomic::AtomicBool,
    /// Counts switches to another simulcast layer (shared with the published track's
    /// counters, see [`DownTrack::with_layer_switch_counter`]).
    layer_switches: Arc<AtomicU64>,
}

impl DownTrack {
    pub fn new(
        track_id: String,
        publisher_id: String,
        kind: RTPCodecType,
        codec: RTCRtpCodecParameters,
        layers: u8,
        egress: Arc<Egress>,
    ) -> Self {
        DownTrack {
            track_id,
            publisher_id,
            kind,
            codec,
            egress,
            binding: ArcSwapOption::empty(),
            active: std::sync::atomic::AtomicBool::new(false),
            layers,
            state: Mutex::new(ForwardState::new(layers)),
            last_outcome: std::sync::atomic::AtomicU32::new(0),
            write_failed: std::sync::atomic::AtomicBool::new(false),
            redundancy: std::sync::atomic::AtomicBool::new(true),
            layer_switches: Arc::default(),
        }
    }

    /// Counts this track's layer switches in `counter` (the published track's
    /// `layer_switches`) instead of a counter of its own.
    pub fn with_layer_switch_counter(mut self, counter: Arc<AtomicU64>) -> Self {
        self.layer_switches = counter;
        self
    }

    pub fn track_id(&self) -> &str {
        &self.track_id
    }

    /// The SSRC the subscriber receives this track on (0 before binding).
    pub fn ssrc(&self) -> u32 {
        self.binding.load().as_ref().map_or(0, |b| b.ssrc)
    }

    /// The subscriber connection this track is sent on.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    pub fn publisher_id(&self) -> &str {
        &self.publisher_id
    }

    pub fn is_video(&self) -> bool {
        self.kind == RTPCodecType::Video
    }

    /// The subscriber's answer to the offer that declared this track has been applied:
    /// sending may start (video at a keyframe, which the forwarding path asks the
    /// publisher for). webrtc-rs may start the sender, and so bind this track, before: a
    /// reused transceiver's new sender starts when we answer a client offer that lists the
    /// m-line. A client that has not applied our offer does not know the new SSRC: browsers
    /// find the track by its mid, webrtc-rs clients do not (they probe the unknown stream
    /// for simulcast ids, close it, and the track never arrives).
    pub fn activate(&self) {
        self.active
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets the most this subscriber wants (`set_quality`); `None` is off.
    pub fn set_requested(&self, layer: Option<u8>) {
        self.set_limit(
            "requested",
            layer,
            LayerSelector::set_requested,
            LayerSelector::requested,
        );
    }

    /// Sets what the subscriber's bandwidth allows; `None` pauses the track.
    pub fn set_allowed(&self, layer: Option<u8>) {
        self.set_limit(
            "allowed",
            layer,
            LayerSelector::set_allowed,
            LayerSelector::allowed,
        );
    }

    /// Sets one of the selector's limits with `set`, and logs (at debug) when that changed
    /// what `get` reads.
    fn set_limit(
        &self,
        limit: &'static str,
        layer: Option<u8>,
        set: fn(&mut LayerSelector, Option<u8>),
        get: fn(&LayerSelector) -> Option<u8>,
    ) {
        let mut state = self.state.lock();
        let before = get(&state.selector);
        set(&mut state.selector, layer);
        let after = get(&state.selector);
        drop(state);
        if after != before {
            tracing::debug!(track_id = %self.track_id, ssrc = self.ssrc(), limit, layer = ?after, "layer limit changed");
        }
    }

    /// Forgets the layer being forwarded, so forwarding restarts at the next keyframe (any
    /// packet for audio) as a new segment: used when a muted track resumes.
    pub fn restart_at_keyframe(&self) {
        self.state.lock().selector.restart();
    }

    /// Whether the subscriber's connection negotiated a codec that can carry `codec`'s
    /// packets; `None` until bound.
    pub fn takes_codec(&self, codec: &RTCRtpCodecParameters) -> Option<bool> {
        let binding = self.binding.load();
        Some(
            binding
                .as_ref()?
                .codecs
                .iter()
                .any(|c| same_codec(codec, c)),
        )
    }

    /// The MIME types the subscriber's connection negotiated for this track's kind (none
    /// until bound).
    pub fn negotiated_mime_types(&self) -> Vec<String> {
        let mut types: Vec<String> = Vec::new();
        for codec in self.binding.load().iter().flat_map(|b| b.codecs.iter()) {
            if !types.contains(&codec.capability.mime_type) {
                types.push(codec.capability.mime_type.clone());
            }
        }
        types
    }

    /// (requested, allowed, current) layers.
    pub fn layer_state(&self) -> LayerState {
        let state = self.state.lock();
        LayerState {
            layers: self.layers,
            requested: state.selector.requested(),
            allowed: state.selector.allowed(),
            current: state.selector.current(),
        }
    }

    /// The layer being forwarded and the outgoing sequence number of the keyframe it
    /// started at: packets from that one on are that layer.
    pub fn layer_start(&self) -> Option<(u8, u16)> {
        let state = self.state.lock();
        Some((state.selector.current()?, state.layer_start?))
    }

    /// Rewrites `incoming` for this subscriber into `buf` and sends it at `now`, with a
    /// sender report behind it when one is due. `buf` is the caller's reusable buffer, so
    /// the steady state allocates nothing here.
    pub fn forward(&self, incoming: &Incoming<'_>, buf: &mut Vec<u8>, now: Instant) -> Forwarded {
        let outcome = match self.prepare_reporting(incoming, buf) {
            Ok((packet, report)) => {
                let outcome = self.send(&packet, buf, now);
                if let (Forwarded::Sent, Some(sent)) = (outcome, report) {
                    self.send_report(sent, now, buf);
                }
                outcome
            }
            Err(not_sent) => not_sent,
        };
        self.note_outcome(outcome, incoming.layer);
        outcome
    }

    /// Logs (at debug) when this track's packets of a layer start or stop going out, and
    /// why. Kept per layer: while a switch waits for the target's keyframe, the current
    /// layer's packets go out between the others', which wait.
    fn note_outcome(&self, outcome: Forwarded, layer: u8) {
        let code: u32 = match outcome {
            Forwarded::NotSelected => 0,
            Forwarded::Sent => 1,
            Forwarded::WaitingForKeyframe { .. } => 2,
            Forwarded::NotBound => 3,
            Forwarded::NotConnected => 4,
            Forwarded::NoCodec => 5,
            Forwarded::TooOld => 6,
            Forwarded::WriteFailed => 7,
        };
        let shift = 8 * u32::from(layer.min(3));
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let changed = self.last_outcome.fetch_update(relaxed, relaxed, |codes| {
            ((codes >> shift) & 0xff != code)
                .then_some((codes & !(0xff << shift)) | (code << shift))
        });
        if changed.is_ok() {
            tracing::debug!(track_id = %self.track_id, ssrc = self.ssrc(), layer, ?outcome, "forwarding outcome changed");
        }
    }

    /// The per-packet decision and rewrite, without the send: whether this subscriber gets
    /// the packet, and if so its header and payload written into `buf`.
    pub fn prepare(
        &self,
        incoming: &Incoming<'_>,
        buf: &mut Vec<u8>,
    ) -> Result<Prepared, Forwarded> {
        self.prepare_reporting(incoming, buf)
            .map(|(packet, _)| packet)
    }

    /// [`DownTrack::prepare`], and the counters for a sender report when one is due (every
    /// [`SENDER_REPORT_INTERVAL`] while packets go out, starting with the first).
    fn prepare_reporting(
        &self,
        incoming: &Incoming<'_>,
        buf: &mut Vec<u8>,
    ) -> Result<(Prepared, Option<SentCounters>), Forwarded> {
        if !self.active.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Forwarded::NotBound);
        }
        if !self.egress.is_connected() {
            return Err(Forwarded::NotConnected);
        }
        let src = incoming.packet;
        let mut guard = self.state.lock();
        // The binding is read from the state already locked (one atomic operation less per
        // copy than its `ArcSwap`), so the lock is held through `write`.
        let state = &mut *guard;
        let Some(binding) = state.binding.as_deref() else {
            return Err(Forwarded::NotBound);
        };
        let in_pt = src.header.payload_type;
        let mapped = match state.payload_types {
            Some((from, to, mode)) if from == in_pt => Some((to, mode)),
            _ => {
                red::map_payload(in_pt, incoming.codecs, &binding.codecs).inspect(|&(to, mode)| {
                    state.payload_types = Some((in_pt, to, mode));
                })
            }
        };
        if let Some((_, PayloadMode::ForwardRed { .. } | PayloadMode::StripRed)) = mapped {
            if red::primary(&src.payload).is_none() {
                return Err(Forwarded::NoCodec);
            }
        }
        let mut layer_switched = false;
        match state
            .selector
            .on_packet(incoming.layer, incoming.is_keyframe, incoming.arriving)
        {
            Decision::Drop => {
                return Err(match state.selector.wants_keyframe(incoming.arriving) {
                    Some(layer) => Forwarded::WaitingForKeyframe { layer },
                    None => Forwarded::NotSelected,
                });
            }
            Decision::Forward { switched: true } => {
                layer_switched = state.selector.layer_count() > 1;
                if state.munger.is_started() {
                    self.layer_switches
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                state.munger.start_segment(SegmentStart {
                    layer: incoming.layer,
                    seq: src.header.sequence_number,
                    ts: src.header.timestamp,
                    vp8: vp8_ids(incoming.vp8),
                    at: incoming.received_at,
                    clock_rate: self.codec.capability.clock_rate,
                });
            }
            Decision::Forward { switched: false } => {}
        }
        let Some(munged) = state.munger.munge(
            src.header.sequence_number,
            src.header.timestamp,
            vp8_ids(incoming.vp8),
            incoming.received_at,
        ) else {
            return Err(Forwarded::TooOld);
        };
        let Some((out_pt, mode)) = mapped else {
            return Err(Forwarded::NoCodec);
        };
        state.at_frame_end = src.header.marker;
        if layer_switched {
            state.layer_start = Some(munged.sequence_number);
        }
        let sent = &mut state.sent;
        sent.packets = sent.packets.wrapping_add(1);
        // A 7-bit picture id goes out one byte wider (`write`).
        let widened = incoming
            .vp8
            .is_some_and(|f| matches!(f.picture_id, Some((_, _, false))));
        sent.payload_octets = sent
            .payload_octets
            .wrapping_add(src.payload.len() as u32 + u32::from(widened));
        sent.last = Some((munged.timestamp, incoming.received_at));
        let at = incoming.received_at;
        let report = state.report_due.is_none_or(|due| at >= due).then(|| {
            state.report_due = Some(at + SENDER_REPORT_INTERVAL);
            state.sent
        });
        let roc = state.rollover.roc_for(munged.sequence_number);
        let packet = self.write(binding, incoming, munged, (out_pt, mode), roc, buf, false);
        drop(guard);
        if layer_switched {
            self.egress.layer_switched.notify_one();
        }
        Ok((packet, report))
    }

    /// Sends the sender report of `sent` at `now` behind the packet just forwarded, reusing
    /// its buffer. A report that cannot go is not retried: the next is a second away.
    fn send_report(&self, sent: SentCounters, now: Instant, buf: &mut Vec<u8>) {
        if let Some(report) = self.report_of(sent, now, SystemTime::now()) {
            let _ = self.egress.send_rtcp_packet(&report, buf);
        }
    }

    /// Sends `count` padding-only packets (a bandwidth probe, see `bandwidth/prober.rs`) on
    /// this video stream, numbered after the last packet forwarded, if that ended a frame
    /// or the stream is paused (padding inside a frame would split it). Returns how many
    /// went out.
    pub fn send_padding(&self, count: usize, buf: &mut Vec<u8>, now: Instant) -> usize {
        let binding = self.binding.load();
        let Some(binding) = binding.as_ref() else {
            return 0;
        };
        if count == 0 || !self.is_video() || !binding.extensions.has_transport_cc() {
            return 0;
        }
        let (first, timestamp, payload_type) = {
            let mut state = self.state.lock();
            let Some((_, payload_type, _)) = state.payload_types else {
                return 0;
            };
            // A paused stream's last frame stays unfinished: its next packet starts a keyframe.
            if !state.at_frame_end && state.selector.current().is_some() {
                return 0;
            }
            let Some((first, ts)) = state.munger.pad(count as u16) else {
                return 0;
            };
            (first, ts, payload_type)
        };
        let no_extensions = rtp::header::Header::default();
        let mut sent = 0;
        for i in 0..count {
            let sequence_number = first.wrapping_add(i as u16);
            let roc = self.state.lock().rollover.roc_for(sequence_number);
            // The egress numbers it for transport-cc as it sends it.
            let transport_seq = [0, 0];
            let mut extensions: ExtensionList = [(0, &[]); 4];
            let n = binding.extensions.collect(
                Default::default(),
                &no_extensions,
                &transport_seq,
                &mut extensions,
            );
            let header = RtpHeader {
                marker: false,
                payload_type,
                sequence_number,
                timestamp,
                ssrc: binding.ssrc,
                csrc: &[],
            };
            let (header_len, last_value_at) = write_rtp_header_at(buf, &header, &extensions[..n]);
            buf[0] |= 0x20; // P: the payload is all padding
            buf.resize(header_len + PADDING_BYTES, 0);
            buf[header_len + PADDING_BYTES - 1] = PADDING_BYTES as u8;
            let packet = Prepared {
                header_len,
                // Transport-cc is the last element (send_padding needs it negotiated).
                transport_seq_at: last_value_at,
                ssrc: binding.ssrc,
                sequence_number,
                roc,
                // Padding is not media: it earns no retransmission budget either.
                resend: true,
            };
            if self.send(&packet, buf, now) != Forwarded::Sent {
                break;
            }
            sent += 1;
        }
        sent
    }

    /// Decides whether to resend the packet the subscriber NACKed as `out_seq`: not if it
    /// was resent less than `rtt` ago (the first copy may still be on its way), and only if
    /// it is known which packet that was (the layer and publisher sequence number behind
    /// it). [`DownTrack::retransmit`] records the resend.
    pub fn resend(&self, out_seq: u16, rtt: Duration, now: Instant) -> Result<Rewind, NotResent> {
        let state = self.state.lock();
        if let Some(log) = &state.resent {
            if log.recently_resent(out_seq, rtt, now) {
                return Err(NotResent::Duplicate);
            }
        }
        state.munger.rewind(out_seq).ok_or(NotResent::Unknown)
    }

    /// Sends a cached packet again at `now` (a NACK answer), numbered as it was the first
    /// time, and logs when.
    pub fn retransmit(
        &self,
        incoming: &Incoming<'_>,
        out_seq: u16,
        rewind: Rewind,
        buf: &mut Vec<u8>,
        now: Instant,
    ) -> Forwarded {
        let binding = self.binding.load();
        let Some(binding) = binding.as_ref() else {
            return Forwarded::NotBound;
        };
        let src = incoming.packet;
        let (out_pt, roc) = {
            let mut state = self.state.lock();
            let Some((from, to, mode)) = state.payload_types else {
                return Forwarded::TooOld;
            };
            if from != src.header.payload_type {
                return Forwarded::NoCodec;
            }
            state
                .resent
                .get_or_insert_with(|| Box::new(ResendLog::new(now)))
                .record(out_seq, now);
            ((to, mode), state.rollover.roc_for(out_seq))
        };
        let munged = rewind.munged(out_seq, src.header.timestamp, vp8_ids(incoming.vp8));
        let packet = self.write(binding, incoming, munged, out_pt, roc, buf, true);
        self.send(&packet, buf, now)
    }

    /// Writes the outgoing header and the payload into `buf`, with room for the
    /// transport-wide sequence number the egress gives it.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        binding: &Binding,
        incoming: &Incoming<'_>,
        munged: Munged,
        (payload_type, mode): (u8, PayloadMode),
        roc: u32,
        buf: &mut Vec<u8>,
        resend: bool,
    ) -> Prepared {
        let src = incoming.packet;
        let transport_seq = [0, 0];
        let mut extensions: ExtensionList = [(0, &[]); 4];
        let n = binding.extensions.collect(
            incoming.extensions,
            &src.header,
            &transport_seq,
            &mut extensions,
        );
        let header = RtpHeader {
            marker: src.header.marker,
            payload_type,
            sequence_number: munged.sequence_number,
            timestamp: munged.timestamp,
            ssrc: binding.ssrc,
            csrc: &src.header.csrc,
        };
        let (header_len, last_value_at) = write_rtp_header_at(buf, &header, &extensions[..n]);
        let mut vp8 = incoming.vp8;
        match mode {
            // Renumbered picture ids go out in 15 bits, whatever width they came in.
            PayloadMode::Plain => match vp8 {
                Some(fields) => vp8 = Some(extend_widened(buf, &src.payload, fields)),
                None => buf.extend_from_slice(&src.payload),
            },
            PayloadMode::BuildRed { opus_pt } if self.redundancy_allowed() => {
                red::write_red(buf, opus_pt, incoming.redundancy, &src.payload)
            }
            PayloadMode::BuildRed { opus_pt } => {
                red::write_red(buf, opus_pt, Default::default(), &src.payload)
            }
            PayloadMode::ForwardRed { opus_pt } if self.redundancy_allowed() => {
                buf.extend_from_slice(&src.payload);
                // Checked well-formed by `prepare` (a retransmission was, when first sent).
                red::set_block_payload_types(&mut buf[header_len..], opus_pt);
            }
            PayloadMode::ForwardRed { opus_pt } => red::write_red(
                buf,
                opus_pt,
                Default::default(),
                red::primary(&src.payload).unwrap_or_default(),
            ),
            PayloadMode::StripRed => {
                buf.extend_from_slice(red::primary(&src.payload).unwrap_or_default())
            }
        }
        if let Some(fields) = vp8 {
            rewrite_vp8_ids(&mut buf[header_len..], fields, munged.vp8);
        }
        Prepared {
            header_len,
            // Transport-cc is the last element when negotiated.
            transport_seq_at: last_value_at.filter(|_| binding.extensions.has_transport_cc()),
            ssrc: binding.ssrc,
            sequence_number: munged.sequence_number,
            roc,
            resend,
        }
    }

    /// Sends a packet [`DownTrack::prepare`] wrote, at `now`, through the connection's
    /// egress.
    pub fn send(&self, packet: &Prepared, buf: &mut Vec<u8>, now: Instant) -> Forwarded {
        match self.egress.send(packet, buf, now) {
            Ok(()) => Forwarded::Sent,
            Err(SendError::NotConnected) => Forwarded::NotConnected,
            Err(e) => {
                if !self
                    .write_failed
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(track_id = %self.track_id, ssrc = packet.ssrc, error = ?e, "cannot send to subscriber");
                }
                Forwarded::WriteFailed
            }
        }
    }

    /// Takes what the subscriber's connection negotiated for this track; `bind` calls it,
    /// and so can tests and benchmarks that have no connection.
    pub fn bind_negotiated(
        &self,
        context_id: String,
        ssrc: u32,
        codecs: Vec<RTCRtpCodecParameters>,
        header_extensions: &[RTCRtpHeaderExtensionParameters],
        mid: Option<&str>,
    ) {
        let binding = Arc::new(Binding {
            context_id,
            ssrc,
            extensions: OutgoingExtensions::from_negotiated(header_extensions, mid),
            codecs,
        });
        let mut state = self.state.lock();
        self.binding.store(Some(Arc::clone(&binding)));
        let selector = state.selector.clone();
        *state = ForwardState::new(self.layers);
        state.binding = Some(binding);
        // The subscriber's wishes survive a re-bind; the stream restarts at a keyframe.
        state.selector.set_requested(selector.requested());
        state.selector.set_allowed(selector.allowed());
    }

    /// Takes over the stream `previous` sent on the same sender (a switch of source without
    /// renegotiation): the next packet continues its sequence numbers, timestamps, VP8 ids,
    /// SRTP rollover and sender-report counts. Call after binding, before forwarding.
    pub fn continue_from(&self, previous: &DownTrack) {
        let (munger, rollover, sent) = {
            let p = previous.state.lock();
            (p.munger.continuation(), p.rollover, p.sent)
        };
        let mut state = self.state.lock();
        state.munger = munger;
        state.rollover = rollover;
        state.sent = sent;
    }

    /// An RTCP sender report for this stream (RFC 3550 §6.4.1), once something was sent:
    /// the RTP timestamp that corresponds to `now`, extrapolated from the latest packet.
    pub fn sender_report(&self, now: Instant, wall: SystemTime) -> Option<SenderReport> {
        let sent = self.state.lock().sent;
        self.report_of(sent, now, wall)
    }

    fn report_of(
        &self,
        sent: SentCounters,
        now: Instant,
        wall: SystemTime,
    ) -> Option<SenderReport> {
        let ssrc = self.ssrc();
        let (last_ts, last_at) = sent.last?;
        if ssrc == 0 {
            return None;
        }
        let elapsed = now.saturating_duration_since(last_at).as_secs_f64();
        let ticks = (elapsed * f64::from(self.codec.capability.clock_rate)) as u32;
        Some(SenderReport {
            ssrc,
            ntp_time: ntp_time(wall),
            rtp_time: last_ts.wrapping_add(ticks),
            packet_count: sent.packets,
            octet_count: sent.payload_octets,
            ..Default::default()
        })
    }
}

/// One subscriber's layer situation for one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerState {
    pub layers: u8,
    pub requested: Option<u8>,
    pub allowed: Option<u8>,
    pub current: Option<u8>,
}

fn vp8_ids(fields: Option<DescriptorFields>) -> Vp8Ids {
    let fields = fields.unwrap_or_default();
    Vp8Ids {
        picture_id: fields.picture_id.map(|(_, id, _)| id),
        tl0_pic_idx: fields.tl0_pic_idx.map(|(_, idx)| idx),
    }
}

/// Writes the rewritten VP8 ids over the copied payload's own.
fn rewrite_vp8_ids(payload: &mut [u8], fields: DescriptorFields, ids: Vp8Ids) {
    if let (Some((at, _, long)), Some(id)) = (fields.picture_id, ids.picture_id) {
        write_picture_id(payload, at, id, long);
    }
    if let (Some((at, _)), Some(idx)) = (fields.tl0_pic_idx, ids.tl0_pic_idx) {
        if let Some(byte) = payload.get_mut(at) {
            *byte = idx;
        }
    }
}

/// 64-bit NTP time: seconds since 1900 and a 32-bit fraction.
pub(crate) fn ntp_time(wall: SystemTime) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let since_unix = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_unix.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

impl DownTrack {
    /// Lets RED on this track carry earlier payloads (`true`, the start) or only the primary.
    pub fn set_redundancy(&self, on: bool) {
        self.redundancy
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn redundancy_allowed(&self) -> bool {
        self.redundancy.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl TrackLocal for DownTrack {
    /// Never refuses a codec: an error here fails webrtc-rs's whole `set_remote_description`
    /// and leaves every sender after this one unstarted (`start_rtp_senders` stops at the
    /// first error). Neither side of the comparison is per m-line anyway: webrtc-rs
    /// negotiates one codec list per connection (`ctx.codec_parameters()` is that list), and
    /// `self.codec` is only the first codec of the publisher connection's list, which need
    /// not be the one its track sends (an H.264 publisher that first answered an offer with
    /// VP8 in it shows VP8 first). The payload type that goes out is decided per packet from
    /// the codec the packet really carries (`map_payload_type`); a subscriber without that
    /// codec gets nothing and the track counts `dropped_no_codec`.
    async fn bind(&self, ctx: &TrackLocalContext) -> WebRtcResult<RTCRtpCodecParameters> {
        let codecs = ctx.codec_parameters().to_vec();
        let chosen = match codecs.iter().find(|c| same_codec(&self.codec, c)) {
            Some(c) => c.clone(),
            None => {
                let first = codecs
                    .first()
                    .cloned()
                    .ok_or(WebRtcError::ErrUnsupportedCodec)?;
                tracing::debug!(
                    track_id = %self.track_id,
                    publisher_codec = %self.codec.capability.mime_type,
                    negotiated = ?codecs.iter().map(|c| c.payload_type).collect::<Vec<_>>(),
                    "publisher's first codec not negotiated by the subscriber; payload types are mapped per packet"
                );
                first
            }
        };
        let mid = ctx.mid();
        let red = codecs.iter().any(red::is_red);
        tracing::debug!(track_id = %self.track_id, ssrc = ctx.ssrc(), mid = ?mid, pt = chosen.payload_type, red, "down track bound");
        self.bind_negotiated(
            ctx.id(),
            ctx.ssrc(),
            codecs,
            ctx.header_extensions(),
            mid.as_deref(),
        );
        Ok(chosen)
    }

    async fn unbind(&self, ctx: &TrackLocalContext) -> WebRtcResult<()> {
        let id = ctx.id();
        let mut state = self.state.lock();
        self.binding
            .rcu(|b| b.as_ref().filter(|b| b.context_id != id).cloned());
        if state.binding.as_ref().is_some_and(|b| b.context_id == id) {
            state.binding = None;
        }
        Ok(())
    }

    fn id(&self) -> &str {
        &self.track_id
    }

    fn rid(&self) -> Option<&str> {
        None
    }

    fn stream_id(&self) -> &str {
        &self.publisher_id
    }

    fn kind(&self) -> RTPCodecType {
        self.kind
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::header_extensions::IncomingExtensions;
    use crate::media::layer_selector::LayerSet;
    use crate::srtp::{SrtpProfile, SrtpSession};
    use bytes::Bytes;
    use std::net::UdpSocket;
    use webrtc::api::media_engine::MIME_TYPE_VP8;
    use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
    use webrtc::sdp::extmap::TRANSPORT_CC_URI;

    #[test]
    fn nothing_is_sent_until_the_subscriber_has_applied_the_offer() {
        let mux =
            roomcast_udp::UdpMux::bind(std::net::Ipv4Addr::LOCALHOST.into(), 0).expect("binds");
        let egress = Arc::new(Egress::new(mux));
        let srtp =
            SrtpSession::new(SrtpProfile::AeadAes128Gcm, &[3; 16], &[4; 12]).expect("srtp keys");
        egress.set_route("127.0.0.1:9".parse().expect("address"), srtp);
        let mut opus = RTCRtpCodecParameters::default();
        opus.capability.mime_type = "audio/opus".into();
        opus.capability.clock_rate = 48_000;
        opus.payload_type = 111;
        let down = DownTrack::new(
            "TR_1".into(),
            "PA_1".into(),
            RTPCodecType::Audio,
            opus.clone(),
            1,
            egress,
        );
        // Bound (webrtc-rs started the sender), connected, but not yet declared.
        down.bind_negotiated("ctx".into(), 0x1234, vec![opus.clone()], &[], Some("0"));
        let mut packet = Packet::default();
        packet.header.version = 2;
        packet.header.payload_type = 111;
        packet.payload = bytes::Bytes::from_static(&[1, 2, 3, 4]);
        let codecs = [opus];
        let incoming = Incoming {
            packet: &packet,
            layer: 0,
            arriving: LayerSet::all(1),
            is_keyframe: true,
            vp8: None,
            extensions: IncomingExtensions::default(),
            codecs: &codecs,
            received_at: Instant::now(),
            redundancy: Default::default(),
        };
        let mut buf = Vec::with_capacity(1500);
        assert_eq!(
            down.prepare(&incoming, &mut buf).err(),
            Some(Forwarded::NotBound)
        );
        assert_eq!(down.sender_report(Instant::now(), SystemTime::now()), None);
        down.activate();
        let prepared = down
            .prepare(&incoming, &mut buf)
            .expect("sent once declared");
        assert_eq!(prepared.ssrc, 0x1234);
    }

    /// A subscriber that negotiated RED gets the publisher's Opus as RED, with the track's
    /// earlier payloads; one that did not gets it plain, and a publisher's RED stripped.
    #[test]
    fn opus_goes_as_red_where_negotiated_and_red_is_stripped_where_not() {
        let codec = |pt: u8, mime: &str| {
            let mut c = RTCRtpCodecParameters::default();
            c.capability.mime_type = mime.into();
            c.capability.clock_rate = 48_000;
            c.payload_type = pt;
            c
        };
        let opus = codec(111, "audio/opus");
        let sub = |codecs: Vec<RTCRtpCodecParameters>| {
            let mux =
                roomcast_udp::UdpMux::bind(std::net::Ipv4Addr::LOCALHOST.into(), 0).expect("binds");
            let egress = Arc::new(Egress::new(mux));
            let srtp = SrtpSession::new(SrtpProfile::AeadAes128Gcm, &[3; 16], &[4; 12])
                .expect("srtp keys");
            egress.set_route("127.0.0.1:9".parse().expect("address"), srtp);
            let down = DownTrack::new(
                "TR_1".into(),
                "PA_1".into(),
                RTPCodecType::Audio,
                opus.clone(),
                1,
                egress,
            );
            down.bind_negotiated("ctx".into(), 0x1234, codecs, &[], Some("0"));
            down.activate();
            down
        };
        let with_red = sub(vec![codec(109, "audio/opus"), codec(100, "audio/red")]);
        let plain = sub(vec![opus.clone()]);
        let publisher = [opus.clone(), codec(63, "audio/red")];
        let mut history = super::red::RedHistory::default();
        history.push(0, b"one");
        history.push(960, b"two");
        let mut packet = Packet::default();
        packet.header.version = 2;
        packet.header.payload_type = 111;
        packet.header.timestamp = 1920;
        packet.payload = bytes::Bytes::from_static(b"three");
        let mut buf = Vec::with_capacity(1500);
        let send = |down: &DownTrack, packet: &Packet, buf: &mut Vec<u8>| {
            buf.clear();
            let incoming = Incoming {
                packet,
                layer: 0,
                arriving: LayerSet::all(1),
                is_keyframe: true,
                vp8: None,
                extensions: IncomingExtensions::default(),
                codecs: &publisher,
                received_at: Instant::now(),
                redundancy: history.redundancy_for(packet.header.timestamp, packet.payload.len()),
            };
            let prepared = down.prepare(&incoming, buf).expect("sent");
            (buf[1] & 0x7f, buf[prepared.header_len..].to_vec())
        };
        let (pt, payload) = send(&with_red, &packet, &mut buf);
        assert_eq!(pt, 100);
        let mut expected = vec![0x80 | 109, 0x1e, 0, 0x03, 0x80 | 109, 0x0f, 0, 0x03, 109];
        expected.extend_from_slice(b"onetwothree");
        assert_eq!(payload, expected, "offsets 1920 and 960, lengths 3");
        assert_eq!(send(&plain, &packet, &mut buf), (111, b"three".to_vec()));
        // Short of bandwidth, the allocator takes the redundancy away: RED, primary only.
        with_red.set_redundancy(false);
        let (pt, payload) = send(&with_red, &packet, &mut buf);
        assert_eq!((pt, payload[0]), (100, 109));
        assert_eq!(&payload[1..], b"three");
        with_red.set_redundancy(true);
        // The publisher sends RED itself: forwarded with the subscriber's Opus type inside,
        // or stripped to its primary.
        let mut publisher_red = vec![0x80 | 111, 0x0f, 0, 0x03, 111];
        publisher_red.extend_from_slice(b"twothree");
        packet.header.payload_type = 63;
        packet.payload = bytes::Bytes::from(publisher_red);
        let (pt, payload) = send(&with_red, &packet, &mut buf);
        assert_eq!(pt, 100);
        assert_eq!(&payload[..5], &[0x80 | 109, 0x0f, 0, 0x03, 109]);
        assert_eq!(send(&plain, &packet, &mut buf), (111, b"three".to_vec()));
        with_red.set_redundancy(false);
        let (pt, payload) = send(&with_red, &packet, &mut buf);
        assert_eq!((pt, payload[0], &payload[1..]), (100, 109, &b"three"[..]));
    }

    /// A bound VP8 down track of `layers` simulcast layers sending (SRTP, headers in the
    /// clear) to `sink`.
    fn bound(sink: &UdpSocket, layers: u8) -> DownTrack {
        let mux = roomcast_udp::UdpMux::bind(std::net::Ipv4Addr::LOCALHOST.into(), 0)
            .expect("bind media socket");
        let egress = Arc::new(Egress::new(mux));
        let srtp =
            SrtpSession::new(SrtpProfile::AeadAes128Gcm, &[3; 16], &[4; 12]).expect("srtp keys");
        egress.set_route(sink.local_addr().expect("sink address"), srtp);
        let codec = RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90_000,
                ..Default::default()
            },
            payload_type: 96,
            ..Default::default()
        };
        let down = DownTrack::new(
            "TR_1".into(),
            "PA_1".into(),
            RTPCodecType::Video,
            codec.clone(),
            layers,
            egress,
        );
        let transport_cc = RTCRtpHeaderExtensionParameters {
            uri: TRANSPORT_CC_URI.to_owned(),
            id: 3,
        };
        down.bind_negotiated("ctx".into(), 0x1234, vec![codec], &[transport_cc], None);
        down.activate();
        down
    }

    /// (sequence number, padding bit, payload type) of the next RTP datagram on `sink`;
    /// RTCP (the sender reports) is passed over.
    fn receive(sink: &UdpSocket) -> (u16, bool, u8) {
        let mut buf = [0u8; 1500];
        loop {
            let n = sink.recv(&mut buf).expect("a packet");
            assert!(n >= 12, "{n} bytes");
            if !crate::ingress::is_rtcp(&buf[..n]) {
                return (
                    u16::from_be_bytes([buf[2], buf[3]]),
                    buf[0] & 0x20 != 0,
                    buf[1] & 0x7f,
                );
            }
        }
    }

    /// A socket to receive on (reads time out after 5 s), a bound single-layer VP8 down
    /// track sending to it, and a VP8 keyframe packet for it.
    fn sink_and_vp8_track() -> (UdpSocket, DownTrack, Packet) {
        let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
        sink.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let down = bound(&sink, 1);
        let mut packet = Packet::default();
        packet.header.version = 2;
        packet.header.payload_type = 96;
        packet.payload = Bytes::from_static(&[0x10, 0x00, 0x9d, 0x01, 0x2a]);
        (sink, down, packet)
    }

    /// A sender report goes out behind the first packet, then behind the first packet
    /// of each later second, with the counts of what was sent up to and including it.
    #[test]
    fn a_sender_report_follows_the_first_packet_and_then_one_each_second() {
        use webrtc::util::Unmarshal;
        let (sink, down, mut packet) = sink_and_vp8_track();
        let codecs = [down.codec.clone()];
        packet.header.marker = true;
        let t0 = Instant::now();
        let mut buf = Vec::new();
        for (i, ms) in [0u64, 400, 800, 1_000, 1_500, 1_999, 2_100]
            .into_iter()
            .enumerate()
        {
            packet.header.sequence_number = 100 + i as u16;
            packet.header.timestamp = 3_000 * i as u32;
            let at = t0 + Duration::from_millis(ms);
            let incoming = Incoming {
                packet: &packet,
                layer: 0,
                arriving: LayerSet::all(1),
                is_keyframe: i == 0,
                vp8: None,
                extensions: Default::default(),
                codecs: &codecs,
                received_at: at,
                redundancy: Default::default(),
            };
            assert_eq!(down.forward(&incoming, &mut buf, at), Forwarded::Sent);
        }
        let keys =
            SrtpSession::new(SrtpProfile::AeadAes128Gcm, &[3; 16], &[4; 12]).expect("srtp keys");
        let mut seen = Vec::new();
        let mut datagram = [0u8; 1500];
        while seen.len() < 10 {
            let n = sink.recv(&mut datagram).expect("a datagram");
            if datagram[1] != 200 {
                seen.push(format!(
                    "rtp {}",
                    u16::from_be_bytes([datagram[2], datagram[3]])
                ));
                continue;
            }
            let len = keys.unprotect_rtcp(&mut datagram[..n]).expect("decrypts");
            let report = SenderReport::unmarshal(&mut &datagram[..len]).expect("a sender report");
            assert_eq!(report.ssrc, 0x1234);
            seen.push(format!("sr {} packets", report.packet_count));
        }
        assert_eq!(
            seen,
            [
                "rtp 100",
                "sr 1 packets",
                "rtp 101",
                "rtp 102",
                "rtp 103",
                "sr 4 packets",
                "rtp 104",
                "rtp 105",
                "rtp 106",
                "sr 7 packets"
            ]
            .map(String::from)
        );
    }

    #[test]
    fn padding_goes_between_frames_numbered_in_sequence_with_the_media() {
        let (sink, down, mut packet) = sink_and_vp8_track();
        let codecs = [down.codec.clone()];
        packet.header.sequence_number = 100;
        let mut buf = Vec::new();
        let mut forward = |seq: u16, marker: bool, keyframe: bool| {
            packet.header.sequence_number = seq;
            packet.header.marker = marker;
            let incoming = Incoming {
                packet: &packet,
                layer: 0,
                arriving: LayerSet::all(1),
                is_keyframe: keyframe,
                vp8: None,
                extensions: Default::default(),
                codecs: &codecs,
                received_at: Instant::now(),
                redundancy: Default::default(),
            };
            assert_eq!(
                down.forward(&incoming, &mut buf, Instant::now()),
                Forwarded::Sent
            );
        };
        let mut pad = Vec::new();
        assert_eq!(
            down.send_padding(2, &mut pad, Instant::now()),
            0,
            "nothing forwarded yet"
        );
        forward(100, false, true);
        assert_eq!(receive(&sink), (100, false, 96));
        assert_eq!(
            down.send_padding(2, &mut pad, Instant::now()),
            0,
            "inside a frame"
        );
        forward(101, true, false);
        assert_eq!(receive(&sink), (101, false, 96));
        assert_eq!(
            down.send_padding(2, &mut pad, Instant::now()),
            2,
            "after the frame's last packet"
        );
        assert_eq!(receive(&sink), (102, true, 96));
        assert_eq!(receive(&sink), (103, true, 96));
        forward(102, false, false);
        assert_eq!(
            receive(&sink),
            (104, false, 96),
            "the media continues after"
        );
        let resend = |seq| down.resend(seq, Duration::from_millis(100), Instant::now());
        assert_eq!(
            resend(103).map(|r| r.in_seq),
            Err(NotResent::Unknown),
            "padding is never resent"
        );
        assert_eq!(resend(104).map(|r| r.in_seq), Ok(102));
    }

    /// webrtc-rs and pion number a stream's first 128 pictures in 7 bits, then in 15. A
    /// switch to a layer whose ids are behind renumbers them forward; past 127 they must
    /// go out in 15 bits, or the id wraps to 0 and the subscriber (Chromium) drops every
    /// frame until the next keyframe as older than the last it decoded.
    #[test]
    fn picture_ids_run_on_when_a_renumbered_7_bit_id_passes_127() {
        let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
        let down = bound(&sink, 2);
        let codecs = [down.codec.clone()];
        let mut out_ids = Vec::new();
        let mut buf = Vec::new();
        let mut send = |layer: u8, seq: u16, picture_id: u16, keyframe: bool| {
            let mut payload = vec![0x90, 0x80];
            if picture_id < 128 {
                payload.push(picture_id as u8);
            } else {
                payload.extend_from_slice(&(0x8000 | picture_id).to_be_bytes());
            }
            // A VP8 frame tag: a 320x180 keyframe, or an interframe.
            let tag = if keyframe { 0x00 } else { 0x01 };
            payload.extend_from_slice(&[tag, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00]);
            let mut packet = Packet::default();
            packet.header.version = 2;
            packet.header.payload_type = 96;
            packet.header.sequence_number = seq;
            packet.header.timestamp = u32::from(seq) * 3000;
            packet.header.marker = true;
            packet.payload = Bytes::from(payload);
            let incoming = Incoming {
                packet: &packet,
                layer,
                arriving: LayerSet::all(2),
                is_keyframe: keyframe,
                vp8: roomcast_codec::vp8::descriptor_fields(&packet.payload),
                extensions: Default::default(),
                codecs: &codecs,
                received_at: Instant::now(),
                redundancy: Default::default(),
            };
            buf.clear();
            if let Ok(prepared) = down.prepare(&incoming, &mut buf) {
                let fields = roomcast_codec::vp8::descriptor_fields(&buf[prepared.header_len..]);
                out_ids.push(fields.and_then(|f| f.picture_id).map(|(_, id, _)| id));
            }
        };
        // Layer 0 from its keyframe, picture ids 40..=50; layer 1's are 30 behind.
        for id in 40..=50 {
            send(0, 1000 + id, id, id == 40);
        }
        for id in 21..=150 {
            send(1, 5000 + id, id, id == 21);
            send(0, 1000 + id + 30, id + 30, false);
        }
        let expected: Vec<_> = (40..=50).chain(51..=180).map(Some).collect();
        assert_eq!(
            out_ids, expected,
            "one picture id after another, across 127"
        );
    }
}
