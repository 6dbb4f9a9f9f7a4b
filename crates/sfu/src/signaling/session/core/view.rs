//! A viewer's session (WHEP): the client offered audio and video receivers and cannot
//! renegotiate, so the server sends on its first video receiver and on each audio receiver
//! (up to [`MAX_VOICES`]), and which published track feeds each is switched in place
//! ([`Command::View`]) as the room's presenter and speakers change (see
//! [`crate::media::presenter`]). The room wakes the session when tracks come and go; the
//! speakers change without telling anyone, so the choice is also looked at every
//! [`CHECK_INTERVAL`].
use std::time::{Duration, Instant};

use roomcast_protocol::TrackKind;

use super::{Command, SessionCore, TransceiverId};
use crate::media::presenter::{choose, voices, Candidate, Choice};

/// How often a viewer's choice is looked at again for a change of speaker.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Most audio receivers of one viewer that are given a voice (the loudest speakers).
pub const MAX_VOICES: usize = 4;

#[derive(Debug)]
pub(super) struct View {
    /// Only this participant's tracks (its id, or its name).
    pinned: Option<String>,
    /// The client's receivers, set when its offer is applied.
    slots: Vec<Slot>,
    pub next_check: Option<Instant>,
}

#[derive(Debug)]
struct Slot {
    transceiver: TransceiverId,
    kind: TrackKind,
    /// The track sent on it (`None`: nothing yet).
    source: Option<String>,
    /// Given its first source (or its placeholder), so the answer sends on it.
    attached: bool,
}

impl SessionCore {
    /// The client only watches (WHEP): it receives the room's presenter on the one audio and
    /// one video m-line it offers, or `pinned`'s tracks only.
    pub fn view(&mut self, pinned: Option<String>) {
        self.view = Some(View {
            pinned,
            slots: Vec::new(),
            next_check: None,
        });
    }

    /// The viewer's offer is applied: its receiving audio m-lines (up to [`MAX_VOICES`]) and
    /// its first receiving video m-line become the slots, and each gets its source (or a
    /// placeholder) before the answer, so the answer sends on each.
    pub(super) fn attach_view(&mut self, now: Instant) {
        let (Some(view), Some(offer)) = (self.view.as_mut(), self.offer.as_ref()) else {
            return;
        };
        if !view.slots.is_empty() {
            return;
        }
        let receiving = |kind: TrackKind, most: usize| {
            offer
                .sections
                .iter()
                .filter(move |s| s.kind == Some(kind) && s.receives)
                .take(most)
                .map(move |s| (kind, s))
        };
        for (kind, section) in
            receiving(TrackKind::Audio, MAX_VOICES).chain(receiving(TrackKind::Video, 1))
        {
            let Some(t) = self
                .peer
                .transceivers()
                .iter()
                .find(|t| t.mid.as_deref() == Some(section.mid.as_str()))
            else {
                continue;
            };
            view.slots.push(Slot {
                transceiver: t.id,
                kind,
                source: None,
                attached: false,
            });
        }
        self.reconcile_view(now);
    }

    /// Switches each slot whose chosen track changed.
    pub(super) fn reconcile_view(&mut self, now: Instant) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        view.next_check = Some(now + CHECK_INTERVAL);
        if view.slots.is_empty() {
            return;
        }
        let tracks = self.room.tracks_for(&self.id);
        let pinned: Option<Vec<String>> = view.pinned.as_ref().map(|p| {
            self.room
                .participants()
                .into_iter()
                .filter(|m| m.id == *p || m.name == *p)
                .map(|m| m.id)
                .collect()
        });
        let candidates: Vec<Candidate<'_>> = tracks
            .iter()
            .filter(|t| {
                pinned
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&t.publisher_id))
            })
            .map(|t| Candidate {
                track_id: &t.info.id,
                publisher_id: &t.publisher_id,
                kind: t.info.kind,
                source: t.info.source,
                muted: t.is_muted(),
            })
            .collect();
        let source_of = |kind: TrackKind| {
            view.slots
                .iter()
                .find(|s| s.kind == kind)
                .and_then(|s| s.source.as_deref())
        };
        let current = Choice {
            audio: source_of(TrackKind::Audio),
            video: source_of(TrackKind::Video),
        };
        let speakers = self.room.active_speakers();
        let choice = choose(&candidates, &speakers, current);
        let heard: Vec<Option<&str>> = view
            .slots
            .iter()
            .filter(|s| s.kind == TrackKind::Audio)
            .map(|s| s.source.as_deref())
            .collect();
        let mut voices = voices(&candidates, &speakers, choice.audio, &heard).into_iter();
        let mut switches = Vec::new();
        for slot in &mut view.slots {
            let wanted = match slot.kind {
                TrackKind::Audio => voices.next().flatten(),
                TrackKind::Video => choice.video,
            };
            if slot.attached && slot.source.as_deref() == wanted {
                continue;
            }
            slot.attached = true;
            slot.source = wanted.map(str::to_owned);
            let track = wanted.and_then(|id| tracks.iter().find(|t| t.info.id == id).cloned());
            tracing::info!(participant = %self.id, kind = ?slot.kind, track_id = wanted.unwrap_or("none"), "viewer's source");
            switches.push(Command::View {
                transceiver: slot.transceiver,
                kind: slot.kind,
                track,
            });
        }
        for command in switches {
            self.order(command);
        }
    }
}
