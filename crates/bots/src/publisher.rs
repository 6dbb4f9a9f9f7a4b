//! What a bot publishes: one `TrackLocalStaticSample` per loop, paced in real time by its own
//! interval, plus a task per sender that reads RTCP (NACKs are answered by the interceptors;
//! PLI and FIR make the loop jump to its next keyframe, as an encoder would send one).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use roomcast_protocol::{TrackKind, TrackSource};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, Instrument, Span};
use webrtc::media::Sample;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::extension::abs_send_time_extension::AbsSendTimeExtension;
use webrtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use webrtc::rtp::extension::HeaderExtension;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;

use crate::media_loop::{self, LoopSource, MediaLoop};
use crate::{peer_connection, BotConfig, BotError};

/// Below this RFC 6464 level (in -dBov) the audio-level extension flags voice activity.
const VOICE_LEVEL: u8 = 60;
const RTCP_READ_BUFFER: usize = 1500;

/// A track ready to be offered.
pub(crate) struct OutgoingTrack {
    pub track: Arc<TrackLocalStaticSample>,
    pub kind: TrackKind,
    pub source: TrackSource,
    pub codec: RTCRtpCodecParameters,
    media: Arc<MediaLoop>,
}

/// A track the server has accepted: its m-line and sender.
pub(crate) struct NegotiatedTrack {
    pub outgoing: OutgoingTrack,
    pub mid: String,
    pub sender: Arc<RTCRtpSender>,
}

/// The tracks `config` asks for, with their loops loaded (so a missing file fails before
/// anything touches the network).
pub(crate) async fn prepare(config: &BotConfig) -> Result<Vec<OutgoingTrack>, BotError> {
    let mut tracks = Vec::new();
    if config.publish_audio {
        tracks.push(OutgoingTrack {
            track: local_track(peer_connection::opus(), "audio"),
            kind: TrackKind::Audio,
            source: TrackSource::Microphone,
            codec: peer_connection::opus(),
            media: media_loop::load(&config.media_dir, LoopSource::Opus).await?,
        });
    }
    if let Some(codec) = config.publish_video {
        let parameters = peer_connection::video(codec);
        tracks.push(OutgoingTrack {
            track: local_track(parameters.clone(), "video"),
            kind: TrackKind::Video,
            source: TrackSource::Camera,
            codec: parameters,
            media: media_loop::load(&config.media_dir, LoopSource::Video(codec)).await?,
        });
    }
    Ok(tracks)
}

fn local_track(codec: RTCRtpCodecParameters, id: &str) -> Arc<TrackLocalStaticSample> {
    // The server replaces both ids with its own in what subscribers see.
    Arc::new(TrackLocalStaticSample::new(
        codec.capability,
        id.to_owned(),
        "roomcast-bot".to_owned(),
    ))
}

/// What the bot has sent of one published track.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedTrackStats {
    pub kind: TrackKind,
    pub source: TrackSource,
    pub mid: String,
    pub codec_mime: String,
    /// Frames handed to webrtc-rs (it drops those written before DTLS is up).
    pub frames_sent: u64,
    pub keyframes_sent: u64,
    /// PLIs and FIRs received for this track.
    pub keyframe_requests: u64,
}

struct Shared {
    stats: Mutex<PublishedTrackStats>,
    keyframe_requested: AtomicBool,
}

/// The running loops; dropping it stops them.
pub(crate) struct Publisher {
    tracks: Vec<Arc<Shared>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Publisher {
    pub(crate) fn new() -> Self {
        Publisher {
            tracks: Vec::new(),
            tasks: Vec::new(),
        }
    }

    pub(crate) fn start(&mut self, negotiated: Vec<NegotiatedTrack>, span: &Span) {
        for NegotiatedTrack {
            outgoing,
            mid,
            sender,
        } in negotiated
        {
            let shared = Arc::new(Shared {
                stats: Mutex::new(PublishedTrackStats {
                    kind: outgoing.kind,
                    source: outgoing.source,
                    mid,
                    codec_mime: outgoing.codec.capability.mime_type.clone(),
                    frames_sent: 0,
                    keyframes_sent: 0,
                    keyframe_requests: 0,
                }),
                keyframe_requested: AtomicBool::new(false),
            });
            self.tasks.push(tokio::spawn(
                read_rtcp(sender, Arc::clone(&shared)).instrument(span.clone()),
            ));
            self.tasks.push(tokio::spawn(
                play(outgoing, Arc::clone(&shared)).instrument(span.clone()),
            ));
            self.tracks.push(shared);
        }
    }

    pub(crate) fn stats(&self) -> Vec<PublishedTrackStats> {
        self.tracks.iter().map(|t| t.stats.lock().clone()).collect()
    }

    pub(crate) fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Plays the loop forever, one frame per tick. Ticks missed under load are skipped, like
/// frames a starved encoder drops.
async fn play(outgoing: OutgoingTrack, shared: Arc<Shared>) {
    let media = &outgoing.media;
    let mut ticks = tokio::time::interval(media.frame_interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut index = 0;
    loop {
        ticks.tick().await;
        if shared.keyframe_requested.swap(false, Ordering::Relaxed) {
            index = media.keyframe_at_or_after(index);
        }
        let frame = &media.frames[index];
        let sample = Sample {
            data: frame.data.clone(),
            duration: media.frame_interval,
            ..Default::default()
        };
        let mut writer =
            outgoing
                .track
                .sample_writer()
                .with_extension(HeaderExtension::AbsSendTime(AbsSendTimeExtension::new(
                    SystemTime::now(),
                )));
        if let Some(level) = frame.audio_level {
            writer = writer.with_audio_level(AudioLevelExtension {
                level,
                voice: level < VOICE_LEVEL,
            });
        }
        if let Err(e) = writer.write_sample(&sample).await {
            debug!(kind = ?outgoing.kind, error = %e, "sample not sent");
        } else {
            let mut stats = shared.stats.lock();
            stats.frames_sent += 1;
            stats.keyframes_sent += u64::from(frame.keyframe);
        }
        index = (index + 1) % media.frames.len();
    }
}

async fn read_rtcp(sender: Arc<RTCRtpSender>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; RTCP_READ_BUFFER];
    while let Ok((packets, _)) = sender.read(&mut buf).await {
        for packet in packets {
            let any = packet.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                shared.keyframe_requested.store(true, Ordering::Relaxed);
                shared.stats.lock().keyframe_requests += 1;
            }
        }
    }
}
