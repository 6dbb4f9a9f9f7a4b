//! Dynacast: tells a simulcast publisher which of its layers anyone takes, so it stops
//! encoding and sending the others. A layer is added back at once when someone needs it,
//! and dropped only after nobody has needed it for a while, so a subscriber flicking
//! between sizes does not make the publisher's encoder flap.
use std::time::{Duration, Instant};

use super::layer_selector::LayerSet;

/// How long a layer must be unneeded before the publisher is told to stop it.
pub const STOP_DELAY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Dynacast {
    layers: u8,
    /// What the publisher was last told (at first: everything, as it starts).
    announced: LayerSet,
    unneeded_since: [Option<Instant>; 8],
}

impl Dynacast {
    pub fn new(layers: u8) -> Self {
        Dynacast {
            layers,
            announced: LayerSet::all(layers),
            unneeded_since: [None; 8],
        }
    }

    /// Given the layers needed now, the set to announce, when it changed.
    pub fn update(&mut self, now: Instant, needed: LayerSet) -> Option<LayerSet> {
        let mut next = self.announced;
        for layer in 0..self.layers.min(8) {
            let since = &mut self.unneeded_since[usize::from(layer)];
            if needed.contains(layer) {
                *since = None;
                next.insert(layer);
            } else if now.saturating_duration_since(*since.get_or_insert(now)) >= STOP_DELAY {
                next.remove(layer);
            }
        }
        (next != self.announced).then(|| {
            self.announced = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_unneeded_layers_after_the_delay_and_restarts_them_at_once() {
        let t0 = Instant::now();
        let mut d = Dynacast::new(3);
        let only_q = LayerSet(0b001);
        assert_eq!(d.update(t0, only_q), None, "not yet");
        assert_eq!(d.update(t0 + Duration::from_secs(1), only_q), None);
        assert_eq!(d.update(t0 + STOP_DELAY, only_q), Some(only_q));
        assert_eq!(
            d.update(t0 + Duration::from_secs(3), only_q),
            None,
            "said once"
        );
        let q_and_f = LayerSet(0b101);
        assert_eq!(
            d.update(t0 + Duration::from_secs(4), q_and_f),
            Some(q_and_f),
            "at once"
        );
    }

    #[test]
    fn a_layer_needed_again_before_the_delay_is_never_stopped() {
        let t0 = Instant::now();
        let mut d = Dynacast::new(3);
        d.update(t0, LayerSet(0b001));
        assert_eq!(d.update(t0 + Duration::from_secs(1), LayerSet(0b111)), None);
        assert_eq!(d.update(t0 + Duration::from_secs(2), LayerSet(0b111)), None);
        assert_eq!(
            d.update(t0 + Duration::from_millis(2500), LayerSet(0b011)),
            None
        );
    }
}
