//! Roles and moderation through the real WebSocket with real media: the audience cannot
//! publish, hosts mute, kick, promote, lock and end, and nobody else may.
mod common;

use common::*;
use roomcast_bots::{Bot, BotError, MessageCursor, VideoCodec};
use roomcast_protocol::{ClientMessage, ErrorCode, Role, ServerMessage, TrackKind};

async fn expect_error(bot: &Bot, from: MessageCursor, code: ErrorCode) -> String {
    match bot
        .wait_for_message_after(
            from,
            |m| matches!(m, ServerMessage::Error { code: c, .. } if *c == code),
            MESSAGE_TIMEOUT,
        )
        .await
    {
        Ok(ServerMessage::Error { message, .. }) => message,
        other => panic!(
            "{} expected error {code}: {other:?}\n{:#?}",
            bot.participant_id(),
            bot.messages()
        ),
    }
}

/// The id of `publisher`'s track of `kind`, as `bot` was told it.
async fn track_id_of(bot: &Bot, publisher: &str, kind: TrackKind) -> String {
    let listed = bot
        .joined_participants()
        .iter()
        .filter(|p| p.id == publisher)
        .flat_map(|p| p.tracks.iter())
        .find(|t| t.kind == kind)
        .map(|t| t.id.clone());
    if let Some(id) = listed {
        return id;
    }
    match bot
        .wait_for_message_after(
            MessageCursor::START,
            |m| matches!(m, ServerMessage::TrackPublished { participant_id, track } if participant_id == publisher && track.kind == kind),
            MESSAGE_TIMEOUT,
        )
        .await
    {
        Ok(ServerMessage::TrackPublished { track, .. }) => track.id,
        other => panic!("no {kind:?} track of {publisher}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_cannot_publish_but_still_receives() {
    let server = start_server().await;
    let presenter = join_with(config(&server, "aud", "pres", Role::Presenter)).await;
    // Publishes audio and video, like a presenter would.
    let audience = join_with(config(&server, "aud", "aud", Role::Audience)).await;
    let (p, a) = (
        presenter.participant_id().to_owned(),
        audience.participant_id().to_owned(),
    );
    let message = expect_error(&audience, MessageCursor::START, ErrorCode::Forbidden).await;
    assert!(message.contains("audience"), "{message}");
    // Its offer was answered with its sending m-lines inactive.
    let answer = audience
        .messages()
        .into_iter()
        .find_map(|m| match m {
            ServerMessage::Answer { sdp } => Some(sdp),
            _ => None,
        })
        .expect("the offer was answered");
    assert!(
        answer.matches("a=inactive").count() >= 2 && !answer.contains("a=recvonly"),
        "{answer}"
    );
    audience
        .wait_for_media(
            |t| has_audio_from(t, &p, 30) && has_video_from(t, &p, 30, 640, 360),
            MEDIA_TIMEOUT,
        )
        .await
        .expect("the audience still receives");
    // Long enough for anything of the audience member's to have arrived.
    video_window(&audience, &p, 150).await;
    assert!(
        presenter
            .remote_tracks()
            .iter()
            .all(|t| t.publisher_id != a),
        "nothing of the audience is forwarded: {:#?}",
        presenter.remote_tracks()
    );
    assert!(!presenter.messages().iter().any(
        |m| matches!(m, ServerMessage::TrackPublished { participant_id, .. } if *participant_id == a)
    ));
    let stats = server.stats();
    assert_eq!(stats.tracks, 2, "only the presenter's tracks: {stats:#?}");
    assert_eq!(stats.participants, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_mutes_a_presenters_audio_and_unmutes_it() {
    let server = start_server().await;
    let host = join_with(viewer(&server, "mute", "host", Role::Host)).await;
    let pres = join_with(config(&server, "mute", "pres", Role::Presenter)).await;
    let watcher = join_with(viewer(&server, "mute", "watch", Role::Audience)).await;
    let p = pres.participant_id().to_owned();
    watcher
        .wait_for_media(
            |t| has_audio_from(t, &p, 30) && has_video_from(t, &p, 30, 640, 360),
            MEDIA_TIMEOUT,
        )
        .await
        .expect("media flows");
    let audio = track_id_of(&host, &p, TrackKind::Audio).await;
    let cursors = [
        host.message_cursor(),
        pres.message_cursor(),
        watcher.message_cursor(),
    ];
    host.send(&ClientMessage::MuteParticipant {
        participant_id: p.clone(),
        kind: TrackKind::Audio,
        muted: true,
    })
    .await
    .unwrap();
    for (bot, from) in [&host, &pres, &watcher].into_iter().zip(cursors) {
        wait_muted(bot, from, &p, &audio, true).await;
    }
    // Let packets already on their way arrive, then watch a window: no audio.
    video_window(&watcher, &p, 30).await;
    let muted_at = packets_of(&watcher, &p, TrackKind::Audio);
    video_window(&watcher, &p, 150).await;
    assert_eq!(
        packets_of(&watcher, &p, TrackKind::Audio),
        muted_at,
        "muted audio stopped arriving"
    );
    // The state is part of the track: a later joiner sees it.
    let late = join_with(viewer(&server, "mute", "late", Role::Audience)).await;
    let listed = late
        .joined_participants()
        .iter()
        .find(|x| x.id == p)
        .and_then(|x| x.tracks.iter().find(|t| t.id == audio).cloned())
        .expect("the audio track is listed");
    assert!(listed.muted);

    let from = watcher.message_cursor();
    host.send(&ClientMessage::MuteParticipant {
        participant_id: p.clone(),
        kind: TrackKind::Audio,
        muted: false,
    })
    .await
    .unwrap();
    wait_muted(&watcher, from, &p, &audio, false).await;
    wait_packets_above(
        &watcher,
        &p,
        TrackKind::Audio,
        muted_at + 30,
        "audio resumes after unmute",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_mute_stops_video_and_unmute_resumes_at_a_keyframe() {
    let server = start_server().await;
    let pres = join_with(config(&server, "self", "pres", Role::Presenter)).await;
    let watcher = join_with(viewer(&server, "self", "watch", Role::Presenter)).await;
    let p = pres.participant_id().to_owned();
    watcher
        .wait_for_media(|t| has_video_from(t, &p, 30, 640, 360), MEDIA_TIMEOUT)
        .await
        .expect("video flows");
    let video = track_id_of(&watcher, &p, TrackKind::Video).await;
    let from = watcher.message_cursor();
    pres.send(&ClientMessage::Mute {
        track_id: video.clone(),
        muted: true,
    })
    .await
    .unwrap();
    wait_muted(&watcher, from, &p, &video, true).await;
    // A window measured by the audio that still flows: video stays still.
    let audio_window = |n: u64| {
        let start = packets_of(&watcher, &p, TrackKind::Audio);
        let p = p.clone();
        let watcher = &watcher;
        async move {
            watcher
                .wait_for_media(
                    |t| {
                        t.iter()
                            .filter(|x| x.publisher_id == p && x.kind == TrackKind::Audio)
                            .map(|x| x.packets)
                            .sum::<u64>()
                            >= start + n
                    },
                    MEDIA_TIMEOUT,
                )
                .await
                .expect("audio keeps flowing");
        }
    };
    audio_window(10).await;
    let stopped = watcher
        .remote_tracks()
        .into_iter()
        .find(|t| t.publisher_id == p && t.kind == TrackKind::Video)
        .expect("the video track");
    audio_window(75).await;
    let still = watcher
        .remote_tracks()
        .into_iter()
        .find(|t| t.publisher_id == p && t.kind == TrackKind::Video)
        .unwrap();
    assert_eq!(
        still.packets, stopped.packets,
        "muted video is not forwarded"
    );

    // Someone else cannot unmute it.
    let from = watcher.message_cursor();
    watcher
        .send(&ClientMessage::Mute {
            track_id: video.clone(),
            muted: false,
        })
        .await
        .unwrap();
    expect_error(&watcher, from, ErrorCode::Forbidden).await;

    let from = watcher.message_cursor();
    pres.send(&ClientMessage::Mute {
        track_id: video.clone(),
        muted: false,
    })
    .await
    .unwrap();
    wait_muted(&watcher, from, &p, &video, false).await;
    watcher
        .wait_for_media(
            |t| {
                t.iter().any(|x| {
                    x.publisher_id == p
                        && x.kind == TrackKind::Video
                        && x.packets > still.packets + 30
                        && x.keyframes > still.keyframes
                })
            },
            MEDIA_TIMEOUT,
        )
        .await
        .expect("video resumes, with a keyframe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_hosts_moderate_and_refusals_change_nothing() {
    let server = start_server().await;
    let host = join_with(viewer(&server, "nohost", "host", Role::Host)).await;
    let pres = join_with(config(&server, "nohost", "pres", Role::Presenter)).await;
    let aud = join_with(viewer(&server, "nohost", "aud", Role::Audience)).await;
    let (h, p) = (
        host.participant_id().to_owned(),
        pres.participant_id().to_owned(),
    );
    aud.wait_for_media(|t| has_audio_from(t, &p, 20), MEDIA_TIMEOUT)
        .await
        .expect("media flows");
    let attempts = [
        ClientMessage::MuteParticipant {
            participant_id: p.clone(),
            kind: TrackKind::Audio,
            muted: true,
        },
        ClientMessage::Kick {
            participant_id: h.clone(),
        },
        ClientMessage::SetRole {
            participant_id: p.clone(),
            role: Role::Audience,
        },
        ClientMessage::LockRoom,
        ClientMessage::UnlockRoom,
        ClientMessage::EndRoom,
    ];
    for bot in [&pres, &aud] {
        for attempt in &attempts {
            let from = bot.message_cursor();
            bot.send(attempt).await.unwrap();
            expect_error(bot, from, ErrorCode::Forbidden).await;
        }
    }
    // A host naming nobody.
    let from = host.message_cursor();
    host.send(&ClientMessage::Kick {
        participant_id: "PA_nobody".into(),
    })
    .await
    .unwrap();
    expect_error(&host, from, ErrorCode::UnknownParticipant).await;

    // Nothing changed: the audio flows, nobody was muted, demoted or kicked, the room is open.
    assert_media_keeps_flowing(&aud, &[&p]).await;
    for bot in [&host, &pres, &aud] {
        assert!(
            !bot.messages().iter().any(|m| matches!(
                m,
                ServerMessage::TrackMuted { .. }
                    | ServerMessage::RoleChanged { .. }
                    | ServerMessage::RoomLocked { .. }
                    | ServerMessage::RoomEnded
                    | ServerMessage::ParticipantLeft { .. }
            )),
            "{:#?}",
            bot.messages()
        );
        assert!(bot.closed().is_none());
    }
    let late = join_with(viewer(&server, "nohost", "late", Role::Presenter)).await;
    assert_eq!(
        late.joined_participants().len(),
        3,
        "a presenter sees everyone"
    );
    assert_eq!(server.stats().participants, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_participant_is_closed_and_its_tracks_end() {
    let server = start_server().await;
    let host = join_with(viewer(&server, "kick", "host", Role::Host)).await;
    let stay = join_with(config(&server, "kick", "stay", Role::Presenter)).await;
    let gone = join_with(config(&server, "kick", "gone", Role::Presenter)).await;
    let g = gone.participant_id().to_owned();
    let s = stay.participant_id().to_owned();
    stay.wait_for_media(
        |t| has_audio_from(t, &g, 20) && has_video_from(t, &g, 20, 640, 360),
        MEDIA_TIMEOUT,
    )
    .await
    .expect("media flows");
    let cursors = (host.message_cursor(), stay.message_cursor());
    host.send(&ClientMessage::Kick {
        participant_id: g.clone(),
    })
    .await
    .unwrap();
    expect_error(&gone, MessageCursor::START, ErrorCode::Kicked).await;
    gone.wait_for_close(MESSAGE_TIMEOUT)
        .await
        .expect("the kicked connection is closed");
    for (bot, from) in [(&host, cursors.0), (&stay, cursors.1)] {
        bot.wait_for_message_after(
            from,
            |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == g),
            MESSAGE_TIMEOUT,
        )
        .await
        .expect("participant_left");
    }
    stay.wait_for_media(
        |t| {
            let from_g: Vec<_> = t.iter().filter(|x| x.publisher_id == g).collect();
            from_g.len() == 2 && from_g.iter().all(|x| x.ended)
        },
        MEDIA_TIMEOUT,
    )
    .await
    .expect("the kicked participant's tracks end");
    assert_media_keeps_flowing(&host, &[&s]).await;
    assert_eq!(server.stats().participants, 2);
    assert_eq!(server.stats().tracks, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_audience_member_publishes_and_a_demoted_one_stops() {
    let server = start_server().await;
    let host = join_with(viewer(&server, "promo", "host", Role::Host)).await;
    let mut aud = join_with(viewer(&server, "promo", "aud", Role::Audience)).await;
    let a = aud.participant_id().to_owned();
    let cursors = (host.message_cursor(), aud.message_cursor());
    host.send(&ClientMessage::SetRole {
        participant_id: a.clone(),
        role: Role::Presenter,
    })
    .await
    .unwrap();
    for (bot, from) in [(&host, cursors.0), (&aud, cursors.1)] {
        bot.wait_for_message_after(
            from,
            |m| matches!(m, ServerMessage::RoleChanged { participant_id, role: Role::Presenter } if *participant_id == a),
            MESSAGE_TIMEOUT,
        )
        .await
        .expect("role_changed");
    }
    aud.publish_media(true, Some(VideoCodec::Vp8))
        .await
        .expect("a presenter may publish");
    host.wait_for_media(
        |t| has_audio_from(t, &a, 30) && has_video_from(t, &a, 30, 640, 360),
        MEDIA_TIMEOUT,
    )
    .await
    .expect("the promoted member is received");
    assert!(!aud
        .messages()
        .iter()
        .any(|m| matches!(m, ServerMessage::Error { .. })));

    // Back to the audience: its tracks are unpublished and end at the host.
    let from = host.message_cursor();
    host.send(&ClientMessage::SetRole {
        participant_id: a.clone(),
        role: Role::Audience,
    })
    .await
    .unwrap();
    host.wait_for_message_after(
        from,
        |m| matches!(m, ServerMessage::TrackUnpublished { participant_id, .. } if *participant_id == a),
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("track_unpublished");
    host.wait_for_media(
        |t| {
            let from_a: Vec<_> = t.iter().filter(|x| x.publisher_id == a).collect();
            from_a.len() == 2 && from_a.iter().all(|x| x.ended)
        },
        MEDIA_TIMEOUT,
    )
    .await
    .expect("the demoted member's tracks end");
    assert_eq!(server.stats().tracks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_room_refuses_joins_until_unlocked() {
    let server = start_server().await;
    let host = join_with(viewer(&server, "lock", "host", Role::Host)).await;
    let from = host.message_cursor();
    host.send(&ClientMessage::LockRoom).await.unwrap();
    host.wait_for_message_after(
        from,
        |m| matches!(m, ServerMessage::RoomLocked { locked: true }),
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("room_locked true");
    match Bot::join(viewer(&server, "lock", "late", Role::Presenter)).await {
        Err(BotError::Refused { code, .. }) => assert_eq!(code, ErrorCode::RoomLocked),
        Err(e) => panic!("refused otherwise: {e}"),
        Ok(_) => panic!("joined a locked room"),
    }
    assert_eq!(server.stats().participants, 1);
    let from = host.message_cursor();
    host.send(&ClientMessage::UnlockRoom).await.unwrap();
    host.wait_for_message_after(
        from,
        |m| matches!(m, ServerMessage::RoomLocked { locked: false }),
        MESSAGE_TIMEOUT,
    )
    .await
    .expect("room_locked false");
    let late = join_with(viewer(&server, "lock", "late", Role::Presenter)).await;
    assert_eq!(late.joined_participants().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_room_closes_everyone_and_removes_the_room() {
    let server = start_server().await;
    let host = join_with(viewer(&server, "end", "host", Role::Host)).await;
    let pres = join_with(config(&server, "end", "pres", Role::Presenter)).await;
    let aud = join_with(viewer(&server, "end", "aud", Role::Audience)).await;
    let p = pres.participant_id().to_owned();
    aud.wait_for_media(|t| has_audio_from(t, &p, 20), MEDIA_TIMEOUT)
        .await
        .expect("media flows");
    let cursors = [
        host.message_cursor(),
        pres.message_cursor(),
        aud.message_cursor(),
    ];
    host.send(&ClientMessage::EndRoom).await.unwrap();
    for (bot, from) in [&host, &pres, &aud].into_iter().zip(cursors) {
        bot.wait_for_message_after(
            from,
            |m| matches!(m, ServerMessage::RoomEnded),
            MESSAGE_TIMEOUT,
        )
        .await
        .expect("room_ended");
        bot.wait_for_close(MESSAGE_TIMEOUT)
            .await
            .expect("connection closed");
    }
    // The name is free again: a new join makes a new, empty room.
    let again = join_with(viewer(&server, "end", "again", Role::Host)).await;
    assert!(again.joined_participants().is_empty());
    let stats = server.stats();
    assert_eq!(stats.rooms, 1);
    assert_eq!(stats.tracks, 0);
}
