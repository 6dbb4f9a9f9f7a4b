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
//! When tracks are held below their wish, the allocator probes (`bandwidth/prober.rs`):
//! padding up to what the most important held track's next layer would need. A probe the
//! path carried raises the budget to its rate.
//!
//! Redundant audio (RED, `media/red.rs`) is spent from headroom only: while every video is
//! at its wish and the budget also carries the redundancy, or while the budget is
//! unlimited. A subscriber short of bandwidth gets its audio once, and its video first.
use std::time::{Duration, Instant};

use super::layer_selector::MAX_LAYERS;
use crate::bandwidth::{Estimate, ProbeOutcome, Prober};

/// Nominal bitrates per layer, used until a layer's rate has been measured.
const NOMINAL_BPS: [u64; MAX_LAYERS as usize] = [150_000, 500_000, 1_500_000];
/// Going up (resuming a paused track, or raising one above its current layer) needs this
/// much more room than staying, so an estimate wobbling around one layer's cost does not
/// flip the track back and forth.
const UP_HEADROOM: f64 = 1.25;
/// How long after the estimator's last severe congestion signal a track may be paused:
/// pauses follow congestion that is going on, not an estimate that sits a little low
/// once the congestion is over.
const PAUSE_EVIDENCE: Duration = Duration::from_millis(1_500);

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

    /// What going up to `layer` is priced at: its measured rate, but no less than its
    /// nominal one. The measurement covers a quarter second, so a layer read between two
    /// keyframes looks cheaper than it is, and granting it on that reading overflows the
    /// path it was measured to fit.
    fn cost_up(&self, layer: u8) -> u64 {
        let i = usize::from(layer);
        let nominal = if self.layer_bps.len() == 1 {
            NOMINAL_BPS[1]
        } else {
            NOMINAL_BPS[i.min(NOMINAL_BPS.len() - 1)]
        };
        self.cost(layer).max(nominal)
    }
}

/// Each track's allowed layer, in the order of the demands; `None` pauses it. Without
/// `may_pause`, the tracks playing now keep at least their lowest layer between them
/// (which ones is still decided by priority).
///
/// The most important track (see [`top_track`]) is what the subscriber must not lose: its
/// lowest layer is allowed while `carried_bps` (what the path just delivered) covered it
/// beside the audio, however far below that the estimate fell, and it resumes without the
/// headroom the others need. The estimate of a capped path settles under what the path
/// carries (its cuts go to 0.85 × the delivered rate, and with audio alone to measure it
/// grows a few kbit/s a second), so a top track paused in a transition and held to 25 %
/// headroom stayed paused for as long as the cap lasted.
pub fn allocate(
    budget: Option<u64>,
    audio_bps: u64,
    carried_bps: u64,
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
    let top = top_track(demands);
    if let Some(t) = top {
        let cost = demands[t].cost(0);
        if audio_bps.saturating_add(cost) <= carried_bps {
            left = left.max(cost);
        }
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
    // Resuming needs headroom on what it adds (a swap of one track for another does not),
    // except for the top track's.
    let top_resuming = top
        .filter(|&t| demands[t].current.is_none() && allowed[t].is_some())
        .map_or(0, |t| demands[t].cost(0));
    for &i in order.iter().rev() {
        let base = playing + top_resuming;
        if used <= base || base + headroom(used - base) <= left || Some(i) == top {
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
            let needed = if layer > kept {
                headroom(d.cost_up(layer).saturating_sub(d.cost(now)))
            } else {
                step
            };
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

/// The most important track the subscriber wants (a screen share, else an active speaker;
/// the first of equals).
fn top_track(demands: &[Demand]) -> Option<usize> {
    demands
        .iter()
        .enumerate()
        .filter(|(_, d)| d.requested.is_some())
        .min_by_key(|(_, d)| d.priority)
        .map(|(i, _)| i)
}

/// One subscriber's allocation over time: the budget, and probing for more.
#[derive(Debug, Default)]
pub struct SubscriberAllocator {
    prober: Prober,
}

/// What redundant audio (two earlier payloads in each packet) adds, as a multiple of the
/// audio's own rate: an upper bound, since the headers are not repeated.
const REDUNDANCY_FACTOR: u64 = 2;

/// The outcome of one allocation round.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub allowed: Vec<Option<u8>>,
    /// Whether the subscriber's audio may carry redundancy (RED) on top.
    pub redundancy: bool,
    /// Set when a probe ended, for the estimator: a rate to trust, or a failure to forgive.
    pub probe: Option<ProbeOutcome>,
    /// Padding to send on top of the media while a probe runs (0: none).
    pub padding_bps: u64,
}

impl SubscriberAllocator {
    pub fn is_probing(&self) -> bool {
        self.prober.is_probing()
    }

    /// Allocates for `now`. `estimate` is `None` while the subscriber gives no feedback.
    pub fn allocate(
        &mut self,
        now: Instant,
        estimate: Option<Estimate>,
        audio_bps: u64,
        demands: &[Demand],
    ) -> Allocation {
        // Unlimited until congestion has been seen once.
        let Some(estimate) = estimate.filter(|e| e.last_congestion.is_some()) else {
            self.prober.stop();
            return Allocation {
                allowed: allocate(None, audio_bps, 0, demands, false),
                redundancy: true,
                probe: None,
                padding_bps: 0,
            };
        };
        let probe = self.prober.check(now, &estimate);
        let mut budget = estimate.bps;
        let mut severe = estimate.last_severe;
        match probe {
            Some(ProbeOutcome::Carried(bps)) => budget = budget.max(bps),
            Some(ProbeOutcome::Failed {
                started,
                before_bps,
            }) => {
                // What the probe did to the path is no evidence against the media.
                budget = budget.max(before_bps);
                severe = severe.filter(|&at| at < started);
            }
            None => {}
        }
        let may_pause =
            severe.is_some_and(|at| now.saturating_duration_since(at) <= PAUSE_EVIDENCE);
        let allowed = allocate(
            Some(budget),
            audio_bps,
            estimate.acked_bps,
            demands,
            may_pause,
        );
        let media_bps = audio_bps
            + demands
                .iter()
                .zip(&allowed)
                .filter(|(d, _)| d.requested.is_some())
                .filter_map(|(d, a)| a.map(|layer| d.cost(layer)))
                .sum::<u64>();
        let step = next_step(&allowed, demands);
        let redundancy = step.is_none() && media_bps + REDUNDANCY_FACTOR * audio_bps <= budget;
        match step {
            Some(step) => {
                let believed = budget.max(media_bps);
                self.prober
                    .start_if_due(now, &estimate, believed, media_bps + step);
            }
            None => self.prober.stop(),
        }
        Allocation {
            allowed,
            redundancy,
            probe,
            padding_bps: self.prober.padding_bps(media_bps),
        }
    }
}

/// What one more layer costs for the most important track held below its wish (the top
/// track's lowest layer without headroom, as [`allocate`] resumes it).
fn next_step(allowed: &[Option<u8>], demands: &[Demand]) -> Option<u64> {
    let top = top_track(demands);
    demands
        .iter()
        .zip(allowed)
        .enumerate()
        .filter_map(|(i, (d, a))| {
            let wish = d.requested?;
            let next = match a {
                Some(l) if *l < wish => l + 1,
                Some(_) => return None,
                None if Some(i) == top => return Some((d.priority, d.cost_up(0))),
                None => 0,
            };
            let now_cost = a.map_or(0, |l| d.cost(l));
            Some((
                d.priority,
                headroom(d.cost_up(next).saturating_sub(now_cost)),
            ))
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
        assert_eq!(allocate(None, 0, 0, &d, true), [Some(2), Some(0)]);
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
        let allowed = allocate(Some(1_700_000), 64_000, 0, &d, true);
        assert_eq!(allowed, [Some(0), Some(0), Some(2)]);
        // 400k more: the speaker's step comes before the other's.
        let allowed = allocate(Some(2_000_000), 64_000, 0, &d, true);
        assert_eq!(allowed, [Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn tracks_whose_lowest_layer_does_not_fit_are_paused_lowest_priority_first() {
        let d = [
            video(Priority::Other, Some(2)),
            video(Priority::Speaker, Some(2)),
        ];
        assert_eq!(allocate(Some(150_000), 0, 0, &d, true), [None, Some(0)]);
        assert_eq!(allocate(Some(50_000), 0, 0, &d, true), [None, None]);
        // Without evidence that packets are lost to congestion, playing tracks keep their
        // lowest layer.
        assert_eq!(allocate(Some(50_000), 0, 0, &d, false), [Some(0), Some(0)]);
    }

    #[test]
    fn a_new_speaker_takes_the_video_of_the_one_before_at_the_same_cost() {
        let mut previous = video(Priority::Other, Some(2));
        previous.current = Some(0);
        let mut speaker = video(Priority::Speaker, Some(2));
        speaker.current = None;
        let d = [previous, speaker];
        for may_pause in [false, true] {
            assert_eq!(
                allocate(Some(150_000), 0, 0, &d, may_pause),
                [None, Some(0)]
            );
        }
    }

    #[test]
    fn audio_is_never_starved_and_off_tracks_cost_nothing() {
        let d = [
            video(Priority::Other, None),
            video(Priority::Other, Some(1)),
        ];
        assert_eq!(
            allocate(Some(600_000), 100_000, 0, &d, true),
            [Some(0), Some(1)]
        );
        assert_eq!(
            allocate(Some(150_000), 100_000, 0, &d, true),
            [Some(0), None]
        );
    }

    #[test]
    fn going_up_needs_headroom_but_staying_does_not() {
        let mut d = video(Priority::Other, Some(2));
        d.current = Some(1);
        // 400k keeps h exactly; f, priced at no less than its nominal 1.5M to go up to
        // (+1.1M over h), needs 1.375M of room beyond h's 400k.
        assert_eq!(
            allocate(Some(400_000), 0, 0, std::slice::from_ref(&d), true),
            [Some(1)]
        );
        assert_eq!(
            allocate(Some(1_700_000), 0, 0, std::slice::from_ref(&d), true),
            [Some(1)]
        );
        assert_eq!(
            allocate(Some(1_775_000), 0, 0, std::slice::from_ref(&d), true),
            [Some(2)]
        );
        // A paused track resumes only with 25 % to spare (but for the top track: below).
        d.current = None;
        let speaker = video(Priority::Speaker, Some(0));
        assert_eq!(
            allocate(Some(210_000), 0, 0, &[speaker.clone(), d.clone()], true),
            [Some(0), None]
        );
        assert_eq!(
            allocate(Some(225_000), 0, 0, &[speaker, d], true),
            [Some(0), Some(0)]
        );
    }

    /// Scenario 4's rates at the cap, as the allocation trace recorded them (four tracks of
    /// ~190 kbit/s audio, `q` layers of ~150 kbit/s, 500 kbit/s downlink).
    const AUDIO: u64 = 190_000;
    fn capped_grid(current: Option<u8>) -> Vec<Demand> {
        [
            Priority::Speaker,
            Priority::Other,
            Priority::Other,
            Priority::Other,
        ]
        .into_iter()
        .map(|priority| Demand {
            priority,
            layer_bps: vec![150_000, 450_000, 1_300_000],
            requested: Some(2),
            current,
        })
        .collect()
    }

    #[test]
    fn the_top_track_keeps_its_lowest_layer_while_the_path_carries_it() {
        // Right after the cap: the estimate fell to 319k with packets lost, the receiver
        // acknowledged 402k. Audio and the speaker's q (340k) fit what was delivered.
        let d = capped_grid(Some(2));
        assert_eq!(
            allocate(Some(319_000), AUDIO, 402_000, &d, true),
            [Some(0), None, None, None]
        );
        // What was delivered does not cover them: nothing is invented.
        assert_eq!(
            allocate(Some(319_000), AUDIO, 330_000, &d, true),
            [None, None, None, None]
        );
        // Only the top track's lowest layer: the others still need the estimate.
        let mut d = d;
        d[0].priority = Priority::Other;
        d[3].priority = Priority::Screen;
        assert_eq!(
            allocate(Some(319_000), AUDIO, 402_000, &d, true),
            [None, None, None, Some(0)]
        );
    }

    #[test]
    fn a_paused_top_track_resumes_without_headroom() {
        // The estimate of the capped path settled at 320-356k with audio alone; the
        // speaker's q needs 340k beside the audio, 377.5k with 25 % headroom.
        let d = capped_grid(None);
        assert_eq!(
            allocate(Some(335_000), AUDIO, AUDIO, &d, false),
            [None, None, None, None]
        );
        assert_eq!(
            allocate(Some(345_000), AUDIO, AUDIO, &d, false),
            [Some(0), None, None, None]
        );
        // The others keep the headroom rule: a second q needs 150k + 187.5k beyond audio.
        let mut d = d;
        d[0].current = Some(0);
        assert_eq!(
            allocate(Some(520_000), AUDIO, AUDIO, &d, false),
            [Some(0), None, None, None]
        );
        assert_eq!(
            allocate(Some(530_000), AUDIO, AUDIO, &d, false),
            [Some(0), Some(0), None, None]
        );
    }

    /// The allocations of scenario 4's quietest run, replayed: the speaker was paused in
    /// the transition and stayed paused 26 s while the estimate crept from 319k to 356k.
    #[test]
    fn at_the_cap_the_speaker_keeps_video_through_the_transition() {
        let t0 = Instant::now();
        let mut a = SubscriberAllocator::default();
        let mut d = capped_grid(Some(2));
        let loss = t0 + Duration::from_millis(750);
        let mut acked = 420_000;
        for tick in 0..120u32 {
            let now = t0 + Duration::from_millis(1_000 + 250 * u64::from(tick));
            let bps = 319_000 + 300 * u64::from(tick);
            let estimate = Estimate {
                bps,
                acked_bps: acked,
                last_congestion: Some(loss),
                last_severe: Some(loss),
                last_overuse: Some(loss),
                last_queue: None,
            };
            let allocation = a.allocate(now, Some(estimate), AUDIO, &d);
            assert_eq!(
                allocation.allowed,
                [Some(0), None, None, None],
                "{tick}: estimate {bps}"
            );
            for (demand, allowed) in d.iter_mut().zip(&allocation.allowed) {
                demand.current = *allowed;
            }
            // The path delivers at most ~410k of RTP (500 kbit/s with the headers).
            acked = (AUDIO + 150_000 + allocation.padding_bps).min(410_000);
        }
    }

    #[test]
    fn a_probe_for_a_paused_top_track_aims_at_its_lowest_layer() {
        let t0 = Instant::now();
        let mut a = SubscriberAllocator::default();
        let d = capped_grid(None);
        let estimate = Estimate {
            bps: 330_000,
            acked_bps: AUDIO,
            last_congestion: Some(t0),
            last_severe: Some(t0),
            last_overuse: Some(t0),
            last_queue: None,
        };
        let later = t0 + Duration::from_secs(3);
        let allocation = a.allocate(later, Some(estimate), AUDIO, &d);
        assert_eq!(allocation.allowed, [None, None, None, None]);
        // 25 % past audio and q (425k), not 25 % past audio and q with 25 % on top (472k):
        // at a 500 kbit/s cap, with the audio's headers, the latter always congested.
        assert_eq!(allocation.padding_bps, 425_000 - AUDIO);
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
            allocate(Some(600_000), 0, 0, std::slice::from_ref(&d), true),
            [Some(1)]
        );
        assert_eq!(allocate(Some(1_500_000), 0, 0, &[d], true), [Some(2)]);
    }

    fn congested_at(at: Instant, bps: u64, acked_bps: u64) -> Option<Estimate> {
        Some(Estimate {
            bps,
            acked_bps,
            last_congestion: Some(at),
            last_severe: Some(at),
            last_overuse: Some(at),
            last_queue: None,
        })
    }

    #[test]
    fn a_held_track_is_probed_for_with_padding_and_raised_once_it_is_carried() {
        let t0 = Instant::now();
        let mut a = SubscriberAllocator::default();
        let mut d = [video(Priority::Other, Some(2))];
        d[0].current = Some(0);
        // Congestion at t0: held at q, nothing padded yet.
        let first = a.allocate(t0, congested_at(t0, 200_000, 200_000), 0, &d);
        assert_eq!((first.allowed, first.padding_bps), (vec![Some(0)], 0));
        // Once the path has been quiet, padding probes towards h: q's 100k + 1.25 × 400k
        // (h priced at its nominal 500k to go up to).
        let t1 = t0 + Duration::from_secs(3);
        let probing = a.allocate(t1, congested_at(t0, 200_000, 100_000), 0, &d);
        assert_eq!(
            probing.allowed,
            [Some(0)],
            "no layer is tried before it is carried"
        );
        assert_eq!(probing.padding_bps, 650_000, "25 % past that");
        // The receiver acknowledged that with no congestion: h is granted, padding stops.
        let t2 = t1 + crate::bandwidth::prober::PROBE_DURATION;
        let done = a.allocate(t2, congested_at(t0, 200_000, 610_000), 0, &d);
        assert_eq!(done.probe, Some(ProbeOutcome::Carried(610_000)));
        assert_eq!(done.allowed, [Some(1)]);
        assert_eq!(done.padding_bps, 0);
    }

    #[test]
    fn a_probe_that_congests_stops_its_padding() {
        let t0 = Instant::now();
        let mut a = SubscriberAllocator::default();
        let mut d = [video(Priority::Other, Some(2))];
        d[0].current = Some(0);
        let t1 = t0 + Duration::from_secs(3);
        assert!(
            a.allocate(t1, congested_at(t0, 200_000, 100_000), 0, &d)
                .padding_bps
                > 0
        );
        let t2 = t1 + Duration::from_millis(300);
        let after = a.allocate(t2, congested_at(t2, 80_000, 300_000), 0, &d);
        assert_eq!(after.padding_bps, 0);
        assert_eq!(
            after.probe,
            Some(ProbeOutcome::Failed {
                started: t1,
                before_bps: 200_000
            })
        );
        assert_eq!(
            after.allowed,
            [Some(0)],
            "the probe's own loss pauses nothing"
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
            last_overuse: Some(t0),
            last_queue: None,
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

    /// Redundant audio is spent from headroom: on with no limit, off while a video is held
    /// below its wish or paused, and off when the budget carries the videos but not the
    /// redundancy.
    #[test]
    fn redundant_audio_only_from_headroom() {
        let t0 = Instant::now();
        let estimate = |bps| Estimate {
            bps,
            acked_bps: bps,
            last_congestion: Some(t0),
            last_severe: Some(t0),
            last_overuse: Some(t0),
            last_queue: None,
        };
        let redundancy = |estimate: Option<Estimate>, d: &[Demand]| {
            SubscriberAllocator::default()
                .allocate(t0, estimate, 100_000, d)
                .redundancy
        };
        let d = [
            video(Priority::Speaker, Some(0)),
            video(Priority::Other, Some(0)),
        ];
        assert!(redundancy(None, &d), "no feedback yet: no limit");
        // 100k audio + 2 × 100k video + 200k redundancy.
        assert!(redundancy(Some(estimate(500_000)), &d));
        assert!(
            !redundancy(Some(estimate(450_000)), &d),
            "videos fit, redundancy not"
        );
        // 250k: the other video is paused, the audio goes once.
        assert!(!redundancy(Some(estimate(250_000)), &d));
        // A video held below its wish wants the bandwidth before redundancy does.
        let held = [video(Priority::Speaker, Some(2))];
        assert!(!redundancy(Some(estimate(1_000_000)), &held));
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
            last_overuse: None,
            last_queue: None,
        });
        assert_eq!(
            a.allocate(Instant::now(), estimate, 0, &d).allowed,
            [Some(2)]
        );
    }
}
