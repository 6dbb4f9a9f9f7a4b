//! Shares one subscriber's bandwidth among the video tracks it receives.
//!
//! Audio is taken off the top and never limited. Video tracks are served in priority order
//! (screen shares, then active speakers, then the rest): first each gets its lowest layer
//! while that fits, then each is raised as far as its wish and the remaining budget allow.
//! A track whose lowest layer does not fit is paused — but pausing is the most drastic
//! thing the allocator does, so it needs the estimator's strongest evidence (packets lost
//! to congestion, or congestion that went on): without it, the budget never drops below
//! what the tracks playing now cost at their lowest layers. Until the estimator has seen
//! any sustained congestion the budget is unlimited, so a clear path never holds anyone
//! back.
//!
//! When tracks are held below their wish, the allocator probes: every so often it grants
//! the most important held track its next layer for a few seconds. If the estimator shows
//! no overuse meanwhile, the probe's delivered rate becomes the new estimate; if it does,
//! the probe ends and the next one waits twice as long.
use std::time::{Duration, Instant};

use super::layer_selector::MAX_LAYERS;
use crate::bandwidth::Estimate;

/// Nominal bitrates per layer, used until a layer's rate has been measured.
const NOMINAL_BPS: [u64; MAX_LAYERS as usize] = [150_000, 500_000, 1_500_000];
const QUIET_BEFORE_PROBE: Duration = Duration::from_secs(3);
const PROBE_DURATION: Duration = Duration::from_secs(3);
const FIRST_PROBE_BACKOFF: Duration = Duration::from_secs(5);
const MAX_PROBE_BACKOFF: Duration = Duration::from_secs(60);
/// Going up (resuming a paused track, or raising one above its current layer) needs this
/// much more room than staying, so an estimate wobbling around one layer's cost does not
/// flip the track back and forth.
const UP_HEADROOM: f64 = 1.25;
/// How long after the estimator's last severe congestion signal a track may be paused.
const PAUSE_EVIDENCE: Duration = Duration::from_secs(5);

/// Who gets bandwidth first; lower is more important.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Screen,
    Speaker,
    Other,
}

/// One video track as the allocator sees it.
#[derive(Debug, Clone)]
pub struct Demand {
    pub priority: Priority,
    /// Measured bitrate of each layer, lowest first; 0 where unknown.
    pub layer_bps: Vec<u64>,
    /// The subscriber's wish; `None` is off (it takes nothing and is not "paused").
    pub requested: Option<u8>,
    /// What the last round allowed (`None`: paused), for hysteresis.
    pub current: Option<u8>,
}

impl Demand {
    fn cost(&self, layer: u8) -> u64 {
        let i = usize::from(layer);
        match self.layer_bps.get(i) {
            Some(&bps) if bps > 0 => bps,
            _ if self.layer_bps.len() == 1 => NOMINAL_BPS[1],
            _ => NOMINAL_BPS[i.min(NOMINAL_BPS.len() - 1)],
        }
    }
}

/// Each track's allowed layer, in the order of the demands; `None` pauses it. Without
/// `may_pause`, the tracks playing now keep at least their lowest layer between them
/// (which ones is still decided by priority).
pub fn allocate(
    budget: Option<u64>,
    audio_bps: u64,
    demands: &[Demand],
    may_pause: bool,
) -> Vec<Option<u8>> {
    let Some(budget) = budget else {
        return demands
            .iter()
            .map(|d| Some(d.requested.unwrap_or(0)))
            .collect();
    };
    let playing: u64 = demands
        .iter()
        .filter(|d| d.requested.is_some() && d.current.is_some())
        .map(|d| d.cost(0))
        .sum();
    let mut left = budget.saturating_sub(audio_bps);
    if !may_pause {
        left = left.max(playing);
    }
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by_key(|&i| demands[i].priority);
    let mut allowed: Vec<Option<u8>> = vec![None; demands.len()];
    let mut used = 0;
    for &i in &order {
        let d = &demands[i];
        if d.requested.is_none() {
            // Off: nothing to pay for, nothing to pause.
            allowed[i] = Some(0);
            continue;
        }
        let cost = d.cost(0);
        if used + cost <= left {
            used += cost;
            allowed[i] = Some(0);
        }
    }
    // Resuming needs headroom on what it adds (a swap of one track for another does not).
    for &i in order.iter().rev() {
        if used <= playing || playing + headroom(used - playing) <= left {
            break;
        }
        let d = &demands[i];
        if d.requested.is_some() && d.current.is_none() && allowed[i].is_some() {
            allowed[i] = None;
            used -= d.cost(0);
        }
    }
    left -= used;
    for &i in &order {
        let d = &demands[i];
        let (Some(wish), Some(base)) = (d.requested, allowed[i]) else {
            continue;
        };
        let mut now = base;
        let kept = d.current.unwrap_or(0);
        for layer in (base + 1)..=wish {
            let step = d.cost(layer).saturating_sub(d.cost(now));
            let needed = if layer > kept { headroom(step) } else { step };
            if needed > left {
                break;
            }
            left -= step;
            now = layer;
        }
        allowed[i] = Some(now);
    }
    allowed
}

fn headroom(bps: u64) -> u64 {
    (bps as f64 * UP_HEADROOM) as u64
}

/// One subscriber's allocation over time: the budget, and probing for more.
#[derive(Debug)]
pub struct SubscriberAllocator {
    probe: Option<Probe>,
    next_probe_at: Option<Instant>,
    backoff: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Probe {
    started: Instant,
    /// Extra bits per second granted for the probe.
    extra_bps: u64,
}

/// The outcome of one allocation round.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub allowed: Vec<Option<u8>>,
    /// Set when a probe ended well: the estimator may trust this delivered rate.
    pub probe_result_bps: Option<u64>,
}

impl Default for SubscriberAllocator {
    fn default() -> Self {
        SubscriberAllocator {
            probe: None,
            next_probe_at: None,
            backoff: FIRST_PROBE_BACKOFF,
        }
    }
}

impl SubscriberAllocator {
    pub fn is_probing(&self) -> bool {
        self.probe.is_some()
    }

    /// Allocates for `now`. `estimate` is `None` while the subscriber gives no feedback.
    pub fn allocate(
        &mut self,
        now: Instant,
        estimate: Option<Estimate>,
        audio_bps: u64,
        demands: &[Demand],
    ) -> Allocation {
        let mut probe_result_bps = None;
        // Unlimited until congestion has been seen once.
        let Some(estimate) = estimate.filter(|e| e.last_congestion.is_some()) else {
            self.probe = None;
            return Allocation {
                allowed: allocate(None, audio_bps, demands, false),
                probe_result_bps,
            };
        };
        if let Some(probe) = self.probe {
            let congested = estimate
                .last_congestion
                .is_some_and(|at| at >= probe.started);
            if congested {
                self.probe = None;
                self.backoff = (self.backoff * 2).min(MAX_PROBE_BACKOFF);
                self.next_probe_at = Some(now + self.backoff);
            } else if now.saturating_duration_since(probe.started) >= PROBE_DURATION {
                self.probe = None;
                self.backoff = FIRST_PROBE_BACKOFF;
                self.next_probe_at = Some(now + FIRST_PROBE_BACKOFF);
                probe_result_bps = Some(estimate.acked_bps.max(estimate.bps));
            }
        }
        let budget = probe_result_bps.unwrap_or(estimate.bps);
        let extra = self.probe.map_or(0, |p| p.extra_bps);
        let may_pause = estimate
            .last_severe
            .is_some_and(|at| now.saturating_duration_since(at) <= PAUSE_EVIDENCE);
        let allowed = allocate(Some(budget + extra), audio_bps, demands, may_pause);
        if self.probe.is_none() && self.may_probe(now, &estimate) {
            if let Some(step) = next_step(&allowed, demands) {
                self.probe = Some(Probe {
                    started: now,
                    extra_bps: step,
                });
                return Allocation {
                    allowed: allocate(Some(budget + step), audio_bps, demands, may_pause),
                    probe_result_bps,
                };
            }
        }
        Allocation {
            allowed,
            probe_result_bps,
        }
    }

    fn may_probe(&self, now: Instant, estimate: &Estimate) -> bool {
        let quiet = estimate
            .last_congestion
            .is_none_or(|at| now.saturating_duration_since(at) >= QUIET_BEFORE_PROBE);
        quiet && self.next_probe_at.is_none_or(|at| now >= at)
    }
}

/// What one more layer costs for the most important track held below its wish.
fn next_step(allowed: &[Option<u8>], demands: &[Demand]) -> Option<u64> {
    demands
        .iter()
        .zip(allowed)
        .filter_map(|(d, a)| {
            let wish = d.requested?;
            let next = match a {
                Some(l) if *l < wish => l + 1,
                Some(_) => return None,
                None => 0,
            };
            let now_cost = a.map_or(0, |l| d.cost(l));
            Some((d.priority, headroom(d.cost(next).saturating_sub(now_cost))))
        })
        .min_by_key(|(p, _)| *p)
        .map(|(_, step)| step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(priority: Priority, requested: Option<u8>) -> Demand {
        Demand {
            priority,
            layer_bps: vec![100_000, 400_000, 1_200_000],
            requested,
            current: requested,
        }
    }

    #[test]
    fn unlimited_gives_every_wish() {
        let d = [
            video(Priority::Other, Some(2)),
            video(Priority::Other, Some(0)),
        ];
        assert_eq!(allocate(None, 0, &d, true), [Some(2), Some(0)]);
    }

    #[test]
    fn the_budget_goes_to_screen_share_and_speaker_first() {
        let d = [
            video(Priority::Other, Some(2)),
            video(Priority::Speaker, Some(2)),
            video(Priority::Screen, Some(2)),
        ];
        // Audio 64k, then 3 × 100k for the lowest layers, then the screen share climbs to
        // 1.2 M (+1.1 M), leaving 236k: not enough for anyone's next step (+300k).
        let allowed = allocate(Some(1_700_000), 64_000, &d, true);
        assert_eq!(allowed, [Some(0), Some(0), Some(2)]);
        // 400k more: the speaker's step comes before the other's.
        let allowed = allocate(Some(2_000_000), 64_000, &d, true);
        assert_eq!(allowed, [Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn tracks_whose_lowest_layer_does_not_fit_are_paused_lowest_priority_first() {
        let d = [
            video(Priority::Other, Some(2)),
            video(Priority::Speaker, Some(2)),
        ];
        assert_eq!(allocate(Some(150_000), 0, &d, true), [None, Some(0)]);
        assert_eq!(allocate(Some(50_000), 0, &d, true), [None, None]);
        // Without evidence that packets are lost to congestion, playing tracks keep their
        // lowest layer.
        assert_eq!(allocate(Some(50_000), 0, &d, false), [Some(0), Some(0)]);
    }

    #[test]
    fn a_new_speaker_takes_the_video_of_the_one_before_at_the_same_cost() {
        let mut previous = video(Priority::Other, Some(2));
        previous.current = Some(0);
        let mut speaker = video(Priority::Speaker, Some(2));
        speaker.current = None;
        let d = [previous, speaker];
        for may_pause in [false, true] {
            assert_eq!(allocate(Some(150_000), 0, &d, may_pause), [None, Some(0)]);
        }
    }

    #[test]
    fn audio_is_never_starved_and_off_tracks_cost_nothing() {
        let d = [
            video(Priority::Other, None),
            video(Priority::Other, Some(1)),
        ];
        assert_eq!(
            allocate(Some(600_000), 100_000, &d, true),
            [Some(0), Some(1)]
        );
        assert_eq!(allocate(Some(150_000), 100_000, &d, true), [Some(0), None]);
    }

    #[test]
    fn going_up_needs_headroom_but_staying_does_not() {
        let mut d = video(Priority::Other, Some(2));
        d.current = Some(1);
        // 400k keeps h exactly; f (+800k) would need 1M of room to go up to.
        assert_eq!(
            allocate(Some(400_000), 0, std::slice::from_ref(&d), true),
            [Some(1)]
        );
        assert_eq!(
            allocate(Some(1_300_000), 0, std::slice::from_ref(&d), true),
            [Some(1)]
        );
        assert_eq!(
            allocate(Some(1_400_000), 0, std::slice::from_ref(&d), true),
            [Some(2)]
        );
        // A paused track resumes only with 25 % to spare.
        d.current = None;
        assert_eq!(
            allocate(Some(110_000), 0, std::slice::from_ref(&d), true),
            [None]
        );
        assert_eq!(allocate(Some(125_000), 0, &[d], true), [Some(0)]);
    }

    #[test]
    fn unmeasured_layers_use_nominal_rates() {
        let d = Demand {
            priority: Priority::Other,
            layer_bps: vec![0, 0, 0],
            requested: Some(2),
            current: Some(2),
        };
        assert_eq!(
            allocate(Some(600_000), 0, std::slice::from_ref(&d), true),
            [Some(1)]
        );
        assert_eq!(allocate(Some(1_500_000), 0, &[d], true), [Some(2)]);
    }

    fn congested_at(at: Instant, bps: u64) -> Option<Estimate> {
        Some(Estimate {
            bps,
            acked_bps: bps,
            last_congestion: Some(at),
            last_severe: Some(at),
        })
    }

    #[test]
    fn probing_lifts_a_held_track_once_the_path_stays_clear() {
        let t0 = Instant::now();
        let mut a = SubscriberAllocator::default();
        let mut d = [video(Priority::Other, Some(2))];
        d[0].current = Some(0);
        // Congestion at t0: held at q.
        let first = a.allocate(t0, congested_at(t0, 200_000), 0, &d);
        assert_eq!(first.allowed, [Some(0)]);
        assert!(!a.is_probing());
        // 3 s later with no new congestion, a probe grants h.
        let t1 = t0 + Duration::from_secs(3);
        let probing = a.allocate(t1, congested_at(t0, 200_000), 0, &d);
        assert_eq!(probing.allowed, [Some(1)]);
        assert!(a.is_probing());
        // The probe delivered 520k without congestion: that becomes the budget.
        let t2 = t1 + PROBE_DURATION;
        let done = a.allocate(
            t2,
            Some(Estimate {
                bps: 200_000,
                acked_bps: 520_000,
                last_congestion: Some(t0),
                last_severe: Some(t0),
            }),
            0,
            &d,
        );
        assert_eq!(done.probe_result_bps, Some(520_000));
        assert_eq!(done.allowed, [Some(1)]);
    }

    #[test]
    fn a_probe_that_congests_ends_and_backs_off() {
        let t0 = Instant::now();
        let mut a = SubscriberAllocator::default();
        let mut d = [video(Priority::Other, Some(2))];
        d[0].current = Some(0);
        a.allocate(t0, congested_at(t0, 200_000), 0, &d);
        let t1 = t0 + Duration::from_secs(3);
        assert!(a.allocate(t1, congested_at(t0, 200_000), 0, &d).allowed == [Some(1)]);
        let t2 = t1 + Duration::from_secs(1);
        let after = a.allocate(t2, congested_at(t2, 180_000), 0, &d);
        assert_eq!(after.allowed, [Some(0)], "back down at once");
        assert_eq!(after.probe_result_bps, None);
        // Not again before the (doubled) backoff, even once the path is quiet.
        let t3 = t2 + Duration::from_secs(5);
        assert_eq!(
            a.allocate(t3, congested_at(t2, 180_000), 0, &d).allowed,
            [Some(0)]
        );
        let t4 = t2 + Duration::from_secs(10);
        assert_eq!(
            a.allocate(t4, congested_at(t2, 180_000), 0, &d).allowed,
            [Some(1)]
        );
    }

    #[test]
    fn delay_alone_or_old_evidence_never_pauses_a_playing_track() {
        let t0 = Instant::now();
        let d = [video(Priority::Other, Some(0))];
        let delay_only = Estimate {
            bps: 10_000,
            acked_bps: 10_000,
            last_congestion: Some(t0),
            last_severe: None,
        };
        let allowed = |at, estimate| {
            SubscriberAllocator::default()
                .allocate(at, Some(estimate), 0, &d)
                .allowed
        };
        assert_eq!(allowed(t0, delay_only), [Some(0)]);
        let loss = Estimate {
            last_severe: Some(t0),
            ..delay_only
        };
        assert_eq!(allowed(t0, loss), [None]);
        let later = t0 + PAUSE_EVIDENCE + Duration::from_millis(1);
        assert_eq!(allowed(later, loss), [Some(0)]);
    }

    #[test]
    fn no_congestion_seen_means_no_limit() {
        let mut a = SubscriberAllocator::default();
        let d = [video(Priority::Other, Some(2))];
        let estimate = Some(Estimate {
            bps: 10_000,
            acked_bps: 10_000,
            last_congestion: None,
            last_severe: None,
        });
        assert_eq!(
            a.allocate(Instant::now(), estimate, 0, &d).allowed,
            [Some(2)]
        );
    }
}
