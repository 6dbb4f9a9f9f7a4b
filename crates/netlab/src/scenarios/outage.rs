//! Scenario 7: the subscribers' links cut completely for 3 s, and later for 15 s.
use anyhow::Result;
use roomcast_protocol::TrackKind;

use super::Cast;
use crate::chromium::PageSample;
use crate::clock::now_ms;
use crate::link::Impairment;
use crate::metrics::{self, first_when};
use crate::outcome::{Measure, Outcome, Target};
use crate::stage::Config;

pub async fn outage(config: &Config) -> Result<Outcome> {
    let mut cast = Cast::new(config, "outage", Impairment::default()).await?;
    let mut notes = Vec::new();
    if !cast.until_top_layer(config.phase(20, 30)).await {
        notes.push("the subscribers were not both on f before the outage".into());
    }
    cast.hold(config.phase(2, 10)).await;
    let cut = Impairment {
        outage: true,
        ..Impairment::default()
    };
    let mut measures = Vec::new();
    for (seconds, after, target, label) in [
        (3, config.phase(5, 15), 1.0, "3s"),
        (15, config.phase(15, 30), 10.0, "15s"),
    ] {
        let started = now_ms();
        cast.impair(cut)?;
        cast.hold(std::time::Duration::from_secs(seconds)).await;
        cast.impair(Impairment::default())?;
        let back = now_ms();
        cast.hold(after).await;
        let end = now_ms();
        let publisher = cast.publisher.clone();
        let pages = cast.stage.chromium[cast.page].samples();
        let frames = |s: &PageSample| {
            metrics::page_video(s, Some(&publisher)).map_or(0.0, |r| r.frames_decoded)
        };
        let at_back = metrics::at(&pages, back, |s| s.t).map_or(0.0, frames);
        let page_back = first_when(&pages, back, end, |s| s.t, |s| frames(s) > at_back)
            .map(|t| (t - back) / 1000.0);
        let (key_page, key_restart) = match label {
            "3s" => ("video_back_after_3s_outage", "ice_restarts_3s_outage"),
            _ => ("video_back_after_15s_outage", "ice_restarts_15s_outage"),
        };
        measures.push(Measure::new(
            key_page,
            "chromium",
            page_back,
            "s",
            Target::AtMost(target),
        ));
        let bots = cast.stage.bots[cast.bot].samples();
        let bot_back = first_when(
            &bots,
            back,
            end,
            |s| s.t,
            |s| {
                metrics::bot_track(s, &publisher, TrackKind::Video)
                    .and_then(|t| t.idle_ms)
                    .is_some_and(|idle| s.t - idle > back)
            },
        )
        .map(|t| (t - back) / 1000.0);
        measures.push(Measure::new(
            key_page,
            "bot",
            bot_back,
            "s",
            Target::AtMost(target),
        ));
        let restarts = pages
            .windows(2)
            .filter(|w| w[1].t > started && w[1].t <= end && w[0].ufrag != w[1].ufrag)
            .count() as f64;
        let restart_target = if label == "3s" {
            Target::AtMost(0.0)
        } else {
            Target::Info
        };
        measures.push(Measure::new(
            key_restart,
            "chromium",
            Some(restarts),
            "",
            restart_target,
        ));
    }
    cast.finish(
        "7-outage",
        "3 s and 15 s outages of a subscriber's link",
        measures,
        notes,
    )
    .await
}
