//! The report as text for stdout: one row per received track (all of them, so operators can
//! grep), then the summary.
use std::fmt::Write;

use roomcast_bots::{CpuUse, LeaveResult, Percentiles, Report, TrackRow};
use roomcast_protocol::TrackKind;

use super::progress::bitrate;

/// Missing tracks listed by name before "... and N more".
const MISSING_SHOWN: usize = 20;

const HEADERS: [&str; 14] = [
    "room",
    "subscriber",
    "publisher",
    "kind",
    "codec",
    "size",
    "packets",
    "kbps",
    "loss%",
    "jitter_ms",
    "first_ms",
    "freezes",
    "max_gap_ms",
    "state",
];

/// Names are left-aligned, the rest (size and numbers) right-aligned.
const LEFT_ALIGNED: usize = 5;

fn cells(row: &TrackRow) -> [String; 14] {
    [
        row.room.clone(),
        row.subscriber.clone(),
        row.publisher.clone(),
        kind(row.kind).to_owned(),
        row.codec
            .split_once('/')
            .map_or(row.codec.as_str(), |(_, c)| c)
            .to_owned(),
        frame_size(row),
        row.packets.to_string(),
        format!("{:.0}", row.bitrate_kbps),
        format!("{:.2}", row.loss_percent),
        format!("{:.1}", row.jitter_ms),
        row.time_to_first_packet_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0}")),
        row.freezes.to_string(),
        format!("{:.0}", row.max_gap_ms),
        if row.ended {
            "ended"
        } else if row.packets == 0 {
            "silent"
        } else {
            "ok"
        }
        .to_owned(),
    ]
}

/// The latest received keyframe's size, e.g. `1280x720`; `-` for audio or before any.
fn frame_size(row: &TrackRow) -> String {
    if row.frame_width == 0 || row.frame_height == 0 {
        "-".to_owned()
    } else {
        format!("{}x{}", row.frame_width, row.frame_height)
    }
}

fn kind(kind: TrackKind) -> &'static str {
    match kind {
        TrackKind::Audio => "audio",
        TrackKind::Video => "video",
    }
}

/// Left-aligned names, right-aligned numbers, two spaces between columns.
pub fn track_table(rows: &[TrackRow]) -> String {
    let rows: Vec<[String; 14]> = rows.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            if i < LEFT_ALIGNED {
                let _ = write!(text, "{cell:<width$}");
            } else {
                let _ = write!(text, "{cell:>width$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&HEADERS.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    out
}

fn ms(p: &Percentiles) -> String {
    ms_with(p, 0)
}

fn ms_with(p: &Percentiles, decimals: usize) -> String {
    match (p.p50, p.p95, p.max) {
        (Some(p50), Some(p95), Some(max)) => {
            format!("p50 {p50:.decimals$} ms, p95 {p95:.decimals$} ms, max {max:.decimals$} ms")
        }
        _ => "-".to_owned(),
    }
}

/// The summary block, ending with the verdict line.
pub fn summary(report: &Report, leave: Option<LeaveResult>, interrupted: bool) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let mut add = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<12}{value}");
    };
    let title = if s.window {
        format!("summary ({:.1} s measured)", s.duration_secs)
    } else {
        format!("summary (whole run, {:.1} s)", s.duration_secs)
    };
    let mut head = String::new();
    let _ = writeln!(
        head,
        "{title}{}",
        if interrupted {
            " — interrupted by Ctrl-C"
        } else {
            ""
        }
    );
    add(
        "bots",
        format!(
            "{}/{} joined, {} failed",
            s.bots_joined, s.bots_expected, s.bots_failed
        ),
    );
    add(
        "tracks",
        format!(
            "{}/{} received, {} missing",
            s.tracks_received, s.tracks_expected, s.missing_tracks
        ),
    );
    for missing in s.missing.iter().take(MISSING_SHOWN) {
        let publisher = match &missing.publisher_connection {
            Some(state) => format!(", the publisher's {state}"),
            None => String::new(),
        };
        add(
            "",
            format!(
                "missing: {} ← {} {} (room {}; media connection {}{publisher})",
                missing.subscriber,
                missing.publisher,
                kind(missing.kind),
                missing.room,
                missing.connection
            ),
        );
    }
    if s.missing.len() > MISSING_SHOWN {
        add(
            "",
            format!(
                "... and {} more (all in --json)",
                s.missing.len() - MISSING_SHOWN
            ),
        );
    }
    add(
        "bitrate",
        format!(
            "{} in total; per track {:.0} kbit/s on average (audio {:.0}, video {:.0})",
            bitrate(s.total_bitrate_kbps * 1000.0),
            s.avg_bitrate_kbps,
            s.avg_audio_kbps,
            s.avg_video_kbps
        ),
    );
    add(
        "packets",
        format!(
            "{} received, {} lost ({:.2}%)",
            s.packets, s.lost, s.loss_percent
        ),
    );
    add("jitter", ms_with(&s.jitter_ms, 1));
    add("freezes", s.freezes.to_string());
    add(
        "vp8 ids",
        format!("{} picture id breaks", s.picture_id_breaks),
    );
    add("join", ms(&s.join_ms));
    add("first media", ms(&s.first_media_ms));
    add(
        "errors",
        if s.errors_by_code.is_empty() {
            "none".to_owned()
        } else {
            s.errors_by_code
                .iter()
                .map(|(code, n)| format!("{code} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    if let Some(churn) = &report.churn {
        add(
            "churn",
            format!(
                "{}/{} join+media+leave cycles in {} ({} failed{}); join {}; first media {}",
                churn.cycles_done,
                churn.cycles,
                churn.room,
                churn.failures,
                if churn.errors_by_code.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        churn
                            .errors_by_code
                            .iter()
                            .map(|(code, n)| format!("{code} ×{n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                ms(&churn.join_ms),
                ms(&churn.first_media_ms)
            ),
        );
    }
    if let Some(leave) = leave {
        add(
            "leave",
            format!("{} left cleanly, {} did not", leave.left, leave.failed),
        );
    }
    if let Some(cpu) = &report.cpu {
        add("cpu", cpu_use(cpu));
    }
    head + &out
}

/// The bots' and everything else's CPU over the window, and what that means for the
/// figures above.
pub fn cpu_use(cpu: &CpuUse) -> String {
    let verdict = if cpu.machine_saturated() {
        ": the machine was saturated, so loss, jitter and freezes may be the bots' (or \
         the machine's) own doing, not the server's"
    } else {
        ""
    };
    format!(
        "bots {:.2} cores, everything else {:.2}, of {}{verdict}",
        cpu.bots_cores, cpu.others_cores, cpu.cores
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subscriber: &str, packets: u64) -> TrackRow {
        TrackRow {
            subscriber: subscriber.into(),
            subscriber_id: "PA1".into(),
            room: "load".into(),
            publisher: "bot-pub-0".into(),
            publisher_id: "PA2".into(),
            track_id: "TR1".into(),
            kind: TrackKind::Video,
            codec: "video/VP8".into(),
            packets,
            bytes: 1,
            bitrate_kbps: 812.4,
            lost: 1,
            loss_percent: 0.5,
            jitter_ms: 1.26,
            time_to_first_packet_ms: Some(431.0),
            freezes: 0,
            max_gap_ms: 66.0,
            picture_id_breaks: 0,
            keyframes: 3,
            frame_width: 1280,
            frame_height: 720,
            ended: false,
        }
    }

    #[test]
    fn table_aligns_columns_and_lists_every_row() {
        let rows: Vec<TrackRow> = (0..150)
            .map(|i| row(&format!("bot-sub-{i}"), 100 + i))
            .collect();
        let table = track_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 151);
        assert!(lines[0].starts_with("room  subscriber   publisher"));
        assert!(lines[1].contains("bot-sub-0 "));
        assert!(lines[1].contains("  VP8  "), "{}", lines[1]);
        assert!(lines[1].contains("  1280x720  "), "{}", lines[1]);
        assert!(lines[1].contains("  812  "));
        assert!(lines[1].contains("  1.3  "));
        assert!(lines[1].ends_with("ok"));
        // Right-aligned numbers line up with their header.
        let at = lines[0].find("packets").unwrap() + "packets".len();
        assert_eq!(&lines[1][at - 3..at], "100");
        assert_eq!(&lines[150][at - 3..at], "249");
        // The size is right-aligned too; audio and unknown sizes are `-`.
        let audio = TrackRow {
            kind: TrackKind::Audio,
            codec: "audio/opus".into(),
            frame_width: 0,
            frame_height: 0,
            ..row("bot-sub-0", 7)
        };
        let table = track_table(&[row("bot-sub-0", 7), audio]);
        let lines: Vec<&str> = table.lines().collect();
        let end = lines[0].find("size").unwrap() + "size".len();
        assert_eq!(&lines[1][end - 8..end], "1280x720");
        assert_eq!(&lines[2][end - 1..end], "-");
    }

    #[test]
    fn cpu_line_says_when_the_machine_was_saturated() {
        let busy = CpuUse {
            bots_cores: 1.06,
            others_cores: 0.75,
            cores: 2,
            window_secs: 30.0,
        };
        let line = cpu_use(&busy);
        assert!(
            line.starts_with(
                "bots 1.06 cores, everything else 0.75, of 2: the machine was saturated"
            ),
            "{line}"
        );
        let calm = CpuUse {
            others_cores: 0.4,
            ..busy
        };
        assert_eq!(
            cpu_use(&calm),
            "bots 1.06 cores, everything else 0.40, of 2"
        );
    }
}
