//! What a bot publishes: one track per loop kind, each sent as one encoding or, for
//! simulcast video, three (rids `q`, `h`, `f`, each from its own loop). Every encoding is a
//! `TrackLocalStaticRTP` fed by its own task, which paces its loop in real time and
//! packetizes it itself (so timestamps can jump across a pause while sequence numbers run
//! on), plus a task that reads the encoding's RTCP (NACKs are answered by the interceptors;
//! a PLI or FIR for the encoding's SSRC makes its loop jump to its next keyframe, as an
//! encoder would send one). Layers the server does not need (`publisher_layers`) idle.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use roomcast_protocol::{TrackKind, TrackSource};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, Instrument, Span};
use webrtc::rtcp::packet::Packet as RtcpPacket;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::extension::abs_send_time_extension::AbsSendTimeExtension;
use webrtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use webrtc::rtp::extension::HeaderExtension;
use webrtc::rtp::packetizer::{new_packetizer, Packetizer};
use webrtc::rtp::sequence::new_random_sequencer;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

use crate::layers::{LayerDirectory, Playhead};
use crate::media_loop::{self, LoopSource, MediaLoop, VideoSize};
use crate::{peer_connection, BotConfig, BotError};

/// Below this RFC 6464 level (in -dBov) the audio-level extension flags voice activity.
const VOICE_LEVEL: u8 = 60;
const RTCP_READ_BUFFER: usize = 1500;
/// RTP packet size the loops are cut into (what webrtc-rs's sample tracks use).
const RTP_MTU: usize = 1200;
/// The simulcast layers, lowest first, as the offer lists them.
pub(crate) const SIMULCAST_LAYERS: [(&str, VideoSize); 3] = [
    ("q", VideoSize::Quarter),
    ("h", VideoSize::Half),
    ("f", VideoSize::Full),
];
/// The msid stream id the bot offers; the server replaces it (and the track id) with its
/// own in what subscribers see.
const STREAM_ID: &str = "roomcast-bot";

/// One encoding of a track: its own loop and RTP stream.
pub(crate) struct OutgoingLayer {
    /// `None` for a track sent as one encoding.
    pub rid: Option<String>,
    pub track: Arc<TrackLocalStaticRTP>,
    media: Arc<MediaLoop>,
}

/// A track ready to be offered.
pub(crate) struct OutgoingTrack {
    pub kind: TrackKind,
    pub source: TrackSource,
    pub codec: RTCRtpCodecParameters,
    /// At least one; the first is the transceiver's track, the others are added encodings.
    pub layers: Vec<OutgoingLayer>,
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
        let codec = peer_connection::opus();
        tracks.push(OutgoingTrack {
            kind: TrackKind::Audio,
            source: TrackSource::Microphone,
            layers: vec![OutgoingLayer {
                rid: None,
                track: local_track(&codec, "audio", None),
                media: media_loop::load(&config.media_dir, LoopSource::Opus).await?,
            }],
            codec,
        });
    }
    if let Some(video) = config.publish_video {
        let codec = peer_connection::video(video);
        let sizes: Vec<(Option<&str>, VideoSize)> = if config.simulcast {
            SIMULCAST_LAYERS
                .iter()
                .map(|&(rid, size)| (Some(rid), size))
                .collect()
        } else {
            vec![(None, config.single_video_size())]
        };
        let mut layers = Vec::with_capacity(sizes.len());
        for (rid, size) in sizes {
            layers.push(OutgoingLayer {
                rid: rid.map(str::to_owned),
                track: local_track(&codec, "video", rid),
                media: media_loop::load(&config.media_dir, LoopSource::Video(video, size)).await?,
            });
        }
        let source = if config.screen_share && !config.simulcast {
            TrackSource::Screen
        } else {
            TrackSource::Camera
        };
        tracks.push(OutgoingTrack {
            kind: TrackKind::Video,
            source,
            codec,
            layers,
        });
    }
    Ok(tracks)
}

/// Every layer of a track shares its id and stream id; webrtc-rs requires it.
fn local_track(
    codec: &RTCRtpCodecParameters,
    id: &str,
    rid: Option<&str>,
) -> Arc<TrackLocalStaticRTP> {
    let capability = codec.capability.clone();
    Arc::new(match rid {
        Some(rid) => TrackLocalStaticRTP::new_with_rid(
            capability,
            id.to_owned(),
            rid.to_owned(),
            STREAM_ID.to_owned(),
        ),
        None => TrackLocalStaticRTP::new(capability, id.to_owned(), STREAM_ID.to_owned()),
    })
}

/// What the bot has sent of one published track.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedTrackStats {
    pub kind: TrackKind,
    pub source: TrackSource,
    pub mid: String,
    pub codec_mime: String,
    /// Frames handed to webrtc-rs, over all layers (it drops those written before DTLS is
    /// up).
    pub frames_sent: u64,
    /// Encoded bytes of those frames (RTP payload without packetization overhead).
    pub bytes_sent: u64,
    pub keyframes_sent: u64,
    /// PLIs and FIRs received for this track (for simulcast: for one of its layers' SSRCs).
    pub keyframe_requests: u64,
    /// One entry per simulcast layer, in offer order (`q`, `h`, `f`); empty for a track
    /// sent as one encoding.
    pub layers: Vec<LayerStats>,
}

/// What the bot has sent of one simulcast layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStats {
    pub rid: String,
    /// The layer's RTP SSRC.
    pub ssrc: u32,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub keyframes_sent: u64,
    /// PLIs and FIRs for this layer's SSRC.
    pub keyframe_requests: u64,
    /// Whether the layer sends: all do at first; `publisher_layers` pauses the ones it does
    /// not list and resumes (at a keyframe) the ones it lists again.
    pub active: bool,
}

/// What the tasks of one track share with [`Publisher::stats`].
struct Shared {
    stats: Mutex<PublishedTrackStats>,
    layers: Vec<LayerShared>,
    /// The publisher's: bumped on every change of the counters.
    changed: watch::Sender<()>,
}

struct LayerShared {
    keyframe_requested: AtomicBool,
    active: watch::Receiver<bool>,
}

impl Shared {
    /// Counts one frame of layer `layer`.
    fn count_frame(&self, layer: usize, simulcast: bool, bytes: u64, keyframe: bool) {
        let mut stats = self.stats.lock();
        stats.frames_sent += 1;
        stats.bytes_sent += bytes;
        stats.keyframes_sent += u64::from(keyframe);
        if simulcast {
            if let Some(l) = stats.layers.get_mut(layer) {
                l.frames_sent += 1;
                l.bytes_sent += bytes;
                l.keyframes_sent += u64::from(keyframe);
            }
        }
        drop(stats);
        self.changed.send_replace(());
    }

    fn count_keyframe_request(&self, layer: usize) {
        if let Some(l) = self.layers.get(layer) {
            l.keyframe_requested.store(true, Ordering::Relaxed);
        }
        let mut stats = self.stats.lock();
        stats.keyframe_requests += 1;
        if let Some(l) = stats.layers.get_mut(layer) {
            l.keyframe_requests += 1;
        }
        drop(stats);
        self.changed.send_replace(());
    }
}

/// How a bot's audio sounds: see [`crate::BotConfig::audio_attenuation_db`] and
/// [`crate::BotConfig::dtx`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AudioStyle {
    pub attenuation_db: u8,
    pub dtx: bool,
}

/// With DTX, one silent frame in this many is sent.
const DTX_EVERY: u32 = 20;

/// Which audio frames DTX lets through: every one with sound, the first of a silence and
/// then one in [`DTX_EVERY`].
#[derive(Debug, Default)]
struct Dtx {
    silent_frames: u32,
}

impl Dtx {
    /// Whether a frame at `level` (RFC 6464, after attenuation) is sent.
    fn sends(&mut self, level: Option<u8>) -> bool {
        if level != Some(SILENCE) {
            self.silent_frames = 0;
            return true;
        }
        self.silent_frames += 1;
        self.silent_frames % DTX_EVERY == 1
    }
}

/// The running loops; dropping it stops them.
pub(crate) struct Publisher {
    directory: Arc<LayerDirectory>,
    audio: AudioStyle,
    tracks: Vec<Arc<Shared>>,
    /// Gates of tracks sent as one encoding: always open.
    always_active: Vec<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
    changed: watch::Sender<()>,
}

impl Publisher {
    pub(crate) fn new(directory: Arc<LayerDirectory>, audio: AudioStyle) -> Self {
        Publisher {
            directory,
            audio,
            tracks: Vec::new(),
            always_active: Vec::new(),
            tasks: Vec::new(),
            changed: watch::Sender::new(()),
        }
    }

    pub(crate) async fn start(&mut self, negotiated: Vec<NegotiatedTrack>, span: &Span) {
        for NegotiatedTrack {
            outgoing,
            mid,
            sender,
        } in negotiated
        {
            let parameters = sender.get_parameters().await;
            let ssrc_of = |rid: &str| {
                parameters
                    .encodings
                    .iter()
                    .find(|e| e.rid == rid)
                    .map_or(0, |e| e.ssrc)
            };
            let rids: Vec<String> = outgoing
                .layers
                .iter()
                .filter_map(|l| l.rid.clone())
                .collect();
            let simulcast = !rids.is_empty();
            let gates = if simulcast {
                self.directory.register(&mid, &rids)
            } else {
                let gate = watch::Sender::new(true);
                let receiver = gate.subscribe();
                self.always_active.push(gate);
                vec![receiver]
            };
            let layer_stats = rids
                .iter()
                .zip(&gates)
                .map(|(rid, gate)| LayerStats {
                    rid: rid.clone(),
                    ssrc: ssrc_of(rid),
                    frames_sent: 0,
                    bytes_sent: 0,
                    keyframes_sent: 0,
                    keyframe_requests: 0,
                    active: *gate.borrow(),
                })
                .collect();
            let shared = Arc::new(Shared {
                stats: Mutex::new(PublishedTrackStats {
                    kind: outgoing.kind,
                    source: outgoing.source,
                    mid,
                    codec_mime: outgoing.codec.capability.mime_type.clone(),
                    frames_sent: 0,
                    bytes_sent: 0,
                    keyframes_sent: 0,
                    keyframe_requests: 0,
                    layers: layer_stats,
                }),
                layers: gates
                    .iter()
                    .map(|gate| LayerShared {
                        keyframe_requested: AtomicBool::new(false),
                        active: gate.clone(),
                    })
                    .collect(),
                changed: self.changed.clone(),
            });
            for (index, (layer, gate)) in outgoing.layers.into_iter().zip(gates).enumerate() {
                let rtcp = RtcpSource {
                    sender: Arc::clone(&sender),
                    simulcast: layer
                        .rid
                        .as_deref()
                        .map(|rid| (rid.to_owned(), ssrc_of(rid))),
                };
                self.tasks.push(tokio::spawn(
                    read_rtcp(rtcp, index, Arc::clone(&shared)).instrument(span.clone()),
                ));
                let player = Player {
                    layer,
                    index,
                    simulcast,
                    kind: outgoing.kind,
                    audio: self.audio,
                    shared: Arc::clone(&shared),
                };
                self.tasks
                    .push(tokio::spawn(player.play(gate).instrument(span.clone())));
            }
            self.tracks.push(shared);
        }
    }

    pub(crate) fn stats(&self) -> Vec<PublishedTrackStats> {
        self.tracks
            .iter()
            .map(|track| {
                let mut stats = track.stats.lock().clone();
                for (layer, shared) in stats.layers.iter_mut().zip(&track.layers) {
                    layer.active = *shared.active.borrow();
                }
                stats
            })
            .collect()
    }

    /// Re-checks `pred` on fresh stats whenever they change: a frame sent, a keyframe
    /// request, a layer paused or resumed.
    pub(crate) async fn wait_for(
        &self,
        pred: impl Fn(&[PublishedTrackStats]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<PublishedTrackStats>, BotError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.changed.subscribe();
        loop {
            changes.borrow_and_update();
            let stats = self.stats();
            if pred(&stats) {
                return Ok(stats);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(BotError::Closed),
                Err(_) => return Err(BotError::Timeout("the published tracks' condition")),
            }
        }
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

/// One layer's loop and where its counts go.
struct Player {
    layer: OutgoingLayer,
    index: usize,
    simulcast: bool,
    kind: TrackKind,
    audio: AudioStyle,
    shared: Arc<Shared>,
}

impl Player {
    /// Plays the loop forever, one frame per tick, while `active`. Ticks missed under load
    /// are skipped, like frames a starved encoder drops; timestamps keep to real time.
    async fn play(self, mut active: watch::Receiver<bool>) {
        let media = &self.layer.media;
        let capability = self.layer.track.codec();
        let payloader = match capability.payloader_for_codec() {
            Ok(payloader) => payloader,
            Err(e) => {
                debug!(kind = ?self.kind, error = %e, "no payloader: not sending");
                return;
            }
        };
        // Payload type and SSRC are set per binding when written.
        let mut packetizer = new_packetizer(
            RTP_MTU,
            0,
            0,
            payloader,
            Box::new(new_random_sequencer()),
            capability.clock_rate,
        );
        let mut playhead = Playhead::new(media.frame_interval, capability.clock_rate);
        let mut dtx = Dtx::default();
        let mut ticks = tokio::time::interval(media.frame_interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            if !*active.borrow_and_update() {
                playhead.pause();
                debug!(kind = ?self.kind, rid = ?self.layer.rid, "layer paused");
                self.shared.changed.send_replace(());
                if active.wait_for(|on| *on).await.is_err() {
                    return;
                }
                debug!(kind = ?self.kind, rid = ?self.layer.rid, "layer resumed");
                self.shared.changed.send_replace(());
                ticks.reset_immediately();
            }
            let due = ticks.tick().await;
            if !*active.borrow() {
                continue;
            }
            if let Some(layer) = self.shared.layers.get(self.index) {
                if layer.keyframe_requested.swap(false, Ordering::Relaxed) {
                    playhead.request_keyframe();
                }
            }
            let next = playhead.next(media, due.into_std());
            let Some(frame) = media.frames.get(next.index) else {
                return;
            };
            if next.skip_samples > 0 {
                packetizer.skip_samples(next.skip_samples);
            }
            let level = frame
                .audio_level
                .map(|level| attenuated(level, self.audio.attenuation_db));
            if self.audio.dtx && !dtx.sends(level) {
                // Not sent; the timestamps run on, as the frame's time passes.
                packetizer.skip_samples(playhead.samples_per_frame());
                continue;
            }
            let packets = match packetizer.packetize(&frame.data, playhead.samples_per_frame()) {
                Ok(packets) => packets,
                Err(e) => {
                    debug!(kind = ?self.kind, error = %e, "frame not packetized");
                    continue;
                }
            };
            let mut extensions = vec![HeaderExtension::AbsSendTime(AbsSendTimeExtension::new(
                SystemTime::now(),
            ))];
            if let (Some(original), Some(level)) = (frame.audio_level, level) {
                extensions.push(HeaderExtension::AudioLevel(AudioLevelExtension {
                    level,
                    voice: original < VOICE_LEVEL,
                }));
            }
            let mut sent = true;
            for packet in &packets {
                if let Err(e) = self
                    .layer
                    .track
                    .write_rtp_with_extensions(packet, &extensions)
                    .await
                {
                    debug!(kind = ?self.kind, rid = ?self.layer.rid, error = %e, "packet not sent");
                    sent = false;
                }
            }
            if sent {
                self.shared.count_frame(
                    self.index,
                    self.simulcast,
                    frame.data.len() as u64,
                    frame.keyframe,
                );
            }
        }
    }
}

/// The quietest RFC 6464 level: silence.
const SILENCE: u8 = 127;

/// An RFC 6464 level `db` dB quieter: larger is quieter, 127 is silence.
pub(crate) fn attenuated(level: u8, db: u8) -> u8 {
    level.saturating_add(db).min(SILENCE)
}

/// Where a layer's RTCP comes from: the sender's only encoding, or one simulcast encoding
/// (rid and SSRC).
struct RtcpSource {
    sender: Arc<RTCRtpSender>,
    simulcast: Option<(String, u32)>,
}

async fn read_rtcp(source: RtcpSource, layer: usize, shared: Arc<Shared>) {
    let mut buf = vec![0u8; RTCP_READ_BUFFER];
    loop {
        let read = match &source.simulcast {
            Some((rid, _)) => source.sender.read_simulcast(&mut buf, rid).await,
            None => source.sender.read(&mut buf).await,
        };
        let Ok((packets, _)) = read else {
            break;
        };
        let ssrc = source.simulcast.as_ref().map(|(_, ssrc)| *ssrc);
        for packet in packets {
            if requests_keyframe(packet.as_ref(), ssrc) {
                shared.count_keyframe_request(layer);
            }
        }
    }
}

/// Whether `packet` is a PLI or FIR, for `ssrc` if given. An encoding's RTCP stream sees
/// every compound packet that names its SSRC, so a PLI for another layer may be in it.
fn requests_keyframe(packet: &(dyn RtcpPacket + Send + Sync), ssrc: Option<u32>) -> bool {
    let any = packet.as_any();
    if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
        ssrc.is_none_or(|s| pli.media_ssrc == s)
    } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
        ssrc.is_none_or(|s| fir.fir.iter().any(|entry| entry.ssrc == s))
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use webrtc::rtcp::payload_feedbacks::full_intra_request::FirEntry;
    use webrtc::rtcp::receiver_report::ReceiverReport;

    use super::*;

    #[test]
    fn keyframe_requests_are_matched_to_their_layer() {
        let pli = PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 42,
        };
        assert!(requests_keyframe(&pli, None));
        assert!(requests_keyframe(&pli, Some(42)));
        assert!(!requests_keyframe(&pli, Some(43)));
        let fir = FullIntraRequest {
            sender_ssrc: 1,
            media_ssrc: 0,
            fir: vec![FirEntry {
                ssrc: 43,
                sequence_number: 1,
            }],
        };
        assert!(requests_keyframe(&fir, Some(43)));
        assert!(!requests_keyframe(&fir, Some(42)));
        assert!(!requests_keyframe(&ReceiverReport::default(), None));
    }

    #[test]
    fn dtx_sends_sound_and_one_silent_frame_in_twenty() {
        let mut dtx = Dtx::default();
        assert!(dtx.sends(Some(40)));
        assert!(dtx.sends(None), "a frame without a level is not silence");
        let sent: Vec<bool> = (0..41).map(|_| dtx.sends(Some(SILENCE))).collect();
        let indexes: Vec<usize> = (0..41).filter(|&i| sent[i]).collect();
        assert_eq!(indexes, [0, 20, 40]);
        assert!(dtx.sends(Some(40)));
        assert!(
            dtx.sends(Some(SILENCE)),
            "a new silence starts with a frame"
        );
    }

    #[test]
    fn attenuation_makes_levels_quieter_down_to_silence() {
        assert_eq!(attenuated(30, 0), 30);
        assert_eq!(attenuated(30, 20), 50);
        assert_eq!(attenuated(120, 20), 127);
        assert_eq!(attenuated(200, 255), 127);
    }

    #[tokio::test]
    async fn simulcast_video_is_three_layers_from_three_loops() {
        let config = BotConfig::new("ws://127.0.0.1:1/ws", "r", "n").with_simulcast(true);
        let tracks = prepare(&config).await.unwrap();
        assert_eq!(tracks.len(), 2);
        assert_eq!(tracks[0].layers.len(), 1);
        assert_eq!(tracks[0].layers[0].rid, None);
        let video = &tracks[1];
        let rids: Vec<_> = video.layers.iter().map(|l| l.rid.as_deref()).collect();
        assert_eq!(rids, [Some("q"), Some("h"), Some("f")]);
        for layer in &video.layers {
            use webrtc::track::track_local::TrackLocal;
            assert_eq!(layer.track.id(), "video");
            assert_eq!(layer.track.stream_id(), STREAM_ID);
            assert_eq!(layer.track.rid(), layer.rid.as_deref());
        }
        assert!(!Arc::ptr_eq(&video.layers[0].media, &video.layers[2].media));

        let plain = prepare(&config.with_simulcast(false)).await.unwrap();
        assert_eq!(plain[1].layers.len(), 1);
        assert_eq!(plain[1].layers[0].rid, None);
    }
}
