//! One room mirrored on an edge node: a hidden relay participant in the room on its node
//! (a webrtc-rs client, `roomcast_bots::Bot`, over the owner's internal URL) receives every
//! published track once, and this node republishes each into a local room of the same name,
//! under the same participant and track ids, where the edge's audience subscribes through
//! the normal `PublishedTrack` → `DownTrack` path.
//!
//! The owner's room events reach the local room in the order the relay receives them (one
//! task applies them): staff joining and leaving ("ghost" members here, whose mailboxes
//! drop everything), tracks, mutes, chat, roles, lock, end. Across the relay go: the layer
//! the edge's subscribers want (the highest any of them takes, or `off` when it has none),
//! keyframe requests (the local track's per-layer requester throttles them, so a wave of
//! edge viewers costs the publisher one request per layer), and NACKs (the relay's
//! PeerConnection asks the owner; the local track's cache answers the edge's viewers).
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use roomcast_bots::{Bot, BotConfig, MessageCursor, TrackSink};
use roomcast_cluster::NodeInfo;
use roomcast_protocol::{
    ClientMessage, Participant, Quality, Role, RoomSettings, ServerMessage, Track, TrackKind,
};
use roomcast_sfu::media::published_track::{LayerInput, PublishedTrack, SEND_BUFFER_BYTES};
use roomcast_sfu::room::{Joining, Mailbox, Order, Room};
use roomcast_sfu::Sfu;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::uplink::{self, UPLINK_ID};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::track::track_remote::TrackRemote;

/// How often the edge's demand is compared with what the relay asked for, and idleness
/// checked.
const TICK: Duration = Duration::from_millis(200);
/// A mirror nobody on this node has used for this long closes (the relay leaves).
const IDLE: Duration = Duration::from_secs(10);
/// How long connecting and joining the owner may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Server messages the relay keeps unread at most (it reads them as they come).
const MESSAGE_LOG: usize = 8192;
/// The rids of a mirrored simulcast track (the owner's own names are not told to
/// subscribers; only the layer index crosses, in `track_layer`).
const MIRROR_RIDS: [&str; 3] = ["q", "h", "f"];

/// A mirrored member's mailbox: the member lives on the owner, nothing here reaches it.
struct Ghost;

impl Mailbox for Ghost {
    fn tell(&self, _msg: ServerMessage) {}
    fn resubscribe(&self) {}
    fn order(&self, _order: Order) {}
}

/// One mirrored track and the layer the relay receives of it.
struct MirrorTrack {
    track: Arc<PublishedTrack>,
    /// The layer the owner says it forwards to the relay now (`track_layer`): what the
    /// packets are labelled with.
    receiving: Arc<AtomicU8>,
    /// What the relay last asked for (`set_quality`), `None` = off; unset before the first.
    asked: Option<Option<u8>>,
}

#[derive(Default)]
struct State {
    /// Members mirrored from the owner.
    ghosts: HashSet<String>,
    /// Tracks announced by the owner, waiting for their media (`on_track`).
    announced: HashMap<String, (String, Track)>,
    /// Media whose announcement has not arrived yet, by track id.
    unannounced: HashMap<String, Arc<TrackRemote>>,
    tracks: HashMap<String, MirrorTrack>,
    /// When the last member of this node was seen in the room.
    last_used: Option<Instant>,
}

pub struct Mirror {
    pub room: String,
    /// The room's settings as the owner reported them to the relay.
    pub settings: RoomSettings,
    sfu: Arc<Sfu>,
    relay: Bot,
    pc: Arc<RTCPeerConnection>,
    state: Mutex<State>,
    closed: CancellationToken,
}

/// Why a mirror stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorEnd {
    Idle,
    /// A host ended the room on its node.
    RoomEnded,
    /// The owner's connection ended (it died, drained, or this node is stopping).
    OwnerLost,
}

impl Mirror {
    /// Joins the room on `owner` as this node's hidden relay and mirrors who is there now.
    /// Returns once the local room has the owner's members (not yet their media).
    pub async fn open(
        sfu: Arc<Sfu>,
        node_id: &str,
        owner: &NodeInfo,
        room: &str,
    ) -> anyhow::Result<(Arc<Mirror>, MediaStream)> {
        let (media_tx, media) = mpsc::unbounded_channel();
        let url = format!(
            "{}?{}",
            crate::cluster::relay::ws_url(&owner.internal_url),
            super::RELAY_QUERY
        );
        let mut config = BotConfig::new(url, room, format!("relay {node_id}"))
            .with_publish(false, None)
            .with_role(Role::Audience)
            .with_connect_timeout(CONNECT_TIMEOUT);
        config.message_log_capacity = MESSAGE_LOG;
        config.track_sink = Some(TrackSink(Arc::new(move |remote| {
            let _ = media_tx.send(remote);
        })));
        let relay = Bot::join(config).await?;
        let mut cursor = MessageCursor::START;
        let (participants, settings) = loop {
            match relay.next_message(&mut cursor).await? {
                ServerMessage::Joined {
                    participants,
                    room_settings,
                    ..
                } => break (participants, room_settings.unwrap_or_default()),
                _ => continue,
            }
        };
        let closed = CancellationToken::new();
        let (uplink, link) =
            uplink::connect(Arc::clone(&sfu), &owner.internal_url, room, closed.clone()).await?;
        tokio::spawn(link);
        let joining = Joining {
            id: UPLINK_ID.to_owned(),
            name: "cascade uplink".to_owned(),
            role: Role::Host,
            role_given: true,
            room_settings: Some(settings),
            hidden: true,
        };
        let mailbox: Arc<dyn Mailbox> = Arc::clone(&uplink) as Arc<dyn Mailbox>;
        if let Err(refused) = sfu.join(room, joining, mailbox, |_| ServerMessage::RoomEnded) {
            closed.cancel();
            anyhow::bail!("the mirror room refused its uplink: {refused:?}");
        }
        let mirror = Arc::new(Mirror {
            room: room.to_owned(),
            settings,
            pc: relay.peer_connection(),
            sfu,
            relay,
            state: Mutex::new(State {
                last_used: Some(Instant::now()),
                ..State::default()
            }),
            closed,
        });
        for p in participants {
            mirror.ghost_joined(p);
        }
        tracing::info!(room = %mirror.room, owner = %owner.id, "cascade: mirroring the room");
        Ok((mirror, media_with_cursor(media, cursor)))
    }

    fn local_room(&self) -> Option<Arc<Room>> {
        self.sfu.room(&self.room)
    }

    /// Applies the owner's events and binds arriving media until the mirror ends.
    pub async fn run(self: Arc<Self>, media: MediaStream) -> MirrorEnd {
        let MediaStream {
            mut media,
            mut cursor,
        } = media;
        let mut tick = tokio::time::interval(TICK);
        let end = loop {
            tokio::select! {
                _ = self.closed.cancelled() => break MirrorEnd::OwnerLost,
                msg = self.relay.next_message(&mut cursor) => match msg {
                    Ok(msg) => {
                        if let Some(end) = self.apply(msg).await {
                            break end;
                        }
                    }
                    Err(_) => break MirrorEnd::OwnerLost,
                },
                Some(remote) = media.recv() => self.bind(remote),
                _ = tick.tick() => {
                    if self.is_idle(Instant::now()) {
                        break MirrorEnd::Idle;
                    }
                    self.update_demand().await;
                }
            }
        };
        self.shut_down(end).await;
        end
    }

    /// Stops the mirror (this node is stopping).
    pub fn close(&self) {
        self.closed.cancel();
    }

    async fn apply(&self, msg: ServerMessage) -> Option<MirrorEnd> {
        match msg {
            ServerMessage::ParticipantJoined { participant } => self.ghost_joined(participant),
            ServerMessage::ParticipantLeft { participant_id } => self.ghost_left(&participant_id),
            ServerMessage::TrackPublished {
                participant_id,
                track,
            } => self.announce(participant_id, track),
            ServerMessage::TrackUnpublished {
                participant_id,
                track_id,
            } => {
                let mut state = self.state.lock();
                state.announced.remove(&track_id);
                state.tracks.remove(&track_id);
                drop(state);
                if let Some(room) = self.local_room() {
                    room.unpublish(&participant_id, &track_id);
                }
            }
            ServerMessage::TrackMuted {
                ref track_id,
                muted,
                ..
            } => {
                let track = self
                    .state
                    .lock()
                    .tracks
                    .get(track_id)
                    .map(|t| Arc::clone(&t.track));
                if let Some(track) = track {
                    track.set_muted(muted).await;
                }
                self.broadcast(msg);
            }
            ServerMessage::TrackLayer {
                ref track_id,
                layer: Some(layer),
                ..
            } => {
                if let Some(t) = self.state.lock().tracks.get(track_id) {
                    t.receiving.store(layer, Ordering::Relaxed);
                }
            }
            ServerMessage::Chat { .. } => self.broadcast(msg),
            ServerMessage::RoleChanged {
                participant_id,
                role,
            } => self.ghost_role(&participant_id, role),
            // The room's node counts every node's audience (this one's through the uplink).
            ServerMessage::AudienceCount { count } => {
                if let Some(room) = self.local_room() {
                    room.set_audience_elsewhere(count);
                }
            }
            ServerMessage::RoomLocked { locked } => {
                if let Some(room) = self.local_room() {
                    room.set_locked(locked);
                }
            }
            ServerMessage::RoomEnded => return Some(MirrorEnd::RoomEnded),
            ServerMessage::Reconnect { .. } => return Some(MirrorEnd::OwnerLost),
            // This node's own detector announces speakers from the same audio levels, and
            // its own audience count (see docs/cluster.md); negotiation is the relay's.
            _ => {}
        }
        None
    }

    fn ghost_left(&self, id: &str) {
        let was_here = self.state.lock().ghosts.remove(id);
        match self.local_room() {
            Some(room) if was_here => self.sfu.leave(&room, id),
            _ => {}
        }
    }

    fn ghost_role(&self, id: &str, role: Role) {
        let here = self.state.lock().ghosts.contains(id);
        match self.local_room() {
            Some(room) if here => {
                let _ = room.set_role(id, role);
            }
            _ => {}
        }
    }

    fn broadcast(&self, msg: ServerMessage) {
        if let Some(room) = self.local_room() {
            room.broadcast(msg);
        }
    }

    /// A member of the owner's room that this node's audience may see: joined here with
    /// the same id, name and role. The first one brings the room's settings.
    fn ghost_joined(&self, p: Participant) {
        if !self.state.lock().ghosts.insert(p.id.clone()) {
            return;
        }
        let fresh = self.local_room().is_none();
        // Settings apply only to a host's first join: join so, then take the real role.
        let joining = Joining {
            id: p.id.clone(),
            name: p.name.clone(),
            role: if fresh { Role::Host } else { p.role },
            role_given: true,
            room_settings: Some(self.settings),
            hidden: false,
        };
        match self.sfu.join(&self.room, joining, Arc::new(Ghost), |_| {
            ServerMessage::RoomEnded
        }) {
            Ok((room, role)) => {
                if role != p.role {
                    let _ = room.set_role(&p.id, p.role);
                }
            }
            Err(refused) => {
                tracing::warn!(room = %self.room, ?refused, "cascade: a member of the room cannot be mirrored");
                self.state.lock().ghosts.remove(&p.id);
                return;
            }
        }
        for track in p.tracks {
            self.announce(p.id.clone(), track);
        }
    }

    fn announce(&self, publisher_id: String, track: Track) {
        let mut state = self.state.lock();
        let remote = state.unannounced.remove(&track.id);
        state
            .announced
            .insert(track.id.clone(), (publisher_id, track));
        drop(state);
        if let Some(remote) = remote {
            self.bind(remote);
        }
    }

    /// Media for a track arrived on the relay: once the track is announced, it becomes a
    /// local track that this node's audience subscribes to.
    fn bind(&self, remote: Arc<TrackRemote>) {
        let track_id = remote.id();
        let mut state = self.state.lock();
        let Some((publisher_id, info)) = state.announced.remove(&track_id) else {
            state.unannounced.insert(track_id, remote);
            return;
        };
        let rids: Vec<String> = if info.simulcast && info.kind == TrackKind::Video {
            MIRROR_RIDS.iter().map(|r| (*r).to_owned()).collect()
        } else {
            Vec::new()
        };
        let track = Arc::new(PublishedTrack::new(
            info.clone(),
            publisher_id,
            format!("cascade-{}", info.id),
            remote.codec(),
            &rids,
            Arc::downgrade(&self.pc),
        ));
        // Every layer is read from the one stream the owner sends (its SSRC is where this
        // node's keyframe requests go); the packets are labelled with the layer it says.
        let inputs: Vec<LayerInput> = (0..track.layer_count())
            .filter_map(|layer| track.start_layer(&remote, layer))
            .collect();
        let top = track.layer_count().saturating_sub(1);
        let receiving = Arc::new(AtomicU8::new(top));
        state.tracks.insert(
            track_id.clone(),
            MirrorTrack {
                track: Arc::clone(&track),
                receiving: Arc::clone(&receiving),
                asked: None,
            },
        );
        drop(state);
        tokio::spawn(forward(
            Arc::clone(&track),
            remote,
            inputs,
            receiving,
            self.closed.clone(),
        ));
        match self.local_room() {
            Some(room) => room.publish(track),
            None => track.close(),
        }
        tracing::debug!(room = %self.room, %track_id, "cascade: track mirrored");
    }

    fn is_idle(&self, now: Instant) -> bool {
        let members = self.local_room().map_or(0, |r| r.member_count());
        let mut state = self.state.lock();
        // Ghosts and the uplink are not this node's.
        if members > state.ghosts.len() + 1 {
            state.last_used = Some(now);
            return false;
        }
        state
            .last_used
            .is_some_and(|at| now.saturating_duration_since(at) >= IDLE)
    }

    /// Asks the owner for the layer this node's subscribers want of each video track (the
    /// highest any of them takes, at least the lowest), or `off` when it has none here.
    async fn update_demand(&self) {
        let mut asks = Vec::new();
        {
            let mut state = self.state.lock();
            for (id, t) in state.tracks.iter_mut() {
                if t.track.info.kind != TrackKind::Video {
                    continue;
                }
                // With subscribers, at least the lowest layer keeps coming even while they
                // are all paused or off here: what they will want is measured from it.
                let demand =
                    (t.track.subscriber_count() > 0).then(|| t.track.demanded_layer().unwrap_or(0));
                if t.asked != Some(demand) {
                    t.asked = Some(demand);
                    asks.push((id.clone(), demand));
                }
            }
        }
        for (track_id, demand) in asks {
            let quality = match demand {
                None => Quality::Off,
                Some(0) => Quality::Low,
                Some(1) => Quality::Medium,
                Some(_) => Quality::High,
            };
            tracing::debug!(room = %self.room, %track_id, ?quality, "cascade: asking the owner");
            let _ = self
                .relay
                .send(&ClientMessage::SetQuality { track_id, quality })
                .await;
        }
    }

    async fn shut_down(&self, end: MirrorEnd) {
        self.closed.cancel();
        let _ = self.relay.send(&ClientMessage::Leave).await;
        let ghosts: Vec<String> = self.state.lock().ghosts.drain().collect();
        let Some(room) = self.local_room() else {
            return;
        };
        match end {
            MirrorEnd::Idle => {
                for id in ghosts {
                    self.sfu.leave(&room, &id);
                }
                self.sfu.leave(&room, UPLINK_ID);
            }
            MirrorEnd::RoomEnded => {
                self.sfu.end_room(&room);
            }
            MirrorEnd::OwnerLost => {
                // Join afresh: that places the room (and this audience) again.
                room.broadcast(ServerMessage::Reconnect {
                    reason: "the room's node is gone".to_owned(),
                });
                self.sfu.end_room(&room);
            }
        }
        tracing::info!(room = %self.room, ?end, "cascade: mirror closed");
    }
}

/// The relay's media, and where its message stream continues after `joined`.
pub struct MediaStream {
    media: mpsc::UnboundedReceiver<Arc<TrackRemote>>,
    cursor: MessageCursor,
}

fn media_with_cursor(
    media: mpsc::UnboundedReceiver<Arc<TrackRemote>>,
    cursor: MessageCursor,
) -> MediaStream {
    MediaStream { media, cursor }
}

/// Reads one mirrored track's RTP from the relay and fans it out here, labelled with the
/// layer the owner forwards; keyframe requests go back to the owner, throttled per layer.
async fn forward(
    track: Arc<PublishedTrack>,
    remote: Arc<TrackRemote>,
    inputs: Vec<LayerInput>,
    receiving: Arc<AtomicU8>,
    closed: CancellationToken,
) {
    let mut buf = vec![0u8; 1500];
    let mut scratch = Vec::with_capacity(SEND_BUFFER_BYTES);
    loop {
        let packet = tokio::select! {
            _ = closed.cancelled() => break,
            read = remote.read(&mut buf) => match read {
                Ok((packet, _)) => packet,
                Err(_) => break,
            },
        };
        if track.is_closed() {
            break;
        }
        let layer = usize::from(receiving.load(Ordering::Relaxed));
        let Some(input) = inputs.get(layer).or(inputs.first()) else {
            break;
        };
        let now = Instant::now();
        let wanted = track.receive(packet, input, now, now, &mut scratch);
        for layer in wanted.iter() {
            track.request_keyframe(layer).await;
        }
    }
    tracing::debug!(track_id = %track.info.id, "cascade: mirrored track ended");
}
