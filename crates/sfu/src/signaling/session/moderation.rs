//! Moderation inside a session: self mute, a host's moderation messages (mute, kick,
//! role changes, locking and ending the room), and what a role change means for this
//! participant's own publishing.
use super::*;

impl Joined {
    /// `mute` by the owner of a track: `track_muted` to the room when the state changes
    /// (to the owner alone when it does not).
    pub(super) async fn on_mute(&mut self, outbox: &Outbox, track_id: String, muted: bool) {
        let own = self
            .published
            .values()
            .find(|t| t.info.id == track_id)
            .cloned();
        let Some(track) = own else {
            let (code, why) = if self.room.has_track(&track_id) {
                (ErrorCode::Forbidden, "only its publisher may mute a track")
            } else {
                (ErrorCode::UnknownTrack, "you publish no such track")
            };
            return outbox.send(ServerMessage::error(code, format!("{why}: {track_id}")));
        };
        let changed = track.set_muted(muted).await;
        let msg = ServerMessage::TrackMuted {
            participant_id: self.id.clone(),
            track_id,
            muted,
        };
        if changed {
            tracing::info!(participant = %self.id, track_id = %track.info.id, muted, "self mute");
            self.room.broadcast(msg);
        } else {
            outbox.send(msg);
        }
    }

    /// The host-only messages. Anyone else gets `forbidden` and nothing changes.
    pub(super) async fn moderate(&mut self, sfu: &Sfu, outbox: &Outbox, msg: ClientMessage) {
        if !self.room.role_of(&self.id).is_some_and(Role::can_moderate) {
            return outbox.send(ServerMessage::error(
                ErrorCode::Forbidden,
                "only a host may moderate the room",
            ));
        }
        let unknown = |id: &str| {
            ServerMessage::error(
                ErrorCode::UnknownParticipant,
                format!("no participant {id} in this room"),
            )
        };
        match msg {
            ClientMessage::MuteParticipant {
                participant_id,
                kind,
                muted,
            } => {
                tracing::info!(participant = %self.id, target = %participant_id, ?kind, muted, "mute_participant");
                if let Err(ModerationError::UnknownParticipant) = self
                    .room
                    .mute_participant(&participant_id, Some(kind), muted)
                    .await
                {
                    outbox.send(unknown(&participant_id));
                }
            }
            ClientMessage::Kick { participant_id } => {
                tracing::info!(participant = %self.id, target = %participant_id, "kick");
                if let Err(ModerationError::UnknownParticipant) = self.room.kick(&participant_id) {
                    outbox.send(unknown(&participant_id));
                }
            }
            ClientMessage::SetRole {
                participant_id,
                role,
            } => {
                tracing::info!(participant = %self.id, target = %participant_id, ?role, "set_role");
                if let Err(ModerationError::UnknownParticipant) =
                    self.room.set_role(&participant_id, role)
                {
                    outbox.send(unknown(&participant_id));
                }
            }
            ClientMessage::LockRoom | ClientMessage::UnlockRoom => {
                let locked = matches!(msg, ClientMessage::LockRoom);
                tracing::info!(participant = %self.id, locked, "room lock");
                self.room.set_locked(locked);
            }
            ClientMessage::EndRoom => {
                tracing::info!(participant = %self.id, room = %self.room.name, "end_room");
                sfu.end_room(&self.room);
            }
            _ => {}
        }
    }

    /// A host changed this participant's role. Demoted to audience, it stops publishing:
    /// its tracks are unpublished and its sending m-lines are offered back inactive.
    pub(super) async fn on_role_changed(&mut self, role: Role, outbox: &Outbox) {
        if role.can_publish() {
            return;
        }
        for (_, track) in self.published.drain() {
            tracing::info!(participant = %self.id, track_id = %track.info.id, "unpublished: demoted to audience");
            self.room.unpublish(&self.id, &track.info.id);
        }
        self.room.release_publisher(&self.id);
        for t in self.peer.pc.get_transceivers().await {
            let own = t.mid().is_some_and(|m| self.own_mids.contains(m.as_str()));
            if !own && t.direction().has_recv() {
                t.set_direction(RTCRtpTransceiverDirection::Inactive).await;
                self.offer_owed = true;
            }
        }
        self.renegotiate(outbox).await;
    }
}
