//! Participants come and go: the server ends with nothing left over, as its own counters
//! say, and a long-lived subscriber's SDP does not grow with every newcomer.
mod common;

use common::*;
use roomcast_bots::BotConfig;
use roomcast_protocol::ServerMessage;

fn m_lines(sdp: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with("m=")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_join_leave_cycles_leave_nothing_behind() {
    let server = start_server().await;
    // No resume grace: a dropped connection leaves as soon as it is noticed.
    server.sessions.resume.set_grace(std::time::Duration::ZERO);
    for i in 0..50 {
        let bot = join(&server, "churn", &format!("bot{i}")).await;
        if i % 10 == 0 {
            bot.drop_connection().await;
        } else {
            bot.leave().await.expect("clean leave");
        }
    }
    // A dropped connection is noticed when its socket closes; wait for the server's counters.
    let deadline = tokio::time::Instant::now() + MESSAGE_TIMEOUT;
    loop {
        let s = server.stats();
        if s.rooms == 0 && s.participants == 0 && s.tracks == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left over after churn: {s:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_reuses_transceivers_as_publishers_come_and_go() {
    let server = start_server().await;
    let watcher =
        join_with(BotConfig::new(server.ws_url(), "reuse", "watcher").with_publish(false, None))
            .await;
    for i in 0..6 {
        let publisher = join(&server, "reuse", &format!("pub{i}")).await;
        let id = publisher.participant_id().to_owned();
        watcher
            .wait_for_media(
                |t| has_audio_from(t, &id, 10) && has_video_from(t, &id, 10, 640, 360),
                MEDIA_TIMEOUT,
            )
            .await
            .unwrap_or_else(|e| panic!("publisher {i} reaches the watcher: {e}"));
        publisher.leave().await.expect("clean leave");
        watcher
            .wait_for_media(
                |t| t.iter().filter(|x| x.publisher_id == id).all(|x| x.ended),
                MEDIA_TIMEOUT,
            )
            .await
            .expect("tracks end");
    }
    let largest_offer = watcher
        .messages()
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Offer { sdp } => Some(m_lines(sdp)),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    assert!(
        largest_offer <= 4,
        "six publishers one after another need at most two audio and two video m-lines, got {largest_offer}"
    );
}
