//! A session that panics is cleaned up exactly like one whose client went away: it leaves the
//! room (the others see it leave, its tracks go), its resume token is spent, its
//! PeerConnection closes, and everyone else carries on. The panic comes from a test-only
//! fault (`roomcast-sfu`'s `fault-injection` feature, which only test builds enable).
mod common;

use std::time::Duration;

use common::*;
use roomcast_protocol::{ClientMessage, ServerMessage};
use roomcast_sfu::signaling::session::PANIC_ON_CHAT;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_session_leaves_no_ghost() {
    let server = start_server().await;
    let ann = join(&server, "panic", "ann").await;
    let bob = join(&server, "panic", "bob").await;
    let a = ann.participant_id().to_owned();
    let b = bob.participant_id().to_owned();
    bob.wait_for_media(|t| has_audio_from(t, &a, 20), MEDIA_TIMEOUT)
        .await
        .expect("ann's media reaches bob");
    let token = ann.session_token().expect("a session token").to_owned();

    let cursor = bob.message_cursor();
    ann.send(&ClientMessage::Chat {
        text: PANIC_ON_CHAT.into(),
    })
    .await
    .expect("sent");
    bob.wait_for_message_after(
        cursor,
        |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == a),
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("bob sees ann leave");

    // The room holds bob and his tracks only.
    let room = server.sfu.room("panic").expect("the room is still there");
    let participants = room.participants();
    assert_eq!(participants.len(), 1, "{participants:?}");
    assert_eq!(participants[0].id, b);
    assert!(room.tracks_of(&a).is_none());
    assert_eq!(server.stats().tracks, participants[0].tracks.len());

    // Its resume token is spent: a resume is told the session is gone.
    let raw = common::raw::connect(&server.ws_url()).await;
    raw.expect_error(
        &format!(r#"{{"type":"resume","session_token":"{token}"}}"#),
        "session_expired",
    )
    .await;

    // Its PeerConnection was closed: ann's connection goes down.
    let deadline = tokio::time::Instant::now() + MEDIA_TIMEOUT;
    while ann.peer_connection_state() == RTCPeerConnectionState::Connected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ann's media connection is still up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Everyone else carries on.
    let carl = join(&server, "panic", "carl").await;
    let c = carl.participant_id().to_owned();
    bob.wait_for_media(|t| has_audio_from(t, &c, 20), MEDIA_TIMEOUT)
        .await
        .expect("a newcomer's media reaches bob");
    bob.leave().await.expect("bob leaves");
    carl.leave().await.expect("carl leaves");
}
