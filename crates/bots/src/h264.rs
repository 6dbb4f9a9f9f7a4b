//! Just enough H.264 to find IDR pictures in RTP payloads (RFC 6184) and to cut an Annex-B
//! stream into access units.
use bytes::{Bytes, BytesMut};

const NAL_IDR: u8 = 5;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

fn nal_type(header: u8) -> u8 {
    header & 0x1f
}

/// Whether an RTP payload carries the start of an IDR slice: a single IDR NAL unit, a
/// STAP-A that aggregates one, or the first fragment of a fragmented one.
pub(crate) fn starts_idr(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match nal_type(header) {
        NAL_IDR => true,
        STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(nal) = rest.get(2..2 + size) else {
                    return false;
                };
                if nal.first().is_some_and(|&h| nal_type(h) == NAL_IDR) {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        FU_A => payload
            .get(1)
            .is_some_and(|&fu| fu & 0x80 != 0 && nal_type(fu) == NAL_IDR),
        _ => false,
    }
}

/// One picture with the parameter sets before it, in Annex-B form (4-byte start codes).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccessUnit {
    pub data: Bytes,
    pub idr: bool,
}

/// Groups NAL units (each without start code, header byte first) into access units: a new
/// one begins at a non-VCL NAL unit or at a slice with `first_mb_in_slice == 0` once the
/// current one has a slice. Access unit delimiters are dropped; the payloader needs none.
pub(crate) fn access_units<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Vec<AccessUnit> {
    const AUD: u8 = 9;
    let mut units = Vec::new();
    let mut current = BytesMut::new();
    let mut has_slice = false;
    let mut idr = false;
    for nal in nals {
        let Some(&header) = nal.first() else { continue };
        let kind = nal_type(header);
        if kind == AUD {
            continue;
        }
        let is_slice = (1..=NAL_IDR).contains(&kind);
        // first_mb_in_slice is ue(v); it is 0 exactly when its first bit is 1.
        let first_slice = is_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        if has_slice && (!is_slice || first_slice) {
            units.push(AccessUnit {
                data: current.split().freeze(),
                idr,
            });
            has_slice = false;
            idr = false;
        }
        current.extend_from_slice(&[0, 0, 0, 1]);
        current.extend_from_slice(nal);
        has_slice |= is_slice;
        idr |= kind == NAL_IDR;
    }
    if has_slice {
        units.push(AccessUnit {
            data: current.freeze(),
            idr,
        });
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00];
    const NON_IDR: &[u8] = &[0x41, 0x9a, 0x02];

    #[test]
    fn single_nal_idr() {
        assert!(starts_idr(IDR));
        assert!(!starts_idr(NON_IDR));
        assert!(!starts_idr(SPS));
        assert!(!starts_idr(&[]));
    }

    #[test]
    fn stap_a_with_and_without_idr() {
        let mut stap = vec![0x78];
        for nal in [SPS, PPS, IDR] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        assert!(starts_idr(&stap));

        let mut params_only = vec![0x78];
        for nal in [SPS, PPS] {
            params_only.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            params_only.extend_from_slice(nal);
        }
        assert!(!starts_idr(&params_only));
        // A size running past the end is not an IDR and does not panic.
        assert!(!starts_idr(&[0x78, 0x00, 0x09, 0x65]));
    }

    #[test]
    fn fu_a_start_of_idr_only() {
        assert!(starts_idr(&[0x7c, 0x85, 0xaa])); // S=1, type 5
        assert!(!starts_idr(&[0x7c, 0x05, 0xaa])); // continuation
        assert!(!starts_idr(&[0x7c, 0x45, 0xaa])); // end
        assert!(!starts_idr(&[0x7c, 0x81, 0xaa])); // start of a non-IDR slice
        assert!(!starts_idr(&[0x7c]));
    }

    #[test]
    fn access_units_group_parameter_sets_with_their_picture() {
        let aud: &[u8] = &[0x09, 0xf0];
        let second_slice: &[u8] = &[0x41, 0x40, 0x01]; // first_mb_in_slice != 0
        let units = access_units([aud, SPS, PPS, IDR, NON_IDR, second_slice, NON_IDR]);
        assert_eq!(units.len(), 3);
        assert!(units[0].idr);
        let expected: Vec<u8> = [SPS, PPS, IDR]
            .iter()
            .flat_map(|nal| [&[0u8, 0, 0, 1][..], nal].concat())
            .collect();
        assert_eq!(&units[0].data[..], &expected[..]);
        assert!(!units[1].idr);
        assert_eq!(
            units[1].data.len(),
            4 + NON_IDR.len() + 4 + second_slice.len()
        );
        assert!(!units[2].idr);
    }
}
