//! A relay stream's packets kept, from its latest keyframe on, while the owner has not yet
//! said that the stream carries the layer its input is for (see [`super::layer_gate`]):
//! the owner switches a relay's stream at a keyframe and says so over the WebSocket, so the
//! keyframe may arrive first, and dropping it would make the edge's viewers wait for
//! another. A later keyframe starts the kept run afresh.
//!
//! Bounded: at most [`HOLD_PACKETS`] packets (the vector is allocated once, with the
//! stream); a run that outgrows it is dropped until the next keyframe.

/// Packets kept at most: a 1280x720 keyframe and the frames until the owner's message.
pub const HOLD_PACKETS: usize = 256;

#[derive(Debug)]
pub struct KeyframeHold<T> {
    packets: Vec<T>,
    /// The RTP timestamp of the keyframe the kept run starts with; `None`: nothing kept
    /// (until the next keyframe).
    keyframe: Option<u32>,
}

impl<T> KeyframeHold<T> {
    pub fn new() -> Self {
        KeyframeHold {
            packets: Vec::with_capacity(HOLD_PACKETS),
            keyframe: None,
        }
    }

    /// A packet of the unconfirmed stream, with its RTP timestamp and whether it starts (or
    /// continues, for codecs that mark every fragment) a keyframe.
    pub fn hold(&mut self, packet: T, timestamp: u32, keyframe: bool) {
        if keyframe && self.keyframe != Some(timestamp) {
            self.packets.clear();
            self.keyframe = Some(timestamp);
        } else if self.keyframe.is_none() {
            return;
        } else if self.packets.len() == HOLD_PACKETS {
            self.clear();
            return;
        }
        self.packets.push(packet);
    }

    /// The kept run, oldest first, emptied.
    pub fn take(&mut self) -> std::vec::Drain<'_, T> {
        self.keyframe = None;
        self.packets.drain(..)
    }

    pub fn clear(&mut self) {
        self.keyframe = None;
        self.packets.clear();
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}

impl<T> Default for KeyframeHold<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_keyframe_and_what_follows_it() {
        let mut h = KeyframeHold::new();
        h.hold(1, 100, false); // before any keyframe: nothing to start a picture with
        h.hold(2, 200, true);
        h.hold(3, 200, false);
        h.hold(4, 300, false);
        assert_eq!(h.take().collect::<Vec<_>>(), [2, 3, 4]);
        assert!(h.is_empty());
        // Taken: a new run needs a new keyframe.
        h.hold(5, 400, false);
        assert!(h.is_empty());
    }

    #[test]
    fn a_later_keyframe_starts_the_run_afresh_but_not_its_own_fragments() {
        let mut h = KeyframeHold::new();
        h.hold(1, 100, true);
        h.hold(2, 200, false);
        h.hold(3, 300, true);
        // H.264 marks every fragment of an IDR: the same frame, the same run.
        h.hold(4, 300, true);
        h.hold(5, 400, false);
        assert_eq!(h.take().collect::<Vec<_>>(), [3, 4, 5]);
    }

    #[test]
    fn a_run_too_long_to_keep_is_dropped_until_the_next_keyframe() {
        let mut h = KeyframeHold::new();
        h.hold(0, 0, true);
        for i in 1..HOLD_PACKETS {
            h.hold(i, i as u32, false);
        }
        assert_eq!(h.len(), HOLD_PACKETS);
        h.hold(HOLD_PACKETS, 9999, false);
        assert!(h.is_empty());
        h.hold(1, 10_000, false);
        assert!(h.is_empty());
        h.hold(2, 10_001, true);
        assert_eq!(h.take().collect::<Vec<_>>(), [2]);
    }
}
