//! Property tests for payload parsing: any bytes a publisher sends give an answer, never a
//! panic, and the offsets handed to the rewriter always lie inside the payload.
use proptest::prelude::*;
use roomcast_codec::{h264, vp8, VideoCodec};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// A VP8 payload whose descriptor is plausible (extension bits set often), then garbage.
fn vp8_payload() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), any::<u8>(), any::<bool>(), bytes(24)).prop_map(|(first, x, ext, rest)| {
        let mut p = vec![if ext { first | 0x80 } else { first }, x];
        p.extend(rest);
        p
    })
}

/// A STAP-A payload from NAL units (each with a correct size), sometimes cut short.
fn stap_a() -> impl Strategy<Value = (Vec<u8>, Vec<Vec<u8>>)> {
    prop::collection::vec(bytes(40), 0..5).prop_map(|units| {
        let mut p = vec![0x78];
        for unit in &units {
            p.extend_from_slice(&(unit.len() as u16).to_be_bytes());
            p.extend_from_slice(unit);
        }
        (p, units)
    })
}

fn check_descriptor_fields(payload: &[u8]) -> Result<(), TestCaseError> {
    let Some(fields) = vp8::descriptor_fields(payload) else {
        return Ok(());
    };
    if let Some((at, value, long)) = fields.picture_id {
        let end = at + if long { 2 } else { 1 };
        prop_assert!(
            end <= payload.len(),
            "picture id at {at} of {}",
            payload.len()
        );
        let max = if long { 0x7fff } else { 0x7f };
        prop_assert!(value <= max, "picture id {value} over {max}");
        // Rewriting in place keeps the length, the form and every other byte.
        for new in [0u16, value.wrapping_add(1), 0xffff] {
            let mut copy = payload.to_vec();
            vp8::write_picture_id(&mut copy, at, new, long);
            prop_assert_eq!(copy.len(), payload.len());
            prop_assert_eq!(&copy[..at], &payload[..at]);
            prop_assert_eq!(&copy[end..], &payload[end..]);
            let reread = vp8::descriptor_fields(&copy).expect("still parses");
            let mask = if long { 0x7fff } else { 0x7f };
            prop_assert_eq!(reread.picture_id, Some((at, new & mask, long)));
            prop_assert_eq!(reread.tl0_pic_idx, fields.tl0_pic_idx);
        }
    }
    if let Some((at, value)) = fields.tl0_pic_idx {
        prop_assert!(at < payload.len(), "TL0PICIDX at {at} of {}", payload.len());
        prop_assert_eq!(payload[at], value);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn vp8_parsers_never_panic(payload in bytes(64)) {
        if let Some(size) = vp8::keyframe_size(&payload) {
            prop_assert!(size.width <= 0x3fff && size.height <= 0x3fff);
        }
        let _ = vp8::frame_keyframe_size(&payload);
        prop_assert_eq!(
            VideoCodec::Vp8.is_keyframe(&payload),
            vp8::keyframe_size(&payload).is_some()
        );
        check_descriptor_fields(&payload)?;
    }

    #[test]
    fn vp8_descriptor_offsets_stay_inside(payload in vp8_payload()) {
        check_descriptor_fields(&payload)?;
        let _ = vp8::keyframe_size(&payload);
        // Every prefix too: truncation is the usual malformation.
        for len in 0..payload.len() {
            check_descriptor_fields(&payload[..len])?;
        }
    }

    #[test]
    fn write_picture_id_anywhere_never_panics(
        mut payload in bytes(16),
        at in prop_oneof![0usize..20, any::<usize>(), (usize::MAX - 2)..=usize::MAX],
        value in any::<u16>(),
        long in any::<bool>(),
    ) {
        let before = payload.clone();
        vp8::write_picture_id(&mut payload, at, value, long);
        prop_assert_eq!(payload.len(), before.len());
        let width = if long { 2 } else { 1 };
        if at.checked_add(width).is_none_or(|end| end > before.len()) {
            prop_assert_eq!(payload, before, "out of range writes nothing");
        }
    }

    #[test]
    fn h264_parsers_never_panic(payload in bytes(96)) {
        let _ = h264::is_keyframe(&payload);
        prop_assert_eq!(VideoCodec::H264.is_keyframe(&payload), h264::is_keyframe(&payload));
        if let Some(size) = h264::payload_sps_size(&payload) {
            prop_assert!(size.width > 0 && size.height > 0);
        }
        if let Some(size) = h264::sps_frame_size(&payload) {
            prop_assert!(size.width > 0 && size.height > 0);
        }
    }

    #[test]
    fn sps_parser_never_panics_on_sps_headers(
        profile in prop::sample::select(vec![66u8, 77, 88, 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]),
        rest in bytes(64),
        fu in any::<bool>(),
    ) {
        // An SPS header and a known profile, so the reader gets past the fixed fields.
        let mut nal = vec![0x67, profile];
        nal.extend_from_slice(&rest);
        let direct = h264::sps_frame_size(&nal);
        prop_assert_eq!(h264::payload_sps_size(&nal), direct);
        if let Some(size) = direct {
            prop_assert!(size.width > 0 && size.height > 0);
        }
        if fu {
            // The same SPS as the first fragment of an FU-A.
            let mut fragment = vec![0x7c, 0x80 | 0x07];
            fragment.extend_from_slice(&nal[1..]);
            prop_assert_eq!(h264::payload_sps_size(&fragment), direct);
        }
        for len in 0..nal.len() {
            let _ = h264::sps_frame_size(&nal[..len]);
        }
    }

    #[test]
    fn stap_a_keyframes_are_found_and_truncation_is_safe((payload, units) in stap_a(), cut in any::<prop::sample::Index>()) {
        let expected = units
            .iter()
            .any(|u| u.first().is_some_and(|h| matches!(h & 0x1f, 5 | 7)));
        prop_assert_eq!(h264::is_keyframe(&payload), expected);
        let _ = h264::payload_sps_size(&payload);
        let short = &payload[..cut.index(payload.len() + 1)];
        let _ = h264::is_keyframe(short);
        let _ = h264::payload_sps_size(short);
    }
}
