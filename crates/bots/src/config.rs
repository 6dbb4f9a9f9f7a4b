use std::path::PathBuf;
use std::time::Duration;

use roomcast_protocol::Role;

/// The video codec a bot publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Vp8,
    H264,
}

/// Who the bot is, where it goes and what it publishes.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// `ws://host:port/ws`. A loopback host keeps ICE on loopback too.
    pub url: String,
    pub room: String,
    pub name: String,
    pub role: Option<Role>,
    pub token: Option<String>,
    pub publish_audio: bool,
    pub publish_video: Option<VideoCodec>,
    /// Where the loops made by `media/make-loops.sh` are.
    pub media_dir: PathBuf,
    /// Bound on each step of joining, publishing and leaving.
    pub connect_timeout: Duration,
    /// How many server messages [`crate::Bot::messages`] keeps; the oldest go first.
    pub message_log_capacity: usize,
}

impl BotConfig {
    /// A presenter that publishes audio and VP8 video from the repository's `media/`.
    pub fn new(url: impl Into<String>, room: impl Into<String>, name: impl Into<String>) -> Self {
        BotConfig {
            url: url.into(),
            room: room.into(),
            name: name.into(),
            role: None,
            token: None,
            publish_audio: true,
            publish_video: Some(VideoCodec::Vp8),
            media_dir: Self::default_media_dir(),
            connect_timeout: Duration::from_secs(10),
            message_log_capacity: 1024,
        }
    }

    /// The repository's `media/` directory, as seen from this crate's sources.
    pub fn default_media_dir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../media"))
    }

    pub fn with_role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// What to publish; `(false, None)` makes a pure subscriber.
    pub fn with_publish(mut self, audio: bool, video: Option<VideoCodec>) -> Self {
        self.publish_audio = audio;
        self.publish_video = video;
        self
    }

    pub fn with_media_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.media_dir = dir.into();
        self
    }

    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}
