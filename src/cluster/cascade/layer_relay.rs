//! The relays of a mirror beyond the first: one hidden participant in the room on its node
//! per simulcast layer above the lowest that this edge's viewers want. Each asks the owner
//! for its own layer of every video track (`set_quality`, from the mirror's demand) and
//! nothing of the audio (which the first relay carries), so each of its video streams is
//! one layer, with its own SSRC, fed into that layer's input of the mirrored track. The
//! owner sends an edge one copy per layer in use there, and the edge's viewers switch
//! layers as under a real simulcast publisher.
//!
//! Which layer a stream carries is what the owner says (`track_layer` with `layer` and
//! `seq`): until it says this relay's layer (at first it may send a lower one while the
//! layer starts), the stream's packets do not enter the input, so a layer's input only
//! ever gets that layer ([`super::layer_gate`]).
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use roomcast_bots::{Bot, BotConfig, MessageCursor, TrackSink};
use roomcast_protocol::{ClientMessage, Participant, Quality, Role, ServerMessage, TrackKind};
use tokio::sync::mpsc;

use super::layer_gate::Label;
use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::track::track_remote::TrackRemote;

/// How long connecting and joining the owner may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Server messages a relay keeps unread at most (it reads them as they come).
pub const MESSAGE_LOG: usize = 8192;
/// Per track, what the owner says it sends one relay now ([`Label`], packed).
#[derive(Default)]
pub struct Labels(Mutex<HashMap<String, Arc<AtomicU32>>>);

impl Labels {
    /// The label of `track_id`'s stream (shared with the task that reads it).
    pub fn of(&self, track_id: &str) -> Arc<AtomicU32> {
        Arc::clone(
            self.0
                .lock()
                .entry(track_id.to_owned())
                .or_insert_with(|| Arc::new(AtomicU32::new(Label::default().pack()))),
        )
    }

    pub fn set(&self, track_id: &str, layer: Option<u8>, seq: Option<u16>) {
        self.of(track_id)
            .store(Label { layer, seq }.pack(), Ordering::Relaxed);
    }

    pub fn forget(&self, track_id: &str) {
        self.0.lock().remove(track_id);
    }
}

/// The quality that asks the owner for `layer`, or nothing.
pub fn quality_of(layer: Option<u8>) -> Quality {
    match layer {
        None => Quality::Off,
        Some(0) => Quality::Low,
        Some(1) => Quality::Medium,
        Some(_) => Quality::High,
    }
}

/// A relay's configuration: a hidden audience member of the room on its node whose
/// received tracks go to `sink`.
pub fn relay_config(
    url: String,
    room: &str,
    name: String,
    sink: impl Fn(Arc<TrackRemote>) + Send + Sync + 'static,
) -> BotConfig {
    let mut config = BotConfig::new(url, room, name)
        .with_publish(false, None)
        .with_role(Role::Audience)
        .with_connect_timeout(CONNECT_TIMEOUT);
    config.message_log_capacity = MESSAGE_LOG;
    config.track_sink = Some(TrackSink(Arc::new(sink)));
    config
}

/// One relay carrying one simulcast layer.
pub struct LayerRelay {
    pub layer: u8,
    bot: Bot,
    pub pc: Arc<RTCPeerConnection>,
    pub labels: Labels,
}

impl LayerRelay {
    /// Joins the room over `url` (the owner's relay URL); its streams go to `media`, each
    /// with this relay's layer.
    pub async fn open(
        url: String,
        room: &str,
        name: String,
        layer: u8,
        media: mpsc::UnboundedSender<(u8, Arc<TrackRemote>)>,
    ) -> anyhow::Result<Arc<LayerRelay>> {
        let config = relay_config(url, room, name, move |remote| {
            let _ = media.send((layer, remote));
        });
        let bot = Bot::join(config).await?;
        Ok(Arc::new(LayerRelay {
            layer,
            pc: bot.peer_connection(),
            bot,
            labels: Labels::default(),
        }))
    }

    /// Reads the owner's messages until the relay's connection ends or `closed`: which
    /// layer each stream carries, and the audio tracks to ask nothing of.
    pub async fn run(&self, closed: CancellationToken) {
        let mut cursor = MessageCursor::START;
        loop {
            let msg = tokio::select! {
                _ = closed.cancelled() => break,
                msg = self.bot.next_message(&mut cursor) => match msg {
                    Ok(msg) => msg,
                    Err(_) => break,
                },
            };
            match msg {
                ServerMessage::TrackLayer {
                    track_id,
                    layer,
                    seq,
                    ..
                } => self.labels.set(&track_id, layer, seq),
                ServerMessage::Joined { participants, .. } => {
                    for p in participants {
                        self.no_audio_of(p).await;
                    }
                }
                ServerMessage::ParticipantJoined { participant } => {
                    self.no_audio_of(participant).await
                }
                ServerMessage::TrackPublished { track, .. } if track.kind == TrackKind::Audio => {
                    self.ask(track.id, Quality::Off).await
                }
                ServerMessage::TrackUnpublished { track_id, .. } => self.labels.forget(&track_id),
                ServerMessage::RoomEnded | ServerMessage::Reconnect { .. } => break,
                _ => {}
            }
        }
    }

    /// The first relay carries the audio: this one asks for none of it.
    async fn no_audio_of(&self, p: Participant) {
        for track in p.tracks {
            if track.kind == TrackKind::Audio {
                self.ask(track.id, Quality::Off).await;
            }
        }
    }

    /// Asks the owner for `quality` of a track on this relay.
    pub async fn ask(&self, track_id: String, quality: Quality) {
        let _ = self
            .bot
            .send(&ClientMessage::SetQuality { track_id, quality })
            .await;
    }

    pub async fn leave(&self) {
        let _ = self.bot.send(&ClientMessage::Leave).await;
    }
}
