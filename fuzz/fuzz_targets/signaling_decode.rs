//! Any WebSocket text frame through the signaling decoder: it must answer with a message
//! or a `bad_request` that says what is wrong, and a message it accepts must survive being
//! written back out and decoded again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_protocol::{decode_client_message, ErrorCode};

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 by the WebSocket rules; the server never sees anything else.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode_client_message(text) {
        Ok(message) => {
            let again = serde_json::to_string(&message).expect("a decoded message serializes");
            assert_eq!(decode_client_message(&again), Ok(message));
        }
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::BadRequest);
            assert!(!e.message.trim().is_empty());
        }
    }
});
