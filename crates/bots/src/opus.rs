//! Opus packet duration from its TOC byte (RFC 6716 §3.1).
use std::time::Duration;

/// How much audio one Opus packet holds; `None` for an empty or malformed packet.
pub(crate) fn packet_duration(packet: &[u8]) -> Option<Duration> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame_micros: u64 = match config {
        0..=11 => [10_000, 20_000, 40_000, 60_000][usize::from(config % 4)], // SILK
        12..=15 => [10_000, 20_000][usize::from(config % 2)],                // hybrid
        _ => [2_500, 5_000, 10_000, 20_000][usize::from(config % 4)],        // CELT
    };
    let frames: u64 = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(*packet.get(1)? & 0x3f),
    };
    (frames > 0).then(|| Duration::from_micros(frame_micros * frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(packet_duration(&[0xf8]), Some(Duration::from_millis(20))); // CELT FB 20 ms
        assert_eq!(packet_duration(&[0x78]), Some(Duration::from_millis(20))); // hybrid FB 20 ms
        assert_eq!(packet_duration(&[0x08]), Some(Duration::from_millis(20))); // SILK NB 20 ms
        assert_eq!(packet_duration(&[0xf9]), Some(Duration::from_millis(40))); // two frames
        assert_eq!(
            packet_duration(&[0xfb, 0x03]),
            Some(Duration::from_millis(60))
        );
        assert_eq!(packet_duration(&[0xfb, 0x00]), None);
        assert_eq!(packet_duration(&[0xfb]), None);
        assert_eq!(packet_duration(&[]), None);
    }
}
