//! When each packet reached the bot's socket, for its transport-cc feedback.
//!
//! webrtc-rs's own transport-cc receiver stamped a packet when the track reader pulled it
//! through the interceptors, after the mux, ICE, DTLS and SRTP tasks had had their turn.
//! On a loaded load tester that is tens or hundreds of milliseconds late, in bursts, and
//! the server read those delays as congestion it had caused. Here the kernel's receive
//! timestamp is used: [`SocketArrivals`] is the bot connection's fast path on its
//! [`roomcast_udp::UdpMux`], offered every SRTP datagram on the socket's reader task. The
//! RTP header is not encrypted, so it reads the transport-wide sequence number there, notes
//! the arrival and hands the datagram on to webrtc-rs unchanged.
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use roomcast_feedback::{transport_sequence_number, FeedbackRecorder};
use roomcast_udp::{FastPath, Received, Verdict};
use webrtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;

pub(crate) struct SocketArrivals {
    /// The transport-cc header extension's id on this connection (0: not negotiated yet).
    extension_id: AtomicU8,
    recorder: Mutex<FeedbackRecorder>,
    /// An SSRC of the server's streams, for the feedback's media SSRC field.
    media_ssrc: AtomicU32,
}

impl SocketArrivals {
    pub(crate) fn new(epoch: Instant) -> Self {
        SocketArrivals {
            extension_id: AtomicU8::new(0),
            recorder: Mutex::new(FeedbackRecorder::new(epoch)),
            media_ssrc: AtomicU32::new(0),
        }
    }

    /// The transport-cc extension id the connection negotiated.
    pub(crate) fn set_extension_id(&self, id: u8) {
        self.extension_id.store(id, Ordering::Relaxed);
    }

    pub(crate) fn extension_id(&self) -> u8 {
        self.extension_id.load(Ordering::Relaxed)
    }

    /// The feedback for everything that arrived since the last call (none if nothing did).
    pub(crate) fn feedback(&self, sender_ssrc: u32, out: &mut Vec<TransportLayerCc>) {
        let media_ssrc = self.media_ssrc.load(Ordering::Relaxed);
        self.recorder.lock().build(sender_ssrc, media_ssrc, out);
    }
}

impl FastPath for SocketArrivals {
    fn receive(&self, packet: &mut [u8], received: &Received) -> Verdict {
        let id = self.extension_id();
        if let Some((ssrc, seq)) = transport_sequence_number(packet, id) {
            self.recorder.lock().record(seq, received.at);
            self.media_ssrc.store(ssrc, Ordering::Relaxed);
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::Duration;

    /// An RTP packet with one-byte extensions: audio level (id 1) and transport-cc (id 3).
    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x90, 111, 0, 7, 0, 0, 0, 1, 0xCA, 0xFE, 0xBA, 0xBE];
        p.extend_from_slice(&[0xBE, 0xDE, 0, 2]);
        p.extend_from_slice(&[0x10, 0x7f, 0x00, 0x31]);
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(b"payload");
        p
    }

    #[test]
    fn stamps_each_packet_at_the_socket_and_hands_it_on() {
        let epoch = Instant::now();
        let arrivals = SocketArrivals::new(epoch);
        let received = |ms| Received {
            from: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5000),
            local: IpAddr::V4(Ipv4Addr::LOCALHOST),
            at: epoch + Duration::from_millis(ms),
        };
        let mut packet = rtp(100);
        assert_eq!(arrivals.receive(&mut packet, &received(5)), Verdict::Pass);
        assert_eq!(packet, rtp(100), "unchanged");
        let mut feedback = Vec::new();
        arrivals.feedback(1, &mut feedback);
        assert!(feedback.is_empty(), "no id yet: nothing read");
        arrivals.set_extension_id(3);
        for seq in [100u16, 101, 103] {
            arrivals.receive(&mut rtp(seq), &received(10 + u64::from(seq)));
        }
        let mut feedback = Vec::new();
        arrivals.feedback(1, &mut feedback);
        assert_eq!(feedback.len(), 1);
        assert_eq!(feedback[0].base_sequence_number, 100);
        assert_eq!(feedback[0].packet_status_count, 4, "102 reported lost");
        assert_eq!(feedback[0].media_ssrc, 0xCAFEBABE);
        // The socket's times: 110, 111 and 113 ms after the epoch.
        let deltas: Vec<i64> = feedback[0].recv_deltas.iter().map(|d| d.delta).collect();
        assert_eq!(deltas[1..], [1_000, 2_000]);
        feedback.clear();
        arrivals.feedback(1, &mut feedback);
        assert!(feedback.is_empty(), "nothing new");
    }
}
