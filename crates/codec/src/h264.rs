//! H.264 RTP payloads (RFC 6184): keyframe detection through single NAL units, STAP-A
//! aggregates and the first fragment of FU-A.

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

/// Whether this payload starts a keyframe: an IDR slice or the SPS that precedes one.
pub fn is_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        NAL_IDR | NAL_SPS => true,
        NAL_STAP_A => stap_a_has_keyframe(&payload[1..]),
        NAL_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == NAL_IDR),
        _ => false,
    }
}

fn stap_a_has_keyframe(mut units: &[u8]) -> bool {
    while units.len() > 2 {
        let size = usize::from(u16::from_be_bytes([units[0], units[1]]));
        let Some(nal) = units.get(2..2 + size) else {
            return false;
        };
        if nal
            .first()
            .is_some_and(|h| matches!(h & 0x1f, NAL_IDR | NAL_SPS))
        {
            return true;
        }
        units = &units[2 + size..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_nal_units() {
        assert!(is_keyframe(&[0x65, 0x88]));
        assert!(is_keyframe(&[0x67, 0x42]));
        assert!(!is_keyframe(&[0x41, 0x9a]));
        assert!(!is_keyframe(&[]));
    }

    #[test]
    fn stap_a_with_sps_pps() {
        let stap = [0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce];
        assert!(is_keyframe(&stap));
        let no_key = [0x78, 0x00, 0x02, 0x41, 0x9a];
        assert!(!is_keyframe(&no_key));
        let truncated = [0x78, 0x00, 0x09, 0x67];
        assert!(!is_keyframe(&truncated));
    }

    #[test]
    fn fu_a_start_of_idr_only() {
        assert!(is_keyframe(&[0x7c, 0x85, 0x00]));
        assert!(!is_keyframe(&[0x7c, 0x05, 0x00]));
        assert!(!is_keyframe(&[0x7c, 0x81, 0x00]));
        assert!(!is_keyframe(&[0x7c]));
    }
}
