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

/// What a valid display name is, for error messages.
pub const DISPLAY_NAME_RULE: &str =
    "name must be 1-64 characters, not all white space, without control characters";

/// Display names: 1–64 characters (not bytes), not all white space, and nothing that could
/// break a line or reorder text where the name is shown: no control characters (C0, DEL,
/// C1), line or paragraph separators, or bidirectional overrides and isolates.
pub fn is_valid_display_name(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=64).contains(&chars) && !name.trim().is_empty() && !name.chars().any(is_disallowed_in_name)
}

fn is_disallowed_in_name(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
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

    #[test]
    fn display_names_refuse_control_characters() {
        assert!(is_valid_display_name("Ann Lee-O'Brien (she/her) 🎧"));
        for bad in [
            "Ann\nINFO forged line",
            "Ann\r",
            "tab\there",
            "nul\0",
            "esc\u{1b}[31m",
            "del\u{7f}",
            "c1\u{85}",
            "line\u{2028}sep",
            "para\u{2029}sep",
            "rtl\u{202E}evil",
            "isolate\u{2067}x",
        ] {
            assert!(!is_valid_display_name(bad), "{bad:?}");
        }
    }
}
