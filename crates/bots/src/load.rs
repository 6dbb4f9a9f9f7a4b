//! Whether the bots themselves were the bottleneck of a load test. A load tester that runs
//! out of CPU reads its packets late, and late packets look like jitter, freezes and
//! congestion that no server or network caused: then its figures measure itself. So the
//! report says how much CPU the bots' process and the rest of the machine used over the
//! measured window.
//!
//! CPU time comes from Linux's `/proc` (process and machine in the same clock ticks, so no
//! tick rate is needed); elsewhere nothing is reported.
use std::time::Instant;

use serde::Serialize;

/// The machine counts as saturated when this share of its CPU was busy.
const SATURATED: f64 = 0.9;

/// CPU counters of this process and of the whole machine at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    at: Instant,
    /// utime + stime of this process.
    process: u64,
    /// Busy and total time of all CPUs.
    busy: u64,
    total: u64,
    cores: usize,
}

impl CpuSample {
    /// Reads the counters now; `None` where `/proc` does not have them.
    pub fn now() -> Option<CpuSample> {
        let process = std::fs::read_to_string("/proc/self/stat").ok()?;
        let machine = std::fs::read_to_string("/proc/stat").ok()?;
        CpuSample::parse(Instant::now(), &process, &machine)
    }

    fn parse(at: Instant, process_stat: &str, machine_stat: &str) -> Option<CpuSample> {
        // After the command name (which may contain anything but ends at the last ')'):
        // state is field 3, utime 14 and stime 15.
        let fields: Vec<&str> = process_stat
            .get(process_stat.rfind(')')? + 1..)?
            .split_whitespace()
            .collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let process = ticks(11)?.checked_add(ticks(12)?)?;
        let mut lines = machine_stat.lines();
        // cpu user nice system idle iowait irq softirq steal ...
        let all: Vec<u64> = lines
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let total: u64 = all.iter().sum();
        let idle = all.get(3)? + all.get(4)?;
        let cores = lines
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        Some(CpuSample {
            at,
            process,
            busy: total.checked_sub(idle)?,
            total,
            cores: cores.max(1),
        })
    }
}

/// How the CPU was used over a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuUse {
    /// Cores the bots' process kept busy on average (1.0 = one core).
    pub bots_cores: f64,
    /// Cores everything else kept busy (the server's too, when it runs on this machine).
    pub others_cores: f64,
    pub cores: usize,
    pub window_secs: f64,
}

impl CpuUse {
    /// The use between two samples (`None` if no time passed or the counters went back).
    pub fn between(start: &CpuSample, end: &CpuSample) -> Option<CpuUse> {
        let total = end.total.checked_sub(start.total).filter(|&t| t > 0)? as f64;
        let busy = end.busy.checked_sub(start.busy)? as f64;
        let process = end.process.checked_sub(start.process)? as f64;
        let cores = end.cores as f64;
        let bots_cores = (process / total * cores).min(cores);
        Some(CpuUse {
            bots_cores,
            others_cores: (busy / total * cores - bots_cores).max(0.0),
            cores: end.cores,
            window_secs: end.at.saturating_duration_since(start.at).as_secs_f64(),
        })
    }

    /// No CPU was left idle: late packets, jitter and freezes may be the machine's doing.
    pub fn machine_saturated(&self) -> bool {
        self.bots_cores + self.others_cores >= SATURATED * self.cores as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PROCESS: &str =
        "4242 (roomcast (bots)) S 1 4242 4242 0 -1 4194560 1 0 0 0 300 100 0 0 20 0 9 0 1 1 1";

    fn machine(user: u64, system: u64, idle: u64) -> String {
        format!(
            "cpu  {user} 0 {system} {idle} 0 0 0 0 0 0\ncpu0 1 0 1 1 0 0 0 0 0 0\ncpu1 1 0 1 1 0 0 0 0 0 0\nintr 1\n"
        )
    }

    #[test]
    fn reads_proc_and_splits_the_machine_between_the_bots_and_the_rest() {
        let t0 = Instant::now();
        let start = CpuSample::parse(t0, PROCESS, &machine(1_000, 500, 8_500)).expect("parsed");
        assert_eq!(
            (start.process, start.busy, start.total, start.cores),
            (400, 1_500, 10_000, 2)
        );
        // 10 s later on 2 cores (2,000 ticks): the bots used 1,000 (utime 800 + stime 600
        // - 400), everything busy 1,900.
        let later = PROCESS.replace(" 300 100 ", " 800 600 ");
        let end = CpuSample::parse(
            t0 + Duration::from_secs(10),
            &later,
            &machine(2_300, 1_100, 8_600),
        )
        .expect("parsed");
        let used = CpuUse::between(&start, &end).expect("a window");
        assert!((used.bots_cores - 1.0).abs() < 1e-9, "{used:?}");
        assert!((used.others_cores - 0.9).abs() < 1e-9, "{used:?}");
        assert_eq!(used.window_secs, 10.0);
        assert!(used.machine_saturated());
        let idle = CpuSample::parse(
            t0 + Duration::from_secs(10),
            &later,
            &machine(1_900, 600, 9_500),
        )
        .expect("parsed");
        assert!(!CpuUse::between(&start, &idle)
            .expect("a window")
            .machine_saturated());
    }

    #[test]
    fn odd_or_missing_counters_give_nothing() {
        let t0 = Instant::now();
        assert_eq!(CpuSample::parse(t0, "", &machine(1, 1, 1)), None);
        assert_eq!(CpuSample::parse(t0, "1 (x) S 1 2", &machine(1, 1, 1)), None);
        assert_eq!(CpuSample::parse(t0, PROCESS, "intr 1\n"), None);
        let a = CpuSample::parse(t0, PROCESS, &machine(1, 1, 1)).expect("parsed");
        assert_eq!(CpuUse::between(&a, &a), None, "no time passed");
        if let Some(now) = CpuSample::now() {
            assert!(now.cores >= 1);
        }
    }
}
