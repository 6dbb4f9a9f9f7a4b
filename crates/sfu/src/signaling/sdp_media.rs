//! Reads what a client's offer publishes: one entry per m-line, with its mid, kind,
//! whether the client sends on it, and its simulcast rids (ranked by [`simulcast_rids`]).
use std::io::Cursor;

use roomcast_protocol::TrackKind;
use webrtc::sdp::SessionDescription;

use super::simulcast_rids::{self, simulcast_send_order, SendRid};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    pub mid: String,
    pub kind: Option<TrackKind>,
    /// The client sends media on this m-line (sendonly or sendrecv, not rejected).
    pub sends: bool,
    /// The client receives media on this m-line (recvonly or sendrecv, not rejected).
    pub receives: bool,
    /// The simulcast layers' rids, lowest first; empty without simulcast.
    pub rids: Vec<String>,
}

pub fn media_sections(sdp: &str) -> Result<Vec<MediaSection>, String> {
    let parsed = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| format!("SDP does not parse: {e}"))?;
    let session_direction = ["sendrecv", "sendonly", "recvonly", "inactive"]
        .into_iter()
        .find(|d| parsed.attributes.iter().any(|a| a.key == *d));
    let mut sections = Vec::with_capacity(parsed.media_descriptions.len());
    for (index, m) in parsed.media_descriptions.iter().enumerate() {
        let kind = match m.media_name.media.as_str() {
            "audio" => Some(TrackKind::Audio),
            "video" => Some(TrackKind::Video),
            _ => None,
        };
        let attr = |key: &str| m.attributes.iter().find(|a| a.key == key);
        let mid = attr("mid")
            .and_then(|a| a.value.clone())
            .unwrap_or_else(|| index.to_string());
        let direction = ["sendrecv", "sendonly", "recvonly", "inactive"]
            .into_iter()
            .find(|d| attr(d).is_some())
            .or(session_direction)
            .unwrap_or("sendrecv");
        // Port 0 rejects an m-line, except with `a=bundle-only` (RFC 8843 §7.5): Firefox
        // offers every m-line after the first that way until BUNDLE is negotiated.
        let rejected = m.media_name.port.value == 0 && attr("bundle-only").is_none();
        let send_rids: Vec<SendRid> = m
            .attributes
            .iter()
            .filter(|a| a.key == "rid")
            .filter_map(|a| SendRid::parse(a.value.as_deref()?))
            .collect();
        let simulcast_order = attr("simulcast")
            .and_then(|a| a.value.as_deref())
            .map(simulcast_send_order)
            .unwrap_or_default();
        let rids = simulcast_rids::layers_lowest_first(&send_rids, &simulcast_order);
        sections.push(MediaSection {
            mid,
            kind,
            sends: !rejected && matches!(direction, "sendrecv" | "sendonly"),
            receives: !rejected && matches!(direction, "sendrecv" | "recvonly"),
            rids,
        });
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n";

    #[test]
    fn reads_mids_directions_and_rids() {
        let s = media_sections(OFFER).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].kind, Some(TrackKind::Audio));
        assert!(s[0].sends);
        assert!(!s[0].receives);
        assert_eq!(s[1].rids, vec!["q", "h", "f"]);
        assert!(!s[2].sends, "port 0 is rejected");
    }

    /// Firefox's first offer (max-bundle): every m-line after the first has port 0 and
    /// `a=bundle-only`. Such an m-line is sent on, not rejected.
    #[test]
    fn a_bundle_only_m_line_with_port_zero_is_not_rejected() {
        let offer = OFFER.replace(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n",
            "m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=bundle-only\r\na=mid:1\r\n",
        );
        assert!(offer.contains("a=bundle-only"));
        let s = media_sections(&offer).unwrap();
        assert!(s[1].sends, "bundle-only is not a rejection");
        assert_eq!(s[1].rids, vec!["q", "h", "f"]);
        assert!(!s[2].sends, "port 0 without bundle-only still is");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(media_sections("not sdp").is_err());
        assert!(media_sections("").is_err() || media_sections("").unwrap().is_empty());
    }
}
