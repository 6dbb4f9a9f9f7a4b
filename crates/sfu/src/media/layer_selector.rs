//! Which simulcast layer one subscriber receives of one track, decided per packet.
//!
//! Three limits pick the target: what the subscriber asked for (`set_quality`), what its
//! bandwidth allows (the allocator), and what the publisher is sending now. The selector
//! moves to the target only at a keyframe of the target layer, and keeps forwarding the
//! layer it is on until then, so the picture never stops for a switch — unless bandwidth
//! no longer allows the layer it is on: then it stops forwarding that layer at once and
//! starts again at the target's keyframe. In the lab, four tracks going from `f` to `q` at a
//! 500 kbit/s cap went on sending `f` for seconds while the `q` keyframes came, 1.2–1.7
//! Mbit/s into the cap, and a fifth to a third of the subscriber's audio was lost behind
//! them; a short freeze of the video costs less than that. Layers are numbered
//! from 0, the lowest resolution; a track without simulcast has one layer. A subscriber
//! that has nothing yet starts on whichever layer up to the target sends a keyframe first,
//! then climbs: the first picture does not wait for the target layer's keyframe.

/// At most this many layers (`q`, `h`, `f`).
pub const MAX_LAYERS: u8 = 3;

/// A set of layers, bit `i` for layer `i`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerSet(pub u8);

impl LayerSet {
    pub fn all(count: u8) -> Self {
        LayerSet(((1u16 << count.min(8)) - 1) as u8)
    }

    pub fn contains(self, layer: u8) -> bool {
        layer < 8 && self.0 & (1 << layer) != 0
    }

    pub fn insert(&mut self, layer: u8) {
        if layer < 8 {
            self.0 |= 1 << layer;
        }
    }

    pub fn union(self, other: LayerSet) -> LayerSet {
        LayerSet(self.0 | other.0)
    }

    pub fn remove(&mut self, layer: u8) {
        if layer < 8 {
            self.0 &= !(1 << layer);
        }
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The highest layer in the set at or below `limit`.
    pub fn highest_at_or_below(self, limit: u8) -> Option<u8> {
        (0..=limit.min(7)).rev().find(|&l| self.contains(l))
    }

    pub fn lowest(self) -> Option<u8> {
        (0..8).find(|&l| self.contains(l))
    }

    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..8).filter(move |&l| self.contains(l))
    }
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward it. `switched` is set on the keyframe that starts a new layer (or starts
    /// forwarding), where the rewriter re-bases the numbering.
    Forward {
        switched: bool,
    },
    Drop,
}

#[derive(Debug, Clone)]
pub struct LayerSelector {
    top: u8,
    /// `None` is `off`.
    requested: Option<u8>,
    /// `None` is paused: not even the lowest layer fits the subscriber's bandwidth.
    allowed: Option<u8>,
    current: Option<u8>,
}

impl LayerSelector {
    /// A selector for a track of `layer_count` layers, wanting the highest.
    pub fn new(layer_count: u8) -> Self {
        let top = layer_count.clamp(1, MAX_LAYERS) - 1;
        LayerSelector {
            top,
            requested: Some(top),
            allowed: Some(top),
            current: None,
        }
    }

    pub fn layer_count(&self) -> u8 {
        self.top + 1
    }

    /// The subscriber's wish; layers above the top mean the top.
    pub fn set_requested(&mut self, layer: Option<u8>) {
        self.requested = layer.map(|l| l.min(self.top));
    }

    /// What bandwidth allows; `None` pauses the track.
    pub fn set_allowed(&mut self, layer: Option<u8>) {
        self.allowed = layer.map(|l| l.min(self.top));
    }

    pub fn requested(&self) -> Option<u8> {
        self.requested
    }

    pub fn allowed(&self) -> Option<u8> {
        self.allowed
    }

    /// The most this subscriber takes, whatever the publisher sends: `None` when off or
    /// paused. This is what the publisher must keep sending for it (dynacast).
    pub fn limit(&self) -> Option<u8> {
        Some(self.requested?.min(self.allowed?))
    }

    /// Stops forwarding until the next keyframe of the target layer.
    pub fn restart(&mut self) {
        self.current = None;
    }

    /// The layer being forwarded, if any.
    pub fn current(&self) -> Option<u8> {
        self.current
    }

    /// Where the selector is heading given the layers arriving now: the highest arriving
    /// layer within the limit, or else the lowest arriving one (something beats nothing).
    pub fn target(&self, arriving: LayerSet) -> Option<u8> {
        let limit = self.limit()?;
        arriving
            .highest_at_or_below(limit)
            .or_else(|| arriving.lowest())
    }

    /// The decision for a packet of `layer`.
    pub fn on_packet(&mut self, layer: u8, is_keyframe: bool, arriving: LayerSet) -> Decision {
        let Some(target) = self.target(arriving) else {
            self.current = None;
            return Decision::Drop;
        };
        if let (Some(current), Some(allowed)) = (self.current, self.allowed) {
            if current > allowed && target < current {
                // The path cannot carry this layer: nothing until the target's keyframe.
                self.current = None;
            }
        }
        let starts_here = match self.current {
            // Nothing forwarded yet: a keyframe of any layer up to the target shows a
            // picture now, and the selector climbs to the target at one of its keyframes.
            None => layer <= target,
            Some(current) => layer == target && current != target,
        };
        if starts_here && is_keyframe {
            self.current = Some(layer);
            return Decision::Forward { switched: true };
        }
        if self.current == Some(layer) {
            return Decision::Forward { switched: false };
        }
        Decision::Drop
    }

    /// The layer whose keyframe the selector is waiting for, if any.
    pub fn wants_keyframe(&self, arriving: LayerSet) -> Option<u8> {
        self.target(arriving).filter(|&t| self.current != Some(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: LayerSet = LayerSet(0b111);

    #[test]
    fn starts_at_a_keyframe_of_the_highest_layer() {
        let mut s = LayerSelector::new(3);
        assert_eq!(s.on_packet(2, false, ALL), Decision::Drop);
        assert_eq!(s.wants_keyframe(ALL), Some(2));
        assert_eq!(
            s.on_packet(2, true, ALL),
            Decision::Forward { switched: true }
        );
        assert_eq!(
            s.on_packet(2, false, ALL),
            Decision::Forward { switched: false }
        );
        assert_eq!(s.on_packet(1, false, ALL), Decision::Drop);
        assert_eq!(s.wants_keyframe(ALL), None);
    }

    #[test]
    fn a_new_subscriber_starts_on_the_first_keyframe_up_to_its_target_and_climbs() {
        let mut s = LayerSelector::new(3);
        s.set_requested(Some(1));
        // f is above what it wants: no start there.
        assert_eq!(s.on_packet(2, true, ALL), Decision::Drop);
        assert_eq!(
            s.on_packet(0, true, ALL),
            Decision::Forward { switched: true },
            "q's keyframe came first"
        );
        assert_eq!(s.current(), Some(0));
        assert_eq!(s.wants_keyframe(ALL), Some(1), "still heading for h");
        assert_eq!(
            s.on_packet(0, false, ALL),
            Decision::Forward { switched: false }
        );
        assert_eq!(s.on_packet(1, false, ALL), Decision::Drop);
        assert_eq!(
            s.on_packet(1, true, ALL),
            Decision::Forward { switched: true }
        );
        assert_eq!(s.on_packet(0, false, ALL), Decision::Drop);
        assert_eq!(s.wants_keyframe(ALL), None);
        // Restarted (a resume), it again takes the first keyframe it can.
        s.restart();
        assert_eq!(
            s.on_packet(0, true, ALL),
            Decision::Forward { switched: true }
        );
    }

    #[test]
    fn switch_down_waits_for_a_keyframe_and_keeps_the_old_layer_until_then() {
        let mut s = LayerSelector::new(3);
        s.on_packet(2, true, ALL);
        s.set_requested(Some(0));
        assert_eq!(s.wants_keyframe(ALL), Some(0));
        assert_eq!(
            s.on_packet(2, false, ALL),
            Decision::Forward { switched: false },
            "still on f"
        );
        assert_eq!(s.on_packet(0, false, ALL), Decision::Drop, "q delta");
        assert_eq!(
            s.on_packet(0, true, ALL),
            Decision::Forward { switched: true }
        );
        assert_eq!(s.on_packet(2, false, ALL), Decision::Drop);
        assert_eq!(s.current(), Some(0));
    }

    #[test]
    fn switch_down_for_bandwidth_stops_the_old_layer_at_once() {
        let mut s = LayerSelector::new(3);
        s.on_packet(2, true, ALL);
        s.set_allowed(Some(0));
        assert_eq!(
            s.on_packet(2, false, ALL),
            Decision::Drop,
            "f no longer fits"
        );
        assert_eq!(s.current(), None);
        assert_eq!(s.wants_keyframe(ALL), Some(0));
        assert_eq!(s.on_packet(1, true, ALL), Decision::Drop, "above what fits");
        assert_eq!(
            s.on_packet(0, true, ALL),
            Decision::Forward { switched: true }
        );
        assert_eq!(s.current(), Some(0));
        // Only f arrives: something beats nothing, even above what fits.
        let only_f = LayerSet(0b100);
        assert_eq!(
            s.on_packet(2, true, only_f),
            Decision::Forward { switched: true }
        );
        assert_eq!(
            s.on_packet(2, false, only_f),
            Decision::Forward { switched: false }
        );
    }

    #[test]
    fn bandwidth_and_request_both_limit() {
        let mut s = LayerSelector::new(3);
        s.set_allowed(Some(1));
        assert_eq!(s.target(ALL), Some(1));
        s.set_requested(Some(0));
        assert_eq!(s.target(ALL), Some(0));
        s.set_requested(Some(7));
        assert_eq!(s.limit(), Some(1));
    }

    #[test]
    fn a_layer_that_stops_arriving_is_replaced_by_the_next_one_down() {
        let mut s = LayerSelector::new(3);
        s.on_packet(2, true, ALL);
        let without_f = LayerSet(0b011);
        assert_eq!(s.target(without_f), Some(1));
        assert_eq!(s.wants_keyframe(without_f), Some(1));
        assert_eq!(
            s.on_packet(1, true, without_f),
            Decision::Forward { switched: true }
        );
        // f comes back: up again at its next keyframe.
        assert_eq!(s.on_packet(2, false, ALL), Decision::Drop);
        assert_eq!(
            s.on_packet(2, true, ALL),
            Decision::Forward { switched: true }
        );
    }

    #[test]
    fn falls_back_to_the_lowest_arriving_layer_when_none_is_within_the_limit() {
        let mut s = LayerSelector::new(3);
        s.set_requested(Some(0));
        assert_eq!(s.target(LayerSet(0b110)), Some(1));
    }

    #[test]
    fn off_and_paused_drop_everything_and_resume_at_a_keyframe() {
        let mut s = LayerSelector::new(3);
        s.on_packet(2, true, ALL);
        s.set_requested(None);
        assert_eq!(s.on_packet(2, true, ALL), Decision::Drop);
        assert_eq!(s.wants_keyframe(ALL), None);
        assert_eq!(s.limit(), None);
        s.set_requested(Some(2));
        s.set_allowed(None);
        assert_eq!(s.on_packet(2, true, ALL), Decision::Drop);
        s.set_allowed(Some(2));
        assert_eq!(s.on_packet(2, false, ALL), Decision::Drop);
        assert_eq!(
            s.on_packet(2, true, ALL),
            Decision::Forward { switched: true }
        );
    }

    #[test]
    fn single_layer_tracks_ignore_the_requested_level() {
        let mut s = LayerSelector::new(1);
        s.set_requested(Some(0));
        assert_eq!(s.target(LayerSet(1)), Some(0));
        s.set_requested(Some(2));
        assert_eq!(s.target(LayerSet(1)), Some(0));
        assert_eq!(
            s.on_packet(0, true, LayerSet(1)),
            Decision::Forward { switched: true }
        );
    }

    #[test]
    fn layer_sets() {
        assert_eq!(LayerSet::all(3), ALL);
        assert_eq!(LayerSet::all(1), LayerSet(1));
        assert_eq!(LayerSet(0b101).highest_at_or_below(1), Some(0));
        assert_eq!(LayerSet(0b100).highest_at_or_below(1), None);
        assert_eq!(LayerSet(0b100).lowest(), Some(2));
        assert_eq!(LayerSet(0b101).iter().collect::<Vec<_>>(), [0, 2]);
        assert!(LayerSet::default().is_empty());
    }
}
