//! Placement, leases and outages on the in-memory store, in tokio's paused time: the
//! heartbeats run as they would in a node, and the clock only moves when the test says.
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::Node;
use roomcast_cluster::{LostRoom, MemoryStore, NodeState, PlaceError, Store};

/// Nodes `a` and `b` with these many participants, registered.
async fn two_nodes(a: u64, b: u64) -> (Arc<MemoryStore>, Node, Node) {
    let store = Arc::new(MemoryStore::new());
    let a = Node::start("a", store.clone(), a);
    let b = Node::start("b", store.clone(), b);
    settle().await;
    (store, a, b)
}

/// Lets every heartbeat that is due run.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

async fn advance(d: Duration) {
    tokio::time::advance(d).await;
    settle().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_room_goes_to_the_least_loaded_serving_node() {
    let (_store, a, b) = two_nodes(300, 100).await;
    assert_eq!(a.join("standup").await, Ok("b".to_owned()));
    // The room now counts towards b's load; b joining it hosts it.
    assert_eq!(b.join("standup").await, Ok("b".to_owned()));
    assert_eq!(*b.local.rooms.lock(), ["standup"]);

    // b fills up: the next room goes to a.
    *b.local.participants.lock() = 900;
    advance(Duration::from_secs(2)).await;
    assert_eq!(b.join("retro").await, Ok("a".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn racing_first_joins_agree_on_one_owner() {
    let store = Arc::new(MemoryStore::new());
    let nodes: Vec<Arc<Node>> = ["a", "b", "c"]
        .iter()
        .map(|id| Arc::new(Node::start(id, store.clone(), 0)))
        .collect();
    settle().await;
    let joins: Vec<_> = (0..20)
        .map(|i| {
            let node = Arc::clone(&nodes[i % 3]);
            tokio::spawn(async move {
                // Staggered, so some read the registry after others claimed.
                for _ in 0..i % 5 {
                    tokio::task::yield_now().await;
                }
                node.join("allhands").await
            })
        })
        .collect();
    let mut owners = Vec::new();
    for join in joins {
        owners.push(join.await.unwrap().unwrap());
    }
    owners.dedup();
    assert_eq!(owners.len(), 1, "owners: {owners:?}");
    let hosting: Vec<_> = nodes
        .iter()
        .filter(|n| !n.local.rooms.lock().is_empty())
        .map(|n| n.cluster.id().to_owned())
        .collect();
    assert_eq!(hosting, owners);
}

#[tokio::test(start_paused = true)]
async fn a_dead_owners_rooms_are_taken_over_when_its_record_expires() {
    let (store, a, b) = two_nodes(0, 500).await;
    assert_eq!(a.join("standup").await, Ok("a".to_owned()));
    a.kill();

    // Within the TTL the room is still a's: nodes keep sending its people there.
    advance(Duration::from_secs(5)).await;
    assert_eq!(b.join("standup").await, Ok("a".to_owned()));

    // After it, a is gone from the registry and the room goes to a live node.
    advance(Duration::from_secs(2)).await;
    assert!(b.cluster.nodes().await.unwrap().iter().all(|n| n.id != "a"));
    assert_eq!(b.join("standup").await, Ok("b".to_owned()));
    assert_eq!(
        store.rooms().await.unwrap(),
        [("standup".to_owned(), "b".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn a_room_whose_owner_left_is_taken_over_at_once() {
    let (store, a, b) = two_nodes(0, 500).await;
    assert_eq!(a.join("standup").await, Ok("a".to_owned()));
    // a's record goes while its lease still runs (it left without releasing the room).
    a.kill();
    a.cluster.leave(&[]).await;
    assert_eq!(store.room_owner("standup").await, Ok(None));
    assert_eq!(b.join("standup").await, Ok("b".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn leases_are_renewed_while_the_owner_lives_and_released_when_the_room_closes() {
    let (store, a, _b) = two_nodes(0, 500).await;
    assert_eq!(a.join("standup").await, Ok("a".to_owned()));
    // Many times the lease later, it is still a's.
    for _ in 0..10 {
        advance(Duration::from_secs(2)).await;
    }
    assert_eq!(store.room_owner("standup").await, Ok(Some("a".to_owned())));

    // The room closes at a: the next heartbeat gives it up.
    a.local.rooms.lock().clear();
    advance(Duration::from_secs(2)).await;
    assert_eq!(store.room_owner("standup").await, Ok(None));
}

#[tokio::test(start_paused = true)]
async fn a_draining_node_keeps_its_rooms_and_takes_no_new_ones() {
    let (_store, a, b) = two_nodes(0, 500).await;
    assert_eq!(a.join("standup").await, Ok("a".to_owned()));
    a.cluster.drain();
    settle().await;
    let registry = b.cluster.nodes().await.unwrap();
    let state = registry.iter().find(|n| n.id == "a").map(|n| n.state);
    assert_eq!(state, Some(NodeState::Draining));
    assert_eq!(b.join("standup").await, Ok("a".to_owned()));
    assert_eq!(a.join("retro").await, Ok("b".to_owned()));

    b.cluster.drain();
    settle().await;
    assert_eq!(a.join("planning").await, Err(PlaceError::NoNode));
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_store_refuses_new_rooms_and_a_restarted_one_is_filled_again() {
    let (store, a, b) = two_nodes(0, 500).await;
    assert_eq!(a.join("standup").await, Ok("a".to_owned()));

    store.set_unreachable(true);
    assert_eq!(a.join("retro").await, Err(PlaceError::Unavailable));
    // Refused without asking the store again.
    assert!(!a.cluster.store_reachable());
    assert_eq!(a.join("retro").await, Err(PlaceError::Unavailable));

    // Five seconds later Redis is back, empty.
    advance(Duration::from_secs(5)).await;
    store.clear();
    store.set_unreachable(false);
    advance(Duration::from_millis(600)).await;
    assert!(a.cluster.store_reachable());
    let mut ids: Vec<_> = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(store.room_owner("standup").await, Ok(Some("a".to_owned())));
    assert_eq!(b.join("retro").await, Ok("a".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn a_room_claimed_elsewhere_during_an_outage_is_reported_lost() {
    let (store, a, b) = two_nodes(0, 0).await;
    assert_eq!(a.join("standup").await, Ok("a".to_owned()));
    // The store restarts empty and b places the room before a re-registers it.
    store.clear();
    store
        .register(&b.cluster.info(), Duration::from_secs(6))
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_room("standup", "b", Duration::from_secs(6))
            .await,
        Ok(Some("b".to_owned()))
    );
    advance(Duration::from_secs(2)).await;
    assert_eq!(
        *a.local.lost.lock(),
        [LostRoom {
            room: "standup".to_owned(),
            owner: "b".to_owned()
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn finding_a_room_never_places_it() {
    let (store, a, b) = two_nodes(0, 500).await;
    assert!(matches!(a.cluster.find("nowhere").await, Ok(None)));
    assert_eq!(
        store.rooms().await.map(|r| r.len()),
        Ok(0),
        "nothing placed"
    );
    assert_eq!(b.join("standup").await, Ok("a".to_owned()));
    assert_eq!(a.join("standup").await, Ok("a".to_owned()));
    match b.cluster.find("standup").await {
        Ok(Some(roomcast_cluster::Location::Node(owner))) => assert_eq!(owner.id, "a"),
        other => panic!("b finds the room on a: {other:?}"),
    }
    assert!(matches!(
        a.cluster.find("standup").await,
        Ok(Some(roomcast_cluster::Location::Here))
    ));
}
