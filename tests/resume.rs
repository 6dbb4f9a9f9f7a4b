//! Resume after a dropped WebSocket, the grace period, and ICE restarts, with real bots.
mod common;

use std::time::Duration;

use common::*;
use roomcast_bots::{Bot, BotError};
use roomcast_protocol::{ClientMessage, ErrorCode, ServerMessage, TrackKind};

fn left(m: &ServerMessage, id: &str) -> bool {
    matches!(m, ServerMessage::ParticipantLeft { participant_id } if participant_id == id)
}

async fn wait_for_video(bot: &Bot, publisher: &str) {
    bot.wait_for_media(
        |t| has_video_from(t, publisher, 30, 640, 360),
        MEDIA_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("video of {publisher} at {}: {e}", bot.participant_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_bot_keeps_its_media_and_nobody_sees_it_leave() {
    let server = start_server().await;
    let mut ann = join(&server, "resume", "ann").await;
    let bob = join(&server, "resume", "bob").await;
    let a = ann.participant_id().to_owned();
    let b = bob.participant_id().to_owned();
    assert!(ann.session_token().is_some_and(|t| t.len() >= 32));
    wait_for_video(&bob, &a).await;

    ann.drop_websocket().await;
    // Parked: its media keeps arriving while it has no WebSocket.
    assert_media_keeps_flowing(&bob, &[&a]).await;
    let old_token = ann.session_token().map(str::to_owned);
    let resumed = ann.resume().await.expect("resumed within the grace period");
    let ServerMessage::Resumed {
        participant_id,
        participants,
        session_token,
        ..
    } = resumed
    else {
        panic!("not resumed: {resumed:?}")
    };
    assert_eq!(participant_id, a);
    assert!(participants.iter().any(|p| p.id == b), "{participants:?}");
    assert_ne!(Some(session_token), old_token, "the token is renewed");
    assert_media_keeps_flowing(&bob, &[&a]).await;
    assert_media_keeps_flowing(&ann, &[&b]).await;

    // The media never stopped: no gap of a second in what bob received from ann.
    for t in bob.remote_tracks().iter().filter(|t| t.publisher_id == a) {
        assert!(!t.ended, "{t:?}");
        assert!(
            t.max_gap < Duration::from_secs(1),
            "{:?}: {:?}",
            t.kind,
            t.max_gap
        );
        if t.kind == TrackKind::Video {
            assert_eq!(t.freezes, 0, "{t:?}");
        }
    }

    // The resumed session works: chat both ways, and a new publisher is received.
    let cursor = bob.message_cursor();
    ann.send(&ClientMessage::Chat {
        text: "back".into(),
    })
    .await
    .unwrap();
    bob.wait_for_message_after(
        cursor,
        |m| matches!(m, ServerMessage::Chat { participant_id, text, .. } if *participant_id == a && text == "back"),
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("ann's chat after resume");
    let cat = join(&server, "resume", "cat").await;
    let c = cat.participant_id().to_owned();
    wait_for_video(&ann, &c).await;
    assert!(
        !bob.messages().iter().any(|m| left(m, &a)),
        "bob saw ann leave"
    );
    ann.leave().await.expect("leaves after resuming");
    bob.leave().await.unwrap();
    cat.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_that_does_not_resume_in_time_leaves() {
    let server = start_server().await;
    server.sessions.resume.set_grace(Duration::from_secs(1));
    let mut ann = join(&server, "grace", "ann").await;
    let bob = join(&server, "grace", "bob").await;
    let a = ann.participant_id().to_owned();
    wait_for_video(&bob, &a).await;
    let cursor = bob.message_cursor();
    ann.drop_websocket().await;
    bob.wait_for_message_after(cursor, |m| left(m, &a), MESSAGE_TIMEOUT)
        .await
        .expect("participant_left after the grace period");
    bob.wait_for_media(
        |t| {
            let from_a: Vec<_> = t.iter().filter(|x| x.publisher_id == a).collect();
            !from_a.is_empty() && from_a.iter().all(|x| x.ended)
        },
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("ann's tracks end");
    match ann.resume().await {
        Err(BotError::Refused { code, .. }) => assert_eq!(code, ErrorCode::SessionExpired),
        other => panic!("resume after the grace period: {other:?}"),
    }
    assert_eq!(server.stats().participants, 1);
    bob.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bogus_token_is_refused_and_the_connection_stays_usable() {
    let server = start_server().await;
    let raw = common::raw::connect(&server.ws_url()).await;
    raw.expect_error(
        r#"{"type":"resume","session_token":"00000000000000000000000000000000"}"#,
        "session_expired",
    )
    .await;
    raw.expect_error(r#"{"type":"resume"}"#, "bad_request")
        .await;
    // Still open: a join goes through (a second join then is refused as usual).
    raw.expect_error(r#"{"type":"chat","text":"hi"}"#, "not_joined")
        .await;
    let ann = join(&server, "bogus", "ann").await;
    let cursor = ann.message_cursor();
    let mut bob = join(&server, "bogus", "bob").await;
    ann.wait_for_message_after(
        cursor,
        |m| matches!(m, ServerMessage::ParticipantJoined { .. }),
        MESSAGE_TIMEOUT,
    )
    .await
    .unwrap();
    // A bot that resumes with a wrong token is refused; it can still resume with its own.
    match bob.resume_with("not-a-token").await {
        Err(BotError::Refused { code, .. }) => assert_eq!(code, ErrorCode::SessionExpired),
        other => panic!("bogus resume: {other:?}"),
    }
    bob.resume().await.expect("resume with the real token");
    assert_media_keeps_flowing(&ann, &[bob.participant_id()]).await;
    ann.leave().await.unwrap();
    bob.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_keeps_media_flowing() {
    let server = start_server().await;
    let ann = join(&server, "ice", "ann").await;
    let bob = join(&server, "ice", "bob").await;
    let a = ann.participant_id().to_owned();
    let b = bob.participant_id().to_owned();
    wait_for_video(&bob, &a).await;
    wait_for_video(&ann, &b).await;
    ann.restart_ice()
        .await
        .expect("ann's ICE restart is answered");
    assert_media_keeps_flowing(&bob, &[&a]).await;
    assert_media_keeps_flowing(&ann, &[&b]).await;
    bob.restart_ice()
        .await
        .expect("bob's ICE restart is answered");
    assert_media_keeps_flowing(&ann, &[&b]).await;
    assert_media_keeps_flowing(&bob, &[&a]).await;
    for t in bob.remote_tracks().iter().filter(|t| t.publisher_id == a) {
        assert!(
            t.max_gap < Duration::from_secs(1),
            "{:?}: {:?}",
            t.kind,
            t.max_gap
        );
    }
    ann.leave().await.unwrap();
    bob.leave().await.unwrap();
}
