//! Who may offer on a participant's one PeerConnection, and when.
//!
//! The server is the impolite peer of perfect negotiation: a client offer that collides with
//! the server's own pending offer is ignored. Clients that cannot roll back take the
//! negotiation lock (`negotiate_request` → `negotiate_grant`) instead; while a grant is out the
//! server holds its own offers back. At most one server offer is outstanding at a time, so
//! an offer the client never answers would hold back every later one for good: after
//! [`ANSWER_TIMEOUT`] the session asks the client to resume on a new connection, which sends
//! the offer again.
//!
//! Once a remote description is applied, the server also holds its offers until the
//! connection first comes up. Applying a description makes a peer *queue* the start of its
//! transports; a webrtc-rs peer (pion before pion/webrtc#1303 too) that applies another offer
//! before that start has run compares the offer's ICE credentials with none, takes it for an
//! ICE restart, fails it ("ICE Agent can not be restarted when gathering") and never answers.
//! A connection that is up has started its transports at both ends. The hold lasts at most
//! [`CONNECT_HOLD`]: a client whose description carries no transport (an offer without
//! m-lines) never connects, and no client's start stays queued that long.
use std::time::{Duration, Instant};

/// A granted client that sends no offer within this time loses the grant.
pub const GRANT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest the server holds an offer for the connection to come up.
pub const CONNECT_HOLD: Duration = Duration::from_secs(3);

/// How long a server offer may wait for its answer. A browser answers in milliseconds and a
/// busy headless client in well under a second.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientOffer {
    /// Apply it and answer.
    Apply,
    /// It collided with the server's pending offer: drop it silently.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockRequest {
    /// Send `negotiate_grant` now.
    GrantNow,
    /// A server offer is outstanding: grant once its answer arrives.
    GrantAfterAnswer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoOfferPending;

/// How far the connection's transports are, as far as offering goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Transports {
    /// No remote description yet: nothing has been started, the first offer may go.
    #[default]
    NotStarted,
    /// A remote description is applied at both ends (at this instant) and the connection
    /// has not come up yet: the client's start of its transports may still be queued.
    Starting(Instant),
    /// The connection came up (at least once).
    Up,
}

#[derive(Debug, Default)]
pub struct Negotiator {
    /// Set while a server offer waits for its answer: when it is overdue.
    answer_due: Option<Instant>,
    grant_expires: Option<Instant>,
    grant_waiting: bool,
    transports: Transports,
}

impl Negotiator {
    pub fn on_client_offer(&self) -> ClientOffer {
        if self.server_offer_pending() {
            ClientOffer::Ignore
        } else {
            ClientOffer::Apply
        }
    }

    /// The client's offer was answered: a grant it held is used up.
    pub fn client_offer_answered(&mut self) {
        self.grant_expires = None;
    }

    /// The client answered the server's offer. Returns whether a waiting lock request should
    /// now be granted.
    pub fn on_client_answer(&mut self, now: Instant) -> Result<bool, NoOfferPending> {
        if self.answer_due.take().is_none() {
            return Err(NoOfferPending);
        }
        Ok(self.grant_if_waiting(now))
    }

    pub fn on_lock_request(&mut self, now: Instant) -> LockRequest {
        if self.server_offer_pending() {
            self.grant_waiting = true;
            LockRequest::GrantAfterAnswer
        } else {
            self.grant_expires = Some(now + GRANT_TIMEOUT);
            LockRequest::GrantNow
        }
    }

    fn grant_if_waiting(&mut self, now: Instant) -> bool {
        if std::mem::take(&mut self.grant_waiting) {
            self.grant_expires = Some(now + GRANT_TIMEOUT);
            true
        } else {
            false
        }
    }

    /// Whether the server may send an offer now (a grant past its time is dropped).
    pub fn may_offer(&mut self, now: Instant) -> bool {
        if self.grant_expires.is_some_and(|t| now >= t) {
            self.grant_expires = None;
        }
        !self.server_offer_pending()
            && self.grant_expires.is_none()
            && !self.holding_for_connection(now)
    }

    fn holding_for_connection(&self, now: Instant) -> bool {
        matches!(self.transports, Transports::Starting(at) if now < at + CONNECT_HOLD)
    }

    /// While offers are held for the connection: when the hold ends anyway.
    pub fn connect_hold_deadline(&self) -> Option<Instant> {
        match self.transports {
            Transports::Starting(at) => Some(at + CONNECT_HOLD),
            _ => None,
        }
    }

    /// A remote description (the client's offer or answer) was applied: until the connection
    /// comes up, the client may not have started its transports.
    pub fn remote_description_applied(&mut self, now: Instant) {
        if self.transports == Transports::NotStarted {
            self.transports = Transports::Starting(now);
        }
    }

    /// The connection came up: both ends started their transports. Returns whether offers
    /// were held for it, so the caller offers what waited.
    pub fn connected(&mut self) -> bool {
        matches!(
            std::mem::replace(&mut self.transports, Transports::Up),
            Transports::Starting(_)
        )
    }

    /// An offer went to the client (or went again, on a resumed connection): its answer is
    /// due within [`ANSWER_TIMEOUT`].
    pub fn offer_sent(&mut self, now: Instant) {
        self.answer_due = Some(now + ANSWER_TIMEOUT);
    }

    /// Creating or sending the offer failed: nothing is outstanding after all.
    pub fn offer_failed(&mut self, now: Instant) -> bool {
        self.answer_due = None;
        self.grant_if_waiting(now)
    }

    pub fn server_offer_pending(&self) -> bool {
        self.answer_due.is_some()
    }

    /// When the outstanding offer's answer is overdue, so the caller can wake up then.
    pub fn answer_deadline(&self) -> Option<Instant> {
        self.answer_due
    }

    /// Whether the outstanding offer has waited past [`ANSWER_TIMEOUT`]. It stays
    /// outstanding: only its answer (or a resume that sends it again) moves on.
    pub fn answer_overdue(&self, now: Instant) -> bool {
        self.answer_due.is_some_and(|due| now >= due)
    }

    /// When an outstanding grant runs out, so the caller can wake up and offer.
    pub fn grant_deadline(&self) -> Option<Instant> {
        self.grant_expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_offer_colliding_with_server_offer_is_ignored() {
        let now = Instant::now();
        let mut n = Negotiator::default();
        assert_eq!(n.on_client_offer(), ClientOffer::Apply);
        assert!(n.may_offer(now));
        n.offer_sent(now);
        assert_eq!(n.on_client_offer(), ClientOffer::Ignore);
        assert!(!n.may_offer(now), "one offer outstanding at a time");
        assert_eq!(n.on_client_answer(now), Ok(false));
        assert_eq!(n.on_client_offer(), ClientOffer::Apply);
        assert!(n.may_offer(now));
    }

    #[test]
    fn after_the_first_remote_description_offers_wait_for_the_connection() {
        let now = Instant::now();
        let mut n = Negotiator::default();
        assert!(n.may_offer(now), "the first offer needs no connection");
        n.remote_description_applied(now);
        assert!(!n.may_offer(now), "the client may not have started ICE yet");
        assert_eq!(n.connect_hold_deadline(), Some(now + CONNECT_HOLD));
        assert!(n.connected(), "offers were held");
        assert!(n.may_offer(now));
        assert_eq!(n.connect_hold_deadline(), None);
        n.remote_description_applied(now);
        assert!(
            n.may_offer(now),
            "later descriptions find the transports up"
        );
        assert!(!n.connected(), "nothing was held the second time");
    }

    #[test]
    fn a_connection_up_before_its_description_was_seen_applied_does_not_hold_offers() {
        let now = Instant::now();
        let mut n = Negotiator::default();
        n.connected();
        n.remote_description_applied(now);
        assert!(n.may_offer(now));
    }

    #[test]
    fn a_connection_that_does_not_come_up_holds_offers_for_a_bounded_time() {
        let now = Instant::now();
        let mut n = Negotiator::default();
        n.remote_description_applied(now);
        assert!(!n.may_offer(now + CONNECT_HOLD - Duration::from_millis(1)));
        assert!(n.may_offer(now + CONNECT_HOLD));
    }

    #[test]
    fn answer_without_offer_is_invalid() {
        let mut n = Negotiator::default();
        assert_eq!(n.on_client_answer(Instant::now()), Err(NoOfferPending));
    }

    #[test]
    fn grant_holds_server_offers_until_client_offer_is_answered() {
        let now = Instant::now();
        let mut n = Negotiator::default();
        assert_eq!(n.on_lock_request(now), LockRequest::GrantNow);
        assert!(!n.may_offer(now));
        assert_eq!(n.on_client_offer(), ClientOffer::Apply);
        n.client_offer_answered();
        assert!(n.may_offer(now));
    }

    #[test]
    fn grant_waits_for_outstanding_server_offer() {
        let now = Instant::now();
        let mut n = Negotiator::default();
        n.offer_sent(now);
        assert_eq!(n.on_lock_request(now), LockRequest::GrantAfterAnswer);
        assert_eq!(
            n.on_client_answer(now),
            Ok(true),
            "grant goes out with the answer"
        );
        assert!(!n.may_offer(now));
    }

    #[test]
    fn unused_grant_expires() {
        let now = Instant::now();
        let mut n = Negotiator::default();
        n.on_lock_request(now);
        assert_eq!(n.grant_deadline(), Some(now + GRANT_TIMEOUT));
        assert!(!n.may_offer(now + GRANT_TIMEOUT - Duration::from_millis(1)));
        assert!(n.may_offer(now + GRANT_TIMEOUT));
        assert_eq!(n.grant_deadline(), None);
    }

    #[test]
    fn failed_offer_releases_and_grants_waiting_lock() {
        let now = Instant::now();
        let mut n = Negotiator::default();
        n.offer_sent(now);
        n.on_lock_request(now);
        assert!(n.offer_failed(now));
        assert!(!n.server_offer_pending());
    }

    #[test]
    fn an_unanswered_offer_is_overdue_after_the_timeout_and_sending_it_again_restarts_the_clock() {
        let now = Instant::now();
        let mut n = Negotiator::default();
        assert_eq!(n.answer_deadline(), None);
        n.offer_sent(now);
        assert_eq!(n.answer_deadline(), Some(now + ANSWER_TIMEOUT));
        assert!(!n.answer_overdue(now + ANSWER_TIMEOUT - Duration::from_millis(1)));
        let late = now + ANSWER_TIMEOUT;
        assert!(n.answer_overdue(late));
        assert!(n.server_offer_pending(), "still outstanding");
        n.offer_sent(late);
        assert!(!n.answer_overdue(late));
        assert_eq!(n.on_client_answer(late), Ok(false));
        assert_eq!(n.answer_deadline(), None);
        assert!(!n.answer_overdue(late + ANSWER_TIMEOUT));
    }
}
