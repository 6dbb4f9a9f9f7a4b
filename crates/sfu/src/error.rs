//! The errors the SFU's constructors return.

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("cannot bind: {0}")]
    Bind(String),
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::Error),
    #[error("internal: {0}")]
    Internal(String),
}
