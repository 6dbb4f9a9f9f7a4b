//! The estimator against a simulated path: packets are recorded in a real `SendHistory`,
//! carried through a bottleneck queue, reported in transport-cc feedback built with the
//! rtcp crate's types, parsed by `FeedbackParser` and fed to the estimator, all on a fake
//! clock.

use super::*;
use crate::bandwidth::feedback::FeedbackParser;
use crate::bandwidth::send_history::SendHistory;
use crate::bandwidth::test_util::{Lcg, Link, Path, Stamping};

const PACKET: usize = 1_200;
const FEEDBACK_INTERVAL_US: i64 = 50_000;

#[derive(Clone, Copy)]
enum Sender {
    Fixed(f64),
    AtEstimate,
    /// Like an SFU forwarding one video track at this rate (a burst of packets every
    /// 33 ms) and one audio track (a small packet every 20 ms), each its own stream.
    Media(f64),
    /// Nothing at all (an outage, or a receiver that read nothing for a while).
    Silent,
}

struct Sim {
    t0: Instant,
    now_us: i64,
    history: SendHistory,
    parser: FeedbackParser,
    estimator: BandwidthEstimator,
    path: Path,
    seq: u16,
    next_send_us: f64,
    next_feedback_us: i64,
    results: Vec<PacketResult>,
    overuse_seen: bool,
    /// (seconds, estimate) every 100 ms.
    samples: Vec<(f64, u64)>,
}

impl Sim {
    fn new(link: Link, initial_bps: u64) -> Self {
        Sim::with_stamping(link, Stamping::Exact, initial_bps)
    }

    fn with_stamping(link: Link, stamping: Stamping, initial_bps: u64) -> Self {
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
            path: Path::new(link, stamping),
            seq: 65_000, // wraps early on
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
            if let Sender::Media(video_bps) = sender {
                self.send_media(video_bps);
            }
            while self.next_send_us <= self.now_us as f64 {
                let sent_us = self.next_send_us as i64;
                let rate = match sender {
                    Sender::Fixed(bps) => bps,
                    Sender::AtEstimate => self.estimator.estimate_bps() as f64,
                    Sender::Media(_) | Sender::Silent => break,
                };
                self.send(PACKET, sent_us, 0);
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

    fn send(&mut self, size: usize, sent_us: i64, stream: usize) {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.history.record(seq, size, self.at(sent_us));
        self.path.send(seq, size, sent_us, stream);
    }

    /// One millisecond of [`Sender::Media`]: audio every 20 ms, a frame every 33 ms whose
    /// size varies ±50 % around the mean, its packets 0.1 ms apart.
    fn send_media(&mut self, video_bps: f64) {
        let now = self.now_us;
        if now % 20_000 == 0 {
            self.send(120, now, 0);
        }
        if now % 33_000 == 0 {
            let mean = video_bps / 8.0 * 0.033;
            let mut left = (mean * (0.5 + self.path.rng.unit())) as usize;
            let mut at = now;
            while left > 0 {
                let size = left.min(PACKET);
                self.send(size, at, 1);
                left -= size;
                at += 100;
            }
        }
    }

    fn feedback(&mut self) {
        let Some((feedback, _)) = self.path.feedback(self.now_us) else {
            return;
        };
        self.parser
            .parse(&feedback, &self.history, &mut self.results);
        assert_eq!(
            self.results.len(),
            usize::from(feedback.packet_status_count)
        );
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
    assert_eq!(sim.path.link.dropped, 0);
    assert!(sim.overuse_seen);
    assert!(sim.estimator.last_overuse().is_some());
    let acked = sim.estimator.acked_bps();
    assert!((900_000..1_100_000).contains(&acked), "acked {acked}");
    // 0.85 × the acknowledged 1 Mbps.
    assert!(sim.estimate() <= 900_000, "estimate {}", sim.estimate());
}

#[test]
fn random_loss_does_not_lower_the_estimate_until_it_is_severe() {
    let random = |loss| {
        let mut link = Link::new(50_000_000.0);
        link.random_loss = loss;
        let mut sim = Sim::new(link, 1_000_000);
        sim.run(10.0, Sender::Media(1_500_000.0));
        sim
    };
    for loss in [0.05, 0.1] {
        let sim = random(loss);
        assert!(!sim.overuse_seen, "no queue, so no delay signal");
        assert_eq!(sim.estimator.last_overuse(), None, "{loss}");
        assert!(sim.estimate() >= 1_500_000, "{loss}: {}", sim.estimate());
    }
    // Bursts of 3–8 packets, 2 % overall.
    let mut link = Link::new(50_000_000.0);
    link.burst_start = 0.02 / 5.5;
    let mut sim = Sim::new(link, 1_000_000);
    sim.run(10.0, Sender::Media(1_500_000.0));
    assert!(sim.path.link.dropped > 20);
    assert_eq!(sim.estimator.last_overuse(), None);
    // A third lost: whatever the cause, this rate does not get through.
    let sim = random(0.33);
    assert!(sim.estimator.last_loss_cut().is_some());
    assert!(sim.estimate() < 1_000_000, "estimate {}", sim.estimate());
}

#[test]
fn loss_from_an_overflowing_queue_is_congestion() {
    // A shallow buffer (60 ms) under a steady 1.5 Mbps: the queue overflows.
    let mut link = Link::new(600_000.0);
    link.max_queue_us = 60_000;
    let mut sim = Sim::new(link, 1_500_000);
    sim.run(2.0, Sender::Fixed(1_500_000.0));
    assert!(sim.path.link.queue_dropped > 100);
    assert!(sim.estimator.last_loss_cut().is_some());
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

/// A clear 50 Mbps path carrying 1.5 Mbps of video and some audio, as seen by a receiver
/// whose clock readings are late in the way `stamping` says: nothing there is congestion.
fn late_timestamps_on_a_clear_path(stamping: Stamping) -> Sim {
    let mut sim = Sim::with_stamping(Link::new(50_000_000.0), stamping, 1_500_000);
    sim.run(30.0, Sender::Media(1_500_000.0));
    sim
}

#[test]
fn a_receiver_stalled_by_its_own_load_is_not_congestion() {
    for max_stall_us in [50_000, 150_000, 400_000] {
        let sim = late_timestamps_on_a_clear_path(Stamping::Stalls {
            mean_gap_us: 300_000,
            max_stall_us,
        });
        assert!(!sim.overuse_seen, "stalls up to {max_stall_us} µs");
        assert!(sim.estimate() >= 1_500_000, "{}", sim.estimate());
    }
}

#[test]
fn jitter_that_only_delays_packets_is_not_congestion() {
    for reorder in [false, true] {
        let sim = late_timestamps_on_a_clear_path(Stamping::Jitter {
            jitter_us: 30_000,
            reorder,
        });
        assert!(!sim.overuse_seen, "±30 ms, reorder {reorder}");
        assert!(sim.estimate() >= 1_500_000, "{}", sim.estimate());
    }
}

/// How long after the path's capacity drops to 600 kbps, under 1.5 Mbps of media, the
/// estimator signals overuse.
fn time_to_notice_a_cap(stamping: Stamping) -> f64 {
    let mut sim = Sim::with_stamping(Link::new(50_000_000.0), stamping, 1_500_000);
    sim.run(5.0, Sender::Media(1_500_000.0));
    assert!(!sim.overuse_seen);
    sim.path.link.capacity_bps = 600_000.0;
    let capped_at = sim.now_us;
    while !sim.overuse_seen && sim.now_us < capped_at + 5_000_000 {
        sim.run(0.01, Sender::Media(1_500_000.0));
    }
    (sim.now_us - capped_at) as f64 / 1e6
}

#[test]
fn a_real_queue_is_noticed_at_once_even_behind_jitter() {
    let clean = time_to_notice_a_cap(Stamping::Exact);
    assert!(clean <= 0.3, "{clean} s");
    let jittery = time_to_notice_a_cap(Stamping::Jitter {
        jitter_us: 30_000,
        reorder: false,
    });
    assert!(jittery <= 0.5, "{jittery} s");
    let stalled = time_to_notice_a_cap(Stamping::Stalls {
        mean_gap_us: 300_000,
        max_stall_us: 150_000,
    });
    assert!(stalled <= 0.5, "{stalled} s");
}

/// The collapse the smoothed throughput fixes: 500 kbit/s of media over a 600 kbit/s link,
/// then 1.2 s in which nothing arrives, then the sender resumes above the link's rate. The
/// queue grows at once, and the delay-based decrease went to 0.85 × what the half-second
/// window read just after the gap (a few packets' worth: tens of kbit/s), to the floor.
/// It must go to 0.85 × what the link was seen to carry.
#[test]
fn a_decrease_right_after_a_gap_does_not_collapse_the_estimate() {
    let mut link = Link::new(600_000.0);
    link.max_queue_us = 10_000_000; // never drops: only delay can tell
    let mut sim = Sim::new(link, 1_000_000);
    sim.run(4.0, Sender::Media(500_000.0));
    sim.run(1.2, Sender::Silent);
    let resumed = sim.now_us;
    let mut lowest = u64::MAX;
    while sim.now_us < resumed + 1_500_000 {
        sim.run(0.01, Sender::Media(1_500_000.0));
        lowest = lowest.min(sim.estimate());
    }
    assert!(sim.overuse_seen, "the queue was noticed");
    assert!(
        lowest >= 350_000,
        "lowest {lowest} after the gap (the link carries 600 kbit/s)"
    );
}
