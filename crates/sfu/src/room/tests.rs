//! The room's rules without sessions or sockets: every change's effects, per recipient.
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_protocol::{Role, RoomSettings, ServerMessage, TrackKind};

use super::state::{
    ChatRefused, JoinRefused, Joining, ModerationError, RoomState, Welcome, ROOM_CHAT,
};
use super::{Effect, Effects, Order};
use crate::media::published_track::PublishedTrack;

const CAP: usize = 100;

fn joining(id: &str, role: Option<Role>) -> Joining {
    Joining {
        id: id.to_owned(),
        name: format!("name of {id}"),
        role: role.unwrap_or_default(),
        role_given: role.is_some(),
        room_settings: None,
        hidden: false,
    }
}

fn join(room: &mut RoomState, id: &str, role: Option<Role>) -> (Welcome, Effects) {
    room.join(joining(id, role), CAP)
        .unwrap_or_else(|e| panic!("{id} joins: {e:?}"))
}

fn webinar() -> RoomState {
    let mut room = RoomState::default();
    let host = Joining {
        room_settings: Some(RoomSettings {
            webinar: true,
            ..RoomSettings::default()
        }),
        ..joining("host", Some(Role::Host))
    };
    room.join(host, CAP).expect("the host joins");
    room
}

fn track(publisher: &str, id: &str, kind: TrackKind) -> Arc<PublishedTrack> {
    super::testing::track(publisher, id, "0", kind)
}

/// The messages `id` is told, in order.
fn told(effects: &Effects, id: &str) -> Vec<ServerMessage> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Tell { to, msg } if to.iter().any(|t| t == id) => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

fn resubscribed(effects: &Effects) -> Vec<String> {
    effects
        .iter()
        .flat_map(|e| match e {
            Effect::Resubscribe { to } => to.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn orders(effects: &Effects) -> Vec<(String, Order)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Order { to, order } => Some((to.clone(), *order)),
            _ => None,
        })
        .collect()
}

fn ids(welcome: &Welcome) -> Vec<&str> {
    welcome.participants.iter().map(|p| p.id.as_str()).collect()
}

fn joined_id(msg: &ServerMessage) -> Option<&str> {
    match msg {
        ServerMessage::ParticipantJoined { participant } => Some(&participant.id),
        _ => None,
    }
}

#[test]
fn in_a_meeting_everyone_sees_everyone() {
    let mut room = RoomState::default();
    join(&mut room, "a", None);
    let (welcome, effects) = join(&mut room, "b", None);
    assert_eq!(ids(&welcome), ["a"]);
    assert_eq!(welcome.role, Role::Presenter);
    assert_eq!(
        told(&effects, "a")
            .iter()
            .filter_map(joined_id)
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert!(
        told(&effects, "b").is_empty(),
        "the joiner learns from its welcome"
    );
}

#[test]
fn the_audience_sees_only_staff_and_is_announced_only_to_staff() {
    let mut room = webinar();
    let (welcome, effects) = join(&mut room, "viewer1", None);
    assert_eq!(
        welcome.role,
        Role::Audience,
        "a webinar makes a roleless join audience"
    );
    assert!(welcome.settings.webinar);
    assert_eq!(ids(&welcome), ["host"]);
    assert_eq!(
        told(&effects, "host").iter().filter_map(joined_id).count(),
        1
    );
    assert_eq!(
        told(&effects, "viewer1"),
        [ServerMessage::AudienceCount { count: 1 }],
        "a joining audience member learns the count"
    );

    let (welcome, effects) = join(&mut room, "viewer2", None);
    assert_eq!(ids(&welcome), ["host"], "viewer1 is not visible to viewer2");
    assert!(
        told(&effects, "viewer1").is_empty(),
        "nor viewer2 to viewer1"
    );

    let (welcome, effects) = join(&mut room, "guest", Some(Role::Presenter));
    assert_eq!(
        ids(&welcome),
        ["host", "viewer1", "viewer2"],
        "staff sees the audience"
    );
    for viewer in ["viewer1", "viewer2"] {
        assert_eq!(
            told(&effects, viewer)
                .iter()
                .filter_map(joined_id)
                .collect::<Vec<_>>(),
            ["guest"],
            "the audience sees new staff"
        );
    }

    let effects = room.leave("viewer1");
    assert_eq!(
        told(&effects, "viewer2"),
        [],
        "an audience member leaves unseen"
    );
    assert_eq!(
        told(&effects, "guest"),
        [ServerMessage::ParticipantLeft {
            participant_id: "viewer1".into()
        }]
    );
    assert_eq!(room.audience_count(), 1);
}

#[test]
fn a_hidden_relay_sees_the_staff_and_is_never_announced_listed_or_counted() {
    let mut room = webinar();
    join(&mut room, "viewer", None);
    let relay = Joining {
        hidden: true,
        ..joining("relay", Some(Role::Audience))
    };
    let (welcome, effects) = room.join(relay, CAP).expect("the relay joins");
    assert_eq!(ids(&welcome), ["host"], "it sees what the audience sees");
    assert!(told(&effects, "host")
        .iter()
        .all(|m| joined_id(m).is_none()));
    assert_eq!(room.audience_count(), 1);
    assert!(room.participants().iter().all(|p| p.id != "relay"));
    let (welcome, _) = join(&mut room, "guest", Some(Role::Presenter));
    assert_eq!(ids(&welcome), ["host", "viewer"], "staff joining later");
    let effects = room.leave("relay");
    assert!(told(&effects, "host").is_empty(), "it leaves unseen");
}

#[test]
fn resuming_sees_the_room_as_it_is_now() {
    let mut room = webinar();
    join(&mut room, "viewer", None);
    join(&mut room, "other", None);
    let (welcome, effects) = room.rejoin("viewer").expect("still here");
    assert_eq!(ids(&welcome), ["host"]);
    assert_eq!(welcome.role, Role::Audience);
    assert_eq!(
        told(&effects, "viewer"),
        [ServerMessage::AudienceCount { count: 2 }]
    );
    assert!(room.rejoin("nobody").is_none());
}

#[test]
fn settings_come_only_from_a_host_creating_the_room() {
    let mut room = RoomState::default();
    let presenter = Joining {
        room_settings: Some(RoomSettings {
            webinar: true,
            ..RoomSettings::default()
        }),
        ..joining("p", None)
    };
    room.join(presenter, CAP).unwrap();
    assert!(!room.settings().webinar, "not a host");
    let host = Joining {
        room_settings: Some(RoomSettings {
            webinar: true,
            ..RoomSettings::default()
        }),
        ..joining("h", Some(Role::Host))
    };
    room.join(host, CAP).unwrap();
    assert!(!room.settings().webinar, "not the room's first join");
}

#[test]
fn the_room_and_the_server_cap_members() {
    let mut room = RoomState::default();
    let host = Joining {
        room_settings: Some(RoomSettings {
            max_participants: Some(2),
            ..RoomSettings::default()
        }),
        ..joining("h", Some(Role::Host))
    };
    room.join(host, CAP).unwrap();
    join(&mut room, "a", None);
    assert_eq!(
        room.join(joining("b", None), CAP).unwrap_err(),
        JoinRefused::Full
    );
    room.leave("a");
    assert_eq!(
        room.join(joining("b", None), 1).unwrap_err(),
        JoinRefused::Full
    );
    assert!(room.join(joining("b", None), 2).is_ok());
}

#[test]
fn publishing_tells_everyone_else_and_leaving_retires_the_tracks() {
    let mut room = RoomState::default();
    join(&mut room, "a", None);
    join(&mut room, "b", None);
    let audio = track("a", "TR_1", TrackKind::Audio);
    let effects = room.publish(Arc::clone(&audio));
    assert!(matches!(
        told(&effects, "b").as_slice(),
        [ServerMessage::TrackPublished { participant_id, track }] if participant_id == "a" && track.id == "TR_1"
    ));
    assert!(told(&effects, "a").is_empty());
    assert_eq!(resubscribed(&effects), ["b"]);
    assert_eq!(room.tracks_for("b").len(), 1);
    assert!(
        room.tracks_for("a").is_empty(),
        "nobody receives their own track"
    );

    let effects = room.leave("a");
    assert!(
        matches!(effects.first(), Some(Effect::Retire(t)) if Arc::ptr_eq(t, &audio)),
        "{effects:?}"
    );
    assert_eq!(resubscribed(&effects), ["b"]);
    assert!(!room.has_track("TR_1"));

    let late = track("a", "TR_2", TrackKind::Video);
    assert!(
        matches!(room.publish(late).as_slice(), [Effect::Stop(_)]),
        "a publisher that left gets nothing published"
    );
}

#[test]
fn unpublishing_tells_the_others() {
    let mut room = RoomState::default();
    join(&mut room, "a", None);
    join(&mut room, "b", None);
    room.publish(track("a", "TR_1", TrackKind::Video));
    let effects = room.unpublish("a", "TR_1");
    assert_eq!(
        told(&effects, "b"),
        [ServerMessage::TrackUnpublished {
            participant_id: "a".into(),
            track_id: "TR_1".into()
        }]
    );
    assert!(matches!(effects.first(), Some(Effect::Retire(_))));
    assert!(room.unpublish("a", "TR_1").is_empty(), "only once");
}

#[test]
fn publisher_places_are_capped_and_released() {
    let mut room = RoomState::default();
    let host = Joining {
        room_settings: Some(RoomSettings {
            max_publishers: Some(1),
            ..RoomSettings::default()
        }),
        ..joining("h", Some(Role::Host))
    };
    room.join(host, CAP).unwrap();
    join(&mut room, "p", None);
    join(&mut room, "v", Some(Role::Audience));
    assert!(!room.claim_publisher("v"), "the audience may not publish");
    assert!(room.claim_publisher("h"));
    assert!(room.claim_publisher("h"), "a place is kept");
    assert!(!room.claim_publisher("p"), "the room's one place is taken");
    room.release_publisher("h");
    assert!(room.claim_publisher("p"));
    room.set_role("p", Role::Audience).unwrap();
    assert!(room.claim_publisher("h"), "a demotion frees the place");
    assert!(!room.claim_publisher("nobody"));
}

#[test]
fn promotion_shows_the_member_and_the_audience_to_each_other() {
    let mut room = webinar();
    join(&mut room, "v1", None);
    join(&mut room, "v2", None);
    let effects = room.set_role("v1", Role::Presenter).unwrap();
    assert_eq!(
        orders(&effects),
        [("v1".into(), Order::RoleChanged(Role::Presenter))]
    );
    let changed = ServerMessage::RoleChanged {
        participant_id: "v1".into(),
        role: Role::Presenter,
    };
    let to_v2 = told(&effects, "v2");
    assert_eq!(joined_id(&to_v2[0]), Some("v1"));
    assert_eq!(to_v2[1], changed);
    let to_v1 = told(&effects, "v1");
    assert_eq!(
        joined_id(&to_v1[0]),
        Some("v2"),
        "the audience it may now see"
    );
    assert_eq!(to_v1[1], changed);
    assert_eq!(told(&effects, "host"), [changed]);
}

#[test]
fn demotion_hides_the_member_from_the_audience() {
    let mut room = webinar();
    join(&mut room, "p", Some(Role::Presenter));
    join(&mut room, "v", None);
    assert!(room.claim_publisher("p"));
    let effects = room.set_role("p", Role::Audience).unwrap();
    let changed = ServerMessage::RoleChanged {
        participant_id: "p".into(),
        role: Role::Audience,
    };
    assert_eq!(
        told(&effects, "v"),
        [
            changed.clone(),
            ServerMessage::ParticipantLeft {
                participant_id: "p".into()
            }
        ]
    );
    assert_eq!(
        told(&effects, "p"),
        [
            changed,
            ServerMessage::ParticipantLeft {
                participant_id: "v".into()
            },
            ServerMessage::AudienceCount { count: 2 }
        ]
    );
    assert_eq!(
        room.set_role("nobody", Role::Host).unwrap_err(),
        ModerationError::UnknownParticipant
    );
}

#[test]
fn a_locked_room_refuses_joins_until_unlocked() {
    let mut room = RoomState::default();
    join(&mut room, "h", Some(Role::Host));
    let effects = room.set_locked(true);
    assert_eq!(
        told(&effects, "h"),
        [ServerMessage::RoomLocked { locked: true }]
    );
    assert_eq!(
        room.join(joining("x", None), CAP).unwrap_err(),
        JoinRefused::Locked
    );
    room.set_locked(false);
    assert!(room.join(joining("x", None), CAP).is_ok());
}

#[test]
fn ending_stops_everything_and_closes_every_session_once() {
    let mut room = RoomState::default();
    join(&mut room, "a", None);
    join(&mut room, "b", None);
    room.publish(track("a", "TR_1", TrackKind::Audio));
    let effects = room.end().expect("ends");
    assert!(matches!(effects.first(), Some(Effect::Stop(t)) if t.info.id == "TR_1"));
    for id in ["a", "b"] {
        assert_eq!(told(&effects, id), [ServerMessage::RoomEnded]);
    }
    assert_eq!(
        orders(&effects),
        [("a".into(), Order::Ended), ("b".into(), Order::Ended)]
    );
    assert!(room.end().is_none(), "only once");
    assert_eq!(
        room.join(joining("c", None), CAP).unwrap_err(),
        JoinRefused::Ended
    );
}

#[test]
fn kicking_orders_the_session_to_close() {
    let mut room = RoomState::default();
    join(&mut room, "a", None);
    let effects = room.kick("a").unwrap();
    assert_eq!(orders(&effects), [("a".into(), Order::Kicked)]);
    assert_eq!(
        room.kick("b").unwrap_err(),
        ModerationError::UnknownParticipant
    );
}

#[test]
fn audience_count_is_announced_on_change_at_most_once_a_second() {
    let t0 = Instant::now();
    let mut room = webinar();
    assert!(
        room.announce_audience_count(t0).is_empty(),
        "nobody to hear it"
    );
    join(&mut room, "v1", None);
    let effects = room.announce_audience_count(t0);
    assert_eq!(
        told(&effects, "v1"),
        [ServerMessage::AudienceCount { count: 1 }]
    );
    assert!(
        told(&effects, "host").is_empty(),
        "staff is told of each member"
    );
    join(&mut room, "v2", None);
    assert!(room
        .announce_audience_count(t0 + Duration::from_millis(999))
        .is_empty());
    let effects = room.announce_audience_count(t0 + Duration::from_secs(1));
    assert_eq!(
        told(&effects, "v1"),
        [ServerMessage::AudienceCount { count: 2 }]
    );
    assert!(
        room.announce_audience_count(t0 + Duration::from_secs(5))
            .is_empty(),
        "unchanged"
    );
}

fn chat_to(effects: &Effects, id: &str) -> Vec<String> {
    told(effects, id)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Chat { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

#[test]
fn audience_chat_reaches_staff_and_the_sender_only() {
    let now = Instant::now();
    let mut room = webinar();
    join(&mut room, "v1", None);
    join(&mut room, "v2", None);
    join(&mut room, "p", Some(Role::Presenter));
    let effects = room.chat("v1", "a question".into(), 0, now).unwrap();
    for reader in ["host", "p", "v1"] {
        assert_eq!(chat_to(&effects, reader), ["a question"], "{reader}");
    }
    assert!(
        chat_to(&effects, "v2").is_empty(),
        "the audience does not see each other"
    );
    let effects = room.chat("host", "an answer".into(), 0, now).unwrap();
    for reader in ["host", "p", "v1", "v2"] {
        assert_eq!(chat_to(&effects, reader), ["an answer"], "{reader}");
    }
    assert_eq!(
        room.chat("nobody", "x".into(), 0, now).unwrap_err(),
        ChatRefused::NotHere
    );
}

#[test]
fn a_rooms_chat_is_capped_for_all_senders_together() {
    let t0 = Instant::now();
    let mut room = RoomState::default();
    join(&mut room, "a", None);
    join(&mut room, "b", None);
    let burst = ROOM_CHAT.burst as usize;
    for i in 0..burst {
        let from = if i % 2 == 0 { "a" } else { "b" };
        assert!(
            room.chat(from, format!("{i}"), 0, t0).is_ok(),
            "message {i}"
        );
    }
    assert_eq!(
        room.chat("a", "busy".into(), 0, t0).unwrap_err(),
        ChatRefused::Busy(ROOM_CHAT)
    );
    let later = t0 + Duration::from_secs_f64(1.0 / ROOM_CHAT.per_second);
    assert!(room.chat("b", "again".into(), 0, later).is_ok());
}

#[test]
fn a_mirror_counts_the_audience_its_rooms_node_counts() {
    let t0 = Instant::now();
    let mut room = webinar();
    join(&mut room, "v1", None);
    room.set_audience_elsewhere(7);
    assert_eq!(room.audience_count(), 7);
    let effects = room.announce_audience_count(t0);
    assert_eq!(
        told(&effects, "v1"),
        [ServerMessage::AudienceCount { count: 7 }]
    );
    // A joiner is told the room's count, not this node's.
    let (_, effects) = join(&mut room, "v2", None);
    assert_eq!(
        told(&effects, "v2"),
        [ServerMessage::AudienceCount { count: 7 }]
    );
}

/// A member on another node: its mailbox cannot publish here.
struct Elsewhere;

impl super::Mailbox for Elsewhere {
    fn tell(&self, _msg: ServerMessage) {}
    fn resubscribe(&self) {}
    fn order(&self, _order: Order) {}
    fn can_publish_here(&self) -> bool {
        false
    }
}

#[test]
fn a_member_that_cannot_publish_here_is_not_promoted() {
    let room = super::Room::new("r".into());
    let welcome = |_| ServerMessage::RoomEnded;
    room.join(
        joining("host", Some(Role::Host)),
        Arc::new(super::testing::Recorder::default()),
        CAP,
        welcome,
    )
    .expect("the host joins");
    room.join(
        joining("edge", Some(Role::Audience)),
        Arc::new(Elsewhere),
        CAP,
        welcome,
    )
    .expect("the edge viewer joins");
    assert_eq!(
        room.set_role("edge", Role::Presenter),
        Err(ModerationError::ElsewhereAudience)
    );
    assert_eq!(room.role_of("edge"), Some(Role::Audience));
    // Roles that do not publish are still given.
    assert_eq!(room.set_role("edge", Role::Audience), Ok(()));
    assert_eq!(room.kick("edge"), Ok(()));
}
