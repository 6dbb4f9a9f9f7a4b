//! Graceful shutdown: every connected client gets `server_shutdown` and a close (1001), the
//! sessions end, and it all finishes within 5 s; in-process through
//! `RunningServer::shutdown`, and for the real binary through SIGTERM. And a meeting that
//! ends normally leaves the real binary's default log free of warnings.
mod common;

use std::time::{Duration, Instant};

use common::binary::ServeProcess;
use common::*;
use futures_util::{SinkExt, StreamExt};
use roomcast_bots::{Bot, BotConfig, MessageCursor};
use roomcast_protocol::{ErrorCode, ServerMessage};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(5);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Socket {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects")
        .0
}

/// Joins `room` on a bare socket and reads up to `joined`.
async fn raw_join(socket: &mut Socket, room: &str, name: &str) {
    let join = format!(r#"{{"type":"join","room":"{room}","name":"{name}"}}"#);
    socket
        .send(Message::Text(join.into()))
        .await
        .expect("join sent");
    tokio::time::timeout(MESSAGE_TIMEOUT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON");
                    assert_ne!(v["type"], "error", "join refused: {v}");
                    if v["type"] == "joined" {
                        return;
                    }
                }
                Some(Ok(_)) => continue,
                other => panic!("connection ended before joined: {other:?}"),
            }
        }
    })
    .await
    .expect("joined in time");
}

/// Reads until the server closes: the errors' codes seen and the close code.
async fn read_until_close(socket: &mut Socket) -> (Vec<String>, Option<u16>) {
    let mut codes = Vec::new();
    let close = tokio::time::timeout(DEADLINE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON");
                    if v["type"] == "error" {
                        codes.push(v["code"].as_str().unwrap_or_default().to_owned());
                    }
                }
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => break None,
            }
        }
    })
    .await
    .expect("closed within the deadline");
    (codes, close)
}

async fn assert_bot_told(bot: &Bot, cursor: MessageCursor) {
    let got = bot
        .wait_for_message_after(
            cursor,
            |m| matches!(m, ServerMessage::Error { .. }),
            MESSAGE_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("{} got no error: {e}", bot.participant_id()));
    assert!(
        matches!(
            got,
            ServerMessage::Error {
                code: ErrorCode::ServerShutdown,
                ..
            }
        ),
        "{got:?}"
    );
    let closed = bot
        .wait_for_close(MESSAGE_TIMEOUT)
        .await
        .expect("the bot's connection closed");
    assert_eq!(closed.code, Some(1001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_every_client_closes_them_and_finishes_in_time() {
    let server = start_server().await;
    let url = server.ws_url();
    let ann = join(&server, "meeting", "ann").await;
    let bob = join(&server, "meeting", "bob").await;
    let a = ann.participant_id().to_owned();
    bob.wait_for_media(|t| has_audio_from(t, &a, 20), MEDIA_TIMEOUT)
        .await
        .expect("media flows before the shutdown");
    let cat =
        join_with(BotConfig::new(url.clone(), "other", "cat").with_publish(false, None)).await;
    let mut raw = connect(&url).await;
    raw_join(&mut raw, "other", "raw").await;
    // Connected but never joined: told as well.
    let mut idle = connect(&url).await;
    let sfu = std::sync::Arc::clone(&server.sfu);
    assert_eq!(server.live_connections(), 5);
    let cursors: Vec<MessageCursor> = [&ann, &bob, &cat]
        .iter()
        .map(|b| b.message_cursor())
        .collect();

    let started = Instant::now();
    tokio::time::timeout(DEADLINE, server.shutdown())
        .await
        .expect("shutdown finishes within 5 s");
    let took = started.elapsed();

    for socket in [&mut raw, &mut idle] {
        let (codes, close) = read_until_close(socket).await;
        assert_eq!(codes, ["server_shutdown"]);
        assert_eq!(close, Some(1001));
    }
    for (bot, cursor) in [&ann, &bob, &cat].into_iter().zip(cursors) {
        assert_bot_told(bot, cursor).await;
    }
    // Every session ended: nobody is left in any room.
    let stats = sfu.stats();
    assert_eq!((stats.rooms, stats.participants), (0, 0), "{stats:?}");
    assert!(took < DEADLINE, "took {took:?}");
    // Nothing listens any more.
    assert!(tokio_tungstenite::connect_async(&url).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_no_clients_is_quick() {
    let server = start_server().await;
    let started = Instant::now();
    server.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_clients_and_the_binary_exits_0_within_5_s() {
    let mut server = ServeProcess::start(&[], Some("info")).await;
    let mut client = connect(&server.ws_url()).await;
    raw_join(&mut client, "sig", "ann").await;

    server.terminate();
    let sent = Instant::now();

    let (codes, close) = read_until_close(&mut client).await;
    assert_eq!(codes, ["server_shutdown"]);
    assert_eq!(close, Some(1001));
    let exit = server.exited_within(DEADLINE).await;
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    assert!(sent.elapsed() < DEADLINE);
}

/// Operators read warnings: participants joining, exchanging media and leaving is not one.
/// (webrtc-rs warned two to four times per connection that closed, and once per SSRC that
/// a publisher sent before the server had read its offer: vendor/webrtc's patch 7, and the
/// mux's per-datagram warning, filtered in `SERVE_LOG_FILTER`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_that_ends_normally_logs_no_warnings() {
    let mut server = ServeProcess::start(&[], None).await;
    let url = server.ws_url();
    let ann = Bot::join(BotConfig::new(url.clone(), "quiet", "ann"))
        .await
        .expect("ann joins");
    let bob = Bot::join(BotConfig::new(url, "quiet", "bob"))
        .await
        .expect("bob joins");
    for (bot, other) in [(&ann, &bob), (&bob, &ann)] {
        let from = other.participant_id().to_owned();
        bot.wait_for_media(
            |tracks| {
                has_audio_from(tracks, &from, 20) && has_video_from(tracks, &from, 20, 640, 360)
            },
            MEDIA_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("{} gets both tracks: {e}", bot.participant_id()));
    }
    ann.leave().await.expect("ann leaves");
    bob.leave().await.expect("bob leaves");
    // Both sessions ended on the server (their connections closed with them).
    tokio::time::timeout(MESSAGE_TIMEOUT, async {
        let left = |v: &&Value| v["fields"]["message"] == "left";
        while server.logs().iter().filter(left).count() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the server logs both leaving");

    server.terminate();
    let logs = server.final_logs(DEADLINE).await;
    let noisy: Vec<&Value> = logs
        .iter()
        .filter(|v| v["level"] == "WARN" || v["level"] == "ERROR")
        // The one warning this configuration deserves: no --jwt-secret, an open server.
        .filter(|v| {
            !v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no --jwt-secret"))
        })
        .collect();
    assert!(
        noisy.is_empty(),
        "warnings in a normal meeting's log: {noisy:#?}"
    );
}
