//! Periodic work that every connection or session does on the same period, put in phase:
//! each timer ticks on the wall clock's multiples of its period, so the runtime's timer
//! wakes once for all of them instead of once for each. A webinar's 150 viewers with a
//! layer tick each on its own phase were 600 wake-ups a second, each costing a worker's
//! sleep and wake-up (10-20 µs on a VM) on top of the tick's own work.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Ticks every `period`, first at the next multiple of it on the wall clock. A tick missed
/// because the owner was busy is skipped, which keeps the phase.
pub fn in_phase(period: Duration) -> Interval {
    let mut ticks = tokio::time::interval_at(Instant::now() + until_next(period), period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticks
}

/// How long until the wall clock is next at a multiple of `period` (a whole period if it
/// is at one now).
fn until_next(period: Duration) -> Duration {
    let period = period.as_nanos().max(1);
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let to_next = period - since_epoch % period;
    Duration::from_nanos(u64::try_from(to_next).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_never_longer_than_a_period() {
        for period in [1, 7, 50, 250, 2_000] {
            let period = Duration::from_millis(period);
            let wait = until_next(period);
            assert!(
                wait > Duration::ZERO && wait <= period,
                "{wait:?} for {period:?}"
            );
        }
    }

    #[tokio::test]
    async fn timers_made_at_different_times_tick_together() {
        let period = Duration::from_millis(40);
        let mut first = in_phase(period);
        tokio::time::sleep(Duration::from_millis(13)).await;
        let mut second = in_phase(period);
        // The same instants, up to the moment between reading the two clocks; the second
        // pair too (on the same schedule after the first).
        for _ in 0..2 {
            let a = first.tick().await;
            let b = second.tick().await;
            let apart = a.max(b) - a.min(b);
            assert!(apart < Duration::from_millis(1), "{apart:?} apart");
        }
    }
}
