//! A room: its members and their published tracks. Changes here (join, leave, publish,
//! unpublish) are announced to the other members and wake their sessions to renegotiate.
//! Nothing here is touched per media packet.
//!
//! Hosts and presenters ("staff") are announced to everyone. Audience members are
//! announced only to staff and see only staff; the rest of the audience learns how many
//! they are from `audience_count`, at most once a second, so an audience join costs a
//! message per staff member, not per participant.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use roomcast_protocol::{Participant, Role, RoomSettings, ServerMessage, TrackKind};
use tokio::sync::{mpsc, Notify};

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
    /// Orders from a host for this member's session.
    pub control: mpsc::UnboundedSender<Control>,
    /// `role` came from the client (or its token); otherwise a webinar makes it audience.
    pub role_given: bool,
    /// What this member asks of the room; applied only if its join creates the room and
    /// it is a host.
    pub room_settings: Option<RoomSettings>,
    /// Holds one of the room's publisher places (see `RoomSettings::max_publishers`).
    pub publisher: bool,
}

impl Member {
    fn to_participant(&self) -> Participant {
        Participant {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            tracks: self.tracks.iter().map(|t| t.describe()).collect(),
        }
    }

    fn is_audience(&self) -> bool {
        self.role.is_audience()
    }
}

/// What a host's action asks of another member's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Send `kicked` and close the connection.
    Kicked,
    /// The room ended (`room_ended` is already queued): close the connection.
    Ended,
    /// The member's role is now this; demoted to audience, it stops publishing.
    RoleChanged(Role),
}

/// A moderation action that could not be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModerationError {
    UnknownParticipant,
}

/// The least time between two `audience_count` announcements.
pub const AUDIENCE_COUNT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct AudienceAnnouncer {
    announced: Option<usize>,
    at: Option<Instant>,
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
    /// Set by the first join, which may bring the settings.
    started: AtomicBool,
    settings: RwLock<RoomSettings>,
    locked: AtomicBool,
    ended: AtomicBool,
    audience: Mutex<AudienceAnnouncer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefused {
    Full,
    /// A host locked the room.
    Locked,
    /// A host ended the room; it is on its way out.
    Ended,
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
            started: AtomicBool::new(false),
            settings: RwLock::new(RoomSettings::default()),
            locked: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            audience: Mutex::new(AudienceAnnouncer::default()),
        }
    }

    pub fn settings(&self) -> RoomSettings {
        *self.settings.read()
    }

    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
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

    /// Adds a member and tells the others who may see it. Returns the participants already
    /// here that the member may see. The first join of the room applies its settings when
    /// it is a host's; a webinar makes a member who named no role audience.
    /// Adds `member`. Its first message is `welcome(participants it may see, its role, the
    /// room's settings)`, queued under the room's lock, so no announcement from the room can
    /// reach it before that message does.
    pub fn join(
        &self,
        mut member: Member,
        max_members: usize,
        welcome: impl FnOnce(Vec<Participant>, Role, RoomSettings) -> ServerMessage,
    ) -> Result<(), JoinRefused> {
        let mut members = self.members.write();
        if self.ended.load(Ordering::Relaxed) {
            return Err(JoinRefused::Ended);
        }
        if !self.started.swap(true, Ordering::Relaxed) && member.role == Role::Host {
            if let Some(asked) = member.room_settings {
                *self.settings.write() = RoomSettings {
                    webinar: asked.webinar,
                    max_participants: asked.max_participants.map(|n| n.max(1)),
                    max_publishers: asked.max_publishers,
                };
            }
        }
        let settings = self.settings();
        if self.is_locked() {
            return Err(JoinRefused::Locked);
        }
        let limit = settings
            .max_participants
            .map_or(max_members, |n| n.min(max_members));
        if members.len() >= limit {
            return Err(JoinRefused::Full);
        }
        if settings.webinar && !member.role_given {
            member.role = Role::Audience;
        }
        let audience = member.is_audience();
        let existing: Vec<Participant> = members
            .values()
            .filter(|m| !audience || !m.is_audience())
            .map(Member::to_participant)
            .collect();
        let announce = ServerMessage::ParticipantJoined {
            participant: member.to_participant(),
        };
        for other in members.values().filter(|m| !audience || !m.is_audience()) {
            other.outbox.send(announce.clone());
        }
        member.outbox.send(welcome(existing, member.role, settings));
        members.insert(member.id.clone(), member);
        Ok(())
    }

    /// Sends `id`'s messages to `outbox` from now on (its session resumed on a new
    /// connection), starting with `welcome(participants it may see, its role)`, queued
    /// under the room's lock like [`Room::join`]'s. Returns false if it is not here.
    pub fn set_outbox(
        &self,
        id: &str,
        outbox: Outbox,
        welcome: impl FnOnce(Vec<Participant>, Role) -> ServerMessage,
    ) -> bool {
        let mut members = self.members.write();
        let Some(role) = members.get(id).map(|m| m.role) else {
            return false;
        };
        let audience = role.is_audience();
        let visible = members
            .values()
            .filter(|m| m.id != id && (!audience || !m.is_audience()))
            .map(Member::to_participant)
            .collect();
        outbox.send(welcome(visible, role));
        if let Some(m) = members.get_mut(id) {
            m.outbox = outbox;
        }
        true
    }

    /// The role of a member, if it is here.
    pub fn role_of(&self, id: &str) -> Option<Role> {
        self.members.read().get(id).map(|m| m.role)
    }

    /// How many audience members the room has.
    pub fn audience_count(&self) -> usize {
        self.members
            .read()
            .values()
            .filter(|m| m.is_audience())
            .count()
    }

    /// Sends `audience_count` to the audience if the count changed since the last
    /// announcement and that was at least [`AUDIENCE_COUNT_INTERVAL`] ago. Called by the
    /// room's ticker.
    pub fn announce_audience_count(&self, now: Instant) {
        let mut announcer = self.audience.lock();
        if announcer
            .at
            .is_some_and(|at| now.saturating_duration_since(at) < AUDIENCE_COUNT_INTERVAL)
        {
            return;
        }
        let members = self.members.read();
        let count = members.values().filter(|m| m.is_audience()).count();
        if announcer.announced == Some(count) {
            return;
        }
        // The first count is announced only once someone is there to hear it; each
        // audience member got the count of its own join directly.
        if announcer.announced.is_none() && count == 0 {
            return;
        }
        announcer.announced = Some(count);
        announcer.at = Some(now);
        let msg = ServerMessage::AudienceCount { count };
        for m in members.values().filter(|m| m.is_audience()) {
            m.outbox.send(msg.clone());
        }
    }

    /// Takes a publisher place for `id` if its role may publish and the room's
    /// `max_publishers` leaves one (a member keeps its place until it releases it).
    pub fn claim_publisher(&self, id: &str) -> bool {
        let max = self.settings().max_publishers;
        let mut members = self.members.write();
        let publishers = members.values().filter(|m| m.publisher).count();
        let Some(member) = members.get_mut(id) else {
            return false;
        };
        if !member.role.can_publish() {
            return false;
        }
        if member.publisher {
            return true;
        }
        if max.is_some_and(|max| publishers >= max) {
            return false;
        }
        member.publisher = true;
        true
    }

    /// Gives up `id`'s publisher place (it publishes nothing any more).
    pub fn release_publisher(&self, id: &str) {
        if let Some(m) = self.members.write().get_mut(id) {
            m.publisher = false;
        }
    }

    /// The tracks `id` publishes, or `None` if it is not here.
    pub fn tracks_of(&self, id: &str) -> Option<Vec<Arc<PublishedTrack>>> {
        self.members.read().get(id).map(|m| m.tracks.clone())
    }

    /// Asks `id`'s session to send `kicked` and close; it then leaves like anyone else.
    pub fn kick(&self, id: &str) -> Result<(), ModerationError> {
        let members = self.members.read();
        let target = members.get(id).ok_or(ModerationError::UnknownParticipant)?;
        let _ = target.control.send(Control::Kicked);
        Ok(())
    }

    /// Gives `id` a new role and tells everyone (`role_changed`). Audience members who
    /// could not see the member before get `participant_joined` (or, when it becomes
    /// audience, `participant_left`); the member itself gets the audience list or loses
    /// it the same way. A member demoted to audience loses its publisher place; its
    /// session unpublishes its tracks.
    pub fn set_role(&self, id: &str, role: Role) -> Result<(), ModerationError> {
        let mut members = self.members.write();
        let target = members
            .get_mut(id)
            .ok_or(ModerationError::UnknownParticipant)?;
        let before = target.role;
        target.role = role;
        if role.is_audience() {
            target.publisher = false;
        }
        let _ = target.control.send(Control::RoleChanged(role));
        let changed = ServerMessage::RoleChanged {
            participant_id: id.to_owned(),
            role,
        };
        let target = &members[id];
        let others = || members.values().filter(|m| m.id != id);
        let audience = || others().filter(|m| m.is_audience());
        match (before.is_audience(), role.is_audience()) {
            (true, false) => {
                let joined = ServerMessage::ParticipantJoined {
                    participant: target.to_participant(),
                };
                for m in audience() {
                    m.outbox.send(joined.clone());
                    target.outbox.send(ServerMessage::ParticipantJoined {
                        participant: m.to_participant(),
                    });
                }
                for m in members.values() {
                    m.outbox.send(changed.clone());
                }
            }
            (false, true) => {
                for m in members.values() {
                    m.outbox.send(changed.clone());
                }
                let left = ServerMessage::ParticipantLeft {
                    participant_id: id.to_owned(),
                };
                for m in audience() {
                    m.outbox.send(left.clone());
                    target.outbox.send(ServerMessage::ParticipantLeft {
                        participant_id: m.id.clone(),
                    });
                }
                target.outbox.send(ServerMessage::AudienceCount {
                    count: members.values().filter(|m| m.is_audience()).count(),
                });
            }
            _ => {
                for m in members.values() {
                    m.outbox.send(changed.clone());
                }
            }
        }
        Ok(())
    }

    /// Locks or unlocks the room and tells everyone (`room_locked`).
    pub fn set_locked(&self, locked: bool) {
        let members = self.members.read();
        self.locked.store(locked, Ordering::Relaxed);
        let msg = ServerMessage::RoomLocked { locked };
        for m in members.values() {
            m.outbox.send(msg.clone());
        }
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// Ends the room: no more joins, forwarding stops, everyone gets `room_ended` and
    /// their sessions close. Returns false if it had ended already.
    pub fn end(&self) -> bool {
        let members = self.members.read();
        if self.ended.swap(true, Ordering::Relaxed) {
            return false;
        }
        for m in members.values() {
            for t in &m.tracks {
                t.close();
            }
            m.outbox.send(ServerMessage::RoomEnded);
            let _ = m.control.send(Control::Ended);
        }
        true
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
            if !gone.is_audience() || !other.is_audience() {
                other.outbox.send(announce.clone());
            }
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
            track: track.describe(),
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
