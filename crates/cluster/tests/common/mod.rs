//! What every store must do, run against Redis and against memory.
use std::time::Duration;

use roomcast_cluster::node::{Load, NodeInfo, NodeState};
use roomcast_cluster::{LostRoom, Store};

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
