//! Per-subscriber bandwidth estimation, in the spirit of Google Congestion Control
//! (draft-ietf-rmcat-gcc-02), all synchronous and driven by times passed in.
//!
//! The pipeline, for one subscriber connection:
//!
//! 1. **History.** As the egress sends each packet it stamps a transport-wide sequence
//!    number and calls [`SendHistory::record`] with the packet's size and send time. That
//!    is one atomic store into a fixed 32 KiB ring, safe from any forwarding thread.
//! 2. **Feedback.** The subscriber's browser answers with transport-cc feedback (RTCP
//!    `TransportLayerCc`): for a range of sequence numbers, which arrived and when, on its
//!    own clock. [`FeedbackParser::parse`] decodes that and joins it with the history into
//!    [`PacketResult`]s: size, when we sent it, when (or whether) it arrived.
//! 3. **Estimator.** [`BandwidthEstimator::on_packet_results`] looks at the results two
//!    ways. Delay: the smallest one-way delay of each 50 ms of arrivals, above the path's
//!    own, is the queue at the bottleneck; when it stands above an adaptive threshold and
//!    grows, that is overuse, and the estimate is cut, held or grown accordingly, never far
//!    above what the receiver actually acknowledged. Late readings at a busy receiver or
//!    jitter delay only some packets and leave that floor alone. Loss: more than 10 % lost
//!    *while a queue stands* cuts the estimate; loss without a queue is random and does
//!    not (unless over a quarter is lost). The lower of the two estimates wins.
//! 4. **Grading.** [`SubscriberBandwidth::estimate`] tells the allocator the estimate and
//!    how strong the evidence of congestion is: sustained (limit layers) or lossy (pause).
//!
//! Browsers that send no transport-cc are covered by [`BandwidthEstimator::on_remb`]
//! and [`BandwidthEstimator::on_receiver_loss`].

mod acked_rate;
mod acked_throughput;
#[cfg(test)]
mod adaptation_tests;
mod delay;
pub mod estimator;
pub mod feedback;
mod loss;
mod overflow;
pub mod padding;
pub mod prober;
mod rate;
pub mod send_history;
pub mod subscriber;
#[cfg(test)]
pub(crate) mod test_util;

pub use delay::Usage;
pub use estimator::{BandwidthEstimator, EstimatorConfig};
pub use feedback::{FeedbackParser, PacketResult};
pub use padding::PaddingPacer;
pub use prober::{ProbeOutcome, Prober};
pub use send_history::{SendHistory, SentPacket, HISTORY_SLOTS};
pub use subscriber::{Estimate, SubscriberBandwidth};
