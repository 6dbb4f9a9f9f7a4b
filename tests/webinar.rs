//! Webinars: a host creates the room with its settings; the audience is counted, not
//! announced one by one, and the room's limits hold.
mod common;

use std::time::Instant;

use common::*;
use roomcast_bots::{Bot, BotConfig, BotError, MessageCursor};
use roomcast_protocol::{ErrorCode, Role, RoomSettings, ServerMessage};

const AUDIENCE: usize = 20;

fn count(bot: &Bot, pred: impl Fn(&ServerMessage) -> bool) -> usize {
    bot.messages().iter().filter(|m| pred(m)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webinar_audience_is_counted_not_announced() {
    let server = start_server().await;
    let settings = RoomSettings {
        webinar: true,
        max_participants: None,
        max_publishers: Some(1),
    };
    let host = join_with(
        BotConfig::new(server.ws_url(), "web", "host")
            .with_role(Role::Host)
            .with_publish(false, None)
            .with_room_settings(settings),
    )
    .await;
    let pres =
        join_with(BotConfig::new(server.ws_url(), "web", "pres").with_role(Role::Presenter)).await;
    let p = pres.participant_id().to_owned();
    let started = Instant::now();
    let mut audience = Vec::new();
    for i in 0..AUDIENCE {
        // Half name no role: in a webinar that is audience.
        let mut config =
            BotConfig::new(server.ws_url(), "web", format!("aud{i}")).with_publish(false, None);
        if i % 2 == 0 {
            config = config.with_role(Role::Audience);
        }
        audience.push(join_with(config).await);
    }
    let first = &audience[0];
    let last = &audience[AUDIENCE - 1];
    for bot in &audience {
        let seen: Vec<&str> = bot
            .joined_participants()
            .iter()
            .map(|x| x.id.as_str())
            .collect();
        assert_eq!(seen.len(), 2, "only host and presenter: {seen:?}");
        assert!(seen.contains(&p.as_str()));
    }
    // Everyone in the audience learns the final count within a couple of seconds.
    for bot in [first, last] {
        bot.wait_for_message_after(
            MessageCursor::START,
            |m| matches!(m, ServerMessage::AudienceCount { count } if *count == AUDIENCE),
            MESSAGE_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("audience_count {AUDIENCE}: {e}\n{:#?}", bot.messages()));
    }
    let elapsed = started.elapsed().as_secs() as usize;
    // Hosts and presenters see every audience member.
    for bot in [&host, &pres] {
        let joined = count(
            bot,
            |m| matches!(m, ServerMessage::ParticipantJoined { participant } if participant.role == Role::Audience),
        );
        assert_eq!(joined, AUDIENCE, "{}", bot.participant_id());
    }
    // The audience gets no per-join flood: no participant_joined at all, and at most one
    // audience_count a second (plus the one of its own join).
    let first_messages = first.messages();
    assert_eq!(
        count(first, |m| matches!(
            m,
            ServerMessage::ParticipantJoined { .. }
        )),
        0,
        "{first_messages:#?}"
    );
    let counts = count(first, |m| matches!(m, ServerMessage::AudienceCount { .. }));
    assert!(
        counts <= elapsed + 3,
        "{counts} audience_count in {elapsed} s"
    );
    assert!(
        first_messages.len() < 40,
        "a bounded number of messages: {first_messages:#?}"
    );
    let pres_messages = pres.messages().len();
    assert!(
        pres_messages < AUDIENCE + 40,
        "one announcement per audience join to the presenter, not more: {pres_messages}"
    );

    // The audience receives the presenter.
    last.wait_for_media(
        |t| has_audio_from(t, &p, 20) && has_video_from(t, &p, 20, 640, 360),
        MEDIA_TIMEOUT,
    )
    .await
    .expect("the audience receives the presenter");

    // max_publishers 1: a second presenter may join but not publish.
    let second =
        join_with(BotConfig::new(server.ws_url(), "web", "pres2").with_role(Role::Presenter)).await;
    second
        .wait_for_message_after(
            MessageCursor::START,
            |m| {
                matches!(
                    m,
                    ServerMessage::Error {
                        code: ErrorCode::Forbidden,
                        ..
                    }
                )
            },
            MESSAGE_TIMEOUT,
        )
        .await
        .expect("a publisher beyond max_publishers is refused");
    assert_eq!(
        server.stats().tracks,
        2,
        "only the first presenter's tracks"
    );

    // An audience member who leaves is announced only to host and presenters.
    let cursors = (pres.message_cursor(), first.message_cursor());
    let leaver = audience.pop().unwrap();
    let first = &audience[0];
    let l = leaver.participant_id().to_owned();
    leaver.leave().await.expect("clean leave");
    pres.wait_for_message_after(
        cursors.0,
        |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == l),
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("the presenter sees the audience leave");
    first
        .wait_for_message_after(
            cursors.1,
            |m| matches!(m, ServerMessage::AudienceCount { count } if *count == AUDIENCE - 1),
            MESSAGE_TIMEOUT,
        )
        .await
        .expect("the audience sees the count drop");
    assert_eq!(
        count(first, |m| matches!(
            m,
            ServerMessage::ParticipantLeft { .. }
        )),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_participants_comes_from_the_first_host_only() {
    let server = start_server().await;
    let small = RoomSettings {
        webinar: false,
        max_participants: Some(2),
        max_publishers: None,
    };
    let viewer = |room: &str, name: &str, role: Role| {
        BotConfig::new(server.ws_url(), room, name)
            .with_role(role)
            .with_publish(false, None)
            .with_room_settings(small)
    };
    let _host = join_with(viewer("small", "host", Role::Host)).await;
    let _second = join_with(viewer("small", "second", Role::Presenter)).await;
    match Bot::join(viewer("small", "third", Role::Host)).await {
        Err(BotError::Refused { code, .. }) => assert_eq!(code, ErrorCode::RoomFull),
        other => panic!(
            "a third join: {:?}",
            other.map(|b| b.participant_id().to_owned())
        ),
    }
    // Settings from a join that is not a host's are ignored.
    let _first = join_with(viewer("open", "pres", Role::Presenter)).await;
    let _b = join_with(viewer("open", "b", Role::Presenter)).await;
    let c = join_with(viewer("open", "c", Role::Presenter)).await;
    assert_eq!(c.joined_participants().len(), 2);
}
