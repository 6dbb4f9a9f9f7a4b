//! One clock for everything the lab records: wall-clock milliseconds, the clock Chromium's
//! pages stamp their samples with too.
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
