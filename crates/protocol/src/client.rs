//! Client → server messages, and the decoder that turns any frame into one or a clear error.
use serde::{Deserialize, Serialize};

use crate::{ErrorCode, IceCandidate, Quality, Role, RoomSettings, TrackKind, TrackSource};

/// One published m-line and what it carries (`offer.tracks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedMid {
    pub mid: String,
    pub source: TrackSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Join {
        room: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<Role>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// (roomcast) Honoured only when this join creates the room and the joiner is a
        /// host; ignored otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_settings: Option<RoomSettings>,
    },
    Offer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tracks: Vec<PublishedMid>,
    },
    Answer {
        sdp: String,
    },
    Candidate {
        /// `None` is end of candidates.
        candidate: Option<IceCandidate>,
    },
    SetQuality {
        track_id: String,
        quality: Quality,
    },
    Chat {
        text: String,
    },
    NegotiateRequest,
    Leave,
    /// (roomcast) The owner of a track mutes or unmutes it.
    Mute {
        track_id: String,
        muted: bool,
    },
    /// (roomcast, host only) Mutes (or, with `muted: false`, unmutes) every track of
    /// `kind` that a participant publishes.
    MuteParticipant {
        participant_id: String,
        kind: TrackKind,
        #[serde(default = "yes")]
        muted: bool,
    },
    /// (roomcast, host only) Removes a participant from the room.
    Kick {
        participant_id: String,
    },
    /// (roomcast, host only) Gives a participant another role.
    SetRole {
        participant_id: String,
        role: Role,
    },
    /// (roomcast, host only) No new joins until `unlock_room`.
    LockRoom,
    /// (roomcast, host only)
    UnlockRoom,
    /// (roomcast, host only) Ends the room for everyone.
    EndRoom,
    /// (roomcast) Sent first on a new WebSocket instead of `join`: takes back the session
    /// whose `joined` (or latest `resumed`) carried this token, if its grace period has not
    /// run out since its WebSocket dropped.
    Resume {
        session_token: String,
    },
}

fn yes() -> bool {
    true
}

/// Why a frame is not a valid client message; always answered with `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub message: String,
}

impl DecodeError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::BadRequest
    }
}

/// Every `type` the decoder accepts: [`ClientMessage`]'s variants, as serde names them (a
/// test holds the two together).
const KNOWN_TYPES: &[&str] = &[
    "join",
    "offer",
    "answer",
    "candidate",
    "set_quality",
    "chat",
    "negotiate_request",
    "leave",
    "mute",
    "mute_participant",
    "kick",
    "set_role",
    "lock_room",
    "unlock_room",
    "end_room",
    "resume",
];

/// Decodes one text frame. Distinguishes malformed JSON, a missing or unknown `type`, and
/// fields of the wrong shape, so the sender learns what to fix.
pub fn decode_client_message(text: &str) -> Result<ClientMessage, DecodeError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| DecodeError {
        message: format!("malformed JSON: {e}"),
    })?;
    let Some(kind) = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
    else {
        return Err(DecodeError {
            message: "message has no string \"type\" field".into(),
        });
    };
    if !KNOWN_TYPES.contains(&kind.as_str()) {
        let shown: String = kind.chars().take(40).collect();
        return Err(DecodeError {
            message: format!("unknown message type \"{shown}\""),
        });
    }
    serde_json::from_value(value).map_err(|e| DecodeError {
        message: format!("invalid \"{kind}\" message: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_join_with_defaults() {
        let m =
            decode_client_message(r#"{"type":"join","room":"r","name":"n","extra":1}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Join {
                room: "r".into(),
                name: "n".into(),
                role: None,
                token: None,
                room_settings: None,
            }
        );
        let m = decode_client_message(
            r#"{"type":"join","room":"r","name":"n","role":"host","room_settings":{"webinar":true,"max_publishers":2}}"#,
        )
        .unwrap();
        let ClientMessage::Join { room_settings, .. } = m else {
            panic!("not a join: {m:?}")
        };
        assert_eq!(
            room_settings,
            Some(RoomSettings {
                webinar: true,
                max_participants: None,
                max_publishers: Some(2),
            })
        );
    }

    #[test]
    fn decodes_moderation() {
        assert_eq!(
            decode_client_message(
                r#"{"type":"mute_participant","participant_id":"PA_1","kind":"audio"}"#
            )
            .unwrap(),
            ClientMessage::MuteParticipant {
                participant_id: "PA_1".into(),
                kind: TrackKind::Audio,
                muted: true,
            }
        );
        assert_eq!(
            decode_client_message(r#"{"type":"set_role","participant_id":"p","role":"audience"}"#)
                .unwrap(),
            ClientMessage::SetRole {
                participant_id: "p".into(),
                role: Role::Audience,
            }
        );
        assert_eq!(
            decode_client_message(r#"{"type":"mute","track_id":"TR_1","muted":false}"#).unwrap(),
            ClientMessage::Mute {
                track_id: "TR_1".into(),
                muted: false,
            }
        );
        for unit in ["lock_room", "unlock_room", "end_room"] {
            decode_client_message(&format!(r#"{{"type":"{unit}"}}"#)).unwrap();
        }
        assert!(decode_client_message(r#"{"type":"kick"}"#).is_err());
        assert!(decode_client_message(
            r#"{"type":"set_role","participant_id":"p","role":"admin"}"#
        )
        .is_err());
    }

    #[test]
    fn decodes_null_candidate_and_browser_candidate() {
        let m = decode_client_message(r#"{"type":"candidate","candidate":null}"#).unwrap();
        assert_eq!(m, ClientMessage::Candidate { candidate: None });
        let m = decode_client_message(
            r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abc"}}"#,
        )
        .unwrap();
        let ClientMessage::Candidate { candidate: Some(c) } = m else {
            panic!("not a candidate: {m:?}")
        };
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_mline_index, Some(0));
    }

    #[test]
    fn offer_tracks_default_to_empty_and_unknown_source_is_unknown() {
        let m = decode_client_message(r#"{"type":"offer","sdp":"v=0"}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Offer {
                sdp: "v=0".into(),
                tracks: vec![]
            }
        );
        let m = decode_client_message(
            r#"{"type":"offer","sdp":"v=0","tracks":[{"mid":"1","source":"hologram"}]}"#,
        )
        .unwrap();
        let ClientMessage::Offer { tracks, .. } = m else {
            panic!()
        };
        assert_eq!(tracks[0].source, TrackSource::Unknown);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(decode_client_message("{nope")
            .unwrap_err()
            .message
            .contains("malformed JSON"));
        assert!(decode_client_message("[]")
            .unwrap_err()
            .message
            .contains("no string"));
        assert!(decode_client_message(r#"{"type":"dance"}"#)
            .unwrap_err()
            .message
            .contains("unknown message type"));
        assert!(decode_client_message(r#"{"type":"join","room":5}"#)
            .unwrap_err()
            .message
            .contains("invalid \"join\""));
        assert!(decode_client_message(
            r#"{"type":"set_quality","track_id":"t","quality":"ultra"}"#
        )
        .is_err());
    }

    #[test]
    fn decodes_resume() {
        assert_eq!(
            decode_client_message(r#"{"type":"resume","session_token":"abc"}"#).unwrap(),
            ClientMessage::Resume {
                session_token: "abc".into()
            }
        );
        assert!(decode_client_message(r#"{"type":"resume"}"#).is_err());
    }

    #[test]
    fn known_types_are_the_enums_variants() {
        // serde lists the variants it knows when it meets one it does not.
        let unknown = serde_json::from_value::<ClientMessage>(serde_json::json!({"type": "?"}))
            .expect_err("not a variant")
            .to_string();
        let listed: Vec<&str> = unknown
            .split_once("expected one of ")
            .unwrap_or_else(|| panic!("serde's message changed: {unknown}"))
            .1
            .split(", ")
            .map(|v| v.trim_matches('`'))
            .collect();
        assert_eq!(listed, KNOWN_TYPES);
    }

    #[test]
    fn unit_messages_decode() {
        assert_eq!(
            decode_client_message(r#"{"type":"leave"}"#).unwrap(),
            ClientMessage::Leave
        );
        assert_eq!(
            decode_client_message(r#"{"type":"negotiate_request"}"#).unwrap(),
            ClientMessage::NegotiateRequest
        );
    }
}
