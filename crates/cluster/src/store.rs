//! Where the cluster's shared state lives: the node registry and the room → node map.
//! Redis in production ([`RedisStore`]); [`MemoryStore`] behind the same trait for tests.
//!
//! Everything in the store expires unless refreshed: a node's record `ttl` after its last
//! heartbeat, a room's lease `lease` after its owner last held it. A node that dies leaves
//! nothing behind once those run out, and one whose record is gone loses its rooms to the
//! next claim at once.
use std::time::Duration;

use async_trait::async_trait;

use crate::node::NodeInfo;

mod memory;
mod redis;

pub use self::redis::RedisStore;
pub use memory::MemoryStore;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No answer (connection refused or lost, or too slow): the store may be down.
    #[error("the cluster store is unreachable: {0}")]
    Unreachable(String),
    /// An answer that makes no sense (another program's data under our keys?).
    #[error("the cluster store answered unexpectedly: {0}")]
    Invalid(String),
}

/// Who holds a room after a node tried to hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRoom {
    pub room: String,
    /// The live node that holds it now.
    pub owner: String,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes `node`'s record; it disappears `ttl` after the last write.
    async fn register(&self, node: &NodeInfo, ttl: Duration) -> Result<(), StoreError>;

    /// Removes `id`'s record at once (a drained node leaving).
    async fn deregister(&self, id: &str) -> Result<(), StoreError>;

    /// Every registered node.
    async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError>;

    /// The room's owner if a registered node holds it. Otherwise claims the room for
    /// `candidate` for `lease`, if `candidate` is registered and serving, and returns it;
    /// `None` if it is not (its record expired or it started draining since it was read).
    async fn claim_room(
        &self,
        room: &str,
        candidate: &str,
        lease: Duration,
    ) -> Result<Option<String>, StoreError>;

    /// The room's owner, if a registered node holds it.
    async fn room_owner(&self, room: &str) -> Result<Option<String>, StoreError>;

    /// Extends `owner`'s leases on `rooms` by `lease`, taking back those that lapsed or
    /// whose holder's record is gone (the store restarted empty, or a node claimed a room
    /// while this one could not reach the store and then died). Returns the rooms a live
    /// node other than `owner` holds.
    async fn hold_rooms(
        &self,
        owner: &str,
        rooms: &[String],
        lease: Duration,
    ) -> Result<Vec<LostRoom>, StoreError>;

    /// Gives `room` up if `owner` holds it; returns whether it did.
    async fn release_room(&self, room: &str, owner: &str) -> Result<bool, StoreError>;

    /// Every room held by a registered node, with that node's id.
    async fn rooms(&self) -> Result<Vec<(String, String)>, StoreError>;
}
