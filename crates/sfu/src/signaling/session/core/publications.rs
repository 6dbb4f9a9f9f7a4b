//! What a participant publishes: its sending m-lines become published tracks once its
//! offer is answered (or are refused when its role may not publish), and a demotion to
//! audience unpublishes them.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use roomcast_protocol::{PublishedMid, Role, ServerMessage, TrackKind, TrackSource};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

use super::transceivers::PeerModel;
use super::{Command, SessionCore};
use crate::media::published_track::PublishedTrack;
use crate::signaling::sdp_media::MediaSection;
use crate::untrusted::Untrusted;

/// A published track to build for one of the client's m-lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTrack {
    pub mid: String,
    pub kind: TrackKind,
    pub source: TrackSource,
    /// The simulcast layers, lowest first (empty without simulcast).
    pub rids: Vec<String>,
}

/// The client's m-lines that carry media to the server (not the server's own, reused for
/// sending the other way).
pub(super) fn sending_mids<'a>(sections: &'a [MediaSection], peer: &PeerModel) -> HashSet<&'a str> {
    sections
        .iter()
        .filter(|s| s.sends && s.kind.is_some() && !peer.is_own(&s.mid))
        .map(|s| s.mid.as_str())
        .collect()
}

impl SessionCore {
    /// Publishes the m-lines the client now sends on and unpublishes the ones it stopped.
    pub(super) fn update_publications(
        &mut self,
        sections: &[MediaSection],
        tracks: &[PublishedMid],
        now: Instant,
    ) {
        let sending = sending_mids(sections, &self.peer);
        let stopped: Vec<String> = self
            .published
            .keys()
            .filter(|mid| !sending.contains(mid.as_str()))
            .cloned()
            .collect();
        for mid in stopped {
            if let Some(track) = self.published.remove(&mid) {
                tracing::info!(participant = %self.id, track_id = %track.info.id, "unpublished");
                self.room.unpublish(&self.id, &track.info.id);
            }
        }
        let new: Vec<NewTrack> = sections
            .iter()
            .filter(|s| sending.contains(s.mid.as_str()) && !self.published.contains_key(&s.mid))
            .filter_map(|s| {
                let kind = s.kind?;
                let source = tracks
                    .iter()
                    .find(|t| t.mid == s.mid)
                    .map_or(TrackSource::default_for(kind), |t| t.source);
                Some(NewTrack {
                    mid: s.mid.clone(),
                    kind,
                    source,
                    rids: s.rids.clone(),
                })
            })
            .collect();
        if new.is_empty() {
            self.publications_updated(now);
        } else {
            self.order(Command::Publish(new));
        }
    }

    pub(super) fn on_published(
        &mut self,
        built: Vec<(NewTrack, Option<Arc<PublishedTrack>>)>,
        now: Instant,
    ) {
        for (new, track) in built {
            let Some(track) = track else {
                tracing::warn!(participant = %self.id, mid = %Untrusted(&new.mid), "no codec negotiated; not published");
                continue;
            };
            tracing::info!(participant = %self.id, track_id = %track.info.id, mid = %Untrusted(&new.mid), "published");
            self.send(ServerMessage::Published {
                mid: new.mid.clone(),
                track: track.info.clone(),
            });
            self.published.insert(new.mid, Arc::clone(&track));
            self.order(Command::Receive(Arc::clone(&track)));
            self.room.publish(track);
        }
        self.publications_updated(now);
    }

    /// The end of answering a client offer: a participant that publishes nothing gives its
    /// publisher place back, and what changed meanwhile is offered.
    fn publications_updated(&mut self, now: Instant) {
        if self.published.is_empty() {
            self.room.release_publisher(&self.id);
        }
        self.renegotiate(now);
    }

    /// A host changed this participant's role. Demoted to audience, it stops publishing:
    /// its tracks are unpublished and its sending m-lines are offered back inactive.
    pub(super) fn on_role_changed(&mut self, role: Role, now: Instant) {
        if role.can_publish() {
            return;
        }
        for (_, track) in self.published.drain() {
            tracing::info!(participant = %self.id, track_id = %track.info.id, "unpublished: demoted to audience");
            self.room.unpublish(&self.id, &track.info.id);
        }
        self.room.release_publisher(&self.id);
        for id in self.peer.receiving_from_client() {
            self.peer
                .set_direction(id, RTCRtpTransceiverDirection::Inactive);
            self.order(Command::SetDirection(
                id,
                RTCRtpTransceiverDirection::Inactive,
            ));
            self.offer_owed = true;
        }
        self.renegotiate(now);
    }
}
