//! The fast path end to end without sockets on the publisher side: SRTP the publisher
//! would send, offered as the media socket offers it, forwarded to a subscriber whose
//! packets are read back from a real UDP socket and decrypted.
use super::*;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use roomcast_protocol::{Track, TrackKind, TrackSource};
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTCRtpCodecParameters};
use webrtc::util::Marshal;

use crate::egress::Egress;
use crate::media::down_track::DownTrack;
use crate::srtp::SrtpProfile;

const SSRC: u32 = 0x1234_5678;
const PUBLISHER_KEY: [u8; 16] = [7; 16];
const PUBLISHER_SALT: [u8; 12] = [8; 12];
const SUBSCRIBER_KEY: [u8; 16] = [1; 16];
const SUBSCRIBER_SALT: [u8; 12] = [2; 12];
/// What the subscriber protects its RTCP with.
const SUBSCRIBER_RTCP_KEY: [u8; 16] = [3; 16];
const SUBSCRIBER_RTCP_SALT: [u8; 12] = [4; 12];
/// The SSRC the subscriber receives the track on.
const DOWN_SSRC: u32 = 7;
/// The subscriber's own SSRC in its RTCP.
const SUBSCRIBER_SSRC: u32 = 0x5555;

fn keys(key: &[u8; 16], salt: &[u8; 12]) -> SrtpSession {
    SrtpSession::new(SrtpProfile::AeadAes128Gcm, key, salt).expect("keys")
}

fn vp8() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        capability: RTCRtpCodecCapability {
            mime_type: "video/VP8".into(),
            clock_rate: 90_000,
            ..Default::default()
        },
        payload_type: 96,
        ..Default::default()
    }
}

/// A publisher's VP8 keyframe packet `seq`, its payload marked with `seq`, as SRTP.
fn srtp_from_publisher(seq: u16) -> Vec<u8> {
    let mut packet = vec![0x80, 96];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    packet.extend_from_slice(&SSRC.to_be_bytes());
    // VP8 descriptor, then a 640x360 keyframe's header.
    packet.extend_from_slice(&[
        0x10, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
    ]);
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&[0xAB; 200]);
    keys(&PUBLISHER_KEY, &PUBLISHER_SALT)
        .protect_rtp(&mut packet, 12, SSRC, seq, 0)
        .expect("protect");
    packet
}

struct Room {
    /// The publisher's connection.
    ingress: Ingress,
    track: Arc<PublishedTrack>,
    down: Arc<DownTrack>,
    /// The subscriber's connection: what the server sends it, and what it says back.
    egress: Arc<Egress>,
    from_subscriber: Ingress,
    subscriber: UdpSocket,
}

fn room() -> Room {
    let subscriber = UdpSocket::bind("127.0.0.1:0").expect("bind");
    subscriber
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mux = roomcast_udp::UdpMux::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).expect("bind");
    let egress = Arc::new(Egress::new(mux));
    egress.set_route(
        subscriber.local_addr().expect("address"),
        keys(&SUBSCRIBER_KEY, &SUBSCRIBER_SALT),
    );
    let track = Arc::new(PublishedTrack::new(
        Track {
            id: "TR_1".into(),
            kind: TrackKind::Video,
            source: TrackSource::Camera,
            simulcast: false,
            muted: false,
        },
        "PA_1".into(),
        "0".into(),
        vp8(),
        &[],
        std::sync::Weak::new(),
    ));
    let down = track.new_down_track(Arc::clone(&egress));
    down.bind_negotiated("ctx".into(), DOWN_SSRC, vec![vp8()], &[], None);
    down.activate();
    track.add_down_track(Arc::clone(&down));
    let mux = roomcast_udp::UdpMux::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).expect("bind");
    let ingress = Ingress::new(Arc::new(Egress::new(mux)), Instant::now());
    ingress.set_keys(keys(&PUBLISHER_KEY, &PUBLISHER_SALT));
    ingress.register(&track, LayerInput::for_codec(0, SSRC, vp8()));
    let from_subscriber = Ingress::new(Arc::clone(&egress), Instant::now());
    from_subscriber.set_keys(keys(&SUBSCRIBER_RTCP_KEY, &SUBSCRIBER_RTCP_SALT));
    from_subscriber.subscribe(&track, &down);
    Room {
        ingress,
        track,
        down,
        egress,
        from_subscriber,
        subscriber,
    }
}

/// The next packet the subscriber receives: its sequence number and the publisher's
/// sequence number its payload is marked with.
fn next_at_subscriber(socket: &UdpSocket) -> (u16, u16) {
    let mut buf = [0u8; 2048];
    let n = next_rtp(socket, &mut buf);
    let packet = &mut buf[..n];
    let header = RtpFields::parse(packet).expect("RTP");
    let len = keys(&SUBSCRIBER_KEY, &SUBSCRIBER_SALT)
        .unprotect_rtp(packet, header.len, header.ssrc, header.seq, 0)
        .expect("the subscriber's keys");
    let payload = &packet[header.len..len];
    (header.seq, u16::from_be_bytes([payload[11], payload[12]]))
}

/// The next packet the subscriber receives: its sequence number, and its transport-wide
/// sequence number (the only header extension, one-byte form).
fn transport_seq_at_subscriber(socket: &UdpSocket) -> (u16, u16) {
    let mut buf = [0u8; 2048];
    let n = next_rtp(socket, &mut buf);
    let header = RtpFields::parse(&buf[..n]).expect("RTP");
    assert_eq!(&buf[12..14], &[0xBE, 0xDE], "one-byte extensions");
    (header.seq, u16::from_be_bytes([buf[17], buf[18]]))
}

/// The length of the next RTP datagram the subscriber receives, into `buf`; the sender
/// reports that go with the forwarded packets are passed over.
fn next_rtp(socket: &UdpSocket, buf: &mut [u8]) -> usize {
    loop {
        let n = socket.recv(buf).expect("a packet for the subscriber");
        if !crate::ingress::is_rtcp(&buf[..n]) {
            return n;
        }
    }
}

/// A compound RTCP packet from the subscriber, as SRTCP packet number `index`.
fn srtcp_from_subscriber(parts: &[&dyn Marshal], index: u32) -> Vec<u8> {
    let mut packet = Vec::new();
    for part in parts {
        packet.extend_from_slice(&part.marshal().expect("marshal"));
    }
    keys(&SUBSCRIBER_RTCP_KEY, &SUBSCRIBER_RTCP_SALT)
        .protect_rtcp(&mut packet, index)
        .expect("protect");
    packet
}

/// Forwards the publisher's packets `seqs` and returns what the subscriber got of each.
fn publish(room: &Room, seqs: std::ops::RangeInclusive<u16>, at: Instant) -> Vec<(u16, u16)> {
    seqs.map(|seq| {
        let mut packet = srtp_from_publisher(seq);
        assert_eq!(room.ingress.receive(&mut packet, at), Verdict::Consumed);
        next_at_subscriber(&room.subscriber)
    })
    .collect()
}

fn nacked(ingress: &Ingress, now: Instant) -> Vec<u16> {
    let mut out = Vec::new();
    ingress.build_rtcp(now, &mut out);
    let mut lost = Vec::new();
    for packet in &out {
        if let Some(nack) = packet.as_any().downcast_ref::<TransportLayerNack>() {
            assert_eq!(nack.media_ssrc, SSRC);
            for pair in &nack.nacks {
                lost.extend(pair.packet_list());
            }
        }
    }
    lost
}

#[test]
fn a_lost_publisher_packet_is_nacked_and_reaches_the_subscriber() {
    let room = room();
    let t0 = Instant::now();
    // The gap wakes the connection's feedback task, which sends the NACK at once.
    let gaps = room.ingress.gaps();
    let woken = || {
        use std::future::Future;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::pin!(gaps.notified()).poll(&mut cx).is_ready()
    };
    for seq in (1..=10).filter(|&s| s != 5) {
        let mut packet = srtp_from_publisher(seq);
        assert_eq!(room.ingress.receive(&mut packet, t0), Verdict::Consumed);
        assert_eq!(woken(), seq == 6, "woken by the gap only, after {seq}");
    }
    let mut arrived: Vec<(u16, u16)> = (0..9)
        .map(|_| next_at_subscriber(&room.subscriber))
        .collect();
    assert_eq!(
        arrived.iter().map(|a| a.1).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 6, 7, 8, 9, 10]
    );
    // The publisher is asked for 5, once per retry interval.
    assert_eq!(nacked(&room.ingress, t0), vec![5]);
    assert!(nacked(&room.ingress, t0 + NACK_RETRY / 2).is_empty());
    assert_eq!(nacked(&room.ingress, t0 + NACK_RETRY), vec![5]);
    // It resends 5: the subscriber gets it, in its place in the subscriber's sequence.
    let mut resent = srtp_from_publisher(5);
    assert_eq!(room.ingress.receive(&mut resent, t0), Verdict::Consumed);
    arrived.push(next_at_subscriber(&room.subscriber));
    let (out_seq, marked) = arrived[9];
    assert_eq!(marked, 5);
    assert_eq!(out_seq, arrived[3].0.wrapping_add(1), "between 4 and 6");
    assert!(nacked(&room.ingress, t0 + NACK_RETRY * 3).is_empty());
    assert_eq!(room.ingress.counters.recovered.load(Ordering::Relaxed), 1);
    // The subscriber loses it in turn: answered from the cache the fast path filled.
    let mut buf = Vec::with_capacity(SEND_BUFFER_BYTES);
    room.track.answer_nack(&room.down, &[out_seq], t0, &mut buf);
    assert_eq!(next_at_subscriber(&room.subscriber), (out_seq, 5));
}

#[test]
fn replays_are_dropped_and_other_streams_and_forgeries_left_to_webrtc_rs() {
    let room = room();
    let t0 = Instant::now();
    let packet = srtp_from_publisher(1);
    let mut first = packet.clone();
    assert_eq!(room.ingress.receive(&mut first, t0), Verdict::Consumed);
    assert_eq!(next_at_subscriber(&room.subscriber).1, 1);
    let mut replay = packet.clone();
    assert_eq!(room.ingress.receive(&mut replay, t0), Verdict::Consumed);
    assert_eq!(room.ingress.counters.replayed.load(Ordering::Relaxed), 1);
    // Another SSRC: untouched.
    let mut other = srtp_from_publisher(2);
    other[8..12].copy_from_slice(&0xDEAD_BEEFu32.to_be_bytes());
    let before = other.clone();
    assert_eq!(room.ingress.receive(&mut other, t0), Verdict::Pass);
    assert_eq!(other, before);
    // A forged packet of the stream: untouched, and nothing moves.
    let mut forged = srtp_from_publisher(3);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let before = forged.clone();
    assert_eq!(room.ingress.receive(&mut forged, t0), Verdict::Pass);
    assert_eq!(forged, before);
    assert_eq!(
        room.ingress
            .counters
            .unauthenticated
            .load(Ordering::Relaxed),
        1
    );
    // Truncated and junk datagrams: left alone.
    for junk in [&[0x80u8][..], &[0x80, 96, 0, 1, 0, 0], &[0x90; 14]] {
        let mut junk = junk.to_vec();
        assert_eq!(room.ingress.receive(&mut junk, t0), Verdict::Pass);
    }
    // The real 3 still goes through afterwards.
    let mut real = srtp_from_publisher(3);
    assert_eq!(room.ingress.receive(&mut real, t0), Verdict::Consumed);
    assert_eq!(next_at_subscriber(&room.subscriber).1, 3);
    assert_eq!(room.ingress.counters.forwarded.load(Ordering::Relaxed), 2);
}

#[test]
fn receiver_reports_carry_loss_and_the_publishers_sender_report() {
    let room = room();
    let t0 = Instant::now();
    for seq in (1..=20).filter(|&s| s != 7) {
        let mut packet = srtp_from_publisher(seq);
        room.ingress.receive(&mut packet, t0);
    }
    // The publisher's sender report, as SRTCP: read on the fast path (not decrypted in
    // place: what the fast path does not take goes to webrtc-rs as it came).
    let sr = ::rtcp::sender_report::SenderReport {
        ssrc: SSRC,
        ntp_time: 0x0001_0002_0003_0004,
        ..Default::default()
    };
    let mut srtcp = sr.marshal().expect("marshal").to_vec();
    keys(&PUBLISHER_KEY, &PUBLISHER_SALT)
        .protect_rtcp(&mut srtcp, 1)
        .expect("protect");
    let before = srtcp.clone();
    assert_eq!(room.ingress.receive(&mut srtcp, t0), Verdict::Consumed);
    assert_eq!(srtcp, before);
    assert_eq!(room.ingress.counters.rtcp.load(Ordering::Relaxed), 1);
    let mut out = Vec::new();
    room.ingress
        .build_rtcp(t0 + Duration::from_millis(250), &mut out);
    let rr = out
        .iter()
        .find_map(|p| p.as_any().downcast_ref::<ReceiverReport>())
        .expect("a receiver report");
    assert_eq!(rr.reports.len(), 1);
    let block = &rr.reports[0];
    assert_eq!(block.ssrc, SSRC);
    assert_eq!(block.total_lost, 1);
    assert_eq!(block.last_sequence_number, 20);
    assert_eq!(block.last_sender_report, 0x0002_0003);
    assert_eq!(block.delay, 65_536 / 4);
    // Not again until the interval has passed.
    let mut again = Vec::new();
    room.ingress
        .build_rtcp(t0 + Duration::from_millis(500), &mut again);
    assert!(again
        .iter()
        .all(|p| p.as_any().downcast_ref::<ReceiverReport>().is_none()));
}

#[test]
fn a_subscribers_nack_is_answered_from_the_socket() {
    let room = room();
    let t0 = Instant::now();
    let arrived = publish(&room, 1..=5, t0);
    let (lost, marked) = arrived[2];
    assert_eq!(marked, 3);
    let nack = TransportLayerNack {
        sender_ssrc: SUBSCRIBER_SSRC,
        media_ssrc: DOWN_SSRC,
        nacks: nack_pairs_from_sequence_numbers(&[lost]),
    };
    let mut srtcp = srtcp_from_subscriber(&[&nack], 1);
    let replay = srtcp.clone();
    assert_eq!(
        room.from_subscriber.receive(&mut srtcp, t0),
        Verdict::Consumed
    );
    assert_eq!(next_at_subscriber(&room.subscriber), (lost, 3), "resent");
    let c = &room.track.counters;
    assert_eq!(c.retransmits.load(Ordering::Relaxed), 1);
    // The same packet again is a replay: dropped, nothing resent.
    let mut replay = replay;
    assert_eq!(
        room.from_subscriber.receive(&mut replay, t0),
        Verdict::Consumed
    );
    assert_eq!(
        room.from_subscriber
            .counters
            .rtcp_replayed
            .load(Ordering::Relaxed),
        1
    );
    assert_eq!(c.nacks_received.load(Ordering::Relaxed), 1);
    // About a stream this connection does not send, or a BYE: webrtc-rs's, untouched.
    let other = TransportLayerNack {
        media_ssrc: 99,
        ..nack.clone()
    };
    let bye = ::rtcp::goodbye::Goodbye {
        sources: vec![SUBSCRIBER_SSRC],
        reason: bytes::Bytes::new(),
    };
    for (parts, index) in [(vec![&other as &dyn Marshal], 2), (vec![&nack, &bye], 3)] {
        let mut srtcp = srtcp_from_subscriber(&parts, index);
        let before = srtcp.clone();
        assert_eq!(room.from_subscriber.receive(&mut srtcp, t0), Verdict::Pass);
        assert_eq!(srtcp, before);
    }
    // Forged: left to webrtc-rs, which drops it too.
    let mut forged = srtcp_from_subscriber(&[&nack], 4);
    forged[10] ^= 1;
    assert_eq!(room.from_subscriber.receive(&mut forged, t0), Verdict::Pass);
    assert_eq!(c.nacks_received.load(Ordering::Relaxed), 1);
    assert_eq!(
        room.from_subscriber.counters.rtcp.load(Ordering::Relaxed),
        1
    );
    // A later NACK for it, a round trip on: resent again.
    let mut again = srtcp_from_subscriber(&[&nack], 5);
    let later = t0 + Duration::from_secs(1);
    assert_eq!(
        room.from_subscriber.receive(&mut again, later),
        Verdict::Consumed
    );
    assert_eq!(next_at_subscriber(&room.subscriber), (lost, 3));
}

#[test]
fn a_subscribers_pli_and_fir_become_keyframe_requests_for_the_layer_it_is_on() {
    let room = room();
    let mut requests = room
        .from_subscriber
        .keyframe_queue
        .lock()
        .take()
        .expect("the connection's keyframe queue");
    let t0 = Instant::now();
    // Before anything was forwarded it is on no layer: counted, nothing asked.
    let pli = ::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
        sender_ssrc: SUBSCRIBER_SSRC,
        media_ssrc: DOWN_SSRC,
    };
    let mut srtcp = srtcp_from_subscriber(&[&pli], 1);
    assert_eq!(
        room.from_subscriber.receive(&mut srtcp, t0),
        Verdict::Consumed
    );
    assert!(requests.try_recv().is_err());
    publish(&room, 1..=2, t0);
    // A receiver report and SDES with the PLI, as a browser sends them.
    let rr = ReceiverReport {
        ssrc: SUBSCRIBER_SSRC,
        ..Default::default()
    };
    let sdes = ::rtcp::source_description::SourceDescription {
        chunks: vec![::rtcp::source_description::SourceDescriptionChunk {
            source: SUBSCRIBER_SSRC,
            items: vec![::rtcp::source_description::SourceDescriptionItem {
                sdes_type: ::rtcp::source_description::SdesType::SdesCname,
                text: bytes::Bytes::from_static(b"cname"),
            }],
        }],
    };
    let fir = ::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest {
        sender_ssrc: SUBSCRIBER_SSRC,
        media_ssrc: 0,
        fir: vec![::rtcp::payload_feedbacks::full_intra_request::FirEntry {
            ssrc: DOWN_SSRC,
            sequence_number: 1,
        }],
    };
    for (parts, index) in [
        (vec![&rr as &dyn Marshal, &sdes, &pli], 2),
        (vec![&fir as &dyn Marshal], 3),
    ] {
        let mut srtcp = srtcp_from_subscriber(&parts, index);
        assert_eq!(
            room.from_subscriber.receive(&mut srtcp, t0),
            Verdict::Consumed
        );
        let (track, layer) = requests.try_recv().expect("a keyframe request");
        assert!(Arc::ptr_eq(&track, &room.track));
        assert_eq!(layer, 0);
    }
    assert_eq!(room.track.counters.plis_received.load(Ordering::Relaxed), 3);
}

#[test]
fn transport_cc_feedback_from_the_subscriber_feeds_its_estimate() {
    use webrtc::rtp_transceiver::rtp_codec::RTCRtpHeaderExtensionParameters;
    let room = room();
    let cc = RTCRtpHeaderExtensionParameters {
        uri: webrtc::sdp::extmap::TRANSPORT_CC_URI.into(),
        id: 5,
    };
    room.down
        .bind_negotiated("ctx".into(), DOWN_SSRC, vec![vp8()], &[cc], None);
    let t0 = Instant::now();
    let mut sent = Vec::new();
    for seq in 1..=20 {
        let mut packet = srtp_from_publisher(seq);
        assert_eq!(room.ingress.receive(&mut packet, t0), Verdict::Consumed);
        sent.push(transport_seq_at_subscriber(&room.subscriber).1);
    }
    assert!(sent.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    assert!(
        room.egress.bandwidth.estimate().is_none(),
        "no feedback yet"
    );
    // Everything arrived, 1 ms apart.
    let arrivals: Vec<Option<i64>> = (0..20).map(|i| Some(i * 1000)).collect();
    let mut feedback = crate::bandwidth::test_util::build_feedback(sent[0], &arrivals);
    feedback.sender_ssrc = SUBSCRIBER_SSRC;
    feedback.media_ssrc = DOWN_SSRC;
    // Under the wrong keys: not taken, and the estimate hears nothing.
    let mut forged = feedback.marshal().expect("marshal").to_vec();
    keys(&PUBLISHER_KEY, &PUBLISHER_SALT)
        .protect_rtcp(&mut forged, 1)
        .expect("protect");
    assert_eq!(room.from_subscriber.receive(&mut forged, t0), Verdict::Pass);
    assert!(room.egress.bandwidth.estimate().is_none());
    let mut srtcp = srtcp_from_subscriber(&[&feedback], 1);
    let later = t0 + Duration::from_millis(50);
    assert_eq!(
        room.from_subscriber.receive(&mut srtcp, later),
        Verdict::Consumed
    );
    let estimate = room.egress.bandwidth.estimate().expect("an estimate");
    assert!(estimate.bps > 0);
    assert_eq!(estimate.last_severe, None, "nothing was lost");
}
