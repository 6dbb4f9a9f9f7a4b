//! The store in one process's memory, with Redis's semantics (keys that expire, atomic
//! claims) and two failure switches: unreachable, and restarted empty. Time is tokio's, so
//! a test with paused time moves expiry forward with `tokio::time::advance`.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::{LostRoom, Store, StoreError};
use crate::node::{NodeInfo, NodeState};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    down: AtomicBool,
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, Expiring<NodeInfo>>,
    rooms: HashMap<String, Expiring<String>>,
}

struct Expiring<T> {
    value: T,
    until: Instant,
}

impl State {
    fn expire(&mut self, now: Instant) {
        self.nodes.retain(|_, n| n.until > now);
        self.rooms.retain(|_, r| r.until > now);
    }

    /// The room's holder, if its record is still there.
    fn live_owner(&self, room: &str) -> Option<&str> {
        let owner = &self.rooms.get(room)?.value;
        self.nodes.contains_key(owner).then_some(owner.as_str())
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail as if the store were down (`true`) or answer again (`false`).
    pub fn set_unreachable(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    /// Forgets everything, as a store restarted without persistence would.
    pub fn clear(&self) {
        *self.state.lock() = State::default();
    }

    /// Runs `f` on the state with expired entries gone, unless the store is "down". Yields
    /// first, as a round trip to a server would, so concurrent callers interleave.
    async fn with<T>(&self, f: impl FnOnce(&mut State, Instant) -> T) -> Result<T, StoreError> {
        tokio::task::yield_now().await;
        if self.down.load(Ordering::Relaxed) {
            return Err(StoreError::Unreachable("connection refused".to_owned()));
        }
        let now = Instant::now();
        let mut state = self.state.lock();
        state.expire(now);
        Ok(f(&mut state, now))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn register(&self, node: &NodeInfo, ttl: Duration) -> Result<(), StoreError> {
        self.with(|s, now| {
            s.nodes.insert(
                node.id.clone(),
                Expiring {
                    value: node.clone(),
                    until: now + ttl,
                },
            );
        })
        .await
    }

    async fn deregister(&self, id: &str) -> Result<(), StoreError> {
        self.with(|s, _| {
            s.nodes.remove(id);
        })
        .await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        self.with(|s, _| s.nodes.values().map(|n| n.value.clone()).collect())
            .await
    }

    async fn claim_room(
        &self,
        room: &str,
        candidate: &str,
        lease: Duration,
    ) -> Result<Option<String>, StoreError> {
        self.with(|s, now| {
            if let Some(owner) = s.live_owner(room) {
                return Some(owner.to_owned());
            }
            let node = s.nodes.get_mut(candidate)?;
            if node.value.state != NodeState::Serving {
                return None;
            }
            node.value.load.rooms += 1;
            s.rooms.insert(
                room.to_owned(),
                Expiring {
                    value: candidate.to_owned(),
                    until: now + lease,
                },
            );
            Some(candidate.to_owned())
        })
        .await
    }

    async fn room_owner(&self, room: &str) -> Result<Option<String>, StoreError> {
        self.with(|s, _| s.live_owner(room).map(str::to_owned))
            .await
    }

    async fn hold_rooms(
        &self,
        owner: &str,
        rooms: &[String],
        lease: Duration,
    ) -> Result<Vec<LostRoom>, StoreError> {
        self.with(|s, now| {
            let mut lost = Vec::new();
            for room in rooms {
                match s.live_owner(room) {
                    Some(other) if other != owner => lost.push(LostRoom {
                        room: room.clone(),
                        owner: other.to_owned(),
                    }),
                    _ => {
                        s.rooms.insert(
                            room.clone(),
                            Expiring {
                                value: owner.to_owned(),
                                until: now + lease,
                            },
                        );
                    }
                }
            }
            lost
        })
        .await
    }

    async fn release_room(&self, room: &str, owner: &str) -> Result<bool, StoreError> {
        self.with(|s, _| {
            let held = s.rooms.get(room).is_some_and(|r| r.value == owner);
            if held {
                s.rooms.remove(room);
            }
            held
        })
        .await
    }

    async fn rooms(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.with(|s, _| {
            s.rooms
                .keys()
                .filter_map(|room| Some((room.clone(), s.live_owner(room)?.to_owned())))
                .collect()
        })
        .await
    }
}
