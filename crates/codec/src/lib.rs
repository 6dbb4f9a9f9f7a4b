//! What an SFU needs to know about a media payload without decoding it: is this packet the
//! start of a keyframe, and (VP8) what size is the frame. Pure functions over byte slices;
//! any input, however malformed, gives an answer and never panics.

pub mod h264;
pub mod vp8;

/// The video codecs roomcast forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
}

impl VideoCodec {
    /// From an RTP codec MIME type such as `video/VP8` (case-insensitive).
    pub fn from_mime(mime: &str) -> Option<Self> {
        if mime.eq_ignore_ascii_case("video/vp8") {
            Some(VideoCodec::Vp8)
        } else if mime.eq_ignore_ascii_case("video/h264") {
            Some(VideoCodec::H264)
        } else {
            None
        }
    }

    /// Whether this RTP payload starts a keyframe.
    pub fn is_keyframe(self, payload: &[u8]) -> bool {
        match self {
            VideoCodec::Vp8 => vp8::keyframe_size(payload).is_some(),
            VideoCodec::H264 => h264::is_keyframe(payload),
        }
    }
}
