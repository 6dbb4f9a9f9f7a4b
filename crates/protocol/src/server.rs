//! Server → client messages.
use serde::{Deserialize, Serialize};

use crate::{ErrorCode, IceCandidate, IceServer, Participant, Track};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Joined {
        participant_id: String,
        room: String,
        participants: Vec<Participant>,
        ice_servers: Vec<IceServer>,
    },
    ParticipantJoined {
        participant: Participant,
    },
    ParticipantLeft {
        participant_id: String,
    },
    TrackPublished {
        participant_id: String,
        track: Track,
    },
    TrackUnpublished {
        participant_id: String,
        track_id: String,
    },
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    Candidate {
        candidate: Option<IceCandidate>,
    },
    NegotiateGrant,
    Chat {
        participant_id: String,
        name: String,
        text: String,
        ts: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

impl ServerMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }

    /// Serializes to the JSON text of one frame.
    pub fn to_json(&self) -> String {
        // Every field is a plain string, number, bool or list of those: serialization
        // cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal_error","message":"encoding failed"}"#.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes() {
        assert_eq!(
            ServerMessage::NegotiateGrant.to_json(),
            r#"{"type":"negotiate_grant"}"#
        );
        assert_eq!(
            ServerMessage::error(ErrorCode::BadSdp, "x").to_json(),
            r#"{"type":"error","code":"bad_sdp","message":"x"}"#
        );
        assert_eq!(
            ServerMessage::Candidate { candidate: None }.to_json(),
            r#"{"type":"candidate","candidate":null}"#
        );
    }
}
