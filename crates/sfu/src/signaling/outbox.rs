//! The queue of messages to one client. Bounded: a client that stops reading is cut off
//! rather than allowed to grow the server's memory.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use roomcast_protocol::{ErrorCode, ServerMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const OUTBOX_CAPACITY: usize = 1024;

#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<ServerMessage>,
    /// Cancelled when this client must be disconnected.
    pub kick: CancellationToken,
    /// Set when the disconnect is the client's fault (it stopped reading, or it was told
    /// `rate_limited`): its session then ends instead of waiting for a `resume`.
    abusive: Arc<AtomicBool>,
}

impl Outbox {
    pub fn new() -> (Outbox, mpsc::Receiver<ServerMessage>) {
        let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
        (
            Outbox {
                tx,
                kick: CancellationToken::new(),
                abusive: Arc::new(AtomicBool::new(false)),
            },
            rx,
        )
    }

    pub fn send(&self, msg: ServerMessage) {
        if let ServerMessage::Error {
            code: ErrorCode::RateLimited | ErrorCode::FrameTooLarge,
            ..
        } = msg
        {
            self.abusive.store(true, Ordering::Relaxed);
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(msg) {
            tracing::warn!("client is not reading its messages; disconnecting it");
            self.abusive.store(true, Ordering::Relaxed);
            self.kick.cancel();
        }
    }

    /// Marks the disconnect as the client's fault (e.g. a WebSocket protocol violation), so
    /// its session ends at once instead of waiting for a `resume`.
    pub fn mark_abusive(&self) {
        self.abusive.store(true, Ordering::Relaxed);
    }

    /// Whether this client is being cut off for its own behaviour, not because its
    /// connection broke.
    pub fn is_abusive(&self) -> bool {
        self.abusive.load(Ordering::Relaxed)
    }
}
