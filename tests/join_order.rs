//! Many clients join one room at the same moment over raw WebSockets. Each must get
//! `joined` as its very first message, and `joined.participants` plus the
//! `participant_joined` messages after it must name every other participant exactly once:
//! an announcement that overtook `joined` would be lost or doubled by a client.
mod common;

use std::collections::HashSet;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 12;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(socket: &mut Socket) -> Value {
    tokio::time::timeout(MESSAGE_TIMEOUT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    break serde_json::from_str(&t).expect("JSON from the server")
                }
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a message in time")
}

/// Joins and reads until every other client is known; returns its id and who it learnt of
/// from `joined` and from `participant_joined`.
async fn join_and_meet(
    server: &roomcast::RunningServer,
    name: String,
) -> (String, Vec<String>, Socket) {
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("websocket connects");
    let join = format!(r#"{{"type":"join","room":"crowd","name":"{name}"}}"#);
    socket
        .send(Message::Text(join.into()))
        .await
        .expect("join sent");
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "joined", "{name}'s first message: {first}");
    let id = first["participant_id"].as_str().expect("an id").to_owned();
    let mut known: Vec<String> = first["participants"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["id"].as_str().expect("an id").to_owned())
        .collect();
    while known.len() < CLIENTS - 1 {
        let message = next_json(&mut socket).await;
        if message["type"] == "participant_joined" {
            let other = message["participant"]["id"].as_str().expect("an id");
            known.push(other.to_owned());
        }
    }
    // The socket stays open until everyone is done: a leave would hide this client from
    // a later joiner.
    (id, known, socket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_comes_first_and_everyone_is_announced_once() {
    let server = start_server().await;
    let joins = (0..CLIENTS).map(|i| join_and_meet(&server, format!("p{i}")));
    let results = futures_util::future::join_all(joins).await;
    let ids: HashSet<&String> = results.iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids.len(), CLIENTS);
    for (id, known, _) in &results {
        let unique: HashSet<&String> = known.iter().collect();
        assert_eq!(
            unique.len(),
            known.len(),
            "{id} heard of someone twice: {known:?}"
        );
        let expected: HashSet<&String> = ids.iter().copied().filter(|other| *other != id).collect();
        assert_eq!(unique, expected, "{id}");
    }
}
