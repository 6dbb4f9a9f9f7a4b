//! The fan-out half of a published track: its subscribers' down tracks, and the one loop
//! that hands each received packet to every one of them. The list is swapped atomically,
//! so the per packet path takes no room-wide lock and never waits on signaling.
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use super::down_track::{DownTrack, Forwarded, Incoming};
use super::layer_selector::LayerSet;
use crate::egress::Egress;
use crate::stats::MediaCounters;

pub struct FanOut {
    /// Counts what goes out as video (or else audio).
    video: bool,
    down_tracks: ArcSwap<Vec<Arc<DownTrack>>>,
}

impl FanOut {
    pub fn new(video: bool) -> Self {
        FanOut {
            video,
            down_tracks: ArcSwap::from_pointee(Vec::new()),
        }
    }

    pub fn add(&self, down: Arc<DownTrack>) {
        self.down_tracks.rcu(|list| {
            let mut next = Vec::with_capacity(list.len() + 1);
            next.extend(list.iter().cloned());
            next.push(Arc::clone(&down));
            next
        });
    }

    pub fn remove(&self, down: &Arc<DownTrack>) {
        self.down_tracks.rcu(|list| {
            list.iter()
                .filter(|d| !Arc::ptr_eq(d, down))
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    /// Drops every subscriber (the track closed).
    pub fn clear(&self) {
        self.down_tracks.store(Arc::new(Vec::new()));
    }

    /// The copy for the subscriber connection that sends through `egress`.
    pub fn on(&self, egress: &Egress) -> Option<Arc<DownTrack>> {
        self.down_tracks
            .load()
            .iter()
            .find(|d| std::ptr::eq(d.egress(), egress))
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.down_tracks.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The subscribers' down tracks as they are now.
    pub fn snapshot(&self) -> Arc<Vec<Arc<DownTrack>>> {
        self.down_tracks.load_full()
    }

    /// Sends `incoming` to every subscriber at `now`, counting what happened in
    /// `counters`; returns the layers some subscriber waits for a keyframe of.
    pub fn forward(
        &self,
        incoming: &Incoming<'_>,
        now: Instant,
        scratch: &mut Vec<u8>,
        counters: &MediaCounters,
    ) -> LayerSet {
        let c = counters;
        let mut wanted = LayerSet::default();
        let mut sent = 0u64;
        for down in self.down_tracks.load().iter() {
            match down.forward(incoming, scratch, now) {
                Forwarded::Sent => sent += 1,
                Forwarded::WaitingForKeyframe { layer: awaited } => {
                    wanted.insert(awaited);
                    if awaited == incoming.layer {
                        MediaCounters::add(&c.dropped_waiting_keyframe, 1);
                    }
                }
                Forwarded::NotSelected => {}
                Forwarded::NoCodec => MediaCounters::add(&c.dropped_no_codec, 1),
                Forwarded::TooOld => MediaCounters::add(&c.dropped_too_old, 1),
                Forwarded::WriteFailed => MediaCounters::add(&c.dropped_write_failed, 1),
                Forwarded::NotConnected => MediaCounters::add(&c.dropped_not_connected, 1),
                Forwarded::NotBound => MediaCounters::add(&c.dropped_not_negotiated, 1),
            }
        }
        if sent > 0 {
            MediaCounters::add(&c.packets_out, sent);
            let by_kind = if self.video {
                &c.video_packets_out
            } else {
                &c.audio_packets_out
            };
            MediaCounters::add(by_kind, sent);
            MediaCounters::add(&c.bytes_out, sent * incoming.packet.payload.len() as u64);
        }
        wanted
    }
}
