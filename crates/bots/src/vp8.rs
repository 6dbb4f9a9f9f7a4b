//! Just enough VP8 to recognise keyframes: the RTP payload descriptor (RFC 7741 §4.2) and
//! the frame tag and keyframe header of the bitstream (RFC 6386 §9.1).

/// The VP8 frame bytes of an RTP payload that starts a frame (S=1, partition 0), after
/// skipping the payload descriptor and its extensions; `None` for any other packet.
pub(crate) fn frame_start(payload: &[u8]) -> Option<&[u8]> {
    let first = *payload.first()?;
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    let mut offset = 1;
    if extended {
        let extensions = *payload.get(1)?;
        offset = 2;
        if extensions & 0x80 != 0 {
            // PictureID: 7 bits, or 15 when its M bit is set.
            let picture_id = *payload.get(offset)?;
            offset += if picture_id & 0x80 != 0 { 2 } else { 1 };
        }
        if extensions & 0x40 != 0 {
            offset += 1; // TL0PICIDX
        }
        if extensions & 0x30 != 0 {
            offset += 1; // TID / Y / KEYIDX share one byte
        }
    }
    if !start_of_partition || partition_id != 0 {
        return None;
    }
    payload.get(offset..).filter(|frame| !frame.is_empty())
}

/// Width and height (14 bits each, scaling bits dropped) if `frame` begins a keyframe.
pub(crate) fn keyframe_dimensions(frame: &[u8]) -> Option<(u16, u16)> {
    // Frame tag bit 0 is the inverse keyframe flag; a keyframe then has the start code.
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyframe tag (P=0, version 0, shown) and header for 640x360.
    const KEYFRAME_640X360: [u8; 10] = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01];

    #[test]
    fn plain_descriptor_keyframe() {
        let mut payload = vec![0x10]; // S=1, PID=0
        payload.extend_from_slice(&KEYFRAME_640X360);
        let frame = frame_start(&payload).unwrap();
        assert_eq!(keyframe_dimensions(frame), Some((640, 360)));
    }

    #[test]
    fn extended_descriptor_with_every_extension() {
        // X=1,S=1 | I,L,T,K | 15-bit PictureID (2 bytes) | TL0PICIDX | TID/Y/KEYIDX
        let mut payload = vec![0x90, 0xf0, 0x81, 0x23, 0x07, 0x40];
        payload.extend_from_slice(&KEYFRAME_640X360);
        let frame = frame_start(&payload).unwrap();
        assert_eq!(keyframe_dimensions(frame), Some((640, 360)));

        // 7-bit PictureID only.
        let mut payload = vec![0x90, 0x80, 0x05];
        payload.extend_from_slice(&KEYFRAME_640X360);
        assert_eq!(
            keyframe_dimensions(frame_start(&payload).unwrap()),
            Some((640, 360))
        );
    }

    #[test]
    fn scaling_bits_are_ignored() {
        let mut frame = KEYFRAME_640X360;
        frame[7] |= 0xc0;
        frame[9] |= 0x40;
        assert_eq!(keyframe_dimensions(&frame), Some((640, 360)));
    }

    #[test]
    fn continuation_and_interframes_are_not_keyframes() {
        let mut middle = vec![0x00]; // S=0: middle of a frame
        middle.extend_from_slice(&KEYFRAME_640X360);
        assert_eq!(frame_start(&middle), None);

        let mut other_partition = vec![0x11]; // S=1 but PID=1
        other_partition.extend_from_slice(&KEYFRAME_640X360);
        assert_eq!(frame_start(&other_partition), None);

        let mut interframe = KEYFRAME_640X360;
        interframe[0] |= 0x01;
        assert_eq!(keyframe_dimensions(&interframe), None);
    }

    #[test]
    fn truncated_input_is_rejected_not_panicked_on() {
        assert_eq!(frame_start(&[]), None);
        assert_eq!(frame_start(&[0x90]), None);
        assert_eq!(frame_start(&[0x90, 0x80]), None);
        assert_eq!(frame_start(&[0x10]), None);
        assert_eq!(keyframe_dimensions(&KEYFRAME_640X360[..9]), None);
    }

    #[test]
    fn first_frame_of_the_media_loop_is_a_640x360_keyframe() {
        let path = crate::BotConfig::default_media_dir().join("vp8-640x360.ivf");
        let file = std::fs::File::open(&path).unwrap();
        let (mut reader, header) =
            webrtc::media::io::ivf_reader::IVFReader::new(std::io::BufReader::new(file)).unwrap();
        assert_eq!((header.width, header.height), (640, 360));
        let (frame, _) = reader.parse_next_frame().unwrap();
        assert_eq!(keyframe_dimensions(&frame), Some((640, 360)));
        // And as the first packet a VP8 payloader would make of it.
        let mut payload = vec![0x10];
        payload.extend_from_slice(&frame[..100]);
        assert_eq!(
            keyframe_dimensions(frame_start(&payload).unwrap()),
            Some((640, 360))
        );
    }
}
