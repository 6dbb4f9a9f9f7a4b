//! Admission through real sockets: caps on WebSockets per client address (an IPv6 /64,
//! or the address a trusted proxy forwards) and in total, the join deadline, slowloris and
//! idle HTTP connections closed at the header timeout, caps on HTTP connections, the Origin
//! check, `/api/stats` behind the admin key, and a client that falls behind being closed
//! with 4000 and resuming. Every refusal is a status or close code and a metric.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::{get, metric, parse_reply, ws_connect};
use common::*;
use futures_util::{SinkExt, StreamExt};
use roomcast::admission::proxy::parse_net;
use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::{Bot, BotConfig};
use roomcast_protocol::ServerMessage;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

async fn start(args: ServeArgs) -> RunningServer {
    init_logs();
    RunningServer::start(&args).await.expect("server starts")
}

async fn refused(server: &RunningServer, reason: &str) -> f64 {
    metric(
        server.http_addr,
        &format!("roomcast_connections_refused_total{{reason=\"{reason}\"}}"),
    )
    .await
}

fn from(ip: &str) -> [(&str, &str); 1] {
    [("X-Forwarded-For", ip)]
}

/// Reads until the server closes: the close code, if a close frame came.
async fn close_code<S>(
    socket: &mut tokio_tungstenite::WebSocketStream<S>,
    wait: Duration,
) -> Option<u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(wait, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => break None,
            }
        }
    })
    .await
    .expect("the server closes in time")
}

async fn send_join<S>(socket: &mut tokio_tungstenite::WebSocketStream<S>, room: &str, name: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let join = format!(r#"{{"type":"join","room":"{room}","name":"{name}"}}"#);
    socket
        .send(Message::Text(join.into()))
        .await
        .expect("join sent");
}

/// Joins and reads until `joined`: the reply.
async fn join_raw<S>(
    socket: &mut tokio_tungstenite::WebSocketStream<S>,
    room: &str,
    name: &str,
) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    send_join(socket, room, name).await;
    tokio::time::timeout(MESSAGE_TIMEOUT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON");
                    if v["type"] == "joined" || v["type"] == "resumed" || v["type"] == "error" {
                        break v;
                    }
                }
                Some(Ok(_)) => continue,
                other => panic!("connection ended before joined: {other:?}"),
            }
        }
    })
    .await
    .expect("joined in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_capped_per_client_address_and_in_total() {
    let server = start(ServeArgs {
        max_websockets_per_ip: 3,
        max_websockets: 7,
        trusted_proxy: vec![parse_net("127.0.0.1").unwrap()],
        ..ServeArgs::local_ephemeral()
    })
    .await;
    let url = server.ws_url();
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            ws_connect(&url, &from("203.0.113.1"))
                .await
                .expect("within the cap"),
        );
    }
    assert_eq!(
        ws_connect(&url, &from("203.0.113.1")).await.err(),
        Some(429)
    );
    // One IPv6 host rotating its low 64 bits is one client.
    for i in 1..=3 {
        let ip = format!("2001:db8:0:7::{i}");
        open.push(ws_connect(&url, &from(&ip)).await.expect("within the cap"));
    }
    assert_eq!(
        ws_connect(&url, &from("2001:db8:0:7:dead:beef:0:1"))
            .await
            .err(),
        Some(429)
    );
    open.push(
        ws_connect(&url, &from("198.51.100.8"))
            .await
            .expect("the seventh"),
    );
    // Seven open: the server is full for everyone.
    assert_eq!(
        ws_connect(&url, &from("198.51.100.9")).await.err(),
        Some(503)
    );
    assert_eq!(refused(&server, "websockets_per_ip").await, 2.0);
    assert_eq!(refused(&server, "websockets").await, 1.0);
    assert_eq!(metric(server.http_addr, "roomcast_websockets").await, 7.0);

    // A closed one gives its place back.
    let mut first = open.remove(0);
    first.close(None).await.expect("closed");
    let _ = close_code(&mut first, MESSAGE_TIMEOUT).await;
    let deadline = tokio::time::Instant::now() + MESSAGE_TIMEOUT;
    while server.live_connections() != 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    open.push(
        ws_connect(&url, &from("203.0.113.1"))
            .await
            .expect("a place again"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_trusted_proxy_x_forwarded_for_is_ignored() {
    let server = start(ServeArgs {
        max_websockets_per_ip: 2,
        ..ServeArgs::local_ephemeral()
    })
    .await;
    let url = server.ws_url();
    let _a = ws_connect(&url, &from("203.0.113.1")).await.expect("first");
    let _b = ws_connect(&url, &from("203.0.113.2"))
        .await
        .expect("second");
    // All three come from 127.0.0.1, whatever they claim.
    assert_eq!(
        ws_connect(&url, &from("203.0.113.3")).await.err(),
        Some(429)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_limiter_counts_the_forwarded_client() {
    let server = start(ServeArgs {
        max_joins_per_ip_per_second: 1,
        join_burst_per_ip: 1,
        trusted_proxy: vec![parse_net("127.0.0.0/8").unwrap()],
        ..ServeArgs::local_ephemeral()
    })
    .await;
    let url = server.ws_url();
    let mut a = ws_connect(&url, &from("203.0.113.1")).await.unwrap();
    assert_eq!(join_raw(&mut a, "proxied", "a").await["type"], "joined");
    let mut b = ws_connect(&url, &from("203.0.113.2")).await.unwrap();
    assert_eq!(join_raw(&mut b, "proxied", "b").await["type"], "joined");
    let mut c = ws_connect(&url, &from("203.0.113.1")).await.unwrap();
    let refused = join_raw(&mut c, "proxied", "c").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_does_not_join_in_time_is_closed_with_4408() {
    let server = start(ServeArgs {
        join_timeout: Duration::from_secs(1),
        ..ServeArgs::local_ephemeral()
    })
    .await;
    let url = server.ws_url();
    let mut idle = ws_connect(&url, &[]).await.unwrap();
    // Refused joins do not count as joining.
    let mut refused_joins = ws_connect(&url, &[]).await.unwrap();
    let bad = join_raw(&mut refused_joins, "has space", "x").await;
    assert_eq!(bad["code"], "bad_request");
    let mut joined = ws_connect(&url, &[]).await.unwrap();
    assert_eq!(
        join_raw(&mut joined, "deadline", "ann").await["type"],
        "joined"
    );

    assert_eq!(close_code(&mut idle, MESSAGE_TIMEOUT).await, Some(4408));
    assert_eq!(
        close_code(&mut refused_joins, MESSAGE_TIMEOUT).await,
        Some(4408)
    );
    assert_eq!(refused(&server, "join_timeout").await, 2.0);
    // The joined one stays, well past the deadline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    joined
        .send(Message::Text(
            r#"{"type":"chat","text":"still here"}"#.into(),
        ))
        .await
        .expect("still open");
    assert_eq!(server.stats().participants, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_connections_are_closed_at_the_header_timeout() {
    let server = start(ServeArgs {
        header_read_timeout: Duration::from_secs(1),
        ..ServeArgs::local_ephemeral()
    })
    .await;
    let mut half_sent = Vec::new();
    for i in 0..50 {
        let mut conn = tokio::net::TcpStream::connect(server.http_addr)
            .await
            .unwrap();
        // Headers that never end; a few with no byte at all.
        if i % 10 != 0 {
            conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1")
                .await
                .unwrap();
        }
        half_sent.push(conn);
    }
    let started = tokio::time::Instant::now();
    // Meanwhile a normal request is served.
    assert_eq!(get(server.http_addr, "/healthz", "").await.status, 200);
    for conn in &mut half_sent {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(MESSAGE_TIMEOUT, conn.read(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without a response");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(refused(&server, "header_timeout").await, 50.0);

    // A kept-alive connection that goes idle after a request is closed the same way.
    let mut conn = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(MESSAGE_TIMEOUT, conn.read_to_end(&mut raw))
        .await
        .expect("closed after the idle timeout")
        .unwrap();
    assert_eq!(parse_reply(&raw).status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_beyond_the_caps_are_answered_and_closed() {
    let server = start(ServeArgs {
        max_http_connections_per_ip: 4,
        ..ServeArgs::local_ephemeral()
    })
    .await;
    // Accepted in the order they arrive: the fifth is over the cap.
    let idle = open_idle(server.http_addr, 4).await;
    let over = get(server.http_addr, "/healthz", "").await;
    assert_eq!(over.status, 429, "{}", over.head);
    drop(idle);
    wait_until_served(server.http_addr).await;
    assert!(refused(&server, "http_connections_per_ip").await >= 1.0);

    let server = start(ServeArgs {
        max_http_connections: 4,
        ..ServeArgs::local_ephemeral()
    })
    .await;
    // Upgraded WebSockets leave the HTTP count: six fit under a cap of four.
    let mut sockets = Vec::new();
    for _ in 0..6 {
        sockets.push(
            ws_connect(&server.ws_url(), &[])
                .await
                .expect("WebSocket opens"),
        );
    }
    let idle = open_idle(server.http_addr, 4).await;
    let over = get(server.http_addr, "/healthz", "").await;
    assert_eq!(over.status, 503, "{}", over.head);
    assert!(over.head.contains("Retry-After"), "{}", over.head);
    drop(idle);
    wait_until_served(server.http_addr).await;
    assert!(refused(&server, "http_connections").await >= 1.0);
    assert_eq!(metric(server.http_addr, "roomcast_websockets").await, 6.0);
}

/// `n` connections that sent nothing.
async fn open_idle(addr: SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    conns
}

/// Waits until a request is served again (closed connections have given their place back).
async fn wait_until_served(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + MESSAGE_TIMEOUT;
    while get(addr, "/healthz", "").await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_may_connect_only_from_allowed_origins() {
    let server = start(ServeArgs::local_ephemeral()).await;
    let url = server.ws_url();
    let own = format!("http://{}", server.http_addr);
    // The embedded client (same host), pages on localhost, and non-browser clients.
    let mut allowed = Vec::new();
    for origin in [
        own.as_str(),
        "http://localhost:3000",
        "http://127.0.0.1:5173",
    ] {
        let mut socket = ws_connect(&url, &[("Origin", origin)])
            .await
            .unwrap_or_else(|status| panic!("{origin}: {status}"));
        assert_eq!(
            join_raw(&mut socket, "origins", "ann").await["type"],
            "joined"
        );
        allowed.push(socket);
    }
    allowed.push(
        ws_connect(&url, &[])
            .await
            .expect("no Origin: not a browser"),
    );
    // Someone else's page, opened in a browser on the same network.
    for origin in [
        "http://evil.example",
        "null",
        "http://127.0.0.1.evil.example",
    ] {
        assert_eq!(
            ws_connect(&url, &[("Origin", origin)]).await.err(),
            Some(403),
            "{origin}"
        );
    }
    assert_eq!(refused(&server, "origin").await, 3.0);
    assert_eq!(server.live_connections(), 4, "refused ones hold nothing");

    // With --allowed-origins, exactly those.
    let server = start(ServeArgs {
        allowed_origins: vec!["https://meet.example.org".into()],
        ..ServeArgs::local_ephemeral()
    })
    .await;
    let url = server.ws_url();
    ws_connect(&url, &[("Origin", "https://meet.example.org")])
        .await
        .expect("listed");
    let own = format!("http://{}", server.http_addr);
    assert_eq!(
        ws_connect(&url, &[("Origin", own.as_str())]).await.err(),
        Some(403)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_stats_needs_the_admin_key_when_one_is_set() {
    let key = "an-admin-key-long-enough-0123456789";
    let server = start(ServeArgs {
        admin_key: Some(key.into()),
        ..ServeArgs::local_ephemeral()
    })
    .await;
    let mut ann = ws_connect(&server.ws_url(), &[]).await.unwrap();
    join_raw(&mut ann, "secret-room-name", "ann").await;
    let anonymous = get(server.http_addr, "/api/stats", "").await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.head);
    assert!(!anonymous.body.contains("secret-room-name"));
    let wrong = get(
        server.http_addr,
        "/api/stats",
        "Authorization: Bearer nope\r\n",
    )
    .await;
    assert_eq!(wrong.status, 401);
    let admin = get(
        server.http_addr,
        "/api/stats",
        &format!("Authorization: Bearer {key}\r\n"),
    )
    .await;
    assert_eq!(admin.status, 200, "{}", admin.head);
    assert!(admin.body.contains("secret-room-name"), "{}", admin.body);

    // Without a key it stays open, as before.
    let open = start(ServeArgs::local_ephemeral()).await;
    assert_eq!(get(open.http_addr, "/api/stats", "").await.status, 200);
}

/// A client that stops reading while others chat is cut off with 4000 once 1 MiB waits for
/// it, not blamed: its session parks and it resumes as the same participant. Those who read
/// are not cut off, and nobody sees it leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_behind_is_closed_with_4000_and_resumes() {
    let server = start(ServeArgs::local_ephemeral()).await;
    let room = "laggards";
    let chatters: Vec<Bot> = futures_util::future::join_all((0..5).map(|i| {
        join_with(
            BotConfig::new(server.ws_url(), room, format!("chatter{i}")).with_publish(false, None),
        )
    }))
    .await;
    // A small receive buffer, so the kernel holds little of what the server sends.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.http_addr).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(server.ws_url(), stream)
        .await
        .expect("WebSocket opens");
    let joined = join_raw(&mut slow, room, "slow").await;
    let slow_id = joined["participant_id"].as_str().unwrap().to_owned();
    let token = joined["session_token"].as_str().unwrap().to_owned();

    // Legitimate chat, under every sender's rate (20 per second), until the slow reader
    // has been cut off.
    let text = "x".repeat(4000);
    let chat = format!(r#"{{"type":"chat","text":"{text}"}}"#);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last_sign_of_life = tokio::time::Instant::now();
    while refused(&server, "lagging").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "never cut off");
        for bot in &chatters {
            bot.send_raw(chat.clone()).await.expect("chat sent");
        }
        // Slow, not dead: it still says something now and then (as its pongs would).
        if last_sign_of_life.elapsed() > Duration::from_secs(2) {
            slow.send(Message::Pong(Default::default())).await.unwrap();
            last_sign_of_life = tokio::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(55)).await;
    }
    // Reading again, it finds what was already on its way, then the close.
    assert_eq!(
        close_code(&mut slow, Duration::from_secs(30)).await,
        Some(4000)
    );
    for bot in &chatters {
        assert!(bot.closed().is_none(), "a reader was cut off");
    }
    // Its session waited: it resumes as the same participant.
    let mut again = ws_connect(&server.ws_url(), &[]).await.unwrap();
    let resume = format!(r#"{{"type":"resume","session_token":"{token}"}}"#);
    again.send(Message::Text(resume.into())).await.unwrap();
    let resumed = tokio::time::timeout(MESSAGE_TIMEOUT, async {
        loop {
            if let Some(Ok(Message::Text(t))) = again.next().await {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "resumed" || v["type"] == "error" {
                    break v;
                }
            }
        }
    })
    .await
    .expect("an answer to resume");
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    assert_eq!(resumed["participant_id"], slow_id.as_str());
    let left = chatters[0].messages().into_iter().any(|m| {
        matches!(m, ServerMessage::ParticipantLeft { participant_id } if participant_id == slow_id)
    });
    assert!(!left, "the others saw the slow reader leave");
}
