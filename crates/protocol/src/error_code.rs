use serde::{Deserialize, Serialize};

/// Machine-readable `code` of an `error` message. Stable: clients branch on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed JSON, an unknown `type`, or fields of the wrong shape.
    BadRequest,
    /// A message that needs a joined participant arrived before `join`.
    NotJoined,
    /// A second `join` on the same connection.
    AlreadyJoined,
    /// A message not valid in the current negotiation state (e.g. an answer with no offer).
    InvalidState,
    RoomFull,
    Unauthorized,
    Forbidden,
    /// An SDP that could not be parsed or applied.
    BadSdp,
    UnknownTrack,
    /// A frame over the size limit; the connection is closed after this.
    FrameTooLarge,
    /// Too many messages too fast; the connection is closed after this.
    RateLimited,
    ServerShutdown,
    /// Something failed inside the server; the message says what.
    InternalError,
    /// A moderation message names a participant who is not in the room.
    UnknownParticipant,
    /// A host removed this participant; the connection is closed after this.
    Kicked,
    /// The room is locked: no new joins.
    RoomLocked,
    /// `resume` named no session that can be resumed (unknown token, or its grace period
    /// ran out and it left). The connection stays open: `join` afresh.
    SessionExpired,
    /// A limit on what one participant (or one room) may create or send refused this
    /// request: tracks, m-lines, SDP bytes, ICE candidates, chat messages per second. Nothing
    /// of it was applied; the connection stays open.
    LimitExceeded,
    /// (clusters) The room is not on this node and the cluster cannot place it now (its
    /// store is unreachable, or no node takes new rooms). Nothing was created; the
    /// connection stays open for another `join`.
    ClusterUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::BadSdp => "bad_sdp",
            ErrorCode::UnknownTrack => "unknown_track",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ServerShutdown => "server_shutdown",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::UnknownParticipant => "unknown_participant",
            ErrorCode::Kicked => "kicked",
            ErrorCode::RoomLocked => "room_locked",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::ClusterUnavailable => "cluster_unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_serde() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::NotJoined,
            ErrorCode::AlreadyJoined,
            ErrorCode::InvalidState,
            ErrorCode::RoomFull,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::BadSdp,
            ErrorCode::UnknownTrack,
            ErrorCode::FrameTooLarge,
            ErrorCode::RateLimited,
            ErrorCode::ServerShutdown,
            ErrorCode::InternalError,
            ErrorCode::UnknownParticipant,
            ErrorCode::Kicked,
            ErrorCode::RoomLocked,
            ErrorCode::SessionExpired,
            ErrorCode::LimitExceeded,
            ErrorCode::ClusterUnavailable,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
