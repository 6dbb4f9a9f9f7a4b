use super::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// An RTP packet with the transport-cc extension (one-byte, id 3).
fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 0];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x31]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.push(0);
    p.extend_from_slice(&[0; 20]);
    p
}

fn receiver(epoch: Instant) -> TransportFeedback {
    let mux = UdpMux::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).expect("a socket");
    let egress = Arc::new(crate::egress::Egress::new(Arc::clone(&mux)));
    TransportFeedback::new(mux, egress, epoch)
}

fn at(epoch: Instant, ms: u64) -> Received {
    Received {
        from: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5000),
        local: IpAddr::V4(Ipv4Addr::LOCALHOST),
        at: epoch + Duration::from_millis(ms),
    }
}

#[test]
fn every_ssrc_is_acknowledged_probes_included() {
    let epoch = Instant::now();
    let feedback = receiver(epoch);
    feedback.set_extension_id(Some(3));
    // Media, RTX padding, an SSRC 0 probe, a layer nobody bound: one sequence.
    for (seq, ssrc) in [
        (100, 0xAAAA),
        (101, 0xBBBB),
        (102, 0),
        (103, 0xCCCC),
        (104, 0),
    ] {
        let mut packet = rtp(ssrc, seq);
        let verdict = feedback.receive(&mut packet, &at(epoch, u64::from(seq)));
        assert_eq!(verdict, Verdict::Pass, "webrtc-rs still gets it");
        assert_eq!(packet, rtp(ssrc, seq), "unchanged");
    }
    let mut out = Vec::new();
    feedback.build(&mut out);
    assert_eq!(out.len(), 1);
    let fb = &out[0];
    assert_eq!(fb.base_sequence_number, 100);
    assert_eq!(fb.packet_status_count, 5);
    assert_eq!(fb.recv_deltas.len(), 5, "all five received");
    assert_eq!(
        fb.media_ssrc, 0xCCCC,
        "the latest stream that is not SSRC 0"
    );
    assert_ne!(fb.sender_ssrc, 0);
    out.clear();
    feedback.build(&mut out);
    assert!(out.is_empty(), "nothing new");
}

#[test]
fn nothing_is_recorded_without_the_extension_or_from_rtcp() {
    let epoch = Instant::now();
    let feedback = receiver(epoch);
    feedback.on_datagram(&rtp(1, 1), epoch);
    feedback.set_extension_id(Some(3));
    let mut rtcp = rtp(1, 2);
    rtcp[1] = 200; // a sender report
    feedback.on_datagram(&rtcp, epoch);
    feedback.on_datagram(&rtp(1, 3)[..14], epoch);
    let mut out = Vec::new();
    feedback.build(&mut out);
    assert!(out.is_empty(), "{out:?}");
    feedback.set_extension_id(None);
    feedback.on_datagram(&rtp(1, 4), epoch);
    feedback.build(&mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn reads_the_ufrag_and_the_transport_cc_id() {
    let sdp = format!(
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:AbCd\r\n\
         a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
         a=extmap:5/recvonly {TRANSPORT_CC_URI}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
         a=ice-ufrag:AbCd\r\na=extmap:5 {TRANSPORT_CC_URI}\r\n"
    );
    assert_eq!(negotiated(&sdp), (Some("AbCd"), Some(5)));
    assert_eq!(negotiated("v=0\r\n"), (None, None));
    let bad = format!("a=extmap:x {TRANSPORT_CC_URI}\r\na=extmap:0 {TRANSPORT_CC_URI}\r\n");
    assert_eq!(negotiated(&bad), (None, None));
}

#[test]
fn only_the_peers_media_wakes_the_timer() {
    use futures_util::FutureExt;
    let epoch = Instant::now();
    let feedback = receiver(epoch);
    let mut report = rtp(1, 1);
    report[1] = 201; // a receiver report: all a subscriber sends
    assert_eq!(feedback.receive(&mut report, &at(epoch, 0)), Verdict::Pass);
    assert!(!feedback.receiving());
    assert!(
        feedback.media.notified().now_or_never().is_none(),
        "still waiting"
    );
    let mut media = rtp(1, 2);
    feedback.receive(&mut media, &at(epoch, 1));
    assert!(feedback.receiving());
    assert!(feedback.media.notified().now_or_never().is_some(), "woken");
}

#[tokio::test]
async fn a_timer_waiting_for_media_ends_with_its_receiver() {
    let feedback = Arc::new(receiver(Instant::now()));
    let timer = tokio::spawn(send_feedback(Arc::downgrade(&feedback), Weak::new()));
    tokio::task::yield_now().await; // waiting on `media` now (or soon: the wake-up keeps)
    drop(feedback);
    tokio::time::timeout(Duration::from_secs(5), timer)
        .await
        .expect("the timer ended")
        .expect("without panicking");
}
