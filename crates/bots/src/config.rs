use std::path::PathBuf;
use std::time::Duration;

use roomcast_protocol::{Role, RoomSettings};
use webrtc::track::track_remote::TrackRemote;

use crate::media_loop::{LoopSource, VideoSize, OPUS_LEVELS_FILE};
use crate::publisher::SIMULCAST_LAYERS;

/// The video codec a bot publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Vp8,
    H264,
}

/// Who the bot is, where it goes and what it publishes.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// `ws://host:port/ws`. A loopback host keeps ICE on loopback too, and an IPv6 address
    /// (`ws://[::1]:port/ws`) keeps it on IPv6.
    pub url: String,
    pub room: String,
    pub name: String,
    pub role: Option<Role>,
    pub token: Option<String>,
    /// Sent with `join`; the server applies it if this join creates the room as a host.
    pub room_settings: Option<RoomSettings>,
    pub publish_audio: bool,
    pub publish_video: Option<VideoCodec>,
    /// Publish the video as three simulcast encodings, rids `q`, `h`, `f` (320x180,
    /// 640x360, 1280x720, each from its own loop) instead of one 640x360 encoding. Such a
    /// bot negotiates the rid header extension, which exposes what it receives to a
    /// webrtc-rs 0.17 race (see `peer_connection::new_peer_connection`): a track whose
    /// packets beat the server's offer can end early.
    pub simulcast: bool,
    /// Publish the video (without simulcast) as a screen share, at 1280x720 (a shared
    /// screen is larger than a camera), instead of a 640x360 camera.
    pub screen_share: bool,
    /// Makes the bot a quieter speaker: added to every RFC 6464 level it sends (in dB below
    /// full scale, so larger is quieter), clamped to 127 (silence).
    pub audio_attenuation_db: u8,
    /// Discontinuous transmission, as Opus DTX: an audio frame whose level is silence
    /// (after the attenuation) is not sent, but one in every 20 (one each 400 ms) is. A
    /// silent participant then costs the server a few packets a second instead of fifty.
    pub dtx: bool,
    /// Where the loops made by `media/make-loops.sh` are.
    pub media_dir: PathBuf,
    /// Bound on each step of joining, publishing and leaving.
    pub connect_timeout: Duration,
    /// How many server messages [`crate::Bot::messages`] keeps; the oldest go first.
    pub message_log_capacity: usize,
    /// Where received tracks go instead of the bot's own counting reader (a cascade relay
    /// forwards their RTP itself).
    pub track_sink: Option<TrackSink>,
    /// Fault injection for tests: the first this many offers from the server go unanswered,
    /// as from a client that hangs mid-negotiation (the server then closes with 4000).
    pub unanswered_server_offers: u32,
}

/// Takes each track the bot receives (`on_track`) and reads it.
#[derive(Clone)]
pub struct TrackSink(pub std::sync::Arc<dyn Fn(std::sync::Arc<TrackRemote>) + Send + Sync>);

impl std::fmt::Debug for TrackSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrackSink")
    }
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
            room_settings: None,
            publish_audio: true,
            publish_video: Some(VideoCodec::Vp8),
            simulcast: false,
            screen_share: false,
            audio_attenuation_db: 0,
            dtx: false,
            media_dir: Self::default_media_dir(),
            connect_timeout: Duration::from_secs(10),
            message_log_capacity: 1024,
            track_sink: None,
            unanswered_server_offers: 0,
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

    /// Room settings to ask for (honoured when this bot creates the room as a host).
    pub fn with_room_settings(mut self, settings: RoomSettings) -> Self {
        self.room_settings = Some(settings);
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

    /// Publish the video (if any) as simulcast layers `q`, `h`, `f`.
    pub fn with_simulcast(mut self, simulcast: bool) -> Self {
        self.simulcast = simulcast;
        self
    }

    /// Publish the video as a 1280x720 screen share instead of a 640x360 camera (without
    /// simulcast).
    pub fn with_screen_share(mut self, screen_share: bool) -> Self {
        self.screen_share = screen_share;
        self
    }

    /// Send audio levels `db` dB quieter than the loop's (the voice activity flag is kept:
    /// a quieter speaker is still speaking).
    pub fn with_audio_attenuation_db(mut self, db: u8) -> Self {
        self.audio_attenuation_db = db;
        self
    }

    /// See [`BotConfig::dtx`].
    pub fn with_dtx(mut self, dtx: bool) -> Self {
        self.dtx = dtx;
        self
    }

    /// The loop files this bot will read from `media_dir` (made by `media/make-loops.sh`).
    pub fn media_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if self.publish_audio {
            files.push(LoopSource::Opus.file_name());
            files.push(OPUS_LEVELS_FILE);
        }
        if let Some(codec) = self.publish_video {
            if self.simulcast {
                files.extend(
                    SIMULCAST_LAYERS
                        .iter()
                        .map(|&(_, size)| LoopSource::Video(codec, size).file_name()),
                );
            } else {
                files.push(LoopSource::Video(codec, self.single_video_size()).file_name());
            }
        }
        files.into_iter().map(|f| self.media_dir.join(f)).collect()
    }

    /// The size of the one video encoding without simulcast.
    pub(crate) fn single_video_size(&self) -> VideoSize {
        if self.screen_share {
            VideoSize::Full
        } else {
            VideoSize::Half
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_files_follow_what_is_published() {
        let names = |config: &BotConfig| -> Vec<String> {
            config
                .media_files()
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        let config = BotConfig::new("ws://127.0.0.1:1/ws", "r", "n").with_media_dir("/m");
        assert_eq!(
            names(&config),
            ["opus-48k.ogg", "opus-48k.levels", "vp8-640x360.ivf"]
        );
        assert!(config.media_files()[0].starts_with("/m"));
        let h264 = config
            .clone()
            .with_publish(false, Some(VideoCodec::H264))
            .with_simulcast(true);
        assert_eq!(
            names(&h264),
            [
                "h264-320x180.h264",
                "h264-640x360.h264",
                "h264-1280x720.h264"
            ]
        );
        for file in BotConfig::new("ws://x/ws", "r", "n")
            .with_simulcast(true)
            .media_files()
        {
            assert!(file.is_file(), "{} is missing", file.display());
        }
        assert!(names(&config.with_publish(false, None)).is_empty());
    }
}
