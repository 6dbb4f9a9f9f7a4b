//! WebSocket keepalive, with the intervals shortened to a 1 s ping and a 3 s timeout: a
//! joined client that stops reading (so it never answers a ping) is dropped in time and
//! the room sees it leave; clients that keep reading stay connected.
mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use roomcast::http::{HttpOptions, Keepalive, KEEPALIVE_CLOSE_CODE};
use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::BotConfig;
use roomcast_protocol::ServerMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const PING: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(3);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn start() -> RunningServer {
    init_logs();
    let options = HttpOptions {
        keepalive: Keepalive {
            ping_interval: PING,
            timeout: TIMEOUT,
        },
    };
    let server = RunningServer::start_with(&ServeArgs::local_ephemeral(), options)
        .await
        .expect("server starts");
    // No resume grace: a dropped client leaves as soon as the drop is noticed.
    server.sessions.resume.set_grace(Duration::ZERO);
    server
}

/// A bare WebSocket client that joins `room` and returns its participant id.
async fn raw_join(server: &RunningServer, room: &str, name: &str) -> (Socket, String) {
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("websocket connects");
    let join = format!(r#"{{"type":"join","room":"{room}","name":"{name}"}}"#);
    socket
        .send(Message::Text(join.into()))
        .await
        .expect("join sent");
    let id = tokio::time::timeout(MESSAGE_TIMEOUT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value = serde_json::from_str(&t).expect("JSON");
                    if v["type"] == "joined" {
                        break v["participant_id"].as_str().expect("an id").to_owned();
                    }
                }
                Some(Ok(_)) => continue,
                other => panic!("connection ended before joined: {other:?}"),
            }
        }
    })
    .await
    .expect("joined in time");
    (socket, id)
}

/// A WebSocket client written by hand over TCP, so nothing answers pings behind the test's
/// back: it joins `room`, reads up to `joined`, and hands back the stream and its id.
async fn bare_join(server: &RunningServer, room: &str, name: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(server.http_addr)
        .await
        .expect("connects");
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.http_addr
    );
    tcp.write_all(handshake.as_bytes())
        .await
        .expect("handshake");
    let mut buf = Vec::new();
    let (joined, id) = tokio::time::timeout(MESSAGE_TIMEOUT, async {
        let mut sent_join = false;
        loop {
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed during the join");
            buf.extend_from_slice(&chunk[..n]);
            if !sent_join {
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                assert!(buf.starts_with(b"HTTP/1.1 101"), "not upgraded");
                buf.drain(..end + 4);
                let join = format!(r#"{{"type":"join","room":"{room}","name":"{name}"}}"#);
                tcp.write_all(&client_text_frame(&join))
                    .await
                    .expect("join");
                sent_join = true;
            }
            for (op, payload) in server_frames(&buf) {
                if op != 0x1 {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
                if v["type"] == "joined" {
                    return (true, v["participant_id"].as_str().expect("id").to_owned());
                }
            }
        }
    })
    .await
    .expect("joined in time");
    assert!(joined);
    (tcp, id)
}

/// A masked (with a zero key, which leaves the bytes as they are) text frame.
fn client_text_frame(text: &str) -> Vec<u8> {
    let len = text.len();
    assert!(len < 65536);
    let mut frame = vec![0x81];
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(text.as_bytes());
    frame
}

/// The complete (unmasked, unfragmented) server frames at the start of `bytes`, as
/// (opcode, payload).
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let op = bytes[0] & 0x0f;
        let (len, header) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 if bytes.len() >= 10 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if bytes.len() < header + len {
            break;
        }
        frames.push((op, bytes[header..header + len].to_vec()));
        bytes = &bytes[header + len..];
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_and_a_reading_one_stays() {
    let server = start().await;
    let watcher = join_with(
        BotConfig::new(server.ws_url(), "keepalive", "watcher").with_publish(false, None),
    )
    .await;

    // This client keeps reading (so tokio-tungstenite answers every ping) and never sends
    // anything else.
    let (mut reading, _) = raw_join(&server, "keepalive", "reading").await;
    let (counted, mut pings) = tokio::sync::watch::channel(0u32);
    let reader = tokio::spawn(async move {
        loop {
            match reading.next().await {
                Some(Ok(Message::Ping(_))) => {
                    counted.send_modify(|n| *n += 1);
                }
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    });

    // This one joins, then is never read again: no pong ever goes back.
    let cursor = watcher.message_cursor();
    let (mut silent, silent_id) = bare_join(&server, "keepalive", "silent").await;
    let silent_since = Instant::now();
    let left = watcher
        .wait_for_message_after(
            cursor,
            |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == silent_id),
            TIMEOUT + PING * 3,
        )
        .await
        .expect("the others see the silent client leave");
    drop(left);
    let after = silent_since.elapsed();
    assert!(
        after >= TIMEOUT - Duration::from_millis(300),
        "dropped after {after:?}, before the timeout"
    );
    assert!(after <= TIMEOUT + PING * 2, "dropped only after {after:?}");

    // What the silent client finds once it reads again: pings, then the close, then the
    // end of the connection.
    let mut rest = Vec::new();
    tokio::time::timeout(MESSAGE_TIMEOUT, silent.read_to_end(&mut rest))
        .await
        .expect("the server closed the connection")
        .expect("read");
    let frames = server_frames(&rest);
    assert!(
        frames.iter().any(|(op, _)| *op == 0x9),
        "no ping before the close: {frames:?}"
    );
    let (op, close) = frames.last().expect("frames");
    assert_eq!(*op, 0x8, "the last frame is a close: {frames:?}");
    assert_eq!(
        u16::from_be_bytes([close[0], close[1]]),
        KEEPALIVE_CLOSE_CODE
    );

    // Well past the timeout since they joined, the reading clients are still here: the
    // server pinged the reading one for longer than the timeout meanwhile.
    let seen = *pings.borrow();
    let past_timeout = seen + (TIMEOUT.as_millis() / PING.as_millis()) as u32 + 1;
    tokio::time::timeout(TIMEOUT + PING * 3, pings.wait_for(|n| *n >= past_timeout))
        .await
        .expect("pings keep coming")
        .expect("the reading client is still reading");
    assert!(!reader.is_finished(), "the reading client was dropped");
    assert!(watcher.closed().is_none(), "the bot was dropped");
    let participants = server.sfu.room("keepalive").expect("room").participants();
    let names: Vec<&str> = participants.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"reading") && names.contains(&"watcher"),
        "{names:?}"
    );
    let pings = *pings.borrow();
    assert!(pings >= 4, "{pings} pings in over 6 s");
    reader.abort();
}

#[test]
fn the_default_keepalive_is_5_s_ping_and_15_s_timeout() {
    let k = Keepalive::default();
    assert_eq!(k.ping_interval, Duration::from_secs(5));
    assert_eq!(k.timeout, Duration::from_secs(15));
}
