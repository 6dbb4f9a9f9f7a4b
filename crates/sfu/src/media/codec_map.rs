//! Maps a publisher's payload type to the one the subscriber negotiated for the same codec.
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters;

fn fmtp_value<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        k.eq_ignore_ascii_case(key).then_some(v.trim())
    })
}

/// Whether a subscriber can take `from`'s packets as `to`: same MIME type, and for H.264
/// the same packetization mode and profile (the level may differ).
pub fn same_codec(from: &RTCRtpCodecParameters, to: &RTCRtpCodecParameters) -> bool {
    let (a, b) = (&from.capability, &to.capability);
    if !a.mime_type.eq_ignore_ascii_case(&b.mime_type) {
        return false;
    }
    if !a.mime_type.eq_ignore_ascii_case("video/h264") {
        return true;
    }
    let mode = |f: &str| {
        fmtp_value(f, "packetization-mode")
            .unwrap_or("0")
            .to_owned()
    };
    let profile = |f: &str| {
        fmtp_value(f, "profile-level-id")
            .and_then(|p| p.get(..4))
            .map(str::to_ascii_lowercase)
    };
    mode(&a.sdp_fmtp_line) == mode(&b.sdp_fmtp_line)
        && profile(&a.sdp_fmtp_line) == profile(&b.sdp_fmtp_line)
}

/// The outgoing payload type for an incoming one, given both sides' negotiated codecs.
pub fn map_payload_type(
    incoming_pt: u8,
    publisher: &[RTCRtpCodecParameters],
    subscriber: &[RTCRtpCodecParameters],
) -> Option<u8> {
    let from = publisher.iter().find(|c| c.payload_type == incoming_pt)?;
    subscriber
        .iter()
        .find(|to| same_codec(from, to))
        .map(|to| to.payload_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;

    fn codec(pt: u8, mime: &str, fmtp: &str) -> RTCRtpCodecParameters {
        RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: mime.into(),
                clock_rate: 90000,
                sdp_fmtp_line: fmtp.into(),
                ..Default::default()
            },
            payload_type: pt,
            ..Default::default()
        }
    }

    #[test]
    fn maps_by_mime_case_insensitively() {
        let publisher = [codec(120, "video/VP8", ""), codec(121, "video/H264", "")];
        let subscriber = [codec(96, "video/vp8", "")];
        assert_eq!(map_payload_type(120, &publisher, &subscriber), Some(96));
        assert_eq!(map_payload_type(121, &publisher, &subscriber), None);
        assert_eq!(map_payload_type(5, &publisher, &subscriber), None);
    }

    #[test]
    fn h264_needs_same_mode_and_profile() {
        let publisher = [codec(
            102,
            "video/H264",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        )];
        let subscriber = [
            codec(
                125,
                "video/H264",
                "packetization-mode=0;profile-level-id=42e01f",
            ),
            codec(
                108,
                "video/H264",
                "packetization-mode=1;profile-level-id=4d001f",
            ),
            codec(
                106,
                "video/H264",
                "packetization-mode=1;profile-level-id=42E034",
            ),
        ];
        assert_eq!(map_payload_type(102, &publisher, &subscriber), Some(106));
    }
}
