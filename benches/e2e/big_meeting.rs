//! (f) A large meeting as real clients make one: everyone publishes audio, but only a
//! couple speak and the rest send silence with DTX gaps; some publish simulcast video; every
//! participant takes `low` for all videos but the active speaker's, which it takes `high`.
use roomcast_bots::{Swarm, SwarmConfig};
use roomcast_protocol::{ClientMessage, Quality, TrackKind};

/// Participants who speak (the first publishers); the first is the active speaker.
const SPEAKERS: usize = 2;

/// `size` participants, `video` of whom publish simulcast video; the scenario's swarm.
pub fn config(size: usize, video: usize) -> SwarmConfig {
    let mut c = SwarmConfig::new("");
    c.publishers = video;
    c.audio_publishers = size - video;
    c.simulcast = true;
    c.speakers = Some(SPEAKERS);
    c.quality = Some(Quality::Low);
    c.join_rate = 25.0;
    c
}

/// Every participant asks `high` for the active speaker's video (everything else stays
/// at the `low` the swarm asked for). Returns how many asked.
pub async fn follow_speaker(swarm: &Swarm) -> usize {
    let bots = swarm.joined_bots();
    let Some(speaker) = bots
        .iter()
        .find(|(plan, _)| plan.index == 0)
        .map(|(_, bot)| bot.participant_id().to_owned())
    else {
        return 0;
    };
    let mut asked = 0;
    for (_, bot) in &bots {
        let video = bot
            .remote_tracks()
            .into_iter()
            .find(|t| t.publisher_id == speaker && t.kind == TrackKind::Video);
        if let Some(track) = video {
            let message = ClientMessage::SetQuality {
                track_id: track.track_id,
                quality: Quality::High,
            };
            if bot.send(&message).await.is_ok() {
                asked += 1;
            }
        }
    }
    asked
}
