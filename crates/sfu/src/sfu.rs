//! The server's rooms, the shared media port, and totals across them.
use std::sync::Arc;

use dashmap::DashMap;
use serde::Serialize;

use crate::active_speakers;
use crate::error::SfuError;
use crate::peer::{MediaConfig, PeerFactory};
use crate::room::{JoinRefused, Joining, Mailbox, Room, Welcome};
use crate::stats::{MediaCounters, MediaStats, ServerMetrics};
use roomcast_protocol::{Role, ServerMessage};

#[derive(Debug, Clone)]
pub struct SfuConfig {
    pub media: MediaConfig,
    /// Handed to clients in `joined` and `resumed`, with their own TURN credentials.
    pub ice: crate::turn::IceServers,
    pub max_participants_per_room: usize,
    /// Most rooms at once; a join that would create one more is refused (0: no limit).
    pub max_rooms: usize,
    /// Share each subscriber's estimated bandwidth among its tracks (pausing what does not
    /// fit); off, every subscriber gets what it asks for.
    pub congestion_control: bool,
    /// When set, every `join` must carry an HS256 JWT signed with this secret (see
    /// [`crate::auth`]); when `None`, the server is open.
    pub jwt_secret: Option<String>,
    /// A token whose `exp` is further away than this is refused.
    pub max_token_ttl: std::time::Duration,
}

pub struct Sfu {
    pub config: SfuConfig,
    pub peers: PeerFactory,
    rooms: DashMap<String, Arc<Room>>,
    /// Totals of rooms that have closed.
    retired: MediaCounters,
    /// Join latency and signaling errors, for `GET /metrics`.
    pub metrics: ServerMetrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomStats {
    pub room: String,
    pub participants: usize,
    pub tracks: usize,
    pub media: MediaStats,
}

/// What `GET /api/stats` serves.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStats {
    pub rooms: usize,
    pub participants: usize,
    pub tracks: usize,
    pub media: MediaStats,
    pub per_room: Vec<RoomStats>,
}

impl Sfu {
    pub async fn new(config: SfuConfig) -> Result<Arc<Sfu>, SfuError> {
        let peers = PeerFactory::bind(&config.media).await?;
        Ok(Arc::new(Sfu {
            config,
            peers,
            rooms: DashMap::new(),
            retired: MediaCounters::default(),
            metrics: ServerMetrics::default(),
        }))
    }

    pub fn udp_port(&self) -> u16 {
        self.peers.udp_port()
    }

    /// Joins `joining` to `room_name`, creating the room if needed (see [`Room::join`]).
    /// Creation and the emptiness check on leaving happen under the same map lock, so
    /// nobody joins a room being removed. Returns the room and the member's role.
    pub fn join(
        &self,
        room_name: &str,
        joining: Joining,
        mailbox: Arc<dyn Mailbox>,
        welcome: impl FnOnce(Welcome) -> ServerMessage,
    ) -> Result<(Arc<Room>, Role), JoinRefused> {
        if self.room_limit_reached(room_name) {
            return Err(JoinRefused::TooManyRooms);
        }
        let entry = self.rooms.entry(room_name.to_owned()).or_insert_with(|| {
            let room = Arc::new(Room::new(room_name.to_owned()));
            tokio::spawn(active_speakers::run(Arc::downgrade(&room)));
            room
        });
        let room = Arc::clone(entry.value());
        let role = room.join(
            joining,
            mailbox,
            self.config.max_participants_per_room,
            welcome,
        )?;
        drop(entry);
        Ok((room, role))
    }

    /// Whether joining `room_name` would create a room beyond `max_rooms`. Checked before
    /// the room map is locked for the join, so rooms created concurrently can overshoot the
    /// limit by a few.
    pub fn room_limit_reached(&self, room_name: &str) -> bool {
        let max = self.config.max_rooms;
        max > 0 && !self.rooms.contains_key(room_name) && self.rooms.len() >= max
    }

    pub fn leave(&self, room: &Arc<Room>, participant_id: &str) {
        if room.leave(participant_id) {
            let removed = self.rooms.remove_if(&room.name, |_, r| {
                Arc::ptr_eq(r, room) && r.member_count() == 0
            });
            if let Some((_, gone)) = removed {
                gone.close();
                self.retired.absorb(&gone.media_stats());
                tracing::info!(room = %gone.name, "room closed");
            }
        }
    }

    /// Ends `room` for everyone (see [`crate::room::RoomState::end`]) and takes it out of
    /// the server at once, so its name can be joined afresh while its members' sessions are
    /// still closing. What a host's `end_room` and the admin API do. Returns false if it had
    /// ended already.
    pub fn end_room(&self, room: &Arc<Room>) -> bool {
        if !room.end() {
            return false;
        }
        // Its tracks are stopped already, so its totals are final.
        if let Some((_, gone)) = self
            .rooms
            .remove_if(&room.name, |_, r| Arc::ptr_eq(r, room))
        {
            gone.close();
            self.retired.absorb(&gone.media_stats());
            tracing::info!(room = %gone.name, "room ended");
        }
        true
    }

    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.get(name).map(|r| Arc::clone(r.value()))
    }

    /// The live rooms, in no particular order.
    pub fn rooms(&self) -> Vec<Arc<Room>> {
        self.rooms.iter().map(|r| Arc::clone(r.value())).collect()
    }

    pub fn stats(&self) -> ServerStats {
        let rooms: Vec<Arc<Room>> = self.rooms.iter().map(|r| Arc::clone(r.value())).collect();
        let mut media = self.retired.snapshot();
        let per_room: Vec<RoomStats> = rooms
            .iter()
            .map(|r| {
                let s = RoomStats {
                    room: r.name.clone(),
                    participants: r.member_count(),
                    tracks: r.track_count(),
                    media: r.media_stats(),
                };
                media += s.media;
                s
            })
            .collect();
        ServerStats {
            rooms: per_room.len(),
            participants: per_room.iter().map(|r| r.participants).sum(),
            tracks: per_room.iter().map(|r| r.tracks).sum(),
            media,
            per_room,
        }
    }
}
