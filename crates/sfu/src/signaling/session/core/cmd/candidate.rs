//! `candidate`: one of the client's ICE candidates. Kept until a remote description is
//! applied (up to a bound), dropped while the client's colliding offer is being ignored. The
//! server is ICE-lite and needs none of them, so they are capped per session and mDNS
//! (`.local`) ones are never resolved.
use roomcast_protocol::{ErrorCode, IceCandidate};

use super::super::limits::is_mdns;
use super::super::{Command, SessionCore, MAX_PENDING_CANDIDATES};

impl SessionCore {
    pub(in super::super) fn on_candidate(&mut self, candidate: Option<IceCandidate>) {
        let Some(c) = candidate.filter(|c| !c.is_end_of_candidates()) else {
            return;
        };
        if self.ignoring_candidates {
            return;
        }
        if is_mdns(&c.candidate) {
            tracing::debug!(participant = %self.id, "an mDNS candidate; not resolved");
            return;
        }
        if self.candidates >= self.limits.max_candidates {
            // Told once: a client that keeps sending gets no answer per candidate.
            if self.candidates == self.limits.max_candidates {
                self.error(
                    ErrorCode::LimitExceeded,
                    format!(
                        "at most {} ICE candidates per session; later ones are ignored",
                        self.limits.max_candidates
                    ),
                );
                self.candidates += 1;
            }
            return;
        }
        self.candidates += 1;
        if !self.peer.has_remote {
            if self.pending_candidates.len() < MAX_PENDING_CANDIDATES {
                self.pending_candidates.push(c);
            }
            return;
        }
        self.order(Command::AddCandidates(vec![c]));
    }

    /// Applies the candidates kept for the remote description that is now there.
    pub(in super::super) fn flush_candidates(&mut self) {
        if !self.pending_candidates.is_empty() {
            let pending = std::mem::take(&mut self.pending_candidates);
            self.order(Command::AddCandidates(pending));
        }
    }
}
