//! This node's membership of the cluster: its heartbeat, and where rooms are.
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{watch, Notify};

use crate::health::{HealthChange, StoreHealth};
use crate::load::{LoadMeter, LoadSample};
use crate::node::{Load, NodeInfo, NodeState};
use crate::placement;
use crate::store::{LostRoom, Store, StoreError};

/// How often a node refreshes its record and leases, and how long they last without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub heartbeat: Duration,
    /// Lifetime of a node's record and of its room leases: a node that stops is gone from
    /// the store this long after its last heartbeat, and its rooms with it.
    pub ttl: Duration,
    /// Heartbeat interval while the store is unreachable.
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_secs(2),
            ttl: Duration::from_secs(6),
            retry: Duration::from_millis(500),
        }
    }
}

/// Who this node is; [`Cluster`] adds its state and load to make its [`NodeInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub id: String,
    pub region: String,
    pub public_url: String,
    pub media_addr: String,
    pub internal_url: String,
    /// Participants this node is meant to carry.
    pub capacity: u64,
}

/// What the heartbeat needs from the node it runs on.
pub trait LocalNode: Send + Sync + 'static {
    /// Its counters now.
    fn sample(&self) -> LoadSample;
    /// The rooms it hosts now.
    fn rooms(&self) -> Vec<String>;
    /// A room it hosts is held by another node now (the store restarted empty and that
    /// node claimed it first); its members belong over there.
    fn lost_room(&self, lost: &LostRoom);
}

/// Where a room lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    Here,
    Node(NodeInfo),
}

/// Why a room could not be located or placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("the cluster store is unreachable: new rooms cannot be placed until it is back")]
    Unavailable,
    #[error("no node is taking new rooms")]
    NoNode,
}

pub struct Cluster {
    config: NodeConfig,
    timing: Timing,
    store: Arc<dyn Store>,
    health: Mutex<StoreHealth>,
    draining: AtomicBool,
    /// The registry as of the last heartbeat.
    nodes: RwLock<Vec<NodeInfo>>,
    /// The load of the last heartbeat, for records written between heartbeats.
    load: Mutex<Load>,
    /// Wakes the heartbeat before its time (the node started draining).
    beat_now: Notify,
}

impl Cluster {
    pub fn new(config: NodeConfig, timing: Timing, store: Arc<dyn Store>) -> Arc<Cluster> {
        Arc::new(Cluster {
            config,
            timing,
            store,
            health: Mutex::new(StoreHealth::new(now())),
            draining: AtomicBool::new(false),
            nodes: RwLock::new(Vec::new()),
            load: Mutex::new(Load::default()),
            beat_now: Notify::new(),
        })
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    pub fn state(&self) -> NodeState {
        if self.draining.load(Ordering::Relaxed) {
            NodeState::Draining
        } else {
            NodeState::Serving
        }
    }

    /// Whether the store answered the last call made to it.
    pub fn store_reachable(&self) -> bool {
        self.health.lock().is_reachable()
    }

    /// This node's record as the next heartbeat writes it.
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.config.id.clone(),
            region: self.config.region.clone(),
            public_url: self.config.public_url.clone(),
            media_addr: self.config.media_addr.clone(),
            internal_url: self.config.internal_url.clone(),
            state: self.state(),
            load: *self.load.lock(),
            capacity: self.config.capacity,
        }
    }

    /// Stops taking new rooms; the registry says so from the next heartbeat, which is now.
    pub fn drain(&self) {
        if !self.draining.swap(true, Ordering::Relaxed) {
            tracing::info!(node = %self.config.id, "draining: no new rooms on this node");
            self.beat_now.notify_one();
        }
    }

    /// Where `room` lives, placing it on the least utilised serving node (see
    /// [`placement::choose`]) if no live node holds it. Every node asking about the same
    /// room gets the same answer until its owner dies or gives it up.
    pub async fn locate(&self, room: &str) -> Result<Location, PlaceError> {
        if !self.store_reachable() {
            return Err(PlaceError::Unavailable);
        }
        let owner = match self.store_call(self.store.room_owner(room)).await? {
            Some(owner) => owner,
            None => self.place(room).await?,
        };
        self.location_of(&owner).await
    }

    /// Where `room` lives if a node holds it, without placing it.
    pub async fn find(&self, room: &str) -> Result<Option<Location>, PlaceError> {
        if !self.store_reachable() {
            return Err(PlaceError::Unavailable);
        }
        match self.store_call(self.store.room_owner(room)).await? {
            Some(owner) => self.location_of(&owner).await.map(Some),
            None => Ok(None),
        }
    }

    async fn place(&self, room: &str) -> Result<String, PlaceError> {
        // Twice: the chosen node may have started draining or expired since it was read.
        for _ in 0..2 {
            let nodes = self.store_call(self.store.nodes()).await?;
            let chosen = placement::choose(&nodes, &self.config.region)
                .ok_or(PlaceError::NoNode)?
                .id
                .clone();
            *self.nodes.write() = nodes;
            let claim = self.store.claim_room(room, &chosen, self.timing.ttl);
            if let Some(owner) = self.store_call(claim).await? {
                if owner == chosen {
                    tracing::info!(%room, node = %owner, "room placed");
                }
                return Ok(owner);
            }
        }
        Err(PlaceError::NoNode)
    }

    async fn location_of(&self, owner: &str) -> Result<Location, PlaceError> {
        if owner == self.config.id {
            return Ok(Location::Here);
        }
        if let Some(node) = self.cached_node(owner) {
            return Ok(Location::Node(node));
        }
        let nodes = self.store_call(self.store.nodes()).await?;
        *self.nodes.write() = nodes;
        self.cached_node(owner)
            .map(Location::Node)
            .ok_or(PlaceError::NoNode)
    }

    fn cached_node(&self, id: &str) -> Option<NodeInfo> {
        self.nodes.read().iter().find(|n| n.id == id).cloned()
    }

    /// The registry as of the last heartbeat (or placement).
    pub fn known_nodes(&self) -> Vec<NodeInfo> {
        self.nodes.read().clone()
    }

    /// The registry now.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, PlaceError> {
        let nodes = self.store_call(self.store.nodes()).await?;
        *self.nodes.write() = nodes.clone();
        Ok(nodes)
    }

    /// Every placed room and its node's id.
    pub async fn rooms(&self) -> Result<Vec<(String, String)>, PlaceError> {
        self.store_call(self.store.rooms()).await
    }

    /// Gives `room` up at once (it closed here, or this node is handing it over).
    pub async fn release(&self, room: &str) -> Result<bool, PlaceError> {
        self.store_call(self.store.release_room(room, &self.config.id))
            .await
    }

    /// Leaves the cluster: gives up `rooms` and removes this node's record, so nothing of
    /// it is left in the store. Best effort: what fails expires with its TTL.
    pub async fn leave(&self, rooms: &[String]) {
        for room in rooms {
            let _ = self.release(room).await;
        }
        match self.store.deregister(&self.config.id).await {
            Ok(()) => tracing::info!(node = %self.config.id, "left the cluster"),
            Err(e) => tracing::warn!(node = %self.config.id, error = %e,
                "could not remove this node's record; it expires with its TTL"),
        }
    }

    /// Runs a store call and keeps [`StoreHealth`] up to date with its outcome.
    async fn store_call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, PlaceError> {
        let result = call.await;
        self.record(result.as_ref().err());
        result.map_err(|e| {
            tracing::debug!(error = %e, "cluster store call failed");
            PlaceError::Unavailable
        })
    }

    fn record(&self, error: Option<&StoreError>) {
        let now = now();
        let change = match error {
            None => self.health.lock().on_success(now),
            Some(StoreError::Unreachable(e)) => self.health.lock().on_unreachable(now, e),
            // An answer, if a strange one: the store is up.
            Some(StoreError::Invalid(_)) => self.health.lock().on_success(now),
        };
        match change {
            Some(HealthChange::Lost { error }) => tracing::error!(
                node = %self.config.id, %error,
                "cluster store unreachable: serving the rooms here, refusing new ones"
            ),
            Some(HealthChange::Restored { after }) => tracing::info!(
                node = %self.config.id, down_for = ?after,
                "cluster store reachable again: registering this node and its rooms"
            ),
            None => {}
        }
    }

    /// Refreshes this node's record and leases until `stop` turns true: every
    /// [`Timing::heartbeat`], every [`Timing::retry`] while the store is unreachable, and at
    /// once when the node starts draining. Each beat writes the whole record and retakes
    /// every lease, so a store that comes back empty is filled again by the next beat.
    pub async fn run_heartbeat(
        self: Arc<Self>,
        local: Arc<dyn LocalNode>,
        mut stop: watch::Receiver<bool>,
    ) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut meter = LoadMeter::new(cores);
        let mut held: HashSet<String> = HashSet::new();
        loop {
            let load = meter.measure(now(), local.sample());
            *self.load.lock() = load;
            let rooms = local.rooms();
            if let Ok(lost) = self.beat(&rooms, &held).await {
                for room in &lost {
                    tracing::warn!(room = %room.room, owner = %room.owner,
                        "another node holds a room hosted here");
                    local.lost_room(room);
                }
                let lost: HashSet<&str> = lost.iter().map(|l| l.room.as_str()).collect();
                held = rooms
                    .into_iter()
                    .filter(|r| !lost.contains(r.as_str()))
                    .collect();
            }
            let wait = self
                .health
                .lock()
                .next_beat(self.timing.heartbeat, self.timing.retry);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.beat_now.notified() => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    }

    /// One heartbeat: the record, the leases on `rooms`, releases of rooms `held` at the
    /// last beat and gone since, and a fresh read of the registry.
    async fn beat(
        &self,
        rooms: &[String],
        held: &HashSet<String>,
    ) -> Result<Vec<LostRoom>, PlaceError> {
        let ttl = self.timing.ttl;
        self.store_call(self.store.register(&self.info(), ttl))
            .await?;
        let lost = self
            .store_call(self.store.hold_rooms(&self.config.id, rooms, ttl))
            .await?;
        let here: HashSet<&str> = rooms.iter().map(String::as_str).collect();
        for gone in held.iter().filter(|r| !here.contains(r.as_str())) {
            self.release(gone).await?;
        }
        self.nodes().await?;
        Ok(lost)
    }
}

/// The time now, from tokio's clock so tests with paused time control it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
