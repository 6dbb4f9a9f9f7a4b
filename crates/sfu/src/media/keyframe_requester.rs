//! Decides when to ask a publisher for a keyframe (PLI). Subscribers ask for many reasons
//! (joining, their own PLI/FIR, decoder trouble); the publisher must not be flooded, since
//! every keyframe costs it and every other subscriber a burst of bitrate.
use std::time::{Duration, Instant};

pub const MIN_INTERVAL: Duration = Duration::from_millis(300);

#[derive(Debug)]
pub struct KeyframeRequester {
    min_interval: Duration,
    last_sent: Option<Instant>,
}

impl Default for KeyframeRequester {
    fn default() -> Self {
        KeyframeRequester::new(MIN_INTERVAL)
    }
}

impl KeyframeRequester {
    pub fn new(min_interval: Duration) -> Self {
        KeyframeRequester {
            min_interval,
            last_sent: None,
        }
    }

    /// Whether a PLI should go out now; records it when so.
    pub fn should_send(&mut self, now: Instant) -> bool {
        let due = self
            .last_sent
            .is_none_or(|last| now.saturating_duration_since(last) >= self.min_interval);
        if due {
            self.last_sent = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_to_one_per_interval() {
        let t0 = Instant::now();
        let mut k = KeyframeRequester::new(Duration::from_millis(300));
        assert!(k.should_send(t0));
        assert!(!k.should_send(t0 + Duration::from_millis(100)));
        assert!(!k.should_send(t0 + Duration::from_millis(299)));
        assert!(k.should_send(t0 + Duration::from_millis(300)));
        assert!(!k.should_send(t0 + Duration::from_millis(301)));
    }
}
