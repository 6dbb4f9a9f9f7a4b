//! Adaptation end to end on a fake clock: a subscriber's [`SubscriberBandwidth`] and the
//! allocator in a loop with the media they control, over a simulated path.
//!
//! Each millisecond the "server" sends audio, the frames of each video track's current
//! layer and the probe's padding; every 50 ms the receiver's transport-cc feedback comes
//! back; every 250 ms the allocator decides (as `layer_control.rs` does) and layer changes
//! take effect at the next keyframe of the new layer, 250 ms later. What the receiver got
//! is kept per packet, so a test can ask what a viewer would have seen.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use super::padding::PADDING_PACKET_BYTES;
use super::test_util::{Link, Path, Stamping, RECEIVER_CLOCK_OFFSET_US};
use super::{PaddingPacer, SubscriberBandwidth};
use crate::media::allocator::{Demand, Priority, SubscriberAllocator};

const FEEDBACK_EVERY_US: i64 = 50_000;
const ALLOCATE_EVERY_US: i64 = 250_000;
const KEYFRAME_DELAY_US: i64 = 250_000;
const FRAME_US: i64 = 33_333;
const KEYFRAME_EVERY_US: i64 = 2_000_000;
const AUDIO_EVERY_US: i64 = 20_000;
/// A 32 kbps Opus frame with its RTP header, extensions and SRTP tag (48 kbps in all).
const AUDIO_PACKET: usize = 80 + 40;
const MTU: usize = 1_200;
/// A video gap longer than this is a freeze.
const FREEZE_US: i64 = 500_000;
/// The simulcast layers q, h and f.
const LAYERS: [u64; 3] = [150_000, 500_000, 1_500_000];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Audio,
    Video(usize),
    Padding,
}

struct Video {
    priority: Priority,
    requested: Option<u8>,
    /// What the allocator allows.
    allowed: Option<u8>,
    /// The layer being sent, and a switch waiting for its keyframe (time, layer).
    current: Option<u8>,
    switch: Option<(i64, Option<u8>)>,
    next_frame_us: i64,
    last_keyframe_us: i64,
    /// (time, layer) whenever the layer sent changed.
    layers: Vec<(i64, Option<u8>)>,
    /// Receiver side: the last media packet's arrival, and the freezes seen (start, µs).
    last_arrival: Option<i64>,
    freezes: Vec<(i64, i64)>,
}

struct Sim {
    t0: Instant,
    now_us: i64,
    bandwidth: SubscriberBandwidth,
    allocator: SubscriberAllocator,
    pacer: PaddingPacer,
    path: Path,
    seq: u16,
    sent: HashMap<u16, (Kind, i64)>,
    videos: Vec<Video>,
    audio_tracks: usize,
    audio_packet: usize,
    /// (sent µs, kind, lost) of every packet the receiver reported.
    reports: Vec<(i64, Kind, bool)>,
    /// (time, estimate) after every allocation.
    estimates: Vec<(i64, u64)>,
    padded_bytes: usize,
}

impl Sim {
    fn new(link: Link, audio_tracks: usize, videos: &[(Priority, Option<u8>)]) -> Self {
        let t0 = Instant::now();
        Sim {
            t0,
            now_us: 0,
            bandwidth: SubscriberBandwidth::new(t0),
            allocator: SubscriberAllocator::default(),
            pacer: PaddingPacer::default(),
            path: Path::new(link, Stamping::Exact),
            seq: 0,
            sent: HashMap::new(),
            videos: videos
                .iter()
                .enumerate()
                .map(|(i, &(priority, requested))| Video {
                    priority,
                    requested,
                    allowed: requested,
                    current: requested,
                    switch: None,
                    next_frame_us: i as i64 * 7_000,
                    last_keyframe_us: 0,
                    layers: vec![(0, requested)],
                    last_arrival: None,
                    freezes: Vec::new(),
                })
                .collect(),
            audio_tracks,
            audio_packet: AUDIO_PACKET,
            reports: Vec::new(),
            estimates: Vec::new(),
            padded_bytes: 0,
        }
    }

    fn at(&self, us: i64) -> Instant {
        self.t0 + Duration::from_micros(us as u64)
    }

    fn run(&mut self, seconds: f64) {
        let end = self.now_us + (seconds * 1e6) as i64;
        while self.now_us < end {
            self.now_us += 1_000;
            self.send_media();
            if self.now_us % 5_000 == 0 {
                for _ in 0..self.pacer.due(self.at(self.now_us)) {
                    self.send(PADDING_PACKET_BYTES, Kind::Padding);
                    self.padded_bytes += PADDING_PACKET_BYTES;
                }
            }
            if self.now_us % FEEDBACK_EVERY_US == 0 {
                self.feedback();
            }
            if self.now_us % ALLOCATE_EVERY_US == 0 {
                self.allocate();
            }
        }
    }

    fn send(&mut self, size: usize, kind: Kind) {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let now = self.now_us;
        self.bandwidth.history.record(seq, size, self.at(now));
        let stream = match kind {
            Kind::Audio => 0,
            Kind::Video(i) => 1 + i,
            Kind::Padding => 1,
        };
        self.path.send(seq, size, now, stream);
        self.sent.insert(seq, (kind, now));
    }

    fn send_media(&mut self) {
        let now = self.now_us;
        if now % AUDIO_EVERY_US == 0 {
            for _ in 0..self.audio_tracks {
                self.send(self.audio_packet, Kind::Audio);
            }
        }
        for i in 0..self.videos.len() {
            let video = &mut self.videos[i];
            let mut keyframe = false;
            if let Some((at, layer)) = video.switch {
                if at <= now {
                    video.switch = None;
                    video.current = layer;
                    video.layers.push((now, layer));
                    keyframe = true;
                }
            }
            let Some(layer) = video.current else {
                continue;
            };
            if video
                .switch
                .is_some_and(|(_, to)| to.is_some_and(|to| to < layer))
            {
                // A switch down for bandwidth stops the old layer at once
                // (`layer_selector.rs`); the new one starts at its keyframe.
                continue;
            }
            if now < video.next_frame_us {
                continue;
            }
            // Frames come at the publisher's pace, also after a pause (no catching up).
            video.next_frame_us = (video.next_frame_us + FRAME_US).max(now);
            if now - video.last_keyframe_us >= KEYFRAME_EVERY_US {
                keyframe = true;
            }
            if keyframe {
                video.last_keyframe_us = now;
            }
            let mean = LAYERS[usize::from(layer)] as f64 / 8.0 * FRAME_US as f64 / 1e6;
            let scale = if keyframe {
                3.0
            } else {
                0.7 + 0.6 * self.path.rng.unit()
            };
            let mut left = (mean * scale) as usize;
            while left > 0 {
                let size = left.min(MTU);
                self.send(size, Kind::Video(i));
                left -= size;
            }
        }
    }

    fn feedback(&mut self) {
        let Some((feedback, reported)) = self.path.feedback(self.now_us) else {
            return;
        };
        self.bandwidth.on_rtcp(self.at(self.now_us), &feedback);
        if self.cut_signalled() {
            // The session reallocates at once (`SubscriberBandwidth::cut`).
            self.allocate();
        }
        for (seq, stamp) in reported {
            let Some((kind, sent_us)) = self.sent.remove(&seq) else {
                continue;
            };
            self.reports.push((sent_us, kind, stamp.is_none()));
            if let (Kind::Video(i), Some(stamp)) = (kind, stamp) {
                let arrival = stamp - RECEIVER_CLOCK_OFFSET_US;
                let video = &mut self.videos[i];
                if let Some(last) = video.last_arrival {
                    if arrival - last > FREEZE_US {
                        video.freezes.push((last, arrival - last));
                    }
                }
                video.last_arrival = Some(video.last_arrival.map_or(arrival, |l| l.max(arrival)));
            }
        }
    }

    /// Whether the estimator asked for an allocation now, as the session's select would see.
    fn cut_signalled(&self) -> bool {
        let notified = std::pin::pin!(self.bandwidth.cut.notified());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        notified.poll(&mut cx).is_ready()
    }

    fn allocate(&mut self) {
        let now = self.at(self.now_us);
        let demands: Vec<Demand> = self
            .videos
            .iter()
            .map(|v| Demand {
                priority: v.priority,
                layer_bps: LAYERS.to_vec(),
                requested: v.requested,
                current: v.allowed,
            })
            .collect();
        let audio_bps = (self.audio_tracks * self.audio_packet * 8 * 50) as u64;
        let estimate = self.bandwidth.estimate();
        let allocation = self.allocator.allocate(now, estimate, audio_bps, &demands);
        if let Some(outcome) = allocation.probe {
            self.bandwidth.on_probe(outcome);
        }
        self.pacer.set_rate(now, allocation.padding_bps);
        self.estimates
            .push((self.now_us, estimate.map_or(0, |e| e.bps)));
        for (video, allowed) in self.videos.iter_mut().zip(allocation.allowed) {
            video.allowed = allowed;
            let target = allowed
                .and(video.requested)
                .map(|a| a.min(allowed.unwrap_or(0)));
            let heading = video.switch.map_or(video.current, |(_, layer)| layer);
            if target == heading {
                continue;
            }
            if target.is_none() {
                // Paused: nothing more is forwarded, at once.
                video.switch = None;
                video.current = None;
                video.layers.push((self.now_us, None));
            } else {
                video.switch = Some((self.now_us + KEYFRAME_DELAY_US, target));
            }
        }
    }

    /// The first time at or after `from_us` that track `i` was on `layer`.
    fn reached(&self, i: usize, from_us: i64, layer: Option<u8>) -> Option<f64> {
        let video = &self.videos[i];
        let before = video
            .layers
            .iter()
            .rev()
            .find(|(at, _)| *at <= from_us)
            .map(|(_, l)| *l);
        if before == Some(layer) {
            return Some(0.0);
        }
        video
            .layers
            .iter()
            .find(|(at, l)| *at >= from_us && *l == layer)
            .map(|(at, _)| (at - from_us) as f64 / 1e6)
    }

    /// The share of `kinds`' packets sent in [from, to) that were lost.
    fn loss(&self, from_us: i64, to_us: i64, kinds: impl Fn(Kind) -> bool) -> f64 {
        let (lost, total) = self
            .reports
            .iter()
            .filter(|(at, kind, _)| (from_us..to_us).contains(at) && kinds(*kind))
            .fold((0, 0), |(lost, total), (_, _, l)| {
                (lost + u32::from(*l), total + 1)
            });
        f64::from(lost) / f64::from(total.max(1))
    }

    fn frozen_s(&self, i: usize, from_us: i64, to_us: i64) -> f64 {
        self.videos[i]
            .freezes
            .iter()
            .filter(|(at, _)| (from_us..to_us).contains(at))
            .map(|(_, us)| *us as f64 / 1e6)
            .sum()
    }

    fn trace(&self) {
        if std::env::var_os("BWE_TRACE").is_none() {
            return;
        }
        for (at, bps) in self.estimates.iter().step_by(2) {
            let layers: Vec<_> = (0..self.videos.len())
                .map(|i| {
                    self.videos[i]
                        .layers
                        .iter()
                        .rev()
                        .find(|(t, _)| t <= at)
                        .and_then(|(_, l)| *l)
                })
                .collect();
            eprintln!(
                "{:6.2} s estimate {bps:>8} layers {layers:?}",
                *at as f64 / 1e6
            );
        }
    }
}

fn is_media(kind: Kind) -> bool {
    kind != Kind::Padding
}

#[test]
fn a_capped_subscriber_steps_down_to_q_at_once_and_climbs_back_when_the_cap_lifts() {
    let mut link = Link::new(20_000_000.0);
    link.max_queue_us = 100_000;
    let mut sim = Sim::new(link, 1, &[(Priority::Other, Some(2))]);
    sim.run(10.0);
    assert_eq!(sim.videos[0].current, Some(2));
    let capped = sim.now_us;
    sim.path.link.capacity_bps = 600_000.0;
    sim.run(30.0);
    let lifted = sim.now_us;
    sim.path.link.capacity_bps = 20_000_000.0;
    sim.run(20.0);
    sim.trace();

    let to_q = sim.reached(0, capped, Some(0)).expect("reached q");
    assert!(to_q <= 3.0, "{to_q} s to q");
    let loss = sim.loss(capped + 3_000_000, lifted, is_media);
    assert!(loss < 0.02, "{:.1} % lost while capped", loss * 100.0);
    assert!(
        sim.videos[0].layers.iter().all(|(_, l)| l.is_some()),
        "never paused"
    );
    let to_f = sim.reached(0, lifted, Some(2)).expect("back on f");
    if std::env::var_os("BWE_TRACE").is_some() {
        eprintln!(
            "{to_q} s to q, {:.2} % lost, {to_f} s back to f",
            loss * 100.0
        );
    }
    assert!(to_f <= 10.0, "{to_f} s back to f");
    assert_eq!(sim.frozen_s(0, 0, sim.now_us), 0.0);
}

#[test]
fn loss_jitter_and_a_busy_receiver_never_step_a_subscriber_down() {
    let impaired = |configure: &dyn Fn(&mut Sim)| {
        let mut sim = Sim::new(Link::new(20_000_000.0), 1, &[(Priority::Other, Some(2))]);
        configure(&mut sim);
        sim.run(30.0);
        sim.trace();
        sim
    };
    type Impairment<'a> = (&'a str, &'a dyn Fn(&mut Sim));
    let cases: [Impairment; 4] = [
        ("5 % random loss", &|sim| sim.path.link.random_loss = 0.05),
        ("2 % in bursts of 3-8", &|sim| {
            sim.path.link.burst_start = 0.02 / 5.5
        }),
        ("+-30 ms jitter", &|sim| {
            sim.path.stamping = Stamping::Jitter {
                jitter_us: 30_000,
                reorder: false,
            }
        }),
        ("a stalling receiver", &|sim| {
            sim.path.stamping = Stamping::Stalls {
                mean_gap_us: 300_000,
                max_stall_us: 300_000,
            }
        }),
    ];
    for (name, configure) in cases {
        let sim = impaired(configure);
        assert_eq!(
            sim.videos[0].layers.len(),
            1,
            "{name}: {:?}",
            sim.videos[0].layers
        );
    }
}

#[test]
fn at_350_kbps_the_speaker_keeps_video_and_the_others_pause_until_the_cap_lifts() {
    let mut link = Link::new(20_000_000.0);
    link.max_queue_us = 100_000;
    let videos = [
        (Priority::Speaker, Some(2)),
        (Priority::Other, Some(2)),
        (Priority::Other, Some(2)),
        (Priority::Other, Some(2)),
    ];
    let mut sim = Sim::new(link, 4, &videos);
    // Lower-rate audio (24 kbps of Opus, 32 kbps in all): four tracks of 48 kbps and q
    // would fill 98 % of the cap.
    sim.audio_packet = 80;
    sim.run(5.0);
    let capped = sim.now_us;
    sim.path.link.capacity_bps = 350_000.0;
    sim.run(30.0);
    let lifted = sim.now_us;
    sim.path.link.capacity_bps = 20_000_000.0;
    sim.run(20.0);
    sim.trace();

    let settled = capped + 3_000_000;
    let audio_loss = sim.loss(settled, lifted, |k| k == Kind::Audio);
    assert!(audio_loss < 0.01, "{:.1} % audio lost", audio_loss * 100.0);
    assert_eq!(
        sim.reached(0, settled, Some(0)),
        Some(0.0),
        "the speaker on q"
    );
    for i in 1..4 {
        let paused = sim.reached(i, capped, None).expect("paused");
        assert!(paused <= 3.0, "track {i} paused after {paused} s");
        assert!(sim.reached(i, lifted, Some(2)).expect("resumed") <= 15.0);
    }
    assert_eq!(sim.frozen_s(0, settled, sim.now_us), 0.0);
}

#[test]
fn a_sudden_cap_costs_the_audio_a_fraction_of_a_second() {
    // Four videos and their audio at 3–6 Mbit/s, then a 500 kbit/s link with 200 ms of
    // queue (the lab's scenario 4). The first feedback that shows the queue overflowing
    // says what the link carries; the estimate goes there and the session reallocates at
    // once. Cutting to the smoothed throughput, window after window, took 2 s and lost
    // 22–43 % of the audio in the cap's first 3 s.
    for (who, requested) in [("all on f", [2u8, 2, 2, 2]), ("a grid", [2, 0, 0, 0])] {
        let mut link = Link::new(20_000_000.0);
        link.max_queue_us = 200_000;
        let videos: Vec<_> = requested
            .iter()
            .enumerate()
            .map(|(i, &wish)| {
                let priority = if i == 0 {
                    Priority::Speaker
                } else {
                    Priority::Other
                };
                (priority, Some(wish))
            })
            .collect();
        let mut sim = Sim::new(link, 4, &videos);
        sim.run(8.0);
        let capped = sim.now_us;
        sim.path.link.capacity_bps = 500_000.0;
        sim.run(5.0);
        sim.trace();
        let audio = |k| k == Kind::Audio;
        let first = sim.loss(capped, capped + 3_000_000, audio);
        assert!(
            first < 0.12,
            "{who}: {:.1} % of the audio lost in the cap's first 3 s",
            first * 100.0
        );
        assert_eq!(
            sim.reached(0, capped, Some(0)).map(|s| s <= 1.0),
            Some(true)
        );
    }
}
