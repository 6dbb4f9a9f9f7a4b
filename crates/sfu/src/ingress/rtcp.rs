//! The peer's SRTCP on the fast path: what a subscriber says about the tracks the server
//! sends it (NACKs, PLI/FIR, receiver reports, transport-cc feedback, REMB) and a
//! publisher's sender reports, authenticated and decrypted with the connection's remote
//! keys on the socket's reader task and handed straight to the down tracks and the
//! connection's bandwidth estimator, instead of crossing webrtc-rs's SRTP session,
//! interceptors and each sender's `read_rtcp` task.
//!
//! A compound packet is taken only if every part of it is one of those and names a track
//! this connection sends (or, for a sender report, receives); anything else — a BYE, an
//! extended report, feedback about an SSRC the fast path does not know, a packet that
//! does not authenticate — goes on to webrtc-rs unchanged, which is why the packet is
//! decrypted in a copy on the stack (at most [`MAX_SRTCP`] bytes).
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use roomcast_udp::Verdict;
use rtcp::packet::Packet as RtcpPacket;
use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtcp::receiver_report::ReceiverReport;
use rtcp::sender_report::SenderReport;
use rtcp::source_description::SourceDescription;
use rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

use super::{Ingress, Subscribed};
use crate::media::subscriber_rtcp::{lost_of, round_trip};
use crate::srtp::ReplayWindow;
use crate::stats::MediaCounters;

/// SRTCP longer than this is left to webrtc-rs (browsers send a few hundred bytes).
pub const MAX_SRTCP: usize = 1500;
/// Sending SSRCs whose SRTCP replay window is kept; a peer sends RTCP from a few.
const MAX_RTCP_SENDERS: usize = 16;

/// What the fast path does with one part of a compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A publisher's sender report about one of the streams the fast path receives.
    SenderReport,
    /// Feeds the estimator; a receiver report also gives the round trip.
    Bandwidth,
    /// A subscriber lost packets of the `n`th subscribed track.
    Nack(usize),
    /// A subscriber wants a keyframe of the `n`th subscribed track.
    Keyframe(usize),
    /// Nothing to do (SDES).
    Ignored,
    /// Not ours: the whole compound goes to webrtc-rs.
    Unknown,
}

/// The SRTCP replay windows of the peer's sending SSRCs.
#[derive(Default)]
pub(super) struct RtcpState {
    windows: Vec<(u32, ReplayWindow)>,
    /// Sequence numbers of the NACK being answered.
    lost: Vec<u16>,
}

impl RtcpState {
    fn window(&mut self, ssrc: u32) -> &mut ReplayWindow {
        let at = match self.windows.iter().position(|(s, _)| *s == ssrc) {
            Some(at) => at,
            None => {
                if self.windows.len() >= MAX_RTCP_SENDERS {
                    // The oldest sender's window goes; its next packet starts a new one.
                    self.windows.remove(0);
                }
                self.windows.push((ssrc, ReplayWindow::default()));
                self.windows.len() - 1
            }
        };
        &mut self.windows[at].1
    }
}

impl Ingress {
    /// One SRTCP datagram from the peer, arrived at `at`.
    pub(super) fn receive_rtcp(&self, packet: &[u8], at: Instant) -> Verdict {
        if packet.len() > MAX_SRTCP {
            return Verdict::Pass;
        }
        let keys = self.keys.load();
        let Some(keys) = keys.as_ref() else {
            return Verdict::Pass;
        };
        let Some((sender, index)) = keys.rtcp_index(packet) else {
            return Verdict::Pass;
        };
        if self
            .rtcp
            .lock()
            .window(sender)
            .check(u64::from(index))
            .is_err()
        {
            // Only packets the fast path took are in its window: webrtc-rs never saw it.
            self.counters.rtcp_replayed.fetch_add(1, Ordering::Relaxed);
            return Verdict::Consumed;
        }
        let mut copy = [0u8; MAX_SRTCP];
        let copy = &mut copy[..packet.len()];
        copy.copy_from_slice(packet);
        let Ok(len) = keys.unprotect_rtcp(copy) else {
            return Verdict::Pass;
        };
        let Ok(parts) = rtcp::packet::unmarshal(&mut &copy[..len]) else {
            return Verdict::Pass;
        };
        let subscribed = self.subscribed.load();
        let mut kinds = [Part::Unknown; 8];
        if parts.len() > kinds.len() {
            return Verdict::Pass;
        }
        for (kind, part) in kinds.iter_mut().zip(&parts) {
            *kind = self.classify(part.as_ref(), &subscribed);
            if *kind == Part::Unknown {
                // Sender reports are still read; everything goes to webrtc-rs.
                self.read_sender_reports(&parts, at);
                return Verdict::Pass;
            }
        }
        self.rtcp.lock().window(sender).accept(u64::from(index));
        self.counters.rtcp.fetch_add(1, Ordering::Relaxed);
        let wall = SystemTime::now();
        for (kind, part) in kinds.iter().zip(&parts) {
            self.dispatch(*kind, part.as_ref(), &subscribed, at, wall);
        }
        Verdict::Consumed
    }

    fn classify(&self, part: &(dyn RtcpPacket + Send + Sync), subscribed: &[Subscribed]) -> Part {
        let any = part.as_any();
        let by_ssrc = |ssrc: u32| subscribed.iter().position(|s| s.down.ssrc() == ssrc);
        if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
            by_ssrc(nack.media_ssrc).map_or(Part::Unknown, Part::Nack)
        } else if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
            by_ssrc(pli.media_ssrc).map_or(Part::Unknown, Part::Keyframe)
        } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
            fir.fir
                .iter()
                .map(|e| e.ssrc)
                .chain([fir.media_ssrc])
                .find_map(by_ssrc)
                .map_or(Part::Unknown, Part::Keyframe)
        } else if any.is::<TransportLayerCc>()
            || any.is::<ReceiverReport>()
            || any.is::<ReceiverEstimatedMaximumBitrate>()
        {
            Part::Bandwidth
        } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
            // A subscriber that also publishes reports on what it receives in its own
            // sender reports; the server reads only the timing of the publisher's.
            if self.stream(sr.ssrc).is_some() {
                Part::SenderReport
            } else {
                Part::Unknown
            }
        } else if any.is::<SourceDescription>() {
            Part::Ignored
        } else {
            Part::Unknown
        }
    }

    fn dispatch(
        &self,
        kind: Part,
        part: &(dyn RtcpPacket + Send + Sync),
        subscribed: &[Subscribed],
        at: Instant,
        wall: SystemTime,
    ) {
        let any = part.as_any();
        match kind {
            Part::SenderReport => self.read_sender_report(any.downcast_ref(), at),
            Part::Bandwidth => {
                // The estimate is the connection's, whichever stream the feedback names.
                self.egress.bandwidth.on_rtcp(at, part);
                if let Some(report) = any.downcast_ref::<ReceiverReport>() {
                    for s in subscribed {
                        if let Some(rtt) = round_trip(report, s.down.ssrc(), wall) {
                            self.egress.set_rtt(rtt);
                        }
                    }
                }
            }
            Part::Nack(n) => {
                let (Some(s), Some(nack)) =
                    (subscribed.get(n), any.downcast_ref::<TransportLayerNack>())
                else {
                    return;
                };
                let mut state = self.rtcp.lock();
                lost_of(nack, &mut state.lost);
                let mut scratch = self.scratch.lock();
                s.track.answer_nack(&s.down, &state.lost, at, &mut scratch);
            }
            Part::Keyframe(n) => {
                let Some(s) = subscribed.get(n) else {
                    return;
                };
                MediaCounters::add(&s.track.counters.plis_received, 1);
                // The layer it is on; one it waits for is asked for by the forwarding path.
                if let Some(layer) = s.down.layer_state().current {
                    // Throttled by the track; a full queue drops it, and the subscriber asks
                    // again.
                    let _ = self.keyframes.try_send((Arc::clone(&s.track), layer));
                }
            }
            Part::Ignored | Part::Unknown => {}
        }
    }

    /// Notes the sender reports among `parts` (a compound packet that goes on to
    /// webrtc-rs).
    fn read_sender_reports(&self, parts: &[Box<dyn RtcpPacket + Send + Sync>], at: Instant) {
        for part in parts {
            self.read_sender_report(part.as_any().downcast_ref(), at);
        }
    }

    fn read_sender_report(&self, sr: Option<&SenderReport>, at: Instant) {
        if let Some(stream) = sr.and_then(|sr| self.stream(sr.ssrc)) {
            let ntp = sr.map_or(0, |sr| sr.ntp_time);
            stream.state.lock().stats.on_sender_report(ntp, at);
        }
    }
}
