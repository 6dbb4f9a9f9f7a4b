//! `chat`: a line of text for the room.
use roomcast_protocol::{ErrorCode, ServerMessage};

use super::super::SessionCore;

/// The longest chat line, in characters.
const MAX_CHAT_CHARS: usize = 4000;

impl SessionCore {
    pub(in super::super) fn on_chat(&mut self, text: String) {
        if text.trim().is_empty() || text.chars().count() > MAX_CHAT_CHARS {
            return self.error(ErrorCode::BadRequest, "chat text must be 1-4000 characters");
        }
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.room.broadcast(ServerMessage::Chat {
            participant_id: self.id.clone(),
            name: self.name.clone(),
            text,
            ts,
        });
    }
}
