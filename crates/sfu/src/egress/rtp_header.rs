//! Writes an outgoing RTP header (RFC 3550) with its header extensions (RFC 8285) straight
//! into the send buffer.

/// The fixed fields of one outgoing packet.
#[derive(Debug, Clone, Copy)]
pub struct RtpHeader<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrc: &'a [u32],
}

/// Clears `buf` and writes the header; returns its length. Extensions use the one-byte
/// form when every id is 1–14 and every value 1–16 bytes, the two-byte form otherwise;
/// elements that fit neither are skipped.
pub fn write_rtp_header(buf: &mut Vec<u8>, h: &RtpHeader, extensions: &[(u8, &[u8])]) -> usize {
    write_rtp_header_at(buf, h, extensions).0
}

/// [`write_rtp_header`], also saying where the last extension element's value was written
/// (the transport-wide sequence number's place, which the egress fills in at the send).
pub fn write_rtp_header_at(
    buf: &mut Vec<u8>,
    h: &RtpHeader,
    extensions: &[(u8, &[u8])],
) -> (usize, Option<usize>) {
    buf.clear();
    let mut last_value_at = None;
    let csrc_count = h.csrc.len().min(15);
    let has_extensions = !extensions.is_empty();
    buf.push(0x80 | (u8::from(has_extensions) << 4) | csrc_count as u8);
    buf.push((u8::from(h.marker) << 7) | (h.payload_type & 0x7f));
    buf.extend_from_slice(&h.sequence_number.to_be_bytes());
    buf.extend_from_slice(&h.timestamp.to_be_bytes());
    buf.extend_from_slice(&h.ssrc.to_be_bytes());
    for csrc in &h.csrc[..csrc_count] {
        buf.extend_from_slice(&csrc.to_be_bytes());
    }
    if has_extensions {
        let one_byte = extensions
            .iter()
            .all(|(id, v)| (1..=14).contains(id) && (1..=16).contains(&v.len()));
        let profile: u16 = if one_byte { 0xBEDE } else { 0x1000 };
        buf.extend_from_slice(&profile.to_be_bytes());
        let length_at = buf.len();
        buf.extend_from_slice(&[0, 0]);
        let start = buf.len();
        for &(id, value) in extensions {
            if one_byte {
                buf.push((id << 4) | (value.len() as u8 - 1));
            } else if id == 0 || value.len() > 255 {
                continue;
            } else {
                buf.push(id);
                buf.push(value.len() as u8);
            }
            last_value_at = Some(buf.len());
            buf.extend_from_slice(value);
        }
        while !(buf.len() - start).is_multiple_of(4) {
            buf.push(0);
        }
        let words = ((buf.len() - start) / 4) as u16;
        buf[length_at..length_at + 2].copy_from_slice(&words.to_be_bytes());
    }
    (buf.len(), last_value_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::util::Unmarshal;

    fn parse(buf: &[u8]) -> rtp::header::Header {
        let mut b = buf;
        rtp::header::Header::unmarshal(&mut b).expect("a valid RTP header")
    }

    fn header(csrc: &[u32]) -> RtpHeader<'_> {
        RtpHeader {
            marker: true,
            payload_type: 111,
            sequence_number: 65_000,
            timestamp: 0xFFFF_0000,
            ssrc: 42,
            csrc,
        }
    }

    #[test]
    fn one_byte_extensions_parse_back() {
        let mut buf = Vec::new();
        let len = write_rtp_header(
            &mut buf,
            &header(&[7]),
            &[(4, b"12"), (1, &[0x85]), (3, &[0, 9])],
        );
        assert_eq!(len, buf.len());
        assert_eq!(len % 4, 0);
        let h = parse(&buf);
        assert!(h.marker);
        assert_eq!(h.payload_type, 111);
        assert_eq!(h.sequence_number, 65_000);
        assert_eq!(h.timestamp, 0xFFFF_0000);
        assert_eq!(h.ssrc, 42);
        assert_eq!(h.csrc, vec![7]);
        assert_eq!(h.extension_profile, 0xBEDE);
        assert_eq!(h.get_extension(4).as_deref(), Some(&b"12"[..]));
        assert_eq!(h.get_extension(1).as_deref(), Some(&[0x85][..]));
        assert_eq!(h.get_extension(3).as_deref(), Some(&[0, 9][..]));
    }

    #[test]
    fn large_ids_use_the_two_byte_form() {
        let mut buf = Vec::new();
        write_rtp_header(&mut buf, &header(&[]), &[(15, &[1, 2, 3]), (1, &[5])]);
        let h = parse(&buf);
        assert_eq!(h.extension_profile, 0x1000);
        assert_eq!(h.get_extension(15).as_deref(), Some(&[1, 2, 3][..]));
        assert_eq!(h.get_extension(1).as_deref(), Some(&[5][..]));
    }

    #[test]
    fn no_extensions_no_extension_bit_and_buffer_is_reused() {
        let mut buf = vec![0xAA; 64];
        let len = write_rtp_header(&mut buf, &header(&[]), &[]);
        assert_eq!(len, 12);
        assert!(!parse(&buf).extension);
    }
}
