//! The last few hundred packets of one published video stream, kept once for all of its
//! subscribers, so a subscriber's NACK is answered without asking the publisher.
//!
//! Sizing: a retransmission is only useful within roughly one round trip plus the
//! receiver's jitter-buffer patience (well under a second). At 2.5 Mbps of 1.2 kB packets a
//! publisher sends about 260 packets/s, so 256 slots keep about a second (more at lower
//! rates). It is most of a publisher's memory: 512 slots measured 0.3 MiB more per
//! participant in a ten-person meeting (`docs/benchmarks.md`). webrtc-rs's NACK responder
//! would instead keep 8192 slots per *subscriber* stream.
use rtp::packet::Packet;

pub const VIDEO_SLOTS: usize = 256;

pub struct PacketCache {
    slots: Box<[Option<Packet>]>,
}

impl PacketCache {
    /// `slots` is rounded up to a power of two.
    pub fn new(slots: usize) -> Self {
        let n = slots.max(1).next_power_of_two();
        PacketCache {
            slots: (0..n).map(|_| None).collect(),
        }
    }

    fn index(&self, seq: u16) -> usize {
        usize::from(seq) & (self.slots.len() - 1)
    }

    /// Keeps `packet`, replacing whatever held its slot.
    pub fn insert(&mut self, packet: Packet) {
        let i = self.index(packet.header.sequence_number);
        self.slots[i] = Some(packet);
    }

    /// The packet with this sequence number, if it is still held.
    pub fn get(&self, seq: u16) -> Option<&Packet> {
        self.slots[self.index(seq)]
            .as_ref()
            .filter(|p| p.header.sequence_number == seq)
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn packet(seq: u16) -> Packet {
        let mut p = Packet::default();
        p.header.sequence_number = seq;
        p.payload = Bytes::from(vec![seq as u8; 4]);
        p
    }

    #[test]
    fn keeps_recent_packets_and_forgets_overwritten_ones() {
        let mut c = PacketCache::new(4);
        for seq in 65_533..=65_535 {
            c.insert(packet(seq));
        }
        c.insert(packet(0));
        c.insert(packet(1));
        assert_eq!(c.capacity(), 4);
        assert!(c.get(65_533).is_none(), "slot reused by seq 1");
        assert_eq!(
            c.get(65_534).map(|p| p.header.sequence_number),
            Some(65_534)
        );
        assert_eq!(c.get(1).map(|p| p.payload[0]), Some(1));
        assert!(c.get(5).is_none());
    }

    #[test]
    fn rounds_up_to_power_of_two() {
        assert_eq!(PacketCache::new(500).capacity(), 512);
        assert_eq!(PacketCache::new(0).capacity(), 1);
    }
}
