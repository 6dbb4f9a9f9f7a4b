//! Draining a node: it takes no new rooms (its record says `draining`), waits until nobody
//! is left or a deadline passes, then tells whoever is left to reconnect (they land on other
//! nodes) and stops.
use std::time::{Duration, Instant};

/// What a draining node does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainStep {
    /// Keep serving; look again when something changes or at `until`.
    Wait { until: Instant },
    /// Nobody is left: stop.
    Stop,
    /// The deadline passed with people still here: tell them to reconnect, then stop.
    Evacuate,
}

#[derive(Debug, Clone, Copy)]
pub struct Drain {
    deadline: Instant,
}

impl Drain {
    /// A drain that started at `now` and gives people `grace` to leave by themselves.
    pub fn new(now: Instant, grace: Duration) -> Drain {
        Drain {
            deadline: now + grace,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The next step at `now`, with `connections` open and `participants` in rooms here
    /// (sessions parked for a resume have no connection but still count).
    pub fn step(&self, now: Instant, connections: usize, participants: usize) -> DrainStep {
        if connections == 0 && participants == 0 {
            DrainStep::Stop
        } else if now >= self.deadline {
            DrainStep::Evacuate
        } else {
            DrainStep::Wait {
                until: self.deadline,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_deadline_then_evacuates() {
        let t0 = Instant::now();
        let drain = Drain::new(t0, Duration::from_secs(30));
        let deadline = t0 + Duration::from_secs(30);
        assert_eq!(drain.step(t0, 3, 3), DrainStep::Wait { until: deadline });
        assert_eq!(
            drain.step(t0 + Duration::from_secs(29), 1, 1),
            DrainStep::Wait { until: deadline }
        );
        assert_eq!(drain.step(deadline, 1, 1), DrainStep::Evacuate);
    }

    #[test]
    fn stops_as_soon_as_nobody_is_left() {
        let t0 = Instant::now();
        let drain = Drain::new(t0, Duration::from_secs(30));
        assert_eq!(
            drain.step(t0 + Duration::from_secs(5), 0, 0),
            DrainStep::Stop
        );
        // A parked session (no connection) still counts, and so does a relayed connection
        // (no session here).
        assert_ne!(drain.step(t0, 0, 1), DrainStep::Stop);
        assert_ne!(drain.step(t0, 1, 0), DrainStep::Stop);
        assert_eq!(
            drain.step(t0 + Duration::from_secs(60), 0, 0),
            DrainStep::Stop
        );
    }
}
