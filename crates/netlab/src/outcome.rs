//! What a scenario measured: figures against the targets, and the time series its
//! plot shows.
use serde::Serialize;

/// A bound from the table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
    /// Reported, no target.
    Info,
}

impl Target {
    pub fn holds(&self, value: Option<f64>) -> Option<bool> {
        match self {
            Target::Info => None,
            Target::AtMost(bound) => Some(value.is_some_and(|v| v <= *bound)),
            Target::AtLeast(bound) => Some(value.is_some_and(|v| v >= *bound)),
        }
    }

    pub fn describe(&self, unit: &str) -> String {
        match self {
            Target::AtMost(b) => format!("≤ {} {unit}", fmt(*b)),
            Target::AtLeast(b) => format!("≥ {} {unit}", fmt(*b)),
            Target::Info => "—".into(),
        }
    }
}

/// One figure.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    /// What is measured, e.g. `freeze_ratio`.
    pub key: &'static str,
    /// Who saw it: `chromium`, `bot`, `control bot`, `server`, …
    pub subject: &'static str,
    /// `None`: it never happened (e.g. never reached the layer).
    pub value: Option<f64>,
    pub unit: &'static str,
    pub target: Target,
    /// Why this figure measured the lab's machine rather than the server, with the
    /// evidence (the bots were starved of CPU before any impairment): it is then neither
    /// met nor missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_limited: Option<String>,
}

impl Measure {
    pub fn new(
        key: &'static str,
        subject: &'static str,
        value: Option<f64>,
        unit: &'static str,
        target: Target,
    ) -> Self {
        Measure {
            key,
            subject,
            value,
            unit,
            target,
            machine_limited: None,
        }
    }

    /// Marks the figure as the machine's, with the evidence (`None` leaves it as it is).
    pub fn limited_by(mut self, evidence: Option<String>) -> Self {
        self.machine_limited = evidence;
        self
    }

    pub fn passes(&self) -> Option<bool> {
        if self.machine_limited.is_some() {
            return None;
        }
        self.target.holds(self.value)
    }

    /// The verdict column: `ok`, `MISSED`/missed, `machine-limited (…)` or nothing.
    pub fn verdict(&self, missed: &'static str) -> String {
        if let Some(evidence) = &self.machine_limited {
            return format!("machine-limited ({evidence})");
        }
        match self.passes() {
            Some(true) => "ok".into(),
            Some(false) => missed.into(),
            None => String::new(),
        }
    }

    pub fn value_text(&self) -> String {
        self.value.map_or_else(
            || "never".to_owned(),
            |v| format!("{} {}", fmt(v), self.unit),
        )
    }
}

/// Numbers as a reader wants them: 3 significant digits, no trailing zeros.
pub fn fmt(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// The time series of one subscriber, seconds since the stage began.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    /// The downlink (or, for a publisher, uplink) cap over time, kbit/s; `None` uncapped.
    pub cap_kbps: Vec<(f64, Option<f64>)>,
    /// Impairments: (start, end, label).
    pub phases: Vec<(f64, f64, String)>,
    /// The server's estimate for the subscriber, kbit/s.
    pub estimate_kbps: Vec<(f64, f64)>,
    /// What the server sent it, kbit/s.
    pub sent_kbps: Vec<(f64, f64)>,
    /// What Chromium received, kbit/s.
    pub received_kbps: Vec<(f64, f64)>,
    /// The layer forwarded to it (0 q, 1 h, 2 f; -1 none or paused), per track label.
    pub layers: Vec<(String, Vec<(f64, f64)>)>,
    /// When its video was frozen: (start, end).
    pub freezes: Vec<(f64, f64)>,
}

/// A scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `1-random-loss`, …
    pub id: &'static str,
    pub title: &'static str,
    pub measures: Vec<Measure>,
    pub series: Series,
    /// Anything the reader should know about this run.
    pub notes: Vec<String>,
}

impl Outcome {
    /// The measures of `key` whose target does not hold.
    pub fn failing(&self) -> Vec<&Measure> {
        self.measures
            .iter()
            .filter(|m| m.passes() == Some(false))
            .collect()
    }

    /// The figure `key` of `subject`.
    pub fn value(&self, key: &str, subject: &str) -> Option<f64> {
        self.measures
            .iter()
            .find(|m| m.key == key && m.subject == subject)
            .and_then(|m| m.value)
    }

    /// Every line of the table, for a failure message.
    pub fn describe(&self) -> String {
        let mut text = format!("{} ({}):\n", self.title, self.id);
        for m in &self.measures {
            text += &format!(
                "  {:<28} {:<12} {:>14}   target {:<12} {}\n",
                m.key,
                m.subject,
                m.value_text(),
                m.target.describe(m.unit),
                m.verdict("MISSED")
            );
        }
        for note in &self.notes {
            text += &format!("  note: {note}\n");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_numbers() {
        assert_eq!(Target::AtMost(1.0).holds(Some(0.5)), Some(true));
        assert_eq!(Target::AtMost(1.0).holds(None), Some(false));
        assert_eq!(Target::AtLeast(2.0).holds(Some(1.0)), Some(false));
        assert_eq!(Target::Info.holds(Some(1.0)), None);
        assert_eq!(fmt(0.01234), "0.0123");
        assert_eq!(fmt(1234.6), "1235");
        assert_eq!(fmt(2.0), "2");
        assert_eq!(fmt(0.5), "0.5");
    }

    #[test]
    fn a_machine_limited_figure_is_neither_met_nor_missed() {
        let m = Measure::new("audio_loss", "bot", Some(0.2), "", Target::AtMost(0.01));
        assert_eq!(m.passes(), Some(false));
        let m = m.limited_by(Some("audio at 90 of 200 packets/s before the cap".into()));
        assert_eq!(m.passes(), None);
        assert_eq!(
            m.verdict("MISSED"),
            "machine-limited (audio at 90 of 200 packets/s before the cap)"
        );
    }
}
