//! A room: its members and their published tracks. Changes here (join, leave, publish,
//! unpublish) are announced to the other members and wake their sessions to renegotiate.
//! Nothing here is touched per media packet.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use roomcast_protocol::{Participant, Role, ServerMessage, TrackKind};
use tokio::sync::Notify;

use crate::media::published_track::PublishedTrack;
use crate::signaling::outbox::Outbox;
use crate::stats::{MediaCounters, MediaStats};

pub struct Member {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub outbox: Outbox,
    /// Woken when the set of tracks this member should receive changed.
    pub resubscribe: Arc<Notify>,
    pub tracks: Vec<Arc<PublishedTrack>>,
}

impl Member {
    fn to_participant(&self) -> Participant {
        Participant {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            tracks: self.tracks.iter().map(|t| t.info.clone()).collect(),
        }
    }
}

pub struct Room {
    pub name: String,
    members: RwLock<BTreeMap<String, Member>>,
    next_track: AtomicU64,
    /// Totals of tracks that have ended, so room totals never go down.
    retired: MediaCounters,
    /// Participant ids of the current speakers, loudest first.
    speakers: RwLock<Vec<String>>,
    closed: AtomicBool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefused {
    Full,
}

impl Room {
    pub fn new(name: String) -> Self {
        Room {
            name,
            members: RwLock::new(BTreeMap::new()),
            next_track: AtomicU64::new(1),
            retired: MediaCounters::default(),
            speakers: RwLock::new(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// Marks the room as gone (its last member left); its background work stops.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Each member with an audio track and its average level since the last call.
    pub fn audio_levels(&self) -> Vec<(String, f64)> {
        self.members
            .read()
            .values()
            .filter_map(|m| {
                let audio = m.tracks.iter().find(|t| t.info.kind == TrackKind::Audio)?;
                Some((m.id.clone(), audio.audio_level.take().0))
            })
            .collect()
    }

    pub fn set_active_speakers(&self, speakers: Vec<String>) {
        *self.speakers.write() = speakers;
    }

    /// Participant ids of the current speakers, loudest first.
    pub fn active_speakers(&self) -> Vec<String> {
        self.speakers.read().clone()
    }

    /// Adds a member and tells the others. Returns the participants already here.
    pub fn join(
        &self,
        member: Member,
        max_members: usize,
    ) -> Result<Vec<Participant>, JoinRefused> {
        let mut members = self.members.write();
        if members.len() >= max_members {
            return Err(JoinRefused::Full);
        }
        let existing: Vec<Participant> = members.values().map(Member::to_participant).collect();
        let announce = ServerMessage::ParticipantJoined {
            participant: member.to_participant(),
        };
        for other in members.values() {
            other.outbox.send(announce.clone());
        }
        members.insert(member.id.clone(), member);
        Ok(existing)
    }

    /// Removes a member, ends its tracks and tells the others. Returns whether the room is
    /// now empty.
    pub fn leave(&self, id: &str) -> bool {
        let mut members = self.members.write();
        let Some(gone) = members.remove(id) else {
            return members.is_empty();
        };
        for track in &gone.tracks {
            self.retire(track);
        }
        let announce = ServerMessage::ParticipantLeft {
            participant_id: gone.id.clone(),
        };
        for other in members.values() {
            other.outbox.send(announce.clone());
            if !gone.tracks.is_empty() {
                other.resubscribe.notify_one();
            }
        }
        members.is_empty()
    }

    fn retire(&self, track: &PublishedTrack) {
        track.close();
        self.retired.absorb(&track.counters.snapshot());
    }

    pub fn next_track_id(&self) -> String {
        format!("TR_{}", self.next_track.fetch_add(1, Ordering::Relaxed))
    }

    pub fn publish(&self, publisher_id: &str, track: Arc<PublishedTrack>) {
        let mut members = self.members.write();
        let announce = ServerMessage::TrackPublished {
            participant_id: publisher_id.to_owned(),
            track: track.info.clone(),
        };
        let Some(publisher) = members.get_mut(publisher_id) else {
            track.close();
            return;
        };
        publisher.tracks.push(track);
        for other in members.values().filter(|m| m.id != publisher_id) {
            other.outbox.send(announce.clone());
            other.resubscribe.notify_one();
        }
    }

    pub fn unpublish(&self, publisher_id: &str, track_id: &str) {
        let mut members = self.members.write();
        let Some(publisher) = members.get_mut(publisher_id) else {
            return;
        };
        let Some(at) = publisher.tracks.iter().position(|t| t.info.id == track_id) else {
            return;
        };
        let track = publisher.tracks.remove(at);
        self.retire(&track);
        let announce = ServerMessage::TrackUnpublished {
            participant_id: publisher_id.to_owned(),
            track_id: track_id.to_owned(),
        };
        for other in members.values().filter(|m| m.id != publisher_id) {
            other.outbox.send(announce.clone());
            other.resubscribe.notify_one();
        }
    }

    /// Every track published by someone other than `subscriber_id`.
    pub fn tracks_for(&self, subscriber_id: &str) -> Vec<Arc<PublishedTrack>> {
        self.members
            .read()
            .values()
            .filter(|m| m.id != subscriber_id)
            .flat_map(|m| m.tracks.iter().cloned())
            .collect()
    }

    pub fn has_track(&self, track_id: &str) -> bool {
        self.members
            .read()
            .values()
            .any(|m| m.tracks.iter().any(|t| t.info.id == track_id))
    }

    pub fn broadcast(&self, msg: &ServerMessage) {
        for m in self.members.read().values() {
            m.outbox.send(msg.clone());
        }
    }

    pub fn member_count(&self) -> usize {
        self.members.read().len()
    }

    pub fn track_count(&self) -> usize {
        self.members.read().values().map(|m| m.tracks.len()).sum()
    }

    pub fn participants(&self) -> Vec<Participant> {
        self.members
            .read()
            .values()
            .map(Member::to_participant)
            .collect()
    }

    pub fn media_stats(&self) -> MediaStats {
        let mut total = self.retired.snapshot();
        for m in self.members.read().values() {
            for t in &m.tracks {
                total += t.counters.snapshot();
            }
        }
        total
    }
}
