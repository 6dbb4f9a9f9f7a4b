//! What one participant may create or send: published tracks, m-lines per offer, ICE
//! candidates, SDP bytes, chat messages. The defaults leave a real client plenty of room (a
//! camera, a microphone, a screen and its audio are four tracks and four m-lines of its own)
//! while one client cannot make the server do unbounded work for everyone else: a 500
//! m-line offer, for one, is refused before anything is applied. Over a limit is
//! `limit_exceeded`, and nothing of the request is applied.
use roomcast_protocol::MAX_FRAME_BYTES;

use crate::rate::Rate;
use crate::signaling::sdp_media::MediaSection;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParticipantLimits {
    /// Tracks published at once.
    pub max_tracks: usize,
    /// M-lines of the client's own (not the server's, which carry what it receives) in one
    /// offer.
    pub max_mlines: usize,
    /// Remote ICE candidates over the whole session. The server is ICE-lite: it answers the
    /// client's checks and needs none of them to connect.
    pub max_candidates: usize,
    /// Bytes of one offer or answer.
    pub max_sdp_bytes: usize,
    /// Chat messages from this participant.
    pub chat: Rate,
}

impl Default for ParticipantLimits {
    fn default() -> Self {
        ParticipantLimits {
            max_tracks: 8,
            max_mlines: 16,
            max_candidates: 64,
            max_sdp_bytes: MAX_FRAME_BYTES,
            chat: Rate {
                per_second: 10.0,
                burst: 20.0,
            },
        }
    }
}

impl ParticipantLimits {
    /// Why an offer with these m-lines (`own` tells the server's own mids) may not be
    /// applied, if it may not.
    pub fn check_offer(
        &self,
        sections: &[MediaSection],
        own: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        let clients = sections.iter().filter(|s| !own(&s.mid));
        let mlines = clients.clone().count();
        if mlines > self.max_mlines {
            return Err(format!(
                "an offer may have at most {} m-lines of its own; this one has {mlines}",
                self.max_mlines
            ));
        }
        let tracks = clients.filter(|s| s.sends && s.kind.is_some()).count();
        if tracks > self.max_tracks {
            return Err(format!(
                "a participant may publish at most {} tracks; this offer sends {tracks}",
                self.max_tracks
            ));
        }
        Ok(())
    }

    /// Why a description of `sdp_bytes` may not be applied, if it may not.
    pub fn check_sdp(&self, sdp_bytes: usize) -> Result<(), String> {
        if sdp_bytes > self.max_sdp_bytes {
            return Err(format!(
                "a description may have at most {} bytes; this one has {sdp_bytes}",
                self.max_sdp_bytes
            ));
        }
        Ok(())
    }
}

/// Whether `candidate` (an `a=candidate` value) names its address by an mDNS `.local` name,
/// which the server never resolves: resolving costs a query per candidate, and an ICE-lite
/// server learns the client's address from its checks anyway.
pub fn is_mdns(candidate: &str) -> bool {
    candidate
        .split_ascii_whitespace()
        .nth(4)
        .is_some_and(|address| address.to_ascii_lowercase().ends_with(".local"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomcast_protocol::TrackKind;

    fn section(mid: &str, sends: bool) -> MediaSection {
        MediaSection {
            mid: mid.into(),
            kind: Some(TrackKind::Video),
            sends,
            receives: false,
            rids: vec![],
        }
    }

    #[test]
    fn a_real_clients_offer_fits_and_a_flood_of_mlines_does_not() {
        let limits = ParticipantLimits::default();
        // Camera, microphone, screen and screen audio, plus 200 m-lines the server made.
        let mut sections: Vec<MediaSection> =
            (0..4).map(|i| section(&i.to_string(), true)).collect();
        sections.extend((0..200).map(|i| section(&format!("s{i}"), false)));
        assert_eq!(
            limits.check_offer(&sections, |m| m.starts_with('s')),
            Ok(())
        );

        let flood: Vec<MediaSection> = (0..500).map(|i| section(&i.to_string(), true)).collect();
        let refused = limits.check_offer(&flood, |_| false).unwrap_err();
        assert!(refused.contains("500"), "{refused}");
    }

    #[test]
    fn tracks_and_bytes_are_capped() {
        let limits = ParticipantLimits {
            max_tracks: 2,
            ..ParticipantLimits::default()
        };
        let three: Vec<MediaSection> = (0..3).map(|i| section(&i.to_string(), true)).collect();
        assert!(limits.check_offer(&three, |_| false).is_err());
        let listening: Vec<MediaSection> = (0..3).map(|i| section(&i.to_string(), false)).collect();
        assert!(limits.check_offer(&listening, |_| false).is_ok());
        assert!(limits.check_sdp(MAX_FRAME_BYTES).is_ok());
        assert!(limits.check_sdp(MAX_FRAME_BYTES + 1).is_err());
    }

    #[test]
    fn mdns_candidates_are_recognised() {
        assert!(is_mdns(
            "candidate:1 1 udp 2122260223 9b36eaac-bb2e-49bb-bb78-21c41c499900.local 54321 typ host"
        ));
        assert!(is_mdns("candidate:1 1 UDP 1 host.LOCAL 1 typ host"));
        assert!(!is_mdns(
            "candidate:1 1 udp 2122260223 192.0.2.7 54321 typ host"
        ));
        assert!(!is_mdns("garbage"));
    }
}
