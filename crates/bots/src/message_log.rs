//! What the server said, in order, and whether it has closed the connection: the record that
//! `Bot::messages` and every `wait_for_*` read.
use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use roomcast_protocol::ServerMessage;
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

use crate::BotError;

/// A position in the stream of server messages: waits started from it see every message
/// that arrived after it was taken, even those that arrived before the wait began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MessageCursor(u64);

impl MessageCursor {
    /// Before the first message: a wait from here sees every message still in the log.
    pub const START: MessageCursor = MessageCursor(0);
}

/// How the signaling connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code the server sent; `None` if the connection dropped without one.
    pub code: Option<u16>,
}

pub(crate) struct MessageLog {
    inner: Mutex<Inner>,
    /// Bumped on every message and on close.
    changed: watch::Sender<()>,
}

struct Inner {
    /// Sequence number of `messages[0]`.
    first_seq: u64,
    messages: VecDeque<ServerMessage>,
    capacity: usize,
    closed: Option<CloseInfo>,
}

impl MessageLog {
    pub(crate) fn new(capacity: usize) -> Self {
        MessageLog {
            inner: Mutex::new(Inner {
                first_seq: 0,
                messages: VecDeque::new(),
                capacity: capacity.max(1),
                closed: None,
            }),
            changed: watch::Sender::new(()),
        }
    }

    pub(crate) fn push(&self, message: ServerMessage) {
        {
            let mut inner = self.inner.lock();
            if inner.messages.len() == inner.capacity {
                inner.messages.pop_front();
                inner.first_seq += 1;
            }
            inner.messages.push_back(message);
        }
        self.changed.send_replace(());
    }

    /// Records the end of the connection; only the first call counts.
    pub(crate) fn mark_closed(&self, code: Option<u16>) {
        self.inner.lock().closed.get_or_insert(CloseInfo { code });
        self.changed.send_replace(());
    }

    /// A new connection took over (a resume): the log is open again.
    pub(crate) fn reopen(&self) {
        self.inner.lock().closed = None;
        self.changed.send_replace(());
    }

    pub(crate) fn snapshot(&self) -> Vec<ServerMessage> {
        self.inner.lock().messages.iter().cloned().collect()
    }

    pub(crate) fn cursor(&self) -> MessageCursor {
        let inner = self.inner.lock();
        MessageCursor(inner.first_seq + inner.messages.len() as u64)
    }

    pub(crate) fn closed(&self) -> Option<CloseInfo> {
        self.inner.lock().closed
    }

    /// The first message after `from` that matches. Fails with `Closed` once the connection
    /// is closed and no message that arrived before the close matches.
    pub(crate) async fn wait_for(
        &self,
        from: MessageCursor,
        pred: impl Fn(&ServerMessage) -> bool,
        timeout: Duration,
        what: &'static str,
    ) -> Result<ServerMessage, BotError> {
        let deadline = Instant::now() + timeout;
        let mut next = from.0;
        let mut changes = self.changed.subscribe();
        loop {
            changes.borrow_and_update();
            {
                let inner = self.inner.lock();
                // Messages that fell out of the log are gone; resume at the oldest kept.
                let start = next.max(inner.first_seq);
                let skip = usize::try_from(start - inner.first_seq).unwrap_or(usize::MAX);
                if let Some(found) = inner.messages.iter().skip(skip).find(|m| pred(m)) {
                    return Ok(found.clone());
                }
                next = inner.first_seq + inner.messages.len() as u64;
                if inner.closed.is_some() {
                    return Err(BotError::Closed);
                }
            }
            match timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(BotError::Closed),
                Err(_) => return Err(BotError::Timeout(what)),
            }
        }
    }

    /// The next message after `cursor`, moving it past that message: a reader that takes
    /// every message in order. Messages that fell out of the log before it was read are
    /// skipped (logged). Fails with `Closed` once the connection is closed and read to its end.
    pub(crate) async fn next(&self, cursor: &mut MessageCursor) -> Result<ServerMessage, BotError> {
        let mut changes = self.changed.subscribe();
        loop {
            changes.borrow_and_update();
            {
                let inner = self.inner.lock();
                if cursor.0 < inner.first_seq {
                    tracing::warn!(
                        lost = inner.first_seq - cursor.0,
                        "server messages fell out of the log unread"
                    );
                    cursor.0 = inner.first_seq;
                }
                let at = usize::try_from(cursor.0 - inner.first_seq).unwrap_or(usize::MAX);
                if let Some(found) = inner.messages.get(at) {
                    cursor.0 += 1;
                    return Ok(found.clone());
                }
                if inner.closed.is_some() {
                    return Err(BotError::Closed);
                }
            }
            if changes.changed().await.is_err() {
                return Err(BotError::Closed);
            }
        }
    }

    pub(crate) async fn wait_for_close(&self, timeout: Duration) -> Result<CloseInfo, BotError> {
        let deadline = Instant::now() + timeout;
        let mut changes = self.changed.subscribe();
        loop {
            changes.borrow_and_update();
            if let Some(closed) = self.closed() {
                return Ok(closed);
            }
            match timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(BotError::Closed),
                Err(_) => return Err(BotError::Timeout("the server to close the connection")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn chat(text: &str) -> ServerMessage {
        ServerMessage::Chat {
            participant_id: "p".into(),
            name: "n".into(),
            text: text.into(),
            ts: 0,
        }
    }

    fn is_chat(text: &'static str) -> impl Fn(&ServerMessage) -> bool {
        move |m| matches!(m, ServerMessage::Chat { text: t, .. } if t == text)
    }

    #[tokio::test]
    async fn finds_messages_after_the_cursor_only() {
        let log = MessageLog::new(10);
        log.push(chat("old"));
        let cursor = log.cursor();
        log.push(chat("new"));
        let short = Duration::from_millis(20);
        assert!(matches!(
            log.wait_for(cursor, is_chat("old"), short, "old").await,
            Err(BotError::Timeout("old"))
        ));
        assert_eq!(
            log.wait_for(cursor, is_chat("new"), short, "new")
                .await
                .unwrap(),
            chat("new")
        );
    }

    #[tokio::test]
    async fn wakes_up_on_a_later_message() {
        let log = Arc::new(MessageLog::new(10));
        let cursor = log.cursor();
        let writer = Arc::clone(&log);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            writer.push(chat("a"));
            writer.push(chat("b"));
        });
        let found = log
            .wait_for(cursor, is_chat("b"), Duration::from_secs(5), "b")
            .await
            .unwrap();
        assert_eq!(found, chat("b"));
    }

    #[tokio::test]
    async fn keeps_only_the_newest_messages() {
        let log = MessageLog::new(2);
        for text in ["1", "2", "3"] {
            log.push(chat(text));
        }
        assert_eq!(log.snapshot(), vec![chat("2"), chat("3")]);
        let found = log
            .wait_for(MessageCursor(0), |_| true, Duration::from_millis(10), "any")
            .await
            .unwrap();
        assert_eq!(found, chat("2"));
    }

    #[tokio::test]
    async fn close_ends_waits() {
        let log = MessageLog::new(10);
        let cursor = log.cursor();
        log.push(chat("last words"));
        log.mark_closed(Some(1000));
        log.mark_closed(None);
        let long = Duration::from_secs(5);
        assert!(log
            .wait_for(cursor, is_chat("last words"), long, "m")
            .await
            .is_ok());
        assert!(matches!(
            log.wait_for(cursor, is_chat("never"), long, "m").await,
            Err(BotError::Closed)
        ));
        assert_eq!(
            log.wait_for_close(long).await.unwrap(),
            CloseInfo { code: Some(1000) }
        );
    }
}
