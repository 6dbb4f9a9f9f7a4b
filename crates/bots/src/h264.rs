//! Just enough H.264 to cut an Annex-B stream into access units for publishing.
use bytes::{Bytes, BytesMut};

const NAL_IDR: u8 = 5;

fn nal_type(header: u8) -> u8 {
    header & 0x1f
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
