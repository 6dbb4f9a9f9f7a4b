//! The eight scenarios. Each sets up a stage, runs its timeline of impairments
//! while media flows, and measures what its row of the table names, for a bot and a
//! Chromium subscriber alike. `Config::full` picks the benchmark's lengths; the tests run
//! the short ones.
mod cap;
mod delay;
mod loss;
mod outage;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Result;
use roomcast_protocol::TrackKind;

use crate::chromium::PageSample;
use crate::clock::now_ms;
use crate::link::Impairment;
use crate::metrics::{self, layer_value, server_video};
use crate::outcome::{Measure, Outcome, Series, Target};
use crate::server::RoomSample;
use crate::stage::{Config, Stage};

pub type Run = fn(&Config) -> Pin<Box<dyn Future<Output = Result<Outcome>> + Send + '_>>;

/// Every scenario: its id and how to run it.
pub const ALL: [(&str, Run); 8] = [
    ("1-random-loss", |c| Box::pin(loss::random_loss(c))),
    ("2-publisher-loss", |c| Box::pin(loss::publisher_loss(c))),
    ("3-cap-600", |c| Box::pin(cap::cap_600(c))),
    ("4-cap-500-four-publishers", |c| {
        Box::pin(cap::cap_500_four_publishers(c))
    }),
    ("5-delay-jitter", |c| Box::pin(delay::delay_jitter(c))),
    ("6-publisher-cap-500", |c| {
        Box::pin(cap::publisher_cap_500(c))
    }),
    ("7-outage", |c| Box::pin(outage::outage(c))),
    ("8-bursty-loss", |c| Box::pin(loss::bursty_loss(c))),
];

/// Runs scenario `id`.
pub async fn run(id: &str, config: &Config) -> Result<Outcome> {
    let (_, run) = ALL
        .iter()
        .find(|(name, _)| *name == id)
        .ok_or_else(|| anyhow::anyhow!("no scenario {id}"))?;
    run(config).await
}

/// The simulcast layer a subscriber asking for `high` should reach.
const TOP: f64 = 2.0;

/// The usual cast: a bot publishing q/h/f from a clean link, and two subscribers whose
/// links a scenario impairs: a bot and a Chromium page (the web client, as audience).
pub struct Cast {
    pub stage: Stage,
    pub publisher: String,
    pub bot: usize,
    pub bot_id: String,
    pub page: usize,
    pub page_id: String,
    pub pub_host: usize,
    /// The hosts of the two subscribers, impaired together.
    impaired: Vec<usize>,
    /// Every impairment applied: (time, what).
    timeline: Vec<(f64, Impairment)>,
}

impl Cast {
    /// Sets the cast up; `from_start` is on the subscribers' links before they join.
    pub async fn new(config: &Config, name: &str, from_start: Impairment) -> Result<Cast> {
        let mut stage = Stage::new(config, name)?;
        let pub_host = stage.host("pub")?;
        let publisher = stage.publisher_bot(pub_host, "publisher", 0).await?;
        let publisher = stage.bots[publisher].id.clone();
        let bot_host = stage.host("bot")?;
        let web_host = stage.host("web")?;
        let mut cast = Cast {
            stage,
            publisher,
            bot: 0,
            bot_id: String::new(),
            page: 0,
            page_id: String::new(),
            pub_host,
            impaired: vec![bot_host, web_host],
            timeline: vec![(now_ms(), Impairment::default())],
        };
        cast.impair(from_start)?;
        cast.bot = cast.stage.subscriber_bot(bot_host, "bot").await?;
        cast.bot_id = cast.stage.bots[cast.bot].id.clone();
        let (page, page_id) = cast.stage.chromium(web_host, "web", "audience").await?;
        cast.page = page;
        cast.page_id = page_id;
        Ok(cast)
    }

    /// Applies `imp` to both subscribers' links.
    pub fn impair(&mut self, imp: Impairment) -> Result<()> {
        for &host in &self.impaired {
            self.stage.hosts[host].link.apply(imp)?;
        }
        self.timeline.push((now_ms(), imp));
        Ok(())
    }

    /// Applies `imp` to the publisher's link.
    pub fn impair_publisher(&mut self, imp: Impairment) -> Result<()> {
        self.stage.hosts[self.pub_host].link.apply(imp)?;
        self.timeline.push((now_ms(), imp));
        Ok(())
    }

    /// Waits (at most `limit`) until the server forwards the top layer to both subscribers.
    pub async fn until_top_layer(&self, limit: Duration) -> bool {
        let subscribers = [self.bot_id.clone(), self.page_id.clone()];
        let publisher = self.publisher.clone();
        self.stage
            .wait_for(limit, |stage| {
                stage.sampler.samples().last().is_some_and(|s| {
                    subscribers
                        .iter()
                        .all(|sub| layer_value(server_video(s, sub, &publisher)) == TOP)
                })
            })
            .await
    }

    pub async fn hold(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// Freeze ratio and residual video loss over `[a, b]` for both subscribers.
    pub fn smoothness(
        &self,
        a: f64,
        b: f64,
        freeze_target: f64,
        loss_target: Option<f64>,
    ) -> Vec<Measure> {
        let pages = self.stage.chromium[self.page].samples();
        let bots = self.stage.bots[self.bot].samples();
        let p = Some(self.publisher.as_str());
        let mut m = vec![
            Measure::new(
                "freeze_ratio",
                "chromium",
                Some(metrics::page_freeze_ratio(&pages, a, b, p)),
                "",
                Target::AtMost(freeze_target),
            ),
            Measure::new(
                "freeze_ratio",
                "bot",
                Some(metrics::bot_freeze_ratio(&bots, &self.publisher, a, b)),
                "",
                Target::AtMost(freeze_target),
            ),
        ];
        let loss_target = loss_target.map_or(Target::Info, Target::AtMost);
        m.push(Measure::new(
            "residual_video_loss",
            "chromium",
            Some(metrics::page_loss(&pages, a, b, "video")),
            "",
            loss_target,
        ));
        m.push(Measure::new(
            "residual_video_loss",
            "bot",
            Some(metrics::bot_loss(&bots, a, b, Some(TrackKind::Video))),
            "",
            loss_target,
        ));
        m
    }

    /// Share of `[a, b]` each subscriber was on the top layer (server's view).
    pub fn top_layer_share(&self, a: f64, b: f64, target: Target) -> Vec<Measure> {
        let samples = self.stage.sampler.samples();
        [("chromium", &self.page_id), ("bot", &self.bot_id)]
            .into_iter()
            .map(|(who, id)| {
                let window: Vec<_> = samples.iter().filter(|s| s.t >= a && s.t <= b).collect();
                let top = window
                    .iter()
                    .filter(|s| layer_value(server_video(s, id, &self.publisher)) == TOP)
                    .count();
                let share = if window.is_empty() {
                    0.0
                } else {
                    top as f64 / window.len() as f64
                };
                Measure::new("time_on_f", who, Some(share), "", target)
            })
            .collect()
    }

    /// The Chromium subscriber's time series.
    pub fn series(&self) -> Series {
        let samples = self.stage.sampler.samples();
        let layers = [("Chromium", &self.page_id), ("bot", &self.bot_id)].map(|(name, id)| {
            (
                name.to_owned(),
                layer_line(&samples, self.stage.t0, id, &self.publisher),
            )
        });
        let pages = self.stage.chromium[self.page].samples();
        let mut series = subscriber_series(
            &samples,
            &pages,
            self.stage.t0,
            &self.page_id,
            &self.publisher,
        );
        series.layers.extend(layers);
        timeline_into(
            &self.timeline,
            self.stage.t0,
            now_ms(),
            &mut series,
            |imp| imp.down.cap_kbps,
        );
        series
    }

    /// Warms up for `warm`, applies `imp` to both subscribers for `length`, then clears it
    /// and waits `after`: the impaired window `(a, b)`. A note says so if the subscribers
    /// were not on `f` first.
    pub async fn impaired_window(
        &mut self,
        imp: Impairment,
        (warm, length, after): (Duration, Duration, Duration),
        notes: &mut Vec<String>,
    ) -> Result<(f64, f64)> {
        if !self.until_top_layer(self.stage.config.phase(20, 30)).await {
            notes.push("the subscribers were not both on f before the impairment".into());
        }
        self.hold(warm).await;
        self.impair(imp)?;
        let a = now_ms();
        self.hold(length).await;
        let b = now_ms();
        self.impair(Impairment::default())?;
        self.hold(after).await;
        Ok((a, b))
    }

    pub async fn finish(
        self,
        id: &'static str,
        title: &'static str,
        measures: Vec<Measure>,
        notes: Vec<String>,
    ) -> Result<Outcome> {
        let series = self.series();
        self.stage.finish().await?;
        Ok(Outcome {
            id,
            title,
            measures,
            series,
            notes,
        })
    }
}

/// The server's estimate and what it sent for `subscriber`, what the page received and
/// when `publisher`'s video froze there; seconds since `t0`.
pub fn subscriber_series(
    server: &[RoomSample],
    pages: &[PageSample],
    t0: f64,
    subscriber: &str,
    publisher: &str,
) -> Series {
    let s = |t: f64| (t - t0) / 1000.0;
    let mut series = Series::default();
    for room in server {
        if let Some(sub) = room.subscriber(subscriber) {
            if let Some(e) = sub.estimate_bps {
                series.estimate_kbps.push((s(room.t), e as f64 / 1000.0));
            }
            series
                .sent_kbps
                .push((s(room.t), sub.sent_bps as f64 / 1000.0));
        }
    }
    series.received_kbps = metrics::page_received_kbps(pages)
        .into_iter()
        .map(|(t, k)| (s(t), k))
        .collect();
    series.freezes = metrics::page_freezes(pages, Some(publisher))
        .into_iter()
        .map(|(a, b)| (s(a), s(b)))
        .collect();
    series
}

/// The layer the server forwarded to `subscriber` of `publisher`'s video over time.
pub fn layer_line(
    server: &[RoomSample],
    t0: f64,
    subscriber: &str,
    publisher: &str,
) -> Vec<(f64, f64)> {
    server
        .iter()
        .map(|room| {
            let t = (room.t - t0) / 1000.0;
            (t, layer_value(server_video(room, subscriber, publisher)))
        })
        .collect()
}

/// Turns a timeline of impairments into the plot's cap steps and shaded phases.
fn timeline_into(
    timeline: &[(f64, Impairment)],
    t0: f64,
    end: f64,
    series: &mut Series,
    cap: impl Fn(&Impairment) -> Option<u32>,
) {
    let s = |t: f64| (t - t0) / 1000.0;
    for (i, (t, imp)) in timeline.iter().enumerate() {
        series.cap_kbps.push((s(*t), cap(imp).map(f64::from)));
        let until = timeline.get(i + 1).map_or(end, |next| next.0);
        if let Some(label) = describe(imp) {
            series.phases.push((s(*t), s(until), label));
        }
    }
}

/// A short label for an impairment, `None` for a clean link.
pub fn describe(imp: &Impairment) -> Option<String> {
    let mut parts = Vec::new();
    if imp.outage {
        parts.push("outage".to_owned());
    }
    for (dir, d) in [("down", &imp.down), ("up", &imp.up)] {
        if let Some(cap) = d.cap_kbps {
            parts.push(format!("{dir} {cap} kbit/s"));
        }
        if d.loss > 0.0 {
            parts.push(format!("{dir} {}% loss", d.loss * 100.0));
        }
        if d.burst_loss > 0.0 {
            parts.push(format!("{dir} {}% bursty loss", d.burst_loss * 100.0));
        }
        if !d.delay.delay.is_zero() {
            parts.push(format!(
                "{dir} {}±{} ms",
                d.delay.delay.as_millis(),
                d.delay.jitter.as_millis()
            ));
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}
