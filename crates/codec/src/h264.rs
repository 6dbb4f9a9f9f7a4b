//! H.264 RTP payloads (RFC 6184): keyframe detection through single NAL units, STAP-A
//! aggregates and the first fragment of FU-A, and the picture size from a sequence parameter
//! set (ITU-T H.264 §7.3.2.1.1), read without decoding anything else.

use crate::vp8::FrameSize;

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

/// The picture size announced by the SPS this RTP payload carries (as a single NAL unit,
/// inside a STAP-A, or in the first fragment of an FU-A); `None` when it carries no SPS or
/// the SPS does not parse.
pub fn payload_sps_size(payload: &[u8]) -> Option<FrameSize> {
    let first = *payload.first()?;
    match first & 0x1f {
        NAL_SPS => sps_frame_size(payload),
        NAL_STAP_A => {
            let mut units = &payload[1..];
            while units.len() > 2 {
                let size = usize::from(u16::from_be_bytes([units[0], units[1]]));
                let nal = units.get(2..2 + size)?;
                if nal.first().is_some_and(|h| h & 0x1f == NAL_SPS) {
                    return sps_frame_size(nal);
                }
                units = &units[2 + size..];
            }
            None
        }
        NAL_FU_A => {
            let fu = *payload.get(1)?;
            if fu & 0x80 == 0 || fu & 0x1f != NAL_SPS {
                return None;
            }
            // The fragment starts with the SPS payload; the size fields come early in it.
            let mut nal = Vec::with_capacity(payload.len() - 1);
            nal.push((first & 0xe0) | NAL_SPS);
            nal.extend_from_slice(&payload[2..]);
            sps_frame_size(&nal)
        }
        _ => None,
    }
}

/// The cropped picture size of a sequence parameter set NAL unit (header byte first,
/// emulation prevention bytes still in). `None` for anything that is not a well-formed SPS
/// or whose size does not fit 16 bits.
pub fn sps_frame_size(nal: &[u8]) -> Option<FrameSize> {
    if nal.first()? & 0x1f != NAL_SPS {
        return None;
    }
    let mut r = BitReader::new(&nal[1..]);
    let profile_idc = r.bits(8)?;
    r.bits(8)?; // constraint_set flags, reserved_zero_2bits
    r.bits(8)?; // level_idc
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.flag()?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        // pic_order_cnt_type
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.flag()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?; // offset_for_ref_frame
            }
        }
        2 => {}
        _ => return None,
    }
    r.ue()?; // max_num_ref_frames
    r.flag()?; // gaps_in_frame_num_value_allowed_flag
    let width_in_mbs = u64::from(r.ue()?) + 1;
    let height_in_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.flag()?; // mb_adaptive_frame_field_flag
    }
    r.flag()?; // direct_8x8_inference_flag
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.flag()? {
        // frame_cropping_flag
        left = u64::from(r.ue()?);
        right = u64::from(r.ue()?);
        top = u64::from(r.ue()?);
        bottom = u64::from(r.ue()?);
    }
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    // Table 6-1: SubWidthC and SubHeightC by chroma format; no chroma (monochrome or
    // separate colour planes) crops in luma samples.
    let (crop_x, crop_y) = match (separate_colour_plane, chroma_format_idc) {
        (true, _) | (_, 0) => (1, field_factor),
        (_, 1) => (2, 2 * field_factor),
        (_, 2) => (2, field_factor),
        _ => (1, field_factor),
    };
    let width = (width_in_mbs * 16).checked_sub(crop_x * (left + right))?;
    let height = (height_in_map_units * 16 * field_factor).checked_sub(crop_y * (top + bottom))?;
    Some(FrameSize {
        width: u16::try_from(width).ok().filter(|&w| w > 0)?,
        height: u16::try_from(height).ok().filter(|&h| h > 0)?,
    })
}

/// `scaling_list()` of §7.3.2.1.1.1, read only to get past it.
fn skip_scaling_list(r: &mut BitReader, size: usize) -> Option<()> {
    let mut last = 8i64;
    let mut next = 8i64;
    for _ in 0..size {
        if next != 0 {
            let delta = i64::from(r.se()?);
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Reads an RBSP bit by bit from a NAL unit's payload, skipping emulation prevention bytes
/// (the 0x03 of every 0x00 0x00 0x03).
struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte to load.
    at: usize,
    /// Zero bytes just before `at`, to spot emulation prevention.
    zeros: u8,
    current: u8,
    /// Bits of `current` not yet read.
    left: u8,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            at: 0,
            zeros: 0,
            current: 0,
            left: 0,
        }
    }

    fn bit(&mut self) -> Option<u32> {
        if self.left == 0 {
            let mut byte = *self.data.get(self.at)?;
            self.at += 1;
            if self.zeros >= 2 && byte == 0x03 {
                byte = *self.data.get(self.at)?;
                self.at += 1;
                self.zeros = 0;
            }
            self.zeros = if byte == 0 { self.zeros + 1 } else { 0 };
            self.current = byte;
            self.left = 8;
        }
        self.left -= 1;
        Some(u32::from((self.current >> self.left) & 1))
    }

    fn flag(&mut self) -> Option<bool> {
        self.bit().map(|b| b == 1)
    }

    fn bits(&mut self, n: u8) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | self.bit()?))
    }

    /// ue(v): unsigned exp-Golomb, at most 32 bits of value.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0u8;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let suffix = self.bits(zeros)?;
        ((1u64 << zeros) - 1 + u64::from(suffix)).try_into().ok()
    }

    /// se(v): signed exp-Golomb.
    fn se(&mut self) -> Option<i32> {
        let k = i64::from(self.ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(value).ok()
    }
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

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn size(width: u16, height: u16) -> Option<FrameSize> {
        Some(FrameSize { width, height })
    }

    /// SPSs x264 wrote for the media loops (constrained baseline), one with emulation
    /// prevention bytes and cropping (180 = 12 macroblocks less 12 rows), one exact.
    const SPS_320X180: &str = "6742c01fda05067e7c0440000003004000000f03c60ca8";
    const SPS_640X360: &str = "6742c01fda0280bfe5c044000003000400000300f03c60ca80";
    const SPS_1280X720: &str = "6742c01fda014016ec0440000003004000000f03c60ca8";
    /// x264 high profile 1920x1080 (1088 rows cropped by 8), and high 4:2:2 interlaced
    /// 1280x720 (field pictures: map units are macroblock pairs).
    const SPS_HIGH_1080P: &str = "67640028acd940780227e5c044000003000400000300f03c60c658";
    const SPS_HIGH422_INTERLACED_720: &str =
        "677a0020bcd940500bbf138088000003000800000301e0f8b16cb0";

    #[test]
    fn sizes_of_real_spss() {
        assert_eq!(sps_frame_size(&hex(SPS_320X180)), size(320, 180));
        assert_eq!(sps_frame_size(&hex(SPS_640X360)), size(640, 360));
        assert_eq!(sps_frame_size(&hex(SPS_1280X720)), size(1280, 720));
        assert_eq!(sps_frame_size(&hex(SPS_HIGH_1080P)), size(1920, 1080));
        assert_eq!(
            sps_frame_size(&hex(SPS_HIGH422_INTERLACED_720)),
            size(1280, 720)
        );
    }

    /// Writes exp-Golomb fields, for SPSs no encoder at hand makes.
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn bits(&mut self, value: u32, n: u8) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push(value >> i & 1 == 1);
            }
            self
        }
        fn ue(&mut self, value: u32) -> &mut Self {
            let v = u64::from(value) + 1;
            let len = 64 - v.leading_zeros() as u8;
            self.bits(0, len - 1);
            for i in (0..len).rev() {
                self.bits.push(v >> i & 1 == 1);
            }
            self
        }
        fn se(&mut self, value: i32) -> &mut Self {
            let k = if value > 0 { 2 * value - 1 } else { -2 * value };
            self.ue(k as u32)
        }
        /// With the RBSP stop bit, then emulation prevention as an encoder adds it.
        fn nal(&mut self) -> Vec<u8> {
            self.bits.push(true);
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(false);
            }
            let rbsp: Vec<u8> = self
                .bits
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |acc, &b| acc << 1 | u8::from(b)))
                .collect();
            let mut nal = vec![0x67];
            let mut zeros = 0;
            for byte in rbsp {
                if zeros >= 2 && byte <= 3 {
                    nal.push(3);
                    zeros = 0;
                }
                zeros = if byte == 0 { zeros + 1 } else { 0 };
                nal.push(byte);
            }
            nal
        }
    }

    #[test]
    fn high_profile_with_scaling_lists_poc_type_1_and_4_4_4_cropping() {
        let mut w = BitWriter::default();
        w.bits(244, 8).bits(0, 8).bits(51, 8).ue(0); // High 4:4:4, level 5.1, sps id 0
        w.ue(3).bits(0, 1).ue(2).ue(2).bits(0, 1); // 4:4:4, 10-bit
        w.bits(1, 1); // scaling matrix present: 12 lists, two of them explicit
        for i in 0..12 {
            match i {
                0 => {
                    w.bits(1, 1);
                    for j in 0..16 {
                        w.se(if j % 2 == 0 { 3 } else { -2 });
                    }
                }
                7 => {
                    // delta -8 ends the list at once (next scale 0).
                    w.bits(1, 1).se(-8);
                }
                _ => {
                    w.bits(0, 1);
                }
            }
        }
        w.ue(0)
            .ue(1)
            .bits(0, 1)
            .se(-2)
            .se(1)
            .ue(3)
            .se(1)
            .se(-1)
            .se(7); // POC type 1
        w.ue(4).bits(0, 1).ue(119).ue(67); // refs, no gaps, 120 x 68 macroblocks
        w.bits(1, 1).bits(1, 1).bits(1, 1); // frame_mbs_only, direct_8x8, cropping
        w.ue(1).ue(3).ue(0).ue(8); // 4:4:4 crops in whole samples
        let nal = w.nal();
        assert_eq!(sps_frame_size(&nal), size(1920 - 4, 1088 - 8));
    }

    #[test]
    fn fields_and_4_2_0_cropping_count_double_rows() {
        let mut w = BitWriter::default();
        w.bits(77, 8).bits(0, 8).bits(30, 8).ue(5); // Main profile
        w.ue(0).ue(2).ue(2).bits(0, 1).ue(44).ue(17); // POC type 2, 45 x 18 MB pairs
        w.bits(0, 1).bits(1, 1).bits(1, 1).bits(1, 1); // fields, MBAFF, direct, cropping
        w.ue(0).ue(0).ue(0).ue(2); // bottom crop 2 units of 4 rows
        assert_eq!(sps_frame_size(&w.nal()), size(720, 576 - 8));
    }

    #[test]
    fn sps_inside_rtp_payloads() {
        let sps = hex(SPS_640X360);
        assert_eq!(payload_sps_size(&sps), size(640, 360));
        let mut stap = vec![0x78, 0x00, 0x02, 0x09, 0xf0];
        stap.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        stap.extend_from_slice(&sps);
        stap.extend_from_slice(&[0x00, 0x02, 0x68, 0xce]);
        assert_eq!(payload_sps_size(&stap), size(640, 360));
        let mut fu_start = vec![0x7c, 0x80 | 0x07];
        fu_start.extend_from_slice(&sps[1..12]);
        assert_eq!(payload_sps_size(&fu_start), size(640, 360));
        fu_start[1] = 0x07; // a middle fragment
        assert_eq!(payload_sps_size(&fu_start), None);
        assert_eq!(payload_sps_size(&[0x65, 0x88, 0x84]), None);
        assert_eq!(payload_sps_size(&[0x78, 0x00, 0x02, 0x68, 0xce]), None);
    }

    #[test]
    fn truncated_or_malformed_spss_give_no_size() {
        // Cut anywhere before the last field read (the cropping flag), nothing parses.
        let sps = hex(SPS_1280X720);
        let shortest = (0..=sps.len())
            .find(|&len| sps_frame_size(&sps[..len]).is_some())
            .unwrap();
        assert!(shortest > 8, "{shortest}");
        for len in 0..shortest {
            assert_eq!(sps_frame_size(&sps[..len]), None, "{len}");
        }
        assert_eq!(sps_frame_size(&[0x68, 0x42, 0xc0]), None, "a PPS");
        // A run of zero bits longer than any ue(v) can be.
        assert_eq!(
            sps_frame_size(&[0x67, 0x42, 0, 0x1f, 0, 0, 0, 0, 0, 0]),
            None
        );
        for fill in [0x00u8, 0xff, 0x03, 0x80] {
            for len in 0..40 {
                let mut nal = vec![fill; len];
                if let Some(h) = nal.first_mut() {
                    *h = 0x67;
                }
                let _ = sps_frame_size(&nal);
                let _ = payload_sps_size(&nal);
            }
        }
    }
}
