//! `chat`: a line of text for the room, within the sender's rate and the room's (see
//! [`crate::room::RoomState::chat`] for who reads it).
use std::time::Instant;

use roomcast_protocol::ErrorCode;

use super::super::SessionCore;
use crate::rate::TokenBucket;
use crate::room::ChatRefused;

/// The longest chat line, in characters.
const MAX_CHAT_CHARS: usize = 4000;

/// With the `fault-injection` feature (test builds only), this chat line makes the session
/// panic, to show that a panicking session is cleaned up like one that dropped.
#[cfg(feature = "fault-injection")]
pub const PANIC_ON_CHAT: &str = "roomcast fault injection: panic in this session";

impl SessionCore {
    pub(in super::super) fn on_chat(&mut self, text: String, now: Instant) {
        #[cfg(feature = "fault-injection")]
        if text == PANIC_ON_CHAT {
            panic!("fault injection: session {} panics", self.id);
        }
        if text.trim().is_empty() || text.chars().count() > MAX_CHAT_CHARS {
            return self.error(ErrorCode::BadRequest, "chat text must be 1-4000 characters");
        }
        let rate = self.limits.chat;
        let mine = self.chat.get_or_insert_with(|| TokenBucket::new(rate, now));
        if !mine.try_take(now) {
            return self.error(
                ErrorCode::LimitExceeded,
                format!(
                    "at most {} chat messages per second (bursts of {}); this one was not sent",
                    rate.per_second, rate.burst
                ),
            );
        }
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        match self.room.chat(&self.id, text, ts, now) {
            Ok(()) | Err(ChatRefused::NotHere) => {}
            Err(ChatRefused::Busy(rate)) => self.error(
                ErrorCode::LimitExceeded,
                format!(
                    "the room's chat is busy: at most {} messages per second from everyone; this one was not sent",
                    rate.per_second
                ),
            ),
        }
    }
}
