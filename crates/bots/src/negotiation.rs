//! The bot's side of offer/answer on its one PeerConnection, as the contract's negotiation
//! lock has it: webrtc-rs cannot roll back a local offer, so the bot offers only while it
//! holds the lock (`negotiate_request` → `negotiate_grant` → `offer` → `answer`), and
//! answers server offers at any other time. Decisions only; the session does the I/O.

/// Where the bot's own offer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No own offer: server offers are answered.
    Stable,
    /// `negotiate_request` sent; server offers that were already on their way are answered.
    AwaitingGrant,
    /// Own offer sent under the lock; the server owes an answer and sends no offer.
    AwaitingAnswer,
    /// The server refused the bot's offer. Without rollback the PeerConnection stays in
    /// have-local-offer, so nothing more can be negotiated on it.
    Wedged,
}

/// What the session should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Add the publish's transceivers, create and send the offer.
    SendOffer,
    /// Apply the server's answer, which completes the publish.
    ApplyAnswer,
    /// Set the server's offer, answer it.
    AnswerRemoteOffer,
    /// The server refused what is in flight: fail the publish.
    FailPublish,
    /// Not about this negotiation (e.g. an `error` for some other message).
    Nothing,
    /// The server broke the contract; say so and carry on.
    Ignore(&'static str),
}

#[derive(Debug)]
pub(crate) struct Negotiation {
    phase: Phase,
}

impl Negotiation {
    pub(crate) fn new() -> Self {
        Negotiation {
            phase: Phase::Stable,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// A publish is waiting. `true`: send `negotiate_request` now. `false`: it waits for the
    /// exchange in flight (or can never happen, if `Wedged`).
    pub(crate) fn request_lock(&mut self) -> bool {
        if self.phase == Phase::Stable {
            self.phase = Phase::AwaitingGrant;
            true
        } else {
            false
        }
    }

    pub(crate) fn grant(&mut self) -> Step {
        if self.phase == Phase::AwaitingGrant {
            self.phase = Phase::AwaitingAnswer;
            Step::SendOffer
        } else {
            Step::Ignore("negotiate_grant that was not requested")
        }
    }

    /// Sending the offer failed; `local_offer_set` says whether the PeerConnection already
    /// holds it (and so cannot take a server offer any more).
    pub(crate) fn offer_abandoned(&mut self, local_offer_set: bool) {
        self.phase = if local_offer_set {
            Phase::Wedged
        } else {
            Phase::Stable
        };
    }

    pub(crate) fn remote_offer(&self) -> Step {
        match self.phase {
            Phase::Stable | Phase::AwaitingGrant => Step::AnswerRemoteOffer,
            Phase::AwaitingAnswer => {
                Step::Ignore("server offer while the bot holds the negotiation lock")
            }
            Phase::Wedged => Step::Ignore("server offer after the bot's offer was refused"),
        }
    }

    pub(crate) fn remote_answer(&mut self) -> Step {
        if self.phase == Phase::AwaitingAnswer {
            self.phase = Phase::Stable;
            Step::ApplyAnswer
        } else {
            Step::Ignore("answer without an offer from the bot")
        }
    }

    /// An `error` arrived. While a request or offer is in flight it is the refusal of it.
    pub(crate) fn error(&mut self) -> Step {
        match self.phase {
            Phase::AwaitingGrant => {
                self.phase = Phase::Stable;
                Step::FailPublish
            }
            Phase::AwaitingAnswer => {
                self.phase = Phase::Wedged;
                Step::FailPublish
            }
            Phase::Stable | Phase::Wedged => Step::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_under_the_lock() {
        let mut n = Negotiation::new();
        assert!(n.request_lock());
        assert!(!n.request_lock(), "one exchange at a time");
        assert_eq!(
            n.remote_offer(),
            Step::AnswerRemoteOffer,
            "offers already sent"
        );
        assert_eq!(n.grant(), Step::SendOffer);
        assert_eq!(n.phase(), Phase::AwaitingAnswer);
        assert_eq!(n.remote_answer(), Step::ApplyAnswer);
        assert_eq!(n.phase(), Phase::Stable);
        assert!(n.request_lock());
    }

    #[test]
    fn server_offers_are_answered_unless_the_bot_has_offered() {
        let mut n = Negotiation::new();
        assert_eq!(n.remote_offer(), Step::AnswerRemoteOffer);
        n.request_lock();
        n.grant();
        assert!(matches!(n.remote_offer(), Step::Ignore(_)));
    }

    #[test]
    fn stray_grants_and_answers_are_ignored() {
        let mut n = Negotiation::new();
        assert!(matches!(n.grant(), Step::Ignore(_)));
        assert!(matches!(n.remote_answer(), Step::Ignore(_)));
        assert_eq!(n.phase(), Phase::Stable);
    }

    #[test]
    fn refused_request_allows_retrying() {
        let mut n = Negotiation::new();
        assert_eq!(n.error(), Step::Nothing);
        n.request_lock();
        assert_eq!(n.error(), Step::FailPublish);
        assert_eq!(n.phase(), Phase::Stable);
        assert!(n.request_lock());
    }

    #[test]
    fn refused_offer_wedges() {
        let mut n = Negotiation::new();
        n.request_lock();
        n.grant();
        assert_eq!(n.error(), Step::FailPublish);
        assert_eq!(n.phase(), Phase::Wedged);
        assert!(!n.request_lock());
        assert!(matches!(n.remote_offer(), Step::Ignore(_)));
        assert_eq!(n.error(), Step::Nothing);
    }

    #[test]
    fn abandoned_offers() {
        let mut n = Negotiation::new();
        n.request_lock();
        n.grant();
        n.offer_abandoned(false);
        assert_eq!(n.phase(), Phase::Stable);
        n.request_lock();
        n.grant();
        n.offer_abandoned(true);
        assert_eq!(n.phase(), Phase::Wedged);
    }
}
