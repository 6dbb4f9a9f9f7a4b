//! roomcast nodes sharing one set of rooms through Redis.
//!
//! Each node registers itself ([`node::NodeInfo`]) and refreshes its record every couple of
//! seconds ([`Cluster::run_heartbeat`]); a record that is not refreshed expires, and with it
//! the node. The first join of a room, at any node, places the room on the least utilised
//! serving node ([`placement::choose`]) with an atomic claim in the store, so nodes racing
//! on one new room agree on its owner. The owner holds the room with a lease it renews on
//! every heartbeat; when the owner dies the next claim takes the room over.
//!
//! The decisions (which node, whether the store is reachable, rates of load) are
//! synchronous structs that take `now`; the store ([`store::Store`]) is Redis in production
//! and memory in tests. docs/cluster.md has the design.

pub mod cluster;
pub mod drain;
pub mod health;
pub mod load;
pub mod node;
pub mod placement;
pub mod redis_server;
pub mod store;

pub use cluster::{Cluster, LocalNode, Location, NodeConfig, PlaceError, Timing};
pub use node::{Load, NodeInfo, NodeState};
pub use store::{LostRoom, MemoryStore, RedisStore, Store, StoreError};
