//! One received stream's report block for receiver reports (RFC 3550 §6.4.1, with the
//! computations of its appendices A.3 and A.8): what webrtc-rs's receiver report
//! interceptor measured, for the streams the fast path receives. The publisher reads
//! its loss and jitter from it, and its round trip from LSR and DLSR.
use std::time::Instant;

use rtcp::reception_report::ReceptionReport;

/// RFC 3550's 24-bit signed cumulative loss, clamped.
const MAX_CUMULATIVE_LOST: i64 = 0x7f_ffff;

#[derive(Debug)]
pub struct ReceptionStats {
    clock_rate: u32,
    epoch: Instant,
    base: Option<u64>,
    highest: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in RTP timestamp units, times 16 (A.8's integer form).
    jitter_q4: u64,
    last_transit: Option<u32>,
    /// The middle 32 bits of the last sender report's NTP time, and when it arrived.
    last_sr: Option<(u32, Instant)>,
    last_sr_ntp: u64,
}

impl ReceptionStats {
    pub fn new(clock_rate: u32, epoch: Instant) -> Self {
        ReceptionStats {
            clock_rate,
            epoch,
            base: None,
            highest: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter_q4: 0,
            last_transit: None,
            last_sr: None,
            last_sr_ntp: 0,
        }
    }

    /// Notes the packet with extended index `index` and RTP timestamp `timestamp`,
    /// arrived at `at`. Jitter is measured on packets that advance the stream only
    /// (a retransmission's timestamp is old).
    pub fn on_packet(&mut self, index: u64, timestamp: u32, at: Instant) {
        self.received += 1;
        let advances = match self.base {
            None => {
                self.base = Some(index);
                self.highest = index;
                true
            }
            Some(_) if index > self.highest => {
                self.highest = index;
                true
            }
            Some(_) => false,
        };
        if !advances {
            return;
        }
        let arrival = (at.saturating_duration_since(self.epoch).as_secs_f64()
            * f64::from(self.clock_rate)) as u64 as u32;
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(last) = self.last_transit {
            let d = u64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            // J += (|D| - J) / 16, kept as 16·J.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Notes the publisher's sender report for this stream (its 64-bit NTP time) arrived
    /// at `at`. One older than the last is ignored.
    pub fn on_sender_report(&mut self, ntp: u64, at: Instant) {
        if ntp < self.last_sr_ntp {
            return;
        }
        self.last_sr_ntp = ntp;
        self.last_sr = Some(((ntp >> 16) as u32, at));
    }

    /// The report block for `ssrc` at `now`, and the start of the next interval; `None`
    /// before the first packet.
    pub fn report(&mut self, ssrc: u32, now: Instant) -> Option<ReceptionReport> {
        let base = self.base?;
        let expected = self.highest - base + 1;
        let lost = (expected as i64 - self.received as i64).clamp(0, MAX_CUMULATIVE_LOST);
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sender_report, delay) = match self.last_sr {
            Some((lsr, at)) => {
                let waited = now.saturating_duration_since(at).as_secs_f64();
                (lsr, (waited * 65_536.0) as u32)
            }
            None => (0, 0),
        };
        Some(ReceptionReport {
            ssrc,
            fraction_lost,
            total_lost: lost as u32,
            last_sequence_number: self.highest as u32,
            jitter: (self.jitter_q4 >> 4) as u32,
            last_sender_report,
            delay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn loss_counts_what_never_arrived_and_the_fraction_is_per_interval() {
        let t0 = Instant::now();
        let mut stats = ReceptionStats::new(90_000, t0);
        assert!(stats.report(1, t0).is_none(), "nothing received yet");
        // 65,530..65,539 across the wrap, two of ten lost.
        for index in (65_530..65_540).filter(|i| *i != 65_533 && *i != 65_537) {
            stats.on_packet(index, 0, t0);
        }
        let r = stats.report(7, t0).expect("a report");
        assert_eq!(r.ssrc, 7);
        assert_eq!(r.total_lost, 2);
        assert_eq!(r.fraction_lost, ((2u32 << 8) / 10) as u8);
        assert_eq!(r.last_sequence_number, 65_539);
        // Next interval: ten more, none lost, and one of the two recovered late.
        for index in 65_540..65_550 {
            stats.on_packet(index, 0, t0);
        }
        stats.on_packet(65_533, 0, t0);
        let r = stats.report(7, t0).expect("a report");
        assert_eq!(r.total_lost, 1);
        assert_eq!(r.fraction_lost, 0);
        assert_eq!(r.last_sequence_number, 65_549);
    }

    #[test]
    fn jitter_follows_how_unevenly_packets_arrive() {
        let t0 = Instant::now();
        let mut even = ReceptionStats::new(90_000, t0);
        let mut uneven = ReceptionStats::new(90_000, t0);
        for i in 0..200u32 {
            // 30 frames a second: 3,000 timestamp units apart.
            let sent = Duration::from_micros(u64::from(i) * 33_333);
            let late = Duration::from_millis(if i % 2 == 0 { 0 } else { 20 });
            even.on_packet(u64::from(i), i * 3000, t0 + sent);
            uneven.on_packet(u64::from(i), i * 3000, t0 + sent + late);
        }
        let even = even.report(1, t0).expect("a report").jitter;
        let uneven = uneven.report(1, t0).expect("a report").jitter;
        assert!(even < 10, "{even}");
        // 20 ms at 90 kHz is 1,800 units of difference per packet.
        assert!((1_500..=1_900).contains(&uneven), "{uneven}");
    }

    #[test]
    fn lsr_and_dlsr_come_from_the_last_sender_report() {
        let t0 = Instant::now();
        let mut stats = ReceptionStats::new(48_000, t0);
        stats.on_packet(1, 0, t0);
        let ntp = 0x1234_5678_9abc_def0u64;
        stats.on_sender_report(ntp, t0);
        stats.on_sender_report(ntp - 1, t0 + Duration::from_millis(100));
        let r = stats
            .report(1, t0 + Duration::from_millis(500))
            .expect("a report");
        assert_eq!(r.last_sender_report, 0x5678_9abc);
        assert_eq!(r.delay, 65_536 / 2);
    }
}
