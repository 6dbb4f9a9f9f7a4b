//! One subscriber's copy of one published track: a webrtc-rs `TrackLocal` that the
//! publisher's reader writes into. It rewrites only what the subscriber's connection needs
//! (SSRC, payload type, sequence numbers/timestamps, header-extension ids); the payload is
//! forwarded unchanged and shared, not copied.
use std::any::Any;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use parking_lot::Mutex;
use rtp::packet::Packet;
use webrtc::error::{Error as WebRtcError, Result as WebRtcResult};
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecParameters, RTPCodecType};
use webrtc::track::track_local::{TrackLocal, TrackLocalContext, TrackLocalWriter};

use super::codec_map::{map_payload_type, same_codec};
use super::header_extensions::{IncomingExtensions, OutgoingExtensions};
use super::rtp_munger::RtpMunger;

/// What the subscriber's connection negotiated for this track (set by `bind`).
struct Binding {
    context_id: String,
    ssrc: u32,
    codecs: Vec<RTCRtpCodecParameters>,
    extensions: OutgoingExtensions,
    writer: Arc<dyn TrackLocalWriter + Send + Sync>,
}

#[derive(Default)]
struct ForwardState {
    munger: RtpMunger,
    /// Last (incoming, outgoing) payload type pair, so the lookup runs once per change.
    payload_types: Option<(u8, u8)>,
}

/// Everything the publisher's side knows about a packet that a down track needs.
pub struct Incoming<'a> {
    pub packet: &'a Packet,
    pub is_keyframe: bool,
    pub extensions: IncomingExtensions,
    pub codecs: &'a [RTCRtpCodecParameters],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    Sent,
    /// Video starts at a keyframe; deltas before it would not decode.
    WaitingForKeyframe,
    /// Not bound yet (negotiation still running) or sending is paused.
    NotBound,
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
    binding: ArcSwapOption<Binding>,
    state: Mutex<ForwardState>,
    /// Set after the first failed write, so a broken subscriber is logged once.
    write_failed: std::sync::atomic::AtomicBool,
}

impl DownTrack {
    pub fn new(
        track_id: String,
        publisher_id: String,
        kind: RTPCodecType,
        codec: RTCRtpCodecParameters,
    ) -> Self {
        DownTrack {
            track_id,
            publisher_id,
            kind,
            codec,
            binding: ArcSwapOption::empty(),
            state: Mutex::new(ForwardState::default()),
            write_failed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn track_id(&self) -> &str {
        &self.track_id
    }

    /// The SSRC the subscriber receives this track on (0 before binding).
    pub fn ssrc(&self) -> u32 {
        self.binding.load().as_ref().map_or(0, |b| b.ssrc)
    }

    pub fn is_waiting_for_keyframe(&self) -> bool {
        self.kind == RTPCodecType::Video && !self.state.lock().munger.is_started()
    }

    /// Rewrites `incoming` into `scratch` and sends it. `scratch` is the caller's reusable
    /// packet, so the steady state allocates nothing here.
    pub async fn forward(&self, incoming: &Incoming<'_>, scratch: &mut Packet) -> Forwarded {
        let Some(binding) = self.binding.load_full() else {
            return Forwarded::NotBound;
        };
        let src = incoming.packet;
        {
            let mut state = self.state.lock();
            if !state.munger.is_started() {
                if self.kind == RTPCodecType::Video && !incoming.is_keyframe {
                    return Forwarded::WaitingForKeyframe;
                }
                state.munger.start(
                    src.header.sequence_number,
                    src.header.timestamp,
                    src.header.sequence_number,
                    src.header.timestamp,
                );
            }
            let Some(munged) = state
                .munger
                .munge(src.header.sequence_number, src.header.timestamp)
            else {
                return Forwarded::TooOld;
            };
            let in_pt = src.header.payload_type;
            let out_pt = match state.payload_types {
                Some((from, to)) if from == in_pt => to,
                _ => match map_payload_type(in_pt, incoming.codecs, &binding.codecs) {
                    Some(to) => {
                        state.payload_types = Some((in_pt, to));
                        to
                    }
                    None => return Forwarded::NoCodec,
                },
            };
            rewrite_header(
                src,
                scratch,
                binding.ssrc,
                out_pt,
                munged.sequence_number,
                munged.timestamp,
            );
            binding
                .extensions
                .rewrite(incoming.extensions, &src.header, &mut scratch.header);
            scratch.payload = src.payload.clone();
        }
        match binding.writer.write_rtp(scratch).await {
            Ok(_) => Forwarded::Sent,
            Err(e) => {
                if !self
                    .write_failed
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(track_id = %self.track_id, ssrc = binding.ssrc, error = %e, "cannot send to subscriber");
                }
                Forwarded::WriteFailed
            }
        }
    }

    /// The publisher's sequence number behind one this subscriber NACKed.
    pub fn publisher_seq(&self, out_seq: u16) -> Option<u16> {
        self.state.lock().munger.incoming_seq(out_seq)
    }

    /// Sends a cached packet again (a NACK answer). Allocates; retransmissions are rare.
    pub async fn retransmit(&self, incoming: &Incoming<'_>) -> Forwarded {
        let mut scratch = Packet::default();
        let Some(binding) = self.binding.load_full() else {
            return Forwarded::NotBound;
        };
        let src = incoming.packet;
        {
            let state = self.state.lock();
            let (Some(munged), Some((from, to))) = (
                state
                    .munger
                    .munge(src.header.sequence_number, src.header.timestamp),
                state.payload_types,
            ) else {
                return Forwarded::TooOld;
            };
            if from != src.header.payload_type {
                return Forwarded::NoCodec;
            }
            rewrite_header(
                src,
                &mut scratch,
                binding.ssrc,
                to,
                munged.sequence_number,
                munged.timestamp,
            );
            binding
                .extensions
                .rewrite(incoming.extensions, &src.header, &mut scratch.header);
            scratch.payload = src.payload.clone();
        }
        match binding.writer.write_rtp(&scratch).await {
            Ok(_) => Forwarded::Sent,
            Err(_) => Forwarded::WriteFailed,
        }
    }
}

fn rewrite_header(src: &Packet, out: &mut Packet, ssrc: u32, pt: u8, seq: u16, ts: u32) {
    let h = &mut out.header;
    h.version = 2;
    h.padding = false;
    h.marker = src.header.marker;
    h.payload_type = pt;
    h.sequence_number = seq;
    h.timestamp = ts;
    h.ssrc = ssrc;
    h.csrc.clear();
    h.csrc.extend_from_slice(&src.header.csrc);
}

#[async_trait]
impl TrackLocal for DownTrack {
    async fn bind(&self, ctx: &TrackLocalContext) -> WebRtcResult<RTCRtpCodecParameters> {
        let codecs = ctx.codec_parameters().to_vec();
        let chosen = codecs
            .iter()
            .find(|c| same_codec(&self.codec, c))
            .cloned()
            .ok_or(WebRtcError::ErrUnsupportedCodec)?;
        let mid = ctx.mid();
        tracing::debug!(track_id = %self.track_id, ssrc = ctx.ssrc(), mid = ?mid, pt = chosen.payload_type, "down track bound");
        self.binding.store(Some(Arc::new(Binding {
            context_id: ctx.id(),
            ssrc: ctx.ssrc(),
            extensions: OutgoingExtensions::from_negotiated(
                ctx.header_extensions(),
                mid.as_deref(),
            ),
            codecs,
            writer: ctx.write_stream(),
        })));
        *self.state.lock() = ForwardState::default();
        Ok(chosen)
    }

    async fn unbind(&self, ctx: &TrackLocalContext) -> WebRtcResult<()> {
        let id = ctx.id();
        self.binding
            .rcu(|b| b.as_ref().filter(|b| b.context_id != id).cloned());
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
