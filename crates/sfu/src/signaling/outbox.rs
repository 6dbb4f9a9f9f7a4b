//! The queue of messages to one client. Bounded: a client that stops reading is cut off
//! rather than allowed to grow the server's memory.
use roomcast_protocol::ServerMessage;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const OUTBOX_CAPACITY: usize = 1024;

#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<ServerMessage>,
    /// Cancelled when this client must be disconnected.
    pub kick: CancellationToken,
}

impl Outbox {
    pub fn new() -> (Outbox, mpsc::Receiver<ServerMessage>) {
        let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
        (
            Outbox {
                tx,
                kick: CancellationToken::new(),
            },
            rx,
        )
    }

    pub fn send(&self, msg: ServerMessage) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(msg) {
            tracing::warn!("client is not reading its messages; disconnecting it");
            self.kick.cancel();
        }
    }
}
