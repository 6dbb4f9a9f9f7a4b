//! The RTCP of one subscribed track: keyframe requests from the subscriber go to the
//! publisher (throttled there), NACKs are answered from the publisher's packet cache, and
//! the subscriber's receiver reports give the round trip, which paces retransmissions.
//! Sender reports go out with the forwarded packets ([`DownTrack::forward`]).
//!
//! Most of a subscriber's RTCP no longer comes this way: the connection's receive fast
//! path ([`crate::ingress::rtcp`]) takes it off the socket and does the same. What it
//! leaves to webrtc-rs (RTCP it does not know, or before it has the keys) arrives here.
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtcp::receiver_report::ReceiverReport;
use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;

use super::down_track::{ntp_time, DownTrack};
use super::published_track::PublishedTrack;
use crate::stats::MediaCounters;

pub async fn run(sender: Arc<RTCRtpSender>, track: Arc<PublishedTrack>, down: Arc<DownTrack>) {
    let mut lost = Vec::new();
    let mut buf = Vec::new();
    while let Ok((packets, _)) = sender.read_rtcp().await {
        let mut wants_keyframe = false;
        let now = Instant::now();
        for packet in &packets {
            // Transport-cc comes on whichever stream it names; the estimate is the
            // connection's.
            down.egress().bandwidth.on_rtcp(now, packet.as_ref());
            let any = packet.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                wants_keyframe = true;
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                lost_of(nack, &mut lost);
                track.answer_nack(&down, &lost, now, &mut buf);
            } else if let Some(report) = any.downcast_ref::<ReceiverReport>() {
                if let Some(rtt) = round_trip(report, down.ssrc(), SystemTime::now()) {
                    down.egress().set_rtt(rtt);
                }
            }
        }
        if wants_keyframe {
            MediaCounters::add(&track.counters.plis_received, 1);
            // The layer it is on; one it waits for is asked for by the forwarding path.
            if let Some(layer) = down.layer_state().current {
                track.request_keyframe(layer).await;
            }
        }
    }
}

/// The sequence numbers `nack` asks for, into `lost` (cleared first).
pub fn lost_of(nack: &TransportLayerNack, lost: &mut Vec<u16>) {
    lost.clear();
    for pair in &nack.nacks {
        lost.extend(pair.packet_list());
    }
}

/// The round trip from the subscriber's report about our sender reports on `ssrc`
/// (RFC 3550 6.4.1: arrival - LSR - DLSR, in 1/65536 s). None before any sender report
/// reached it, or for a value a clock step made absurd.
pub fn round_trip(report: &ReceiverReport, ssrc: u32, wall: SystemTime) -> Option<Duration> {
    let block = report
        .reports
        .iter()
        .find(|b| b.ssrc == ssrc && b.last_sender_report != 0)?;
    let arrival = (ntp_time(wall) >> 16) as u32;
    let units = arrival
        .wrapping_sub(block.last_sender_report)
        .wrapping_sub(block.delay);
    (units < 65_536 * 10).then(|| {
        Duration::from_micros(u64::from(units) * 1_000_000 / 65_536).max(Duration::from_millis(1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtcp::reception_report::ReceptionReport;

    #[test]
    fn the_round_trip_is_arrival_minus_the_report_and_its_delay() {
        let wall = SystemTime::now();
        let now = (ntp_time(wall) >> 16) as u32;
        // Our report left 70 ms ago; the subscriber held it 20 ms: 50 ms on the wire.
        let block = |ssrc, last_sender_report| ReceptionReport {
            ssrc,
            last_sender_report,
            delay: 65_536 * 20 / 1000,
            ..Default::default()
        };
        let report = |blocks| ReceiverReport {
            reports: blocks,
            ..Default::default()
        };
        let sent = now.wrapping_sub(65_536 * 70 / 1000);
        let rtt = round_trip(&report(vec![block(9, sent), block(7, sent)]), 7, wall)
            .expect("a round trip");
        assert!(
            rtt.abs_diff(Duration::from_millis(50)) < Duration::from_millis(1),
            "{rtt:?}"
        );
        assert_eq!(
            round_trip(&report(vec![block(9, sent)]), 7, wall),
            None,
            "not ours"
        );
        assert_eq!(
            round_trip(&report(vec![block(7, 0)]), 7, wall),
            None,
            "no SR yet"
        );
        let future = now.wrapping_add(65_536);
        assert_eq!(
            round_trip(&report(vec![block(7, future)]), 7, wall),
            None,
            "clock step"
        );
    }
}
