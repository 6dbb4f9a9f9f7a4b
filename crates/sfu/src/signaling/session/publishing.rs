//! What a participant publishes: answering its offers, turning its sending m-lines into
//! published tracks (or refusing them when its role may not publish), and starting one
//! reader per simulcast layer.
use super::*;

impl Joined {
    pub(super) async fn on_offer(
        &mut self,
        outbox: &Outbox,
        sdp: String,
        tracks: Vec<PublishedMid>,
    ) {
        if self.negotiator.on_client_offer() == ClientOffer::Ignore {
            tracing::debug!(participant = %self.id, "ignoring a client offer that collided with ours");
            self.ignoring_candidates = true;
            return;
        }
        let sections = match media_sections(&sdp) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                return outbox.send(ServerMessage::error(
                    ErrorCode::BadSdp,
                    "the offer has no m-lines",
                ))
            }
            Err(e) => return outbox.send(ServerMessage::error(ErrorCode::BadSdp, e)),
        };
        let offer = match RTCSessionDescription::offer(sdp) {
            Ok(o) => o,
            Err(e) => return outbox.send(ServerMessage::error(ErrorCode::BadSdp, e.to_string())),
        };
        if let Err(e) = self.peer.pc.set_remote_description(offer).await {
            return outbox.send(ServerMessage::error(
                ErrorCode::BadSdp,
                format!("cannot apply the offer: {e}"),
            ));
        }
        self.apply_pending_candidates().await;
        let sending: HashSet<String> = sections
            .iter()
            .filter(|s| s.sends && s.kind.is_some() && !self.own_mids.contains(&s.mid))
            .map(|s| s.mid.clone())
            .collect();
        let may_publish = sending.is_empty() || self.room.claim_publisher(&self.id);
        for t in self.peer.pc.get_transceivers().await {
            let Some(mid) = t.mid() else { continue };
            if !sending.contains(mid.as_str()) {
                continue;
            }
            // Refused m-lines are answered inactive; once allowed (a promotion), a
            // re-offered one is received again.
            let direction = if may_publish {
                RTCRtpTransceiverDirection::Recvonly
            } else {
                RTCRtpTransceiverDirection::Inactive
            };
            if t.direction() != direction {
                t.set_direction(direction).await;
            }
        }
        let answer = match self.peer.pc.create_answer(None).await {
            Ok(a) => a,
            Err(e) => {
                return outbox.send(ServerMessage::error(
                    ErrorCode::BadSdp,
                    format!("cannot answer: {e}"),
                ))
            }
        };
        if let Err(e) = self.peer.pc.set_local_description(answer).await {
            return outbox.send(ServerMessage::error(
                ErrorCode::BadSdp,
                format!("cannot answer: {e}"),
            ));
        }
        let Some(local) = self.peer.pc.local_description().await else {
            return outbox.send(ServerMessage::error(
                ErrorCode::InternalError,
                "no local description",
            ));
        };
        outbox.send(ServerMessage::Answer { sdp: local.sdp });
        self.negotiator.client_offer_answered();
        if may_publish {
            self.update_publications(outbox, &sections, &tracks).await;
        } else {
            tracing::info!(participant = %self.id, mids = ?sending, "publishing refused");
            self.early_tracks.clear();
            outbox.send(ServerMessage::error(
                ErrorCode::Forbidden,
                match self.room.role_of(&self.id) {
                    Some(role) if !role.can_publish() => {
                        "the audience may not publish: the sending m-lines are inactive"
                    }
                    _ => "the room has its maximum of publishers: the sending m-lines are inactive",
                },
            ));
            self.update_publications(outbox, &[], &[]).await;
        }
        if self.published.is_empty() {
            self.room.release_publisher(&self.id);
        }
        self.renegotiate(outbox).await;
    }

    /// Publishes the m-lines the client now sends on and unpublishes the ones it stopped.
    pub(super) async fn update_publications(
        &mut self,
        outbox: &Outbox,
        sections: &[crate::signaling::sdp_media::MediaSection],
        tracks: &[PublishedMid],
    ) {
        let sending: HashSet<&str> = sections
            .iter()
            .filter(|s| s.sends && s.kind.is_some() && !self.own_mids.contains(&s.mid))
            .map(|s| s.mid.as_str())
            .collect();
        let stopped: Vec<String> = self
            .published
            .keys()
            .filter(|mid| !sending.contains(mid.as_str()))
            .cloned()
            .collect();
        for mid in stopped {
            if let Some(track) = self.published.remove(&mid) {
                tracing::info!(participant = %self.id, track_id = %track.info.id, "unpublished");
                self.room.unpublish(&self.id, &track.info.id);
            }
        }
        for section in sections {
            let Some(kind) = section.kind else { continue };
            if !sending.contains(section.mid.as_str()) || self.published.contains_key(&section.mid)
            {
                continue;
            }
            let source = tracks
                .iter()
                .find(|t| t.mid == section.mid)
                .map_or(TrackSource::default_for(kind), |t| t.source);
            let Some(codec) = self
                .peer
                .receive_codecs(&section.mid)
                .await
                .into_iter()
                .next()
            else {
                tracing::warn!(participant = %self.id, mid = %section.mid, "no codec negotiated; not published");
                continue;
            };
            let rids = if section.rids.len() > 1 {
                order_rids(&section.rids)
            } else {
                Vec::new()
            };
            let info = Track {
                id: self.room.next_track_id(),
                kind,
                source,
                simulcast: !rids.is_empty(),
                muted: false,
            };
            let track = Arc::new(PublishedTrack::new(
                info,
                self.id.clone(),
                section.mid.clone(),
                codec,
                &rids,
                Arc::downgrade(&self.peer.pc),
            ));
            tracing::info!(participant = %self.id, track_id = %track.info.id, mid = %section.mid, "published");
            outbox.send(ServerMessage::Published {
                mid: section.mid.clone(),
                track: track.info.clone(),
            });
            self.published
                .insert(section.mid.clone(), Arc::clone(&track));
            for remote in self.early_tracks.remove(&section.mid).unwrap_or_default() {
                self.start_reader(&track, remote);
            }
            self.room.publish(track);
        }
    }

    pub(super) fn start_reader(&mut self, track: &Arc<PublishedTrack>, remote: Arc<TrackRemote>) {
        let Some(layer) = track.layer_of_rid(remote.rid()) else {
            tracing::info!(participant = %self.id, track_id = %track.info.id, rid = %remote.rid(), "a layer the offer did not announce; not forwarded");
            return;
        };
        if !track.claim_reader(layer) {
            tracing::debug!(participant = %self.id, track_id = %track.info.id, layer, "layer already has a reader");
            return;
        }
        self.readers.retain(|r| !r.is_finished());
        self.readers
            .push(tokio::spawn(Arc::clone(track).run_reader(remote, layer)));
    }

    /// Whether `mid` is one of the client's m-lines that the server answered inactive.
    pub(super) async fn refused_mid(&self, mid: &str) -> bool {
        for t in self.peer.pc.get_transceivers().await {
            if t.mid().is_some_and(|m| m.as_str() == mid) {
                return !self.own_mids.contains(mid)
                    && t.direction() == RTCRtpTransceiverDirection::Inactive;
            }
        }
        false
    }
}
