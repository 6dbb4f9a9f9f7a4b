//! Redundant audio (RED, RFC 2198) for Opus. Chrome does not NACK audio, so a lost Opus
//! packet is concealed; with RED each packet also carries the one or two before it, and a
//! loss of up to that many packets in a row costs nothing. The server builds RED for
//! subscribers that negotiated `audio/red` from a publisher's plain Opus ([`RedHistory`]
//! keeps the track's last payloads; [`write_red`] writes the packet), forwards a
//! publisher's RED to them as it is, and strips it to its primary for the others
//! ([`primary`]).
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters;

use super::codec_map::map_payload_type;

pub const MIME_TYPE_RED: &str = "audio/red";
/// How many earlier payloads a built packet repeats.
pub const REDUNDANT_BLOCKS: usize = 2;
/// The largest block a RED header can describe (10 bits of length).
const MAX_BLOCK: usize = 1023;
/// The largest timestamp offset a RED header can describe (14 bits).
const MAX_OFFSET: u32 = (1 << 14) - 1;
/// A built payload stays under this, so the packet fits the send buffer: redundancy that
/// would not fit is left out, oldest first.
const MAX_PAYLOAD: usize = 1200;

/// How a subscriber gets one publisher payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadMode {
    /// The payload as it came.
    Plain,
    /// Plain Opus in, RED out: the payload is the primary behind earlier payloads, whose
    /// blocks name the subscriber's Opus payload type.
    BuildRed { opus_pt: u8 },
    /// RED in, RED out; the blocks' payload type becomes the subscriber's Opus one.
    ForwardRed { opus_pt: u8 },
    /// RED in, plain Opus out: only the primary block goes.
    StripRed,
}

pub fn is_red(codec: &RTCRtpCodecParameters) -> bool {
    codec
        .capability
        .mime_type
        .eq_ignore_ascii_case(MIME_TYPE_RED)
}

fn is_opus(codec: &RTCRtpCodecParameters) -> bool {
    codec
        .capability
        .mime_type
        .eq_ignore_ascii_case(webrtc::api::media_engine::MIME_TYPE_OPUS)
}

/// The subscriber's payload type for a packet that arrived as `incoming_pt`, and how its
/// payload is written: RED wherever the subscriber negotiated both RED and Opus and the
/// packet is Opus or RED; plain Opus for a RED packet to a subscriber without RED.
pub fn map_payload(
    incoming_pt: u8,
    publisher: &[RTCRtpCodecParameters],
    subscriber: &[RTCRtpCodecParameters],
) -> Option<(u8, PayloadMode)> {
    let from = publisher.iter().find(|c| c.payload_type == incoming_pt)?;
    let sub_red = subscriber
        .iter()
        .find(|c| is_red(c))
        .map(|c| c.payload_type);
    let sub_opus = subscriber
        .iter()
        .find(|c| is_opus(c))
        .map(|c| c.payload_type);
    if is_red(from) {
        return match (sub_red, sub_opus) {
            (Some(red), Some(opus_pt)) => Some((red, PayloadMode::ForwardRed { opus_pt })),
            (None, Some(opus)) => Some((opus, PayloadMode::StripRed)),
            _ => None,
        };
    }
    if is_opus(from) {
        if let (Some(red), Some(opus_pt)) = (sub_red, sub_opus) {
            return Some((red, PayloadMode::BuildRed { opus_pt }));
        }
    }
    map_payload_type(incoming_pt, publisher, subscriber).map(|pt| (pt, PayloadMode::Plain))
}

/// Whether `pt` is Opus among `codecs` (what [`RedHistory`] keeps).
pub fn is_opus_pt(pt: u8, codecs: &[RTCRtpCodecParameters]) -> bool {
    codecs.iter().any(|c| c.payload_type == pt && is_opus(c))
}

#[derive(Clone, Copy)]
struct Slot {
    timestamp: u32,
    len: u16,
    data: [u8; MAX_BLOCK],
}

/// One audio track's last Opus payloads, in a fixed ring: what built RED repeats. Made
/// once per track; pushing and reading allocate nothing.
pub struct RedHistory {
    slots: [Option<Slot>; REDUNDANT_BLOCKS],
    /// Where the next payload goes (the oldest).
    next: usize,
}

impl Default for RedHistory {
    fn default() -> Self {
        RedHistory {
            slots: [None; REDUNDANT_BLOCKS],
            next: 0,
        }
    }
}

/// Earlier payloads to repeat before a primary, oldest first, with their timestamp offsets.
#[derive(Clone, Copy, Default)]
pub struct Redundancy<'a> {
    blocks: [(u16, &'a [u8]); REDUNDANT_BLOCKS],
    len: usize,
}

impl<'a> Redundancy<'a> {
    pub fn blocks(&self) -> &[(u16, &'a [u8])] {
        &self.blocks[..self.len]
    }
}

impl RedHistory {
    /// Keeps `payload` (sent at `timestamp`) for the packets after it; one too large for a
    /// RED block is not kept, and is not repeated.
    pub fn push(&mut self, timestamp: u32, payload: &[u8]) {
        let slot = &mut self.slots[self.next];
        self.next = (self.next + 1) % REDUNDANT_BLOCKS;
        if payload.len() > MAX_BLOCK || payload.is_empty() {
            *slot = None;
            return;
        }
        let mut data = [0u8; MAX_BLOCK];
        data[..payload.len()].copy_from_slice(payload);
        *slot = Some(Slot {
            timestamp,
            len: payload.len() as u16,
            data,
        });
    }

    /// What a packet at `timestamp` with `primary_len` bytes of payload repeats: the kept
    /// payloads from before it (a timestamp offset RED can carry), oldest first, as many as
    /// fit.
    pub fn redundancy_for(&self, timestamp: u32, primary_len: usize) -> Redundancy<'_> {
        let mut out = Redundancy::default();
        // Newest first, so the ones left out for size are the oldest.
        let mut room = MAX_PAYLOAD.saturating_sub(primary_len + 1);
        for i in 0..REDUNDANT_BLOCKS {
            let at = (self.next + REDUNDANT_BLOCKS - 1 - i) % REDUNDANT_BLOCKS;
            let Some(slot) = &self.slots[at] else {
                continue;
            };
            let offset = timestamp.wrapping_sub(slot.timestamp);
            let len = usize::from(slot.len);
            if offset == 0 || offset > MAX_OFFSET || len + 4 > room {
                continue;
            }
            room -= len + 4;
            out.blocks[out.len] = (offset as u16, &slot.data[..len]);
            out.len += 1;
        }
        // Oldest first, as they go on the wire: the largest offset leads.
        out.blocks[..out.len].sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
        out
    }
}

/// Appends a RED payload to `buf`: a header per earlier block (F set, `opus_pt`, its
/// timestamp offset and length), the primary's one-byte header, then the blocks' data and
/// the primary.
pub fn write_red(buf: &mut Vec<u8>, opus_pt: u8, redundancy: Redundancy<'_>, primary: &[u8]) {
    let pt = opus_pt & 0x7f;
    for &(offset, data) in redundancy.blocks() {
        let word = (u32::from(offset) << 10) | data.len() as u32;
        buf.push(0x80 | pt);
        buf.extend_from_slice(&word.to_be_bytes()[1..]);
    }
    buf.push(pt);
    for &(_, data) in redundancy.blocks() {
        buf.extend_from_slice(data);
    }
    buf.extend_from_slice(primary);
}

/// The RED headers' length, and checks that the blocks they describe are in `payload`.
fn headers_len(payload: &[u8]) -> Option<usize> {
    let mut at = 0;
    let mut blocks = 0usize;
    loop {
        let first = *payload.get(at)?;
        if first & 0x80 == 0 {
            at += 1;
            break;
        }
        let b = payload.get(at + 1..at + 4)?;
        blocks += usize::from(u16::from_be_bytes([b[1], b[2]]) & 0x3ff);
        at += 4;
    }
    (at + blocks <= payload.len()).then_some(at)
}

/// A RED payload's primary block (what a subscriber without RED gets); `None` if it is
/// malformed.
pub fn primary(payload: &[u8]) -> Option<&[u8]> {
    let headers = headers_len(payload)?;
    let redundant: usize = payload[..headers - 1]
        .chunks_exact(4)
        .map(|h| usize::from(u16::from_be_bytes([h[2], h[3]]) & 0x3ff))
        .sum();
    payload.get(headers + redundant..)
}

/// Sets every block's payload type in a RED payload (already copied into `payload`) to
/// `pt`; `false` if it is malformed.
pub fn set_block_payload_types(payload: &mut [u8], pt: u8) -> bool {
    let Some(headers) = headers_len(payload) else {
        return false;
    };
    let mut at = 0;
    while at < headers {
        payload[at] = (payload[at] & 0x80) | (pt & 0x7f);
        at += if payload[at] & 0x80 != 0 { 4 } else { 1 };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;

    fn codec(pt: u8, mime: &str) -> RTCRtpCodecParameters {
        RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: mime.into(),
                clock_rate: 48000,
                channels: 2,
                ..Default::default()
            },
            payload_type: pt,
            ..Default::default()
        }
    }

    /// The blocks of a RED payload: (payload type, timestamp offset, data), primary last
    /// with offset 0.
    fn parse(payload: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
        let headers = headers_len(payload).expect("well-formed");
        let mut blocks = Vec::new();
        let mut data_at = headers;
        for h in payload[..headers - 1].chunks_exact(4) {
            let word = u32::from_be_bytes([0, h[1], h[2], h[3]]);
            let len = (word & 0x3ff) as usize;
            blocks.push((
                h[0] & 0x7f,
                (word >> 10) as u16,
                payload[data_at..data_at + len].to_vec(),
            ));
            data_at += len;
        }
        blocks.push((payload[headers - 1], 0, payload[data_at..].to_vec()));
        blocks
    }

    #[test]
    fn built_red_repeats_the_two_payloads_before_the_primary() {
        let mut history = RedHistory::default();
        let mut buf = Vec::new();
        write_red(&mut buf, 111, history.redundancy_for(1000, 3), b"one");
        assert_eq!(parse(&buf), vec![(111, 0, b"one".to_vec())]);
        history.push(1000, b"one");
        history.push(1960, b"two");
        history.push(2920, b"three");
        buf.clear();
        write_red(&mut buf, 111, history.redundancy_for(3880, 4), b"four");
        assert_eq!(
            parse(&buf),
            vec![
                (111, 1920, b"two".to_vec()),
                (111, 960, b"three".to_vec()),
                (111, 0, b"four".to_vec()),
            ]
        );
        assert_eq!(primary(&buf), Some(&b"four"[..]));
    }

    #[test]
    fn what_red_cannot_describe_is_left_out() {
        let mut history = RedHistory::default();
        history.push(0, &[1; 1024]); // longer than 10 bits of length
        history.push(100, &[2; 10]);
        assert_eq!(history.redundancy_for(200, 10).blocks().len(), 1);
        // 16384 ticks later is beyond 14 bits of offset; the same timestamp is no earlier.
        assert_eq!(history.redundancy_for(100 + 16384, 10).blocks().len(), 0);
        assert_eq!(history.redundancy_for(100, 10).blocks().len(), 0);
        // Large payloads: the oldest goes first so the packet fits.
        history.push(1000, &[3; 700]);
        history.push(2000, &[4; 700]);
        let r = history.redundancy_for(3000, 100);
        assert_eq!(r.blocks().len(), 1);
        assert_eq!(r.blocks()[0].0, 1000);
    }

    #[test]
    fn publisher_red_is_stripped_or_renumbered() {
        let mut history = RedHistory::default();
        history.push(0, b"old");
        let mut buf = Vec::new();
        write_red(&mut buf, 63, history.redundancy_for(960, 3), b"new");
        assert_eq!(primary(&buf), Some(&b"new"[..]));
        assert!(set_block_payload_types(&mut buf, 111));
        assert_eq!(
            parse(&buf),
            vec![(111, 960, b"old".to_vec()), (111, 0, b"new".to_vec())]
        );
        // Truncated or lying about its lengths: refused, never read past the end.
        for bad in [
            &[][..],
            &[0x80 | 63, 0, 0],
            &[0x80 | 63, 0, 0, 200, 111, 1, 2],
        ] {
            assert_eq!(primary(bad), None);
            assert!(!set_block_payload_types(&mut bad.to_vec(), 111));
        }
    }

    #[test]
    fn red_goes_where_both_sides_can_take_it() {
        let plain = [codec(111, "audio/opus")];
        let both = [codec(111, "audio/opus"), codec(63, "audio/red")];
        let other = [codec(109, "audio/opus"), codec(100, "audio/RED")];
        assert_eq!(
            map_payload(111, &plain, &plain),
            Some((111, PayloadMode::Plain))
        );
        assert_eq!(
            map_payload(111, &plain, &other),
            Some((100, PayloadMode::BuildRed { opus_pt: 109 }))
        );
        assert_eq!(
            map_payload(63, &both, &other),
            Some((100, PayloadMode::ForwardRed { opus_pt: 109 }))
        );
        assert_eq!(
            map_payload(63, &both, &plain),
            Some((111, PayloadMode::StripRed))
        );
        assert_eq!(map_payload(63, &both, &[codec(96, "video/VP8")]), None);
    }
}
