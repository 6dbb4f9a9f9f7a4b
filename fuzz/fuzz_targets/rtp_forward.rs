//! A publisher's RTP stream through one down track's per-packet work: parse, keyframe
//! detection, layer selection, renumbering, header extensions and the VP8 descriptor
//! rewrite into a send buffer, then a NACK's rewind.
//!
//! Input: one setup byte, then records of `[length, layer, flags, elapsed ms]` followed by
//! `length` bytes of RTP packet.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use roomcast_codec::{vp8, VideoCodec};
use roomcast_sfu::egress::rtp_header::{write_rtp_header, RtpHeader};
use roomcast_sfu::media::header_extensions::{
    ExtensionList, IncomingExtensions, OutgoingExtensions,
};
use roomcast_sfu::media::layer_selector::{Decision, LayerSelector, LayerSet};
use roomcast_sfu::media::rtp_munger::{RtpMunger, SegmentStart, Vp8Ids};
use rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpHeaderExtensionParameters;
use webrtc::sdp::extmap::{AUDIO_LEVEL_URI, SDES_MID_URI, TRANSPORT_CC_URI};
use webrtc::util::Unmarshal;

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let codec = if setup & 0x80 != 0 {
        VideoCodec::H264
    } else {
        VideoCodec::Vp8
    };
    let mut selector = LayerSelector::new(setup & 0x03);
    let mut munger = RtpMunger::default();
    let incoming_ids = IncomingExtensions {
        audio_level: Some(1 + (setup >> 2 & 0x0f)),
        video_orientation: Some(3),
    };
    let ext = |uri: &str, id: isize| RTCRtpHeaderExtensionParameters {
        uri: uri.into(),
        id,
    };
    let outgoing = OutgoingExtensions::from_negotiated(
        &[
            ext(SDES_MID_URI, 4),
            ext(AUDIO_LEVEL_URI, 1),
            ext(TRANSPORT_CC_URI, isize::from(setup)),
        ],
        Some("0"),
    );
    let mut now = Instant::now();
    let mut buf = Vec::with_capacity(1500);
    let mut transport_seq = 0u16;
    while let [len, layer, flags, elapsed, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (raw, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_millis(u64::from(*elapsed));
        let Ok(packet) = Packet::unmarshal(&mut &raw[..]) else {
            continue;
        };
        let fields = match codec {
            VideoCodec::Vp8 => vp8::descriptor_fields(&packet.payload),
            VideoCodec::H264 => None,
        };
        let ids = Vp8Ids {
            picture_id: fields.and_then(|f| f.picture_id).map(|(_, id, _)| id),
            tl0_pic_idx: fields.and_then(|f| f.tl0_pic_idx).map(|(_, t)| t),
        };
        let keyframe = codec.is_keyframe(&packet.payload) || flags & 0x01 != 0;
        let layer = layer & 0x07;
        match selector.on_packet(layer, keyframe, LayerSet(flags >> 1)) {
            Decision::Drop => {
                let _ = selector.wants_keyframe(LayerSet(flags >> 1));
                continue;
            }
            Decision::Forward { switched: true } => munger.start_segment(SegmentStart {
                layer,
                seq: packet.header.sequence_number,
                ts: packet.header.timestamp,
                vp8: ids,
                at: now,
                clock_rate: 90_000,
            }),
            Decision::Forward { switched: false } => {}
        }
        let Some(munged) = munger.munge(
            packet.header.sequence_number,
            packet.header.timestamp,
            ids,
            now,
        ) else {
            continue;
        };
        transport_seq = transport_seq.wrapping_add(1);
        let seq_bytes = transport_seq.to_be_bytes();
        let mut list: ExtensionList = [(0, &[]); 4];
        let n = outgoing.collect(incoming_ids, &packet.header, &seq_bytes, &mut list);
        let header = RtpHeader {
            marker: packet.header.marker,
            payload_type: packet.header.payload_type,
            sequence_number: munged.sequence_number,
            timestamp: munged.timestamp,
            ssrc: 0x1234_5678,
            csrc: &packet.header.csrc,
        };
        let header_len = write_rtp_header(&mut buf, &header, &list[..n]);
        buf.extend_from_slice(&packet.payload);
        let payload = &mut buf[header_len..];
        if let Some(f) = fields {
            if let (Some((at, _, long)), Some(id)) = (f.picture_id, munged.vp8.picture_id) {
                vp8::write_picture_id(payload, at, id, long);
            }
            if let (Some((at, _)), Some(idx)) = (f.tl0_pic_idx, munged.vp8.tl0_pic_idx) {
                if let Some(byte) = payload.get_mut(at) {
                    *byte = idx;
                }
            }
        }
        assert!(
            rtp::header::Header::unmarshal(&mut &buf[..]).is_ok(),
            "the written header parses"
        );
        // A NACK for this packet, and one for some other number.
        if let Some(rewind) = munger.rewind(munged.sequence_number) {
            assert_eq!(
                rewind.munged(munged.sequence_number, packet.header.timestamp, ids),
                munged
            );
        }
        let _ = munger.rewind(munged.sequence_number.wrapping_sub(u16::from(*elapsed)));
    }
});
