//! The estimator against a simulated path: packets are recorded in a real `SendHistory`,
//! carried through a bottleneck queue, reported in transport-cc feedback built with the
//! rtcp crate's types, parsed by `FeedbackParser` and fed to the estimator, all on a fake
//! clock.

use std::collections::VecDeque;

use super::*;
use crate::bandwidth::feedback::FeedbackParser;
use crate::bandwidth::send_history::SendHistory;
use crate::bandwidth::test_util::{build_feedback, Lcg};

const PACKET: usize = 1_200;
/// The receiver's clock is unrelated to ours; only differences may matter.
const RECEIVER_CLOCK_OFFSET_US: i64 = 1_000_000_000;
const FEEDBACK_INTERVAL_US: i64 = 50_000;
/// Feedback takes this long to come back.
const RETURN_DELAY_US: i64 = 20_000;

/// A bottleneck: a FIFO queue drained at `capacity_bps`, then a fixed propagation delay.
struct Link {
    capacity_bps: f64,
    propagation_us: i64,
    /// Tail drop once the queue holds this much delay.
    max_queue_us: i64,
    random_loss: f64,
    free_at_us: f64,
    dropped: u32,
}

impl Link {
    fn new(capacity_bps: f64) -> Self {
        Link {
            capacity_bps,
            propagation_us: 20_000,
            max_queue_us: 300_000,
            random_loss: 0.0,
            free_at_us: 0.0,
            dropped: 0,
        }
    }

    fn carry(&mut self, sent_us: i64, size: usize, rng: &mut Lcg) -> Option<i64> {
        if rng.unit() < self.random_loss {
            self.dropped += 1;
            return None;
        }
        let start = self.free_at_us.max(sent_us as f64);
        if start - sent_us as f64 > self.max_queue_us as f64 {
            self.dropped += 1;
            return None;
        }
        self.free_at_us = start + size as f64 * 8e6 / self.capacity_bps;
        Some(self.free_at_us as i64 + self.propagation_us)
    }
}

#[derive(Clone, Copy)]
enum Sender {
    Fixed(f64),
    AtEstimate,
}

struct Sim {
    t0: Instant,
    now_us: i64,
    history: SendHistory,
    parser: FeedbackParser,
    estimator: BandwidthEstimator,
    link: Link,
    rng: Lcg,
    seq: u16,
    in_flight: VecDeque<(u16, Option<i64>)>,
    next_send_us: f64,
    next_feedback_us: i64,
    results: Vec<PacketResult>,
    overuse_seen: bool,
    /// (seconds, estimate) every 100 ms.
    samples: Vec<(f64, u64)>,
}

impl Sim {
    fn new(link: Link, initial_bps: u64) -> Self {
        let t0 = Instant::now();
        let config = EstimatorConfig {
            initial_bps,
            min_bps: 30_000,
            max_bps: 50_000_000,
        };
        Sim {
            t0,
            now_us: 0,
            history: SendHistory::new(t0),
            parser: FeedbackParser::new(),
            estimator: BandwidthEstimator::new(config, t0),
            link,
            rng: Lcg(42),
            seq: 65_000, // wraps early on
            in_flight: VecDeque::new(),
            next_send_us: 0.0,
            next_feedback_us: FEEDBACK_INTERVAL_US,
            results: Vec::new(),
            overuse_seen: false,
            samples: Vec::new(),
        }
    }

    fn at(&self, us: i64) -> Instant {
        self.t0 + Duration::from_micros(us as u64)
    }

    fn run(&mut self, seconds: f64, sender: Sender) {
        let end = self.now_us + (seconds * 1e6) as i64;
        while self.now_us < end {
            self.now_us += 1_000;
            while self.next_send_us <= self.now_us as f64 {
                let sent_us = self.next_send_us as i64;
                let rate = match sender {
                    Sender::Fixed(bps) => bps,
                    Sender::AtEstimate => self.estimator.estimate_bps() as f64,
                };
                let seq = self.seq;
                self.seq = self.seq.wrapping_add(1);
                self.history.record(seq, PACKET, self.at(sent_us));
                let arrival = self.link.carry(sent_us, PACKET, &mut self.rng);
                self.in_flight.push_back((seq, arrival));
                self.next_send_us += PACKET as f64 * 8e6 / rate.max(10_000.0);
            }
            if self.now_us >= self.next_feedback_us {
                self.next_feedback_us += FEEDBACK_INTERVAL_US;
                self.feedback();
            }
            if self.now_us % 100_000 == 0 {
                self.samples
                    .push((self.now_us as f64 / 1e6, self.estimator.estimate_bps()));
            }
        }
    }

    /// The receiver reports everything up to the last packet it has received.
    fn feedback(&mut self) {
        let cutoff = self.now_us - RETURN_DELAY_US;
        let mut last = None;
        for (i, (_, arrival)) in self.in_flight.iter().enumerate() {
            match arrival {
                Some(at) if *at <= cutoff => last = Some(i),
                Some(_) => break,
                None => {}
            }
        }
        let Some(last) = last else { return };
        let reported: Vec<_> = self.in_flight.drain(..=last).collect();
        let arrivals: Vec<_> = reported
            .iter()
            .map(|(_, at)| at.map(|at| at + RECEIVER_CLOCK_OFFSET_US))
            .collect();
        let feedback = build_feedback(reported[0].0, &arrivals);
        self.parser
            .parse(&feedback, &self.history, &mut self.results);
        assert_eq!(self.results.len(), reported.len());
        let now = self.at(self.now_us);
        self.estimator.on_packet_results(now, &self.results);
        self.overuse_seen |= self.estimator.usage() == Usage::Overusing;
    }

    fn estimate(&self) -> u64 {
        self.estimator.estimate_bps()
    }
}

#[test]
fn estimate_falls_when_feedback_shows_a_growing_queue() {
    let mut link = Link::new(1_000_000.0);
    link.max_queue_us = 10_000_000; // never drops: only delay can tell
    let mut sim = Sim::new(link, 1_500_000);
    sim.run(6.0, Sender::Fixed(1_500_000.0));
    assert_eq!(sim.link.dropped, 0);
    assert!(sim.overuse_seen);
    assert!(sim.estimator.last_overuse().is_some());
    let acked = sim.estimator.acked_bps();
    assert!((900_000..1_100_000).contains(&acked), "acked {acked}");
    // 0.85 × the acknowledged 1 Mbps.
    assert!(sim.estimate() <= 900_000, "estimate {}", sim.estimate());
}

#[test]
fn estimate_falls_with_twenty_percent_loss() {
    let mut link = Link::new(100_000_000.0);
    link.random_loss = 0.2;
    let mut sim = Sim::new(link, 1_000_000);
    sim.run(5.0, Sender::Fixed(1_000_000.0));
    assert!(!sim.overuse_seen, "no queue, so no delay signal");
    assert!(sim.estimator.last_overuse().is_some());
    assert!(sim.estimate() < 600_000, "estimate {}", sim.estimate());
}

#[test]
fn estimate_rises_steadily_on_a_clear_path_when_used() {
    let mut sim = Sim::new(Link::new(50_000_000.0), 300_000);
    sim.run(10.0, Sender::AtEstimate);
    assert!(sim.estimator.last_overuse().is_none());
    let per_second: Vec<u64> = sim.samples.iter().step_by(10).map(|s| s.1).collect();
    assert!(per_second.windows(2).all(|w| w[1] > w[0]), "{per_second:?}");
    assert!(sim.estimate() > 1_000_000, "estimate {}", sim.estimate());
    // The sender used it, so the acknowledged rate follows.
    assert!(sim.estimator.acked_bps() > 800_000);
}

#[test]
fn estimate_without_traffic_does_not_run_away() {
    let mut sim = Sim::new(Link::new(50_000_000.0), 300_000);
    sim.run(20.0, Sender::Fixed(200_000.0));
    // Capped at 1.5 × acknowledged (≈ 200–220 kbps as measured from ~10 packets per
    // half second) + 10 kbps; uncapped, 20 s of startup growth would be over 8 Mbps.
    assert!(sim.estimate() <= 360_000, "estimate {}", sim.estimate());
}

#[test]
fn estimate_converges_near_a_two_megabit_bottleneck() {
    let mut sim = Sim::new(Link::new(2_000_000.0), 300_000);
    sim.run(60.0, Sender::AtEstimate);
    if std::env::var_os("BWE_TRACE").is_some() {
        for (t, bps) in sim.samples.iter().step_by(5) {
            eprintln!("{t:5.1} s {bps:>9}");
        }
    }
    assert!(sim.estimator.last_overuse().is_some(), "found the limit");
    let settled: Vec<u64> = sim
        .samples
        .iter()
        .filter(|(t, _)| *t >= 25.0)
        .map(|s| s.1)
        .collect();
    let (low, high) = (
        *settled.iter().min().expect("samples"),
        *settled.iter().max().expect("samples"),
    );
    let mean = settled.iter().sum::<u64>() / settled.len() as u64;
    assert!(
        low >= 1_000_000 && high <= 2_400_000,
        "range {low}..{high}, mean {mean}"
    );
    assert!((1_500_000..=2_200_000).contains(&mean), "mean {mean}");
}

#[test]
fn remb_caps_the_estimate_only_without_transport_cc() {
    let t0 = Instant::now();
    let config = EstimatorConfig {
        initial_bps: 1_000_000,
        min_bps: 50_000,
        max_bps: 5_000_000,
    };
    let mut estimator = BandwidthEstimator::new(config, t0);
    estimator.on_remb(t0, 400_000);
    assert_eq!(estimator.estimate_bps(), 400_000);
    estimator.on_remb(t0 + Duration::from_millis(10), 10);
    assert_eq!(estimator.estimate_bps(), 50_000, "clamped to min_bps");
    estimator.on_remb(t0 + Duration::from_millis(20), 400_000);

    // Receiver-report loss cuts below the REMB: 30 % → × 0.85.
    estimator.on_receiver_loss(t0 + Duration::from_secs(1), 0.3);
    assert_eq!(estimator.estimate_bps(), 340_000);
    // Clean reports let it recover up to the REMB, not beyond.
    for s in 2..30 {
        estimator.on_receiver_loss(t0 + Duration::from_secs(s), 0.0);
    }
    assert_eq!(estimator.estimate_bps(), 400_000);

    // Transport-cc arrives: REMB and receiver reports are ignored while it does.
    let history = SendHistory::new(t0);
    let now = t0 + Duration::from_secs(30);
    let results: Vec<_> = (0..30u16)
        .map(|i| {
            let sent_at =
                now - Duration::from_millis(300) + Duration::from_millis(u64::from(i) * 5);
            history.record(i, PACKET, sent_at);
            PacketResult {
                seq: i,
                size: PACKET,
                sent_at,
                arrival: Some(i64::from(i) * 5_000),
            }
        })
        .collect();
    estimator.on_packet_results(now, &results);
    let with_tcc = estimator.estimate_bps();
    estimator.on_remb(now + Duration::from_secs(1), 100_000);
    estimator.on_receiver_loss(now + Duration::from_secs(1), 0.5);
    assert_eq!(estimator.estimate_bps(), with_tcc);
    // Two seconds without it, the fallback applies again.
    estimator.on_remb(now + Duration::from_secs(3), 250_000);
    assert_eq!(estimator.estimate_bps(), 250_000);
    assert_eq!(estimator.usage(), Usage::Normal);
}

#[test]
fn receiver_reports_alone_grow_the_estimate_on_a_clean_path() {
    let t0 = Instant::now();
    let mut estimator = BandwidthEstimator::new(EstimatorConfig::default(), t0);
    for s in 1..=10 {
        estimator.on_receiver_loss(t0 + Duration::from_secs(s), 0.0);
    }
    let grown = estimator.estimate_bps();
    assert!(grown > 500_000, "{grown}");
    estimator.on_receiver_loss(t0 + Duration::from_secs(11), 0.05);
    assert_eq!(estimator.estimate_bps(), grown, "2–10 % holds");
    estimator.on_receiver_loss(t0 + Duration::from_secs(12), f64::NAN);
    estimator.on_receiver_loss(t0 + Duration::from_secs(13), 7.0);
    assert_eq!(
        estimator.estimate_bps(),
        grown / 2,
        "loss above 1 counts as 1"
    );
}

#[test]
fn malformed_feedback_and_odd_inputs_do_not_panic() {
    use rtcp::transport_feedbacks::transport_layer_cc::{
        PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, SymbolTypeTcc,
        TransportLayerCc,
    };
    let t0 = Instant::now() + Duration::from_secs(20);
    let config = EstimatorConfig {
        initial_bps: u64::MAX,
        min_bps: 10_000_000,
        max_bps: 5, // inconsistent limits are tolerated too
    };
    let estimator = BandwidthEstimator::new(config, t0);
    assert_eq!(estimator.estimate_bps(), 10_000_000);
    let mut estimator = BandwidthEstimator::new(EstimatorConfig::default(), t0);
    let history = SendHistory::new(t0);
    for seq in 0..=u16::MAX {
        history.record(seq, 1_200, t0 + Duration::from_micros(u64::from(seq) * 100));
    }
    let mut parser = FeedbackParser::new();
    let mut results = Vec::new();
    let mut rng = Lcg(3);
    let symbols = [
        SymbolTypeTcc::PacketNotReceived,
        SymbolTypeTcc::PacketReceivedSmallDelta,
        SymbolTypeTcc::PacketReceivedLargeDelta,
        SymbolTypeTcc::PacketReceivedWithoutDelta,
    ];
    for round in 0..3_000u64 {
        let now = t0 + Duration::from_millis(round * 7);
        let feedback = TransportLayerCc {
            base_sequence_number: rng.next() as u16,
            packet_status_count: rng.below(3_000) as u16,
            reference_time: rng.next() as u32,
            packet_chunks: (0..rng.below(6))
                .map(|_| {
                    PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                        type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                        packet_status_symbol: symbols[rng.below(4) as usize],
                        run_length: rng.below(8_192) as u16,
                    })
                })
                .collect(),
            recv_deltas: (0..rng.below(2_000))
                .map(|_| RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedLargeDelta,
                    delta: match rng.below(4) {
                        0 => i64::MAX,
                        1 => i64::MIN,
                        _ => rng.next() as i64 % 10_000_000,
                    },
                })
                .collect(),
            ..Default::default()
        };
        parser.parse(&feedback, &history, &mut results);
        estimator.on_packet_results(now, &results);
        // Hand-made nonsense too: duplicates, times far apart, future send times.
        let odd = [PacketResult {
            seq: 1,
            size: usize::MAX,
            sent_at: now + Duration::from_secs(rng.below(100)),
            arrival: Some(rng.next() as i64),
        }; 3];
        estimator.on_packet_results(now, &odd);
        estimator.on_remb(now, rng.next());
        estimator.on_receiver_loss(now, rng.unit() * 3.0 - 1.0);
        let bps = estimator.estimate_bps();
        assert!((30_000..=20_000_000).contains(&bps), "{bps}");
    }
}
