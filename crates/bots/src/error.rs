use std::path::PathBuf;

use roomcast_protocol::ErrorCode;

/// Everything a bot can fail at. Nothing that comes from the network panics; it ends up here.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The server answered with an `error` message (to `join`, or to a publish).
    #[error("refused by the server: {code}: {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::Error),
    /// The server broke the signaling contract.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The WebSocket is closed (or the bot is shutting down).
    #[error("signaling connection closed")]
    Closed,
    #[error("media loop {path}: {reason}")]
    Media { path: PathBuf, reason: String },
    /// The bot's media socket could not be opened.
    #[error("media socket: {0}")]
    Socket(String),
}
