//! Bad input gets its documented error code, and the room's media keeps flowing for everyone
//! else.
mod common;

use common::*;
use roomcast_bots::{Bot, BotConfig};
use roomcast_protocol::{ErrorCode, ServerMessage, TrackKind};

async fn expect_error(bot: &Bot, frame: &str, code: ErrorCode) {
    let cursor = bot.message_cursor();
    bot.send_raw(frame.to_owned()).await.expect("frame sent");
    let got = bot
        .wait_for_message_after(
            cursor,
            |m| matches!(m, ServerMessage::Error { .. }),
            MESSAGE_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("no error for {frame:.60}: {e}"));
    match got {
        ServerMessage::Error { code: got_code, .. } => {
            assert_eq!(got_code, code, "for frame {frame:.60}")
        }
        other => panic!("not an error: {other:?}"),
    }
}

/// Two publishers whose media to each other must survive whatever a third client does.
async fn room_with_media(server: &roomcast::RunningServer, room: &str) -> (Bot, Bot) {
    let ann = join(server, room, "ann").await;
    let bob = join(server, room, "bob").await;
    let (a, b) = (
        ann.participant_id().to_owned(),
        bob.participant_id().to_owned(),
    );
    ann.wait_for_media(|t| has_video_from(t, &b, 20, 640, 360), MEDIA_TIMEOUT)
        .await
        .expect("ann gets bob");
    bob.wait_for_media(|t| has_video_from(t, &a, 20, 640, 360), MEDIA_TIMEOUT)
        .await
        .expect("bob gets ann");
    (ann, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_out_of_order_messages_get_errors_and_hurt_nobody() {
    let server = start_server().await;
    let (ann, bob) = room_with_media(&server, "bad").await;
    let mallory =
        join_with(BotConfig::new(server.ws_url(), "bad", "mallory").with_publish(false, None))
            .await;

    expect_error(&mallory, "{not json", ErrorCode::BadRequest).await;
    expect_error(&mallory, r#"{"no_type":1}"#, ErrorCode::BadRequest).await;
    expect_error(&mallory, r#"{"type":"teleport"}"#, ErrorCode::BadRequest).await;
    expect_error(
        &mallory,
        r#"{"type":"join","room":"bad","name":"again"}"#,
        ErrorCode::AlreadyJoined,
    )
    .await;
    // The contract ignores a client offer that collides with the server's own pending offer
    // (no `error`): wait until the server's offers for Ann's and Bob's tracks are answered.
    mallory
        .wait_for_media(
            |t| {
                [ann.participant_id(), bob.participant_id()]
                    .iter()
                    .all(|id| {
                        has_audio_from(t, id, 1)
                            && t.iter().any(|v| {
                                v.publisher_id == *id && v.kind == TrackKind::Video && v.packets > 0
                            })
                    })
            },
            MEDIA_TIMEOUT,
        )
        .await
        .expect("mallory's subscriptions are negotiated");
    expect_error(
        &mallory,
        r#"{"type":"offer","sdp":"this is not SDP"}"#,
        ErrorCode::BadSdp,
    )
    .await;
    expect_error(
        &mallory,
        r#"{"type":"answer","sdp":"v=0"}"#,
        ErrorCode::InvalidState,
    )
    .await;
    expect_error(
        &mallory,
        r#"{"type":"set_quality","track_id":"nope","quality":"low"}"#,
        ErrorCode::UnknownTrack,
    )
    .await;
    expect_error(
        &mallory,
        r#"{"type":"chat","text":""}"#,
        ErrorCode::BadRequest,
    )
    .await;
    expect_error(
        &mallory,
        r#"{"type":"candidate","candidate":"garbage"}"#,
        ErrorCode::BadRequest,
    )
    .await;
    assert!(
        mallory.closed().is_none(),
        "bad messages do not close the connection"
    );

    assert_media_keeps_flowing(&ann, &[bob.participant_id()]).await;
    assert_media_keeps_flowing(&bob, &[ann.participant_id()]).await;
    for bot in [&ann, &bob] {
        assert!(
            !bot.messages()
                .iter()
                .any(|m| matches!(m, ServerMessage::Error { .. })),
            "bystanders saw no error"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_before_join_and_bad_join_fields_are_refused() {
    let server = start_server().await;
    let (ann, bob) = room_with_media(&server, "prejoin").await;
    let url = server.ws_url();
    let raw = common::raw::connect(&url).await;
    raw.expect_error(r#"{"type":"chat","text":"hi"}"#, "not_joined")
        .await;
    raw.expect_error(r#"{"type":"offer","sdp":"v=0"}"#, "not_joined")
        .await;
    raw.expect_error(r#"{"type":"join","room":"","name":"x"}"#, "bad_request")
        .await;
    raw.expect_error(
        r#"{"type":"join","room":"has space","name":"x"}"#,
        "bad_request",
    )
    .await;
    raw.expect_error(
        r#"{"type":"join","room":"prejoin","name":""}"#,
        "bad_request",
    )
    .await;
    raw.expect_error(
        r#"{"type":"join","room":"prejoin","name":"   "}"#,
        "bad_request",
    )
    .await;
    // A name that would forge a log line or reorder text where it is shown.
    for name in [r"Ann\nINFO joined", r"Ann\u001b[2J", r"Ann\u202eevil"] {
        raw.expect_error(
            &format!(r#"{{"type":"join","room":"prejoin","name":"{name}"}}"#),
            "bad_request",
        )
        .await;
    }
    assert_eq!(
        server.stats().participants,
        2,
        "no refused join became a participant"
    );
    assert_media_keeps_flowing(&ann, &[bob.participant_id()]).await;
}

/// Frames just over the limit are read and refused by the session; frames over 1 MiB are
/// refused by the WebSocket layer before they are read. Both get the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_gets_an_error_and_closes_only_that_connection() {
    let server = start_server().await;
    let (ann, bob) = room_with_media(&server, "big").await;
    for size in [roomcast_protocol::MAX_FRAME_BYTES + 10, 2 * 1024 * 1024] {
        oversized_frame_is_refused(&ann, &bob, &server, size).await;
    }
}

async fn oversized_frame_is_refused(
    ann: &Bot,
    bob: &Bot,
    server: &roomcast::RunningServer,
    size: usize,
) {
    let mallory =
        join_with(BotConfig::new(server.ws_url(), "big", "mallory").with_publish(false, None))
            .await;
    let cursor = mallory.message_cursor();
    let ann_cursor = ann.message_cursor();
    let huge = format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(size));
    mallory.send_raw(huge).await.expect("sent");
    let err = mallory
        .wait_for_message_after(
            cursor,
            |m| matches!(m, ServerMessage::Error { .. }),
            MESSAGE_TIMEOUT,
        )
        .await
        .expect("an error before the close");
    assert!(matches!(
        err,
        ServerMessage::Error {
            code: ErrorCode::FrameTooLarge,
            ..
        }
    ));
    let closed = mallory
        .wait_for_close(MESSAGE_TIMEOUT)
        .await
        .expect("connection closed");
    assert_eq!(closed.code, Some(1008), "a {size}-byte frame");
    // Gone at once, not parked for a resume (the grace is 20 s).
    let m = mallory.participant_id().to_owned();
    ann.wait_for_message_after(
        ann_cursor,
        |msg| matches!(msg, ServerMessage::ParticipantLeft { participant_id } if *participant_id == m),
        MESSAGE_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("a {size}-byte frame's sender did not leave at once: {e}"));
    assert_media_keeps_flowing(ann, &[bob.participant_id()]).await;
    assert_media_keeps_flowing(bob, &[ann.participant_id()]).await;
}
