//! Resume after a dropped WebSocket, the grace period, and ICE restarts, with real bots.
mod common;

use std::time::Duration;

use common::*;
use roomcast_bots::{Bot, BotError, BotRole, Swarm, SwarmConfig};
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
    let ann = join(&server, "resume", "ann").await;
    let bob = join(&server, "resume", "bob").await;
    let a = ann.participant_id().to_owned();
    let b = bob.participant_id().to_owned();
    assert!(ann.session_token().is_some_and(|t| t.len() >= 32));
    wait_for_video(&bob, &a).await;

    ann.drop_websocket().await;
    // Parked: its media keeps arriving while it has no WebSocket.
    assert_media_keeps_flowing(&bob, &[&a]).await;
    let old_token = ann.session_token();
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
    let ann = join(&server, "grace", "ann").await;
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
    let bob = join(&server, "bogus", "bob").await;
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

/// A client that reads the server's offer and never answers it, as a webrtc-rs client did
/// when applying the offer failed on a busy machine, would hold back every later offer. The
/// server closes its connection (4000) once the answer is overdue; the client resumes, gets
/// the same offer again, answers it, and the media it was waiting for arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_left_unanswered_comes_again_after_a_resume_and_its_media_then_arrives() {
    use futures_util::{SinkExt, StreamExt};
    let decode_server_message = |t: &str| serde_json::from_str::<ServerMessage>(t);
    use roomcast_sfu::signaling::negotiator::ANSWER_TIMEOUT;
    use tokio_tungstenite::tungstenite::Message;

    let server = start_server().await;
    let ann = join(&server, "unanswered", "ann").await;
    let a = ann.participant_id().to_owned();

    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let join = r#"{"type":"join","room":"unanswered","name":"quiet"}"#;
    ws.send(Message::Text(join.into())).await.unwrap();
    let mut token = None;
    let mut first_offer = None;
    let mut candidates = Vec::new();
    // Reads on, answering nothing, until the server gives up on the answer.
    let close = tokio::time::timeout(ANSWER_TIMEOUT + MESSAGE_TIMEOUT, async {
        while let Some(frame) = ws.next().await {
            match frame.expect("a frame") {
                Message::Text(text) => match decode_server_message(&text) {
                    Ok(ServerMessage::Joined { session_token, .. }) => token = session_token,
                    Ok(ServerMessage::Offer { sdp }) => first_offer = Some(sdp),
                    Ok(ServerMessage::Candidate { candidate: Some(c) })
                        if !c.is_end_of_candidates() =>
                    {
                        candidates.push(c)
                    }
                    _ => {}
                },
                Message::Close(close) => return close,
                _ => {}
            }
        }
        None
    })
    .await
    .expect("closed once the answer is overdue")
    .expect("a close frame");
    assert_eq!(u16::from(close.code), 4000);
    assert_eq!(close.reason.as_str(), "offer not answered; resume");
    let first_offer = first_offer.expect("the server offered ann's tracks");
    let refused = r#"roomcast_connections_refused_total{reason="offer_unanswered"}"#;
    assert_eq!(common::http::metric(server.http_addr, refused).await, 1.0);

    // Resumed: the same offer again, and this time it is answered.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let resume = serde_json::json!({"type": "resume", "session_token": token.expect("a token")});
    ws.send(Message::Text(resume.to_string().into()))
        .await
        .unwrap();
    let offer = tokio::time::timeout(MESSAGE_TIMEOUT, async {
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Text(text) = frame {
                if let Ok(ServerMessage::Offer { sdp }) = decode_server_message(&text) {
                    return Some(sdp);
                }
            }
        }
        None
    })
    .await
    .expect("the offer again after resumed")
    .expect("an offer");
    assert_eq!(offer, first_offer, "the outstanding offer, not a new one");

    let pc = loopback_peer().await;
    let (track_tx, mut track_rx) = tokio::sync::mpsc::unbounded_channel();
    pc.on_track(Box::new(move |track, _, _| {
        let tx = track_tx.clone();
        Box::pin(async move {
            // The first packet read is proof the track's media arrives.
            if track.read_rtp().await.is_ok() {
                let _ = tx.send((track.kind(), track.stream_id()));
            }
        })
    }));
    pc.set_remote_description(
        webrtc::peer_connection::sdp::session_description::RTCSessionDescription::offer(offer)
            .unwrap(),
    )
    .await
    .unwrap();
    // The server's candidates came on the first connection (trickled, not in the offer).
    for c in candidates {
        pc.add_ice_candidate(webrtc::ice_transport::ice_candidate::RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: c.username_fragment,
        })
        .await
        .unwrap();
    }
    let answer = pc.create_answer(None).await.unwrap();
    pc.set_local_description(answer).await.unwrap();
    let sdp = pc.local_description().await.unwrap().sdp;
    let answer = serde_json::json!({"type": "answer", "sdp": sdp});
    ws.send(Message::Text(answer.to_string().into()))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let (kind, stream) = tokio::time::timeout(MEDIA_TIMEOUT, track_rx.recv())
            .await
            .expect("ann's media after the answer")
            .unwrap();
        assert_eq!(stream, a, "ann's tracks");
        kinds.push(kind);
    }
    kinds.sort_by_key(|k| *k as u8);
    assert_eq!(
        kinds,
        [
            webrtc::rtp_transceiver::rtp_codec::RTPCodecType::Audio,
            webrtc::rtp_transceiver::rtp_codec::RTPCodecType::Video
        ]
    );
    pc.close().await.unwrap();
    ann.leave().await.unwrap();
}

/// A plain webrtc-rs peer for a test that does the signaling by hand, on loopback only.
async fn loopback_peer() -> std::sync::Arc<webrtc::peer_connection::RTCPeerConnection> {
    use webrtc::api::interceptor_registry::register_default_interceptors;
    use webrtc::api::media_engine::MediaEngine;
    use webrtc::api::setting_engine::SettingEngine;
    use webrtc::api::APIBuilder;
    use webrtc::ice::network_type::NetworkType;

    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    let registry =
        register_default_interceptors(webrtc::interceptor::registry::Registry::new(), &mut media)
            .unwrap();
    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip: std::net::IpAddr| ip.is_loopback()));
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    std::sync::Arc::new(api.new_peer_connection(Default::default()).await.unwrap())
}

/// A `roomcast bots` swarm whose viewer leaves the server's first offer unanswered: the
/// server closes it with 4000 ("offer not answered; resume") after 15 s, the swarm resumes
/// it at once (the same participant, on the same PeerConnection), the offer comes again,
/// and the presenter's audio and video arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_bot_closed_with_4000_resumes_and_gets_its_tracks() {
    use roomcast_sfu::signaling::negotiator::ANSWER_TIMEOUT;

    let server = start_server().await;
    let mut config = SwarmConfig::new(server.ws_url());
    config.rooms = vec!["resume-4000".to_owned()];
    config.subscribers = 1;
    config.unanswered_server_offers = 1;
    let swarm = Swarm::start(config).await;
    assert!(swarm.wait_joined(MESSAGE_TIMEOUT).await, "both joined");
    let (_, viewer) = swarm
        .joined_bots()
        .into_iter()
        .find(|(plan, _)| plan.role == BotRole::Subscriber)
        .expect("the viewer joined");
    let id = viewer.participant_id().to_owned();
    // The viewer has nothing until it answers, which it does only after the resume.
    assert!(
        swarm.wait_for_tracks(ANSWER_TIMEOUT + MEDIA_TIMEOUT).await,
        "every track after the resume: {:?}",
        swarm.report(None).summary
    );
    assert!(
        viewer
            .messages()
            .iter()
            .any(|m| matches!(m, ServerMessage::Resumed { .. })),
        "the swarm resumed the viewer"
    );
    let refused = r#"roomcast_connections_refused_total{reason="offer_unanswered"}"#;
    assert_eq!(common::http::metric(server.http_addr, refused).await, 1.0);
    let now = swarm.joined_bots();
    assert!(
        now.iter().any(|(_, bot)| bot.participant_id() == id),
        "the same participant, resumed, not joined afresh"
    );
    let report = swarm.report(None);
    assert_eq!(report.summary.missing_tracks, 0, "{:?}", report.summary);
}
