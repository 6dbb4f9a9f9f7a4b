//! A room: its members and their published tracks. The rules (who sees whom, roles,
//! publisher places, lock, end) are in [`state`], a plain struct whose changes return
//! [`effects`]; [`Room`] holds it behind one lock and delivers each change's effects to the
//! members' [`Mailbox`]es before the lock is released, so every member sees the room's
//! changes in the order they happened, its `joined` first. Nothing here is touched per
//! media packet.
pub mod effects;
pub mod state;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use roomcast_protocol::{Participant, Role, RoomSettings, ServerMessage, TrackKind};

pub use effects::{Effect, Effects, Order};
pub use state::{ChatRefused, JoinRefused, Joining, ModerationError, RoomState, Welcome};

use crate::egress::Egress;
use crate::media::published_track::PublishedTrack;
use crate::stats::{MediaCounters, MediaStats};

/// Where one member's share of the room's effects goes: its session, whatever carries it (a
/// WebSocket client, a publisher without one, a member on another node).
pub trait Mailbox: Send + Sync {
    /// A message for the member's client.
    fn tell(&self, msg: ServerMessage);
    /// The tracks the member may receive changed.
    fn resubscribe(&self);
    /// An order for the member's session.
    fn order(&self, order: Order);
    /// The member's connection as a subscriber (its bandwidth estimate and what it was
    /// sent), for the admin API; `None` where there is none.
    fn egress(&self) -> Option<Arc<Egress>> {
        None
    }
    /// Whether the member's media can reach this room: false for a viewer on a cascade
    /// edge, which has no way to publish here (it cannot be promoted).
    fn can_publish_here(&self) -> bool {
        true
    }
}

struct Inner {
    state: RoomState,
    mailboxes: HashMap<String, Arc<dyn Mailbox>>,
}

pub struct Room {
    pub name: String,
    inner: RwLock<Inner>,
    next_track: AtomicU64,
    /// Totals of tracks that have ended, so room totals never go down.
    retired: MediaCounters,
    /// Participant ids of the current speakers, loudest first.
    speakers: RwLock<Vec<String>>,
    closed: AtomicBool,
}

/// One track's part in a mute.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MutedTrack {
    pub id: String,
    pub kind: TrackKind,
    /// Whether the mute changed its state (it was not muted, or unmuted, already).
    pub changed: bool,
}

impl Room {
    pub fn new(name: String) -> Self {
        Room {
            name,
            inner: RwLock::new(Inner {
                state: RoomState::default(),
                mailboxes: HashMap::new(),
            }),
            next_track: AtomicU64::new(1),
            retired: MediaCounters::default(),
            speakers: RwLock::new(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs `change` on the state and delivers its effects, all under the lock.
    fn change<R>(&self, change: impl FnOnce(&mut RoomState) -> (R, Effects)) -> R {
        let mut inner = self.inner.write();
        let (result, effects) = change(&mut inner.state);
        self.deliver(&inner, effects);
        result
    }

    fn read<R>(&self, read: impl FnOnce(&RoomState) -> R) -> R {
        read(&self.inner.read().state)
    }

    fn deliver(&self, inner: &Inner, effects: Effects) {
        let mailbox = |id: &str| inner.mailboxes.get(id);
        for effect in effects {
            match effect {
                Effect::Tell { to, msg } => {
                    for m in to.iter().filter_map(|id| mailbox(id)) {
                        m.tell(msg.clone());
                    }
                }
                Effect::Resubscribe { to } => {
                    for m in to.iter().filter_map(|id| mailbox(id)) {
                        m.resubscribe();
                    }
                }
                Effect::Order { to, order } => {
                    if let Some(m) = mailbox(&to) {
                        m.order(order);
                    }
                }
                Effect::Retire(track) => {
                    track.close();
                    self.retired.absorb(&track.counters.snapshot());
                }
                Effect::Stop(track) => track.close(),
            }
        }
    }

    pub fn settings(&self) -> RoomSettings {
        self.read(RoomState::settings)
    }

    pub fn is_locked(&self) -> bool {
        self.read(RoomState::is_locked)
    }

    pub fn is_ended(&self) -> bool {
        self.read(RoomState::is_ended)
    }

    /// Marks the room as gone (its last member left); its background work stops.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Adds a member whose effects go to `mailbox`. Its first message is `welcome(what it
    /// may see, its role, the room's settings)`; returns its role (a webinar may have made
    /// it audience). `max_members` is the server's cap per room.
    pub fn join(
        &self,
        joining: Joining,
        mailbox: Arc<dyn Mailbox>,
        max_members: usize,
        welcome: impl FnOnce(Welcome) -> ServerMessage,
    ) -> Result<Role, JoinRefused> {
        let mut inner = self.inner.write();
        let id = joining.id.clone();
        let (first, effects) = inner.state.join(joining, max_members)?;
        let role = first.role;
        mailbox.tell(welcome(first));
        inner.mailboxes.insert(id, mailbox);
        self.deliver(&inner, effects);
        Ok(role)
    }

    /// Sends `id`'s effects to `mailbox` from now on (its session resumed on a new
    /// connection), starting with `welcome(the room as it is now)`. Returns its role, or
    /// `None` if it is not here.
    pub fn rebind(
        &self,
        id: &str,
        mailbox: Arc<dyn Mailbox>,
        welcome: impl FnOnce(Welcome) -> ServerMessage,
    ) -> Option<Role> {
        let mut inner = self.inner.write();
        let (first, effects) = inner.state.rejoin(id)?;
        let role = first.role;
        mailbox.tell(welcome(first));
        inner.mailboxes.insert(id.to_owned(), mailbox);
        self.deliver(&inner, effects);
        Some(role)
    }

    /// Removes a member, retires its tracks and tells the others. Returns whether the room
    /// is now empty.
    pub fn leave(&self, id: &str) -> bool {
        let mut inner = self.inner.write();
        inner.mailboxes.remove(id);
        let effects = inner.state.leave(id);
        self.deliver(&inner, effects);
        inner.state.member_count() == 0
    }

    pub fn role_of(&self, id: &str) -> Option<Role> {
        self.read(|s| s.role_of(id))
    }

    pub fn audience_count(&self) -> usize {
        self.read(RoomState::audience_count)
    }

    /// Sends `audience_count` to the audience when it is due (see
    /// [`RoomState::announce_audience_count`]).
    pub fn announce_audience_count(&self, now: Instant) {
        self.change(|s| ((), s.announce_audience_count(now)))
    }

    /// See [`RoomState::claim_publisher`].
    pub fn claim_publisher(&self, id: &str) -> bool {
        self.inner.write().state.claim_publisher(id)
    }

    pub fn release_publisher(&self, id: &str) {
        self.inner.write().state.release_publisher(id)
    }

    /// The tracks `id` publishes, or `None` if it is not here.
    pub fn tracks_of(&self, id: &str) -> Option<Vec<Arc<PublishedTrack>>> {
        self.read(|s| s.tracks_of(id).map(<[_]>::to_vec))
    }

    /// The connection `id` receives on, or `None` if it is not here.
    pub fn egress_of(&self, id: &str) -> Option<Arc<Egress>> {
        self.inner.read().mailboxes.get(id)?.egress()
    }

    /// Every track published by someone other than `subscriber_id`.
    pub fn tracks_for(&self, subscriber_id: &str) -> Vec<Arc<PublishedTrack>> {
        self.read(|s| s.tracks_for(subscriber_id))
    }

    pub fn has_track(&self, track_id: &str) -> bool {
        self.read(|s| s.has_track(track_id))
    }

    pub fn next_track_id(&self) -> String {
        format!("TR_{}", self.next_track.fetch_add(1, Ordering::Relaxed))
    }

    pub fn publish(&self, track: Arc<PublishedTrack>) {
        self.change(|s| ((), s.publish(track)))
    }

    pub fn unpublish(&self, publisher_id: &str, track_id: &str) {
        self.change(|s| ((), s.unpublish(publisher_id, track_id)))
    }

    pub fn broadcast(&self, msg: ServerMessage) {
        self.change(|s| ((), s.broadcast(msg)))
    }

    /// See [`RoomState::chat`].
    pub fn chat(&self, from: &str, text: String, ts: u64, now: Instant) -> Result<(), ChatRefused> {
        self.change(|s| match s.chat(from, text, ts, now) {
            Ok(effects) => (Ok(()), effects),
            Err(refused) => (Err(refused), Vec::new()),
        })
    }

    /// Mutes (or unmutes) the tracks `id` publishes, of `kind` or all; every member is told
    /// of each track whose state changed (`track_muted`). What a host's `mute_participant`
    /// and the admin API's mute do.
    pub async fn mute_participant(
        &self,
        id: &str,
        kind: Option<TrackKind>,
        muted: bool,
    ) -> Result<Vec<MutedTrack>, ModerationError> {
        let tracks = self
            .tracks_of(id)
            .ok_or(ModerationError::UnknownParticipant)?;
        let mut outcome = Vec::new();
        for track in tracks
            .iter()
            .filter(|t| kind.is_none_or(|k| t.info.kind == k))
        {
            let changed = track.set_muted(muted).await;
            if changed {
                self.broadcast(ServerMessage::TrackMuted {
                    participant_id: id.to_owned(),
                    track_id: track.info.id.clone(),
                    muted,
                });
            }
            outcome.push(MutedTrack {
                id: track.info.id.clone(),
                kind: track.info.kind,
                changed,
            });
        }
        Ok(outcome)
    }

    /// See [`RoomState::kick`].
    pub fn kick(&self, id: &str) -> Result<(), ModerationError> {
        self.change(|s| match s.kick(id) {
            Ok(effects) => (Ok(()), effects),
            Err(e) => (Err(e), Vec::new()),
        })
    }

    /// See [`RoomState::set_role`]. A member whose mailbox cannot publish here (a viewer on
    /// a cascade edge) is not given a role that publishes.
    pub fn set_role(&self, id: &str, role: Role) -> Result<(), ModerationError> {
        let mut inner = self.inner.write();
        let elsewhere = inner
            .mailboxes
            .get(id)
            .is_some_and(|m| !m.can_publish_here());
        if elsewhere && role.can_publish() {
            return Err(ModerationError::ElsewhereAudience);
        }
        match inner.state.set_role(id, role) {
            Ok(effects) => {
                self.deliver(&inner, effects);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// See [`RoomState::set_audience_elsewhere`].
    pub fn set_audience_elsewhere(&self, count: usize) {
        self.inner.write().state.set_audience_elsewhere(count)
    }

    /// See [`RoomState::set_locked`].
    pub fn set_locked(&self, locked: bool) {
        self.change(|s| ((), s.set_locked(locked)))
    }

    /// Ends the room (see [`RoomState::end`]). Returns false if it had ended already. Use
    /// [`crate::Sfu::end_room`], which also frees the room's name.
    pub(crate) fn end(&self) -> bool {
        self.change(|s| match s.end() {
            Some(effects) => (true, effects),
            None => (false, Vec::new()),
        })
    }

    /// Each member with an audio track and its average level since the last call.
    pub fn audio_levels(&self) -> Vec<(String, f64)> {
        self.read(|s| {
            s.audio_tracks()
                .map(|(id, audio)| (id.to_owned(), audio.audio_level.take().0))
                .collect()
        })
    }

    pub fn set_active_speakers(&self, speakers: Vec<String>) {
        *self.speakers.write() = speakers;
    }

    /// Participant ids of the current speakers, loudest first.
    pub fn active_speakers(&self) -> Vec<String> {
        self.speakers.read().clone()
    }

    pub fn member_count(&self) -> usize {
        self.read(RoomState::member_count)
    }

    pub fn track_count(&self) -> usize {
        self.read(|s| s.tracks().count())
    }

    pub fn participants(&self) -> Vec<Participant> {
        self.read(RoomState::participants)
    }

    pub fn media_stats(&self) -> MediaStats {
        let mut total = self.retired.snapshot();
        self.read(|s| {
            for t in s.tracks() {
                total += t.counters.snapshot();
            }
        });
        total
    }
}
