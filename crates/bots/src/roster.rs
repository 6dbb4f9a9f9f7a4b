//! What the bot's room lists: its members and their published tracks, as the bot was told
//! (`joined`'s participants, then `participant_joined`/`participant_left` and
//! `track_published`/`track_unpublished`). With it, a bot expects the tracks of publishers
//! that are not bots (an encoder over WHIP, a presenter in a browser).
use std::collections::BTreeMap;

use parking_lot::Mutex;
use roomcast_protocol::{Participant, ServerMessage, Track, TrackKind};

/// One track the room lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTrack {
    pub publisher_id: String,
    pub publisher_name: String,
    pub track_id: String,
    pub kind: TrackKind,
}

struct Member {
    name: String,
    tracks: Vec<Track>,
}

#[derive(Default)]
pub(crate) struct Roster {
    members: Mutex<BTreeMap<String, Member>>,
}

impl Roster {
    pub(crate) fn new(participants: &[Participant]) -> Roster {
        let roster = Roster::default();
        for p in participants {
            roster.join(p);
        }
        roster
    }

    fn join(&self, p: &Participant) {
        self.members.lock().insert(
            p.id.clone(),
            Member {
                name: p.name.clone(),
                tracks: p.tracks.clone(),
            },
        );
    }

    pub(crate) fn on_message(&self, message: &ServerMessage) {
        match message {
            ServerMessage::ParticipantJoined { participant } => self.join(participant),
            ServerMessage::ParticipantLeft { participant_id } => {
                self.members.lock().remove(participant_id);
            }
            ServerMessage::TrackPublished {
                participant_id,
                track,
            } => {
                if let Some(m) = self.members.lock().get_mut(participant_id) {
                    m.tracks.retain(|t| t.id != track.id);
                    m.tracks.push(track.clone());
                }
            }
            ServerMessage::TrackUnpublished {
                participant_id,
                track_id,
            } => {
                if let Some(m) = self.members.lock().get_mut(participant_id) {
                    m.tracks.retain(|t| t.id != *track_id);
                }
            }
            _ => {}
        }
    }

    /// Every listed track that is not muted (a muted track sends nothing).
    pub(crate) fn tracks(&self) -> Vec<ListedTrack> {
        self.members
            .lock()
            .iter()
            .flat_map(|(id, m)| {
                m.tracks.iter().filter(|t| !t.muted).map(|t| ListedTrack {
                    publisher_id: id.clone(),
                    publisher_name: m.name.clone(),
                    track_id: t.id.clone(),
                    kind: t.kind,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomcast_protocol::{Role, TrackSource};

    fn track(id: &str, kind: TrackKind) -> Track {
        Track {
            id: id.into(),
            kind,
            source: TrackSource::default_for(kind),
            simulcast: false,
            muted: false,
        }
    }

    #[test]
    fn follows_what_the_room_says() {
        let roster = Roster::new(&[Participant {
            id: "PA_obs".into(),
            name: "OBS".into(),
            role: Role::Presenter,
            tracks: vec![track("TR_1", TrackKind::Audio)],
        }]);
        roster.on_message(&ServerMessage::TrackPublished {
            participant_id: "PA_obs".into(),
            track: track("TR_2", TrackKind::Video),
        });
        assert_eq!(roster.tracks().len(), 2);
        assert_eq!(roster.tracks()[1].publisher_name, "OBS");
        roster.on_message(&ServerMessage::TrackUnpublished {
            participant_id: "PA_obs".into(),
            track_id: "TR_1".into(),
        });
        assert_eq!(roster.tracks().len(), 1);
        roster.on_message(&ServerMessage::ParticipantLeft {
            participant_id: "PA_obs".into(),
        });
        assert!(roster.tracks().is_empty());
    }
}
