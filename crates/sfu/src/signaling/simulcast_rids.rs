//! Which of a publisher's simulcast streams is the lowest, from what its offer says rather than
//! from which browser wrote it. Browsers differ: Chrome and Safari list the encodings as the
//! page gave them, Firefox too, but pages written for older Firefox list them highest first,
//! and rid names are the page's choice. The evidence, strongest first:
//!
//! 1. RFC 8851 restrictions on the `a=rid` lines (`max-fs`, `max-width`, `max-height`,
//!    `max-br`, `max-pps`): when every rid carries the same one, smaller is lower.
//! 2. Rid names from one well-known ladder (`q`/`h`/`f`, `l`/`m`/`h`, `low`/`mid`/`high`, …).
//! 3. Otherwise the order of `a=simulcast:send` (else of the `a=rid` lines), lowest first: the
//!    W3C default `scaleResolutionDownBy` makes the last encoding the full-size one.
//!
//! `a=simulcast` is read in the RFC 8853 syntax browsers write today (`send q;h;f`, `~` for a
//! stream that starts paused, `,` between alternatives of one stream, whose first is taken)
//! and in the draft syntax older Firefox wrote (`send rid=q;h;f`).
use crate::media::layer_selector::MAX_LAYERS;

/// Ladders of rid names, lowest first. A rid set is ranked by one only if all its rids are in it.
const LADDERS: [&[&str]; 5] = [
    &["q", "h", "f"],
    &["l", "m", "h"],
    &["low", "mid", "high"],
    &["lo", "mid", "hi"],
    &["low", "medium", "high"],
];

/// Restrictions that say how large a stream is, in the order they are trusted.
const SIZE_RESTRICTIONS: [&str; 5] = ["max-fs", "max-width", "max-height", "max-br", "max-pps"];

/// One `a=rid:<id> send [restrictions]` line of an m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRid {
    pub id: String,
    /// `key=value` pairs after the direction, e.g. `max-width=1280`.
    restrictions: Vec<(String, String)>,
}

impl SendRid {
    /// Parses the value of an `a=rid` attribute; `None` unless its direction is `send`.
    pub fn parse(value: &str) -> Option<SendRid> {
        let mut parts = value.split_whitespace();
        let id = parts.next()?;
        if parts.next()? != "send" {
            return None;
        }
        let restrictions = parts
            .flat_map(|p| p.split(';'))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Some(SendRid {
            id: id.to_owned(),
            restrictions,
        })
    }

    fn restriction(&self, key: &str) -> Option<u64> {
        self.restrictions
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    }
}

/// The send streams of an `a=simulcast` value, in its order: `send q;h;f`, `send rid=q;h;f`,
/// `recv x send ~q;h,h2;f` all give the first rid of each stream.
pub fn simulcast_send_order(value: &str) -> Vec<String> {
    let mut words = value.split_whitespace();
    while let Some(word) = words.next() {
        if word != "send" {
            continue;
        }
        let Some(list) = words.next() else { break };
        let list = list.strip_prefix("rid=").unwrap_or(list);
        return list
            .split(';')
            .filter_map(|stream| stream.split(',').next())
            .map(|rid| rid.trim_start_matches('~').to_owned())
            .filter(|rid| !rid.is_empty())
            .collect();
    }
    Vec::new()
}

/// The m-line's simulcast layers, lowest first, at most [`MAX_LAYERS`] (the lowest ones); empty
/// with fewer than two send rids. `simulcast_order` is [`simulcast_send_order`] of the
/// m-line's `a=simulcast`, if it has one; rids it does not list are left out when it lists any.
pub fn layers_lowest_first(rids: &[SendRid], simulcast_order: &[String]) -> Vec<String> {
    let mut streams: Vec<&SendRid> = if simulcast_order.is_empty() {
        rids.iter().collect()
    } else {
        simulcast_order
            .iter()
            .filter_map(|id| rids.iter().find(|r| &r.id == id))
            .collect()
    };
    streams.dedup_by(|a, b| a.id == b.id);
    if streams.len() < 2 {
        return Vec::new();
    }
    if let Some(key) = SIZE_RESTRICTIONS
        .into_iter()
        .find(|key| streams.iter().all(|r| r.restriction(key).is_some()))
    {
        streams.sort_by_key(|r| r.restriction(key));
    } else if let Some(ladder) = LADDERS.iter().find(|ladder| {
        streams
            .iter()
            .all(|r| ladder.iter().any(|name| r.id.eq_ignore_ascii_case(name)))
    }) {
        streams.sort_by_key(|r| {
            ladder
                .iter()
                .position(|name| r.id.eq_ignore_ascii_case(name))
        });
    }
    streams
        .into_iter()
        .take(usize::from(MAX_LAYERS))
        .map(|r| r.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rids(lines: &[&str]) -> Vec<SendRid> {
        lines.iter().filter_map(|l| SendRid::parse(l)).collect()
    }

    fn ranked(lines: &[&str], simulcast: &str) -> Vec<String> {
        layers_lowest_first(&rids(lines), &simulcast_send_order(simulcast))
    }

    #[test]
    fn the_web_clients_rids_rank_by_name_in_any_order() {
        // Chrome, Safari and Firefox write the page's order; pages for old Firefox reverse it.
        assert_eq!(
            ranked(&["q send", "h send", "f send"], "send q;h;f"),
            ["q", "h", "f"]
        );
        assert_eq!(
            ranked(&["f send", "h send", "q send"], "send f;h;q"),
            ["q", "h", "f"]
        );
        assert_eq!(ranked(&["h send", "f send"], "send h;f"), ["h", "f"]);
    }

    #[test]
    fn other_ladders_rank_by_name_too() {
        assert_eq!(
            ranked(&["h send", "m send", "l send"], "send h;m;l"),
            ["l", "m", "h"]
        );
        assert_eq!(
            ranked(&["HIGH send", "low send"], "send HIGH;low"),
            ["low", "HIGH"]
        );
        assert_eq!(
            ranked(&["hi send", "mid send", "lo send"], ""),
            ["lo", "mid", "hi"]
        );
        // `h` alone fits two ladders; with `l` it can only be l/m/h's top.
        assert_eq!(ranked(&["h send", "l send"], "send h;l"), ["l", "h"]);
    }

    #[test]
    fn restrictions_beat_names_and_order() {
        let lines = [
            "a send max-width=1280;max-height=720",
            "b send max-width=320;max-height=180",
            "c send max-width=640;max-height=360",
        ];
        assert_eq!(ranked(&lines, "send a;b;c"), ["b", "c", "a"]);
        // Names would say q < f; the sizes say otherwise.
        assert_eq!(
            ranked(&["q send max-fs=3600", "f send max-fs=900"], "send q;f"),
            ["f", "q"]
        );
        // A restriction only some rids carry decides nothing.
        assert_eq!(
            ranked(&["q send max-br=900000", "f send"], "send f;q"),
            ["q", "f"]
        );
    }

    #[test]
    fn unknown_names_keep_the_offers_order_as_lowest_first() {
        assert_eq!(
            ranked(&["a send", "b send", "c send"], "send a;b;c"),
            ["a", "b", "c"]
        );
        assert_eq!(
            ranked(&["a send", "b send", "c send"], "send c;a;b"),
            ["c", "a", "b"]
        );
        assert_eq!(ranked(&["2 send", "1 send", "0 send"], ""), ["2", "1", "0"]);
    }

    #[test]
    fn simulcast_syntaxes() {
        assert_eq!(simulcast_send_order("send q;h;f"), ["q", "h", "f"]);
        assert_eq!(simulcast_send_order("send rid=q;h;f"), ["q", "h", "f"]);
        assert_eq!(
            simulcast_send_order("recv r1 send ~q;h,h2;f"),
            ["q", "h", "f"]
        );
        assert_eq!(simulcast_send_order("recv q;h"), Vec::<String>::new());
        assert_eq!(simulcast_send_order("send"), Vec::<String>::new());
        assert_eq!(simulcast_send_order(""), Vec::<String>::new());
    }

    #[test]
    fn the_simulcast_line_decides_which_rids_are_streams() {
        // A declared rid the simulcast line does not send is no layer.
        assert_eq!(
            ranked(&["q send", "h send", "f send"], "send q;f"),
            ["q", "f"]
        );
        // Only receive rids, or one stream: no simulcast.
        assert!(ranked(&["q recv", "h recv"], "recv q;h").is_empty());
        assert!(ranked(&["q send", "h send"], "send q").is_empty());
        assert!(ranked(&["q send"], "").is_empty());
    }

    #[test]
    fn at_most_three_layers_the_lowest() {
        let lines = [
            "a send max-fs=4",
            "b send max-fs=1",
            "c send max-fs=3",
            "d send max-fs=2",
        ];
        assert_eq!(ranked(&lines, ""), ["b", "d", "c"]);
    }

    #[test]
    fn rid_lines_parse() {
        let rid = SendRid::parse("q send pt=96;max-width=320").unwrap();
        assert_eq!(rid.id, "q");
        assert_eq!(rid.restriction("max-width"), Some(320));
        assert_eq!(rid.restriction("pt"), Some(96));
        assert!(SendRid::parse("q recv").is_none());
        assert!(SendRid::parse("q").is_none());
        assert!(SendRid::parse("").is_none());
        assert_eq!(
            SendRid::parse("q send max-width=x")
                .unwrap()
                .restriction("max-width"),
            None
        );
    }
}
