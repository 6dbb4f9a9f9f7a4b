//! Probing for more bandwidth with padding, so a subscriber held below what it asked for
//! climbs back without first trying a layer it may not afford.
//!
//! When the allocator holds a track below its wish and the path has been quiet for a
//! while, a probe sends padding on top of the media, up to 25 % past the rate the next
//! layer would need (at most four times what is believed now), for [`PROBE_DURATION`].
//! Padding only adds packets: if the path cannot carry them, a queue grows, and the first
//! feedback whose delay shows one ends the probe (the session reallocates at once, see
//! `SubscriberBandwidth::cut`), having cost a brief queue rather than lost audio or a
//! frozen picture. Waiting for the delay signal's overuse, as probes once did, let the
//! padding fill a 200 ms queue and drop media for half a second every few seconds at a
//! cap. What the probe did to the estimate is its own fault, not the path's, and is
//! forgiven. If the receiver acknowledged what the next layer needs with
//! no sign of congestion, what it acknowledged is trusted (the next layer is granted when
//! it covers it) and the next probe may follow soon. A failed probe doubles the wait before
//! the next one, up to [`MAX_BACKOFF`], short enough to find a lifted cap within seconds.
use std::time::{Duration, Instant};

use super::Estimate;

/// Long enough for the padding's ramp (400 ms), the feedback's delay and then the
/// acknowledged rate's half-second window to cover the target alone: at 1 s the window still
/// held the ramp, and a clear path read 65 % of a probe's target (lab, 600 kbit/s lifted).
pub const PROBE_DURATION: Duration = Duration::from_millis(1_500);
/// A probe aims at most this many times what is believed now. Its padding ramps up, so a
/// target far beyond what the path carries is found out when the ramp crosses that.
const MAX_RAISE: f64 = 4.0;
/// No congestion signal for this long before a probe starts.
const QUIET_BEFORE_PROBE: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// After a probe that succeeded, the next one (for the layer after) may start this soon.
const AFTER_SUCCESS: Duration = Duration::from_millis(500);
/// A probe succeeds if the receiver acknowledged what it was for (one more layer), and the
/// estimate rises to what was acknowledged. It aims this far past what it is for. Just past a cap, a probe at exactly what a
/// layer needs builds its queue too slowly to be seen, and delivers nearly all of it; well
/// past, the queue shows within the probe, and a clear path delivers what is needed even
/// when a busy server paces the padding short of its target.
const OVERSHOOT: f64 = 1.25;
/// Short of that, a probe still raises the estimate to what was acknowledged if that is
/// this many times what the path was believed to carry.
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
    /// The path carried this rate without congestion.
    Carried(u64),
    /// Congestion showed while it ran: signals since `started` were caused by the probe,
    /// and the path still carries `before_bps`.
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

    /// Ends the running probe if it failed (congestion since it started) or has run its
    /// course, and says how it went.
    pub fn check(&mut self, now: Instant, estimate: &Estimate) -> Option<ProbeOutcome> {
        let probe = self.probe?;
        let congested = |at: Option<Instant>| at.is_some_and(|at| at >= probe.started);
        if congested(estimate.last_overuse) || congested(estimate.last_queue) {
            self.probe = None;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            self.next_at = Some(now + self.backoff);
            return Some(ProbeOutcome::Failed {
                started: probe.started,
                before_bps: probe.before_bps,
            });
        }
        if now.saturating_duration_since(probe.started) < PROBE_DURATION {
            return None;
        }
        self.probe = None;
        let acked = estimate.acked_bps;
        if acked >= probe.wanted_bps {
            self.backoff = FIRST_BACKOFF;
            self.next_at = Some(now + AFTER_SUCCESS);
            return Some(ProbeOutcome::Carried(acked));
        }
        // Short of what the layer needs: not again at once (padding past a cap costs the
        // media a queue each time).
        self.next_at = Some(now + self.backoff);
        if acked as f64 >= RAISED * probe.before_bps as f64 {
            // Clearly more than was believed, without congestion (a busy sender paces
            // late, or the path carries something in between): trust that much.
            return Some(ProbeOutcome::Carried(acked));
        }
        // Too little went out to tell (nothing to pad, say).
        None
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

    /// Padding to send now on top of `media_bps` of media.
    pub fn padding_bps(&self, media_bps: u64) -> u64 {
        self.probe
            .map_or(0, |p| p.target_bps.saturating_sub(media_bps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(acked_bps: u64, last_overuse: Option<Instant>) -> Estimate {
        Estimate {
            bps: 300_000,
            acked_bps,
            last_congestion: last_overuse,
            last_severe: None,
            last_overuse,
            last_queue: None,
        }
    }

    #[test]
    fn a_delivered_probe_is_trusted_and_the_next_follows_soon() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        let quiet = estimate(300_000, Some(t0));
        p.start_if_due(t0 + Duration::from_secs(1), &quiet, 500_000, 800_000);
        assert!(!p.is_probing(), "not quiet long enough");
        let t1 = t0 + QUIET_BEFORE_PROBE;
        p.start_if_due(t1, &quiet, 500_000, 800_000);
        assert!(p.is_probing());
        assert_eq!(p.padding_bps(300_000), 700_000, "25 % past 800k");
        assert_eq!(p.check(t1 + Duration::from_millis(500), &quiet), None);
        let t2 = t1 + PROBE_DURATION;
        assert_eq!(
            p.check(t2, &estimate(900_000, Some(t0))),
            Some(ProbeOutcome::Carried(900_000)),
            "what was delivered"
        );
        assert_eq!(p.padding_bps(300_000), 0);
        // The next one soon, and no higher than four times the budget.
        p.start_if_due(t2 + AFTER_SUCCESS, &quiet, 800_000, 3_000_000);
        assert_eq!(p.padding_bps(300_000), 2_900_000);
    }

    #[test]
    fn congestion_ends_a_probe_and_doubles_the_wait_up_to_a_bound() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        let mut at = t0;
        for backoff in [4, 4, 4] {
            p.start_if_due(at, &estimate(300_000, None), 500_000, 800_000);
            assert!(p.is_probing());
            let congested = at + Duration::from_millis(300);
            assert_eq!(
                p.check(congested, &estimate(500_000, Some(congested))),
                Some(ProbeOutcome::Failed {
                    started: at,
                    before_bps: 500_000
                })
            );
            assert!(!p.is_probing());
            let retry = congested + QUIET_BEFORE_PROBE.max(Duration::from_secs(backoff));
            let quiet = estimate(300_000, Some(congested));
            p.start_if_due(retry - Duration::from_millis(1), &quiet, 500_000, 800_000);
            assert!(!p.is_probing());
            at = retry;
            p.start_if_due(at, &quiet, 500_000, 800_000);
            assert!(p.is_probing());
            p.stop();
        }
    }

    #[test]
    fn a_queue_that_shows_during_a_probe_ends_it() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        let before = Estimate {
            last_queue: Some(t0),
            ..estimate(300_000, None)
        };
        let start = t0 + Duration::from_millis(10);
        p.start_if_due(start, &before, 500_000, 800_000);
        assert_eq!(
            p.check(start, &before),
            None,
            "a queue from before is no failure"
        );
        let queued = start + Duration::from_millis(200);
        let after = Estimate {
            last_queue: Some(queued),
            ..before
        };
        assert_eq!(
            p.check(queued, &after),
            Some(ProbeOutcome::Failed {
                started: start,
                before_bps: 500_000
            })
        );
    }

    #[test]
    fn a_probe_raises_the_estimate_only_as_far_as_it_was_delivered() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        p.start_if_due(t0, &estimate(100_000, None), 500_000, 800_000);
        let end = t0 + PROBE_DURATION;
        assert_eq!(p.check(end, &estimate(400_000, None)), None);
        assert!(!p.is_probing());
        p.start_if_due(
            end + FIRST_BACKOFF,
            &estimate(100_000, None),
            500_000,
            800_000,
        );
        assert!(p.is_probing());
        // Short of the target but well above the budget: that much is trusted.
        let end = end + FIRST_BACKOFF + PROBE_DURATION;
        assert_eq!(
            p.check(end, &estimate(650_000, None)),
            Some(ProbeOutcome::Carried(650_000))
        );
    }
}
