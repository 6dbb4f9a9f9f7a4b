//! The nouns the contract talks about: participants, tracks, roles, ICE servers.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Host,
    #[default]
    Presenter,
    Audience,
}

impl Role {
    pub fn can_publish(self) -> bool {
        !matches!(self, Role::Audience)
    }

    /// Hosts may moderate (mute, kick, change roles, lock and end the room).
    pub fn can_moderate(self) -> bool {
        matches!(self, Role::Host)
    }

    /// Hosts and presenters are announced to everyone and see the whole room; the audience
    /// is announced only to them and sees only them.
    pub fn is_audience(self) -> bool {
        matches!(self, Role::Audience)
    }
}

/// (roomcast) What the first host asks of a room it creates (`join.room_settings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RoomSettings {
    /// A webinar: a `join` that names no `role` joins as `audience`.
    #[serde(default)]
    pub webinar: bool,
    /// At most this many participants (further joins get `room_full`); never more than
    /// the server's own limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_participants: Option<usize>,
    /// At most this many participants publishing at once; the offer of one more gets
    /// `forbidden` and its sending m-lines answered inactive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_publishers: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Video,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    Camera,
    Microphone,
    Screen,
    /// Anything a client names that the contract does not know.
    #[serde(other)]
    Unknown,
}

impl TrackSource {
    /// What an m-line published without a `tracks` entry is.
    pub fn default_for(kind: TrackKind) -> Self {
        match kind {
            TrackKind::Audio => TrackSource::Microphone,
            TrackKind::Video => TrackSource::Camera,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    pub id: String,
    pub kind: TrackKind,
    pub source: TrackSource,
    pub simulcast: bool,
    /// (roomcast) The server does not forward the track: its owner (`mute`) or a host
    /// (`mute_participant`) muted it. Absent means `false`.
    #[serde(default)]
    pub muted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub tracks: Vec<Track>,
}

/// An `RTCIceServer` as a browser takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Exactly the browser's `RTCIceCandidateInit`, so it passes straight to `addIceCandidate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IceCandidate {
    #[serde(default)]
    pub candidate: String,
    #[serde(rename = "sdpMid", default)]
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default)]
    pub sdp_mline_index: Option<u16>,
    #[serde(rename = "usernameFragment", default)]
    pub username_fragment: Option<String>,
}

impl IceCandidate {
    /// `null` and an empty `candidate` string both mean end of candidates.
    pub fn is_end_of_candidates(&self) -> bool {
        self.candidate.trim().is_empty()
    }
}

/// The most a subscriber wants of a simulcast track.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Off,
    Low,
    Medium,
    #[default]
    High,
}
