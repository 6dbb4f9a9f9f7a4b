//! The Redis store against a real `redis-server` on loopback (the Debian package; the test
//! command installs it): the same promises as the in-memory store, placement races between
//! nodes with real concurrency, and a Redis that stops for 5 s and comes back empty.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Node;
use roomcast_cluster::redis_server::RedisServer;
use roomcast_cluster::{Location, PlaceError, RedisStore, Store, Timing};

#[tokio::test]
async fn redis_store_semantics() {
    let redis = RedisServer::start().await.unwrap();
    let store = RedisStore::new(&redis.url(), "semantics").unwrap();
    common::store_semantics(&store, tokio::time::sleep).await;
}

fn start_node(id: &str, url: &str) -> Node {
    Node::start(id, Arc::new(RedisStore::new(url, "roomcast").unwrap()), 0)
}

/// Nodes `a` and `b` on `redis`, once both are registered, and a store to look with.
async fn two_nodes(redis: &RedisServer) -> (Node, Node, RedisStore) {
    let a = start_node("a", &redis.url());
    let b = start_node("b", &redis.url());
    let store = RedisStore::new(&redis.url(), "roomcast").unwrap();
    eventually("both registered", Duration::from_secs(5), || {
        registered(&store, &["a", "b"])
    })
    .await;
    (a, b, store)
}

/// Waits (bounded) until `check` holds, re-reading the store as it changes.
async fn eventually<F, Fut>(what: &str, within: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn registered(store: &RedisStore, ids: &[&str]) -> bool {
    let mut found: Vec<String> = match store.nodes().await {
        Ok(nodes) => nodes.into_iter().map(|n| n.id).collect(),
        Err(_) => return false,
    };
    found.sort();
    found == ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_racing_first_joins_on_two_nodes_agree() {
    let redis = RedisServer::start().await.unwrap();
    let (a, b, store) = two_nodes(&redis).await;
    let nodes = Arc::new([a, b]);
    let joins: Vec<_> = (0..20)
        .map(|i| {
            let nodes = Arc::clone(&nodes);
            tokio::spawn(async move { nodes[i % 2].cluster.locate("race").await })
        })
        .collect();
    let mut owners = Vec::new();
    for join in joins {
        owners.push(match join.await.unwrap().unwrap() {
            Location::Here => "here".to_owned(),
            Location::Node(n) => n.id,
        });
    }
    // Each node sees the room either here or at the other node, and they agree on which.
    let owner = store.room_owner("race").await.unwrap().unwrap();
    for (i, seen) in owners.iter().enumerate() {
        let asked = ["a", "b"][i % 2];
        let expected = if asked == owner {
            "here"
        } else {
            owner.as_str()
        };
        assert_eq!(seen, expected, "join {i} at {asked}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_for_five_seconds_then_back_empty() {
    let mut redis = RedisServer::start().await.unwrap();
    let (a, b, store) = two_nodes(&redis).await;
    // Both idle: a sorts first and takes the room.
    assert_eq!(a.join("standup").await, Ok("a".to_owned()));

    redis.stop().await;
    let started = tokio::time::Instant::now();
    assert_eq!(
        b.cluster.locate("retro").await,
        Err(PlaceError::Unavailable)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refused in {:?}",
        started.elapsed()
    );
    // Once a node knows, it refuses at once.
    let started = tokio::time::Instant::now();
    assert_eq!(
        b.cluster.locate("retro").await,
        Err(PlaceError::Unavailable)
    );
    assert!(started.elapsed() < Duration::from_millis(50));

    tokio::time::sleep(Duration::from_secs(5)).await;
    redis.restart().await.unwrap();
    // The heartbeats register both nodes and a's room again, each within a retry or two.
    eventually("registered again", Duration::from_secs(5), || {
        registered(&store, &["a", "b"])
    })
    .await;
    eventually("room held again", Duration::from_secs(5), || async {
        store.room_owner("standup").await == Ok(Some("a".to_owned()))
    })
    .await;
    assert!(a.cluster.store_reachable() && b.cluster.store_reachable());
    assert!(b.cluster.locate("retro").await.is_ok());
    assert!(matches!(b.cluster.locate("standup").await, Ok(Location::Node(n)) if n.id == "a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_leaves_no_trace_after_its_ttl() {
    let redis = RedisServer::start().await.unwrap();
    let (a, b, _store) = two_nodes(&redis).await;
    assert_eq!(a.join("standup").await, Ok("a".to_owned()));
    // a's heartbeat stops, as if it were killed: within its TTL nothing of it is left.
    drop(a);
    let redis_connection = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl = Timing::default().ttl;
    eventually(
        "a's record and room gone",
        ttl + Duration::from_secs(1),
        || {
            let mut con = redis_connection.clone();
            async move {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg("*")
                    .query_async(&mut con)
                    .await
                    .unwrap();
                keys == ["roomcast:node:b"]
            }
        },
    )
    .await;
    assert_eq!(b.cluster.locate("standup").await, Ok(Location::Here));
}
