//! Limits through the real WebSocket: a chat flood gets `rate_limited` and a close, a flood
//! of oversized frames closes only that connection, rooms beyond `--max-rooms` are refused,
//! and joins from one IP beyond their rate get `rate_limited`. Everyone else in the room
//! keeps working.
mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::{Bot, BotConfig};
use roomcast_protocol::ServerMessage;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &RunningServer) -> Socket {
    tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("websocket connects")
        .0
}

/// The next server message (skipping control frames), or `None` if the connection ended.
async fn next_json(socket: &mut Socket) -> Option<Value> {
    tokio::time::timeout(MESSAGE_TIMEOUT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    break Some(serde_json::from_str(&t).expect("JSON from the server"))
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .expect("a message in time")
}

/// Sends `join` and returns the reply: `joined` or an error.
async fn raw_join(socket: &mut Socket, room: &str, name: &str) -> Value {
    let join = format!(r#"{{"type":"join","room":"{room}","name":"{name}"}}"#);
    socket
        .send(Message::Text(join.into()))
        .await
        .expect("join sent");
    loop {
        let v = next_json(socket).await.expect("a reply to join");
        if v["type"] == "joined" || v["type"] == "error" {
            return v;
        }
    }
}

/// Reads until the server closes: the messages seen and the close code.
async fn read_until_close(socket: &mut Socket) -> (Vec<Value>, Option<u16>) {
    let mut seen = Vec::new();
    let code = tokio::time::timeout(MESSAGE_TIMEOUT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    seen.push(serde_json::from_str(&t).expect("JSON from the server"))
                }
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => break None,
            }
        }
    })
    .await
    .expect("the server closes in time");
    (seen, code)
}

fn errors<'a>(seen: &'a [Value], code: &str) -> Vec<&'a Value> {
    seen.iter()
        .filter(|v| v["type"] == "error" && v["code"] == code)
        .collect()
}

/// Two bystanders in `room` (no media, to keep the test light).
async fn bystanders(server: &RunningServer, room: &str) -> (Bot, Bot) {
    let ann =
        join_with(BotConfig::new(server.ws_url(), room, "ann").with_publish(false, None)).await;
    let bob =
        join_with(BotConfig::new(server.ws_url(), room, "bob").with_publish(false, None)).await;
    (ann, bob)
}

/// `from` says something and `to` hears it.
async fn chat_works(from: &Bot, to: &Bot, text: &str) {
    let cursor = to.message_cursor();
    from.send_raw(format!(r#"{{"type":"chat","text":"{text}"}}"#))
        .await
        .expect("chat sent");
    to.wait_for_message_after(
        cursor,
        |m| matches!(m, ServerMessage::Chat { text: t, .. } if t == text),
        MESSAGE_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{text:?} did not arrive: {e}"));
}

fn no_errors(bot: &Bot) {
    let errors: Vec<_> = bot
        .messages()
        .into_iter()
        .filter(|m| matches!(m, ServerMessage::Error { .. }))
        .collect();
    assert!(errors.is_empty(), "a bystander saw errors: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_flood_gets_rate_limited_and_closed_while_the_room_keeps_chatting() {
    let server = start_with(ServeArgs::local_ephemeral()).await;
    let (ann, bob) = bystanders(&server, "flood").await;
    let mut mallory = connect(&server).await;
    let joined = raw_join(&mut mallory, "flood", "mallory").await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let mallory_id = joined["participant_id"].as_str().unwrap().to_owned();

    let cursor = ann.message_cursor();
    // Far more than the burst (50) at once. Sends after the close may fail: ignore them.
    for i in 0..300 {
        let chat = format!(r#"{{"type":"chat","text":"spam {i}"}}"#);
        if mallory.send(Message::Text(chat.into())).await.is_err() {
            break;
        }
    }
    let (seen, code) = read_until_close(&mut mallory).await;
    let limited = errors(&seen, "rate_limited");
    assert_eq!(limited.len(), 1, "one rate_limited error: {seen:?}");
    assert!(
        limited[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("per second")),
        "the error says why: {}",
        limited[0]
    );
    assert_eq!(code, Some(1008), "closed as a policy violation");

    // The flood was cut off: the room saw at most the burst of it.
    ann.wait_for_message_after(
        cursor,
        |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == mallory_id),
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("mallory left the room");
    let spam = ann
        .messages()
        .iter()
        .filter(|m| matches!(m, ServerMessage::Chat { text, .. } if text.starts_with("spam")))
        .count();
    assert!(spam <= 55, "ann got {spam} spam messages");

    chat_works(&bob, &ann, "still here").await;
    chat_works(&ann, &bob, "me too").await;
    no_errors(&ann);
    no_errors(&bob);
    assert!(ann.closed().is_none() && bob.closed().is_none());
    assert_eq!(server.stats().participants, 2);

    // Counted in /metrics like any signaling error.
    let metrics = server.sfu.metrics.signaling_errors();
    assert!(
        metrics
            .iter()
            .any(|(code, n)| *code == "rate_limited" && *n >= 1),
        "{metrics:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_rate_under_the_limit_is_fine() {
    let server = start_with(ServeArgs {
        max_messages_per_second: 20,
        message_burst: 5,
        ..ServeArgs::local_ephemeral()
    })
    .await;
    let (ann, bob) = bystanders(&server, "steady").await;
    // 10 per second for 2 s: well under 20 per second, far over the burst of 5 in total.
    for i in 0..20 {
        chat_works(&bob, &ann, &format!("line {i}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(bob.closed().is_none(), "bob was not cut off");
    no_errors(&bob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_flood_closes_only_that_connection() {
    let server = start_with(ServeArgs::local_ephemeral()).await;
    let (ann, bob) = bystanders(&server, "big-flood").await;
    let mut mallory = connect(&server).await;
    let joined = raw_join(&mut mallory, "big-flood", "mallory").await;
    assert_eq!(joined["type"], "joined", "{joined}");

    let huge = format!(
        r#"{{"type":"chat","text":"{}"}}"#,
        "x".repeat(roomcast_protocol::MAX_FRAME_BYTES + 10)
    );
    for _ in 0..50 {
        if mallory
            .send(Message::Text(huge.clone().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let (seen, code) = read_until_close(&mut mallory).await;
    assert_eq!(
        errors(&seen, "frame_too_large").len(),
        1,
        "one frame_too_large error: {seen:?}"
    );
    assert_eq!(code, Some(1008));

    // A second flooder sends frames far past the limit, which the WebSocket layer refuses
    // outright: that connection ends too.
    let mut giant = connect(&server).await;
    let joined = raw_join(&mut giant, "big-flood", "giant").await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let far_too_big = "y".repeat(roomcast_protocol::MAX_FRAME_BYTES * 8);
    for _ in 0..5 {
        if giant
            .send(Message::Text(far_too_big.clone().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = read_until_close(&mut giant).await;

    let deadline = tokio::time::Instant::now() + MESSAGE_TIMEOUT;
    while server.stats().participants != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flooders did not leave: {:?}",
            server.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    chat_works(&ann, &bob, "after the flood").await;
    chat_works(&bob, &ann, "all fine").await;
    no_errors(&ann);
    no_errors(&bob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_beyond_max_rooms_are_refused_and_nothing_is_created() {
    let server = start_with(ServeArgs {
        max_rooms: 2,
        ..ServeArgs::local_ephemeral()
    })
    .await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    assert_eq!(raw_join(&mut a, "room-a", "a").await["type"], "joined");
    assert_eq!(raw_join(&mut b, "room-b", "b").await["type"], "joined");

    let mut c = connect(&server).await;
    let refused = raw_join(&mut c, "room-c", "c").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "room_full", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 rooms")),
        "the error says the server is at its room limit: {refused}"
    );
    let stats = server.stats();
    assert_eq!((stats.rooms, stats.participants), (2, 2), "{stats:?}");
    assert!(server.sfu.room("room-c").is_none());

    // The connection stays open: joining an existing room works.
    let joined = raw_join(&mut c, "room-a", "c").await;
    assert_eq!(joined["type"], "joined", "{joined}");

    // Once a room closes, a new one may be created.
    b.send(Message::Text(r#"{"type":"leave"}"#.into()))
        .await
        .expect("leave sent");
    let _ = read_until_close(&mut b).await;
    let mut d = connect(&server).await;
    let deadline = tokio::time::Instant::now() + MESSAGE_TIMEOUT;
    while server.sfu.room("room-b").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "room-b never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let joined = raw_join(&mut d, "room-d", "d").await;
    assert_eq!(joined["type"], "joined", "{joined}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_per_ip_beyond_the_rate_get_rate_limited() {
    let server = start_with(ServeArgs {
        max_joins_per_ip_per_second: 1,
        join_burst_per_ip: 3,
        ..ServeArgs::local_ephemeral()
    })
    .await;
    let mut sockets = Vec::new();
    for i in 0..3 {
        let mut s = connect(&server).await;
        let joined = raw_join(&mut s, "busy", &format!("p{i}")).await;
        assert_eq!(joined["type"], "joined", "join {i}: {joined}");
        sockets.push(s);
    }
    let mut late = connect(&server).await;
    let refused = raw_join(&mut late, "busy", "late").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("joins")),
        "{refused}"
    );
    assert_eq!(
        server.stats().participants,
        3,
        "the refused join created nothing"
    );

    // The connection stays open: its next join is answered, refused again while the bucket
    // is empty. (That it refills with time is a fake-clock unit test in src/http.rs.)
    let again = raw_join(&mut late, "busy", "late").await;
    assert_eq!(again["code"], "rate_limited", "{again}");
    assert_eq!(server.stats().participants, 3);
}
