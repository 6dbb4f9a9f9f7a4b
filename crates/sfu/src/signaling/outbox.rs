//! The queue of messages to one client, bounded by bytes.
//!
//! Every message is serialized once when it is queued (a [`Frame`]); a frame made once and
//! queued for many clients shares its bytes. What a client has not read yet counts against
//! [`MAX_QUEUED_BYTES`], whatever the messages are: a client that reads slower than its room
//! talks is cut off rather than allowed to grow the server's memory, and its queue is freed
//! at once. All queues together are held to [`MAX_TOTAL_QUEUED_BYTES`] as well: past it, a
//! client with more than [`FAIR_SHARE_BYTES`] waiting is cut off, so many slow readers at
//! once cannot add up (clients that keep up have next to nothing queued). Falling behind is
//! not abuse (a slow link, a busy phone): the connection closes with [`LAGGING_CLOSE_CODE`]
//! and the session parks, so the client resumes on a new WebSocket and catches up with
//! `resumed`.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use roomcast_protocol::{ErrorCode, ServerMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most bytes queued for one client; a message that would go beyond it cuts the client off.
/// A single message larger than this still goes through an empty queue, so a big `offer`
/// or `joined` (hundreds of participants or m-lines) always fits.
pub const MAX_QUEUED_BYTES: usize = 1024 * 1024;

/// Most bytes queued for all clients together (one server per process).
pub const MAX_TOTAL_QUEUED_BYTES: usize = 64 * 1024 * 1024;

/// Past [`MAX_TOTAL_QUEUED_BYTES`], a client with more than this waiting is cut off.
pub const FAIR_SHARE_BYTES: usize = 128 * 1024;

/// Bytes queued for every client of the process.
#[derive(Debug)]
pub struct Budget {
    queued: AtomicUsize,
    max: usize,
}

impl Budget {
    pub const fn new(max: usize) -> Budget {
        Budget {
            queued: AtomicUsize::new(0),
            max,
        }
    }

    /// Bytes queued now, for all clients.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// The budget every [`Outbox::new`] shares.
pub static TOTAL: Budget = Budget::new(MAX_TOTAL_QUEUED_BYTES);

/// What one queued frame costs beyond its text (the queue's slot and bookkeeping), so a
/// flood of tiny messages is bounded too.
const FRAME_OVERHEAD: usize = 64;

/// The WebSocket close code for a client that fell [`MAX_QUEUED_BYTES`] behind: it lost
/// messages, and should `resume` at once (its session waits for it, as after a drop).
pub const LAGGING_CLOSE_CODE: u16 = 4000;

/// One server message as the text frame that carries it.
#[derive(Debug, Clone)]
pub struct Frame {
    text: Bytes,
    kind: FrameKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    /// `joined` or `resumed`: the connection now carries a session.
    Welcome,
    Error(ErrorCode),
    Other,
}

impl Frame {
    /// The JSON text (valid UTF-8).
    pub fn text(&self) -> &Bytes {
        &self.text
    }

    /// The code, if this is an `error`.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self.kind {
            FrameKind::Error(code) => Some(code),
            _ => None,
        }
    }

    fn cost(&self) -> usize {
        self.text.len() + FRAME_OVERHEAD
    }

    /// The message back, for tests that look at what was queued.
    pub fn decode(&self) -> Option<ServerMessage> {
        serde_json::from_slice(&self.text).ok()
    }
}

impl From<&ServerMessage> for Frame {
    fn from(msg: &ServerMessage) -> Frame {
        let kind = match msg {
            ServerMessage::Joined { .. } | ServerMessage::Resumed { .. } => FrameKind::Welcome,
            ServerMessage::Error { code, .. } => FrameKind::Error(*code),
            _ => FrameKind::Other,
        };
        Frame {
            text: Bytes::from(msg.to_json()),
            kind,
        }
    }
}

impl From<ServerMessage> for Frame {
    fn from(msg: ServerMessage) -> Frame {
        Frame::from(&msg)
    }
}

/// What the sending and receiving ends share.
#[derive(Debug, Default)]
struct Shared {
    /// Cost of the frames queued and not yet taken by the receiver.
    queued: AtomicUsize,
    /// Set when the disconnect is the client's fault (it was told `rate_limited` or
    /// `frame_too_large`): its session then ends instead of waiting for a `resume`.
    abusive: AtomicBool,
    /// Set when the client fell behind and was cut off: no more frames are queued.
    lagging: AtomicBool,
    /// Set when the client left the server's offer unanswered and was cut off, to resume.
    offer_unanswered: AtomicBool,
    /// Set once `joined` or `resumed` was queued.
    welcomed: AtomicBool,
}

#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Frame>,
    shared: Arc<Shared>,
    budget: &'static Budget,
    /// Cancelled when this client must be disconnected.
    pub kick: CancellationToken,
}

/// The receiving end, read by the connection's writer.
pub struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Frame>,
    shared: Arc<Shared>,
    budget: &'static Budget,
}

impl Outbox {
    /// An outbox counted in the process's [`TOTAL`].
    pub fn new() -> (Outbox, OutboxReceiver) {
        Outbox::in_budget(&TOTAL)
    }

    pub fn in_budget(budget: &'static Budget) -> (Outbox, OutboxReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let outbox = Outbox {
            tx,
            shared: Arc::clone(&shared),
            budget,
            kick: CancellationToken::new(),
        };
        (outbox, OutboxReceiver { rx, shared, budget })
    }

    /// Queues a message (or a frame made once for many clients). A client whose queue
    /// would go beyond [`MAX_QUEUED_BYTES`] is cut off instead (see [`Outbox::is_lagging`]).
    pub fn send(&self, msg: impl Into<Frame>) {
        let frame = msg.into();
        let shared = &self.shared;
        match frame.kind {
            FrameKind::Error(ErrorCode::RateLimited | ErrorCode::FrameTooLarge) => {
                shared.abusive.store(true, Ordering::Relaxed);
            }
            FrameKind::Welcome => shared.welcomed.store(true, Ordering::Relaxed),
            _ => {}
        }
        if shared.lagging.load(Ordering::Relaxed) {
            return;
        }
        let cost = frame.cost();
        let before = shared.queued.fetch_add(cost, Ordering::AcqRel);
        let total = self.budget.queued.fetch_add(cost, Ordering::AcqRel) + cost;
        let over_own = before > 0 && before + cost > MAX_QUEUED_BYTES;
        let over_total = total > self.budget.max && before + cost > FAIR_SHARE_BYTES;
        if over_own || over_total {
            self.uncount(cost);
            if !shared.lagging.swap(true, Ordering::AcqRel) {
                tracing::info!(
                    queued_bytes = before,
                    all_clients_bytes = total - cost,
                    "client fell behind reading its messages; disconnecting it so it resumes"
                );
            }
            self.kick.cancel();
            return;
        }
        if let Err(mpsc::error::SendError(frame)) = self.tx.send(frame) {
            // Nobody reads any more: the connection is gone.
            self.uncount(frame.cost());
        }
    }

    fn uncount(&self, cost: usize) {
        self.shared.queued.fetch_sub(cost, Ordering::AcqRel);
        self.budget.queued.fetch_sub(cost, Ordering::AcqRel);
    }

    /// Marks the disconnect as the client's fault (e.g. a WebSocket protocol violation), so
    /// its session ends at once instead of waiting for a `resume`.
    pub fn mark_abusive(&self) {
        self.shared.abusive.store(true, Ordering::Relaxed);
    }

    /// Whether this client is being cut off for its own behaviour, not because its
    /// connection broke or it fell behind.
    pub fn is_abusive(&self) -> bool {
        self.shared.abusive.load(Ordering::Relaxed)
    }

    /// Cuts the client off as if it had fallen behind (closed [`LAGGING_CLOSE_CODE`], the
    /// session parks), because it did not answer the server's offer in time: its resume
    /// gets the offer again.
    pub fn cut_off_for_unanswered_offer(&self) {
        self.shared.offer_unanswered.store(true, Ordering::Relaxed);
        self.shared.lagging.store(true, Ordering::Release);
        self.kick.cancel();
    }

    /// Whether [`Outbox::cut_off_for_unanswered_offer`] cut this client off.
    pub fn is_offer_unanswered(&self) -> bool {
        self.shared.offer_unanswered.load(Ordering::Relaxed)
    }

    /// Whether this client was cut off for falling [`MAX_QUEUED_BYTES`] behind, or to resume
    /// for an unanswered offer.
    pub fn is_lagging(&self) -> bool {
        self.shared.lagging.load(Ordering::Relaxed)
    }

    /// Whether a session was joined or resumed on this connection.
    pub fn is_welcomed(&self) -> bool {
        self.shared.welcomed.load(Ordering::Relaxed)
    }

    /// Bytes queued and not yet taken by the receiver (with a small cost per frame).
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }
}

impl OutboxReceiver {
    /// The next frame; `None` once every [`Outbox`] is gone.
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = self.rx.recv().await?;
        self.taken(&frame);
        Some(frame)
    }

    /// The next frame if one is queued now.
    pub fn try_recv(&mut self) -> Option<Frame> {
        let frame = self.rx.try_recv().ok()?;
        self.taken(&frame);
        Some(frame)
    }

    /// Drops everything queued, returning its memory (the client will not read it).
    pub fn discard(&mut self) {
        while self.try_recv().is_some() {}
    }

    fn taken(&self, frame: &Frame) {
        self.shared.queued.fetch_sub(frame.cost(), Ordering::AcqRel);
        self.budget.queued.fetch_sub(frame.cost(), Ordering::AcqRel);
    }
}

impl Drop for OutboxReceiver {
    /// Frames nobody will read are no longer queued.
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(text: &str) -> ServerMessage {
        ServerMessage::Chat {
            participant_id: "PA_1".into(),
            name: "Ann".into(),
            text: text.into(),
            ts: 0,
        }
    }

    #[test]
    fn frames_carry_the_json_and_the_error_code() {
        let frame = Frame::from(ServerMessage::error(ErrorCode::RoomFull, "full"));
        assert_eq!(
            std::str::from_utf8(frame.text()).unwrap(),
            r#"{"type":"error","code":"room_full","message":"full"}"#
        );
        assert_eq!(frame.error_code(), Some(ErrorCode::RoomFull));
        assert_eq!(Frame::from(chat("hi")).error_code(), None);
        assert_eq!(Frame::from(chat("hi")).decode(), Some(chat("hi")));
    }

    #[test]
    fn the_queue_is_bounded_by_bytes_and_a_laggard_is_cut_off_not_blamed() {
        let (outbox, mut rx) = Outbox::new();
        let text = "x".repeat(4000);
        let one = Frame::from(chat(&text));
        let fits = MAX_QUEUED_BYTES / one.cost();
        for _ in 0..fits {
            outbox.send(one.clone());
        }
        assert!(!outbox.is_lagging() && !outbox.kick.is_cancelled());
        assert!(outbox.queued_bytes() <= MAX_QUEUED_BYTES);
        outbox.send(one.clone());
        assert!(outbox.is_lagging());
        assert!(outbox.kick.is_cancelled());
        assert!(!outbox.is_abusive(), "falling behind is not abuse");
        // Nothing more is queued; what was queued is freed on discard.
        outbox.send(chat("late"));
        assert_eq!(outbox.queued_bytes(), fits * one.cost());
        rx.discard();
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn a_client_that_keeps_up_is_never_cut_off() {
        let (outbox, mut rx) = Outbox::new();
        let text = "y".repeat(4000);
        for _ in 0..10_000 {
            outbox.send(chat(&text));
            assert!(rx.try_recv().is_some());
        }
        assert!(!outbox.is_lagging());
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[test]
    fn one_message_larger_than_the_bound_still_goes_through_an_empty_queue() {
        let (outbox, mut rx) = Outbox::new();
        let offer = ServerMessage::Offer {
            sdp: "v=0\r\n".repeat(MAX_QUEUED_BYTES / 4),
        };
        outbox.send(offer.clone());
        assert!(!outbox.is_lagging());
        assert_eq!(rx.try_recv().and_then(|f| f.decode()), Some(offer));
    }

    #[test]
    fn tiny_messages_are_bounded_too() {
        let (outbox, _rx) = Outbox::new();
        let mut sent = 0;
        while !outbox.is_lagging() {
            outbox.send(ServerMessage::NegotiateGrant);
            sent += 1;
        }
        assert!(sent < MAX_QUEUED_BYTES / FRAME_OVERHEAD, "{sent}");
    }

    #[test]
    fn abuse_errors_mark_the_client_and_welcomes_are_noticed() {
        let (outbox, _rx) = Outbox::new();
        assert!(!outbox.is_welcomed());
        outbox.send(ServerMessage::Resumed {
            participant_id: "PA_1".into(),
            room: "r".into(),
            participants: vec![],
            role: roomcast_protocol::Role::Presenter,
            session_token: "t".into(),
            ice_servers: vec![],
        });
        assert!(outbox.is_welcomed());
        assert!(!outbox.is_abusive());
        outbox.send(ServerMessage::error(ErrorCode::FrameTooLarge, "big"));
        assert!(outbox.is_abusive());
    }

    #[test]
    fn all_queues_together_are_bounded_and_only_laggards_pay() {
        let budget: &'static Budget = Box::leak(Box::new(Budget::new(4 * FAIR_SHARE_BYTES)));
        let one = Frame::from(chat(&"z".repeat(4000)));
        // A client that keeps up is never cut off, even with the budget spent.
        let (keeps_up, mut keeps_up_rx) = Outbox::in_budget(budget);
        let mut laggards = Vec::new();
        for _ in 0..8 {
            let (outbox, rx) = Outbox::in_budget(budget);
            for _ in 0..(FAIR_SHARE_BYTES / one.cost()) {
                outbox.send(one.clone());
            }
            laggards.push((outbox, rx));
        }
        assert!(budget.queued() > 4 * FAIR_SHARE_BYTES / 2);
        for _ in 0..100 {
            for (outbox, _) in &laggards {
                outbox.send(one.clone());
            }
            keeps_up.send(one.clone());
            assert!(keeps_up_rx.try_recv().is_some());
        }
        assert!(!keeps_up.is_lagging());
        // Past the budget nobody holds more than its fair share: the laggards were cut off
        // as soon as they went over it.
        assert!(laggards.iter().all(|(o, _)| o.is_lagging()));
        for (outbox, _) in &laggards {
            assert!(
                outbox.queued_bytes() <= FAIR_SHARE_BYTES,
                "{}",
                outbox.queued_bytes()
            );
        }
        // Dropping the receivers gives everything back.
        drop(laggards);
        assert_eq!(budget.queued(), 0);
    }

    #[test]
    fn frames_for_a_gone_connection_are_not_counted() {
        let (outbox, rx) = Outbox::new();
        drop(rx);
        outbox.send(chat("nobody hears this"));
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(!outbox.is_lagging());
    }
}
