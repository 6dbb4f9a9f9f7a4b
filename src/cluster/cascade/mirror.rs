//! One room mirrored on an edge node: a hidden relay participant in the room on its node
//! (a webrtc-rs client, `roomcast_bots::Bot`, over the owner's internal URL) receives every
//! published track once, and this node republishes each into a local room of the same name,
//! under the same participant and track ids, where the edge's audience subscribes through
//! the normal `PublishedTrack` → `DownTrack` path.
//!
//! The owner's room events reach the local room in the order the relay receives them (one
//! task applies them): staff joining and leaving ("ghost" members here, whose mailboxes
//! drop everything), tracks, mutes, chat, roles, lock, end. Across the relay go: the
//! layers the edge's subscribers want (each simulcast layer in use here arrives as a stream
//! of its own: the lowest on this relay, the others on one more relay each,
//! [`super::layer_relay`]; `off` when no viewer here wants it), keyframe requests (the
//! local track's per-layer requester throttles them and sends them on the layer's own
//! relay, so a wave of edge viewers costs the publisher one request per layer), and NACKs
//! (each relay's PeerConnection asks the owner; the local track's cache answers the edge's
//! viewers).
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use roomcast_bots::{Bot, MessageCursor};
use roomcast_cluster::NodeInfo;
use roomcast_codec::VideoCodec;
use roomcast_protocol::{
    ClientMessage, Participant, Role, RoomSettings, ServerMessage, Track, TrackKind,
};
use roomcast_sfu::media::layer_selector::LayerSet;
use roomcast_sfu::media::published_track::{LayerInput, PublishedTrack, SEND_BUFFER_BYTES};
use roomcast_sfu::room::{Joining, Mailbox, Order, Room};
use roomcast_sfu::Sfu;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::layer_demand::{LayerDemand, LAYERS};
use super::layer_gate::{Label, LayerGate};
use super::layer_relay::{self, quality_of, Labels, LayerRelay};
use super::uplink::{self, UPLINK_ID};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::track::track_remote::TrackRemote;

/// How often the edge's demand is compared with what the relay asked for, and idleness
/// checked.
const TICK: Duration = Duration::from_millis(200);
/// A mirror nobody on this node has used for this long closes (the relay leaves).
const IDLE: Duration = Duration::from_secs(10);
/// After a relay for a layer failed to open, the next try waits this long.
const RETRY: Duration = Duration::from_secs(2);
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

/// One mirrored track and what each layer's relay asked the owner for.
struct MirrorTrack {
    track: Arc<PublishedTrack>,
    /// Per layer (the relay carrying it): what it last asked for (`set_quality`), `None` =
    /// off; unset before the first. A track without simulcast uses the first only.
    asked: [Option<Option<u8>>; LAYERS],
    /// Per layer: what the last demand update wanted of it.
    wanted: [Option<u8>; LAYERS],
    demand: LayerDemand,
}

/// The relay of one layer above the lowest.
#[derive(Default)]
enum Slot {
    #[default]
    Closed,
    Opening,
    Open(Arc<LayerRelay>),
    /// Failed to open; not retried before this.
    Failed(Instant),
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
    /// The relays of layers 1 and 2 (index = layer - 1).
    layer_relays: [Slot; LAYERS - 1],
    /// A layer relay's streams whose track is not mirrored yet, by (track id, layer).
    unbound: HashMap<(String, u8), Arc<TrackRemote>>,
    /// When the last member of this node was seen in the room.
    last_used: Option<Instant>,
}

pub struct Mirror {
    pub room: String,
    /// The room's settings as the owner reported them to the relay.
    pub settings: RoomSettings,
    sfu: Arc<Sfu>,
    /// The first relay: the room's events, the audio, and the lowest layer of video.
    relay: Bot,
    pc: Arc<RTCPeerConnection>,
    /// Which layer the owner says each of the first relay's video streams carries.
    labels: Labels,
    /// Where the layer relays connect (the owner's relay URL), and as whom.
    relay_url: String,
    node_id: String,
    /// The layer relays' streams, with their layer.
    layer_media: mpsc::UnboundedSender<(u8, Arc<TrackRemote>)>,
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
        let (layer_media, layered) = mpsc::unbounded_channel();
        let url = format!(
            "{}?{}",
            crate::cluster::relay::ws_url(&owner.internal_url),
            super::RELAY_QUERY
        );
        let config =
            layer_relay::relay_config(url.clone(), room, format!("relay {node_id}"), move |r| {
                let _ = media_tx.send(r);
            });
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
            labels: Labels::default(),
            relay_url: url,
            node_id: node_id.to_owned(),
            layer_media,
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
        Ok((
            mirror,
            MediaStream {
                media,
                layered,
                cursor,
            },
        ))
    }

    fn local_room(&self) -> Option<Arc<Room>> {
        self.sfu.room(&self.room)
    }

    /// Applies the owner's events and binds arriving media until the mirror ends.
    pub async fn run(self: Arc<Self>, media: MediaStream) -> MirrorEnd {
        let MediaStream {
            mut media,
            mut layered,
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
                Some((layer, remote)) = layered.recv() => self.bind_layer(layer, remote),
                _ = tick.tick() => {
                    let now = Instant::now();
                    if self.is_idle(now) {
                        break MirrorEnd::Idle;
                    }
                    self.update_demand(now).await;
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
                state.unbound.retain(|(id, _), _| *id != track_id);
                drop(state);
                self.labels.forget(&track_id);
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
                layer,
                seq,
                ..
            } => self.labels.set(track_id, layer, seq),
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

    /// Media for a track arrived on the first relay: once the track is announced, it
    /// becomes a local track that this node's audience subscribes to. Its lowest layer (or
    /// only one) is this stream; the others come on the layer relays.
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
        state.tracks.insert(
            track_id.clone(),
            MirrorTrack {
                track: Arc::clone(&track),
                asked: [None; LAYERS],
                wanted: [None; LAYERS],
                demand: LayerDemand::default(),
            },
        );
        let later: Vec<(u8, Arc<TrackRemote>)> = (1..LAYERS as u8)
            .filter_map(|l| Some((l, state.unbound.remove(&(track_id.clone(), l))?)))
            .collect();
        drop(state);
        // A simulcast track's stream here is its lowest layer, while the owner says so.
        let pinned = (track.layer_count() > 1).then_some(0);
        if let Some(input) = track.start_layer(&remote, 0) {
            let label = self.labels.of(&track_id);
            tokio::spawn(forward(
                Arc::clone(&track),
                remote,
                input,
                (label, pinned),
                self.closed.clone(),
            ));
        }
        match self.local_room() {
            Some(room) => room.publish(Arc::clone(&track)),
            None => track.close(),
        }
        for (layer, remote) in later {
            self.bind_layer(layer, remote);
        }
        tracing::debug!(room = %self.room, %track_id, "cascade: track mirrored");
    }

    /// A layer relay's stream: fed into that layer's input of the mirrored track (once the
    /// first relay has brought the track), its keyframe requests sent on that relay.
    fn bind_layer(&self, layer: u8, remote: Arc<TrackRemote>) {
        let track_id = remote.id();
        let mut state = self.state.lock();
        let relay = match state.layer_relays.get(usize::from(layer).wrapping_sub(1)) {
            Some(Slot::Open(relay)) => Arc::clone(relay),
            _ => return,
        };
        let Some(track) = state.tracks.get(&track_id).map(|t| Arc::clone(&t.track)) else {
            state.unbound.insert((track_id, layer), remote);
            return;
        };
        drop(state);
        if track.info.kind != TrackKind::Video || layer >= track.layer_count() {
            return;
        }
        let Some(input) = track.start_layer_from(&remote, layer, Arc::downgrade(&relay.pc)) else {
            return;
        };
        let label = relay.labels.of(&track_id);
        tokio::spawn(forward(
            track,
            remote,
            input,
            (label, Some(layer)),
            self.closed.clone(),
        ));
        tracing::debug!(room = %self.room, %track_id, layer, "cascade: layer stream mirrored");
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

    /// Asks the owner, on each layer's relay, for the layers this node's subscribers want
    /// of each video track (each viewer's wish within its bandwidth and the layer it is on;
    /// at least the lowest while it has subscribers, so a paused viewer's estimate has
    /// media to grow on), and `off` for the others; opens a layer's relay when a viewer
    /// first wants that layer.
    async fn update_demand(self: &Arc<Self>, now: Instant) {
        let mut asks: Vec<(u8, String, Option<u8>)> = Vec::new();
        let mut open = Vec::new();
        {
            let mut state = self.state.lock();
            let State {
                tracks,
                layer_relays,
                ..
            } = &mut *state;
            for (id, t) in tracks.iter_mut() {
                if t.track.info.kind != TrackKind::Video {
                    continue;
                }
                let wants = t.demand.update(
                    now,
                    t.track.layer_count(),
                    t.track.subscriber_count() > 0,
                    t.track.demanded_layers(),
                );
                t.wanted = wants;
                for (layer, want) in (0..LAYERS as u8).zip(wants) {
                    let l = usize::from(layer);
                    if layer > 0 {
                        match &layer_relays[l - 1] {
                            Slot::Open(_) => {}
                            Slot::Closed if want.is_some() => open.push(layer),
                            Slot::Failed(at) if want.is_some() && now >= *at => open.push(layer),
                            _ => {}
                        }
                        if !matches!(layer_relays[l - 1], Slot::Open(_)) {
                            continue;
                        }
                    }
                    if t.asked[l] != Some(want) {
                        t.asked[l] = Some(want);
                        asks.push((layer, id.clone(), want));
                    }
                }
            }
            open.sort_unstable();
            open.dedup();
            for &layer in &open {
                layer_relays[usize::from(layer) - 1] = Slot::Opening;
            }
        }
        for layer in open {
            tokio::spawn(Arc::clone(self).open_layer_relay(layer));
        }
        for (layer, track_id, want) in asks {
            let quality = quality_of(want);
            tracing::debug!(room = %self.room, %track_id, layer, ?quality, "cascade: asking the owner");
            if layer == 0 {
                let _ = self
                    .relay
                    .send(&ClientMessage::SetQuality { track_id, quality })
                    .await;
            } else if let Some(relay) = self.layer_relay(layer) {
                relay.ask(track_id, quality).await;
            }
        }
    }

    fn layer_relay(&self, layer: u8) -> Option<Arc<LayerRelay>> {
        match self
            .state
            .lock()
            .layer_relays
            .get(usize::from(layer).wrapping_sub(1))
        {
            Some(Slot::Open(relay)) => Some(Arc::clone(relay)),
            _ => None,
        }
    }

    /// Opens the relay of `layer` and reads its messages until it or the mirror ends; the
    /// next demand update opens it again if it is still wanted.
    async fn open_layer_relay(self: Arc<Self>, layer: u8) {
        let slot = usize::from(layer) - 1;
        let name = format!("relay {} layer {layer}", self.node_id);
        let opened = tokio::select! {
            _ = self.closed.cancelled() => return,
            opened = LayerRelay::open(
                self.relay_url.clone(),
                &self.room,
                name,
                layer,
                self.layer_media.clone(),
            ) => opened,
        };
        let relay = match opened {
            Ok(relay) => relay,
            Err(e) => {
                tracing::warn!(room = %self.room, layer, error = %e, "cascade: a layer relay cannot join the room's node");
                self.state.lock().layer_relays[slot] = Slot::Failed(Instant::now() + RETRY);
                return;
            }
        };
        {
            let mut state = self.state.lock();
            state.layer_relays[slot] = Slot::Open(Arc::clone(&relay));
        }
        tracing::debug!(room = %self.room, layer, "cascade: layer relay joined");
        // Ask for this layer of every track that wants it now, not a tick later.
        let asks: Vec<(String, Option<u8>)> = {
            let mut state = self.state.lock();
            state
                .tracks
                .iter_mut()
                .filter(|(_, t)| t.track.info.kind == TrackKind::Video)
                .map(|(id, t)| {
                    let l = usize::from(layer);
                    t.asked[l] = Some(t.wanted[l]);
                    (id.clone(), t.wanted[l])
                })
                .collect()
        };
        for (track_id, want) in asks {
            relay.ask(track_id, quality_of(want)).await;
        }
        relay.run(self.closed.clone()).await;
        relay.leave().await;
        let mut state = self.state.lock();
        if matches!(&state.layer_relays[slot], Slot::Open(r) if Arc::ptr_eq(r, &relay)) {
            state.layer_relays[slot] = Slot::Closed;
        }
    }

    async fn shut_down(&self, end: MirrorEnd) {
        self.closed.cancel();
        let _ = self.relay.send(&ClientMessage::Leave).await;
        let relays: Vec<Arc<LayerRelay>> = (1..LAYERS as u8)
            .filter_map(|l| self.layer_relay(l))
            .collect();
        for relay in relays {
            relay.leave().await;
        }
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
                    url: None,
                });
                self.sfu.end_room(&room);
            }
        }
        tracing::info!(room = %self.room, ?end, "cascade: mirror closed");
    }
}

/// The relays' media, and where the first relay's message stream continues after
/// `joined`.
pub struct MediaStream {
    media: mpsc::UnboundedReceiver<Arc<TrackRemote>>,
    layered: mpsc::UnboundedReceiver<(u8, Arc<TrackRemote>)>,
    cursor: MessageCursor,
}

/// Reads one stream of a mirrored track from a relay and fans it out here as `input`'s
/// layer; keyframe requests go back to the owner, throttled per layer. With a pinned layer
/// (`label`'s second half), only the packets the owner says are that layer pass
/// ([`LayerGate`]: with the switch's keyframe even when it came before the owner's word).
async fn forward(
    track: Arc<PublishedTrack>,
    remote: Arc<TrackRemote>,
    input: LayerInput,
    (label, pinned): (Arc<AtomicU32>, Option<u8>),
    closed: CancellationToken,
) {
    let mut buf = vec![0u8; 1500];
    let mut scratch = Vec::with_capacity(SEND_BUFFER_BYTES);
    let codec = VideoCodec::from_mime(&remote.codec().capability.mime_type);
    let mut gate = pinned.map(LayerGate::new);
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
        let now = Instant::now();
        let mut wanted = LayerSet::default();
        match gate.as_mut() {
            Some(gate) => {
                let keyframe = codec.is_some_and(|c| c.is_keyframe(&packet.payload));
                let at = (
                    packet.header.sequence_number,
                    packet.header.timestamp,
                    keyframe,
                );
                gate.admit(Label::load(&label), packet, at, |p| {
                    wanted = wanted.union(track.receive(p, &input, now, now, &mut scratch));
                });
            }
            None => wanted = track.receive(packet, &input, now, now, &mut scratch),
        }
        for layer in wanted.iter() {
            track.request_keyframe(layer).await;
        }
    }
    tracing::debug!(track_id = %track.info.id, layer = input.layer, "cascade: mirrored stream ended");
}
