//! VP8 RTP payloads (RFC 7741): the payload descriptor and the keyframe header.

/// The first packet of a VP8 keyframe carries its size; `None` for anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSize {
    pub width: u16,
    pub height: u16,
}

/// Where the VP8 payload starts after the RTP payload descriptor, and whether this packet
/// starts partition 0 of a frame. `None` when the descriptor is truncated.
fn descriptor(payload: &[u8]) -> Option<(usize, bool)> {
    let first = *payload.first()?;
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    let mut at = 1;
    if extended {
        let x = *payload.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            // I: picture id, 7 or 15 bits.
            let m = *payload.get(at)? & 0x80 != 0;
            at += if m { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            // L: TL0PICIDX.
            at += 1;
        }
        if x & 0x20 != 0 || x & 0x10 != 0 {
            // T or K: one byte holds TID/Y/KEYIDX.
            at += 1;
        }
    }
    (at <= payload.len()).then_some((at, start_of_partition && partition_id == 0))
}

/// Where a packet's picture id and TL0PICIDX sit in the payload descriptor, so a forwarder
/// can rewrite them in place (RFC 7741 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DescriptorFields {
    /// (byte offset, value, whether it is the 15-bit form).
    pub picture_id: Option<(usize, u16, bool)>,
    /// (byte offset, value).
    pub tl0_pic_idx: Option<(usize, u8)>,
}

/// The picture id and TL0PICIDX of a VP8 payload, with their positions; `None` when the
/// descriptor is truncated.
pub fn descriptor_fields(payload: &[u8]) -> Option<DescriptorFields> {
    let first = *payload.first()?;
    let mut fields = DescriptorFields::default();
    if first & 0x80 == 0 {
        return Some(fields);
    }
    let x = *payload.get(1)?;
    let mut at = 2;
    if x & 0x80 != 0 {
        let high = *payload.get(at)?;
        if high & 0x80 != 0 {
            let low = *payload.get(at + 1)?;
            fields.picture_id = Some((at, u16::from_be_bytes([high & 0x7f, low]), true));
            at += 2;
        } else {
            fields.picture_id = Some((at, u16::from(high), false));
            at += 1;
        }
    }
    if x & 0x40 != 0 {
        fields.tl0_pic_idx = Some((at, *payload.get(at)?));
    }
    Some(fields)
}

/// Writes a picture id at `at` in the form (7 or 15 bits) found there; `value` is masked
/// to fit.
pub fn write_picture_id(payload: &mut [u8], at: usize, value: u16, long: bool) {
    if long {
        if let Some(bytes) = at.checked_add(2).and_then(|end| payload.get_mut(at..end)) {
            let [high, low] = (value & 0x7fff).to_be_bytes();
            bytes[0] = 0x80 | high;
            bytes[1] = low;
        }
    } else if let Some(byte) = payload.get_mut(at) {
        *byte = (value & 0x7f) as u8;
    }
}

/// Appends `payload` to `out` with a 7-bit picture id widened to the 15-bit form (one
/// byte longer), and returns where its fields sit in what was appended. A forwarder that
/// renumbers picture ids needs the room: a publisher that numbers its first 128 pictures in
/// 7 bits (webrtc-rs, pion) may be renumbered past 127 after a layer switch, and a 7-bit
/// field would wrap the id to 0, which a receiver reads as a jump backwards.
pub fn extend_widened(
    out: &mut Vec<u8>,
    payload: &[u8],
    fields: DescriptorFields,
) -> DescriptorFields {
    match fields.picture_id {
        Some((at, value, false)) if at < payload.len() => {
            out.extend_from_slice(&payload[..at]);
            out.extend_from_slice(&(0x8000 | value).to_be_bytes());
            out.extend_from_slice(&payload[at + 1..]);
            DescriptorFields {
                picture_id: Some((at, value, true)),
                tl0_pic_idx: fields.tl0_pic_idx.map(|(at, idx)| (at + 1, idx)),
            }
        }
        _ => {
            out.extend_from_slice(payload);
            fields
        }
    }
}

/// The frame size when `payload` is the first packet of a keyframe.
pub fn keyframe_size(payload: &[u8]) -> Option<FrameSize> {
    let (at, starts_frame) = descriptor(payload)?;
    if !starts_frame {
        return None;
    }
    frame_keyframe_size(payload.get(at..)?)
}

/// The frame size when `frame` (a whole VP8 frame, e.g. from an IVF file, no RTP payload
/// descriptor) is a keyframe.
pub fn frame_keyframe_size(frame: &[u8]) -> Option<FrameSize> {
    // Frame tag: bit 0 of the first byte is the inverse key frame flag.
    if frame.len() < 10 || frame[0] & 0x01 != 0 {
        return None;
    }
    if frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some(FrameSize { width, height })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyframe_header(width: u16, height: u16) -> Vec<u8> {
        let mut v = vec![0x10, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        v.extend_from_slice(&width.to_le_bytes());
        v.extend_from_slice(&height.to_le_bytes());
        v.extend_from_slice(&[0u8; 8]);
        v
    }

    #[test]
    fn plain_descriptor_keyframe() {
        let p = keyframe_header(640, 360);
        assert_eq!(
            keyframe_size(&p),
            Some(FrameSize {
                width: 640,
                height: 360
            })
        );
    }

    #[test]
    fn extended_descriptor_with_15_bit_picture_id_tl0_and_tid() {
        let mut p = vec![0x90, 0xe0, 0x80 | 0x12, 0x34, 0x07, 0x40];
        p.extend_from_slice(&keyframe_header(1280, 720)[1..]);
        assert_eq!(
            keyframe_size(&p),
            Some(FrameSize {
                width: 1280,
                height: 720
            })
        );
    }

    #[test]
    fn scale_bits_are_masked() {
        let mut p = keyframe_header(320, 180);
        p[8] |= 0xc0;
        assert_eq!(keyframe_size(&p).map(|s| s.width), Some(320));
    }

    #[test]
    fn interframes_continuations_and_garbage_are_not_keyframes() {
        let mut inter = keyframe_header(640, 360);
        inter[1] |= 0x01;
        assert_eq!(keyframe_size(&inter), None);
        let mut continuation = keyframe_header(640, 360);
        continuation[0] = 0x00;
        assert_eq!(keyframe_size(&continuation), None);
        for garbage in [&[][..], &[0x80], &[0x90, 0x80], &[0x10, 0x00, 0x00]] {
            assert_eq!(keyframe_size(garbage), None);
        }
    }

    #[test]
    fn first_frame_of_the_media_loop_is_a_640x360_keyframe() {
        // An IVF file: 32-byte file header, then a 12-byte frame header before each frame.
        let ivf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../media/vp8-640x360.ivf"
        ))
        .unwrap();
        let size = u32::from_le_bytes([ivf[32], ivf[33], ivf[34], ivf[35]]) as usize;
        let frame = &ivf[44..44 + size];
        let expected = Some(FrameSize {
            width: 640,
            height: 360,
        });
        assert_eq!(frame_keyframe_size(frame), expected);
        let mut payload = vec![0x10];
        payload.extend_from_slice(&frame[..100]);
        assert_eq!(
            keyframe_size(&payload),
            expected,
            "as the first RTP packet of the frame"
        );
    }

    #[test]
    fn a_7_bit_picture_id_is_widened_and_the_fields_after_it_move_along() {
        // X, I and L set; 7-bit picture id 100; TL0PICIDX 7; then the VP8 payload.
        let short = [0x90, 0xc0, 100, 7, 0xaa, 0xbb];
        let fields = descriptor_fields(&short).expect("fields");
        let mut out = vec![0xee];
        let moved = extend_widened(&mut out, &short, fields);
        assert_eq!(out, [0xee, 0x90, 0xc0, 0x80, 100, 7, 0xaa, 0xbb]);
        assert_eq!(descriptor_fields(&out[1..]), Some(moved));
        assert_eq!(moved.picture_id, Some((2, 100, true)));
        assert_eq!(moved.tl0_pic_idx, Some((4, 7)));
        write_picture_id(&mut out[1..], 2, 300, true);
        assert_eq!(
            descriptor_fields(&out[1..]).and_then(|f| f.picture_id),
            Some((2, 300, true))
        );
        // Already 15 bits, or no picture id: copied as it is.
        for payload in [&[0x90, 0x80, 0x81, 0x2c, 0xaa][..], &[0x10, 0xaa]] {
            let fields = descriptor_fields(payload).expect("fields");
            let mut out = Vec::new();
            assert_eq!(extend_widened(&mut out, payload, fields), fields);
            assert_eq!(out, payload);
        }
    }

    #[test]
    fn never_panics_on_any_short_input() {
        for len in 0..24 {
            for fill in [0x00u8, 0xff, 0x90, 0x10] {
                let _ = keyframe_size(&vec![fill; len]);
                let payload = vec![fill; len];
                if let Some(fields) = descriptor_fields(&payload) {
                    extend_widened(&mut Vec::new(), &payload, fields);
                }
                write_picture_id(&mut vec![fill; len], len.saturating_sub(1), 0x7fff, true);
            }
        }
    }

    #[test]
    fn finds_and_rewrites_picture_id_and_tl0picidx() {
        let mut p = vec![0x90, 0xe0, 0x80 | 0x12, 0x34, 0x07, 0x40, 0xaa];
        let f = descriptor_fields(&p).unwrap();
        assert_eq!(f.picture_id, Some((2, 0x1234, true)));
        assert_eq!(f.tl0_pic_idx, Some((4, 7)));
        write_picture_id(&mut p, 2, 0x8005, true);
        assert_eq!(&p[2..4], &[0x80, 0x05], "masked to 15 bits, M bit kept");

        let mut short = vec![0x90, 0x80, 0x7f, 0xaa];
        let f = descriptor_fields(&short).unwrap();
        assert_eq!(f.picture_id, Some((2, 0x7f, false)));
        assert_eq!(f.tl0_pic_idx, None);
        write_picture_id(&mut short, 2, 0x80, false);
        assert_eq!(short[2], 0, "7-bit form wraps");

        assert_eq!(
            descriptor_fields(&[0x10, 0xaa]),
            Some(DescriptorFields::default())
        );
        assert_eq!(descriptor_fields(&[0x90, 0xc0, 0x81]), None, "truncated");
    }
}
