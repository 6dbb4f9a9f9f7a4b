//! The admin HTTP API through real HTTP, with real bots and media: bearer auth, disabled
//! without a key, listing and inspecting rooms, and mute, kick and end-room reaching the
//! participants exactly as a host's moderation does.
mod common;

use std::time::Duration;

use common::*;
use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::MessageCursor;
use roomcast_protocol::{ErrorCode, Role, ServerMessage, TrackKind};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "test-admin-key-0123456789abcdef";

async fn start_with_key() -> RunningServer {
    start_with(ServeArgs {
        admin_key: Some(KEY.to_owned()),
        ..ServeArgs::local_ephemeral()
    })
    .await
}

/// One HTTP response: status, headers (lower-case names) and the body as JSON (`Null` when
/// empty).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a JSON error with `status` and `code`.
    fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:#?}");
        assert_eq!(self.json["error"]["code"], code, "{self:#?}");
        assert!(
            self.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{self:#?}"
        );
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{self:#?}"
        );
    }
}

/// A raw HTTP/1.0 request to the server (auth: `Some(key)` sends `Bearer key`).
async fn call(
    server: &RunningServer,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut conn = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .expect("HTTP connects");
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: roomcast\r\n");
    if let Some(key) = auth {
        request.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    raw_call(&mut conn, &request).await
}

async fn raw_call(conn: &mut tokio::net::TcpStream, request: &str) -> Reply {
    conn.write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut raw = Vec::new();
    tokio::time::timeout(MESSAGE_TIMEOUT, conn.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("response read");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect();
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON body ({e}): {body}"))
    };
    Reply {
        status,
        headers,
        json,
    }
}

async fn admin(server: &RunningServer, method: &str, path: &str, body: Option<&str>) -> Reply {
    call(server, method, path, Some(KEY), body).await
}

/// Polls `GET path` until `done` holds for its JSON.
async fn poll(server: &RunningServer, path: &str, done: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = tokio::time::Instant::now() + MESSAGE_TIMEOUT;
    loop {
        let reply = admin(server, "GET", path, None).await;
        if done(&reply) {
            return reply;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path} never got there: {reply:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn participant<'a>(room: &'a Value, id: &str) -> &'a Value {
    room["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {room:#}"))
}

fn track<'a>(p: &'a Value, kind: &str) -> &'a Value {
    p["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .find(|t| t["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} track in {p:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_without_an_admin_key() {
    let server = start_server().await;
    let _bot = join_with(viewer(&server, "open", "ann", Role::Host)).await;
    for (method, path) in [
        ("GET", "/api/rooms"),
        ("GET", "/api/rooms/open"),
        ("POST", "/api/rooms/open/participants/PA_1/mute"),
        ("DELETE", "/api/rooms/open/participants/PA_1"),
        ("DELETE", "/api/rooms/open"),
        ("PUT", "/api/rooms"),
        ("GET", "/api/rooms/open/whatever"),
    ] {
        for auth in [None, Some(""), Some(KEY)] {
            call(&server, method, path, auth, None)
                .await
                .expect_error(503, "disabled");
        }
    }
    // Nothing happened to the room.
    assert_eq!(server.stats().participants, 1);
    // The rest of the HTTP API is unaffected.
    let mut conn = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let stats = raw_call(&mut conn, "GET /api/stats HTTP/1.0\r\n\r\n").await;
    assert_eq!(stats.status, 200);
    assert_eq!(stats.json["participants"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_right_key_get_401() {
    let server = start_with_key().await;
    let _bot = join_with(viewer(&server, "auth", "ann", Role::Host)).await;
    let wrong = [
        None,
        Some(""),
        Some("wrong"),
        Some(&KEY[..KEY.len() - 1]),
        Some("test-admin-key-0123456789abcdeF"),
    ];
    let paths = [
        ("GET", "/api/rooms"),
        ("GET", "/api/rooms/auth"),
        // An unknown room answers 401 too: without the key nothing is revealed.
        ("GET", "/api/rooms/nope"),
        ("POST", "/api/rooms/auth/participants/PA_1/mute"),
        ("DELETE", "/api/rooms/auth/participants/PA_1"),
        ("DELETE", "/api/rooms/auth"),
    ];
    for (method, path) in paths {
        for key in wrong {
            let reply = call(&server, method, path, key, None).await;
            reply.expect_error(401, "unauthorized");
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|h| h.starts_with("Bearer")),
                "{reply:#?}"
            );
        }
    }
    // Another scheme, or the key without a scheme.
    for header in [format!("Basic {KEY}"), KEY.to_owned()] {
        let mut conn = tokio::net::TcpStream::connect(server.http_addr)
            .await
            .unwrap();
        raw_call(
            &mut conn,
            &format!("GET /api/rooms HTTP/1.0\r\nAuthorization: {header}\r\n\r\n"),
        )
        .await
        .expect_error(401, "unauthorized");
    }
    // The scheme is case-insensitive; the key is not.
    let mut conn = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let ok = raw_call(
        &mut conn,
        &format!("GET /api/rooms HTTP/1.0\r\nAuthorization: bearer {KEY}\r\n\r\n"),
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:#?}");
    assert_eq!(server.stats().participants, 1, "nothing happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_shows_rooms_with_roles_tracks_and_stats() {
    let server = start_with_key().await;
    let empty = admin(&server, "GET", "/api/rooms", None).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json, serde_json::json!({ "rooms": [] }));

    let host = join_with(viewer(&server, "alpha", "host", Role::Host)).await;
    let pres = join_with(config(&server, "alpha", "pres", Role::Presenter)).await;
    let aud = join_with(viewer(&server, "alpha", "aud", Role::Audience)).await;
    let solo = join_with(viewer(&server, "beta", "solo", Role::Presenter)).await;
    let p = pres.participant_id().to_owned();
    aud.wait_for_media(
        |t| has_audio_from(t, &p, 20) && has_video_from(t, &p, 20, 640, 360),
        MEDIA_TIMEOUT,
    )
    .await
    .expect("media flows");

    let list = admin(&server, "GET", "/api/rooms", None).await;
    assert_eq!(list.status, 200, "{list:#?}");
    let rooms = list.json["rooms"].as_array().expect("rooms");
    assert_eq!(rooms.len(), 2, "{list:#?}");
    assert_eq!(rooms[0]["name"], "alpha");
    assert_eq!(rooms[0]["participants"], 3);
    assert_eq!(rooms[0]["audience"], 1);
    assert_eq!(rooms[0]["tracks"], 2);
    assert_eq!(rooms[0]["locked"], false);
    assert_eq!(rooms[1]["name"], "beta");
    assert_eq!(rooms[1]["participants"], 1);
    assert_eq!(rooms[1]["tracks"], 0);

    let room = admin(&server, "GET", "/api/rooms/alpha", None).await;
    assert_eq!(room.status, 200, "{room:#?}");
    let r = &room.json;
    assert_eq!(r["name"], "alpha");
    assert_eq!(r["participant_count"], 3);
    assert_eq!(r["audience_count"], 1);
    assert_eq!(r["track_count"], 2);
    assert_eq!(r["settings"]["webinar"], false);
    for (bot, role, name) in [
        (&host, "host", "host"),
        (&pres, "presenter", "pres"),
        (&aud, "audience", "aud"),
    ] {
        let x = participant(r, bot.participant_id());
        assert_eq!(x["role"], role, "{x:#}");
        assert_eq!(x["name"], name, "{x:#}");
    }
    let pj = participant(r, &p);
    assert_eq!(pj["tracks"].as_array().unwrap().len(), 2, "{pj:#}");
    for kind in ["audio", "video"] {
        let t = track(pj, kind);
        assert_eq!(t["muted"], false);
        assert!(t["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(t["media"]["packets_in"].as_u64().unwrap() > 0, "{t:#}");
    }
    // As a subscriber, the audience member receives both of the presenter's tracks on
    // their only layer, and the server has sent it something over the last second.
    let sub = &participant(r, aud.participant_id())["subscriber"];
    assert!(sub["sent_bps"].as_u64().unwrap() > 0, "{sub:#}");
    let received = sub["tracks"].as_array().expect("tracks");
    assert_eq!(received.len(), 2, "{sub:#}");
    for t in received {
        assert_eq!(t["publisher_id"], p.as_str(), "{t:#}");
        assert_eq!(t["current"], 0, "{t:#}");
        assert_eq!(t["paused"], false, "{t:#}");
    }
    assert!(participant(r, &p)["subscriber"]["tracks"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(r["media"]["packets_in"].as_u64().unwrap() > 0, "{r:#}");
    assert!(r["media"]["packets_out"].as_u64().unwrap() > 0, "{r:#}");
    assert!(participant(r, host.participant_id())["tracks"]
        .as_array()
        .unwrap()
        .is_empty());

    let beta = admin(&server, "GET", "/api/rooms/beta", None).await;
    assert_eq!(beta.json["participants"][0]["id"], solo.participant_id());

    // Unknown rooms, participants and paths, bad bodies and methods: JSON errors.
    admin(&server, "GET", "/api/rooms/nope", None)
        .await
        .expect_error(404, "not_found");
    admin(&server, "DELETE", "/api/rooms/nope", None)
        .await
        .expect_error(404, "not_found");
    admin(
        &server,
        "POST",
        "/api/rooms/nope/participants/PA_1/mute",
        None,
    )
    .await
    .expect_error(404, "not_found");
    admin(
        &server,
        "DELETE",
        "/api/rooms/alpha/participants/PA_nobody",
        None,
    )
    .await
    .expect_error(404, "not_found");
    admin(
        &server,
        "POST",
        "/api/rooms/alpha/participants/PA_nobody/mute",
        None,
    )
    .await
    .expect_error(404, "not_found");
    admin(&server, "GET", "/api/rooms/alpha/whatever", None)
        .await
        .expect_error(404, "not_found");
    let mute_path = format!("/api/rooms/alpha/participants/{p}/mute");
    for bad in [
        "{\"kind\":\"smell\"}",
        "not json",
        "{\"kind\":\"audio\",\"extra\":1}",
        "[]",
    ] {
        admin(&server, "POST", &mute_path, Some(bad))
            .await
            .expect_error(400, "bad_request");
    }
    admin(&server, "POST", "/api/rooms", None)
        .await
        .expect_error(405, "method_not_allowed");
    admin(&server, "GET", &mute_path, None)
        .await
        .expect_error(405, "method_not_allowed");
    // None of that changed anything.
    let again = admin(&server, "GET", "/api/rooms/alpha", None).await;
    assert_eq!(again.json["participant_count"], 3);
    assert!(again.json["participants"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["tracks"].as_array().unwrap())
        .all(|t| t["muted"] == false));
    assert_media_keeps_flowing(&aud, &[&p]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_stops_forwarding_and_everyone_gets_track_muted() {
    let server = start_with_key().await;
    let pres = join_with(config(&server, "mute", "pres", Role::Presenter)).await;
    let watcher = join_with(viewer(&server, "mute", "watch", Role::Presenter)).await;
    let p = pres.participant_id().to_owned();
    watcher
        .wait_for_media(
            |t| has_audio_from(t, &p, 30) && has_video_from(t, &p, 30, 640, 360),
            MEDIA_TIMEOUT,
        )
        .await
        .expect("media flows");
    let room = admin(&server, "GET", "/api/rooms/mute", None).await;
    let audio = track(participant(&room.json, &p), "audio")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let video = track(participant(&room.json, &p), "video")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let cursors = [pres.message_cursor(), watcher.message_cursor()];
    let path = format!("/api/rooms/mute/participants/{p}/mute");
    let reply = admin(&server, "POST", &path, Some(r#"{"kind":"audio"}"#)).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    assert_eq!(reply.json["participant_id"], p.as_str());
    assert_eq!(reply.json["muted"], true);
    assert_eq!(
        reply.json["tracks"],
        serde_json::json!([{ "id": audio, "kind": "audio", "changed": true }])
    );
    for (bot, from) in [&pres, &watcher].into_iter().zip(cursors) {
        wait_muted(bot, from, &p, &audio, true).await;
    }
    // Let packets on their way arrive, then watch a window measured in video: no audio.
    video_window(&watcher, &p, 30).await;
    let muted_at = packets_of(&watcher, &p, TrackKind::Audio);
    video_window(&watcher, &p, 150).await;
    assert_eq!(
        packets_of(&watcher, &p, TrackKind::Audio),
        muted_at,
        "muted audio stopped arriving"
    );
    let room = admin(&server, "GET", "/api/rooms/mute", None).await;
    let pj = participant(&room.json, &p);
    assert_eq!(track(pj, "audio")["muted"], true);
    assert_eq!(track(pj, "video")["muted"], false);

    // No body: both kinds; the audio was muted already.
    let from = watcher.message_cursor();
    let reply = admin(&server, "POST", &path, None).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let tracks = reply.json["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "{reply:#?}");
    for t in tracks {
        assert_eq!(t["changed"], t["kind"] == "video", "{reply:#?}");
    }
    wait_muted(&watcher, from, &p, &video, true).await;
    let stopped = packets_of(&watcher, &p, TrackKind::Video);
    // Let packets on their way arrive, then watch a window measured in what pres sends.
    sent_window(&pres, TrackKind::Video, 10).await;
    let settled = packets_of(&watcher, &p, TrackKind::Video);
    sent_window(&pres, TrackKind::Video, 30).await;
    assert_eq!(
        packets_of(&watcher, &p, TrackKind::Video),
        settled,
        "muted video stopped arriving (it had {stopped} at the mute)"
    );

    // `"muted": false` unmutes, and the audio flows again.
    let from = watcher.message_cursor();
    let reply = admin(
        &server,
        "POST",
        &path,
        Some(r#"{"kind":"audio","muted":false}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    wait_muted(&watcher, from, &p, &audio, false).await;
    wait_packets_above(
        &watcher,
        &p,
        TrackKind::Audio,
        muted_at + 30,
        "audio resumes after unmute",
    )
    .await;
    assert!(pres.closed().is_none() && watcher.closed().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_closes_the_participant_and_the_others_see_it_leave() {
    let server = start_with_key().await;
    let stay = join_with(config(&server, "kick", "stay", Role::Presenter)).await;
    let gone = join_with(config(&server, "kick", "gone", Role::Presenter)).await;
    let (s, g) = (
        stay.participant_id().to_owned(),
        gone.participant_id().to_owned(),
    );
    stay.wait_for_media(|t| has_audio_from(t, &g, 20), MEDIA_TIMEOUT)
        .await
        .expect("media flows");
    let from = stay.message_cursor();
    let reply = admin(
        &server,
        "DELETE",
        &format!("/api/rooms/kick/participants/{g}"),
        None,
    )
    .await;
    assert_eq!(reply.status, 204, "{reply:#?}");
    gone.wait_for_message_after(
        MessageCursor::START,
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
    .expect("the kicked bot gets `kicked`");
    gone.wait_for_close(MESSAGE_TIMEOUT)
        .await
        .expect("the kicked connection is closed");
    stay.wait_for_message_after(
        from,
        |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == g),
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("participant_left");
    stay.wait_for_media(
        |t| t.iter().filter(|x| x.publisher_id == g).all(|x| x.ended),
        MEDIA_TIMEOUT,
    )
    .await
    .expect("the kicked participant's tracks end");
    let room = poll(&server, "/api/rooms/kick", |r| {
        r.json["participant_count"] == 1
    })
    .await;
    assert_eq!(room.json["participants"][0]["id"], s.as_str());
    admin(
        &server,
        "DELETE",
        &format!("/api/rooms/kick/participants/{g}"),
        None,
    )
    .await
    .expect_error(404, "not_found");
    assert!(stay.closed().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_room_closes_everyone_and_removes_the_room() {
    let server = start_with_key().await;
    let host = join_with(viewer(&server, "doomed", "host", Role::Host)).await;
    let pres = join_with(config(&server, "doomed", "pres", Role::Presenter)).await;
    let aud = join_with(viewer(&server, "doomed", "aud", Role::Audience)).await;
    let other = join_with(viewer(&server, "other", "other", Role::Presenter)).await;
    let p = pres.participant_id().to_owned();
    aud.wait_for_media(|t| has_audio_from(t, &p, 20), MEDIA_TIMEOUT)
        .await
        .expect("media flows");
    let reply = admin(&server, "DELETE", "/api/rooms/doomed", None).await;
    assert_eq!(reply.status, 204, "{reply:#?}");
    for bot in [&host, &pres, &aud] {
        bot.wait_for_message_after(
            MessageCursor::START,
            |m| matches!(m, ServerMessage::RoomEnded),
            MESSAGE_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("{} gets room_ended: {e}", bot.participant_id()));
        bot.wait_for_close(MESSAGE_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{} is closed: {e}", bot.participant_id()));
    }
    // Gone at once from the list; the other room is untouched.
    let list = admin(&server, "GET", "/api/rooms", None).await;
    assert_eq!(list.status, 200);
    let names: Vec<&str> = list.json["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other"], "{list:#?}");
    admin(&server, "GET", "/api/rooms/doomed", None)
        .await
        .expect_error(404, "not_found");
    admin(&server, "DELETE", "/api/rooms/doomed", None)
        .await
        .expect_error(404, "not_found");
    assert!(other.closed().is_none());
    assert!(!other
        .messages()
        .iter()
        .any(|m| matches!(m, ServerMessage::RoomEnded)));
    // The name can be joined afresh.
    let again = join_with(viewer(&server, "doomed", "again", Role::Host)).await;
    assert!(again.joined_participants().is_empty());
}
