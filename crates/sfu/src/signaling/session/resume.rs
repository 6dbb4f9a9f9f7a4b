//! Session tokens and the sessions they can take back.
//!
//! Every joined session has a `session_token` (given in `joined`, renewed in `resumed`) and a
//! takeover channel registered under it here. When its WebSocket drops, the session parks:
//! it stays in the room with its PeerConnection (media keeps flowing) for the grace period.
//! A new connection whose first message is `resume` with the token takes the slot and asks
//! the session, through the channel, to hand itself over; the session then runs on the new
//! connection. A session that closes (leave, kick, grace over) removes its token.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use roomcast_protocol::{ErrorCode, ServerMessage};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::mailbox::SessionMailbox;
use super::{Parked, Session, Sessions};
use crate::room::Welcome;
use crate::signaling::outbox::Outbox;

/// How long a session whose WebSocket dropped waits for `resume` before it leaves.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(20);

/// Overrides [`DEFAULT_GRACE`], in milliseconds, when the server starts.
pub const GRACE_ENV: &str = "ROOMCAST_RESUME_GRACE_MS";

/// How long a `resume` waits for the session to hand itself over.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(5);

/// A request to a session to move to a new connection: it sends itself through `reply`.
pub struct Takeover {
    pub(crate) reply: oneshot::Sender<Parked>,
}

pub struct ResumeRegistry {
    slots: Mutex<HashMap<String, mpsc::Sender<Takeover>>>,
    /// Put before every token (a cluster node's id and `~`, so any node can tell whose
    /// session a `resume` names); empty on a server alone.
    prefix: std::sync::OnceLock<String>,
    grace_ms: AtomicU64,
    /// Cancelled when the server shuts down: parked sessions leave at once and no
    /// session parks any more.
    shutdown: CancellationToken,
}

impl Default for ResumeRegistry {
    fn default() -> Self {
        let grace = std::env::var(GRACE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_GRACE, Duration::from_millis);
        ResumeRegistry {
            slots: Mutex::new(HashMap::new()),
            prefix: std::sync::OnceLock::new(),
            grace_ms: AtomicU64::new(grace.as_millis() as u64),
            shutdown: CancellationToken::new(),
        }
    }
}

impl ResumeRegistry {
    /// The grace period for sessions that park from now on.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.load(Ordering::Relaxed))
    }

    /// Sets the grace period for sessions that park from now on (0 turns resume off: a
    /// dropped session leaves at once).
    pub fn set_grace(&self, grace: Duration) {
        self.grace_ms
            .store(grace.as_millis() as u64, Ordering::Relaxed);
    }

    /// Ends every parked session now (as if its grace ran out) and parks none from now on.
    /// For a server shutting down.
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Starts every token issued from now on with `prefix` (set once, before serving).
    pub fn set_token_prefix(&self, prefix: String) {
        let _ = self.prefix.set(prefix);
    }

    /// A new random token, registered for the session listening on `takeover`.
    pub(crate) fn register(&self, takeover: mpsc::Sender<Takeover>) -> String {
        let prefix = self.prefix.get().map_or("", String::as_str);
        let token = format!("{prefix}{}", new_token());
        self.slots.lock().insert(token.clone(), takeover);
        token
    }

    /// Whether a session can be resumed with `token` here now (connected or parked).
    pub fn contains(&self, token: &str) -> bool {
        self.slots.lock().contains_key(token)
    }

    /// Takes the slot of `token` out: nobody else can resume with it.
    pub(crate) fn take(&self, token: &str) -> Option<mpsc::Sender<Takeover>> {
        self.slots.lock().remove(token)
    }

    /// Puts a taken slot back (its handover did not happen).
    pub(crate) fn restore(&self, token: &str, slot: mpsc::Sender<Takeover>) {
        self.slots.lock().insert(token.to_owned(), slot);
    }

    /// Forgets `token` (its session closed or got a new one).
    pub(crate) fn remove(&self, token: &str) {
        self.slots.lock().remove(token);
    }

    /// Sessions that can be resumed now (connected or parked).
    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `resume`: takes over the session of `token` for this connection, or answers
/// `session_expired`.
pub(super) async fn resume(
    sessions: &Sessions,
    outbox: &Outbox,
    token: &str,
) -> Option<Box<Session>> {
    let expired = || {
        outbox.send(ServerMessage::error(
            ErrorCode::SessionExpired,
            "no session to resume with this token (it ended, or its grace period ran out): join again",
        ))
    };
    let Some(slot) = sessions.resume.take(token) else {
        expired();
        return None;
    };
    let (reply, handed) = oneshot::channel();
    if slot.try_send(Takeover { reply }).is_err() {
        expired();
        return None;
    }
    let mut session = match tokio::time::timeout(HANDOFF_TIMEOUT, handed).await {
        Ok(Ok(Parked(session))) => session,
        Ok(Err(_)) => {
            expired();
            return None;
        }
        Err(_) => {
            tracing::warn!("a session did not hand itself over in time");
            sessions.resume.restore(token, slot);
            outbox.send(ServerMessage::error(
                ErrorCode::InternalError,
                "the session did not answer in time; try again",
            ));
            return None;
        }
    };
    session.token = sessions.resume.register(session.takeover_tx.clone());
    let welcome = |welcome: Welcome| ServerMessage::Resumed {
        participant_id: session.core.id().to_owned(),
        room: session.core.room().name.clone(),
        participants: welcome.participants,
        role: welcome.role,
        session_token: session.token.clone(),
        ice_servers: sessions
            .sfu
            .config
            .ice
            .for_participant(session.core.id(), crate::auth::unix_now()),
    };
    let mailbox = Arc::new(SessionMailbox {
        outbox: outbox.clone(),
        resubscribe: Arc::clone(&session.resubscribe),
        orders: session.orders_tx.clone(),
        egress: session.shell.egress(),
    });
    session
        .core
        .room()
        .rebind(session.core.id(), mailbox, welcome);
    let outputs = session.core.resume(Instant::now());
    session.carry_out(outputs, outbox).await;
    Some(session)
}

/// 128 random bits from the thread's CSPRNG, as 32 hex digits.
fn new_token() -> String {
    use rand::Rng;
    format!("{:032x}", rand::rng().random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn a_slot_is_taken_once() {
        let registry = ResumeRegistry::default();
        let (tx, _rx) = mpsc::channel(1);
        let token = registry.register(tx);
        assert!(registry.take(&token).is_some());
        assert!(registry.take(&token).is_none());
        assert!(registry.take("bogus").is_none());
    }
}
