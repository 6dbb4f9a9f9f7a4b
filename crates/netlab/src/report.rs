//! The lab's report: a Markdown table of every scenario's figures against the issue's
//! targets, and per scenario a PNG time series of the subscriber it is about (the cap, the
//! server's estimate, what it sent, what Chromium received, the layer, and freezes).
use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;

use crate::outcome::{Outcome, Series};

/// The font the plots are labelled in (Debian's `fonts-dejavu-core`).
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// One Markdown table of every outcome's measures.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut text = String::from(
        "| scenario | measure | subscriber | measured | target | |\n|---|---|---|---|---|---|\n",
    );
    for outcome in outcomes {
        for (i, m) in outcome.measures.iter().enumerate() {
            let scenario = if i == 0 { outcome.title } else { "" };
            text += &format!(
                "| {scenario} | {} | {} | {} | {} | {} |\n",
                m.key.replace('_', " "),
                m.subject,
                m.value_text(),
                m.target.describe(m.unit),
                m.verdict("**missed**")
            );
        }
    }
    text
}

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = std::fs::read(FONT)
            .with_context(|| format!("the plots need {FONT} (apt-get install fonts-dejavu-core)"))
            .and_then(|bytes| {
                plotters::style::register_font(
                    "sans-serif",
                    FontStyle::Normal,
                    Box::leak(bytes.into_boxed_slice()),
                )
                .map_err(|_| anyhow!("{FONT} is not a usable font"))
            });
    });
    result
}

/// Draws `outcome`'s series into a PNG at `path`.
pub fn plot(outcome: &Outcome, path: &Path) -> Result<()> {
    register_font()?;
    draw(outcome, path).map_err(|e| anyhow!("plotting {}: {e}", path.display()))
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw(outcome: &Outcome, path: &Path) -> DrawResult {
    let series = &outcome.series;
    let root = BitMapBackend::new(path, (1200, 820)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("{} — {}", outcome.id, outcome.title),
        ("sans-serif", 22),
    )?;
    let (top, rest) = root.split_vertically(470);
    let (middle, bottom) = rest.split_vertically(230);
    let end = end_time(series);

    let peak = series
        .estimate_kbps
        .iter()
        .chain(&series.sent_kbps)
        .chain(&series.received_kbps)
        .map(|p| p.1)
        .chain(series.cap_kbps.iter().filter_map(|c| c.1))
        .fold(500.0, f64::max)
        .min(6000.0)
        * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..peak)?;
    chart
        .configure_mesh()
        .y_desc("kbit/s")
        .x_desc("s")
        .label_style(("sans-serif", 14))
        .draw()?;
    shade_phases(&mut chart, series, peak)?;
    let cap_line = cap_steps(series, end, peak);
    chart
        .draw_series(LineSeries::new(cap_line, BLACK.stroke_width(3)))?
        .label("cap")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(3)));
    for (name, points, color) in [
        ("server estimate", &series.estimate_kbps, BLUE),
        ("server sent", &series.sent_kbps, RGBColor(230, 120, 0)),
        (
            "Chromium received",
            &series.received_kbps,
            RGBColor(0, 150, 60),
        ),
    ] {
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(t, v)| (t, v.min(peak))),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;

    let mut layers = ChartBuilder::on(&middle)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, -1.3..2.3)?;
    layers
        .configure_mesh()
        .y_desc("layer")
        .y_labels(4)
        .y_label_formatter(&|v: &f64| match v.round() as i32 {
            0 => "q".into(),
            1 => "h".into(),
            2 => "f".into(),
            -1 => "none".into(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 14))
        .draw()?;
    let palette = [
        RGBColor(200, 30, 30),
        RGBColor(40, 40, 200),
        RGBColor(0, 140, 140),
        RGBColor(140, 0, 140),
    ];
    for (i, (name, points)) in series.layers.iter().enumerate() {
        let color = palette[i % palette.len()];
        // Offset each line a little so they do not hide each other.
        let offset = i as f64 * 0.06;
        layers
            .draw_series(LineSeries::new(
                step(points).into_iter().map(|(t, v)| (t, v + offset)),
                color.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    layers
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;

    let mut freezes = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..1.0)?;
    freezes
        .configure_mesh()
        .y_desc("frozen")
        .y_labels(0)
        .disable_y_mesh()
        .x_desc("s")
        .label_style(("sans-serif", 14))
        .draw()?;
    shade_phases(&mut freezes, series, 1.0)?;
    freezes.draw_series(series.freezes.iter().map(|&(a, b)| {
        Rectangle::new([(a, 0.15), (b.max(a + end / 600.0), 0.85)], RED.filled())
    }))?;
    root.present()?;
    Ok(())
}

fn end_time(series: &Series) -> f64 {
    series
        .sent_kbps
        .iter()
        .chain(&series.received_kbps)
        .map(|p| p.0)
        .chain(series.phases.iter().map(|p| p.1))
        .fold(1.0, f64::max)
}

/// The cap as steps; uncapped is drawn at the top of the chart.
fn cap_steps(series: &Series, end: f64, peak: f64) -> Vec<(f64, f64)> {
    let points: Vec<(f64, f64)> = series
        .cap_kbps
        .iter()
        .map(|&(t, cap)| (t, cap.unwrap_or(peak)))
        .chain(std::iter::once((
            end,
            series.cap_kbps.last().and_then(|c| c.1).unwrap_or(peak),
        )))
        .collect();
    step(&points)
}

/// A value that holds until the next point: horizontal then vertical segments.
fn step(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2);
    for (i, &(t, v)) in points.iter().enumerate() {
        if i > 0 {
            out.push((t, points[i - 1].1));
        }
        out.push((t, v));
    }
    out
}

fn shade_phases<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    series: &Series,
    top: f64,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart.draw_series(series.phases.iter().map(|(a, b, _)| {
        Rectangle::new(
            [(*a, 0.0), (*b, top)],
            RGBColor(255, 200, 200).mix(0.45).filled(),
        )
    }))?;
    chart.draw_series(series.phases.iter().map(|(a, _, label)| {
        Text::new(
            label.clone(),
            (*a, top * 0.97),
            ("sans-serif", 13).into_font().color(&RGBColor(150, 0, 0)),
        )
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Measure, Target};

    fn outcome() -> Outcome {
        let series = Series {
            cap_kbps: vec![(0.0, None), (5.0, Some(600.0)), (15.0, None)],
            phases: vec![(5.0, 15.0, "down 600 kbit/s".into())],
            estimate_kbps: (0..80).map(|i| (f64::from(i) * 0.25, 1500.0)).collect(),
            sent_kbps: (0..80).map(|i| (f64::from(i) * 0.25, 1200.0)).collect(),
            received_kbps: (0..80).map(|i| (f64::from(i) * 0.25, 1100.0)).collect(),
            layers: vec![("Chromium".into(), vec![(0.0, 2.0), (7.0, 0.0), (17.0, 2.0)])],
            freezes: vec![(6.0, 6.8)],
        };
        Outcome {
            id: "test",
            title: "a test",
            measures: vec![Measure::new(
                "time_to_q",
                "chromium",
                Some(2.0),
                "s",
                Target::AtMost(3.0),
            )],
            series,
            notes: vec![],
        }
    }

    #[test]
    fn the_table_has_a_row_per_measure_with_its_verdict() {
        let table = table(&[outcome()]);
        assert!(
            table.contains("| a test | time to q | chromium | 2 s | ≤ 3 s | ok |"),
            "{table}"
        );
    }

    #[test]
    fn steps_hold_each_value_until_the_next() {
        assert_eq!(
            step(&[(0.0, 1.0), (2.0, 3.0)]),
            vec![(0.0, 1.0), (2.0, 1.0), (2.0, 3.0)]
        );
    }

    #[test]
    fn draws_a_png() {
        let dir = std::env::temp_dir().join(format!("netlab-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plot.png");
        plot(&outcome(), &path).expect("plot");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 10_000, "a real picture, not an empty one");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
