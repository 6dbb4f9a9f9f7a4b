//! One subscriber connection's estimator with what feeds it: the send history the egress
//! writes, and the RTCP feedback the subscriber sends back (transport-cc, or REMB and
//! receiver-report loss from clients without it). It grades the congestion it has seen for
//! the allocator: nothing limits anyone until congestion is sustained, and nothing pauses a
//! track until packets are lost to it: a signal that packets were only delayed must not
//! stop them. A busy receiver (or a busy server) delays every packet it reads late, for as
//! long as it stays busy, so even delay that lasts is no evidence that the path cannot
//! carry the video; a full bottleneck queue drops packets, and that is.
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtcp::receiver_report::ReceiverReport;
use rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;

use super::{
    BandwidthEstimator, EstimatorConfig, FeedbackParser, PacketResult, ProbeOutcome, SendHistory,
};

/// Delay-only congestion counts once its signals have lasted this long: a transient delay
/// spike, such as the keyframe burst when a subscriber joins a busy room, limits nobody.
const SUSTAINED: Duration = Duration::from_secs(1);
/// Signals further apart than this belong to separate episodes: overuse that goes on is
/// signalled with every feedback, while blips (a keyframe's queue) come seconds apart.
const EPISODE_GAP: Duration = Duration::from_millis(500);
/// A failed probe's queue may still overflow after its padding stopped: signals this long
/// after the failure are the probe's too.
const PROBE_AFTERMATH: Duration = Duration::from_secs(1);

/// A queue seen again after this long is a new one, which the session hears of at once
/// (it may end a probe).
const QUEUE_GAP: Duration = Duration::from_millis(500);

/// Where the estimate starts; the allocator does not limit anyone until the estimator has
/// seen congestion, by which time the estimate follows what was delivered.
const INITIAL_BPS: u64 = 1_000_000;

pub struct SubscriberBandwidth {
    pub history: SendHistory,
    inner: Mutex<Inner>,
    /// Packets were lost to congestion (the estimate was cut), a feedback showed the path
    /// overflowing, or a queue began to show: the session reallocates now rather than at its
    /// next layer tick (ending a probe, or sending less), since every quarter second spent
    /// sending into an overflowing queue costs audio too.
    pub cut: tokio::sync::Notify,
}

struct Inner {
    estimator: BandwidthEstimator,
    parser: FeedbackParser,
    results: Vec<PacketResult>,
    /// Whether any feedback arrived: without it there is nothing to go on.
    heard: bool,
    episode: Episode,
    /// Signals in this span were caused by a failed probe, which found the path carried
    /// the rate (bps) it started from: (started, until, bps).
    forgiven: Option<(Instant, Instant, u64)>,
}

/// What the estimator says, as far as allocation cares.
#[derive(Debug, Clone, Copy)]
pub struct Estimate {
    pub bps: u64,
    pub acked_bps: u64,
    /// The last signal of congestion that limits layers: sustained delay overuse, or loss
    /// to congestion.
    pub last_congestion: Option<Instant>,
    /// The last signal of congestion strong enough to pause a track: packets lost to it.
    pub last_severe: Option<Instant>,
    /// The last signal of any kind, however brief: it ends a probe.
    pub last_overuse: Option<Instant>,
    /// When the delay signal last showed a queue at the bottleneck, standing or growing,
    /// however briefly: a probe that raises one has found the path full before it loses
    /// anything.
    pub last_queue: Option<Instant>,
}

/// A run of congestion signals (delay overuse or loss cuts) no more than
/// [`EPISODE_GAP`] apart.
#[derive(Debug, Default)]
struct Episode {
    start: Option<Instant>,
    last: Option<Instant>,
    /// The last signal of an episode that had lasted [`SUSTAINED`] or lost packets.
    sustained: Option<Instant>,
    /// The last signal that came with packets lost to congestion.
    severe: Option<Instant>,
}

impl Episode {
    /// A congestion signal at `at`; `lossy` when loss cut the estimate.
    fn signal(&mut self, at: Instant, lossy: bool) {
        let continues = self
            .last
            .is_some_and(|last| at.saturating_duration_since(last) <= EPISODE_GAP);
        if !continues {
            self.start = Some(at);
        }
        self.last = Some(at);
        let lasted = self
            .start
            .map_or(Duration::ZERO, |start| at.saturating_duration_since(start));
        if lossy || lasted >= SUSTAINED {
            self.sustained = Some(at);
        }
        if lossy {
            self.severe = Some(at);
        }
    }
}

impl SubscriberBandwidth {
    pub fn new(now: Instant) -> Self {
        SubscriberBandwidth {
            history: SendHistory::new(now),
            inner: Mutex::new(Inner {
                estimator: BandwidthEstimator::new(
                    EstimatorConfig {
                        initial_bps: INITIAL_BPS,
                        ..EstimatorConfig::default()
                    },
                    now,
                ),
                parser: FeedbackParser::new(),
                results: Vec::new(),
                heard: false,
                episode: Episode::default(),
                forgiven: None,
            }),
            cut: tokio::sync::Notify::new(),
        }
    }

    /// Feeds one RTCP packet from the subscriber; packets that say nothing about
    /// bandwidth are ignored.
    pub fn on_rtcp(&self, now: Instant, packet: &(dyn rtcp::packet::Packet + Send + Sync)) {
        let any = packet.as_any();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let congested_before = inner.estimator.last_overuse();
        let loss_cut_before = inner.estimator.last_loss_cut();
        let overflow_before = inner.estimator.last_overflow();
        let queue_before = inner.estimator.last_queue();
        if let Some(feedback) = any.downcast_ref::<TransportLayerCc>() {
            inner
                .parser
                .parse(feedback, &self.history, &mut inner.results);
            inner.estimator.on_packet_results(now, &inner.results);
            inner.heard = true;
            if inner.estimator.last_overuse() != congested_before {
                let lost = inner.results.iter().filter(|r| !r.received()).count();
                tracing::debug!(
                    estimate_bps = inner.estimator.estimate_bps(),
                    acked_bps = inner.estimator.acked_bps(),
                    usage = ?inner.estimator.usage(),
                    lost,
                    reported = inner.results.len(),
                    "subscriber congestion"
                );
            }
        } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
            inner.estimator.on_remb(now, remb.bitrate as u64);
            inner.heard = true;
        } else if let Some(report) = any.downcast_ref::<ReceiverReport>() {
            for block in &report.reports {
                inner
                    .estimator
                    .on_receiver_loss(now, f64::from(block.fraction_lost) / 256.0);
            }
            inner.heard = true;
        }
        if let Some(at) = inner.estimator.last_overuse() {
            if Some(at) != congested_before {
                let forgiven = inner
                    .forgiven
                    .filter(|(started, until, _)| (*started..=*until).contains(&at));
                if let Some((_, _, bps)) = forgiven {
                    // The probe's queue still draining: no evidence against the media.
                    inner.estimator.on_probe_failed(bps);
                }
                let lossy = inner.estimator.last_loss_cut() != loss_cut_before;
                inner.episode.signal(at, lossy && forgiven.is_none());
            }
        }
        let queue_began = inner.estimator.last_queue().is_some_and(|at| {
            queue_before.is_none_or(|before| at.saturating_duration_since(before) > QUEUE_GAP)
        });
        if inner.estimator.last_loss_cut() != loss_cut_before
            || inner.estimator.last_overflow() != overflow_before
            || queue_began
        {
            self.cut.notify_one();
        }
    }

    /// What the allocator needs, once the subscriber has given any feedback. Congestion is
    /// reported only once sustained or lossy (see [`Estimate`]).
    pub fn estimate(&self) -> Option<Estimate> {
        let inner = self.inner.lock();
        inner.heard.then(|| Estimate {
            bps: inner.estimator.estimate_bps(),
            acked_bps: inner.estimator.acked_bps(),
            last_congestion: inner.episode.sustained,
            last_severe: inner.episode.severe,
            last_overuse: inner.estimator.last_overuse(),
            last_queue: inner.estimator.last_queue(),
        })
    }

    /// How a probe of the allocator ended: a rate the path carried, or a failure whose
    /// congestion (since it started) was the probe's own doing.
    pub fn on_probe(&self, outcome: ProbeOutcome) {
        let mut inner = self.inner.lock();
        match outcome {
            ProbeOutcome::Carried(bps) => inner.estimator.on_probe_result(bps),
            ProbeOutcome::Failed {
                started,
                before_bps,
            } => {
                inner.estimator.on_probe_failed(before_bps);
                let severe = &mut inner.episode.severe;
                *severe = severe.filter(|&at| at < started);
                let until = inner
                    .estimator
                    .last_overuse()
                    .map_or(started, |at| at.max(started))
                    + PROBE_AFTERMATH;
                inner.forgiven = Some((started, until, before_bps));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_spike_is_not_congestion_but_a_second_of_signals_is() {
        let t0 = Instant::now();
        let mut e = Episode::default();
        e.signal(t0, false);
        e.signal(t0 + Duration::from_millis(300), false);
        assert_eq!(e.sustained, None, "a join burst");
        // A new episode after a quiet gap starts over.
        let t1 = t0 + Duration::from_secs(5);
        for ms in [0, 300, 600, 900] {
            e.signal(t1 + Duration::from_millis(ms), false);
        }
        assert_eq!(e.sustained, None);
        e.signal(t1 + Duration::from_millis(1100), false);
        assert_eq!(e.sustained, Some(t1 + Duration::from_millis(1100)));
        assert_eq!(e.severe, None, "delay alone, for a second, pauses nothing");
    }

    #[test]
    fn only_loss_is_evidence_enough_to_pause() {
        let t0 = Instant::now();
        let mut e = Episode::default();
        e.signal(t0, true);
        assert_eq!((e.sustained, e.severe), (Some(t0), Some(t0)));
        // A busy machine: delay overuse every 100 ms for ten seconds, nothing lost.
        // It limits layers, and pauses nothing.
        let t1 = t0 + Duration::from_secs(10);
        for ms in (0..=10_000).step_by(100) {
            e.signal(t1 + Duration::from_millis(ms), false);
        }
        assert_eq!(e.sustained, Some(t1 + Duration::from_secs(10)));
        assert_eq!(e.severe, Some(t0), "still the lossy signal from before");
        e.signal(t1 + Duration::from_millis(10_200), true);
        assert_eq!(e.severe, Some(t1 + Duration::from_millis(10_200)));
        // Blips a second apart are no episode at all.
        let t2 = t1 + Duration::from_secs(20);
        for s in 0..10 {
            e.signal(t2 + Duration::from_secs(s), false);
        }
        assert_eq!(e.sustained, Some(t1 + Duration::from_millis(10_200)));
    }
}
