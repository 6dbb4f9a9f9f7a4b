//! Which RTP header extensions survive forwarding, and under which ids.
//!
//! Each PeerConnection negotiates its own extension ids, so a forwarded packet's
//! extensions are rebuilt for the subscriber: audio level and video orientation are
//! carried over (renumbered), `mid` is set to the subscriber's m-line, and everything that
//! describes the publisher's own hop (transport-cc, abs-send-time, rid) is dropped;
//! transport-cc is added again with the subscriber connection's own numbering.
use bytes::Bytes;
use rtp::header::Header;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpHeaderExtensionParameters;
use webrtc::sdp::extmap::{AUDIO_LEVEL_URI, SDES_MID_URI, TRANSPORT_CC_URI, VIDEO_ORIENTATION_URI};

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
    transport_cc: Option<u8>,
}

/// Extension elements of one outgoing packet: (id, value), at most four.
pub type ExtensionList<'a> = [(u8, &'a [u8]); 4];

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
            transport_cc: id_of(extensions, TRANSPORT_CC_URI),
        }
    }

    /// Whether packets carry a transport-wide sequence number (the subscriber's transport-cc
    /// feedback needs it).
    pub fn has_transport_cc(&self) -> bool {
        self.transport_cc.is_some()
    }

    /// Fills `out` with the extensions of the packet forwarded from `incoming`; returns how
    /// many. `transport_seq` is this packet's transport-wide sequence number, big-endian.
    pub fn collect<'a>(
        &'a self,
        ids: IncomingExtensions,
        incoming: &'a Header,
        transport_seq: &'a [u8; 2],
        out: &mut ExtensionList<'a>,
    ) -> usize {
        let mut n = 0;
        if let Some((id, mid)) = &self.mid {
            out[n] = (*id, &mid[..]);
            n += 1;
        }
        for (from, to) in [
            (ids.audio_level, self.audio_level),
            (ids.video_orientation, self.video_orientation),
        ] {
            if let (Some(from), Some(to)) = (from, to) {
                if let Some(ext) = incoming.extensions.iter().find(|e| e.id == from) {
                    out[n] = (to, &ext.payload[..]);
                    n += 1;
                }
            }
        }
        if let Some(id) = self.transport_cc {
            out[n] = (id, &transport_seq[..]);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::rtp_header::{write_rtp_header, RtpHeader};
    use webrtc::util::Unmarshal;

    fn ext(uri: &str, id: isize) -> RTCRtpHeaderExtensionParameters {
        RTCRtpHeaderExtensionParameters {
            uri: uri.into(),
            id,
        }
    }

    fn forwarded(
        out_ids: &OutgoingExtensions,
        in_ids: IncomingExtensions,
        incoming: &Header,
    ) -> Header {
        let mut list: ExtensionList = [(0, &[]); 4];
        let n = out_ids.collect(in_ids, incoming, &[0x12, 0x34], &mut list);
        let mut buf = Vec::new();
        let fields = RtpHeader {
            marker: false,
            payload_type: 111,
            sequence_number: 1,
            timestamp: 2,
            ssrc: 3,
            csrc: &[],
        };
        write_rtp_header(&mut buf, &fields, &list[..n]);
        Header::unmarshal(&mut &buf[..]).expect("valid header")
    }

    #[test]
    fn renumbers_audio_level_sets_mid_and_replaces_transport_cc() {
        let incoming_ids = IncomingExtensions::from_negotiated(&[
            ext(AUDIO_LEVEL_URI, 1),
            ext(TRANSPORT_CC_URI, 3),
        ]);
        let out_ids = OutgoingExtensions::from_negotiated(
            &[
                ext(SDES_MID_URI, 4),
                ext(AUDIO_LEVEL_URI, 10),
                ext(TRANSPORT_CC_URI, 5),
            ],
            Some("7"),
        );
        let mut incoming = Header::default();
        incoming
            .set_extension(1, Bytes::from_static(&[0x85]))
            .unwrap();
        incoming
            .set_extension(3, Bytes::from_static(&[0, 1]))
            .unwrap();
        let out = forwarded(&out_ids, incoming_ids, &incoming);
        assert_eq!(out.get_extension(4).as_deref(), Some(&b"7"[..]));
        assert_eq!(out.get_extension(10).as_deref(), Some(&[0x85][..]));
        assert_eq!(
            out.get_extension(5).as_deref(),
            Some(&[0x12, 0x34][..]),
            "our own transport-wide number"
        );
        assert_eq!(out.get_extension(3), None, "the publisher's hop is dropped");
        assert_eq!(out.extensions.len(), 3);
    }

    #[test]
    fn any_mid_length_makes_a_valid_header() {
        let in_ids = IncomingExtensions::from_negotiated(&[ext(AUDIO_LEVEL_URI, 1)]);
        let mut incoming = Header::default();
        incoming
            .set_extension(1, Bytes::from_static(&[0x85]))
            .unwrap();
        for mid in ["1", "10", "100", "1000"] {
            let out_ids = OutgoingExtensions::from_negotiated(
                &[
                    ext(SDES_MID_URI, 4),
                    ext(AUDIO_LEVEL_URI, 1),
                    ext(TRANSPORT_CC_URI, 3),
                ],
                Some(mid),
            );
            let out = forwarded(&out_ids, in_ids, &incoming);
            assert_eq!(
                out.get_extension(4).as_deref(),
                Some(mid.as_bytes()),
                "mid {mid}"
            );
        }
    }

    #[test]
    fn nothing_negotiated_means_no_extensions() {
        let out = forwarded(
            &OutgoingExtensions::default(),
            IncomingExtensions::default(),
            &Header::default(),
        );
        assert!(!out.extension);
    }
}
