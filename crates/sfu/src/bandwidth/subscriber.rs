//! One subscriber connection's estimator with what feeds it: the send history the egress
//! writes, and the RTCP feedback the subscriber sends back (transport-cc, or REMB and
//! receiver-report loss from clients without it).
use std::time::Instant;

use parking_lot::Mutex;
use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtcp::receiver_report::ReceiverReport;
use rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;

use super::{BandwidthEstimator, EstimatorConfig, FeedbackParser, PacketResult, SendHistory};
use crate::media::allocator::Estimate;

/// Where the estimate starts; the allocator does not limit anyone until the estimator has
/// seen congestion, by which time the estimate follows what was delivered.
const INITIAL_BPS: u64 = 1_000_000;

pub struct SubscriberBandwidth {
    pub history: SendHistory,
    inner: Mutex<Inner>,
}

struct Inner {
    estimator: BandwidthEstimator,
    parser: FeedbackParser,
    results: Vec<PacketResult>,
    /// Whether any feedback arrived: without it there is nothing to go on.
    heard: bool,
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
            }),
        }
    }

    /// Feeds one RTCP packet from the subscriber; packets that say nothing about
    /// bandwidth are ignored.
    pub fn on_rtcp(&self, now: Instant, packet: &(dyn rtcp::packet::Packet + Send + Sync)) {
        let any = packet.as_any();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let congested_before = inner.estimator.last_overuse();
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
    }

    /// What the allocator needs, once the subscriber has given any feedback.
    pub fn estimate(&self) -> Option<Estimate> {
        let inner = self.inner.lock();
        inner.heard.then(|| Estimate {
            bps: inner.estimator.estimate_bps(),
            acked_bps: inner.estimator.acked_bps(),
            last_congestion: inner.estimator.last_overuse(),
        })
    }

    /// A probe delivered `bps` without congestion.
    pub fn on_probe_result(&self, bps: u64) {
        self.inner.lock().estimator.on_probe_result(bps);
    }
}
