//! Property tests for the signaling decoder: whatever a client sends, `decode_client_message`
//! answers with a message or a `bad_request` that says what is wrong, and never panics.
use proptest::prelude::*;
use roomcast_protocol::{decode_client_message, ErrorCode};
use serde_json::{Map, Number, Value};

/// Message types a client might send: today's, those being added, and near misses.
const TYPES: &[&str] = &[
    "join",
    "offer",
    "answer",
    "candidate",
    "set_quality",
    "chat",
    "negotiate_request",
    "leave",
    "resume",
    "mute",
    "mute_participant",
    "kick",
    "set_role",
    "lock_room",
    "unlock_room",
    "end_room",
    "Join",
    "",
    "join ",
    "type",
];

/// Field names of every client message, so generated objects often hit real fields.
const FIELDS: &[&str] = &[
    "room",
    "name",
    "role",
    "token",
    "sdp",
    "tracks",
    "mid",
    "source",
    "candidate",
    "sdpMid",
    "sdpMLineIndex",
    "usernameFragment",
    "track_id",
    "quality",
    "text",
    "participant_id",
    "kind",
    "muted",
    "session_token",
    "type",
];

/// Strings that are valid enum values somewhere, plus a few that are not.
const WORDS: &[&str] = &[
    "host",
    "presenter",
    "audience",
    "camera",
    "microphone",
    "screen",
    "off",
    "low",
    "medium",
    "high",
    "audio",
    "video",
    "",
    "ultra",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
    ]
}

/// Arbitrary JSON, biased towards objects whose keys are real field names.
fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        3 => prop::sample::select(FIELDS).prop_map(str::to_owned),
                        1 => ".{0,8}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object with a `type` (usually a known one, sometimes not a string at all) and
/// random fields of random shapes.
fn message_like() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        6 => prop::sample::select(TYPES).prop_map(Value::from),
        1 => json(),
    ];
    let fields = prop::collection::vec((prop::sample::select(FIELDS), json()), 0..6);
    (kind, fields).prop_map(|(kind, fields)| {
        let mut map = Map::new();
        for (name, value) in fields {
            map.insert(name.to_owned(), value);
        }
        map.insert("type".into(), kind);
        Value::Object(map)
    })
}

/// Checks one frame: no panic (proptest reports one as a failure), errors are
/// `bad_request` with a message, and anything accepted survives a round trip.
fn check(text: &str) -> Result<(), TestCaseError> {
    match decode_client_message(text) {
        Ok(message) => {
            let again = serde_json::to_string(&message).expect("a decoded message serializes");
            prop_assert_eq!(decode_client_message(&again), Ok(message));
        }
        Err(e) => {
            prop_assert_eq!(e.code(), ErrorCode::BadRequest);
            prop_assert!(!e.message.trim().is_empty());
        }
    }
    Ok(())
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    prop::option::of(".{0,16}")
}

/// Inserts `value` under `name` when it is `Some`, as a client omitting the field would.
fn put(map: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    if let Some(value) = value {
        map.insert(name.to_owned(), value);
    }
}

fn object(kind: &str, fields: Vec<(&str, Option<Value>)>) -> Value {
    let mut map = Map::new();
    map.insert("type".into(), Value::from(kind));
    for (name, value) in fields {
        put(&mut map, name, value);
    }
    Value::Object(map)
}

/// Well-formed client messages, as a client writes them: every type with fields of the
/// right shape, optional ones sometimes left out. Built as JSON (not as `ClientMessage`
/// values) so the test keeps compiling while message types gain optional fields.
fn well_formed() -> impl Strategy<Value = (&'static str, Value)> {
    let role = prop::sample::select(vec!["host", "presenter", "audience"]).prop_map(Value::from);
    let source = prop::sample::select(vec!["camera", "microphone", "screen", "hologram"])
        .prop_map(Value::from);
    let quality = prop::sample::select(vec!["off", "low", "medium", "high"]).prop_map(Value::from);
    let kind = prop::sample::select(vec!["audio", "video"]).prop_map(Value::from);
    let text = || ".{0,24}".prop_map(Value::String);
    let opt_text = || opt_string().prop_map(|s| s.map(Value::String));
    let candidate = (
        ".{0,40}",
        opt_string(),
        prop::option::of(any::<u16>()),
        opt_string(),
    )
        .prop_map(|(candidate, mid, index, ufrag)| {
            let mut map = Map::new();
            map.insert("candidate".into(), Value::String(candidate));
            map.insert("sdpMid".into(), mid.map_or(Value::Null, Value::String));
            put(&mut map, "sdpMLineIndex", index.map(Value::from));
            put(&mut map, "usernameFragment", ufrag.map(Value::String));
            Value::Object(map)
        });
    let settings = (
        any::<bool>(),
        prop::option::of(0u32..2000),
        prop::option::of(0u32..100),
    )
        .prop_map(|(webinar, max_participants, max_publishers)| {
            let mut map = Map::new();
            map.insert("webinar".into(), Value::Bool(webinar));
            put(
                &mut map,
                "max_participants",
                max_participants.map(Value::from),
            );
            put(&mut map, "max_publishers", max_publishers.map(Value::from));
            Value::Object(map)
        });
    let tracks = prop::collection::vec(
        (".{0,4}", source).prop_map(|(mid, source)| {
            let mut map = Map::new();
            map.insert("mid".into(), Value::String(mid));
            map.insert("source".into(), source);
            Value::Object(map)
        }),
        0..4,
    )
    .prop_map(Value::Array);
    prop_oneof![
        (
            text(),
            text(),
            prop::option::of(role.clone()),
            opt_text(),
            prop::option::of(settings)
        )
            .prop_map(|(room, name, role, token, settings)| (
                "join",
                object(
                    "join",
                    vec![
                        ("room", Some(room)),
                        ("name", Some(name)),
                        ("role", role),
                        ("token", token),
                        ("room_settings", settings),
                    ],
                )
            )),
        (text(), prop::option::of(tracks)).prop_map(|(sdp, tracks)| (
            "offer",
            object("offer", vec![("sdp", Some(sdp)), ("tracks", tracks)])
        )),
        text().prop_map(|sdp| ("answer", object("answer", vec![("sdp", Some(sdp))]))),
        prop::option::of(candidate).prop_map(|c| (
            "candidate",
            object(
                "candidate",
                vec![("candidate", Some(c.unwrap_or(Value::Null)))]
            )
        )),
        (text(), quality).prop_map(|(track_id, quality)| (
            "set_quality",
            object(
                "set_quality",
                vec![("track_id", Some(track_id)), ("quality", Some(quality))],
            )
        )),
        text().prop_map(|t| ("chat", object("chat", vec![("text", Some(t))]))),
        Just(("negotiate_request", object("negotiate_request", vec![]))),
        Just(("leave", object("leave", vec![]))),
        // Types added by later protocol versions; checked only when the decoder knows them.
        (text(), any::<bool>()).prop_map(|(track_id, muted)| (
            "mute",
            object(
                "mute",
                vec![
                    ("track_id", Some(track_id)),
                    ("muted", Some(Value::Bool(muted)))
                ],
            )
        )),
        (text(), kind, prop::option::of(any::<bool>())).prop_map(|(id, kind, muted)| (
            "mute_participant",
            object(
                "mute_participant",
                vec![
                    ("participant_id", Some(id)),
                    ("kind", Some(kind)),
                    ("muted", muted.map(Value::Bool)),
                ],
            )
        )),
        text().prop_map(|id| ("kick", object("kick", vec![("participant_id", Some(id))]))),
        (text(), role).prop_map(|(id, role)| (
            "set_role",
            object(
                "set_role",
                vec![("participant_id", Some(id)), ("role", Some(role))],
            )
        )),
        prop::sample::select(vec!["lock_room", "unlock_room", "end_room"])
            .prop_map(|t| (t, object(t, vec![]))),
        text().prop_map(|token| (
            "resume",
            object("resume", vec![("session_token", Some(token))])
        )),
    ]
}

/// The message types of protocol version 1 that every decoder must accept.
const CORE: &[&str] = &[
    "join",
    "offer",
    "answer",
    "candidate",
    "set_quality",
    "chat",
    "negotiate_request",
    "leave",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn json_looking_text_never_panics(text in r#"[\{\}\[\]":,0-9a-z_ \\.-]{0,64}"#) {
        check(&text)?;
    }

    #[test]
    fn arbitrary_json_never_panics(value in json()) {
        check(&value.to_string())?;
    }

    #[test]
    fn message_shaped_json_never_panics(value in message_like()) {
        check(&value.to_string())?;
    }

    #[test]
    fn truncated_messages_never_panic(value in message_like(), cut in any::<prop::sample::Index>()) {
        let text = value.to_string();
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        check(&text[..at])?;
    }

    #[test]
    fn valid_messages_round_trip((kind, value) in well_formed()) {
        let decoded = decode_client_message(&value.to_string());
        if CORE.contains(&kind) {
            prop_assert!(decoded.is_ok(), "{} rejected: {:?}", value, decoded);
        }
        if let Ok(message) = decoded {
            let text = serde_json::to_string(&message).expect("serializes");
            let again: Value = serde_json::from_str(&text).expect("JSON");
            prop_assert_eq!(again.get("type"), Some(&Value::from(kind)));
            prop_assert_eq!(decode_client_message(&text), Ok(message));
        }
    }
}
