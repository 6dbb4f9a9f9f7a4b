//! What a participant receives: reconciling its subscriptions with the room's tracks,
//! reusing inactive transceivers, and sending the server's offers.
use super::*;

impl Joined {
    /// Brings the subscriptions in line with the room and offers the change, when the
    /// negotiation rules allow an offer now. Otherwise it runs again once they do.
    pub(super) async fn renegotiate(&mut self, outbox: &Outbox) {
        // A parked session has nobody to offer to; it renegotiates when resumed.
        if self.parked || !self.negotiator.may_offer(Instant::now()) {
            return;
        }
        let wanted = self.room.tracks_for(&self.id);
        let wanted_ids: HashSet<&str> = wanted.iter().map(|t| t.info.id.as_str()).collect();
        let mut changed = false;
        let gone: Vec<String> = self
            .subscriptions
            .keys()
            .filter(|id| !wanted_ids.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            if let Some(sub) = self.subscriptions.remove(&id) {
                sub.track.remove_down_track(&sub.down);
                sub.rtcp.abort();
                if let Err(e) = self.peer.pc.remove_track(&sub.sender).await {
                    tracing::debug!(participant = %self.id, error = %e, "remove_track failed");
                }
                changed = true;
            }
        }
        for track in wanted {
            if self.subscriptions.contains_key(&track.info.id) {
                continue;
            }
            match self.subscribe(&track).await {
                Ok(sub) => {
                    self.subscriptions.insert(track.info.id.clone(), sub);
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(participant = %self.id, track_id = %track.info.id, error = %e, "cannot subscribe")
                }
            }
        }
        if changed || std::mem::take(&mut self.offer_owed) {
            self.send_offer(outbox).await;
        }
    }

    pub(super) async fn subscribe(
        &mut self,
        track: &Arc<PublishedTrack>,
    ) -> Result<Subscription, webrtc::Error> {
        let down = track.new_down_track(Arc::clone(&self.peer.egress));
        if let Some(&quality) = self.quality.get(&track.info.id) {
            down.set_requested(quality_layer(quality));
        }
        let as_local: Arc<dyn TrackLocal + Send + Sync> = Arc::clone(&down) as _;
        let (transceiver, sender) = match self.reusable_transceiver(track).await {
            Some(t) => {
                let sender = self.peer.new_sender(Arc::clone(&as_local)).await;
                t.set_sender_track(Arc::clone(&sender), Some(as_local))
                    .await?;
                (t, sender)
            }
            None => {
                let t = self
                    .peer
                    .pc
                    .add_transceiver_from_track(
                        as_local,
                        Some(RTCRtpTransceiverInit {
                            direction: RTCRtpTransceiverDirection::Sendonly,
                            send_encodings: vec![],
                        }),
                    )
                    .await?;
                let sender = t.sender().await;
                (t, sender)
            }
        };
        track.add_down_track(Arc::clone(&down));
        let rtcp = tokio::spawn(subscriber_rtcp::run(
            Arc::clone(&sender),
            Arc::clone(track),
            Arc::clone(&down),
        ));
        Ok(Subscription {
            track: Arc::clone(track),
            down,
            sender,
            transceiver,
            rtcp,
        })
    }

    /// A transceiver the server made earlier whose track is gone and whose inactive state
    /// the client has already accepted, so the next offer shows the client a fresh track.
    pub(super) async fn reusable_transceiver(
        &self,
        track: &PublishedTrack,
    ) -> Option<Arc<RTCRtpTransceiver>> {
        let in_use: HashSet<usize> = self
            .subscriptions
            .values()
            .map(|s| Arc::as_ptr(&s.transceiver) as usize)
            .collect();
        for t in self.peer.pc.get_transceivers().await {
            let own = t.mid().is_some_and(|m| self.own_mids.contains(m.as_str()));
            if own
                && t.kind() == track.rtp_kind()
                && !in_use.contains(&(Arc::as_ptr(&t) as usize))
                && t.direction() == RTCRtpTransceiverDirection::Inactive
                && t.current_direction() == RTCRtpTransceiverDirection::Inactive
                && t.sender().await.track().await.is_none()
            {
                return Some(t);
            }
        }
        None
    }

    pub(super) async fn send_offer(&mut self, outbox: &Outbox) {
        let result = async {
            let offer = self.peer.pc.create_offer(None).await?;
            self.peer.pc.set_local_description(offer).await?;
            self.peer
                .pc
                .local_description()
                .await
                .ok_or(webrtc::Error::ErrNoRemoteDescription)
        }
        .await;
        match result {
            Ok(local) => {
                for t in self.peer.pc.get_transceivers().await {
                    let sending = t.direction().has_send()
                        || self
                            .subscriptions
                            .values()
                            .any(|s| Arc::ptr_eq(&s.transceiver, &t));
                    if let (true, Some(mid)) = (sending, t.mid()) {
                        self.own_mids.insert(mid.to_string());
                    }
                }
                self.negotiator.offer_sent();
                outbox.send(ServerMessage::Offer { sdp: local.sdp });
            }
            Err(e) => {
                tracing::error!(participant = %self.id, error = %e, "cannot create an offer");
                if self.negotiator.offer_failed(Instant::now()) {
                    outbox.send(ServerMessage::NegotiateGrant);
                }
            }
        }
    }
}
