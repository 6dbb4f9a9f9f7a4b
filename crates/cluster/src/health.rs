//! Whether the store answers, from the outcomes of the calls made to it. While it does
//! not, the node keeps its rooms, refuses to place new ones without waiting on the store,
//! and retries more often than it heartbeats, so it is registered again soon after the
//! store is back.
use std::time::{Duration, Instant};

/// A change worth a log line and, when the store is back, an immediate re-registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChange {
    Lost { error: String },
    Restored { after: Duration },
}

#[derive(Debug)]
pub struct StoreHealth {
    reachable: bool,
    since: Instant,
}

impl StoreHealth {
    /// Optimistic at first: the first call finds out.
    pub fn new(now: Instant) -> Self {
        StoreHealth {
            reachable: true,
            since: now,
        }
    }

    pub fn is_reachable(&self) -> bool {
        self.reachable
    }

    /// A call answered.
    pub fn on_success(&mut self, now: Instant) -> Option<HealthChange> {
        if self.reachable {
            return None;
        }
        let after = now.saturating_duration_since(self.since);
        self.reachable = true;
        self.since = now;
        Some(HealthChange::Restored { after })
    }

    /// A call found the store unreachable.
    pub fn on_unreachable(&mut self, now: Instant, error: &str) -> Option<HealthChange> {
        if !self.reachable {
            return None;
        }
        self.reachable = false;
        self.since = now;
        Some(HealthChange::Lost {
            error: error.to_owned(),
        })
    }

    /// How long until the next heartbeat: the usual interval, or `retry` while unreachable.
    pub fn next_beat(&self, interval: Duration, retry: Duration) -> Duration {
        if self.reachable {
            interval
        } else {
            retry.min(interval)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEAT: Duration = Duration::from_secs(2);
    const RETRY: Duration = Duration::from_millis(500);

    #[test]
    fn one_change_per_outage_and_its_length() {
        let t0 = Instant::now();
        let mut health = StoreHealth::new(t0);
        assert_eq!(health.on_success(t0), None);
        assert_eq!(
            health.on_unreachable(t0 + Duration::from_secs(1), "refused"),
            Some(HealthChange::Lost {
                error: "refused".to_owned()
            })
        );
        assert!(!health.is_reachable());
        assert_eq!(
            health.on_unreachable(t0 + Duration::from_secs(2), "refused"),
            None
        );
        assert_eq!(
            health.on_success(t0 + Duration::from_secs(6)),
            Some(HealthChange::Restored {
                after: Duration::from_secs(5)
            })
        );
        assert!(health.is_reachable());
    }

    #[test]
    fn retries_faster_while_unreachable() {
        let t0 = Instant::now();
        let mut health = StoreHealth::new(t0);
        assert_eq!(health.next_beat(BEAT, RETRY), BEAT);
        health.on_unreachable(t0, "timeout");
        assert_eq!(health.next_beat(BEAT, RETRY), RETRY);
        health.on_success(t0);
        assert_eq!(health.next_beat(BEAT, RETRY), BEAT);
    }
}
