//! What a participant receives: reconciling its subscriptions with the room's tracks,
//! reusing inactive transceivers, and offering the change when the negotiation rules let
//! the server offer.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use roomcast_protocol::ServerMessage;

use super::{Command, SessionCore, TransceiverId};
use crate::media::layer_control::quality_layer;
use crate::media::published_track::PublishedTrack;

/// One track to start sending to this subscriber.
#[derive(Debug, Clone)]
pub struct Subscribe {
    pub track: Arc<PublishedTrack>,
    /// An inactive transceiver to put it on; `None`: a new one.
    pub reuse: Option<TransceiverId>,
    /// The most the subscriber asked for with `set_quality` before it was subscribed, if it
    /// asked (`Some(None)`: nothing).
    pub requested: Option<Option<u8>>,
}

impl SessionCore {
    /// Brings the subscriptions in line with the room and offers the change, when the
    /// negotiation rules allow an offer now; otherwise this runs again once they do. A
    /// parked session has nobody to offer to: it renegotiates when resumed. A publish-only
    /// client (WHIP) receives nothing and is never offered to; a viewer (WHEP) is never
    /// offered to either, its sources are switched in place.
    pub(super) fn renegotiate(&mut self, now: Instant) {
        if self.view.is_some() {
            return self.reconcile_view(now);
        }
        if self.is_parked() || self.publish_only || !self.negotiator.may_offer(now) {
            return;
        }
        let wanted = self.room.tracks_for(&self.id);
        let wanted_ids: HashSet<&str> = wanted.iter().map(|t| t.info.id.as_str()).collect();
        let remove: Vec<String> = self
            .subscriptions
            .keys()
            .filter(|id| !wanted_ids.contains(id.as_str()))
            .cloned()
            .collect();
        for id in &remove {
            if let Some(transceiver) = self.subscriptions.remove(id) {
                self.peer.stopped_sending(transceiver);
            }
        }
        let mut in_use: HashSet<TransceiverId> = self.subscriptions.values().copied().collect();
        let mut add = Vec::new();
        for track in wanted {
            if self.subscriptions.contains_key(&track.info.id) {
                continue;
            }
            let reuse = self.peer.reusable(track.rtp_kind(), &in_use);
            in_use.extend(reuse);
            add.push(Subscribe {
                requested: self.quality.get(&track.info.id).map(|&q| quality_layer(q)),
                track,
                reuse,
            });
        }
        if remove.is_empty() && add.is_empty() {
            self.offer_if_owed(false);
        } else {
            self.removed_subscriptions = !remove.is_empty();
            self.order(Command::Subscribe { remove, add });
        }
    }

    pub(super) fn on_subscribed(&mut self, added: Vec<(String, TransceiverId)>) {
        let changed = std::mem::take(&mut self.removed_subscriptions) || !added.is_empty();
        self.subscriptions.extend(added);
        self.offer_if_owed(changed);
    }

    fn offer_if_owed(&mut self, changed: bool) {
        if changed || std::mem::take(&mut self.offer_owed) {
            self.order(Command::CreateOffer);
        }
    }

    pub(super) fn on_offer_created(&mut self, result: Result<String, String>, now: Instant) {
        match result {
            Ok(sdp) => {
                let subscribed: HashSet<TransceiverId> =
                    self.subscriptions.values().copied().collect();
                self.peer.claim_sending(&subscribed);
                self.negotiator.offer_sent(now);
                self.outstanding_offer = Some(sdp.clone());
                self.send(ServerMessage::Offer { sdp });
            }
            Err(e) => {
                tracing::error!(participant = %self.id, error = %e, "cannot create an offer");
                if self.negotiator.offer_failed(now) {
                    self.send(ServerMessage::NegotiateGrant);
                }
            }
        }
    }
}
