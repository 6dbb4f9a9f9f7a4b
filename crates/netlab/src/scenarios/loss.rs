//! Scenarios 1, 2 and 8: random loss on a subscriber's downlink, random loss on the
//! publisher's uplink, bursty loss on a subscriber's downlink.
use anyhow::Result;
use roomcast_protocol::TrackKind;

use super::{Cast, TOP};
use crate::clock::now_ms;
use crate::link::Impairment;
use crate::metrics::{self, layer_value, server_video};
use crate::outcome::{Measure, Outcome, Target};
use crate::stage::Config;

/// Scenario 1: 5 % random loss on the subscribers' downlinks: video stays smooth (NACK), nothing is
/// lost for good, and a clean subscriber beside them sees nothing of it.
pub async fn random_loss(config: &Config) -> Result<Outcome> {
    let mut cast = Cast::new(config, "loss", Impairment::default()).await?;
    let control_host = cast.stage.host("control")?;
    let control = cast.stage.subscriber_bot(control_host, "control").await?;
    let mut notes = Vec::new();
    let mut lossy = Impairment::default();
    lossy.down.loss = 0.05;
    let phases = (
        config.phase(2, 10),
        config.phase(15, 60),
        config.phase(1, 5),
    );
    let (a, b) = cast.impaired_window(lossy, phases, &mut notes).await?;

    let mut measures = cast.smoothness(a, b, 0.01, Some(0.005));
    let control_samples = cast.stage.bots[control].samples();
    measures.push(Measure::new(
        "freeze_ratio",
        "control bot",
        Some(metrics::bot_freeze_ratio(
            &control_samples,
            &cast.publisher,
            a,
            b,
        )),
        "",
        Target::AtMost(0.01),
    ));
    measures.extend(cast.top_layer_share(a, b, Target::Info));
    let control_id = cast.stage.bots[control].id.clone();
    let samples = cast.stage.sampler.samples();
    let window: Vec<_> = samples.iter().filter(|s| s.t >= a && s.t <= b).collect();
    let on_top = window
        .iter()
        .filter(|s| layer_value(server_video(s, &control_id, &cast.publisher)) == TOP)
        .count();
    measures.push(Measure::new(
        "time_on_f",
        "control bot",
        Some(on_top as f64 / window.len().max(1) as f64),
        "",
        Target::AtLeast(0.95),
    ));
    let pages = cast.stage.chromium[cast.page].samples();
    measures.push(Measure::new(
        "audio_concealment",
        "chromium",
        Some(metrics::page_concealment(&pages, a, b)),
        "",
        Target::Info,
    ));
    cast.finish(
        "1-random-loss",
        "5 % random loss on a subscriber's downlink",
        measures,
        notes,
    )
    .await
}

/// Scenario 2: 5 % random loss on the publisher's uplink: the server NACKs the publisher, so the
/// subscribers see smooth video, and their estimates and layers do not drop for it.
pub async fn publisher_loss(config: &Config) -> Result<Outcome> {
    let mut cast = Cast::new(config, "publoss", Impairment::default()).await?;
    let mut notes = Vec::new();
    if !cast.until_top_layer(config.phase(20, 30)).await {
        notes.push("the subscribers were not both on f before the loss started".into());
    }
    cast.hold(config.phase(3, 10)).await;
    let before_from = now_ms() - 3000.0;
    let before = now_ms();
    let mut lossy = Impairment::default();
    lossy.up.loss = 0.05;
    cast.impair_publisher(lossy)?;
    let a = now_ms();
    cast.hold(config.phase(15, 60)).await;
    let b = now_ms();
    cast.impair_publisher(Impairment::default())?;
    cast.hold(config.phase(1, 5)).await;

    let mut measures = cast.smoothness(a, b, 0.01, Some(0.005));
    measures.extend(cast.top_layer_share(a, b, Target::AtLeast(0.95)));
    // The estimate during the loss against the one before it (lowest over highest).
    let samples = cast.stage.sampler.samples();
    for (who, id) in [("chromium", &cast.page_id), ("bot", &cast.bot_id)] {
        let estimates = |from: f64, to: f64| -> Vec<f64> {
            samples
                .iter()
                .filter(|s| s.t >= from && s.t <= to)
                .filter_map(|s| s.subscriber(id)?.estimate_bps)
                .map(|e| e as f64)
                .collect()
        };
        let prior = estimates(before_from, before)
            .into_iter()
            .fold(0.0, f64::max);
        let lowest = estimates(a, b).into_iter().fold(f64::INFINITY, f64::min);
        let kept = (prior > 0.0 && lowest.is_finite()).then(|| lowest / prior);
        measures.push(Measure::new(
            "estimate_kept",
            who,
            kept,
            "",
            Target::AtLeast(0.9),
        ));
    }
    let publisher_loss = cast.stage.bots[cast.bot].samples();
    measures.push(Measure::new(
        "residual_audio_loss",
        "bot",
        Some(metrics::bot_loss(
            &publisher_loss,
            a,
            b,
            Some(TrackKind::Audio),
        )),
        "",
        Target::Info,
    ));
    cast.finish(
        "2-publisher-loss",
        "5 % loss on the publisher's uplink",
        measures,
        notes,
    )
    .await
}

/// Scenario 8: Bursty loss (bursts of 3–8 packets, 2 % overall) on the subscribers' downlinks.
pub async fn bursty_loss(config: &Config) -> Result<Outcome> {
    let mut cast = Cast::new(config, "bursts", Impairment::default()).await?;
    let mut notes = Vec::new();
    let mut bursty = Impairment::default();
    bursty.down.burst_loss = 0.02;
    let phases = (
        config.phase(2, 10),
        config.phase(15, 60),
        config.phase(1, 5),
    );
    let (a, b) = cast.impaired_window(bursty, phases, &mut notes).await?;

    let mut measures = cast.smoothness(a, b, 0.02, None);
    let pages = cast.stage.chromium[cast.page].samples();
    measures.push(Measure::new(
        "audio_concealment",
        "chromium",
        Some(metrics::page_concealment(&pages, a, b)),
        "",
        Target::AtMost(0.03),
    ));
    let bots = cast.stage.bots[cast.bot].samples();
    measures.push(Measure::new(
        "residual_audio_loss",
        "bot",
        Some(metrics::bot_loss(&bots, a, b, Some(TrackKind::Audio))),
        "",
        Target::Info,
    ));
    measures.extend(cast.top_layer_share(a, b, Target::Info));
    cast.finish(
        "8-bursty-loss",
        "bursty loss (3–8 packets, 2 % overall)",
        measures,
        notes,
    )
    .await
}
