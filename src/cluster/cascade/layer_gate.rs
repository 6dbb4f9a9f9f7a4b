//! Which packets of a relay stream enter the input of the layer the stream is for.
//!
//! The owner says which layer it sends a relay (`track_layer`'s `layer`) and the sequence
//! number of the keyframe that layer started at (`seq`): the packets from that one on are
//! the layer, the ones before it the previous layer's. The message and the media race (one
//! over the WebSocket, the other over SRTP), so both orders happen:
//! - the keyframe first: the stream's packets since its latest keyframe are kept
//!   ([`KeyframeHold`]) while its label says another layer, and when the label comes, those
//!   from `seq` on pass first, in order (the keyframe is not lost, and nobody waits for
//!   another);
//! - the label first: packets before `seq` (the previous layer's, still in flight) are
//!   kept or dropped, and the stream passes from `seq` on.
//!
//! Once a packet at or after `seq` has passed, the stream passes without comparing
//! numbers until the label changes. An owner that gives no `seq` is taken at its word from
//! the label on (nothing kept is replayed).
use std::sync::atomic::{AtomicU32, Ordering};

use super::keyframe_hold::KeyframeHold;

/// What the owner last said about one relay stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Label {
    pub layer: Option<u8>,
    pub seq: Option<u16>,
}

const HAS_LAYER: u32 = 1 << 24;
const HAS_SEQ: u32 = 1 << 25;

impl Label {
    /// In one word, for an `AtomicU32` the stream's reader loads per packet.
    pub fn pack(self) -> u32 {
        let layer = self.layer.map_or(0, |l| HAS_LAYER | u32::from(l) << 16);
        let seq = self.seq.map_or(0, |s| HAS_SEQ | u32::from(s));
        layer | seq
    }

    pub fn unpack(word: u32) -> Label {
        Label {
            layer: (word & HAS_LAYER != 0).then_some((word >> 16) as u8),
            seq: (word & HAS_SEQ != 0).then_some(word as u16),
        }
    }

    pub fn load(word: &AtomicU32) -> Label {
        Label::unpack(word.load(Ordering::Relaxed))
    }
}

/// Whether sequence number `seq` is `start` or after it (within half the number space).
fn at_or_after(seq: u16, start: u16) -> bool {
    seq.wrapping_sub(start) < 0x8000
}

#[derive(Debug)]
pub struct LayerGate<T> {
    layer: u8,
    held: KeyframeHold<(T, u16)>,
    /// The `seq` of the label whose start this stream has passed.
    passed: Option<u16>,
}

impl<T> LayerGate<T> {
    /// For the stream of `layer`.
    pub fn new(layer: u8) -> Self {
        LayerGate {
            layer,
            held: KeyframeHold::new(),
            passed: None,
        }
    }

    /// One packet of the stream (its sequence number and RTP timestamp, and whether it
    /// starts a keyframe) under the owner's latest `label`: gives `pass` what enters the
    /// input now, oldest first (packets kept from before the label, then this one), if
    /// anything.
    pub fn admit(
        &mut self,
        label: Label,
        packet: T,
        (seq, timestamp, keyframe): (u16, u32, bool),
        mut pass: impl FnMut(T),
    ) {
        if label.layer != Some(self.layer) {
            self.passed = None;
            self.held.hold((packet, seq), timestamp, keyframe);
            return;
        }
        let Some(start) = label.seq else {
            self.held.clear();
            pass(packet);
            return;
        };
        if self.passed == Some(start) {
            pass(packet);
            return;
        }
        if !self.held.is_empty() {
            for (kept, kept_seq) in self.held.take() {
                if at_or_after(kept_seq, start) {
                    self.passed = Some(start);
                    pass(kept);
                }
            }
        }
        if at_or_after(seq, start) {
            self.passed = Some(start);
            pass(packet);
        } else {
            // The previous layer's, sent before the switch.
            self.held.hold((packet, seq), timestamp, keyframe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Label = Label {
        layer: None,
        seq: None,
    };

    fn label(layer: u8, seq: u16) -> Label {
        Label {
            layer: Some(layer),
            seq: Some(seq),
        }
    }

    /// Packets are their sequence numbers; a keyframe is a new timestamp with `key`.
    fn admit(gate: &mut LayerGate<u16>, label: Label, seq: u16, key: bool) -> Vec<u16> {
        let mut passed = Vec::new();
        gate.admit(label, seq, (seq, u32::from(seq) * 10, key), |p| {
            passed.push(p)
        });
        passed
    }

    #[test]
    fn labels_pack_into_a_word() {
        for l in [
            NONE,
            label(0, 0),
            label(2, 65535),
            Label {
                layer: Some(1),
                seq: None,
            },
        ] {
            assert_eq!(Label::unpack(l.pack()), l);
        }
    }

    #[test]
    fn the_switch_keyframe_that_came_before_its_label_passes_when_the_label_comes() {
        let mut g = LayerGate::new(1);
        // The owner still sends layer 0 (its keyframe at 10), then switches at 20.
        assert!(admit(&mut g, label(0, 10), 10, true).is_empty());
        assert!(admit(&mut g, label(0, 10), 11, false).is_empty());
        assert!(admit(&mut g, label(0, 10), 20, true).is_empty());
        assert!(admit(&mut g, label(0, 10), 21, false).is_empty());
        // The label says layer 1 from 20: the keyframe and what followed pass first.
        assert_eq!(admit(&mut g, label(1, 20), 22, false), [20, 21, 22]);
        assert_eq!(admit(&mut g, label(1, 20), 23, false), [23]);
    }

    #[test]
    fn a_label_before_its_keyframe_keeps_the_previous_layers_packets_out() {
        let mut g = LayerGate::new(1);
        assert!(admit(&mut g, label(0, 10), 10, true).is_empty());
        assert!(admit(&mut g, label(0, 10), 11, false).is_empty());
        // The label comes first: 12 and 13 (layer 0, in flight) do not pass, and neither
        // does layer 0's kept keyframe.
        assert!(admit(&mut g, label(1, 14), 12, false).is_empty());
        assert!(admit(&mut g, label(1, 14), 13, true).is_empty());
        assert_eq!(admit(&mut g, label(1, 14), 14, true), [14]);
        assert_eq!(admit(&mut g, label(1, 14), 15, false), [15]);
    }

    #[test]
    fn once_passed_the_stream_flows_across_the_number_wrap() {
        let mut g = LayerGate::new(2);
        assert_eq!(admit(&mut g, label(2, 65534), 65534, true), [65534]);
        for seq in (0..40_000u32).map(|i| (65535 + i) as u16) {
            assert_eq!(admit(&mut g, label(2, 65534), seq, false), [seq]);
        }
    }

    #[test]
    fn another_layer_or_none_stops_the_stream_and_without_seq_it_passes_from_the_label() {
        let mut g = LayerGate::new(0);
        assert_eq!(admit(&mut g, label(0, 5), 5, true), [5]);
        assert!(admit(&mut g, label(2, 9), 9, true).is_empty());
        assert!(admit(&mut g, NONE, 10, false).is_empty());
        // An owner that gives no number: from the label on, nothing kept replayed.
        let old = Label {
            layer: Some(0),
            seq: None,
        };
        assert_eq!(admit(&mut g, old, 11, false), [11]);
    }
}
