//! The encoded loops a bot publishes (made by `media/make-loops.sh`), parsed once per process
//! into frames that every bot shares.
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use webrtc::media::io::h264_reader::H264Reader;
use webrtc::media::io::ivf_reader::IVFReader;
use webrtc::media::io::ogg_reader::OggReader;

use crate::{h264, opus, BotError, VideoCodec};

/// The Annex-B loop has no timing of its own; `make-loops.sh` encodes it at this rate.
const H264_LOOP_FPS: u32 = 30;

/// The sizes the video loops come in: simulcast layers `q`, `h` and `f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum VideoSize {
    /// 320x180
    Quarter,
    /// 640x360, also the video of a bot without simulcast.
    Half,
    /// 1280x720
    Full,
}

/// Which loop to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LoopSource {
    Opus,
    Video(VideoCodec, VideoSize),
}

impl LoopSource {
    pub(crate) fn file_name(self) -> &'static str {
        use VideoSize::*;
        match self {
            LoopSource::Opus => "opus-48k.ogg",
            LoopSource::Video(VideoCodec::Vp8, Quarter) => "vp8-320x180.ivf",
            LoopSource::Video(VideoCodec::Vp8, Half) => "vp8-640x360.ivf",
            LoopSource::Video(VideoCodec::Vp8, Full) => "vp8-1280x720.ivf",
            LoopSource::Video(VideoCodec::H264, Quarter) => "h264-320x180.h264",
            LoopSource::Video(VideoCodec::H264, Half) => "h264-640x360.h264",
            LoopSource::Video(VideoCodec::H264, Full) => "h264-1280x720.h264",
        }
    }
}

/// The `.levels` file beside the Opus loop.
pub(crate) const OPUS_LEVELS_FILE: &str = "opus-48k.levels";

/// One encoded frame: what one `Sample` carries.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub data: Bytes,
    pub keyframe: bool,
    /// RFC 6464 level (0 loudest .. 127 silent), for audio.
    pub audio_level: Option<u8>,
}

/// A whole loop, played at a fixed frame interval and repeated forever.
#[derive(Debug)]
pub(crate) struct MediaLoop {
    pub frames: Vec<Frame>,
    pub frame_interval: Duration,
}

impl MediaLoop {
    /// The first keyframe at or after `index` (wrapping), or `index` if there is none.
    pub(crate) fn keyframe_at_or_after(&self, index: usize) -> usize {
        let len = self.frames.len();
        (0..len)
            .map(|i| (index + i) % len)
            .find(|&i| self.frames[i].keyframe)
            .unwrap_or(index)
    }
}

/// Loads a loop from `dir`, or returns the copy this process already loaded.
pub(crate) async fn load(dir: &Path, source: LoopSource) -> Result<Arc<MediaLoop>, BotError> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<MediaLoop>>>> = OnceLock::new();
    let path = dir.join(source.file_name());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().get(&path) {
        return Ok(Arc::clone(found));
    }
    let parse_path = path.clone();
    let parsed = tokio::task::spawn_blocking(move || match source {
        LoopSource::Opus => parse_ogg_opus(&parse_path),
        LoopSource::Video(VideoCodec::Vp8, _) => parse_ivf_vp8(&parse_path),
        LoopSource::Video(VideoCodec::H264, _) => parse_annex_b(&parse_path),
    })
    .await
    .map_err(|e| media_error(&path, e))??;
    let parsed = Arc::new(parsed);
    Ok(Arc::clone(cache.lock().entry(path).or_insert(parsed)))
}

fn media_error(path: &Path, reason: impl std::fmt::Display) -> BotError {
    BotError::Media {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn open(path: &Path) -> Result<BufReader<File>, BotError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| media_error(path, format!("{e} (run media/make-loops.sh)")))
}

fn checked(
    path: &Path,
    frames: Vec<Frame>,
    frame_interval: Duration,
) -> Result<MediaLoop, BotError> {
    if frames.is_empty() {
        return Err(media_error(path, "no frames"));
    }
    if !(Duration::from_millis(1)..=Duration::from_secs(1)).contains(&frame_interval) {
        return Err(media_error(
            path,
            format!("frame interval {frame_interval:?}"),
        ));
    }
    Ok(MediaLoop {
        frames,
        frame_interval,
    })
}

fn parse_ivf_vp8(path: &Path) -> Result<MediaLoop, BotError> {
    let (mut reader, header) = IVFReader::new(open(path)?).map_err(|e| media_error(path, e))?;
    if &header.four_cc != b"VP80" {
        return Err(media_error(path, "not VP8"));
    }
    let mut frames = Vec::new();
    let mut timestamps = Vec::new();
    // The reader reports the end of the file as an error like any other.
    while let Ok((data, frame_header)) = reader.parse_next_frame() {
        frames.push(Frame {
            keyframe: roomcast_codec::vp8::frame_keyframe_size(&data).is_some(),
            data: data.freeze(),
            audio_level: None,
        });
        timestamps.push(frame_header.timestamp);
    }
    let ticks = match timestamps.as_slice() {
        [first, second, ..] => second.saturating_sub(*first).max(1),
        _ => 1,
    };
    let den = u64::from(header.timebase_denominator.max(1));
    let interval =
        Duration::from_nanos(ticks * u64::from(header.timebase_numerator) * 1_000_000_000 / den);
    checked(path, frames, interval)
}

fn parse_annex_b(path: &Path) -> Result<MediaLoop, BotError> {
    let mut reader = H264Reader::new(open(path)?, 1 << 16);
    let mut nals = Vec::new();
    while let Ok(nal) = reader.next_nal() {
        nals.push(nal.data.freeze());
    }
    let frames = h264::access_units(nals.iter().map(|n| &n[..]))
        .into_iter()
        .map(|unit| Frame {
            data: unit.data,
            keyframe: unit.idr,
            audio_level: None,
        })
        .collect();
    checked(path, frames, Duration::from_secs(1) / H264_LOOP_FPS)
}

/// Opus in Ogg with one packet per page (`-page_duration 20000`), all of one duration, and a
/// `.levels` file beside it with one RFC 6464 level per packet.
fn parse_ogg_opus(path: &Path) -> Result<MediaLoop, BotError> {
    let levels = read_levels(&path.with_file_name(OPUS_LEVELS_FILE))?;
    let (mut reader, _) = OggReader::new(open(path)?, true).map_err(|e| media_error(path, e))?;
    let mut frames: Vec<Frame> = Vec::new();
    let mut interval = None;
    while let Ok((page, _)) = reader.parse_next_page() {
        if page.starts_with(b"OpusTags") {
            continue;
        }
        let duration =
            opus::packet_duration(&page).ok_or_else(|| media_error(path, "bad Opus packet"))?;
        if *interval.get_or_insert(duration) != duration {
            return Err(media_error(path, "Opus packets of different durations"));
        }
        frames.push(Frame {
            audio_level: Some(levels[frames.len() % levels.len()]),
            data: page.freeze(),
            keyframe: false,
        });
    }
    checked(path, frames, interval.unwrap_or_default())
}

fn read_levels(path: &Path) -> Result<Vec<u8>, BotError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| media_error(path, format!("{e} (run media/make-loops.sh)")))?;
    let levels = text
        .lines()
        .map(|line| match line.trim().parse::<u8>() {
            Ok(level) if level <= 127 => Ok(level),
            _ => Err(media_error(path, format!("bad level {line:?}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if levels.is_empty() {
        return Err(media_error(path, "no levels"));
    }
    Ok(levels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BotConfig;

    async fn load_default(source: LoopSource) -> Arc<MediaLoop> {
        load(&BotConfig::default_media_dir(), source).await.unwrap()
    }

    #[tokio::test]
    async fn vp8_loop_is_30_fps_with_a_keyframe_every_2_s() {
        let media = load_default(LoopSource::Video(VideoCodec::Vp8, VideoSize::Half)).await;
        assert_eq!(media.frame_interval, Duration::from_nanos(33_333_333));
        assert_eq!(media.frames.len(), 300);
        let keyframes: Vec<usize> = (0..300).filter(|&i| media.frames[i].keyframe).collect();
        assert_eq!(keyframes, [0, 60, 120, 180, 240]);
        assert_eq!(media.keyframe_at_or_after(61), 120);
        assert_eq!(media.keyframe_at_or_after(250), 0);
        assert_eq!(media.keyframe_at_or_after(60), 60);
    }

    #[tokio::test]
    async fn h264_loop_has_one_access_unit_per_frame() {
        let media = load_default(LoopSource::Video(VideoCodec::H264, VideoSize::Half)).await;
        assert_eq!(media.frames.len(), 300);
        assert!(media.frames[0].keyframe);
        assert_eq!(media.frames.iter().filter(|f| f.keyframe).count(), 5);
    }

    /// The size from the first SPS of an access unit as `access_units` makes them (4-byte
    /// start codes).
    fn first_sps_size(unit: &[u8]) -> Option<roomcast_codec::vp8::FrameSize> {
        let starts: Vec<usize> = unit
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == [0, 0, 0, 1])
            .map(|(i, _)| i + 4)
            .collect();
        starts
            .iter()
            .enumerate()
            .map(|(k, &start)| &unit[start..starts.get(k + 1).map_or(unit.len(), |&n| n - 4)])
            .find(|nal| nal.first().is_some_and(|h| h & 0x1f == 7))
            .and_then(roomcast_codec::h264::sps_frame_size)
    }

    #[tokio::test]
    async fn every_simulcast_loop_has_its_size_and_the_same_rhythm() {
        for (size, width, height) in [
            (VideoSize::Quarter, 320, 180),
            (VideoSize::Half, 640, 360),
            (VideoSize::Full, 1280, 720),
        ] {
            let vp8 = load_default(LoopSource::Video(VideoCodec::Vp8, size)).await;
            let h264 = load_default(LoopSource::Video(VideoCodec::H264, size)).await;
            for media in [&vp8, &h264] {
                assert_eq!(media.frames.len(), 300, "{size:?}");
                let keyframes: Vec<usize> =
                    (0..300).filter(|&i| media.frames[i].keyframe).collect();
                assert_eq!(keyframes, [0, 60, 120, 180, 240], "{size:?}");
            }
            let vp8_size = roomcast_codec::vp8::frame_keyframe_size(&vp8.frames[0].data).unwrap();
            assert_eq!((vp8_size.width, vp8_size.height), (width, height));
            let h264_size = first_sps_size(&h264.frames[0].data).unwrap();
            assert_eq!((h264_size.width, h264_size.height), (width, height));
        }
    }

    #[tokio::test]
    async fn opus_loop_is_20_ms_frames_with_varying_levels() {
        let media = load_default(LoopSource::Opus).await;
        assert_eq!(media.frame_interval, Duration::from_millis(20));
        assert!((495..=505).contains(&media.frames.len()));
        let levels: Vec<u8> = media.frames.iter().filter_map(|f| f.audio_level).collect();
        assert_eq!(levels.len(), media.frames.len());
        assert!(levels.iter().any(|&l| l < 40), "no loud frames");
        assert!(levels.contains(&127), "no silent frames");
    }

    #[tokio::test]
    async fn loops_are_loaded_once_per_process() {
        let a = load_default(LoopSource::Opus).await;
        let b = load_default(LoopSource::Opus).await;
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[tokio::test]
    async fn a_missing_loop_says_how_to_make_it() {
        let err = load(
            Path::new("/nonexistent"),
            LoopSource::Video(VideoCodec::Vp8, VideoSize::Half),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("make-loops.sh"), "{err}");
    }
}
