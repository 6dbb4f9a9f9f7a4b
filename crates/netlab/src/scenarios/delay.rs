//! Scenario 5: 200 ms RTT (100 ms each way) with ±30 ms of jitter on the subscribers' links,
//! from before they join.
use std::time::Duration;

use anyhow::Result;
use roomcast_protocol::{ClientMessage, Quality, TrackKind};

use super::Cast;
use crate::chromium::Event;
use crate::clock::now_ms;
use crate::delay_shim::Delay;
use crate::link::Impairment;
use crate::metrics::{self, first_when};
use crate::outcome::{Measure, Outcome, Target};
use crate::stage::Config;

pub async fn delay_jitter(config: &Config) -> Result<Outcome> {
    let way = Delay {
        delay: Duration::from_millis(100),
        jitter: Duration::from_millis(30),
    };
    let mut delayed = Impairment::default();
    delayed.down.delay = way;
    delayed.up.delay = way;
    let mut cast = Cast::new(config, "delay", delayed).await?;
    let mut notes = Vec::new();
    if !cast.until_top_layer(config.phase(20, 30)).await {
        notes.push("the subscribers were not both on f after joining".into());
    }
    let mut measures = Vec::new();

    // Join to first frame: from the `join` message (its WebSocket already open) for both,
    // the page and the bot (the page may report its first frame after the server has
    // switched it to f).
    let page = cast.page;
    cast.stage
        .wait_for(Duration::from_secs(10), |stage| {
            stage.chromium[page]
                .events()
                .iter()
                .any(|e| matches!(e, Event::FirstFrame { .. }))
        })
        .await;
    let events = cast.stage.chromium[cast.page].events();
    let join_sent = events.iter().find_map(|e| match e {
        Event::Joined { join_sent_t, .. } => *join_sent_t,
        _ => None,
    });
    let first_frame = events.iter().find_map(|e| match e {
        Event::FirstFrame { t } => Some(*t),
        _ => None,
    });
    let page_first = join_sent.zip(first_frame).map(|(j, f)| (f - j) / 1000.0);
    measures.push(Measure::new(
        "join_to_first_frame",
        "chromium",
        page_first,
        "s",
        Target::AtMost(1.5),
    ));
    let bot = &cast.stage.bots[cast.bot];
    let bot_first = bot
        .samples()
        .iter()
        .find_map(|s| metrics::bot_track(s, &cast.publisher, TrackKind::Video)?.first_keyframe_t)
        .map(|t| (t - bot.join_sent) / 1000.0);
    measures.push(Measure::new(
        "join_to_first_frame",
        "bot",
        bot_first,
        "s",
        Target::AtMost(1.5),
    ));

    // low → high.
    cast.stage.chromium[cast.page].resize(400, 250).await?;
    let publisher = cast.publisher.clone();
    let small = cast
        .stage
        .wait_for(config.phase(15, 20), |stage| {
            stage.chromium[page].samples().last().is_some_and(|s| {
                metrics::page_video(s, Some(&publisher)).is_some_and(|r| r.frame_width == 320.0)
            })
        })
        .await;
    if !small {
        notes.push("Chromium never went down to 320 after its window shrank".into());
    }
    cast.hold(Duration::from_secs(2)).await;
    let asked = now_ms();
    cast.stage.chromium[cast.page].resize(1280, 800).await?;
    cast.hold(config.phase(6, 10)).await;
    let events = cast.stage.chromium[cast.page].events();
    let set_high = events.iter().find_map(|e| match e {
        Event::Signal {
            t,
            sent: true,
            message,
        } if *t >= asked && message["type"] == "set_quality" && message["quality"] == "high" => {
            Some(*t)
        }
        _ => None,
    });
    let pages = cast.stage.chromium[cast.page].samples();
    let reached = set_high.and_then(|from| {
        first_when(
            &pages,
            from,
            now_ms(),
            |s| s.t,
            |s| metrics::page_video(s, Some(&publisher)).is_some_and(|r| r.frame_width == 1280.0),
        )
        .map(|t| (t - from) / 1000.0)
    });
    measures.push(Measure::new(
        "low_to_high_switch",
        "chromium",
        reached,
        "s",
        Target::AtMost(2.0),
    ));

    // The bot asks the same.
    let track_id = cast.stage.bots[cast.bot]
        .samples()
        .last()
        .and_then(|s| {
            metrics::bot_track(s, &publisher, TrackKind::Video).map(|t| t.track_id.clone())
        })
        .unwrap_or_default();
    let set = |quality: Quality| {
        let track_id = track_id.clone();
        move |bot: std::sync::Arc<roomcast_bots::Bot>| async move {
            bot.send(&ClientMessage::SetQuality { track_id, quality })
                .await
        }
    };
    cast.stage.bots[cast.bot]
        .with_bot(set(Quality::Low))
        .await??;
    let bot_index = cast.bot;
    cast.stage
        .wait_for(config.phase(15, 20), |stage| {
            stage.bots[bot_index].samples().last().is_some_and(|s| {
                metrics::bot_track(s, &publisher, TrackKind::Video)
                    .is_some_and(|t| t.frame_width == 320)
            })
        })
        .await;
    cast.hold(Duration::from_secs(2)).await;
    let bot_asked = now_ms();
    cast.stage.bots[cast.bot]
        .with_bot(set(Quality::High))
        .await??;
    cast.hold(config.phase(5, 10)).await;
    let bots = cast.stage.bots[cast.bot].samples();
    let bot_reached = first_when(
        &bots,
        bot_asked,
        now_ms(),
        |s| s.t,
        |s| {
            metrics::bot_track(s, &publisher, TrackKind::Video)
                .is_some_and(|t| t.frame_width == 1280)
        },
    )
    .map(|t| (t - bot_asked) / 1000.0);
    measures.push(Measure::new(
        "low_to_high_switch",
        "bot",
        bot_reached,
        "s",
        Target::AtMost(2.0),
    ));

    // Steady video under jitter: no freeze.
    let a = now_ms();
    cast.hold(config.phase(8, 40)).await;
    let b = now_ms();
    let pages = cast.stage.chromium[cast.page].samples();
    let freezes = metrics::page_delta(&pages, a, b, |s| {
        metrics::page_video(s, Some(&publisher)).map_or(0.0, |r| r.freeze_count)
    });
    measures.push(Measure::new(
        "freezes",
        "chromium",
        Some(freezes),
        "",
        Target::AtMost(0.0),
    ));
    let bots = cast.stage.bots[cast.bot].samples();
    let bot_freezes = metrics::bot_freezes(&bots, &publisher, a, b).len() as f64;
    measures.push(Measure::new(
        "freezes",
        "bot",
        Some(bot_freezes),
        "",
        Target::AtMost(0.0),
    ));
    let jitter_buffer = metrics::page_delta(&pages, a, b, |s| {
        metrics::page_video(s, Some(&publisher)).map_or(0.0, |r| r.jitter_buffer_delay)
    }) / metrics::page_delta(&pages, a, b, |s| {
        metrics::page_video(s, Some(&publisher)).map_or(0.0, |r| r.jitter_buffer_emitted_count)
    })
    .max(1.0);
    measures.push(Measure::new(
        "video_jitter_buffer",
        "chromium",
        Some(jitter_buffer * 1000.0),
        "ms",
        Target::Info,
    ));
    cast.finish(
        "5-delay-jitter",
        "200 ms RTT with ±30 ms jitter",
        measures,
        notes,
    )
    .await
}
