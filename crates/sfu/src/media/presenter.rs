//! Which of a room's tracks a viewer with one audio and one video receiver (a WHEP player)
//! is shown: the room's presenter, decided again whenever the room or its speakers change,
//! without I/O.
//!
//! Video: a screen share if there is one (the one shown stays while it lasts), else the
//! camera of the loudest speaker who has one, else what is shown while it lasts, else the
//! earliest published video. Audio: the loudest speaker's microphone, else the shown
//! video's publisher's, else what is heard while it lasts, else the earliest. Muted tracks
//! are passed over. A viewer pinned to one participant chooses among that participant's
//! tracks only. A viewer that offered several audio receivers hears that many voices
//! ([`voices`]).
use roomcast_protocol::{TrackKind, TrackSource};

/// One published track, as the choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub track_id: &'a str,
    pub publisher_id: &'a str,
    pub kind: TrackKind,
    pub source: TrackSource,
    pub muted: bool,
}

/// The track ids chosen per kind (`None`: nothing to show).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Choice<'a> {
    pub audio: Option<&'a str>,
    pub video: Option<&'a str>,
}

/// Publication order of a track id (`TR_<n>`); ids of another form come last.
fn order(track_id: &str) -> u64 {
    track_id
        .strip_prefix("TR_")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Chooses among `tracks` (already limited to a pinned participant's, if any), given the
/// current speakers (participant ids, loudest first) and what is shown now.
pub fn choose<'a>(
    tracks: &[Candidate<'a>],
    speakers: &[String],
    current: Choice<'_>,
) -> Choice<'a> {
    let live = |kind: TrackKind| {
        let mut of_kind: Vec<&Candidate<'a>> = tracks
            .iter()
            .filter(|t| t.kind == kind && !t.muted)
            .collect();
        of_kind.sort_by_key(|t| order(t.track_id));
        of_kind
    };
    let videos = live(TrackKind::Video);
    let audios = live(TrackKind::Audio);
    let is_current = |t: &&Candidate<'a>, now: Option<&str>| now == Some(t.track_id);
    let of_speaker = |list: &[&Candidate<'a>], skip_screens: bool| {
        speakers.iter().find_map(|speaker| {
            list.iter()
                .find(|t| {
                    t.publisher_id == speaker.as_str()
                        && !(skip_screens && t.source == TrackSource::Screen)
                })
                .map(|t| t.track_id)
        })
    };
    let screens: Vec<&&Candidate<'a>> = videos
        .iter()
        .filter(|t| t.source == TrackSource::Screen)
        .collect();
    let video = screens
        .iter()
        .find(|t| is_current(t, current.video))
        .or(screens.first())
        .map(|t| t.track_id)
        .or_else(|| of_speaker(&videos, true))
        .or_else(|| {
            videos
                .iter()
                .find(|t| is_current(t, current.video))
                .map(|t| t.track_id)
        })
        .or_else(|| videos.first().map(|t| t.track_id));
    let video_publisher = video.and_then(|id| {
        videos
            .iter()
            .find(|t| t.track_id == id)
            .map(|t| t.publisher_id)
    });
    let audio = of_speaker(&audios, false)
        .or_else(|| {
            audios
                .iter()
                .find(|t| Some(t.publisher_id) == video_publisher)
                .map(|t| t.track_id)
        })
        .or_else(|| {
            audios
                .iter()
                .find(|t| is_current(t, current.audio))
                .map(|t| t.track_id)
        })
        .or_else(|| audios.first().map(|t| t.track_id));
    Choice { audio, video }
}

/// What a viewer that offered `current.len()` audio receivers hears on each (`current`: what
/// each plays now): the chosen `primary` voice, then the other speakers' microphones loudest
/// first, then the other live microphones in publication order, as many as there are
/// receivers. A voice that stays wanted stays on its receiver; a newly wanted one takes a
/// receiver whose voice no longer is. With one receiver this is `primary`.
pub fn voices<'a>(
    tracks: &[Candidate<'a>],
    speakers: &[String],
    primary: Option<&'a str>,
    current: &[Option<&str>],
) -> Vec<Option<&'a str>> {
    let mut audios: Vec<&Candidate<'a>> = tracks
        .iter()
        .filter(|t| t.kind == TrackKind::Audio && !t.muted)
        .collect();
    audios.sort_by_key(|t| order(t.track_id));
    let by_speaker = speakers.iter().flat_map(|speaker| {
        audios
            .iter()
            .filter(move |t| t.publisher_id == speaker.as_str())
            .map(|t| t.track_id)
    });
    let mut wanted: Vec<&'a str> = Vec::with_capacity(current.len());
    for id in primary
        .into_iter()
        .chain(by_speaker)
        .chain(audios.iter().map(|t| t.track_id))
    {
        if wanted.len() == current.len() {
            break;
        }
        if !wanted.contains(&id) {
            wanted.push(id);
        }
    }
    let mut heard: Vec<Option<&'a str>> = current
        .iter()
        .map(|now| wanted.iter().copied().find(|w| Some(*w) == *now))
        .collect();
    let mut newcomers = wanted
        .iter()
        .copied()
        .filter(|w| !heard.contains(&Some(*w)))
        .collect::<Vec<_>>()
        .into_iter();
    for slot in heard.iter_mut().filter(|s| s.is_none()) {
        *slot = newcomers.next();
    }
    heard
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t<'a>(
        track_id: &'a str,
        publisher_id: &'a str,
        kind: TrackKind,
        source: TrackSource,
    ) -> Candidate<'a> {
        Candidate {
            track_id,
            publisher_id,
            kind,
            source,
            muted: false,
        }
    }

    fn room() -> Vec<Candidate<'static>> {
        vec![
            t("TR_1", "ann", TrackKind::Audio, TrackSource::Microphone),
            t("TR_2", "ann", TrackKind::Video, TrackSource::Camera),
            t("TR_10", "bob", TrackKind::Audio, TrackSource::Microphone),
            t("TR_11", "bob", TrackKind::Video, TrackSource::Camera),
        ]
    }

    fn speakers(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_earliest_publisher_without_speakers_and_the_loudest_speaker_with() {
        let tracks = room();
        let quiet = choose(&tracks, &[], Choice::default());
        assert_eq!(quiet.video, Some("TR_2"));
        assert_eq!(quiet.audio, Some("TR_1"));
        let bob = choose(&tracks, &speakers(&["bob", "ann"]), quiet);
        assert_eq!(
            bob,
            Choice {
                audio: Some("TR_10"),
                video: Some("TR_11")
            }
        );
        // Silence keeps what is shown, and the video's publisher is heard.
        assert_eq!(choose(&tracks, &[], bob), bob);
    }

    #[test]
    fn a_screen_share_wins_and_stays_while_it_lasts() {
        let mut tracks = room();
        tracks.push(t("TR_20", "bob", TrackKind::Video, TrackSource::Screen));
        let shared = choose(&tracks, &speakers(&["ann"]), Choice::default());
        assert_eq!(shared.video, Some("TR_20"));
        assert_eq!(shared.audio, Some("TR_1"), "the speaker is heard");
        tracks.push(t("TR_30", "ann", TrackKind::Video, TrackSource::Screen));
        assert_eq!(choose(&tracks, &[], shared).video, Some("TR_20"));
        tracks.retain(|c| c.track_id != "TR_20");
        assert_eq!(choose(&tracks, &[], shared).video, Some("TR_30"));
    }

    #[test]
    fn muted_tracks_are_passed_over_and_nothing_is_chosen_from_nothing() {
        let mut tracks = room();
        tracks[1].muted = true;
        assert_eq!(
            choose(&tracks, &speakers(&["ann"]), Choice::default()).video,
            Some("TR_11")
        );
        assert_eq!(choose(&[], &[], Choice::default()), Choice::default());
    }

    #[test]
    fn several_audio_receivers_hear_the_speakers_each_staying_on_its_receiver() {
        let mut tracks = room();
        tracks.push(t("TR_20", "cy", TrackKind::Audio, TrackSource::Microphone));
        // One receiver: the primary voice, as `choose` picked it.
        assert_eq!(
            voices(&tracks, &[], Some("TR_10"), &[None]),
            [Some("TR_10")]
        );
        // Two, nobody speaking: the primary, then the earliest other microphone.
        let two = voices(&tracks, &[], Some("TR_1"), &[None, None]);
        assert_eq!(two, [Some("TR_1"), Some("TR_10")]);
        // Cy speaks, then bob louder: both are heard, ann's receiver goes to cy, bob stays.
        let now = voices(&tracks, &speakers(&["bob", "cy"]), Some("TR_10"), &two);
        assert_eq!(now, [Some("TR_20"), Some("TR_10")]);
        // Three receivers hear all three; a fourth stays silent.
        let all = voices(&tracks, &speakers(&["cy"]), Some("TR_20"), &[None; 4]);
        assert_eq!(all, [Some("TR_20"), Some("TR_1"), Some("TR_10"), None]);
        // A muted microphone is passed over.
        tracks[0].muted = true;
        assert_eq!(
            voices(&tracks, &[], Some("TR_10"), &[Some("TR_1"), None]),
            [Some("TR_10"), Some("TR_20")]
        );
    }
}
