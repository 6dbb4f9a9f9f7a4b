//! Reads the RTCP a subscriber sends about one track: keyframe requests go to the publisher
//! (throttled there), NACKs are answered from the publisher's packet cache.
use std::sync::Arc;

use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;

use super::down_track::DownTrack;
use super::published_track::PublishedTrack;
use crate::stats::MediaCounters;

pub async fn run(sender: Arc<RTCRtpSender>, track: Arc<PublishedTrack>, down: Arc<DownTrack>) {
    let mut lost = Vec::new();
    while let Ok((packets, _)) = sender.read_rtcp().await {
        let mut wants_keyframe = false;
        for packet in &packets {
            let any = packet.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                wants_keyframe = true;
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                lost.clear();
                for pair in &nack.nacks {
                    lost.extend(pair.packet_list());
                }
                track.answer_nack(&down, &lost).await;
            }
        }
        if wants_keyframe {
            MediaCounters::add(&track.counters.plis_received, 1);
            track.request_keyframe().await;
        }
    }
}
