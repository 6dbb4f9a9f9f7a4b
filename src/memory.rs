//! Giving freed memory back to the system. glibc's allocator keeps what a thread freed in
//! that thread's arena for reuse, so the memory of a burst (a flood of connections, the
//! queues of clients that stopped reading) stays in the server's RSS long after it was freed.
//! A trim now and then returns the free pages; it costs a walk over the free lists
//! (milliseconds for a heap of hundreds of MiB), nothing when little changed.
use std::time::Duration;

/// How often freed memory is given back.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Returns free memory of every arena to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: malloc_trim only walks and releases the allocator's own free chunks; it takes
    // the arenas' locks like malloc does and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory by themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

/// Trims every [`TRIM_EVERY`] until `stop` turns `true`, off the async worker threads.
pub async fn trim_periodically(mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = tokio::task::spawn_blocking(trim).await;
            }
            _ = crate::http::shutdown_requested(&mut stop) => return,
        }
    }
}
