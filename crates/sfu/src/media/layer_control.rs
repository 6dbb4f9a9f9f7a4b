//! A session's periodic layer work, on both sides of the SFU: as a publisher, it tells the
//! client which simulcast layers anyone takes (dynacast); as a subscriber, it shares the
//! estimated bandwidth among the tracks received and tells the client about tracks paused
//! for lack of it, or that it cannot decode at all (`track_unsupported`). The decisions are the synchronous [`Dynacast`] and [`SubscriberAllocator`];
//! this module only gathers their inputs and sends their outcome.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_protocol::{PauseReason, Quality, ServerMessage, TrackKind, TrackSource};

use crate::bandwidth::{Estimate, PaddingPacer, ProbeOutcome};
use crate::media::allocator::{Demand, Priority, SubscriberAllocator};
use crate::media::down_track::DownTrack;
use crate::media::dynacast::Dynacast;
use crate::media::published_track::PublishedTrack;
use crate::signaling::outbox::Outbox;

/// How often layers are reconsidered.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// How often a probe's padding goes out while one runs: often enough to look like a steady
/// rate to a shaper, rarely enough that each batch is a few packets.
pub const PADDING_INTERVAL: Duration = Duration::from_millis(15);

/// The layer a `set_quality` asks for at most; `None` is off.
pub fn quality_layer(quality: Quality) -> Option<u8> {
    match quality {
        Quality::Off => None,
        Quality::Low => Some(0),
        Quality::Medium => Some(1),
        Quality::High => Some(2),
    }
}

#[derive(Default)]
pub struct LayerControl {
    /// Per published track id.
    dynacast: HashMap<String, Dynacast>,
    allocator: SubscriberAllocator,
    /// Track ids this subscriber was told are paused.
    paused: HashSet<String>,
    /// Per received simulcast track id: the layer this subscriber was last told it gets.
    told_layer: HashMap<String, Option<u8>>,
    /// Track ids this subscriber was told it has no codec for.
    unsupported: HashSet<String>,
    /// A probe's padding: its pace, when it is due next (`None`: no probe pads), and the
    /// buffer it is written in.
    pacer: PaddingPacer,
    padding_at: Option<Instant>,
    padding_buf: Vec<u8>,
}

impl LayerControl {
    /// Publisher side: re-measures layer bitrates and sends `publisher_layers` where the
    /// needed set changed.
    pub fn publisher_tick<'a>(
        &mut self,
        now: Instant,
        published: impl Iterator<Item = &'a Arc<PublishedTrack>>,
        outbox: &Outbox,
    ) {
        let mut live = HashSet::new();
        for track in published {
            track.update_bitrates(now);
            if track.layer_count() < 2 {
                continue;
            }
            live.insert(track.info.id.clone());
            let dynacast = self
                .dynacast
                .entry(track.info.id.clone())
                .or_insert_with(|| Dynacast::new(track.layer_count()));
            if let Some(layers) = dynacast.update(now, track.needed_layers()) {
                let rids: Vec<String> = track
                    .rids()
                    .enumerate()
                    .filter(|(i, _)| layers.contains(*i as u8))
                    .map(|(_, rid)| rid.to_owned())
                    .collect();
                tracing::debug!(track_id = %track.info.id, ?rids, "publisher layers");
                outbox.send(ServerMessage::PublisherLayers {
                    track_id: track.info.id.clone(),
                    mid: track.mid.clone(),
                    rids,
                });
            }
        }
        self.dynacast.retain(|id, _| live.contains(id));
    }

    /// Subscriber side: allocates the bandwidth estimate over the received video tracks and
    /// announces pauses and resumptions. Returns how a probe ended, for the estimator.
    pub fn subscriber_tick<'a>(
        &mut self,
        now: Instant,
        received: impl Iterator<Item = (&'a Arc<PublishedTrack>, &'a Arc<DownTrack>)>,
        speakers: &[String],
        estimate: Option<Estimate>,
        outbox: &Outbox,
    ) -> Option<ProbeOutcome> {
        let mut audio_bps = 0;
        let mut audios = Vec::new();
        let mut videos = Vec::new();
        let mut demands = Vec::new();
        let mut live = HashSet::new();
        for (track, down) in received {
            self.tell_unsupported(track, down, outbox);
            live.insert(track.info.id.as_str());
            if track.info.kind == TrackKind::Audio {
                audio_bps += track.layer_bitrates().first().copied().unwrap_or(0);
                audios.push(down);
                continue;
            }
            let priority = if track.info.source == TrackSource::Screen {
                Priority::Screen
            } else if speakers.iter().any(|s| *s == track.publisher_id) {
                Priority::Speaker
            } else {
                Priority::Other
            };
            let state = down.layer_state();
            self.tell_layer(track, down, state.current, outbox);
            demands.push(Demand {
                priority,
                layer_bps: track.layer_bitrates(),
                requested: state.requested,
                current: state.allowed,
            });
            videos.push((track, down));
        }
        let allocation = self.allocator.allocate(now, estimate, audio_bps, &demands);
        tracing::trace!(
            estimate = ?estimate.map(|e| e.bps),
            severe_ago = ?estimate.and_then(|e| e.last_severe).map(|at| now.saturating_duration_since(at)),
            acked = ?estimate.map(|e| e.acked_bps),
            audio_bps,
            costs = ?demands.iter().map(|d| (d.layer_bps.first().copied(), d.current)).collect::<Vec<_>>(),
            allowed = ?allocation.allowed,
            padding = allocation.padding_bps,
            "allocation"
        );
        for down in audios {
            down.set_redundancy(allocation.redundancy);
        }
        let mut still_paused = HashSet::new();
        for ((track, down), (allowed, demand)) in
            videos.iter().zip(allocation.allowed.iter().zip(&demands))
        {
            let before = down.layer_state().allowed;
            if before != *allowed {
                down.set_allowed(*allowed);
            }
            let id = &track.info.id;
            if allowed.is_none() && demand.requested.is_some() {
                still_paused.insert(id.clone());
                if !self.paused.contains(id) {
                    tracing::info!(track_id = %id, "paused for bandwidth");
                    outbox.send(ServerMessage::TrackPaused {
                        track_id: id.clone(),
                        reason: PauseReason::Bandwidth,
                    });
                }
            }
        }
        for resumed in self.paused.difference(&still_paused) {
            // Tracks that went away need no message: their own removal said it.
            if videos.iter().any(|(t, _)| t.info.id == *resumed) {
                tracing::info!(track_id = %resumed, "resumed");
                outbox.send(ServerMessage::TrackResumed {
                    track_id: resumed.clone(),
                });
            }
        }
        self.paused = still_paused;
        self.told_layer
            .retain(|id, _| videos.iter().any(|(t, _)| t.info.id == *id));
        self.unsupported.retain(|id| live.contains(id.as_str()));
        self.pacer.set_rate(now, allocation.padding_bps);
        self.padding_at = match allocation.padding_bps {
            0 => None,
            _ => self.padding_at.or(Some(now + PADDING_INTERVAL)),
        };
        allocation.probe
    }

    /// When a probe's padding is due next, if a probe pads.
    pub fn next_padding(&self) -> Option<Instant> {
        self.padding_at
    }

    /// Sends the padding due at `now` on the first of `received` that can take it (a
    /// video stream between two frames).
    pub fn send_padding<'a>(
        &mut self,
        now: Instant,
        received: impl Iterator<Item = &'a Arc<DownTrack>>,
    ) {
        if self.padding_at.is_none() {
            return;
        }
        self.padding_at = Some(now + PADDING_INTERVAL);
        let due = self.pacer.due(now);
        if due == 0 {
            return;
        }
        for down in received {
            if down.send_padding(due, &mut self.padding_buf, now) > 0 {
                return;
            }
        }
    }

    /// Sends `track_unsupported` once the subscriber's connection is known to lack a codec
    /// for `track` (it would otherwise see a tile that never shows anything).
    fn tell_unsupported(&mut self, track: &PublishedTrack, down: &DownTrack, outbox: &Outbox) {
        if down.takes_codec(&track.codec) != Some(false)
            || self.unsupported.contains(&track.info.id)
        {
            return;
        }
        self.unsupported.insert(track.info.id.clone());
        let codec = track.codec.capability.mime_type.clone();
        let receivable = down.negotiated_mime_types();
        tracing::info!(track_id = %track.info.id, %codec, ?receivable, "subscriber has no codec for the track");
        outbox.send(ServerMessage::TrackUnsupported {
            track_id: track.info.id.clone(),
            codec,
            receivable,
        });
    }

    /// Sends `track_layer` for each received simulcast track whose layer changed since the
    /// subscriber was last told (between ticks: a layer switch just happened).
    pub fn tell_layers<'a>(
        &mut self,
        received: impl Iterator<Item = (&'a Arc<PublishedTrack>, &'a Arc<DownTrack>)>,
        outbox: &Outbox,
    ) {
        for (track, down) in received {
            if track.info.kind == TrackKind::Video {
                self.tell_layer(track, down, down.layer_state().current, outbox);
            }
        }
    }

    /// Sends `track_layer` when the simulcast layer this subscriber receives of `track`
    /// changed since it was last told (at first it is told nothing until a layer flows).
    fn tell_layer(
        &mut self,
        track: &PublishedTrack,
        down: &DownTrack,
        current: Option<u8>,
        outbox: &Outbox,
    ) {
        let told = self.told_layer.get(&track.info.id).copied().flatten();
        if track.layer_count() < 2 || told == current {
            return;
        }
        self.told_layer.insert(track.info.id.clone(), current);
        let rid = current.and_then(|layer| track.rids().nth(layer as usize).map(str::to_owned));
        let seq = down
            .layer_start()
            .and_then(|(layer, seq)| (Some(layer) == current).then_some(seq));
        outbox.send(ServerMessage::TrackLayer {
            track_id: track.info.id.clone(),
            rid,
            layer: current,
            seq,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::Egress;
    use crate::signaling::outbox::OutboxReceiver;
    use roomcast_protocol::Track;
    use std::sync::Weak;
    use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters;

    fn simulcast_track() -> Arc<PublishedTrack> {
        let rids: Vec<String> = ["q", "h", "f"].iter().map(|r| r.to_string()).collect();
        Arc::new(PublishedTrack::new(
            Track {
                id: "TR_1".into(),
                kind: TrackKind::Video,
                source: TrackSource::Camera,
                simulcast: true,
                muted: false,
            },
            "PA_pub".into(),
            "0".into(),
            RTCRtpCodecParameters::default(),
            &rids,
            Weak::new(),
        ))
    }

    fn egress() -> Arc<Egress> {
        let mux =
            roomcast_udp::UdpMux::bind(std::net::Ipv4Addr::LOCALHOST.into(), 0).expect("bind");
        Arc::new(Egress::new(mux))
    }

    fn drain(rx: &mut OutboxReceiver) -> Vec<ServerMessage> {
        std::iter::from_fn(|| rx.try_recv())
            .filter_map(|frame| frame.decode())
            .collect()
    }

    #[test]
    fn a_track_that_does_not_fit_is_paused_and_resumed_with_messages() {
        let track = simulcast_track();
        let down = track.new_down_track(egress());
        let (outbox, mut rx) = Outbox::new();
        let mut control = LayerControl::default();
        let t0 = Instant::now();
        let estimate = |bps| {
            Some(Estimate {
                bps,
                acked_bps: bps,
                last_congestion: Some(t0),
                last_severe: Some(t0),
                last_overuse: Some(t0),
                last_queue: None,
            })
        };
        let tick = |control: &mut LayerControl, at, bps| {
            control.subscriber_tick(
                at,
                [(&track, &down)].into_iter(),
                &[],
                estimate(bps),
                &outbox,
            )
        };
        tick(&mut control, t0, 50_000);
        assert_eq!(down.layer_state().allowed, None);
        assert_eq!(
            drain(&mut rx),
            [ServerMessage::TrackPaused {
                track_id: "TR_1".into(),
                reason: PauseReason::Bandwidth
            }]
        );
        tick(&mut control, t0 + Duration::from_millis(250), 50_000);
        assert!(drain(&mut rx).is_empty(), "said once");
        tick(&mut control, t0 + Duration::from_millis(500), 5_000_000);
        assert_eq!(
            drain(&mut rx),
            [ServerMessage::TrackResumed {
                track_id: "TR_1".into()
            }]
        );
        assert_eq!(down.layer_state().allowed, Some(2));
    }

    #[test]
    fn a_subscriber_without_the_publishers_codec_is_told_once() {
        let codec = |mime: &str, pt, fmtp: &str| RTCRtpCodecParameters {
            capability: webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability {
                mime_type: mime.into(),
                clock_rate: 90_000,
                sdp_fmtp_line: fmtp.into(),
                ..Default::default()
            },
            payload_type: pt,
            ..Default::default()
        };
        let h264 = codec(
            "video/H264",
            98,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        );
        let track = Arc::new(PublishedTrack::new(
            Track {
                id: "TR_7".into(),
                kind: TrackKind::Video,
                source: TrackSource::Camera,
                simulcast: false,
                muted: false,
            },
            "PA_safari".into(),
            "1".into(),
            h264.clone(),
            &[],
            Weak::new(),
        ));
        let vp8_only = track.new_down_track(egress());
        let h264_too = track.new_down_track(egress());
        let (outbox, mut rx) = Outbox::new();
        let mut control = LayerControl::default();
        let t0 = Instant::now();
        let tick = |control: &mut LayerControl, down: &Arc<DownTrack>, at| {
            control.subscriber_tick(at, [(&track, down)].into_iter(), &[], None, &outbox);
        };
        tick(&mut control, &vp8_only, t0);
        assert!(
            drain(&mut rx).is_empty(),
            "nothing is known before the answer"
        );
        vp8_only.bind_negotiated("a".into(), 1, vec![codec("video/VP8", 96, "")], &[], None);
        tick(&mut control, &vp8_only, t0 + INTERVAL);
        assert_eq!(
            drain(&mut rx),
            [ServerMessage::TrackUnsupported {
                track_id: "TR_7".into(),
                codec: "video/H264".into(),
                receivable: vec!["video/VP8".into()],
            }]
        );
        tick(&mut control, &vp8_only, t0 + INTERVAL * 2);
        assert!(drain(&mut rx).is_empty(), "said once");
        // Another profile of H.264 is no help; the same profile at another level is.
        h264_too.bind_negotiated(
            "b".into(),
            2,
            vec![
                codec("video/VP8", 96, ""),
                codec(
                    "video/H264",
                    125,
                    "packetization-mode=1;profile-level-id=640c1f",
                ),
                codec(
                    "video/H264",
                    108,
                    "packetization-mode=1;profile-level-id=42e034",
                ),
            ],
            &[],
            None,
        );
        let mut other = LayerControl::default();
        tick(&mut other, &h264_too, t0);
        assert!(
            drain(&mut rx).is_empty(),
            "{:?}",
            h264_too.negotiated_mime_types()
        );
    }

    #[test]
    fn an_off_track_is_not_reported_as_paused() {
        let track = simulcast_track();
        let down = track.new_down_track(egress());
        down.set_requested(quality_layer(Quality::Off));
        let (outbox, mut rx) = Outbox::new();
        let t0 = Instant::now();
        LayerControl::default().subscriber_tick(
            t0,
            [(&track, &down)].into_iter(),
            &[],
            Some(Estimate {
                bps: 1,
                acked_bps: 1,
                last_congestion: Some(t0),
                last_severe: Some(t0),
                last_overuse: Some(t0),
                last_queue: None,
            }),
            &outbox,
        );
        assert!(drain(&mut rx).is_empty());
    }

    #[test]
    fn the_publisher_hears_which_layers_are_needed() {
        let track = simulcast_track();
        let down = track.new_down_track(egress());
        track.add_down_track(Arc::clone(&down));
        down.set_requested(quality_layer(Quality::Low));
        let (outbox, mut rx) = Outbox::new();
        let mut control = LayerControl::default();
        let t0 = Instant::now();
        control.publisher_tick(t0, [&track].into_iter(), &outbox);
        assert!(drain(&mut rx).is_empty(), "not before the delay");
        control.publisher_tick(t0 + Duration::from_secs(3), [&track].into_iter(), &outbox);
        assert_eq!(
            drain(&mut rx),
            [ServerMessage::PublisherLayers {
                track_id: "TR_1".into(),
                mid: "0".into(),
                rids: vec!["q".into()]
            }]
        );
        // Wanting f again, with nothing forwarded yet: every layer up to f is needed at
        // once, so the publisher can send the best one it manages.
        down.set_requested(quality_layer(Quality::High));
        control.publisher_tick(t0 + Duration::from_secs(4), [&track].into_iter(), &outbox);
        assert_eq!(
            drain(&mut rx),
            [ServerMessage::PublisherLayers {
                track_id: "TR_1".into(),
                mid: "0".into(),
                rids: vec!["q".into(), "h".into(), "f".into()]
            }]
        );
    }
}
