//! Probing for more bandwidth with padding, so a subscriber held below what it asked for
//! climbs back without first trying a layer it may not afford.
//!
//! When the allocator holds a track below its wish and the path has been quiet for a
//! while, a probe sends padding on top of the media, up to twice the rate the next layer
//! would need (at most twice what is believed now), for a short cluster
//! ([`CLUSTER`], `probe_cluster.rs`); the transport-cc feedback for the packets of that span
//! says what rate the path carried them at. If that covers the next layer, it is trusted
//! (the layer is granted when it covers it) and the next probe may follow soon; if it is
//! well above what was believed, the estimate rises to it. A cluster past a cap costs the
//! bottleneck's queue a few tens of milliseconds (at a 500 kbit/s cap, a probe at 1.05
//! Mbit/s for 100 ms queues about 60 ms past the shaper's bucket), where a probe judged by
//! the acknowledged rate had to overshoot for a second and more. Any congestion signal while it runs is the probe's
//! doing, and forgiven. A probe that found no room doubles the wait before the next one, up
//! to [`MAX_BACKOFF`], short enough to find a lifted cap within seconds.
use std::time::{Duration, Instant};

use super::probe_cluster::CLUSTER;
use super::Estimate;

/// After the cluster, how long its feedback may take before the probe is given up.
pub const RESULT_WAIT: Duration = Duration::from_secs(1);
/// A probe aims at most this many times what is believed now: a cluster at four times a
/// 350 kbit/s cap queued 300 ms there (the adaptation simulator lost 1.3 % of the audio
/// to it). A layer further up than that is reached in steps, each probe raising the
/// estimate to what it measured.
const MAX_RAISE: f64 = 2.0;
/// No congestion signal for this long before a probe starts.
const QUIET_BEFORE_PROBE: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// After a probe that succeeded, the next one (for the layer after) may start this soon.
const AFTER_SUCCESS: Duration = Duration::from_millis(500);
/// A probe aims this far past what it is for (one more layer). A token-bucket shaper lets
/// a cluster through unshaped until its bucket is spent: just past the cap, a 100 ms
/// cluster never spends the lab's 3 KB bucket and reads the probe's own rate (measured: a
/// probe at 1.25 times raised the estimate to 530-590k on a 500 kbit/s link, and the
/// track it resumed was lost to it). At twice, the bucket is spent within the cluster's
/// first half, and `probe_cluster.rs` reads the rate from its second.
const OVERSHOOT: f64 = 2.0;
/// Short of what it was for, a probe still raises the estimate to what it measured if that
/// is this many times what the path was believed to carry.
const RAISED: f64 = 1.2;

#[derive(Debug, Clone, Copy)]
struct Probe {
    started: Instant,
    target_bps: u64,
    /// What it is for: the rate one more layer needs.
    wanted_bps: u64,
    /// The budget when it started: what the path carried before the probe.
    before_bps: u64,
}

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The path carried this rate.
    Carried(u64),
    /// Congestion showed while it ran, or it found no room: signals since `started` were
    /// caused by the probe, and the path still carries `before_bps`.
    Failed { started: Instant, before_bps: u64 },
}

/// One subscriber connection's probes: when to start one, whether it worked.
#[derive(Debug)]
pub struct Prober {
    probe: Option<Probe>,
    next_at: Option<Instant>,
    backoff: Duration,
}

impl Default for Prober {
    fn default() -> Self {
        Prober {
            probe: None,
            next_at: None,
            backoff: FIRST_BACKOFF,
        }
    }
}

impl Prober {
    pub fn is_probing(&self) -> bool {
        self.probe.is_some()
    }

    /// The running probe's cluster: when its padding starts and ends.
    pub fn cluster(&self) -> Option<(Instant, Instant)> {
        self.probe.map(|p| (p.started, p.started + CLUSTER))
    }

    fn found_no_room(&mut self, now: Instant, probe: Probe) -> ProbeOutcome {
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.next_at = Some(now + self.backoff);
        ProbeOutcome::Failed {
            started: probe.started,
            before_bps: probe.before_bps,
        }
    }

    /// Ends the running probe once its cluster was measured, congestion showed, or its
    /// feedback never came, and says how it went.
    pub fn check(&mut self, now: Instant, estimate: &Estimate) -> Option<ProbeOutcome> {
        let probe = self.probe?;
        if estimate.last_overuse.is_some_and(|at| at >= probe.started) {
            self.probe = None;
            return Some(self.found_no_room(now, probe));
        }
        let measured = estimate
            .cluster
            .filter(|(at, _)| *at == probe.started)
            .map(|(_, bps)| bps);
        let Some(bps) = measured else {
            if now.saturating_duration_since(probe.started) >= CLUSTER + RESULT_WAIT {
                // Too little went out to tell (nothing to pad, say).
                self.probe = None;
                self.next_at = Some(now + self.backoff);
            }
            return None;
        };
        self.probe = None;
        if bps >= probe.wanted_bps {
            self.backoff = FIRST_BACKOFF;
            self.next_at = Some(now + AFTER_SUCCESS);
            return Some(ProbeOutcome::Carried(bps));
        }
        let outcome = self.found_no_room(now, probe);
        if bps as f64 >= RAISED * probe.before_bps as f64 {
            // Clearly more than was believed: trust that much.
            return Some(ProbeOutcome::Carried(bps));
        }
        Some(outcome)
    }

    /// Starts a probe towards `wanted_bps` (what one more layer would need; at most four
    /// times `budget_bps`, what is believed now) if the path has been quiet and the last probe is
    /// far enough behind.
    pub fn start_if_due(
        &mut self,
        now: Instant,
        estimate: &Estimate,
        budget_bps: u64,
        wanted_bps: u64,
    ) {
        let quiet = estimate
            .last_overuse
            .is_none_or(|at| now.saturating_duration_since(at) >= QUIET_BEFORE_PROBE);
        if self.probe.is_none() && quiet && self.next_at.is_none_or(|at| now >= at) {
            let most = (budget_bps.max(1) as f64 * MAX_RAISE) as u64;
            let aim = (wanted_bps as f64 * OVERSHOOT) as u64;
            self.probe = Some(Probe {
                started: now,
                target_bps: aim.min(most),
                wanted_bps,
                before_bps: budget_bps,
            });
        }
    }

    /// Stops probing at once (nothing is held back any more, or limits are off).
    pub fn stop(&mut self) {
        self.probe = None;
    }

    /// Padding to send at `now` on top of `media_bps` of media: only during the cluster.
    pub fn padding_bps(&self, now: Instant, media_bps: u64) -> u64 {
        self.probe
            .filter(|p| now.saturating_duration_since(p.started) < CLUSTER)
            .map_or(0, |p| p.target_bps.saturating_sub(media_bps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(last_overuse: Option<Instant>, cluster: Option<(Instant, u64)>) -> Estimate {
        Estimate {
            bps: 300_000,
            acked_bps: 300_000,
            last_congestion: last_overuse,
            last_severe: None,
            last_overuse,
            cluster,
        }
    }

    #[test]
    fn a_cluster_that_carried_the_layer_is_trusted_and_the_next_follows_soon() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        let quiet = estimate(Some(t0), None);
        p.start_if_due(t0 + Duration::from_secs(1), &quiet, 500_000, 800_000);
        assert!(!p.is_probing(), "not quiet long enough");
        let t1 = t0 + QUIET_BEFORE_PROBE;
        p.start_if_due(t1, &quiet, 500_000, 800_000);
        assert!(p.is_probing());
        assert_eq!(p.cluster(), Some((t1, t1 + CLUSTER)));
        assert_eq!(
            p.padding_bps(t1, 300_000),
            700_000,
            "twice the 500k believed (twice 800k is too far)"
        );
        assert_eq!(
            p.padding_bps(t1 + CLUSTER, 300_000),
            0,
            "a short cluster, not a second of it"
        );
        assert_eq!(p.check(t1 + Duration::from_millis(250), &quiet), None);
        // An older cluster's result is not this probe's.
        let old = estimate(Some(t0), Some((t0, 2_000_000)));
        assert_eq!(p.check(t1 + Duration::from_millis(300), &old), None);
        let t2 = t1 + Duration::from_millis(500);
        assert_eq!(
            p.check(t2, &estimate(Some(t0), Some((t1, 900_000)))),
            Some(ProbeOutcome::Carried(900_000)),
            "what the cluster measured"
        );
        assert!(!p.is_probing());
        // The next one soon, and no higher than twice the budget.
        let t3 = t2 + AFTER_SUCCESS;
        p.start_if_due(t3, &quiet, 800_000, 1_000_000);
        assert_eq!(p.padding_bps(t3, 300_000), 1_300_000);
    }

    #[test]
    fn congestion_or_no_room_ends_a_probe_and_doubles_the_wait_up_to_a_bound() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        let mut at = t0;
        for (backoff, congests) in [(4, true), (4, false), (4, true)] {
            p.start_if_due(at, &estimate(None, None), 500_000, 800_000);
            assert!(p.is_probing());
            let end = at + Duration::from_millis(300);
            let seen = if congests {
                estimate(Some(end), None)
            } else {
                // The cluster came through at the cap's rate, short of the layer.
                estimate(None, Some((at, 520_000)))
            };
            assert_eq!(
                p.check(end, &seen),
                Some(ProbeOutcome::Failed {
                    started: at,
                    before_bps: 500_000
                })
            );
            assert!(!p.is_probing());
            let retry = end + QUIET_BEFORE_PROBE.max(Duration::from_secs(backoff));
            let quiet = estimate(Some(end), None);
            p.start_if_due(retry - Duration::from_millis(1), &quiet, 500_000, 800_000);
            assert!(!p.is_probing());
            at = retry;
        }
    }

    #[test]
    fn a_probe_raises_the_estimate_only_as_far_as_it_measured() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        p.start_if_due(t0, &estimate(None, None), 500_000, 800_000);
        // No feedback for the cluster: given up, nothing learnt.
        let end = t0 + CLUSTER + RESULT_WAIT;
        assert_eq!(
            p.check(end - Duration::from_millis(1), &estimate(None, None)),
            None
        );
        assert!(p.is_probing());
        assert_eq!(p.check(end, &estimate(None, None)), None);
        assert!(!p.is_probing());
        let t1 = end + FIRST_BACKOFF;
        p.start_if_due(t1, &estimate(None, None), 500_000, 800_000);
        assert!(p.is_probing());
        // Short of the target but well above the budget: that much is trusted.
        assert_eq!(
            p.check(t1 + CLUSTER, &estimate(None, Some((t1, 650_000)))),
            Some(ProbeOutcome::Carried(650_000))
        );
    }
}
