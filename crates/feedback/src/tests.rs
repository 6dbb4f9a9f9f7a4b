use super::*;
use proptest::prelude::*;
use std::time::Duration;
use webrtc_util::marshal::{Marshal, MarshalSize, Unmarshal};

/// What a feedback says about one sequence number: its arrival in µs on the feedback's
/// clock, or `None` for lost.
type Report = Vec<(u16, Option<i64>)>;

/// Decodes the feedback as it travels: marshalled, unmarshalled by the rtcp crate, then
/// walked status by status the way a sender's estimator does.
fn decode(feedback: &TransportLayerCc) -> Report {
    let wire = feedback.marshal().expect("marshal");
    assert_eq!(wire.len(), feedback.marshal_size());
    assert!(wire.len() <= 1200, "{} bytes", wire.len());
    let parsed = TransportLayerCc::unmarshal(&mut wire.clone()).expect("unmarshal");
    assert_eq!(&parsed.packet_chunks, &feedback.packet_chunks);
    let mut statuses = Vec::new();
    for chunk in &parsed.packet_chunks {
        match chunk {
            PacketStatusChunk::RunLengthChunk(run) => statuses.extend(std::iter::repeat_n(
                run.packet_status_symbol,
                usize::from(run.run_length),
            )),
            PacketStatusChunk::StatusVectorChunk(v) => {
                statuses.extend(v.symbol_list.iter().copied())
            }
        }
    }
    statuses.truncate(usize::from(parsed.packet_status_count));
    assert_eq!(statuses.len(), usize::from(parsed.packet_status_count));
    let mut deltas = parsed.recv_deltas.iter();
    let mut at = i64::from(parsed.reference_time) * REFERENCE_UNIT_US;
    let mut report = Vec::new();
    for (i, status) in statuses.into_iter().enumerate() {
        let seq = parsed.base_sequence_number.wrapping_add(i as u16);
        match status {
            SymbolTypeTcc::PacketNotReceived => report.push((seq, None)),
            _ => {
                at += deltas.next().expect("a delta per received packet").delta;
                report.push((seq, Some(at)));
            }
        }
    }
    report
}

fn build(recorder: &mut FeedbackRecorder) -> Vec<TransportLayerCc> {
    let mut out = Vec::new();
    recorder.build(7, 9, &mut out);
    out
}

fn decode_all(feedbacks: &[TransportLayerCc]) -> Report {
    feedbacks.iter().flat_map(decode).collect()
}

#[test]
fn arrival_times_survive_to_the_quarter_millisecond_without_drift() {
    let t0 = Instant::now();
    let mut r = FeedbackRecorder::new(t0);
    // 300 packets 1.37 ms apart: each delta rounds, the sum must not drift.
    for i in 0..300u16 {
        r.record(
            1000 + i,
            t0 + Duration::from_micros(5_000 + 1_370 * u64::from(i)),
        );
    }
    let report = decode_all(&build(&mut r));
    assert_eq!(report.len(), 300);
    for (i, (seq, at)) in report.iter().enumerate() {
        assert_eq!(*seq, 1000 + i as u16);
        let truth = 5_000 + 1_370 * i as i64;
        let got = at.expect("received");
        assert!(
            (got - truth).abs() <= TICK_US / 2,
            "seq {seq}: {got} vs {truth}"
        );
    }
}

#[test]
fn a_packet_lost_between_two_intervals_is_reported_lost() {
    let t0 = Instant::now();
    let mut r = FeedbackRecorder::new(t0);
    for seq in [10, 11, 12] {
        r.record(seq, t0 + Duration::from_millis(u64::from(seq)));
    }
    assert_eq!(decode_all(&build(&mut r)).len(), 3);
    for seq in [15, 16] {
        r.record(seq, t0 + Duration::from_millis(u64::from(seq)));
    }
    let report = decode_all(&build(&mut r));
    let statuses: Vec<(u16, bool)> = report.iter().map(|(s, a)| (*s, a.is_some())).collect();
    assert_eq!(
        statuses,
        vec![(13, false), (14, false), (15, true), (16, true)]
    );
}

#[test]
fn sequence_numbers_wrap() {
    let t0 = Instant::now();
    let mut r = FeedbackRecorder::new(t0);
    for (i, seq) in [65_534u16, 65_535, 1, 2].into_iter().enumerate() {
        r.record(seq, t0 + Duration::from_millis(i as u64));
    }
    let report = decode_all(&build(&mut r));
    let seqs: Vec<(u16, bool)> = report.iter().map(|(s, a)| (*s, a.is_some())).collect();
    assert_eq!(
        seqs,
        vec![
            (65_534, true),
            (65_535, true),
            (0, false),
            (1, true),
            (2, true)
        ]
    );
}

#[test]
fn reordered_arrivals_are_reported_in_sequence_with_negative_deltas() {
    let t0 = Instant::now();
    let mut r = FeedbackRecorder::new(t0);
    r.record(3, t0 + Duration::from_millis(10));
    r.record(1, t0 + Duration::from_millis(12));
    r.record(2, t0 + Duration::from_millis(14));
    r.record(2, t0 + Duration::from_millis(15));
    let feedbacks = build(&mut r);
    let report = decode_all(&feedbacks);
    let base = report[0].1.expect("received");
    let relative: Vec<(u16, i64)> = report
        .iter()
        .map(|(s, a)| (*s, a.expect("received") - base))
        .collect();
    assert_eq!(relative, vec![(1, 0), (2, 2_000), (3, -2_000)]);
    assert!(feedbacks[0]
        .recv_deltas
        .iter()
        .any(|d| d.type_tcc_packet == SymbolTypeTcc::PacketReceivedLargeDelta));
}

#[test]
fn a_packet_arriving_after_it_was_reported_lost_is_counted_not_reported() {
    let t0 = Instant::now();
    let mut r = FeedbackRecorder::new(t0);
    r.record(1, t0);
    r.record(3, t0);
    build(&mut r);
    r.record(2, t0 + Duration::from_millis(5));
    assert!(r.is_empty());
    assert_eq!(r.late_packets(), 1);
    assert!(build(&mut r).is_empty(), "nothing new to say");
}

#[test]
fn a_long_silence_is_not_reported_as_thousands_of_losses() {
    let t0 = Instant::now();
    let mut r = FeedbackRecorder::new(t0);
    r.record(100, t0);
    build(&mut r);
    r.record(100 + 0x5000, t0 + Duration::from_secs(30));
    let report = decode_all(&build(&mut r));
    assert_eq!(report, vec![(100 + 0x5000, report[0].1)]);
    // A shorter burst of losses is reported in full, in a few bytes.
    r.record(100 + 0x5000 + 3_001, t0 + Duration::from_secs(31));
    let feedbacks = build(&mut r);
    assert!(feedbacks[0].marshal_size() < 40);
    assert_eq!(decode_all(&feedbacks).len(), 3_001);
}

#[test]
fn gaps_in_time_beyond_eight_seconds_start_a_new_feedback() {
    let t0 = Instant::now();
    let mut r = FeedbackRecorder::new(t0);
    r.record(1, t0);
    r.record(2, t0 + Duration::from_secs(9));
    let feedbacks = build(&mut r);
    assert_eq!(feedbacks.len(), 2);
    let report = decode_all(&feedbacks);
    assert_eq!(
        report[1].1.expect("received") - report[0].1.expect("received"),
        9_000_000
    );
}

#[test]
fn many_packets_split_into_feedbacks_that_fit_an_mtu_and_count_up() {
    let t0 = Instant::now();
    let mut r = FeedbackRecorder::new(t0);
    for i in 0..2_000u16 {
        // Every third packet lost, every delta large (70 ms apart).
        if i % 3 != 0 {
            r.record(i, t0 + Duration::from_millis(70 * u64::from(i)));
        }
    }
    let feedbacks = build(&mut r);
    assert!(feedbacks.len() > 1);
    for pair in feedbacks.windows(2) {
        assert_eq!(pair[1].fb_pkt_count, pair[0].fb_pkt_count.wrapping_add(1));
        assert_eq!(
            pair[1].base_sequence_number,
            pair[0].base_sequence_number + pair[0].packet_status_count
        );
    }
    let report = decode_all(&feedbacks);
    assert_eq!(report.len(), 2_000 - 1, "from the first received packet on");
    assert_eq!(report.iter().filter(|(_, a)| a.is_some()).count(), 1_333);
}

#[test]
fn recording_is_bounded_between_builds() {
    let t0 = Instant::now();
    let mut r = FeedbackRecorder::new(t0);
    for i in 0..(MAX_PENDING as u16 + 500) {
        r.record(i, t0);
    }
    assert_eq!(r.pending.len(), MAX_PENDING);
}

proptest! {
    /// Whatever arrives, in whatever order, each build reports exactly the sequence numbers
    /// from where the last one stopped to the highest received, each received one at its
    /// arrival time (to the rounding of 250 µs) and the others lost.
    #[test]
    fn reports_match_what_arrived(
        batches in prop::collection::vec(
            prop::collection::vec((0u16..4, 0u64..80_000, any::<bool>()), 1..80),
            1..6,
        ),
        start in any::<u16>(),
    ) {
        let t0 = Instant::now();
        let mut r = FeedbackRecorder::new(t0);
        let mut seq = start;
        let mut at = 0u64;
        let mut reported_to: Option<u16> = None;
        for batch in batches {
            let mut arrived = std::collections::HashMap::new();
            let mut first_arrived = None;
            for (step, gap_us, swap) in batch {
                seq = seq.wrapping_add(step.max(1));
                at += gap_us;
                arrived.insert(seq, at);
                first_arrived.get_or_insert(seq);
                if swap {
                    // Record out of order: this one before the previous.
                    let earlier = seq.wrapping_sub(1);
                    if let Some(&t) = arrived.get(&earlier) {
                        r.record(seq, t0 + Duration::from_micros(at));
                        r.record(earlier, t0 + Duration::from_micros(t));
                        continue;
                    }
                }
                r.record(seq, t0 + Duration::from_micros(at));
            }
            let report = decode_all(&build(&mut r));
            // The batch's first sequence number in arrival order: keys sorted as integers
            // would put 0 before 65533 when a batch wraps.
            let first = reported_to.map_or(first_arrived.unwrap(), |s| s.wrapping_add(1));
            prop_assert_eq!(report[0].0, first);
            prop_assert_eq!(report.last().unwrap().0, seq);
            let base = report.iter().find_map(|(s, a)| a.map(|a| (*s, a))).unwrap();
            for (s, got) in &report {
                match (arrived.get(s), got) {
                    (Some(truth), Some(got)) => {
                        let expected = *truth as i64 - arrived[&base.0] as i64;
                        prop_assert!((got - base.1 - expected).abs() <= TICK_US, "seq {}", s);
                    }
                    (None, None) => {}
                    (truth, got) => prop_assert!(false, "seq {}: {:?} vs {:?}", s, truth, got),
                }
            }
            reported_to = Some(seq);
        }
    }
}
