//! `GET /metrics` through real HTTP while real bots exchange media: the gauges match the
//! room, counters grow while media flows, errors and joins are counted, and every line is
//! valid Prometheus text exposition syntax.
mod common;

use std::collections::HashMap;

use common::*;
use roomcast_bots::{BotConfig, RemoteTrackStats, VideoCodec};
use roomcast_protocol::{ClientMessage, Quality, Role, TrackKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One scrape: the `Content-Type` and the body.
async fn scrape(server: &roomcast::RunningServer) -> (String, String) {
    let mut conn = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .expect("HTTP connects");
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: roomcast\r\n\r\n")
        .await
        .expect("request sent");
    let mut raw = Vec::new();
    tokio::time::timeout(MESSAGE_TIMEOUT, conn.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("response read");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .expect("a Content-Type");
    (content_type, body.to_owned())
}

/// Samples by name and sorted `label="value"` pairs.
#[derive(Debug, Default)]
struct Metrics {
    samples: HashMap<(String, Labels), f64>,
    types: HashMap<String, String>,
}

impl Metrics {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.samples.get(&(name.to_owned(), labels)).copied()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    /// The sum of every sample of `name`, whatever its labels.
    fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

type Labels = Vec<(String, String)>;

/// Parses `{a="x",b="y"}` at the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut rest = s.strip_prefix('{').ok_or("no {")?;
    let mut labels = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once("=\"").ok_or("no =\"")?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (i, '"') => break i,
                (_, '\n') => return Err("newline in label value".into()),
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        rest = &after[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("labels not separated by ,".into());
        }
    }
}

/// Checks every line's syntax and collects the samples.
fn parse(body: &str) -> Metrics {
    let mut m = Metrics::default();
    assert!(body.ends_with('\n'), "the exposition ends with a newline");
    for line in body.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_)) => {
                    assert!(is_metric_name(name), "bad HELP line {line:?}")
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(is_metric_name(name), "bad TYPE line {line:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "bad type in {line:?}"
                    );
                    let before = m.types.insert(name.to_owned(), kind.to_owned());
                    assert!(before.is_none(), "TYPE twice for {name}");
                }
                _ => panic!("a comment that is neither HELP nor TYPE: {line:?}"),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        assert!(is_metric_name(name), "bad metric name in {line:?}");
        let (mut labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).unwrap_or_else(|e| panic!("{e} in {line:?}"))
        } else {
            (Vec::new(), &line[name_end..])
        };
        let mut fields = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value in {line:?}"))
            .split(' ');
        let value = fields
            .next()
            .and_then(parse_value)
            .unwrap_or_else(|| panic!("bad value in {line:?}"));
        if let Some(ts) = fields.next() {
            assert!(ts.parse::<i64>().is_ok(), "bad timestamp in {line:?}");
        }
        assert!(fields.next().is_none(), "trailing fields in {line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                let base = name.strip_suffix(s)?;
                (m.types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        assert!(m.types.contains_key(family), "no TYPE before {line:?}");
        assert!(name.starts_with("roomcast_"), "unprefixed {line:?}");
        labels.sort();
        let before = m.samples.insert((name.to_owned(), labels), value);
        assert!(before.is_none(), "sample twice: {line:?}");
    }
    m
}

/// Buckets of `histogram` in order, checked cumulative and ending in `+Inf` = `_count`.
fn check_histogram(m: &Metrics, histogram: &str) {
    let mut buckets: Vec<(f64, f64)> = m
        .samples
        .iter()
        .filter(|((n, _), _)| n == &format!("{histogram}_bucket"))
        .map(|((_, labels), v)| {
            let le = labels.iter().find(|(k, _)| k == "le").expect("le label");
            (parse_value(&le.1).expect("le value"), *v)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() >= 2, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    let last = buckets.last().unwrap();
    assert_eq!(last.0, f64::INFINITY);
    assert_eq!(last.1, m.value(&format!("{histogram}_count"), &[]));
    assert!(m.value(&format!("{histogram}_sum"), &[]) >= 0.0);
}

fn packets_out(m: &Metrics) -> f64 {
    m.sum("roomcast_packets_out_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_room_and_its_media() {
    let server = start_server().await;
    let (content_type, body) = scrape(&server).await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let empty = parse(&body);
    assert_eq!(empty.value("roomcast_rooms", &[]), 0.0);
    assert_eq!(
        empty.value("roomcast_join_duration_seconds_count", &[]),
        0.0
    );

    let ann =
        join_with(BotConfig::new(server.ws_url(), "metrics", "ann").with_role(Role::Host)).await;
    let bob = join(&server, "metrics", "bob").await;
    let carl = join_with(
        BotConfig::new(server.ws_url(), "metrics", "carl")
            .with_role(Role::Audience)
            .with_publish(false, None),
    )
    .await;
    let (a, b) = (
        ann.participant_id().to_owned(),
        bob.participant_id().to_owned(),
    );
    for (bot, from) in [(&ann, &b), (&bob, &a), (&carl, &a), (&carl, &b)] {
        bot.wait_for_media(|t| has_video_from(t, from, 20, 640, 360), MEDIA_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{} gets {from}: {e}", bot.participant_id()));
    }

    let first = parse(&scrape(&server).await.1);
    assert_eq!(first.value("roomcast_rooms", &[]), 1.0);
    assert_eq!(
        first.value("roomcast_participants", &[("role", "host")]),
        1.0
    );
    assert_eq!(
        first.value("roomcast_participants", &[("role", "presenter")]),
        1.0
    );
    assert_eq!(
        first.value("roomcast_participants", &[("role", "audience")]),
        1.0
    );
    assert_eq!(first.value("roomcast_tracks", &[("kind", "audio")]), 2.0);
    assert_eq!(first.value("roomcast_tracks", &[("kind", "video")]), 2.0);
    assert!(first.value("roomcast_packets_in_total", &[]) > 0.0);
    assert!(first.value("roomcast_bytes_out_total", &[]) > 0.0);
    assert!(first.value("roomcast_packets_out_total", &[("kind", "video")]) > 0.0);
    assert!(first.value("roomcast_packets_out_total", &[("kind", "audio")]) > 0.0);
    for reason in [
        "waiting_keyframe",
        "no_codec",
        "too_old",
        "padding",
        "write_failed",
        "not_connected",
        "not_negotiated",
    ] {
        first.value("roomcast_dropped_packets_total", &[("reason", reason)]);
    }
    assert_eq!(first.types["roomcast_retransmits_refused_total"], "counter");
    for reason in ["duplicate", "budget"] {
        first.value("roomcast_retransmits_refused_total", &[("reason", reason)]);
    }
    for name in [
        "roomcast_nacks_received_total",
        "roomcast_retransmits_total",
        "roomcast_retransmit_bytes_total",
        "roomcast_retransmit_misses_total",
        "roomcast_plis_received_total",
        "roomcast_plis_sent_total",
        "roomcast_layer_switches_total",
    ] {
        assert_eq!(first.types[name], "counter", "{name}");
        first.value(name, &[]);
    }
    assert_eq!(first.types["roomcast_join_duration_seconds"], "histogram");
    assert_eq!(
        first.value("roomcast_join_duration_seconds_count", &[]),
        3.0
    );
    check_histogram(&first, "roomcast_join_duration_seconds");

    // Media keeps flowing, so the counters grow between scrapes.
    assert_media_keeps_flowing(&carl, &[&a, &b]).await;
    let second = parse(&scrape(&server).await.1);
    assert!(
        packets_out(&second) > packets_out(&first),
        "{} then {}",
        packets_out(&first),
        packets_out(&second)
    );
    assert!(
        second.value("roomcast_packets_in_total", &[])
            > first.value("roomcast_packets_in_total", &[])
    );

    // A malformed message is answered with bad_request, and counted.
    let before = first
        .get(
            "roomcast_signaling_errors_total",
            &[("code", "bad_request")],
        )
        .unwrap_or(0.0);
    let raw = common::raw::connect(&server.ws_url()).await;
    raw.expect_error("{not json", "bad_request").await;
    raw.expect_error(r#"{"type":"leave_me"}"#, "bad_request")
        .await;
    let third = parse(&scrape(&server).await.1);
    assert_eq!(
        third.value(
            "roomcast_signaling_errors_total",
            &[("code", "bad_request")]
        ),
        before + 2.0
    );
    // The raw client never joined: still three joins, and it is nobody's participant.
    assert_eq!(
        third.value("roomcast_join_duration_seconds_count", &[]),
        3.0
    );
    assert_eq!(third.sum("roomcast_participants"), 3.0);

    // Leaving updates the gauges; totals stay.
    carl.leave().await.expect("carl leaves");
    let fourth = parse(&scrape(&server).await.1);
    assert_eq!(
        fourth.value("roomcast_participants", &[("role", "audience")]),
        0.0
    );
    assert!(packets_out(&fourth) >= packets_out(&third));
}

fn video_width(tracks: &[RemoteTrackStats], publisher: &str) -> Option<u16> {
    tracks
        .iter()
        .find(|t| t.publisher_id == publisher && t.kind == TrackKind::Video && !t.ended)
        .and_then(|t| t.vp8_width)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_layer_switches_are_counted() {
    let server = start_server().await;
    let publisher = join_with(
        BotConfig::new(server.ws_url(), "layers", "publisher")
            .with_publish(false, Some(VideoCodec::Vp8))
            .with_simulcast(true),
    )
    .await;
    let viewer =
        join_with(BotConfig::new(server.ws_url(), "layers", "viewer").with_publish(false, None))
            .await;
    let p = publisher.participant_id().to_owned();
    viewer
        .wait_for_media(|t| video_width(t, &p).is_some_and(|w| w > 0), MEDIA_TIMEOUT)
        .await
        .expect("the viewer gets video");
    let track_id = viewer
        .remote_tracks()
        .iter()
        .find(|t| t.publisher_id == p && t.kind == TrackKind::Video)
        .map(|t| t.track_id.clone())
        .expect("a video track");
    let before = parse(&scrape(&server).await.1).value("roomcast_layer_switches_total", &[]);
    for (quality, width) in [(Quality::Low, 320), (Quality::High, 1280)] {
        viewer
            .send(&ClientMessage::SetQuality {
                track_id: track_id.clone(),
                quality,
            })
            .await
            .expect("set_quality sent");
        viewer
            .wait_for_media(|t| video_width(t, &p) == Some(width), MEDIA_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("no switch to {width} wide: {e}"));
    }
    let after = parse(&scrape(&server).await.1).value("roomcast_layer_switches_total", &[]);
    assert!(after >= before + 2.0, "{before} then {after}");
    let stats = server.stats();
    assert!(stats.media.layer_switches as f64 >= after);
}

#[test]
fn the_parser_refuses_bad_lines() {
    for bad in [
        "roomcast_x 1 2 3\n",
        "# TYPE roomcast_x counter\nroomcast_x{a=\"b} 1\n",
        "# TYPE roomcast_x counter\nroomcast_x{a=\"b\\q\"} 1\n",
        "# TYPE roomcast_x counter\nroomcast_x{1a=\"b\"} 1\n",
        "# TYPE roomcast_x counter\nroomcast_x one\n",
        "# TYPE roomcast_x counter\nroomcast_x\n",
        "roomcast_y 1\n",
    ] {
        let result = std::panic::catch_unwind(|| parse(bad));
        assert!(result.is_err(), "accepted {bad:?}");
    }
    let ok = parse(
        "# HELP roomcast_x An x.\n# TYPE roomcast_x counter\nroomcast_x{a=\"q\\\"\\\\\"} 1\n",
    );
    assert_eq!(ok.value("roomcast_x", &[("a", "q\"\\")]), 1.0);
}
