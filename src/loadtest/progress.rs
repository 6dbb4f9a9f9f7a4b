//! What `roomcast bots` shows on stderr while it runs: a live indicatif line on a terminal,
//! a plain status line every few seconds otherwise, nothing with `--quiet`. Log lines go
//! through [`LogWriter`] so they print above the live line instead of through it.
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use roomcast_bots::Progress;

/// How often the plain display prints a status line.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The live line, while there is one, for [`LogWriter`].
static LIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// What the run is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    Joining,
    WaitingForTracks,
    Measuring { since: Instant, duration: Duration },
    Churn { cycles: usize },
    Leaving,
}

impl Phase {
    fn label(&self) -> &'static str {
        match self {
            Phase::Joining => "joining",
            Phase::WaitingForTracks => "tracks",
            Phase::Measuring { .. } => "measuring",
            Phase::Churn { .. } => "churn",
            Phase::Leaving => "leaving",
        }
    }

    /// Position and length of the bar.
    fn bar(&self, p: &Progress) -> (u64, u64) {
        match self {
            Phase::Joining => (
                (p.bots_connected + p.bots_failed) as u64,
                p.bots_expected as u64,
            ),
            Phase::WaitingForTracks => (p.tracks_received as u64, p.tracks_expected as u64),
            Phase::Measuring { since, duration } => (
                since.elapsed().min(*duration).as_millis() as u64,
                duration.as_millis() as u64,
            ),
            Phase::Churn { .. } | Phase::Leaving => (0, 1),
        }
    }

    fn detail(&self) -> String {
        match self {
            Phase::Measuring { since, duration } => format!(
                " {:.0}/{:.0}s",
                since.elapsed().min(*duration).as_secs_f64(),
                duration.as_secs_f64()
            ),
            Phase::Churn { cycles } => format!(" {cycles} cycles"),
            _ => String::new(),
        }
    }
}

/// Bits per second for people: `850 kbit/s`, `12.3 Mbit/s`.
pub fn bitrate(bps: f64) -> String {
    if bps >= 1e6 {
        format!("{:.1} Mbit/s", bps / 1e6)
    } else {
        format!("{:.0} kbit/s", bps / 1e3)
    }
}

fn status(p: &Progress) -> String {
    format!(
        "bots {}/{}{} · tracks {}/{} · {} · loss {:.2}%",
        p.bots_connected,
        p.bots_expected,
        if p.bots_failed > 0 {
            format!(" ({} failed)", p.bots_failed)
        } else {
            String::new()
        },
        p.tracks_received,
        p.tracks_expected,
        bitrate(p.rx_bitrate_bps),
        p.loss_percent
    )
}

enum Mode {
    Live(ProgressBar),
    Plain {
        started: Instant,
        printed_at: Option<Instant>,
        phase: Option<&'static str>,
    },
    Quiet,
}

pub struct Display {
    mode: Mode,
}

impl Display {
    /// Live on a terminal, plain lines when stderr is not one, nothing when `quiet`.
    pub fn new(quiet: bool) -> Display {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {prefix:<16} [{bar:20}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            if let Ok(mut live) = LIVE.lock() {
                *live = Some(bar.clone());
            }
            Mode::Live(bar)
        } else {
            Mode::Plain {
                started: Instant::now(),
                printed_at: None,
                phase: None,
            }
        };
        Display { mode }
    }

    pub fn update(&mut self, phase: &Phase, progress: &Progress) {
        match &mut self.mode {
            Mode::Live(bar) => {
                let (position, length) = phase.bar(progress);
                bar.set_length(length.max(1));
                bar.set_position(position);
                bar.set_prefix(format!("{}{}", phase.label(), phase.detail()));
                bar.set_message(status(progress));
            }
            Mode::Plain {
                started,
                printed_at,
                phase: last_phase,
            } => {
                let changed = *last_phase != Some(phase.label());
                let due = printed_at.is_none_or(|at| at.elapsed() >= PLAIN_EVERY);
                if changed || due {
                    *last_phase = Some(phase.label());
                    *printed_at = Some(Instant::now());
                    eprintln!(
                        "[{:>6.1}s] {}{}: {}",
                        started.elapsed().as_secs_f64(),
                        phase.label(),
                        phase.detail(),
                        status(progress)
                    );
                }
            }
            Mode::Quiet => {}
        }
    }

    /// Prints one line to stderr without breaking the live display.
    pub fn line(&self, text: &str) {
        match &self.mode {
            Mode::Live(bar) => bar.suspend(|| eprintln!("{text}")),
            _ => eprintln!("{text}"),
        }
    }

    /// Removes the live line; later output goes straight to the terminal.
    pub fn finish(&mut self) {
        if let Mode::Live(bar) = &self.mode {
            bar.finish_and_clear();
            if let Ok(mut live) = LIVE.lock() {
                *live = None;
            }
        }
        self.mode = Mode::Quiet;
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A `tracing` writer to stderr that prints above the live line, if there is one.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

/// One log event, buffered and written whole when dropped.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        let write = move || {
            let _ = std::io::stderr().write_all(&bytes);
        };
        let live = LIVE.lock().ok().and_then(|live| live.clone());
        match live {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_read_well() {
        assert_eq!(bitrate(0.0), "0 kbit/s");
        assert_eq!(bitrate(850_400.0), "850 kbit/s");
        assert_eq!(bitrate(12_345_678.0), "12.3 Mbit/s");
    }

    #[test]
    fn status_line() {
        let p = Progress {
            bots_expected: 10,
            bots_connected: 9,
            bots_failed: 1,
            joins_finished: true,
            tracks_received: 30,
            tracks_expected: 32,
            rx_bitrate_bps: 2_500_000.0,
            loss_percent: 0.126,
            packets: 1000,
        };
        assert_eq!(
            status(&p),
            "bots 9/10 (1 failed) · tracks 30/32 · 2.5 Mbit/s · loss 0.13%"
        );
    }
}
