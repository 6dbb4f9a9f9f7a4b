//! A node's load as rates: what it counted since the previous heartbeat over the time
//! that passed.
use std::time::{Duration, Instant};

use crate::node::Load;

/// What the node counts, read at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadSample {
    pub rooms: u64,
    pub participants: u64,
    /// RTP packets sent to subscribers since the process started.
    pub packets_out: u64,
    /// CPU time the process used since it started (user + system).
    pub cpu_time: Duration,
}

/// Turns totals into rates between consecutive samples.
#[derive(Debug)]
pub struct LoadMeter {
    cores: f64,
    last: Option<(Instant, LoadSample)>,
}

impl LoadMeter {
    /// `cores`: how many CPUs the process may use (a CPU share of 1 is all of them).
    pub fn new(cores: usize) -> Self {
        LoadMeter {
            cores: cores.max(1) as f64,
            last: None,
        }
    }

    /// The load at `now`; rates are 0 on the first sample.
    pub fn measure(&mut self, now: Instant, sample: LoadSample) -> Load {
        let (packets_per_second, cpu) = match self.last {
            Some((then, before)) if now > then => {
                let secs = now.duration_since(then).as_secs_f64();
                let packets = sample.packets_out.saturating_sub(before.packets_out) as f64;
                let cpu = sample
                    .cpu_time
                    .saturating_sub(before.cpu_time)
                    .as_secs_f64();
                ((packets / secs).round() as u64, cpu / secs / self.cores)
            }
            _ => (0, 0.0),
        };
        self.last = Some((now, sample));
        Load {
            rooms: sample.rooms,
            participants: sample.participants,
            packets_per_second,
            cpu,
        }
    }
}

/// CPU time this process has used (user + system), from `/proc/self/stat`; zero where
/// that cannot be read.
pub fn process_cpu_time() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| cpu_time_from_stat(&stat))
        .unwrap_or_default()
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks of 10 ms
/// (`USER_HZ` is 100 on every Linux platform roomcast runs on).
fn cpu_time_from_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_between_samples() {
        let t0 = Instant::now();
        let mut meter = LoadMeter::new(2);
        let first = meter.measure(
            t0,
            LoadSample {
                rooms: 2,
                participants: 10,
                packets_out: 1_000,
                cpu_time: Duration::from_secs(3),
            },
        );
        assert_eq!((first.packets_per_second, first.cpu), (0, 0.0));
        assert_eq!((first.rooms, first.participants), (2, 10));
        let second = meter.measure(
            t0 + Duration::from_secs(2),
            LoadSample {
                rooms: 3,
                participants: 12,
                packets_out: 21_000,
                cpu_time: Duration::from_secs(4),
            },
        );
        assert_eq!(second.packets_per_second, 10_000);
        // One CPU second in two wall seconds on two cores: a quarter of the machine.
        assert_eq!(second.cpu, 0.25);
        assert_eq!(second.rooms, 3);
    }

    #[test]
    fn a_counter_that_went_back_counts_nothing() {
        let t0 = Instant::now();
        let mut meter = LoadMeter::new(1);
        let sample = LoadSample {
            packets_out: 500,
            ..LoadSample::default()
        };
        meter.measure(t0, sample);
        let load = meter.measure(t0 + Duration::from_secs(1), LoadSample::default());
        assert_eq!(load.packets_per_second, 0);
    }

    #[test]
    fn proc_stat_with_spaces_in_the_name() {
        let stat = "1234 (tokio runtime) S 1 1234 1234 0 -1 4194560 2000 0 0 0 250 75 0 0 20 0";
        assert_eq!(cpu_time_from_stat(stat), Some(Duration::from_millis(3250)));
        assert_eq!(cpu_time_from_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        // Spin until the kernel has counted a tick of it (bounded: a busy machine may
        // give this thread little time).
        let spin = Instant::now();
        while process_cpu_time() == Duration::ZERO && spin.elapsed() < Duration::from_secs(5) {}
        assert!(process_cpu_time() > Duration::ZERO);
    }
}
