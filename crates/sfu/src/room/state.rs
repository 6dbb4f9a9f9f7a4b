//! A room's membership as a plain struct: who is here with which role and tracks, the
//! room's settings, lock and end. Every change returns its [`Effects`] (who must be told
//! what) instead of telling anyone, so the rules are tested without sessions or sockets.
//!
//! Visibility: hosts and presenters ("staff") are announced to everyone. Audience members
//! are announced only to staff and see only staff; the rest of the audience learns how many
//! they are from `audience_count`, at most once a second, so an audience join costs a
//! message per staff member, not per participant.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_protocol::{Participant, Role, RoomSettings, ServerMessage, TrackKind};

use super::effects::{Effect, Effects, Order};
use crate::media::published_track::PublishedTrack;
use crate::rate::{Rate, TokenBucket};

/// The least time between two `audience_count` announcements.
pub const AUDIENCE_COUNT_INTERVAL: Duration = Duration::from_secs(1);

/// Chat messages a room passes on, from all its senders together (each sender also has its
/// own rate): a room's chat costs a message per member each, so it is bounded as a whole.
pub const ROOM_CHAT: Rate = Rate {
    per_second: 20.0,
    burst: 40.0,
};

/// Why a chat message was not passed on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChatRefused {
    /// The room's chat is at its rate.
    Busy(Rate),
    /// The sender is not in the room.
    NotHere,
}

/// Someone asking to join.
#[derive(Debug, Clone)]
pub struct Joining {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// `role` came from the client (or its token); otherwise a webinar makes it audience.
    pub role_given: bool,
    /// What the joiner asks of the room; applied only if its join creates the room and it is
    /// a host.
    pub room_settings: Option<RoomSettings>,
    /// Another node's cascade relay: it receives the room like an audience member, but is
    /// never announced, listed or counted.
    pub hidden: bool,
}

/// What a member learns first (in `joined` or `resumed`).
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    /// The participants it may see, itself excluded.
    pub participants: Vec<Participant>,
    pub role: Role,
    pub settings: RoomSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefused {
    Full,
    /// Joining would create a room beyond the server's `max_rooms`.
    TooManyRooms,
    /// A host locked the room.
    Locked,
    /// A host ended the room; it is on its way out.
    Ended,
}

/// A moderation action that could not be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModerationError {
    UnknownParticipant,
    /// The member watches through another node (a cascade edge), which cannot carry its
    /// media to this room: it cannot be given a role that publishes.
    ElsewhereAudience,
}

struct Member {
    id: String,
    name: String,
    role: Role,
    tracks: Vec<Arc<PublishedTrack>>,
    /// Holds one of the room's publisher places (see `RoomSettings::max_publishers`).
    publisher: bool,
    /// A cascade relay (see [`Joining::hidden`]).
    hidden: bool,
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

    /// Whether this member is announced to `other`: the audience sees only staff.
    fn seen_by(&self, other: &Member) -> bool {
        !self.hidden && (!self.is_audience() || !other.is_audience())
    }
}

#[derive(Default)]
struct AudienceAnnouncer {
    announced: Option<usize>,
    at: Option<Instant>,
}

#[derive(Default)]
pub struct RoomState {
    members: BTreeMap<String, Member>,
    /// Set by the first join, which may bring the settings.
    started: bool,
    settings: RoomSettings,
    locked: bool,
    ended: bool,
    audience: AudienceAnnouncer,
    /// The room's chat rate (started by its first message).
    chat: Option<TokenBucket>,
    /// On a cascade edge, the room's audience as its node counts it (members here and on
    /// every edge); `audience_count` says this rather than the members here.
    audience_elsewhere: Option<usize>,
}

fn tell(to: Vec<String>, msg: ServerMessage) -> Effect {
    Effect::Tell { to, msg }
}

impl RoomState {
    pub fn settings(&self) -> RoomSettings {
        self.settings
    }

    pub fn is_locked(&self) -> bool {
        self.locked
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    fn ids(&self, keep: impl Fn(&Member) -> bool) -> Vec<String> {
        self.members
            .values()
            .filter(|m| keep(m))
            .map(|m| m.id.clone())
            .collect()
    }

    fn audience_count_of(&self) -> usize {
        if let Some(count) = self.audience_elsewhere {
            return count;
        }
        self.members
            .values()
            .filter(|m| m.is_audience() && !m.hidden)
            .count()
    }

    /// Adds a member. The first join of the room applies its settings when it is a host's;
    /// a webinar makes a member who named no role audience. `max_members` is the server's
    /// cap, which the room's own `max_participants` can only lower.
    pub fn join(
        &mut self,
        joining: Joining,
        max_members: usize,
    ) -> Result<(Welcome, Effects), JoinRefused> {
        if self.ended {
            return Err(JoinRefused::Ended);
        }
        if !std::mem::replace(&mut self.started, true) && joining.role == Role::Host {
            if let Some(asked) = joining.room_settings {
                self.settings = RoomSettings {
                    webinar: asked.webinar,
                    max_participants: asked.max_participants.map(|n| n.max(1)),
                    max_publishers: asked.max_publishers,
                };
            }
        }
        if self.locked {
            return Err(JoinRefused::Locked);
        }
        let limit = self
            .settings
            .max_participants
            .map_or(max_members, |n| n.min(max_members));
        if self.members.len() >= limit {
            return Err(JoinRefused::Full);
        }
        let role = if self.settings.webinar && !joining.role_given {
            Role::Audience
        } else {
            joining.role
        };
        let member = Member {
            id: joining.id,
            name: joining.name,
            role,
            tracks: Vec::new(),
            publisher: false,
            hidden: joining.hidden,
        };
        let participants = self
            .members
            .values()
            .filter(|m| m.seen_by(&member))
            .map(Member::to_participant)
            .collect();
        let mut effects = vec![tell(
            self.ids(|m| member.seen_by(m)),
            ServerMessage::ParticipantJoined {
                participant: member.to_participant(),
            },
        )];
        let id = member.id.clone();
        self.members.insert(id.clone(), member);
        if role.is_audience() {
            let count = self.audience_count_of();
            effects.push(tell(vec![id], ServerMessage::AudienceCount { count }));
        }
        let welcome = Welcome {
            participants,
            role,
            settings: self.settings,
        };
        Ok((welcome, effects))
    }

    /// What `id` learns when its session resumes on a new connection (the room as it is
    /// now), or `None` if it is not here.
    pub fn rejoin(&self, id: &str) -> Option<(Welcome, Effects)> {
        let member = self.members.get(id)?;
        let participants = self
            .members
            .values()
            .filter(|m| m.id != id && m.seen_by(member))
            .map(Member::to_participant)
            .collect();
        let mut effects = Vec::new();
        if member.is_audience() {
            let count = self.audience_count_of();
            effects.push(tell(
                vec![id.to_owned()],
                ServerMessage::AudienceCount { count },
            ));
        }
        let welcome = Welcome {
            participants,
            role: member.role,
            settings: self.settings,
        };
        Some((welcome, effects))
    }

    /// Removes a member: its tracks retire and those who could see it are told.
    pub fn leave(&mut self, id: &str) -> Effects {
        let Some(gone) = self.members.remove(id) else {
            return Vec::new();
        };
        let mut effects: Effects = gone.tracks.iter().cloned().map(Effect::Retire).collect();
        effects.push(tell(
            self.ids(|m| gone.seen_by(m)),
            ServerMessage::ParticipantLeft {
                participant_id: gone.id.clone(),
            },
        ));
        if !gone.tracks.is_empty() {
            effects.push(Effect::Resubscribe {
                to: self.ids(|_| true),
            });
        }
        effects
    }

    pub fn role_of(&self, id: &str) -> Option<Role> {
        self.members.get(id).map(|m| m.role)
    }

    pub fn audience_count(&self) -> usize {
        self.audience_count_of()
    }

    /// Counts the audience as `count` from now on (a cascade edge's mirror: the room's node
    /// counts every node's audience); the next announcement says it.
    pub fn set_audience_elsewhere(&mut self, count: usize) {
        self.audience_elsewhere = Some(count);
    }

    /// `audience_count` for the audience if the count changed since the last announcement
    /// and that was at least [`AUDIENCE_COUNT_INTERVAL`] ago. Called by the room's ticker.
    pub fn announce_audience_count(&mut self, now: Instant) -> Effects {
        let announcer = &self.audience;
        if announcer
            .at
            .is_some_and(|at| now.saturating_duration_since(at) < AUDIENCE_COUNT_INTERVAL)
        {
            return Vec::new();
        }
        let count = self.audience_count_of();
        // The first count is announced only once someone is there to hear it; each
        // audience member got the count of its own join directly.
        if announcer.announced == Some(count) || (announcer.announced.is_none() && count == 0) {
            return Vec::new();
        }
        self.audience = AudienceAnnouncer {
            announced: Some(count),
            at: Some(now),
        };
        vec![tell(
            self.ids(Member::is_audience),
            ServerMessage::AudienceCount { count },
        )]
    }

    /// Takes a publisher place for `id` if its role may publish and the room's
    /// `max_publishers` leaves one (a member keeps its place until it releases it).
    pub fn claim_publisher(&mut self, id: &str) -> bool {
        let max = self.settings.max_publishers;
        let publishers = self.members.values().filter(|m| m.publisher).count();
        let Some(member) = self.members.get_mut(id) else {
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
    pub fn release_publisher(&mut self, id: &str) {
        if let Some(m) = self.members.get_mut(id) {
            m.publisher = false;
        }
    }

    /// The tracks `id` publishes, or `None` if it is not here.
    pub fn tracks_of(&self, id: &str) -> Option<&[Arc<PublishedTrack>]> {
        self.members.get(id).map(|m| m.tracks.as_slice())
    }

    /// Every track published by someone other than `subscriber_id`.
    pub fn tracks_for(&self, subscriber_id: &str) -> Vec<Arc<PublishedTrack>> {
        self.members
            .values()
            .filter(|m| m.id != subscriber_id)
            .flat_map(|m| m.tracks.iter().cloned())
            .collect()
    }

    pub fn has_track(&self, track_id: &str) -> bool {
        self.tracks().any(|t| t.info.id == track_id)
    }

    /// Every published track.
    pub fn tracks(&self) -> impl Iterator<Item = &Arc<PublishedTrack>> {
        self.members.values().flat_map(|m| m.tracks.iter())
    }

    pub fn participants(&self) -> Vec<Participant> {
        self.members
            .values()
            .filter(|m| !m.hidden)
            .map(Member::to_participant)
            .collect()
    }

    /// Each member with an audio track and that track.
    pub fn audio_tracks(&self) -> impl Iterator<Item = (&str, &Arc<PublishedTrack>)> {
        self.members.values().filter_map(|m| {
            let audio = m.tracks.iter().find(|t| t.info.kind == TrackKind::Audio)?;
            Some((m.id.as_str(), audio))
        })
    }

    /// Adds `track` to its publisher's tracks; everyone else is told and resubscribes. A
    /// publisher that left meanwhile gets nothing: the track stops.
    pub fn publish(&mut self, track: Arc<PublishedTrack>) -> Effects {
        let publisher_id = track.publisher_id.clone();
        let announce = ServerMessage::TrackPublished {
            participant_id: publisher_id.clone(),
            track: track.describe(),
        };
        let Some(publisher) = self.members.get_mut(&publisher_id) else {
            return vec![Effect::Stop(track)];
        };
        publisher.tracks.push(track);
        let others = self.ids(|m| m.id != publisher_id);
        vec![
            tell(others.clone(), announce),
            Effect::Resubscribe { to: others },
        ]
    }

    pub fn unpublish(&mut self, publisher_id: &str, track_id: &str) -> Effects {
        let Some(publisher) = self.members.get_mut(publisher_id) else {
            return Vec::new();
        };
        let Some(at) = publisher.tracks.iter().position(|t| t.info.id == track_id) else {
            return Vec::new();
        };
        let track = publisher.tracks.remove(at);
        let others = self.ids(|m| m.id != publisher_id);
        vec![
            Effect::Retire(track),
            tell(
                others.clone(),
                ServerMessage::TrackUnpublished {
                    participant_id: publisher_id.to_owned(),
                    track_id: track_id.to_owned(),
                },
            ),
            Effect::Resubscribe { to: others },
        ]
    }

    /// `text` from `from` for those who may read it: everyone; or, from an audience member,
    /// the hosts and presenters (as a webinar's Q&A, so the audience never learns each
    /// other's names) and the sender itself.
    pub fn chat(
        &mut self,
        from: &str,
        text: String,
        ts: u64,
        now: Instant,
    ) -> Result<Effects, ChatRefused> {
        let sender = self.members.get(from).ok_or(ChatRefused::NotHere)?;
        let bucket = self
            .chat
            .get_or_insert_with(|| TokenBucket::new(ROOM_CHAT, now));
        if !bucket.try_take(now) {
            return Err(ChatRefused::Busy(ROOM_CHAT));
        }
        let to = if sender.is_audience() {
            self.ids(|m| m.id == from || !m.is_audience())
        } else {
            self.ids(|_| true)
        };
        let msg = ServerMessage::Chat {
            participant_id: from.to_owned(),
            name: sender.name.clone(),
            text,
            ts,
        };
        Ok(vec![tell(to, msg)])
    }

    /// `msg` for every member.
    pub fn broadcast(&self, msg: ServerMessage) -> Effects {
        vec![tell(self.ids(|_| true), msg)]
    }

    /// Asks `id`'s session to send `kicked` and close; it then leaves like anyone else.
    pub fn kick(&self, id: &str) -> Result<Effects, ModerationError> {
        if !self.members.contains_key(id) {
            return Err(ModerationError::UnknownParticipant);
        }
        Ok(vec![Effect::Order {
            to: id.to_owned(),
            order: Order::Kicked,
        }])
    }

    /// Gives `id` a new role and tells everyone (`role_changed`). Audience members who
    /// could not see the member before get `participant_joined` (or, when it becomes
    /// audience, `participant_left`); the member itself gets the audience list or loses it
    /// the same way. A member demoted to audience loses its publisher place; its session
    /// unpublishes its tracks.
    pub fn set_role(&mut self, id: &str, role: Role) -> Result<Effects, ModerationError> {
        let target = self
            .members
            .get_mut(id)
            .ok_or(ModerationError::UnknownParticipant)?;
        let before = target.role;
        target.role = role;
        if role.is_audience() {
            target.publisher = false;
        }
        let target = &self.members[id];
        let mut effects = vec![Effect::Order {
            to: id.to_owned(),
            order: Order::RoleChanged(role),
        }];
        let changed = tell(
            self.ids(|_| true),
            ServerMessage::RoleChanged {
                participant_id: id.to_owned(),
                role,
            },
        );
        let audience: Vec<&Member> = self
            .members
            .values()
            .filter(|m| m.id != id && m.is_audience())
            .collect();
        let audience_ids: Vec<String> = audience.iter().map(|m| m.id.clone()).collect();
        match (before.is_audience(), role.is_audience()) {
            (true, false) => {
                effects.push(tell(
                    audience_ids,
                    ServerMessage::ParticipantJoined {
                        participant: target.to_participant(),
                    },
                ));
                for m in &audience {
                    effects.push(tell(
                        vec![id.to_owned()],
                        ServerMessage::ParticipantJoined {
                            participant: m.to_participant(),
                        },
                    ));
                }
                effects.push(changed);
            }
            (false, true) => {
                effects.push(changed);
                effects.push(tell(
                    audience_ids,
                    ServerMessage::ParticipantLeft {
                        participant_id: id.to_owned(),
                    },
                ));
                for m in &audience {
                    effects.push(tell(
                        vec![id.to_owned()],
                        ServerMessage::ParticipantLeft {
                            participant_id: m.id.clone(),
                        },
                    ));
                }
                effects.push(tell(
                    vec![id.to_owned()],
                    ServerMessage::AudienceCount {
                        count: self.audience_count_of(),
                    },
                ));
            }
            _ => effects.push(changed),
        }
        Ok(effects)
    }

    /// Locks or unlocks the room and tells everyone (`room_locked`).
    pub fn set_locked(&mut self, locked: bool) -> Effects {
        self.locked = locked;
        self.broadcast(ServerMessage::RoomLocked { locked })
    }

    /// Ends the room: no more joins, forwarding stops, everyone gets `room_ended` and their
    /// sessions close. `None` if it had ended already.
    pub fn end(&mut self) -> Option<Effects> {
        if std::mem::replace(&mut self.ended, true) {
            return None;
        }
        let mut effects: Effects = self.tracks().cloned().map(Effect::Stop).collect();
        effects.extend(self.broadcast(ServerMessage::RoomEnded));
        effects.extend(self.members.keys().map(|id| Effect::Order {
            to: id.clone(),
            order: Order::Ended,
        }));
        Some(effects)
    }
}
