//! Nodes sharing rooms through a real `redis-server` on loopback: any node accepts any
//! client, a room lives on one node, draining and failures move people to other nodes.
//! Each node has its own HTTP and UDP ports; most run in-process, the ones that must exit
//! (drain) or die (SIGKILL) are the real binary.
mod common;

use std::time::{Duration, Instant};

use common::binary::ServeProcess;
use common::*;
use futures_util::{SinkExt, StreamExt};
use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::{Bot, BotConfig, Swarm, SwarmConfig};
use roomcast_cluster::redis_server::RedisServer;
use roomcast_protocol::{ClientMessage, Role, ServerMessage, TrackKind};
use tokio_tungstenite::tungstenite::Message;

const ADMIN_KEY: &str = "cluster-test-admin-key";
/// Bound on waits for the registry (a heartbeat every 2 s, a TTL of 6 s).
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(15);

fn bearer() -> String {
    format!("Authorization: Bearer {ADMIN_KEY}\r\n")
}

fn node_args(redis: &RedisServer, id: &str) -> ServeArgs {
    let mut args = ServeArgs::local_ephemeral();
    args.cluster.redis_url = Some(redis.url());
    args.cluster.node_id = Some(id.to_owned());
    args.admin_key = Some(ADMIN_KEY.to_owned());
    args
}

async fn start_node(redis: &RedisServer, id: &str) -> RunningServer {
    start_with(node_args(redis, id)).await
}

/// The real binary as a node, draining within `drain_timeout`.
async fn start_process(redis: &RedisServer, id: &str, drain_timeout: &str) -> ServeProcess {
    ServeProcess::cluster_node(&redis.url(), id, ADMIN_KEY, drain_timeout, &[]).await
}

/// Waits until `node` sees exactly `ids` registered.
async fn wait_registry(node: &RunningServer, ids: &[&str]) {
    let cluster = &node.cluster.as_ref().expect("a cluster node").cluster;
    let mut want: Vec<&str> = ids.to_vec();
    want.sort();
    let start = Instant::now();
    loop {
        let mut seen: Vec<String> = cluster
            .nodes()
            .await
            .map(|n| n.into_iter().map(|n| n.id).collect())
            .unwrap_or_default();
        seen.sort();
        if seen == want {
            return;
        }
        assert!(
            start.elapsed() < REGISTRY_TIMEOUT,
            "registry {seen:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The owner of `room` in Redis, as `node` reads it.
async fn owner_of(node: &RunningServer, room: &str) -> Option<String> {
    let cluster = &node.cluster.as_ref().expect("a cluster node").cluster;
    cluster
        .rooms()
        .await
        .expect("the store answers")
        .into_iter()
        .find(|(r, _)| r == room)
        .map(|(_, owner)| owner)
}

fn members_here(node: &RunningServer, room: &str) -> usize {
    node.sfu.room(room).map_or(0, |r| r.member_count())
}

async fn wait_video(bot: &Bot, publisher: &str) {
    bot.wait_for_media(
        |t| has_video_from(t, publisher, 20, 640, 360) && has_audio_from(t, publisher, 20),
        MEDIA_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{} gets {publisher}'s media: {e}", bot.participant_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_joining_one_room_through_three_nodes_meet_on_one_node() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    let nodes = [
        start_node(&redis, "n1").await,
        start_node(&redis, "n2").await,
        start_node(&redis, "n3").await,
    ];
    for node in &nodes {
        wait_registry(node, &["n1", "n2", "n3"]).await;
    }
    let host = join_with(config(&nodes[0], "meet", "ann", Role::Host)).await;
    let bob = join_with(config(&nodes[1], "meet", "bob", Role::Presenter)).await;
    let cat = join_with(config(&nodes[2], "meet", "cat", Role::Presenter)).await;
    let bots = [&host, &bob, &cat];
    for bot in bots {
        for other in bots {
            if other.participant_id() != bot.participant_id() {
                wait_video(bot, other.participant_id()).await;
            }
        }
    }

    // The room is on one node, the one Redis names.
    let owner = owner_of(&nodes[0], "meet")
        .await
        .expect("the room is placed");
    let counts: Vec<usize> = nodes.iter().map(|n| members_here(n, "meet")).collect();
    assert_eq!(counts.iter().filter(|&&c| c > 0).count(), 1, "{counts:?}");
    let owner_index = ["n1", "n2", "n3"]
        .iter()
        .position(|id| *id == owner)
        .expect("a known node");
    assert_eq!(counts[owner_index], 3, "{counts:?} owner {owner}");

    // Chat and moderation reach everyone, wherever they connected.
    let cursors: Vec<_> = bots.iter().map(|b| b.message_cursor()).collect();
    host.send(&ClientMessage::Chat {
        text: "hello all".into(),
    })
    .await
    .expect("chat sent");
    for (bot, cursor) in bots.iter().zip(&cursors) {
        bot.wait_for_message_after(
            *cursor,
            |m| matches!(m, ServerMessage::Chat { text, .. } if text == "hello all"),
            MESSAGE_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("{} gets the chat: {e}", bot.participant_id()));
    }
    let cursors: Vec<_> = bots.iter().map(|b| b.message_cursor()).collect();
    host.send(&ClientMessage::MuteParticipant {
        participant_id: cat.participant_id().to_owned(),
        kind: TrackKind::Audio,
        muted: true,
    })
    .await
    .expect("mute sent");
    for (bot, cursor) in bots.iter().zip(&cursors) {
        bot.wait_for_message_after(
            *cursor,
            |m| matches!(m, ServerMessage::TrackMuted { participant_id, muted: true, .. } if participant_id == cat.participant_id()),
            MESSAGE_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("{} sees cat muted: {e}", bot.participant_id()));
    }
    // The cluster-wide registry answers from any node.
    let listed = common::http::get(nodes[2].http_addr, "/api/nodes", &bearer()).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    for id in ["n1", "n2", "n3"] {
        assert!(
            listed.body.contains(&format!("\"id\":\"{id}\"")),
            "{}",
            listed.body
        );
    }
    // So does the room list, and a request about the room goes to its node.
    for node in &nodes {
        let rooms = common::http::get(node.http_addr, "/api/rooms", &bearer()).await;
        assert_eq!(rooms.status, 200, "{}", rooms.body);
        let list: serde_json::Value = serde_json::from_str(&rooms.body).expect("JSON");
        let meet = &list["rooms"][0];
        assert_eq!(meet["name"], "meet", "{list}");
        assert_eq!(meet["participants"], 3, "{list}");
        assert_eq!(meet["node"], owner.as_str(), "{list}");
        let room = common::http::get(node.http_addr, "/api/rooms/meet", &bearer()).await;
        assert_eq!(room.status, 200, "{}", room.body);
        assert!(room.body.contains(cat.participant_id()), "{}", room.body);
    }
    for node in nodes {
        node.shutdown().await;
    }
}

/// A bare client's `join`: the `joined` it gets back.
async fn raw_join(url: &str, room: &str, name: &str) -> serde_json::Value {
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    let join = serde_json::json!({ "type": "join", "room": room, "name": name });
    socket
        .send(Message::text(join.to_string()))
        .await
        .expect("join sent");
    let reply = tokio::time::timeout(MESSAGE_TIMEOUT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value = serde_json::from_str(&t).expect("JSON");
                    if v["type"] == "joined" || v["type"] == "error" {
                        return v;
                    }
                }
                Some(Ok(_)) => continue,
                other => panic!("connection ended before joined: {other:?}"),
            }
        }
    })
    .await
    .expect("an answer to join");
    // Keep the connection open until the test ends.
    tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} });
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_first_joins_racing_over_two_nodes_get_one_owner() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    let a = start_node(&redis, "a").await;
    let b = start_node(&redis, "b").await;
    wait_registry(&a, &["a", "b"]).await;
    wait_registry(&b, &["a", "b"]).await;
    let urls = [a.ws_url(), b.ws_url()];
    let joins = (0..20).map(|i| {
        let url = urls[i % 2].clone();
        tokio::spawn(async move { raw_join(&url, "race", &format!("p{i}")).await })
    });
    let replies = futures_util::future::join_all(joins).await;
    for reply in &replies {
        let reply = reply.as_ref().expect("join task");
        assert_eq!(reply["type"], "joined", "{reply}");
    }
    let (on_a, on_b) = (members_here(&a, "race"), members_here(&b, "race"));
    assert!(
        (on_a, on_b) == (20, 0) || (on_a, on_b) == (0, 20),
        "members on a: {on_a}, on b: {on_b}"
    );
    let owner = owner_of(&a, "race").await.expect("placed");
    assert_eq!(owner, if on_a == 20 { "a" } else { "b" });
    a.shutdown().await;
    b.shutdown().await;
}

/// Joins `room` through `url` again, afresh, as a client told to `reconnect` (or whose
/// node died) does; returns the new bot and how long the join took.
async fn rejoin(url: &str, room: &str, name: &str) -> (Bot, Duration) {
    let start = Instant::now();
    let mut config = BotConfig::new(url, room, name);
    config.connect_timeout = Duration::from_secs(15);
    let bot = Bot::join(config)
        .await
        .unwrap_or_else(|e| panic!("{name} joins again: {e}"));
    (bot, start.elapsed())
}

/// The ids of the swarm's joined bots.
fn swarm_ids(swarm: &Swarm) -> Vec<String> {
    swarm
        .joined_bots()
        .iter()
        .map(|(_, bot)| bot.participant_id().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_sends_its_participants_to_another_and_exits() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    // "a" is the binary (it must exit); ties in placement go to the smaller id, so the
    // room goes to "a" while both are idle.
    let mut a = start_process(&redis, "a", "1s").await;
    let b = start_node(&redis, "b").await;
    wait_registry(&b, &["a", "b"]).await;
    // Two bots of a `roomcast bots` swarm, connected to "b", relayed to "a".
    let mut config = SwarmConfig::new(b.ws_url());
    config.rooms = vec!["drain".to_owned()];
    config.publishers = 2;
    let swarm = Swarm::start(config).await;
    let first = swarm.joined_bots();
    assert_eq!(first.len(), 2, "both joined");
    let (ann, bob) = (&first[0].1, &first[1].1);
    wait_video(bob, ann.participant_id()).await;
    wait_video(ann, bob.participant_id()).await;
    assert_eq!(owner_of(&b, "drain").await.as_deref(), Some("a"));
    assert_eq!(
        members_here(&b, "drain"),
        0,
        "relayed to a, not served by b"
    );

    // Drain "a" through "b"'s admin API.
    let cursors = [ann.message_cursor(), bob.message_cursor()];
    let reply = common::http::request(
        b.http_addr,
        &format!(
            "POST /api/nodes/a/drain HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Length: 0\r\n{}\r\n",
            bearer()
        ),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    for (bot, cursor) in [ann, bob].into_iter().zip(cursors) {
        bot.wait_for_message_after(
            cursor,
            |m| matches!(m, ServerMessage::Reconnect { .. }),
            MESSAGE_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("{} is told to reconnect: {e}", bot.participant_id()));
    }
    let told = Instant::now();
    let old_ids = swarm_ids(&swarm);
    drop(first);
    // The swarm's bots join again by themselves, and meet on "b".
    while swarm_ids(&swarm).iter().any(|id| old_ids.contains(id)) || swarm_ids(&swarm).len() < 2 {
        assert!(
            told.elapsed() < MEDIA_TIMEOUT,
            "the bots join again: {:?}",
            swarm_ids(&swarm)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = swarm.joined_bots();
    let (ann2, bob2) = (&again[0].1, &again[1].1);
    wait_video(bob2, ann2.participant_id()).await;
    wait_video(ann2, bob2.participant_id()).await;
    eprintln!("drain: media back {:?} after `reconnect`", told.elapsed());
    assert_eq!(owner_of(&b, "drain").await.as_deref(), Some("b"));
    assert_eq!(members_here(&b, "drain"), 2);
    let status = a.exited_within(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "the drained node exits cleanly: {status:?}"
    );
    wait_registry(&b, &["b"]).await;
    drop(again);
    swarm.leave(MESSAGE_TIMEOUT).await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_of_a_killed_node_are_back_on_another() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    let mut a = start_process(&redis, "a", "30s").await;
    let b = start_node(&redis, "b").await;
    wait_registry(&b, &["a", "b"]).await;
    let ann = join(&b, "crash", "ann").await;
    let bob = join(&b, "crash", "bob").await;
    wait_video(&bob, ann.participant_id()).await;
    assert_eq!(owner_of(&b, "crash").await.as_deref(), Some("a"));

    a.kill().await;
    let killed = Instant::now();
    // The relaying node closes their connections (1012): they join again.
    for bot in [&ann, &bob] {
        let closed = bot
            .wait_for_close(MESSAGE_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{}'s connection closes: {e}", bot.participant_id()));
        assert_eq!(closed.code, Some(1012), "{closed:?}");
    }
    let (ann2, _) = rejoin(&b.ws_url(), "crash", "ann").await;
    let (bob2, _) = rejoin(&b.ws_url(), "crash", "bob").await;
    wait_video(&bob2, ann2.participant_id()).await;
    wait_video(&ann2, bob2.participant_id()).await;
    eprintln!("kill: media back {:?} after SIGKILL", killed.elapsed());
    assert_eq!(owner_of(&b, "crash").await.as_deref(), Some("b"));
    // Nothing of "a" is left in Redis once its TTL ran out.
    wait_registry(&b, &["b"]).await;
    let cluster = &b.cluster.as_ref().expect("a node").cluster;
    let rooms = cluster.rooms().await.expect("the store answers");
    assert!(rooms.iter().all(|(_, owner)| owner != "a"), "{rooms:?}");
    drop((ann, bob));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_rooms_go_on_and_new_ones_are_refused_until_it_returns() {
    let mut redis = RedisServer::start().await.expect("redis-server starts");
    let a = start_node(&redis, "a").await;
    let b = start_node(&redis, "b").await;
    wait_registry(&a, &["a", "b"]).await;
    wait_registry(&b, &["a", "b"]).await;
    let ann = join(&b, "steady", "ann").await;
    let bob = join(&a, "steady", "bob").await;
    wait_video(&bob, ann.participant_id()).await;
    wait_video(&ann, bob.participant_id()).await;
    let owner = owner_of(&a, "steady").await.expect("placed");

    redis.stop().await;
    let stopped = Instant::now();
    // A new room is refused with a clear code while Redis is away.
    let raw = common::raw::connect(&a.ws_url()).await;
    raw.expect_error(
        r#"{"type":"join","room":"new-room","name":"zed"}"#,
        "cluster_unavailable",
    )
    .await;
    // Media never stops meanwhile.
    while stopped.elapsed() < Duration::from_secs(5) {
        assert_media_keeps_flowing(&bob, &[ann.participant_id()]).await;
        assert_media_keeps_flowing(&ann, &[bob.participant_id()]).await;
    }

    // Redis comes back empty: the nodes register again and re-publish their rooms.
    redis.restart().await.expect("redis-server restarts");
    wait_registry(&a, &["a", "b"]).await;
    let start = Instant::now();
    while owner_of(&a, "steady").await.as_deref() != Some(owner.as_str()) {
        assert!(
            start.elapsed() < REGISTRY_TIMEOUT,
            "the room is re-published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let zed = raw_join(&a.ws_url(), "new-room", "zed").await;
    assert_eq!(zed["type"], "joined", "{zed}");
    assert_media_keeps_flowing(&bob, &[ann.participant_id()]).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// A webrtc-rs offer publishing audio and video, as an encoder would POST it.
async fn whip_offer() -> (
    std::sync::Arc<webrtc::peer_connection::RTCPeerConnection>,
    String,
) {
    use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
    use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
    use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
    let mut media = webrtc::api::media_engine::MediaEngine::default();
    media.register_default_codecs().expect("codecs");
    let api = webrtc::api::APIBuilder::new()
        .with_media_engine(media)
        .build();
    let pc = std::sync::Arc::new(
        api.new_peer_connection(Default::default())
            .await
            .expect("a PeerConnection"),
    );
    for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                send_encodings: Vec::new(),
            }),
        )
        .await
        .expect("a transceiver");
    }
    let offer = pc.create_offer(None).await.expect("an offer");
    pc.set_local_description(offer.clone())
        .await
        .expect("offer applied");
    (pc, offer.sdp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_through_a_node_that_does_not_hold_the_room() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    let nodes = [
        start_node(&redis, "n1").await,
        start_node(&redis, "n2").await,
    ];
    for node in &nodes {
        wait_registry(node, &["n1", "n2"]).await;
    }
    let room = "stage";
    let host = join_with(config(&nodes[0], room, "host", Role::Host)).await;
    let owner_id = nodes[0]
        .cluster
        .as_ref()
        .expect("a cluster node")
        .cluster
        .rooms()
        .await
        .expect("the store answers")
        .into_iter()
        .find(|(r, _)| r == room)
        .map(|(_, owner)| owner)
        .expect("the room is placed");
    let (owner, other) = if owner_id == "n1" {
        (&nodes[0], &nodes[1])
    } else {
        (&nodes[1], &nodes[0])
    };
    let host_id = host.participant_id().to_owned();

    // A WHEP player POSTing to the other node watches the host, whose room is on its node.
    let url = format!("http://{}/whep/{room}", other.http_addr);
    let player = roomcast_bots::WhepViewer::watch(&url, None, MESSAGE_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("WHEP POST through the other node: {e}"));
    assert!(
        player.location().starts_with(&format!("/whep/{room}/")),
        "{}",
        player.location()
    );
    player
        .wait_for_media(
            |t| {
                t.iter()
                    .any(|t| t.kind == TrackKind::Audio && t.packets >= 20)
                    && t.iter()
                        .any(|t| t.kind == TrackKind::Video && t.packets >= 20)
            },
            MEDIA_TIMEOUT,
        )
        .await
        .expect("the WHEP player gets the host's audio and video");
    assert!(other.sfu.room(room).is_none(), "the room stays on its node");
    let members = owner.sfu.room(room).map_or(0, |r| r.member_count());
    assert_eq!(
        members, 2,
        "the host and the WHEP player, on the room's node"
    );

    // An encoder's WHIP POST to the other node publishes into the room on its node; its
    // resource (here the DELETE) answers through the other node too.
    let cursor = host.message_cursor();
    let (pc, offer) = whip_offer().await;
    let reply = roomcast_bots::whep::http(
        &other.http_addr.to_string(),
        "POST",
        &format!("/whip/{room}"),
        &[("Content-Type", "application/sdp")],
        &offer,
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("the WHIP POST is answered");
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(
        reply.body.starts_with("v=0"),
        "an SDP answer: {}",
        reply.body
    );
    let location = reply.header("location").expect("a Location").to_owned();
    assert!(
        location.starts_with(&format!("/whip/{room}/")),
        "{location}"
    );
    assert!(reply.header("etag").is_some(), "an ETag");
    let joined = host
        .wait_for_message_after(
            cursor,
            |m| matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id != host_id),
            MESSAGE_TIMEOUT,
        )
        .await
        .expect("the encoder joins the room on its node");
    let ServerMessage::ParticipantJoined { participant } = joined else {
        unreachable!()
    };
    // The answer names the room's node's media port: its candidates are the owner's.
    let owner_port = format!(" {} typ host", owner.sfu.udp_port());
    assert!(reply.body.contains(&owner_port), "{}", reply.body);
    let cursor = host.message_cursor();
    let deleted = roomcast_bots::whep::http(
        &other.http_addr.to_string(),
        "DELETE",
        &location,
        &[],
        "",
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("the DELETE is answered");
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    host.wait_for_message_after(
        cursor,
        |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == participant.id),
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("the encoder leaves the room on its node");
    let _ = pc.close().await;
    assert_eq!(player.delete().await.expect("DELETE answered"), 200);
    let _ = host.leave().await;
    for node in nodes {
        node.shutdown().await;
    }
}
