//! A server offer that reaches a webrtc-rs client right after the answer to the client's
//! first offer, before that connection's transports have started, is an ordinary
//! renegotiation: it must be answered, with the same ICE credentials. Upstream webrtc-rs read
//! it as an ICE restart: here the restart goes through and the answer carries new
//! credentials; on a busy machine it failed while the agent gathered ("ICE Agent can not be
//! restarted when gathering"), the bot never answered, and the server, which holds its next
//! offers until then, never gave that subscriber any track (vendor/webrtc/ROOMCAST-PATCH.md,
//! change 8).
//!
//! On a current-thread runtime the queued start of the transports cannot run until the test
//! yields, which makes the busy machine's ordering certain here.
use std::sync::Arc;

use webrtc::api::media_engine::MediaEngine;
use webrtc::api::APIBuilder;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::signaling_state::RTCSignalingState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

async fn peer() -> Arc<RTCPeerConnection> {
    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    let api = APIBuilder::new().with_media_engine(media).build();
    Arc::new(
        api.new_peer_connection(RTCConfiguration::default())
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn a_server_offer_right_after_the_first_answer_is_answered() {
    let bot = peer().await;
    let server = peer().await;

    // The bot publishes: its offer, the server's answer.
    bot.add_transceiver_from_kind(RTPCodecType::Audio, None)
        .await
        .unwrap();
    let offer = bot.create_offer(None).await.unwrap();
    bot.set_local_description(offer.clone()).await.unwrap();
    server.set_remote_description(offer.clone()).await.unwrap();
    let answer = server.create_answer(None).await.unwrap();
    server.set_local_description(answer.clone()).await.unwrap();

    // The server offers the bot another member's track at once.
    server
        .add_transceiver_from_kind(RTPCodecType::Video, None)
        .await
        .unwrap();
    let server_offer = server.create_offer(None).await.unwrap();
    server
        .set_local_description(server_offer.clone())
        .await
        .unwrap();

    // Both reach the bot back to back, before its transports have started.
    // `unconstrained`: tokio's cooperative budget would otherwise make the test task yield
    // now and then, and let the queued start run in between, as on an idle machine.
    tokio::task::unconstrained(async {
        bot.set_remote_description(answer).await.unwrap();
        bot.set_remote_description(server_offer)
            .await
            .expect("a renegotiation offer is not an ICE restart");
    })
    .await;
    let bot_answer = bot.create_answer(None).await.unwrap();
    assert_eq!(
        ice_ufrag(&bot_answer.sdp),
        ice_ufrag(&offer.sdp),
        "the bot's ICE credentials stay: nothing asked for an ICE restart"
    );
    bot.set_local_description(bot_answer.clone()).await.unwrap();
    server.set_remote_description(bot_answer).await.unwrap();
    assert_eq!(bot.signaling_state(), RTCSignalingState::Stable);
    assert_eq!(server.signaling_state(), RTCSignalingState::Stable);

    bot.close().await.unwrap();
    server.close().await.unwrap();
}

fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:").map(str::to_owned))
}
