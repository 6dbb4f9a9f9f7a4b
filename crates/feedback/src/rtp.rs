//! Finding a packet's transport-wide sequence number where the socket received it: SRTP
//! leaves the RTP header and its extensions in the clear, so no decryption is needed, and
//! nothing is allocated or copied.

/// The SSRC and transport-wide sequence number (the header extension numbered `id`) of the
/// RTP packet in `packet`. `None` for RTCP, for malformed packets, for packets without the
/// extension and when `id` is 0 (not negotiated).
pub fn transport_sequence_number(packet: &[u8], id: u8) -> Option<(u32, u16)> {
    let &[first, second, _, _, _, _, _, _, s0, s1, s2, s3, ..] = packet else {
        return None;
    };
    // RFC 5761: RTCP packet types 192–223 read as payload types 64–95 (with the marker).
    let is_rtcp = (64..96).contains(&(second & 0x7f));
    let has_extension = first & 0x10 != 0;
    if id == 0 || first >> 6 != 2 || is_rtcp || !has_extension {
        return None;
    }
    let ssrc = u32::from_be_bytes([s0, s1, s2, s3]);
    let csrcs = usize::from(first & 0x0f);
    let rest = packet.get(12 + 4 * csrcs..)?;
    let &[p0, p1, l0, l1, ..] = rest else {
        return None;
    };
    let words = usize::from(u16::from_be_bytes([l0, l1]));
    let elements = rest.get(4..4 + 4 * words)?;
    // RFC 8285: one-byte elements under 0xBEDE, two-byte ones under 0x100x.
    let two_byte = match u16::from_be_bytes([p0, p1]) {
        0xBEDE => false,
        profile if profile & 0xfff0 == 0x1000 => true,
        _ => return None,
    };
    let value = find_element(elements, id, two_byte)?;
    let &[high, low] = value else {
        return None;
    };
    Some((ssrc, u16::from_be_bytes([high, low])))
}

/// The value of element `id` among RTP header extension elements.
fn find_element(mut elements: &[u8], id: u8, two_byte: bool) -> Option<&[u8]> {
    while let Some((&head, tail)) = elements.split_first() {
        if head == 0 {
            elements = tail; // padding between elements
            continue;
        }
        let (element, len, tail) = if two_byte {
            let (&len, tail) = tail.split_first()?;
            (head, usize::from(len), tail)
        } else {
            // id 15 is reserved: the rest must not be read.
            if head >> 4 == 15 {
                return None;
            }
            (head >> 4, usize::from(head & 0x0f) + 1, tail)
        };
        let value = tail.get(..len)?;
        if element == id {
            return Some(value);
        }
        elements = tail.get(len..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RTP with one-byte elements: audio level (id 1), then transport-cc (id 3).
    fn one_byte(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut p = vec![0x90, 111, 0, 7, 0, 0, 0, 1];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xBE, 0xDE, 0, 2, 0x10, 0x7f, 0x31]);
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0]);
        p.extend_from_slice(b"payload");
        p
    }

    #[test]
    fn reads_one_byte_and_two_byte_elements() {
        assert_eq!(
            transport_sequence_number(&one_byte(0xCAFE, 4242), 3),
            Some((0xCAFE, 4242))
        );
        assert_eq!(
            transport_sequence_number(&one_byte(0, 7), 3),
            Some((0, 7)),
            "SSRC 0 (a probe) counts like any other"
        );
        assert_eq!(transport_sequence_number(&one_byte(1, 7), 5), None);
        assert_eq!(transport_sequence_number(&one_byte(1, 7), 0), None);
        // Two-byte elements: padding, id 9 (1 byte), id 7 (2 bytes), after one CSRC.
        let mut two = vec![0x91, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 5];
        two.extend_from_slice(&[0x10, 0x00, 0, 2, 0, 9, 1, 0xAA, 7, 2, 0xAB, 0xCD]);
        assert_eq!(transport_sequence_number(&two, 7), Some((9, 0xABCD)));
        assert_eq!(transport_sequence_number(&two, 9), None, "not 2 bytes long");
    }

    #[test]
    fn rtcp_and_malformed_packets_are_not_read() {
        // A receiver report (type 201 reads as payload type 73), extension bit set.
        let mut rtcp = one_byte(1, 7);
        rtcp[1] = 201;
        assert_eq!(transport_sequence_number(&rtcp, 3), None);
        let mut version = one_byte(1, 7);
        version[0] = 0x50;
        assert_eq!(transport_sequence_number(&version, 3), None);
        let mut csrcs = one_byte(1, 7);
        csrcs[0] = 0x9f; // 15 CSRCs claimed
        assert_eq!(transport_sequence_number(&csrcs, 3), None);
        let mut long = one_byte(1, 7);
        long[15] = 200; // more extension words than the packet has
        assert_eq!(transport_sequence_number(&long, 3), None);
        let mut reserved = one_byte(1, 7);
        reserved[16] = 0xF0; // id 15 ends the elements
        assert_eq!(transport_sequence_number(&reserved, 3), None);
        let full = one_byte(1, 7);
        for len in 0..full.len() {
            let read = transport_sequence_number(&full[..len], 3);
            assert!(read.is_none() || len >= 24, "cut at {len}: {read:?}");
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(packet in proptest::collection::vec(any::<u8>(), 0..64), id in 0u8..16) {
            let _ = transport_sequence_number(&packet, id);
        }

        #[test]
        fn corrupted_headers_never_panic(at in 0usize..30, byte in any::<u8>(), id in 1u8..16) {
            let mut packet = one_byte(5, 9);
            if let Some(b) = packet.get_mut(at) {
                *b = byte;
            }
            let _ = transport_sequence_number(&packet, id);
        }
    }
}
