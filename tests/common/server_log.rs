//! What the server logged, shown when a test fails: its last [`TAIL_LINES`] lines on the
//! test's output, all of it in a file under `target/test-logs/`. A passing test leaves no
//! file.
//!
//! The binary ([`super::binary::ServeProcess`]) writes its log to its own file as it runs;
//! the handle deletes the file when dropped, or shows its end when dropped by a panic.
//! In-process servers log through this process's subscriber ([`super::init_logs`]), which
//! keeps the most recent [`RING_BYTES`] in memory; when a test thread that started a server
//! panics, they are written to a file and their end shown. That log is the test process's:
//! every in-process server of the test binary, and the bots, log there, so lines of other
//! tests running at the same time are mixed in.
use std::cell::Cell;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, PoisonError};

use super::browser::tail;

/// Lines of the server's log a failing test shows.
pub const TAIL_LINES: usize = 80;

/// The most of the in-process log kept in memory, in bytes; older lines are dropped.
pub const RING_BYTES: usize = 4 << 20;

/// The in-process servers' log filter without `RUST_LOG`: the binary's default, plus the
/// media path's debug lines, which come per change, not per packet (which layer a reader
/// bound to which SSRC, what a subscriber asked for and was allowed, whether packets go
/// out or wait for a keyframe, keyframe requests sent).
pub fn diagnosis_filter() -> String {
    format!("{},roomcast_sfu=debug", roomcast::SERVE_LOG_FILTER)
}

/// `target/test-logs/` (the cargo target dir of these tests), or one in the temp dir.
pub fn log_dir() -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR")
        .and_then(|tmp| Path::new(tmp).parent())
        .map_or_else(std::env::temp_dir, Path::to_path_buf);
    base.join("test-logs")
}

/// A new log file for the current test, `<test name>-<pid>-<n>.log`, opened to append.
pub fn create_log_file() -> io::Result<(PathBuf, File)> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let test: String = std::thread::current()
        .name()
        .unwrap_or("test")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = log_dir();
    let path = dir.join(format!("{test}-{}-{n}.log", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    Ok((path, file))
}

/// The end of `text`, the log saved at `path`, for a failure message.
pub fn shown(path: &Path, text: &str) -> String {
    format!(
        "server log, last {TAIL_LINES} lines (all of it in {}):\n{}",
        path.display(),
        tail(text, TAIL_LINES)
    )
}

/// The end of the log file at `path`, for a failure message.
pub fn shown_from_file(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => shown(path, &String::from_utf8_lossy(&bytes)),
        Err(e) => format!("server log {} unreadable: {e}", path.display()),
    }
}

/// The in-process log: the most recent lines, at most [`RING_BYTES`] of them.
struct Ring {
    lines: VecDeque<String>,
    bytes: usize,
    dropped: u64,
}

static RING: Mutex<Ring> = Mutex::new(Ring {
    lines: VecDeque::new(),
    bytes: 0,
    dropped: 0,
});

/// Writes formatted events into the ring (one write per event).
pub struct RingWriter;

impl io::Write for RingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = String::from_utf8_lossy(buf).into_owned();
        let mut ring = RING.lock().unwrap_or_else(PoisonError::into_inner);
        ring.bytes += line.len();
        ring.lines.push_back(line);
        while ring.bytes > RING_BYTES {
            let Some(old) = ring.lines.pop_front() else {
                break;
            };
            ring.bytes -= old.len();
            ring.dropped += 1;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// Whether this thread started an in-process server: its panics show the log.
    static STARTED_A_SERVER: Cell<bool> = const { Cell::new(false) };
}

/// Called on the thread that starts an in-process server (a test's own thread): if it
/// panics, the in-process log is saved and its end shown after the panic message.
pub fn show_on_panic() {
    STARTED_A_SERVER.set(true);
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            if STARTED_A_SERVER.get() {
                save_ring();
            }
        }));
    });
}

/// Writes the ring to a new file and shows its end.
fn save_ring() {
    let (dropped, text) = {
        let ring = RING.lock().unwrap_or_else(PoisonError::into_inner);
        (
            ring.dropped,
            ring.lines.iter().map(String::as_str).collect::<String>(),
        )
    };
    let text = match dropped {
        0 => text,
        n => format!("({n} older lines dropped)\n{text}"),
    };
    let saved = create_log_file().and_then(|(path, mut file)| {
        io::Write::write_all(&mut file, text.as_bytes())?;
        Ok(path)
    });
    match saved {
        Ok(path) => eprintln!("{}", shown(&path, &text)),
        Err(e) => eprintln!(
            "server log not saved ({e}), last {TAIL_LINES} lines:\n{}",
            tail(&text, TAIL_LINES)
        ),
    }
}
