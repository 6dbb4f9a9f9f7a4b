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
use roomcast_feedback::FeedbackRecorder;
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
        if let Some((ssrc, seq)) = transport_seq(packet, id) {
            self.recorder.lock().record(seq, received.at);
            self.media_ssrc.store(ssrc, Ordering::Relaxed);
        }
        Verdict::Pass
    }
}

/// The SSRC and transport-wide sequence number (header extension `id`) of an RTP packet;
/// `None` for RTCP, malformed packets and packets without it.
pub(crate) fn transport_seq(packet: &[u8], id: u8) -> Option<(u32, u16)> {
    let header = packet.get(..12)?;
    let payload_type = header[1] & 0x7f;
    // Version 2, an extension present, not RTCP (packet types 192-223 read as 64-95).
    if id == 0 || header[0] >> 6 != 2 || header[0] & 0x10 == 0 || (64..96).contains(&payload_type) {
        return None;
    }
    let ssrc = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    let start = 12 + 4 * usize::from(header[0] & 0x0f);
    let ext = packet.get(start..start + 4)?;
    let profile = u16::from_be_bytes([ext[0], ext[1]]);
    let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    let mut elements = packet.get(start + 4..start + 4 + 4 * words)?;
    // RFC 8285: one-byte headers (0xBEDE), or two-byte ones (0x100X).
    let two_byte = match profile {
        0xBEDE => false,
        p if p & 0xfff0 == 0x1000 => true,
        _ => return None,
    };
    while let Some(&first) = elements.first() {
        if first == 0 {
            elements = &elements[1..]; // padding
            continue;
        }
        let (element_id, len, data_at) = if two_byte {
            (first, usize::from(*elements.get(1)?), 2)
        } else {
            (first >> 4, usize::from(first & 0x0f) + 1, 1)
        };
        if !two_byte && element_id == 15 {
            return None;
        }
        let data = elements.get(data_at..data_at + len)?;
        if element_id == id {
            return (len == 2).then(|| (ssrc, u16::from_be_bytes([data[0], data[1]])));
        }
        elements = &elements[data_at + len..];
    }
    None
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
    fn reads_the_transport_sequence_number_from_either_extension_format() {
        assert_eq!(transport_seq(&rtp(4242), 3), Some((0xCAFEBABE, 4242)));
        assert_eq!(transport_seq(&rtp(4242), 5), None, "another id");
        assert_eq!(transport_seq(&rtp(4242), 0), None, "not negotiated");
        let mut two_byte = vec![0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0x10, 0x00, 0, 2];
        two_byte.extend_from_slice(&[0, 7, 2, 0xAB, 0xCD, 0, 0, 0]);
        assert_eq!(transport_seq(&two_byte, 7), Some((9, 0xABCD)));
        // RTCP (a receiver report), truncated and odd packets.
        let rtcp = [
            0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0xBE, 0xDE, 0, 1, 0x31, 0, 1,
        ];
        assert_eq!(transport_seq(&rtcp, 3), None);
        let full = rtp(1);
        for len in 0..full.len() {
            let _ = transport_seq(&full[..len], 3);
        }
        assert_eq!(transport_seq(&full[..20], 3), None, "elements cut short");
        let mut csrcs = rtp(9);
        csrcs[0] = 0x9f; // 15 CSRCs claimed, none there
        assert_eq!(transport_seq(&csrcs, 3), None);
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
