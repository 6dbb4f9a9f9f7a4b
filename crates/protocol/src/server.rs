//! Server → client messages.
use serde::{Deserialize, Serialize};

use crate::{ErrorCode, IceCandidate, IceServer, Participant, Role, RoomSettings, Track};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Joined {
        participant_id: String,
        room: String,
        participants: Vec<Participant>,
        ice_servers: Vec<IceServer>,
        /// (roomcast) The role this participant got (a token's, or `audience` in a
        /// webinar for a `join` that named none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<Role>,
        /// (roomcast) The room's settings, as its first host set them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_settings: Option<RoomSettings>,
        /// (roomcast) Keep it: after a dropped WebSocket, `resume` with it on a new one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<String>,
    },
    /// (roomcast) The answer to a successful `resume`: the session continues on this
    /// WebSocket with its PeerConnection and subscriptions. `participants` is the room now
    /// (as `joined` lists it), for reconciling what was missed; `session_token` replaces
    /// the old one.
    Resumed {
        participant_id: String,
        room: String,
        participants: Vec<Participant>,
        role: Role,
        session_token: String,
        /// (roomcast) STUN/TURN servers as in `joined`, with fresh TURN credentials (they
        /// expire); absent when the server has none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    /// (roomcast) To a publisher: its m-line `mid` is now published as `track` (the others
    /// get `track_published`). This is how a client learns its own track ids, e.g. for `mute`.
    Published {
        mid: String,
        track: Track,
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
    /// Extension: the server stopped forwarding this video track to this subscriber
    /// because even its lowest layer does not fit the subscriber's bandwidth.
    TrackPaused {
        track_id: String,
        reason: PauseReason,
    },
    /// Extension: a track paused by `track_paused` is forwarded again.
    TrackResumed {
        track_id: String,
    },
    /// (roomcast) To a subscriber: its connection negotiated no codec that can carry this
    /// track (e.g. an H.264-only publisher and a VP8-only browser), so nothing of it will
    /// arrive. `codec` is the MIME type the publisher sends, `receivable` the ones this
    /// subscriber takes for that kind. Sent once per track.
    TrackUnsupported {
        track_id: String,
        codec: String,
        receivable: Vec<String>,
    },
    /// Extension, to a publisher: the simulcast layers (rids) of its track that some
    /// subscriber takes. Layers not listed may be paused until a later message lists them.
    PublisherLayers {
        track_id: String,
        /// The publisher's own m-line of the track (it is not told its track ids otherwise).
        mid: String,
        rids: Vec<String>,
    },
    /// Extension, to a subscriber: the simulcast layer (rid) of a track it now receives;
    /// `None` while it receives none (off, paused, or waiting for the first keyframe).
    TrackLayer {
        track_id: String,
        rid: Option<String>,
        /// (roomcast, clusters) The layer's index, 0 the lowest: what another node's
        /// cascade relay labels the packets it receives with. Absent without a layer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layer: Option<u8>,
        /// (roomcast, clusters) The RTP sequence number, on this subscriber's stream of the
        /// track, of the keyframe the layer started at: the packets from it on are the
        /// layer (a cascade relay takes the ones before it as the previous layer's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u16>,
    },
    /// Extension, to the room: who is speaking, loudest first.
    ActiveSpeakers {
        speakers: Vec<Speaker>,
    },
    /// Extension, to the audience: how many audience members the room has (they are not
    /// announced one by one). At most once a second, only on change.
    AudienceCount {
        count: usize,
    },
    /// Extension, to the room: a track was muted or unmuted (it is not forwarded while muted).
    TrackMuted {
        participant_id: String,
        track_id: String,
        muted: bool,
    },
    /// Extension, to the room: a host changed a participant's role.
    RoleChanged {
        participant_id: String,
        role: Role,
    },
    /// Extension, to the room: a host locked or unlocked it.
    RoomLocked {
        locked: bool,
    },
    /// Extension, to the room: a host ended it; the server closes every connection next.
    RoomEnded,
    /// Extension (clusters): this server is going away (a node draining). The server closes
    /// the connection (1001) next; the client connects again and sends a fresh `join`, not
    /// `resume`, which places it on a node that stays. `url`, when given, is the signaling
    /// URL of a node that serves (for a client that reached this node directly, not through
    /// a load balancer: this node's URL is about to stop answering).
    Reconnect {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
}

/// Why a track was paused for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// Its lowest layer does not fit the subscriber's estimated bandwidth.
    Bandwidth,
}

/// One entry of `active_speakers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speaker {
    pub participant_id: String,
    /// Loudness over the last interval, 0.0 (silence) to 1.0 (full scale), linear.
    pub level: f32,
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
            ServerMessage::PublisherLayers {
                track_id: "TR_1".into(),
                mid: "1".into(),
                rids: vec!["q".into()]
            }
            .to_json(),
            r#"{"type":"publisher_layers","track_id":"TR_1","mid":"1","rids":["q"]}"#
        );
        assert_eq!(
            ServerMessage::TrackLayer {
                track_id: "TR_1".into(),
                rid: Some("h".into()),
                layer: None,
                seq: None,
            }
            .to_json(),
            r#"{"type":"track_layer","track_id":"TR_1","rid":"h"}"#
        );
        assert_eq!(
            ServerMessage::TrackLayer {
                track_id: "TR_1".into(),
                rid: None,
                layer: None,
                seq: None,
            }
            .to_json(),
            r#"{"type":"track_layer","track_id":"TR_1","rid":null}"#
        );
        assert_eq!(
            ServerMessage::TrackLayer {
                track_id: "TR_1".into(),
                rid: Some("f".into()),
                layer: Some(2),
                seq: Some(513),
            }
            .to_json(),
            r#"{"type":"track_layer","track_id":"TR_1","rid":"f","layer":2,"seq":513}"#
        );
        assert_eq!(
            ServerMessage::TrackUnsupported {
                track_id: "TR_1".into(),
                codec: "video/H264".into(),
                receivable: vec!["video/VP8".into()],
            }
            .to_json(),
            r#"{"type":"track_unsupported","track_id":"TR_1","codec":"video/H264","receivable":["video/VP8"]}"#
        );
        assert_eq!(
            ServerMessage::TrackPaused {
                track_id: "TR_1".into(),
                reason: PauseReason::Bandwidth
            }
            .to_json(),
            r#"{"type":"track_paused","track_id":"TR_1","reason":"bandwidth"}"#
        );
        assert_eq!(
            ServerMessage::TrackMuted {
                participant_id: "PA_1".into(),
                track_id: "TR_2".into(),
                muted: true
            }
            .to_json(),
            r#"{"type":"track_muted","participant_id":"PA_1","track_id":"TR_2","muted":true}"#
        );
        assert_eq!(
            ServerMessage::AudienceCount { count: 3 }.to_json(),
            r#"{"type":"audience_count","count":3}"#
        );
        assert_eq!(
            ServerMessage::RoomEnded.to_json(),
            r#"{"type":"room_ended"}"#
        );
        assert_eq!(
            ServerMessage::Reconnect {
                reason: "node_draining".into(),
                url: None,
            }
            .to_json(),
            r#"{"type":"reconnect","reason":"node_draining"}"#
        );
        assert_eq!(
            ServerMessage::Reconnect {
                reason: "node_draining".into(),
                url: Some("ws://10.0.0.2:8080/ws".into()),
            }
            .to_json(),
            r#"{"type":"reconnect","reason":"node_draining","url":"ws://10.0.0.2:8080/ws"}"#
        );
        assert_eq!(
            ServerMessage::RoomLocked { locked: true }.to_json(),
            r#"{"type":"room_locked","locked":true}"#
        );
        assert_eq!(
            ServerMessage::Resumed {
                participant_id: "PA_1".into(),
                room: "r".into(),
                participants: vec![],
                role: Role::Presenter,
                session_token: "t".into(),
                ice_servers: vec![],
            }
            .to_json(),
            r#"{"type":"resumed","participant_id":"PA_1","room":"r","participants":[],"role":"presenter","session_token":"t"}"#
        );
        assert_eq!(
            ServerMessage::Candidate { candidate: None }.to_json(),
            r#"{"type":"candidate","candidate":null}"#
        );
    }
}
