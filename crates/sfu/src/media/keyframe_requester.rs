//! Decides when to ask a publisher for a keyframe (PLI) on one layer. Subscribers ask for
//! many reasons (joining, their own PLI/FIR, a layer switch), often many at once (a join
//! wave, the end of an outage); every keyframe costs the publisher and every other
//! subscriber a burst of bitrate, so requests are aggregated per layer:
//!
//! - One request is outstanding at a time: until the keyframe it asked for arrives, every
//!   subscriber waiting on the layer waits for that keyframe. If none comes within
//!   [`RETRY_AFTER`] (the request or the keyframe was lost, or the publisher ignores it),
//!   it is asked again.
//! - Once the keyframe has arrived, a new request may go out at once (a subscriber that
//!   joined just after it need not wait a whole throttle interval), but never sooner than
//!   [`MIN_INTERVAL`] after the previous one: at most a few keyframes a second, however
//!   many subscribers ask.
use std::time::{Duration, Instant};

/// The least time between two requests on one layer.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// How long a request waits for its keyframe before it is sent again.
pub const RETRY_AFTER: Duration = Duration::from_millis(800);

#[derive(Debug, Default)]
pub struct KeyframeRequester {
    last_sent: Option<Instant>,
    /// A request went out and no keyframe has arrived since.
    outstanding: bool,
}

impl KeyframeRequester {
    /// Whether a PLI should go out now for a subscriber that waits for a keyframe; records
    /// it when so.
    pub fn should_send(&mut self, now: Instant) -> bool {
        let since = self
            .last_sent
            .map(|last| now.saturating_duration_since(last));
        let due = match since {
            None => true,
            Some(since) if self.outstanding => since >= RETRY_AFTER,
            Some(since) => since >= MIN_INTERVAL,
        };
        if due {
            self.last_sent = Some(now);
            self.outstanding = true;
        }
        due
    }

    /// A keyframe arrived on the layer: whoever asked has it.
    pub fn on_keyframe(&mut self) {
        self.outstanding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn one_request_is_outstanding_until_its_keyframe_arrives() {
        let t0 = Instant::now();
        let mut k = KeyframeRequester::default();
        assert!(k.should_send(t0));
        // A join wave: everyone waits for the keyframe already asked for.
        for t in (10..RETRY_AFTER.as_millis() as u64).step_by(10) {
            assert!(!k.should_send(t0 + ms(t)), "at {t} ms");
        }
        // It never came: ask again.
        assert!(k.should_send(t0 + RETRY_AFTER));
        assert!(!k.should_send(t0 + RETRY_AFTER + ms(1)));
    }

    #[test]
    fn after_the_keyframe_a_new_request_waits_only_for_the_minimum_interval() {
        let t0 = Instant::now();
        let mut k = KeyframeRequester::default();
        assert!(k.should_send(t0));
        k.on_keyframe();
        assert!(!k.should_send(t0 + MIN_INTERVAL - ms(1)));
        assert!(k.should_send(t0 + MIN_INTERVAL));
        // A keyframe long after the request: the next one goes out at once.
        k.on_keyframe();
        assert!(k.should_send(t0 + ms(5000)));
    }

    #[test]
    fn a_storm_of_requests_yields_a_few_keyframes_a_second() {
        // A subscriber asks every 5 ms for ten seconds and the publisher answers every
        // request 30 ms later.
        let t0 = Instant::now();
        let mut k = KeyframeRequester::default();
        let mut sent = Vec::new();
        for t in (0..10_000u64).step_by(5) {
            if sent.last().is_some_and(|&s| t == s + 30) {
                k.on_keyframe();
            }
            if k.should_send(t0 + ms(t)) {
                sent.push(t);
            }
        }
        let per_second = sent.len() as f64 / 10.0;
        assert!(
            per_second <= 1000.0 / MIN_INTERVAL.as_millis() as f64,
            "{per_second}"
        );
        assert!(per_second >= 4.0, "{per_second}");
    }
}
