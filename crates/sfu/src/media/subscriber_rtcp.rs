//! The RTCP of one subscribed track: keyframe requests from the subscriber go to the
//! publisher (throttled there), NACKs are answered from the publisher's packet cache, and a
//! sender report goes to the subscriber every second so it can sync audio with video.
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;

use super::down_track::DownTrack;
use super::published_track::PublishedTrack;
use crate::stats::MediaCounters;

const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(sender: Arc<RTCRtpSender>, track: Arc<PublishedTrack>, down: Arc<DownTrack>) {
    let mut lost = Vec::new();
    let mut buf = Vec::new();
    // Spread the reports of many tracks over the second.
    let first = tokio::time::Instant::now() + SENDER_REPORT_INTERVAL.mul_f64(rand::random::<f64>());
    let mut reports = tokio::time::interval_at(first, SENDER_REPORT_INTERVAL);
    reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let packets = tokio::select! {
            read = sender.read_rtcp() => match read {
                Ok((packets, _)) => packets,
                Err(_) => break,
            },
            _ = reports.tick() => {
                if let Some(report) = down.sender_report(Instant::now(), SystemTime::now()) {
                    let _ = sender.transport().write_rtcp(&[Box::new(report)]).await;
                }
                continue;
            }
        };
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
                lost.clear();
                for pair in &nack.nacks {
                    lost.extend(pair.packet_list());
                }
                track.answer_nack(&down, &lost, &mut buf);
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
