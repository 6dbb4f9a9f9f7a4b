use std::net::{Ipv4Addr, UdpSocket};

use rtcp::receiver_report::ReceiverReport;
use rtcp::sender_report::SenderReport;
use rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use webrtc::srtp::context::Context;
use webrtc::srtp::option::srtcp_replay_protection;
use webrtc::srtp::protection_profile::ProtectionProfile;

use super::*;

type Packets = Vec<Box<dyn rtcp::packet::Packet + Send + Sync>>;

fn sender_report(ssrc: u32) -> Packets {
    vec![Box::new(SenderReport {
        ssrc,
        ntp_time: 0x0102_0304_0506_0708,
        rtp_time: 90_000,
        packet_count: 10,
        octet_count: 12_000,
        ..Default::default()
    })]
}

fn nack_and_report(ssrc: u32) -> Packets {
    vec![
        Box::new(TransportLayerNack {
            sender_ssrc: ssrc,
            media_ssrc: 77,
            nacks: vec![NackPair {
                packet_id: 1000,
                lost_packets: 0b101,
            }],
        }),
        Box::new(ReceiverReport {
            ssrc,
            ..Default::default()
        }),
    ]
}

/// What a subscriber's webrtc-rs makes of what `send_rtcp` sent: RTCP from several SSRCs
/// under one index counter, in both profiles, arrives on the route's address and decrypts
/// to exactly what was sent.
#[test]
fn the_peers_webrtc_rs_decrypts_the_rtcp_we_send() {
    let profiles = [
        (
            SrtpProfile::AeadAes128Gcm,
            ProtectionProfile::AeadAes128Gcm,
            12,
        ),
        (
            SrtpProfile::Aes128CmHmacSha1_80,
            ProtectionProfile::Aes128CmHmacSha1_80,
            14,
        ),
    ];
    for (ours, theirs, salt_len) in profiles {
        let (key, salt) = ([5u8; 16], vec![6u8; salt_len]);
        let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        peer.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let egress = Egress::new(UdpMux::bind(Ipv4Addr::LOCALHOST.into(), 0).expect("bind"));
        let mut buf = Vec::new();
        assert_eq!(
            egress.send_rtcp(&sender_report(1), &mut buf),
            Err(SendError::NotConnected),
            "no route yet: the caller uses webrtc-rs"
        );
        egress.set_route(
            peer.local_addr().expect("address"),
            SrtpSession::new(ours, &key, &salt).expect("keys"),
        );
        // With the replay window a browser has: each SSRC's indices must go up.
        let mut receiver =
            Context::new(&key, &salt, theirs, None, Some(srtcp_replay_protection(64)))
                .expect("context");
        // Two SSRCs interleaved, so each sees gaps in the shared index.
        let sent = [
            sender_report(0x1111),
            nack_and_report(0x2222),
            sender_report(0x1111),
            sender_report(0x3333),
            nack_and_report(0x2222),
        ];
        for packets in &sent {
            egress.send_rtcp(packets, &mut buf).expect("sent");
            let mut datagram = [0u8; 1500];
            let len = peer.recv(&mut datagram).expect("the peer receives it");
            let plain = receiver
                .decrypt_rtcp(&datagram[..len])
                .unwrap_or_else(|e| panic!("{ours:?}: webrtc-rs refuses it: {e}"));
            let expected = rtcp::packet::marshal(packets).expect("marshal");
            assert_eq!(&plain[..], &expected[..], "{ours:?}");
        }
        // A replay of the last one is refused: the indices went up.
        let mut replay = Vec::new();
        replay.extend_from_slice(&buf);
        assert!(
            receiver.decrypt_rtcp(&replay).is_err(),
            "{ours:?}: a replay passes"
        );
    }
}
