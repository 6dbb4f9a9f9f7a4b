//! `GET /metrics`: the server's gauges and counters in the Prometheus text exposition
//! format (version 0.0.4), written by hand.
use std::fmt::{Display, Write};

use roomcast_protocol::{Role, TrackKind};
use roomcast_sfu::Sfu;

use crate::admission::{Refusal, RefusalCounts};

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the HTTP layer counts: connections open now and everything refused.
pub struct AdmissionGauges<'a> {
    pub refused: &'a RefusalCounts,
    /// `None` when the router is served without the server's own listener.
    pub http_connections: Option<usize>,
    pub websockets: usize,
}

/// Renders every metric of `sfu` and of the HTTP layer as of now.
pub fn render(sfu: &Sfu, admission: &AdmissionGauges<'_>) -> String {
    let mut out = Exposition::default();
    let rooms = sfu.rooms();
    let mut roles = [0u64; 3];
    let mut tracks = [0u64; 2];
    for room in &rooms {
        for p in room.participants() {
            roles[role_index(p.role)] += 1;
            for t in &p.tracks {
                tracks[kind_index(t.kind)] += 1;
            }
        }
    }
    let stats = sfu.stats();
    let m = &stats.media;

    out.family("roomcast_rooms", "gauge", "Rooms open now.");
    out.sample("roomcast_rooms", &[], rooms.len());
    out.family(
        "roomcast_participants",
        "gauge",
        "Participants in a room now, by role.",
    );
    for (role, n) in ["host", "presenter", "audience"].iter().zip(roles) {
        out.sample("roomcast_participants", &[("role", role)], n);
    }
    out.family("roomcast_tracks", "gauge", "Published tracks now, by kind.");
    for (kind, n) in ["audio", "video"].iter().zip(tracks) {
        out.sample("roomcast_tracks", &[("kind", kind)], n);
    }

    out.counter(
        "roomcast_packets_in_total",
        "RTP packets received from publishers.",
        m.packets_in,
    );
    out.counter(
        "roomcast_bytes_in_total",
        "RTP payload bytes received from publishers.",
        m.bytes_in,
    );
    out.family(
        "roomcast_packets_out_total",
        "counter",
        "RTP packets forwarded to subscribers (retransmissions excluded), by track kind.",
    );
    out.sample(
        "roomcast_packets_out_total",
        &[("kind", "audio")],
        m.audio_packets_out,
    );
    out.sample(
        "roomcast_packets_out_total",
        &[("kind", "video")],
        m.video_packets_out,
    );
    out.counter(
        "roomcast_bytes_out_total",
        "RTP payload bytes forwarded to subscribers (retransmissions excluded).",
        m.bytes_out,
    );
    out.family(
        "roomcast_dropped_packets_total",
        "counter",
        "Packets not forwarded to one subscriber, by reason.",
    );
    let d = &m.dropped;
    for (reason, n) in [
        ("waiting_keyframe", d.waiting_keyframe),
        ("no_codec", d.no_codec),
        ("too_old", d.too_old),
        ("padding", d.padding),
        ("write_failed", d.write_failed),
        ("not_connected", d.not_connected),
        ("not_negotiated", d.not_negotiated),
    ] {
        out.sample("roomcast_dropped_packets_total", &[("reason", reason)], n);
    }
    out.counter(
        "roomcast_nacks_received_total",
        "Sequence numbers NACKed by subscribers.",
        m.nacks_received,
    );
    out.counter(
        "roomcast_retransmits_total",
        "NACKed packets retransmitted from the cache.",
        m.retransmits,
    );
    out.counter(
        "roomcast_retransmit_bytes_total",
        "Payload bytes of those retransmissions (not in roomcast_bytes_out_total).",
        m.retransmit_bytes,
    );
    out.counter(
        "roomcast_retransmit_misses_total",
        "NACKed packets no longer in the cache.",
        m.retransmit_misses,
    );
    out.family(
        "roomcast_retransmits_refused_total",
        "counter",
        "NACKed packets not resent, by reason: resent within a round trip already (duplicate), or over the subscriber's retransmission budget (budget).",
    );
    let r = &m.retransmits_refused;
    for (reason, n) in [("duplicate", r.duplicate), ("budget", r.budget)] {
        out.sample(
            "roomcast_retransmits_refused_total",
            &[("reason", reason)],
            n,
        );
    }
    out.counter(
        "roomcast_plis_received_total",
        "Keyframe requests (PLI) received from subscribers.",
        m.plis_received,
    );
    out.counter(
        "roomcast_plis_sent_total",
        "Keyframe requests (PLI) sent to publishers.",
        m.plis_sent,
    );
    out.counter(
        "roomcast_layer_switches_total",
        "Times a subscriber's video moved to another simulcast layer.",
        m.layer_switches,
    );

    out.family(
        "roomcast_udp_dropped_total",
        "counter",
        "Datagrams the media port dropped before any connection saw them, by reason.",
    );
    for (reason, n) in sfu.peers.mux().drops().totals() {
        out.sample(
            "roomcast_udp_dropped_total",
            &[("reason", reason.label())],
            n,
        );
    }

    let checks = sfu.peers.mux().checks();
    out.family(
        "roomcast_ice_checks_total",
        "counter",
        "ICE checks (STUN binding requests) on the media port: received from clients, and sent by the server's agents.",
    );
    for (direction, n) in [("received", checks.received()), ("sent", checks.sent())] {
        out.sample("roomcast_ice_checks_total", &[("direction", direction)], n);
    }

    out.family(
        "roomcast_signaling_errors_total",
        "counter",
        "Signaling error messages sent to clients, by code.",
    );
    for (code, n) in sfu.metrics.signaling_errors() {
        out.sample("roomcast_signaling_errors_total", &[("code", code)], n);
    }

    render_admission(&mut out, admission);

    let join = sfu.metrics.join_histogram();
    let name = "roomcast_join_duration_seconds";
    out.family(
        name,
        "histogram",
        "Time from a join message to the joined reply, for successful joins.",
    );
    let bucket = format!("{name}_bucket");
    for (le, n) in &join.buckets {
        out.sample(&bucket, &[("le", &le.to_string())], n);
    }
    out.sample(&bucket, &[("le", "+Inf")], join.count);
    out.sample(&format!("{name}_sum"), &[], join.sum_seconds);
    out.sample(&format!("{name}_count"), &[], join.count);
    out.0
}

fn render_admission(out: &mut Exposition, admission: &AdmissionGauges<'_>) {
    if let Some(open) = admission.http_connections {
        out.family(
            "roomcast_http_connections",
            "gauge",
            "HTTP connections open now (WebSockets not counted once upgraded).",
        );
        out.sample("roomcast_http_connections", &[], open);
    }
    out.family(
        "roomcast_websockets",
        "gauge",
        "WebSocket connections open now.",
    );
    out.sample("roomcast_websockets", &[], admission.websockets);
    out.family(
        "roomcast_connections_refused_total",
        "counter",
        "Connections refused or cut off by the server's limits, by reason.",
    );
    for refusal in Refusal::ALL {
        out.sample(
            "roomcast_connections_refused_total",
            &[("reason", refusal.as_str())],
            admission.refused.get(refusal),
        );
    }
}

fn role_index(role: Role) -> usize {
    match role {
        Role::Host => 0,
        Role::Presenter => 1,
        Role::Audience => 2,
    }
}

fn kind_index(kind: TrackKind) -> usize {
    match kind {
        TrackKind::Audio => 0,
        TrackKind::Video => 1,
    }
}

#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape_label_value(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A counter family with one unlabelled sample.
    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }
}

/// Escapes `\`, `"` and newlines, as label values need.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `\` and newlines, as HELP text needs.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("x\ny"), "x\\ny");
    }

    #[test]
    fn samples_are_written_in_exposition_syntax() {
        let mut e = Exposition::default();
        e.family("roomcast_x_total", "counter", "An x.\nSecond line.");
        e.sample("roomcast_x_total", &[("code", "bad\"one"), ("k", "v")], 3);
        e.sample("roomcast_y", &[], 0.25);
        assert_eq!(
            e.0,
            "# HELP roomcast_x_total An x.\\nSecond line.\n\
             # TYPE roomcast_x_total counter\n\
             roomcast_x_total{code=\"bad\\\"one\",k=\"v\"} 3\n\
             roomcast_y 0.25\n"
        );
    }
}
