//! Which RTP header extensions survive forwarding, and under which ids.
//!
//! Each PeerConnection negotiates its own extension ids, so a forwarded packet's
//! extensions are rebuilt for the subscriber: audio level and video orientation are
//! carried over (renumbered), `mid` is set to the subscriber's m-line, and everything that
//! describes the publisher's own hop (transport-cc, abs-send-time, rid) is dropped;
//! transport-cc is added again by the subscriber connection's own interceptor.
use bytes::Bytes;
use rtp::header::{Extension, Header};
use webrtc::rtp_transceiver::rtp_codec::RTCRtpHeaderExtensionParameters;
use webrtc::sdp::extmap::{AUDIO_LEVEL_URI, SDES_MID_URI, VIDEO_ORIENTATION_URI};

const ONE_BYTE_PROFILE: u16 = 0xBEDE;
const TWO_BYTE_PROFILE: u16 = 0x1000;

fn id_of(extensions: &[RTCRtpHeaderExtensionParameters], uri: &str) -> Option<u8> {
    extensions
        .iter()
        .find(|e| e.uri == uri)
        .and_then(|e| u8::try_from(e.id).ok())
        .filter(|id| *id != 0)
}

/// The ids a publisher's packets carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IncomingExtensions {
    pub audio_level: Option<u8>,
    pub video_orientation: Option<u8>,
}

impl IncomingExtensions {
    pub fn from_negotiated(extensions: &[RTCRtpHeaderExtensionParameters]) -> Self {
        IncomingExtensions {
            audio_level: id_of(extensions, AUDIO_LEVEL_URI),
            video_orientation: id_of(extensions, VIDEO_ORIENTATION_URI),
        }
    }
}

/// The ids a subscriber negotiated, and the `mid` value of its m-line.
#[derive(Debug, Clone, Default)]
pub struct OutgoingExtensions {
    mid: Option<(u8, Bytes)>,
    audio_level: Option<u8>,
    video_orientation: Option<u8>,
}

impl OutgoingExtensions {
    pub fn from_negotiated(
        extensions: &[RTCRtpHeaderExtensionParameters],
        mid: Option<&str>,
    ) -> Self {
        OutgoingExtensions {
            mid: id_of(extensions, SDES_MID_URI)
                .zip(mid.map(|m| Bytes::copy_from_slice(m.as_bytes()))),
            audio_level: id_of(extensions, AUDIO_LEVEL_URI),
            video_orientation: id_of(extensions, VIDEO_ORIENTATION_URI),
        }
    }

    /// Rebuilds `out`'s extensions from `incoming`'s. Reuses `out`'s vector, so forwarding
    /// allocates nothing once the vector has grown to size.
    pub fn rewrite(&self, ids: IncomingExtensions, incoming: &Header, out: &mut Header) {
        out.extensions.clear();
        if let Some((id, mid)) = &self.mid {
            out.extensions.push(Extension {
                id: *id,
                payload: mid.clone(),
            });
        }
        for (from, to) in [
            (ids.audio_level, self.audio_level),
            (ids.video_orientation, self.video_orientation),
        ] {
            if let (Some(from), Some(to)) = (from, to) {
                if let Some(ext) = incoming.extensions.iter().find(|e| e.id == from) {
                    out.extensions.push(Extension {
                        id: to,
                        payload: ext.payload.clone(),
                    });
                }
            }
        }
        out.extension = !out.extensions.is_empty();
        let fits_one_byte = out
            .extensions
            .iter()
            .all(|e| e.id <= 14 && (1..=16).contains(&e.payload.len()));
        out.extension_profile = if fits_one_byte {
            ONE_BYTE_PROFILE
        } else {
            TWO_BYTE_PROFILE
        };
        // The rtp crate keeps the true padding to a 32-bit boundary here and updates it
        // incrementally when an interceptor adds an extension (transport-cc does); a wrong
        // value makes the packet's size disagree with its encoding and the send fails.
        out.extensions_padding = (4 - out.get_extension_payload_len() % 4) % 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::sdp::extmap::TRANSPORT_CC_URI;

    fn ext(uri: &str, id: isize) -> RTCRtpHeaderExtensionParameters {
        RTCRtpHeaderExtensionParameters {
            uri: uri.into(),
            id,
        }
    }

    #[test]
    fn renumbers_audio_level_sets_mid_and_drops_transport_cc() {
        let incoming_ids = IncomingExtensions::from_negotiated(&[
            ext(AUDIO_LEVEL_URI, 1),
            ext(TRANSPORT_CC_URI, 3),
        ]);
        let out_ids = OutgoingExtensions::from_negotiated(
            &[ext(SDES_MID_URI, 4), ext(AUDIO_LEVEL_URI, 10)],
            Some("7"),
        );
        let mut incoming = Header::default();
        incoming
            .set_extension(1, Bytes::from_static(&[0x85]))
            .unwrap();
        incoming
            .set_extension(3, Bytes::from_static(&[0, 1]))
            .unwrap();
        let mut out = Header::default();
        out_ids.rewrite(incoming_ids, &incoming, &mut out);
        assert!(out.extension);
        assert_eq!(out.extension_profile, ONE_BYTE_PROFILE);
        assert_eq!(out.get_extension(4).as_deref(), Some(&b"7"[..]));
        assert_eq!(out.get_extension(10).as_deref(), Some(&[0x85][..]));
        assert_eq!(out.get_extension(3), None);
        assert_eq!(out.extensions.len(), 2);
    }

    #[test]
    fn packet_still_marshals_after_transport_cc_is_added_for_any_mid_length() {
        use rtp::packet::Packet;
        use webrtc::util::{Marshal, MarshalSize};
        let incoming_ids = IncomingExtensions::from_negotiated(&[ext(AUDIO_LEVEL_URI, 1)]);
        let mut incoming = Header::default();
        incoming
            .set_extension(1, Bytes::from_static(&[0x85]))
            .unwrap();
        for mid in ["1", "10", "100", "1000"] {
            let out_ids = OutgoingExtensions::from_negotiated(
                &[ext(SDES_MID_URI, 4), ext(AUDIO_LEVEL_URI, 1)],
                Some(mid),
            );
            let mut packet = Packet::default();
            packet.header.version = 2;
            packet.payload = Bytes::from_static(&[1, 2, 3]);
            out_ids.rewrite(incoming_ids, &incoming, &mut packet.header);
            // What webrtc-rs's transport-cc interceptor does to every outgoing packet.
            packet
                .header
                .set_extension(3, Bytes::from_static(&[0, 7]))
                .unwrap();
            let bytes = packet
                .marshal()
                .unwrap_or_else(|e| panic!("mid {mid}: {e}"));
            assert_eq!(bytes.len(), packet.marshal_size(), "mid {mid}");
        }
    }

    #[test]
    fn no_extensions_means_no_extension_bit() {
        let mut out = Header::default();
        OutgoingExtensions::default().rewrite(
            IncomingExtensions::default(),
            &Header::default(),
            &mut out,
        );
        assert!(!out.extension);
    }
}
