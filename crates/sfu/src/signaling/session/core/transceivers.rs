//! The PeerConnection's transceivers as the shell last reported them, and which of them the
//! server created to send on.
use std::collections::HashSet;

use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection as Direction;

/// Names one transceiver of the connection (stable while the connection lives).
pub type TransceiverId = usize;

/// One transceiver, as the shell reads it after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transceiver {
    pub id: TransceiverId,
    /// Set once a description negotiated it.
    pub mid: Option<String>,
    pub kind: RTPCodecType,
    pub direction: Direction,
    /// The direction the latest answer negotiated.
    pub current_direction: Direction,
    /// It has a track to send.
    pub sending: bool,
}

#[derive(Debug, Default)]
pub(super) struct PeerModel {
    transceivers: Vec<Transceiver>,
    /// Mids of the transceivers the server created to send on (reusable once inactive).
    own_mids: HashSet<String>,
    /// A remote description has been applied.
    pub has_remote: bool,
}

impl PeerModel {
    pub fn update(&mut self, transceivers: Vec<Transceiver>) {
        self.transceivers = transceivers;
    }

    pub fn transceivers(&self) -> &[Transceiver] {
        &self.transceivers
    }

    pub fn is_own(&self, mid: &str) -> bool {
        self.own_mids.contains(mid)
    }

    fn own(&self, t: &Transceiver) -> bool {
        t.mid.as_deref().is_some_and(|m| self.is_own(m))
    }

    /// Whether `mid` is one of the client's m-lines that the server answered inactive.
    pub fn is_refused(&self, mid: &str) -> bool {
        self.transceivers
            .iter()
            .find(|t| t.mid.as_deref() == Some(mid))
            .is_some_and(|t| !self.is_own(mid) && t.direction == Direction::Inactive)
    }

    /// A transceiver the server made earlier, of `kind`, not in `in_use`, whose track is
    /// gone and whose inactive state the client has already accepted, so the next offer
    /// shows the client a fresh track on it.
    pub fn reusable(
        &self,
        kind: RTPCodecType,
        in_use: &HashSet<TransceiverId>,
    ) -> Option<TransceiverId> {
        self.transceivers
            .iter()
            .find(|t| {
                self.own(t)
                    && t.kind == kind
                    && !in_use.contains(&t.id)
                    && t.direction == Direction::Inactive
                    && t.current_direction == Direction::Inactive
                    && !t.sending
            })
            .map(|t| t.id)
    }

    /// The client's transceivers the server receives on.
    pub fn receiving_from_client(&self) -> Vec<TransceiverId> {
        self.transceivers
            .iter()
            .filter(|t| !self.own(t) && t.direction.has_recv())
            .map(|t| t.id)
            .collect()
    }

    /// After the server's offer: the transceivers it sends on (or that carry one of
    /// `subscribed`) are its own from now on.
    pub fn claim_sending(&mut self, subscribed: &HashSet<TransceiverId>) {
        for t in &self.transceivers {
            let sending = t.direction.has_send() || subscribed.contains(&t.id);
            if let (true, Some(mid)) = (sending, &t.mid) {
                self.own_mids.insert(mid.clone());
            }
        }
    }

    /// The track on `id` was removed: it sends nothing, and no longer offers to.
    pub fn stopped_sending(&mut self, id: TransceiverId) {
        if let Some(t) = self.transceivers.iter_mut().find(|t| t.id == id) {
            t.sending = false;
            t.direction = Direction::from_send_recv(false, t.direction.has_recv());
        }
    }

    /// Records a direction the core set.
    pub fn set_direction(&mut self, id: TransceiverId, direction: Direction) {
        if let Some(t) = self.transceivers.iter_mut().find(|t| t.id == id) {
            t.direction = direction;
        }
    }
}
