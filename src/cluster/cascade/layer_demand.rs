//! Which layers of one mirrored video track an edge asks the room's node for, each on its
//! own relay: the layers its viewers need (see `PublishedTrack::demanded_layers`), the
//! lowest while it has subscribers but none takes any (a paused viewer's estimate has
//! media to grow on), and a layer no longer needed only [`HOLD`] later (a viewer whose
//! bandwidth wavers does not turn streams on and off at the owner).
use std::time::{Duration, Instant};

use roomcast_sfu::media::layer_selector::LayerSet;

/// Simulcast layers at most, each a stream of its own across the relays.
pub const LAYERS: usize = 3;
/// How long a layer stays asked for after the last viewer here stopped needing it.
pub const HOLD: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct LayerDemand {
    /// Per layer: when a viewer here last needed it.
    wanted_at: [Option<Instant>; LAYERS],
}

impl LayerDemand {
    /// For each layer's relay: the layer to ask for, or `None` (off). A track without
    /// simulcast (`layer_count` 1) is one stream, on the first relay.
    pub fn update(
        &mut self,
        now: Instant,
        layer_count: u8,
        subscribed: bool,
        needed: LayerSet,
    ) -> [Option<u8>; LAYERS] {
        let mut asks = [None; LAYERS];
        if layer_count < 2 {
            asks[0] = subscribed.then_some(0);
            return asks;
        }
        let mut needed = needed;
        if subscribed && needed.is_empty() {
            needed.insert(0);
        }
        for (layer, (wanted_at, ask)) in self.wanted_at.iter_mut().zip(&mut asks).enumerate() {
            let layer = layer as u8;
            if layer >= layer_count || !subscribed {
                *wanted_at = None;
            } else if needed.contains(layer) {
                *wanted_at = Some(now);
            }
            *ask = wanted_at
                .is_some_and(|at| now.saturating_duration_since(at) < HOLD)
                .then_some(layer);
        }
        asks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(layers: &[u8]) -> LayerSet {
        let mut s = LayerSet::default();
        for &l in layers {
            s.insert(l);
        }
        s
    }

    #[test]
    fn asks_each_needed_layer_on_its_relay() {
        let mut d = LayerDemand::default();
        let t0 = Instant::now();
        assert_eq!(
            d.update(t0, 3, true, set(&[0, 2])),
            [Some(0), None, Some(2)]
        );
        assert_eq!(
            d.update(t0, 3, true, set(&[1])),
            [Some(0), Some(1), Some(2)]
        );
    }

    #[test]
    fn a_layer_no_longer_needed_stops_after_the_hold() {
        let mut d = LayerDemand::default();
        let t0 = Instant::now();
        d.update(t0, 3, true, set(&[0, 2]));
        let later = t0 + HOLD - Duration::from_millis(1);
        assert_eq!(
            d.update(later, 3, true, set(&[2])),
            [Some(0), None, Some(2)]
        );
        assert_eq!(
            d.update(t0 + HOLD, 3, true, set(&[2])),
            [None, None, Some(2)]
        );
    }

    #[test]
    fn subscribers_taking_nothing_keep_the_lowest_and_none_turn_all_off_at_once() {
        let mut d = LayerDemand::default();
        let t0 = Instant::now();
        d.update(t0, 3, true, set(&[2]));
        assert_eq!(d.update(t0, 3, true, set(&[])), [Some(0), None, Some(2)]);
        assert_eq!(d.update(t0, 3, false, set(&[])), [None, None, None]);
    }

    #[test]
    fn a_track_without_simulcast_is_one_stream_on_the_first_relay() {
        let mut d = LayerDemand::default();
        let t0 = Instant::now();
        assert_eq!(d.update(t0, 1, true, set(&[0])), [Some(0), None, None]);
        assert_eq!(d.update(t0, 1, false, set(&[])), [None, None, None]);
    }
}
