//! What every store must do, run against Redis and against memory, and nodes whose rooms
//! and load the test sets, heartbeating as a server would.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use roomcast_cluster::load::LoadSample;
use roomcast_cluster::node::{Load, NodeInfo, NodeState};
use roomcast_cluster::{
    Cluster, LocalNode, Location, LostRoom, NodeConfig, PlaceError, Store, Timing,
};
use tokio::sync::watch;

pub const TTL: Duration = Duration::from_millis(400);

pub fn node(id: &str, state: NodeState) -> NodeInfo {
    NodeInfo {
        id: id.to_owned(),
        region: "eu".to_owned(),
        public_url: format!("ws://{id}.example:8080/ws"),
        media_addr: "192.0.2.1:50000".to_owned(),
        internal_url: format!("http://{id}.internal:7000"),
        state,
        load: Load {
            rooms: 1,
            participants: 20,
            packets_per_second: 3000,
            cpu: 0.125,
        },
        capacity: 1000,
    }
}

/// The store's semantics, step by step; `pass` lets time go by (sleeps for a real server,
/// advances paused time for memory).
pub async fn store_semantics<F, Fut>(store: &dyn Store, pass: F)
where
    F: Fn(Duration) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let a = node("a", NodeState::Serving);
    let b = node("b", NodeState::Serving);
    store.register(&a, TTL * 10).await.unwrap();
    store.register(&b, TTL).await.unwrap();
    let mut nodes = store.nodes().await.unwrap();
    nodes.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(nodes, [a.clone(), b.clone()]);

    // Claims: the first wins, and counts towards its node's rooms.
    assert_eq!(
        store.claim_room("r1", "b", TTL).await,
        Ok(Some("b".to_owned()))
    );
    assert_eq!(
        store.claim_room("r1", "a", TTL).await,
        Ok(Some("b".to_owned()))
    );
    assert_eq!(store.room_owner("r1").await, Ok(Some("b".to_owned())));
    let b_now = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.id == "b")
        .unwrap();
    assert_eq!(b_now.load.rooms, 2);
    // Nobody claims for a node that is not registered or not serving.
    assert_eq!(store.claim_room("r2", "ghost", TTL).await, Ok(None));
    store
        .register(&node("d", NodeState::Draining), TTL)
        .await
        .unwrap();
    assert_eq!(store.claim_room("r2", "d", TTL).await, Ok(None));
    assert_eq!(store.room_owner("r2").await, Ok(None));

    // b stops heartbeating: its record and its room lapse; a takes the room over.
    pass(TTL + TTL / 2).await;
    let ids: Vec<String> = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(ids, ["a"]);
    assert_eq!(store.room_owner("r1").await, Ok(None));
    assert_eq!(
        store.claim_room("r1", "a", TTL).await,
        Ok(Some("a".to_owned()))
    );

    // Holding extends leases, retakes lapsed ones and reports rooms a live node holds.
    store.register(&b, TTL * 10).await.unwrap();
    assert_eq!(
        store.claim_room("r3", "b", TTL).await,
        Ok(Some("b".to_owned()))
    );
    let rooms = ["r1".to_owned(), "r3".to_owned(), "r4".to_owned()];
    assert_eq!(
        store.hold_rooms("a", &rooms, TTL).await,
        Ok(vec![LostRoom {
            room: "r3".to_owned(),
            owner: "b".to_owned()
        }])
    );
    pass(TTL / 2).await;
    assert_eq!(
        store
            .hold_rooms("a", &rooms[..2], TTL)
            .await
            .map(|l| l.len()),
        Ok(1)
    );
    pass(TTL * 3 / 4).await;
    // r1 was held again half a TTL ago, r4 was not.
    assert_eq!(store.room_owner("r1").await, Ok(Some("a".to_owned())));
    assert_eq!(store.room_owner("r4").await, Ok(None));
    let mut rooms = store.rooms().await.unwrap();
    rooms.sort();
    assert_eq!(rooms, [("r1".to_owned(), "a".to_owned())]);

    // Only the owner releases; a deregistered node's rooms are free at once.
    store
        .hold_rooms("a", &["r5".to_owned()], TTL * 10)
        .await
        .unwrap();
    assert_eq!(store.release_room("r1", "b").await, Ok(false));
    assert_eq!(store.release_room("r1", "a").await, Ok(true));
    assert_eq!(store.room_owner("r1").await, Ok(None));
    store.deregister("a").await.unwrap();
    assert_eq!(store.room_owner("r5").await, Ok(None));
    assert_eq!(
        store.claim_room("r5", "b", TTL).await,
        Ok(Some("b".to_owned()))
    );
}

/// A node's rooms and participants as the test sets them.
#[derive(Default)]
pub struct FakeNode {
    pub rooms: Mutex<Vec<String>>,
    pub participants: Mutex<u64>,
    pub lost: Mutex<Vec<LostRoom>>,
}

impl LocalNode for FakeNode {
    fn sample(&self) -> LoadSample {
        LoadSample {
            rooms: self.rooms.lock().len() as u64,
            participants: *self.participants.lock(),
            ..LoadSample::default()
        }
    }
    fn rooms(&self) -> Vec<String> {
        self.rooms.lock().clone()
    }
    fn lost_room(&self, lost: &LostRoom) {
        self.lost.lock().push(lost.clone());
    }
}

pub struct Node {
    pub cluster: Arc<Cluster>,
    pub local: Arc<FakeNode>,
    stop: watch::Sender<bool>,
}

impl Node {
    pub fn start(id: &str, store: Arc<dyn Store>, participants: u64) -> Node {
        let config = NodeConfig {
            id: id.to_owned(),
            region: "eu".to_owned(),
            public_url: format!("ws://{id}:8080/ws"),
            media_addr: "192.0.2.1:50000".to_owned(),
            internal_url: format!("http://{id}:7000"),
            capacity: 1000,
        };
        let cluster = Cluster::new(config, Timing::default(), store);
        let local = Arc::new(FakeNode::default());
        *local.participants.lock() = participants;
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(Arc::clone(&cluster).run_heartbeat(local.clone(), stopped));
        Node {
            cluster,
            local,
            stop,
        }
    }

    /// Hosts `room` if the cluster says it lives here, as a node does on a join.
    pub async fn join(&self, room: &str) -> Result<String, PlaceError> {
        match self.cluster.locate(room).await? {
            Location::Here => {
                let mut rooms = self.local.rooms.lock();
                if !rooms.iter().any(|r| r == room) {
                    rooms.push(room.to_owned());
                }
                Ok(self.cluster.id().to_owned())
            }
            Location::Node(node) => Ok(node.id),
        }
    }

    /// Stops heartbeating, as a killed process does.
    pub fn kill(&self) {
        let _ = self.stop.send(true);
    }
}
