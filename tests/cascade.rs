//! Cascading: one webinar over three nodes sharing a real `redis-server` on loopback. The
//! owner is capped low (`--cascade-after 1`: its presenter alone puts it over), so the
//! audience joining through the other two nodes is served there, from each node's mirror
//! of the room, fed by one hidden relay per edge.
mod common;

use std::time::{Duration, Instant};

use common::*;
use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::{Bot, MessageCursor};
use roomcast_cluster::redis_server::RedisServer;
use roomcast_protocol::{
    ClientMessage, ErrorCode, Quality, Role, RoomSettings, ServerMessage, TrackKind,
};

const ROOM: &str = "webinar";
const IDS: [&str; 3] = ["n1", "n2", "n3"];
/// Bound on waits for the registry (a heartbeat every 2 s).
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(15);
const ADMIN_KEY: &str = "cascade-admin-key";
/// Longer than an edge keeps asking for a layer its viewers stopped taking (2 s).
const HOLD_AND_MORE: Duration = Duration::from_millis(2600);

async fn start_node(redis: &RedisServer, id: &str) -> RunningServer {
    let mut args = ServeArgs::local_ephemeral();
    args.cluster.redis_url = Some(redis.url());
    args.cluster.node_id = Some(id.to_owned());
    args.cluster.cascade_after = Some(1);
    args.admin_key = Some(ADMIN_KEY.to_owned());
    start_with(args).await
}

/// Waits until `node` sees `count` nodes registered and `owner` carrying a participant.
async fn wait_owner_loaded(node: &RunningServer, owner: &str, count: usize) {
    let cluster = &node.cluster.as_ref().expect("a cluster node").cluster;
    let start = Instant::now();
    loop {
        let nodes = cluster.nodes().await.unwrap_or_default();
        let loaded = nodes
            .iter()
            .any(|n| n.id == owner && n.load.participants >= 1);
        if nodes.len() == count && loaded {
            return;
        }
        assert!(start.elapsed() < REGISTRY_TIMEOUT, "registry {nodes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `bot` receives `publisher`'s audio and a video keyframe `width` wide that
/// arrived after `since`.
async fn wait_media(bot: &Bot, publisher: &str, width: u16, since: Option<Instant>) {
    bot.wait_for_media(
        |tracks| {
            has_audio_from(tracks, publisher, 20)
                && tracks.iter().any(|t| {
                    t.publisher_id == publisher
                        && t.kind == TrackKind::Video
                        && !t.ended
                        && t.keyframe_sizes
                            .iter()
                            .any(|k| k.width == width && since.is_none_or(|s| k.at >= s))
                })
        },
        MEDIA_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{} gets {publisher}'s media {width} wide: {e} ({:?})",
            bot.participant_id(),
            bot.remote_tracks()
        )
    });
}

/// `(packets in, packets out)` of `publisher`'s track of `kind` on `node`.
fn track_counts(node: &RunningServer, publisher: &str, kind: TrackKind) -> (u64, u64) {
    let room = node.sfu.room(ROOM).expect("the room is on this node");
    let tracks = room.tracks_of(publisher).expect("the presenter is here");
    let track = tracks
        .iter()
        .find(|t| t.info.kind == kind)
        .expect("the track is here");
    let c = track.counters.snapshot();
    (c.packets_in, c.packets_out)
}

/// The keyframe requests around `publisher`'s video track on `node`: `(received from its
/// subscribers there, sent towards the publisher, layer switches of its subscribers there)`.
/// On the owner, what it sends is what the publisher gets; on an edge, what it sends goes
/// to the owner over the relays.
fn keyframe_counts(node: &RunningServer, publisher: &str) -> [u64; 3] {
    let room = node.sfu.room(ROOM).expect("the room is on this node");
    let tracks = room.tracks_of(publisher).expect("the presenter is here");
    let track = tracks
        .iter()
        .find(|t| t.info.kind == TrackKind::Video)
        .expect("the track is here");
    let c = track.counters.snapshot();
    [c.plis_received, c.plis_sent, c.layer_switches]
}

/// How many copies of each incoming packet of the presenter's audio `node` sends, over
/// the next 50 incoming packets.
async fn copies_per_packet(node: &RunningServer, publisher: &str) -> f64 {
    let (in0, out0) = track_counts(node, publisher, TrackKind::Audio);
    let start = Instant::now();
    loop {
        let (in1, out1) = track_counts(node, publisher, TrackKind::Audio);
        if in1 >= in0 + 50 {
            return (out1 - out0) as f64 / (in1 - in0) as f64;
        }
        assert!(
            start.elapsed() < MEDIA_TIMEOUT,
            "the audio stopped: in {in0} -> {in1}, out {out0} -> {out1}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_quality(bot: &Bot, track_id: &str, quality: Quality) {
    bot.send(&ClientMessage::SetQuality {
        track_id: track_id.to_owned(),
        quality,
    })
    .await
    .expect("set_quality sent");
}

/// The width of the latest keyframe `bot` received of `publisher`'s video.
fn video_width(bot: &Bot, publisher: &str) -> u16 {
    bot.remote_tracks()
        .iter()
        .find(|t| t.publisher_id == publisher && t.kind == TrackKind::Video && !t.ended)
        .map_or(0, |t| t.frame_width)
}

/// `publisher`'s video track on `node`.
fn video_track(
    node: &RunningServer,
    publisher: &str,
) -> std::sync::Arc<roomcast_sfu::media::published_track::PublishedTrack> {
    let room = node.sfu.room(ROOM).expect("the room is on this node");
    let tracks = room.tracks_of(publisher).expect("the presenter is here");
    tracks
        .into_iter()
        .find(|t| t.info.kind == TrackKind::Video)
        .expect("the video is here")
}

/// Waits until exactly `layers` of `publisher`'s video arrive at `node` (an edge: over
/// its relays).
async fn wait_arriving(node: &RunningServer, publisher: &str, layers: &[u8]) {
    let track = video_track(node, publisher);
    let start = Instant::now();
    loop {
        let arriving: Vec<u8> = track.arriving_layers(Instant::now()).iter().collect();
        if arriving == layers {
            return;
        }
        assert!(
            start.elapsed() < MEDIA_TIMEOUT,
            "layers arriving at {}: {arriving:?}, not {layers:?}",
            node.http_addr
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `node` forwards each layer of `publisher`'s video to `counts` subscribers.
async fn wait_receivers(node: &RunningServer, publisher: &str, counts: [usize; 3]) {
    let track = video_track(node, publisher);
    let start = Instant::now();
    loop {
        let now = track.receivers_per_layer();
        if now == counts {
            return;
        }
        assert!(
            start.elapsed() < MEDIA_TIMEOUT,
            "subscribers per layer on the owner: {now:?}, not {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the publisher sends (or stops sending) `layer` of its video.
async fn wait_layer_active(presenter: &Bot, layer: usize, active: bool) {
    let start = Instant::now();
    loop {
        let now = presenter
            .published_tracks()
            .iter()
            .find(|t| t.kind == TrackKind::Video)
            .and_then(|t| t.layers.get(layer).map(|l| l.active));
        if now == Some(active) {
            return;
        }
        assert!(
            start.elapsed() < MEDIA_TIMEOUT,
            "the publisher's layer {layer} active: {now:?}, not {active}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn video_requests(presenter: &Bot) -> Vec<u64> {
    presenter
        .published_tracks()
        .iter()
        .find(|t| t.kind == TrackKind::Video)
        .map(|t| t.layers.iter().map(|l| l.keyframe_requests).collect())
        .unwrap_or_default()
}

/// The publisher's keyframe requests per layer, once they have not changed for a second
/// (the requests of earlier joins and switches, and their retries, are over).
async fn settled_requests(presenter: &Bot) -> Vec<u64> {
    let start = Instant::now();
    let mut last = video_requests(presenter);
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(1) {
        assert!(
            start.elapsed() < MEDIA_TIMEOUT,
            "keyframe requests never settled: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = video_requests(presenter);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

/// Waits until `bot` was told that each of `ids` joined.
async fn wait_joined(bot: &Bot, from: MessageCursor, ids: &[String]) {
    for id in ids {
        bot.wait_for_message_after(
            from,
            |m| matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == *id),
            MESSAGE_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("{} sees {id} join: {e}", bot.participant_id()));
    }
}

/// Waits until `bot` is told, after `from`, that the audience counts `count`.
async fn wait_audience(bot: &Bot, from: MessageCursor, count: usize) {
    bot.wait_for_message_after(
        from,
        |m| matches!(m, ServerMessage::AudienceCount { count: c } if *c == count),
        MESSAGE_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{} is told audience_count {count}: {e}",
            bot.participant_id()
        )
    });
}

async fn wait_chat(bot: &Bot, from: MessageCursor, text: &str) {
    bot.wait_for_message_after(
        from,
        |m| matches!(m, ServerMessage::Chat { text: t, .. } if t == text),
        MESSAGE_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{} gets the chat: {e}", bot.participant_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webinar_audience_on_three_nodes_gets_the_presenter_through_one_copy_per_edge() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    let nodes = [
        start_node(&redis, IDS[0]).await,
        start_node(&redis, IDS[1]).await,
        start_node(&redis, IDS[2]).await,
    ];
    let webinar = RoomSettings {
        webinar: true,
        ..RoomSettings::default()
    };
    let host = join_with(
        config(&nodes[0], ROOM, "ann", Role::Host)
            .with_simulcast(true)
            .with_room_settings(webinar),
    )
    .await;
    let ann = host.participant_id().to_owned();
    let cluster = &nodes[0].cluster.as_ref().expect("a cluster node").cluster;
    let owner_id = cluster
        .rooms()
        .await
        .expect("the store answers")
        .into_iter()
        .find(|(r, _)| r == ROOM)
        .map(|(_, owner)| owner)
        .expect("the room is placed");
    let owner = IDS.iter().position(|id| *id == owner_id).expect("a node");
    let edges: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    for node in &nodes {
        wait_owner_loaded(node, &owner_id, IDS.len()).await;
    }

    // Two viewers on each node, joining without a role (a webinar makes them audience).
    let mut viewers: Vec<(usize, Bot)> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for n in 0..2 {
            let config = roomcast_bots::BotConfig::new(node.ws_url(), ROOM, format!("v{i}{n}"))
                .with_publish(false, None);
            viewers.push((i, join_with(config).await));
        }
    }
    for (_, viewer) in &viewers {
        wait_media(viewer, &ann, 1280, None).await;
    }
    // Every viewer is a member of the room on its node, wherever it watches from: the host
    // sees all six join (and no relay).
    let ids: Vec<String> = viewers
        .iter()
        .map(|(_, v)| v.participant_id().to_owned())
        .collect();
    wait_joined(&host, MessageCursor::START, &ids).await;

    // Each edge serves its audience's media itself: the owner's room holds the presenter,
    // its own two viewers, one hidden relay per edge and the edges' four viewers as members
    // (whose media the edges send); each edge's holds its two viewers, the presenter's
    // mirror and the hidden uplink that tells the owner about them.
    let here = |i: usize| nodes[i].sfu.room(ROOM).map_or(0, |r| r.member_count());
    let listed = |i: usize| {
        nodes[i]
            .sfu
            .room(ROOM)
            .map_or(0, |r| r.participants().len())
    };
    assert_eq!(listed(owner), 1 + 2 + 2 * edges.len());
    // The relays: one per edge, and one more per simulcast layer its viewers took beyond
    // the lowest (hidden members, never listed).
    let relays = here(owner) - listed(owner);
    assert!(
        (edges.len()..=3 * edges.len()).contains(&relays),
        "{relays} relays for {} edges",
        edges.len()
    );
    for &e in &edges {
        assert_eq!(here(e), 2 + 1 + 1);
    }
    // The owner sends one copy per edge and one per local viewer (2 + 2), not one per
    // viewer in the cluster (6); each edge sends one per viewer there (2).
    let owner_copies = copies_per_packet(&nodes[owner], &ann).await;
    eprintln!("owner {owner_id}: {owner_copies:.2} copies per incoming audio packet");
    assert!((3.5..=4.5).contains(&owner_copies), "owner {owner_copies}");
    for &e in &edges {
        let copies = copies_per_packet(&nodes[e], &ann).await;
        assert!((1.5..=2.5).contains(&copies), "edge {e}: {copies}");
    }
    // The relays are never announced: the host saw the six viewers join, and nobody else.
    let announced = host
        .messages()
        .iter()
        .filter(|m| matches!(m, ServerMessage::ParticipantJoined { .. }))
        .count();
    assert_eq!(announced, 6, "{:?}", host.messages());

    // Chat from the presenter reaches every viewer on every node.
    let cursors: Vec<MessageCursor> = viewers.iter().map(|(_, v)| v.message_cursor()).collect();
    host.send(&ClientMessage::Chat {
        text: "welcome".into(),
    })
    .await
    .expect("chat sent");
    for ((_, viewer), cursor) in viewers.iter().zip(&cursors) {
        wait_chat(viewer, *cursor, "welcome").await;
    }
    // So does a mute, and the unmute after it, in that order.
    let audio_id = viewers[0]
        .1
        .remote_tracks()
        .iter()
        .find(|t| t.publisher_id == ann && t.kind == TrackKind::Audio)
        .map(|t| t.track_id.clone())
        .expect("the presenter's audio");
    let cursors: Vec<MessageCursor> = viewers.iter().map(|(_, v)| v.message_cursor()).collect();
    for muted in [true, false] {
        host.send(&ClientMessage::Mute {
            track_id: audio_id.clone(),
            muted,
        })
        .await
        .expect("mute sent");
    }
    for ((_, viewer), cursor) in viewers.iter().zip(&cursors) {
        wait_muted(viewer, *cursor, &ann, &audio_id, true).await;
        let unmuted = viewer
            .wait_for_message_after(
                *cursor,
                |m| matches!(m, ServerMessage::TrackMuted { muted: false, .. }),
                MESSAGE_TIMEOUT,
            )
            .await
            .expect("the unmute arrives");
        let order: Vec<bool> = viewer
            .messages()
            .iter()
            .filter_map(|m| match m {
                ServerMessage::TrackMuted { muted, .. } => Some(*muted),
                _ => None,
            })
            .collect();
        assert_eq!(order, [true, false], "{unmuted:?}");
    }

    // set_quality on an edge: both viewers of the second edge ask for the lowest layer,
    // so that edge asks the owner for it; the first edge's media goes on.
    let track_id = viewers[0]
        .1
        .remote_tracks()
        .iter()
        .find(|t| t.publisher_id == ann && t.kind == TrackKind::Video)
        .map(|t| t.track_id.clone())
        .expect("the presenter's video");
    let low_edge = edges[1];
    let since = Instant::now();
    for (i, viewer) in &viewers {
        if *i == low_edge {
            viewer
                .send(&ClientMessage::SetQuality {
                    track_id: track_id.clone(),
                    quality: Quality::Low,
                })
                .await
                .expect("set_quality sent");
        }
    }
    for (i, viewer) in &viewers {
        if *i == low_edge {
            wait_media(viewer, &ann, 320, Some(since)).await;
        }
    }
    for (i, viewer) in &viewers {
        if *i == edges[0] {
            assert_media_keeps_flowing(viewer, &[&ann]).await;
        }
    }

    // Layers per viewer on an edge: one viewer of the low edge asks for the top layer again
    // and gets 1280x720, while the other keeps 320x180.
    let low: Vec<&Bot> = viewers
        .iter()
        .filter(|(i, _)| *i == low_edge)
        .map(|(_, v)| v)
        .collect();
    let since = Instant::now();
    set_quality(low[0], &track_id, Quality::High).await;
    wait_media(low[0], &ann, 1280, Some(since)).await;
    assert_media_keeps_flowing(low[1], &[&ann]).await;
    assert_eq!(
        video_width(low[1], &ann),
        320,
        "{:?}",
        low[1].remote_tracks()
    );
    // Each edge receives the layers its viewers take, each once: the low edge the lowest
    // and the top, the other edge the top only. So the owner forwards the lowest layer to
    // one subscriber (the low edge's relay of it), the middle one to none, and the top to
    // its own two viewers and one relay per edge.
    wait_arriving(&nodes[low_edge], &ann, &[0, 2]).await;
    wait_arriving(&nodes[edges[0]], &ann, &[2]).await;
    wait_receivers(&nodes[owner], &ann, [1, 0, 2 + edges.len()]).await;
    // Dynacast across the relay: nobody on any node wants the middle layer, so the
    // publisher stops sending it; a viewer on an edge asking for it starts it again, and
    // gets it (640x360) while the edge's other viewer keeps the top.
    wait_layer_active(&host, 1, false).await;
    let since = Instant::now();
    set_quality(low[1], &track_id, Quality::Medium).await;
    wait_media(low[1], &ann, 640, Some(since)).await;
    wait_layer_active(&host, 1, true).await;
    assert_media_keeps_flowing(low[0], &[&ann]).await;
    assert_eq!(
        video_width(low[0], &ann),
        1280,
        "{:?}",
        low[0].remote_tracks()
    );
    wait_arriving(&nodes[low_edge], &ann, &[1, 2]).await;

    // A new viewer on the first edge costs the publisher at most one keyframe request on
    // the layer it receives (the edge asks for it once; the owner passes it on once).
    // Counted once the requests of the switches above have settled. Under load (CPU
    // starved, so loss and delay on loopback) the other viewers keep asking too: the other
    // edge's relays and the owner's own viewers switch layers as congestion control moves
    // them, each switch a request of its own. Those are not this viewer's: the owner's and
    // the edges' counters say who asked, and the publisher's count is this viewer's alone
    // only when nobody else asked meanwhile.
    let before = settled_requests(&host).await;
    let counts_before: Vec<[u64; 3]> = nodes.iter().map(|n| keyframe_counts(n, &ann)).collect();
    let late = join_with(
        roomcast_bots::BotConfig::new(nodes[edges[0]].ws_url(), ROOM, "late")
            .with_publish(false, None),
    )
    .await;
    wait_media(&late, &ann, 1280, None).await;
    let after = video_requests(&host);
    let counts_after: Vec<[u64; 3]> = nodes.iter().map(|n| keyframe_counts(n, &ann)).collect();
    let delta = |node: usize, i: usize| counts_after[node][i] - counts_before[node][i];
    let extra: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let (late_edge, other_edge) = (edges[0], edges[1]);
    eprintln!(
        "keyframe requests per layer at the publisher for one more edge viewer: {extra:?}; \
         its edge asked the owner {} times, the other edge {}, the owner got {} from its \
         subscribers, its viewers switched layers {} times, and it asked the publisher {}",
        delta(late_edge, 1),
        delta(other_edge, 1),
        delta(owner, 0),
        delta(owner, 2),
        delta(owner, 1),
    );
    // A retry (the keyframe took longer than the retry interval, 800 ms) is a request of
    // its own too.
    let nobody_else_asked =
        delta(other_edge, 1) == 0 && delta(owner, 0) == delta(late_edge, 1) && delta(owner, 2) == 0;
    if nobody_else_asked {
        // What the owner and the publisher got is this viewer's: its edge asks once, and
        // the owner passes that on once.
        assert!(
            delta(late_edge, 1) <= 1,
            "the edge asked the owner {} times for one new viewer",
            delta(late_edge, 1)
        );
        assert!(
            extra.iter().all(|&n| n <= 1),
            "keyframe requests per layer for one edge viewer: {extra:?}"
        );
    }

    for (_, viewer) in viewers {
        let _ = viewer.leave().await;
    }
    let _ = late.leave().await;
    let _ = host.leave().await;
}

/// Three nodes, a webinar host on the first, and the owner loaded: `(nodes, host, owner,
/// edges)`.
async fn webinar(redis: &RedisServer) -> ([RunningServer; 3], Bot, usize, Vec<usize>) {
    let nodes = [
        start_node(redis, IDS[0]).await,
        start_node(redis, IDS[1]).await,
        start_node(redis, IDS[2]).await,
    ];
    let settings = RoomSettings {
        webinar: true,
        ..RoomSettings::default()
    };
    let host =
        join_with(viewer(&nodes[0], ROOM, "ann", Role::Host).with_room_settings(settings)).await;
    let cluster = &nodes[0].cluster.as_ref().expect("a cluster node").cluster;
    let owner_id = cluster
        .rooms()
        .await
        .expect("the store answers")
        .into_iter()
        .find(|(r, _)| r == ROOM)
        .map(|(_, owner)| owner)
        .expect("the room is placed");
    let owner = IDS.iter().position(|id| *id == owner_id).expect("a node");
    for node in &nodes {
        wait_owner_loaded(node, &owner_id, IDS.len()).await;
    }
    let edges = (0..3).filter(|&i| i != owner).collect();
    (nodes, host, owner, edges)
}

fn chats_of(bot: &Bot, text: &str) -> usize {
    bot.messages()
        .iter()
        .filter(|m| matches!(m, ServerMessage::Chat { text: t, .. } if t == text))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_viewers_are_members_of_the_room_on_its_node() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    let (nodes, host, owner, edges) = webinar(&redis).await;
    // An audience spread over the three nodes: one on the owner, two on each edge.
    let mut audience: Vec<(usize, Bot)> = Vec::new();
    for i in std::iter::once(owner).chain(edges.iter().copied().chain(edges.iter().copied())) {
        let config = roomcast_bots::BotConfig::new(nodes[i].ws_url(), ROOM, format!("v{i}"))
            .with_publish(false, None);
        audience.push((i, join_with(config).await));
    }
    let ids: Vec<String> = audience
        .iter()
        .map(|(_, v)| v.participant_id().to_owned())
        .collect();
    // The host on the owner sees every viewer join, and the room lists them.
    wait_joined(&host, MessageCursor::START, &ids).await;
    let room = nodes[owner]
        .sfu
        .room(ROOM)
        .expect("the room is on its node");
    let listed: Vec<String> = room.participants().into_iter().map(|p| p.id).collect();
    for id in &ids {
        assert!(listed.contains(id), "{id} listed on the owner: {listed:?}");
    }
    assert_eq!(room.audience_count(), 5);
    // Every viewer, wherever it is, is told the whole audience.
    for (_, v) in &audience {
        wait_audience(v, MessageCursor::START, 5).await;
    }
    // The admin API, from any node, lists the room once, on its node, with the whole
    // audience and how many of it each edge serves; the room's details list edge viewers.
    let bearer = format!("Authorization: Bearer {ADMIN_KEY}\r\n");
    for node in &nodes {
        let reply = common::http::get(node.http_addr, "/api/rooms", &bearer).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let list: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
        let rooms = list["rooms"].as_array().expect("a list");
        assert_eq!(rooms.len(), 1, "{list}");
        assert_eq!(rooms[0]["node"], IDS[owner], "{list}");
        assert_eq!(rooms[0]["audience"], 5, "{list}");
        assert_eq!(rooms[0]["participants"], 6, "{list}");
        let mut listed: Vec<(String, u64)> = rooms[0]["edges"]
            .as_array()
            .expect("the room's edges")
            .iter()
            .map(|e| {
                (
                    e["node"].as_str().unwrap_or_default().to_owned(),
                    e["audience"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        listed.sort();
        let want: Vec<(String, u64)> = edges.iter().map(|&e| (IDS[e].to_owned(), 2)).collect();
        assert_eq!(listed, want, "{list}");
        let detail = common::http::get(node.http_addr, "/api/rooms/webinar", &bearer).await;
        assert_eq!(detail.status, 200, "{}", detail.body);
        for id in &ids {
            assert!(detail.body.contains(id.as_str()), "{id}: {}", detail.body);
        }
    }

    // An edge viewer's chat reaches the host on the owner (once), and the sender sees it
    // once; the host's answer reaches the edge viewer.
    let (edge, asker) = (audience[1].0, &audience[1].1);
    assert_ne!(edge, owner);
    let from = (host.message_cursor(), asker.message_cursor());
    asker
        .send(&ClientMessage::Chat {
            text: "a question from an edge".into(),
        })
        .await
        .expect("chat sent");
    let question = host
        .wait_for_message_after(
            from.0,
            |m| matches!(m, ServerMessage::Chat { text, .. } if text == "a question from an edge"),
            MESSAGE_TIMEOUT,
        )
        .await
        .expect("the host gets the edge viewer's chat");
    assert!(
        matches!(&question, ServerMessage::Chat { participant_id, name, .. }
            if *participant_id == ids[1] && *name == format!("v{edge}")),
        "{question:?}"
    );
    wait_chat(asker, from.1, "a question from an edge").await;
    host.send(&ClientMessage::Chat {
        text: "an answer".into(),
    })
    .await
    .expect("chat sent");
    wait_chat(asker, from.1, "an answer").await;
    // The answer came after the question: the sender's echo was not repeated meanwhile.
    assert_eq!(chats_of(asker, "a question from an edge"), 1);
    assert_eq!(chats_of(&host, "a question from an edge"), 1);
    // The other audience members do not see an audience member's chat (as on one node).
    for (_, v) in audience.iter().skip(2) {
        wait_chat(v, MessageCursor::START, "an answer").await;
        assert_eq!(chats_of(v, "a question from an edge"), 0);
    }

    // Promoting an edge viewer is refused clearly: its node cannot carry its media here.
    let from = host.message_cursor();
    host.send(&ClientMessage::SetRole {
        participant_id: ids[1].clone(),
        role: Role::Presenter,
    })
    .await
    .expect("set_role sent");
    host.wait_for_message_after(
        from,
        |m| {
            matches!(
                m,
                ServerMessage::Error {
                    code: ErrorCode::Forbidden,
                    ..
                }
            )
        },
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("the promotion is refused");
    assert_eq!(room.role_of(&ids[1]), Some(Role::Audience));

    // The host on the owner kicks an edge viewer: the edge closes it as kicked, and the
    // room on its node and every node's audience count lose it.
    let (kicked_edge, kicked) = (audience[2].0, &audience[2].1);
    let from = host.message_cursor();
    let counts: Vec<MessageCursor> = audience.iter().map(|(_, v)| v.message_cursor()).collect();
    host.send(&ClientMessage::Kick {
        participant_id: ids[2].clone(),
    })
    .await
    .expect("kick sent");
    // From before the kick: the error may already be in (and the socket closed) by now.
    kicked
        .wait_for_message_after(
            counts[2],
            |m| {
                matches!(
                    m,
                    ServerMessage::Error {
                        code: ErrorCode::Kicked,
                        ..
                    }
                )
            },
            MESSAGE_TIMEOUT,
        )
        .await
        .expect("the edge viewer is told it was kicked");
    kicked
        .wait_for_close(MESSAGE_TIMEOUT)
        .await
        .expect("the kicked edge viewer is closed");
    host.wait_for_message_after(
        from,
        |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == ids[2]),
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("the host sees the kicked viewer leave");
    assert_eq!(room.role_of(&ids[2]), None);
    for ((_, v), from) in audience.iter().zip(&counts) {
        if v.participant_id() != ids[2] {
            wait_audience(v, *from, 4).await;
        }
    }
    assert_eq!(
        nodes[kicked_edge]
            .sfu
            .room(ROOM)
            .and_then(|r| r.role_of(&ids[2])),
        None
    );

    // An edge viewer leaving leaves the room on its node.
    let from = host.message_cursor();
    let (_, last) = audience.pop().expect("a viewer");
    let last_id = last.participant_id().to_owned();
    let _ = last.leave().await;
    host.wait_for_message_after(
        from,
        |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == last_id),
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("the host sees the edge viewer leave");
    assert_eq!(room.audience_count(), 3);
    for (_, v) in audience {
        let _ = v.leave().await;
    }
    let _ = host.leave().await;
}

/// When `bot`'s first keyframe of `publisher`'s video `width` wide arrived after `since`.
fn keyframe_at(bot: &Bot, publisher: &str, width: u16, since: Instant) -> Duration {
    bot.remote_tracks()
        .iter()
        .filter(|t| t.publisher_id == publisher && t.kind == TrackKind::Video)
        .flat_map(|t| t.keyframe_sizes.iter())
        .filter(|k| k.width == width && k.at >= since)
        .map(|k| k.at - since)
        .min()
        .expect("the keyframe arrived")
}

/// Asks for `quality` and waits until the picture is `width` wide; returns how long after
/// the request its first keyframe came.
async fn switch(
    bot: &Bot,
    publisher: &str,
    track_id: &str,
    quality: Quality,
    width: u16,
) -> Duration {
    let since = Instant::now();
    set_quality(bot, track_id, quality).await;
    wait_media(bot, publisher, width, Some(since)).await;
    keyframe_at(bot, publisher, width, since)
}

/// A layer that no viewer of an edge took yet reaches the edge viewer that asks for it (its
/// relay opens, the owner sends that layer on it): the viewer gets 640x360, and so does it
/// again after the layer was off there. Prints how long each switch took against the same
/// switch on the room's node (see docs/cluster.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_viewer_switching_to_a_layer_nobody_there_had_gets_it() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    let nodes = [
        start_node(&redis, IDS[0]).await,
        start_node(&redis, IDS[1]).await,
    ];
    let webinar = RoomSettings {
        webinar: true,
        ..RoomSettings::default()
    };
    let host = join_with(
        config(&nodes[0], ROOM, "ann", Role::Host)
            .with_simulcast(true)
            .with_room_settings(webinar),
    )
    .await;
    let ann = host.participant_id().to_owned();
    let cluster = &nodes[0].cluster.as_ref().expect("a cluster node").cluster;
    let owner_id = cluster
        .rooms()
        .await
        .expect("the store answers")
        .into_iter()
        .find(|(r, _)| r == ROOM)
        .map(|(_, owner)| owner)
        .expect("the room is placed");
    let owner = IDS.iter().position(|id| *id == owner_id).expect("a node");
    let edge = 1 - owner;
    for node in &nodes {
        wait_owner_loaded(node, &owner_id, nodes.len()).await;
    }
    // A viewer on the owner keeps the middle layer on at the publisher; the two measured
    // viewers, one per node, take the top layer (the default).
    let keeper = join_with(viewer(&nodes[owner], ROOM, "keeper", Role::Audience)).await;
    wait_media(&keeper, &ann, 1280, None).await;
    let video_id = keeper
        .remote_tracks()
        .iter()
        .find(|t| t.publisher_id == ann && t.kind == TrackKind::Video)
        .map(|t| t.track_id.clone())
        .expect("the presenter's video");
    set_quality(&keeper, &video_id, Quality::Medium).await;
    wait_media(&keeper, &ann, 640, None).await;
    let mut measured = Vec::new();
    for i in [owner, edge] {
        let bot = join_with(viewer(&nodes[i], ROOM, &format!("v{i}"), Role::Audience)).await;
        wait_media(&bot, &ann, 1280, None).await;
        measured.push(bot);
    }
    let (on_owner, on_edge) = (&measured[0], &measured[1]);
    let here = |i: usize| nodes[i].sfu.room(ROOM).map_or(0, |r| r.member_count());
    let listed = |i: usize| {
        nodes[i]
            .sfu
            .room(ROOM)
            .map_or(0, |r| r.participants().len())
    };
    // The edge's first relay and the top layer's; the middle layer's too if a moment of
    // low bandwidth as the viewer started had it take that layer.
    let relays_before = here(owner) - listed(owner);

    let owner_switch = switch(on_owner, &ann, &video_id, Quality::Medium, 640).await;
    let edge_switch = switch(on_edge, &ann, &video_id, Quality::Medium, 640).await;
    assert_eq!(
        here(owner) - listed(owner),
        3,
        "the edge's relays: its first, the top layer's and the middle layer's"
    );
    assert_media_keeps_flowing(on_owner, &[&ann]).await;
    // Back to the top, long enough that the edge asks the middle layer's relay for
    // nothing, then the middle layer again: its relay is open, the layer is not.
    switch(on_edge, &ann, &video_id, Quality::High, 1280).await;
    tokio::time::sleep(HOLD_AND_MORE).await;
    let edge_again = switch(on_edge, &ann, &video_id, Quality::Medium, 640).await;
    eprintln!(
        "switch 1280x720 -> 640x360, request -> first keyframe: owner {} ms, edge {} ms ({}), \
         edge with the layer's relay open {} ms",
        owner_switch.as_millis(),
        edge_switch.as_millis(),
        if relays_before == 2 {
            "its relay opened for it"
        } else {
            "its relay was open"
        },
        edge_again.as_millis(),
    );
    for bot in measured {
        let _ = bot.leave().await;
    }
    let _ = keeper.leave().await;
    let _ = host.leave().await;
}
