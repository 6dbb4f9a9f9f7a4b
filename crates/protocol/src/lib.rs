//! The roomcast signaling contract, version 1: one JSON object per WebSocket text frame,
//! tagged by `"type"`. Shared by the server, the headless bots and the tests.
//!
//! The wire format is documented in `docs/protocol.md`; the types here are its single
//! source of truth in Rust.

mod client;
mod error_code;
mod model;
mod server;

pub use client::{decode_client_message, ClientMessage, DecodeError, PublishedMid};
pub use error_code::ErrorCode;
pub use model::{
    IceCandidate, IceServer, Participant, Quality, Role, RoomSettings, Track, TrackKind,
    TrackSource,
};
pub use server::{PauseReason, ServerMessage, Speaker};

/// Largest text frame the server accepts; a larger one closes the connection (1009).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Room names: 1–64 characters of `A-Z a-z 0-9 _ - .`.
pub fn is_valid_room_name(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Display names: 1–64 characters (not bytes), not all white space.
pub fn is_valid_display_name(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=64).contains(&chars) && !name.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert!(is_valid_room_name("demo-1_A.b"));
        assert!(!is_valid_room_name(""));
        assert!(!is_valid_room_name("has space"));
        assert!(!is_valid_room_name(&"a".repeat(65)));
        assert!(is_valid_room_name(&"a".repeat(64)));
    }

    #[test]
    fn display_names() {
        assert!(is_valid_display_name("Zoë"));
        assert!(!is_valid_display_name(""));
        assert!(!is_valid_display_name("   "));
        assert!(is_valid_display_name(&"é".repeat(64)));
        assert!(!is_valid_display_name(&"é".repeat(65)));
    }
}
