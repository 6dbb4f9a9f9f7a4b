//! Whether a VP8 stream's picture ids run on the way a decoder needs them. Between two
//! packets with consecutive sequence numbers, the picture id stays the same (one picture)
//! or goes up by one (the next picture). A forwarder that renumbers ids wrongly (at a
//! layer switch) breaks that without losing a packet, and a real decoder then drops every
//! picture until the next keyframe, while sequence numbers and packet gaps look perfect.
use roomcast_codec::vp8;

const PICTURE_ID_MASK: u16 = 0x7fff;

#[derive(Debug, Default)]
pub(crate) struct PictureIds {
    /// The newest packet: sequence number, RTP timestamp and picture id.
    newest: Option<(u16, u32, u16)>,
    /// Packets whose picture id broke the run.
    pub(crate) breaks: u64,
}

impl PictureIds {
    /// A new stream (SSRC): its run starts afresh; the breaks counted so far stay.
    pub(crate) fn restart(&mut self) {
        self.newest = None;
    }

    /// One packet of the stream, in arrival order; an empty `payload` is padding, which
    /// takes a sequence number and belongs to no picture.
    pub(crate) fn record(&mut self, seq: u16, timestamp: u32, payload: &[u8]) {
        let newest = self.newest;
        if let Some((newest_seq, _, _)) = newest {
            if seq.wrapping_sub(newest_seq) as i16 <= 0 {
                // Late (reordered, retransmitted) or a duplicate: the run goes on from the newest.
                return;
            }
        }
        let consecutive = newest.filter(|(newest_seq, _, _)| seq == newest_seq.wrapping_add(1));
        if payload.is_empty() {
            self.newest = consecutive.map(|(_, ts, id)| (seq, ts, id));
            return;
        }
        let Some(id) = vp8::descriptor_fields(payload)
            .and_then(|f| f.picture_id)
            .map(|(_, id, _)| id)
        else {
            self.newest = None;
            return;
        };
        if let Some((_, newest_ts, newest_id)) = consecutive {
            let expected = if timestamp == newest_ts {
                newest_id
            } else {
                newest_id.wrapping_add(1) & PICTURE_ID_MASK
            };
            if id != expected {
                self.breaks += 1;
            }
        }
        self.newest = Some((seq, timestamp, id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(id: u16) -> Vec<u8> {
        if id < 128 {
            vec![0x90, 0x80, id as u8, 0xaa]
        } else {
            vec![0x90, 0x80, 0x80 | (id >> 8) as u8, id as u8, 0xaa]
        }
    }

    #[test]
    fn ids_that_run_on_across_the_7_bit_form_padding_loss_and_late_packets_are_no_break() {
        let mut ids = PictureIds::default();
        // Two packets a picture, 7-bit ids into 15-bit ones.
        for (i, id) in (120u16..140).enumerate() {
            let seq = 1000 + 2 * i as u16;
            ids.record(seq, u32::from(id) * 3000, &payload(id));
            ids.record(seq + 1, u32::from(id) * 3000, &payload(id));
        }
        // Padding between pictures, then the next picture.
        ids.record(1040, 139 * 3000, &[]);
        ids.record(1041, 140 * 3000, &payload(140));
        // A lost picture (a sequence gap) says nothing; the late packet neither.
        ids.record(1044, 142 * 3000, &payload(142));
        ids.record(1042, 141 * 3000, &payload(141));
        ids.record(1045, 143 * 3000, &payload(143));
        assert_eq!(ids.breaks, 0);
    }

    #[test]
    fn an_id_written_back_in_7_bits_past_127_is_a_break() {
        let mut ids = PictureIds::default();
        ids.record(1, 0, &payload(127));
        // 128 written in 7 bits: 0.
        ids.record(2, 3000, &[0x90, 0x80, 0x00, 0xaa]);
        ids.record(3, 6000, &payload(129));
        assert_eq!(ids.breaks, 2, "back to 0, then on from 0 to 129");
    }
}
