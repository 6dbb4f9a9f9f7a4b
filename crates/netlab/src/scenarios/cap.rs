//! Scenarios 3, 4 and 6: a subscriber's downlink capped at 600 kbit/s then lifted; capped at
//! 500 kbit/s with four video publishers; a Chromium publisher's uplink capped at 500 kbit/s.
use std::time::Duration;

use anyhow::Result;

use super::{layer_line, subscriber_series, timeline_into, Cast, TOP};
use crate::chromium::PageSample;
use crate::clock::now_ms;
use crate::link::Impairment;
use crate::metrics::{self, first_when, layer_value, server_video, settled_when};
use crate::outcome::{Measure, Outcome, Target};
use crate::server::RoomSample;
use crate::stage::{Config, Stage};

fn capped(kbps: u32) -> Impairment {
    let mut imp = Impairment::default();
    imp.down.cap_kbps = Some(kbps);
    imp
}

/// Scenario 3: The downlink capped at 600 kbit/s: on `q` within 3 s with little loss after that;
/// the cap lifted, back on `f` within 10 s.
pub async fn cap_600(config: &Config) -> Result<Outcome> {
    let mut cast = Cast::new(config, "cap600", Impairment::default()).await?;
    let mut notes = Vec::new();
    if !cast.until_top_layer(config.phase(20, 30)).await {
        notes.push("the subscribers were not both on f before the cap".into());
    }
    cast.hold(config.phase(2, 10)).await;
    // Whether they were on f just before: otherwise going to q shows little.
    let mut measures = cast.top_layer_share(now_ms() - 2000.0, now_ms(), Target::Info);
    for m in &mut measures {
        m.key = "time_on_f_before_cap";
    }
    cast.impair(capped(600))?;
    let a = now_ms();
    cast.hold(config.phase(12, 40)).await;
    cast.impair(Impairment::default())?;
    let b = now_ms();
    // Short runs too leave room past the 10 s target: a loaded debug build climbs slower.
    cast.hold(config.phase(18, 30)).await;
    let c = now_ms();

    let server = cast.stage.sampler.samples();
    let pages = cast.stage.chromium[cast.page].samples();
    let bots = cast.stage.bots[cast.bot].samples();
    let calm = config.phase(2, 10).as_secs_f64() * 800.0;
    let starved = metrics::bot_machine_limited(&bots, &pages, a - calm, a);
    for (who, id) in [
        ("chromium", cast.page_id.clone()),
        ("bot", cast.bot_id.clone()),
    ] {
        let layer = |s: &RoomSample| layer_value(server_video(s, &id, &cast.publisher));
        let on_q = settled_when(&server, a, b, |s| s.t, |s| layer(s) == 0.0);
        measures.push(Measure::new(
            "time_to_q",
            who,
            on_q.map(|t| (t - a) / 1000.0),
            "s",
            Target::AtMost(3.0),
        ));
        let loss = on_q.map(|q| match who {
            "chromium" => metrics::page_loss(&pages, q, b, ""),
            _ => metrics::bot_loss(&bots, q, b, None),
        });
        let limited = starved.clone().filter(|_| who == "bot");
        measures.push(
            Measure::new("loss_after_q", who, loss, "", Target::AtMost(0.02)).limited_by(limited),
        );
        let back = first_when(&server, b, c, |s| s.t, |s| layer(s) == TOP);
        measures.push(Measure::new(
            "time_back_to_f",
            who,
            back.map(|t| (t - b) / 1000.0),
            "s",
            Target::AtMost(10.0),
        ));
    }
    let p = Some(cast.publisher.as_str());
    measures.push(Measure::new(
        "freeze_ratio_capped",
        "chromium",
        Some(metrics::page_freeze_ratio(&pages, a, b, p)),
        "",
        Target::Info,
    ));
    measures.push(Measure::new(
        "freeze_ratio_capped",
        "bot",
        Some(metrics::bot_freeze_ratio(&bots, &cast.publisher, a, b)),
        "",
        Target::Info,
    ));
    let width = |w: f64| {
        move |s: &PageSample| metrics::page_video(s, p).is_some_and(|r| r.frame_width == w)
    };
    let seen_320 = first_when(&pages, a, b, |s| s.t, width(320.0));
    measures.push(Measure::new(
        "decoded_320_after",
        "chromium",
        seen_320.map(|t| (t - a) / 1000.0),
        "s",
        Target::Info,
    ));
    let seen_1280 = first_when(&pages, b, c, |s| s.t, width(1280.0));
    measures.push(Measure::new(
        "decoded_1280_after_lift",
        "chromium",
        seen_1280.map(|t| (t - b) / 1000.0),
        "s",
        Target::Info,
    ));
    cast.finish(
        "3-cap-600",
        "downlink capped at 600 kbit/s, then lifted",
        measures,
        notes,
    )
    .await
}

/// Scenario 4's cap. The issue asks for 350 kbit/s, which cannot carry what it asks for: four
/// Opus streams are about 63 kbit/s each on the wire (50 packets/s of ~80 bytes of payload
/// behind ~78 bytes of RTP, SRTP, UDP, IP and Ethernet headers), 250 kbit/s, and the
/// speaker's `q` about 165 kbit/s more: 415 kbit/s. 500 kbit/s carries those with the
/// allocator's headroom, and not a second video (another 165 kbit/s), so the others still
/// have to be paused (docs/network.md).
const CAP_FOUR_PUBLISHERS_KBPS: u32 = 500;

/// Scenario 4: The downlink capped at 500 kbit/s with four video publishers: audio survives, the
/// active speaker keeps video, the others are paused (`track_paused`) and resume afterwards.
pub async fn cap_500_four_publishers(config: &Config) -> Result<Outcome> {
    let mut stage = Stage::new(config, "cap500")?;
    let pubs = stage.host("pubs")?;
    let mut publishers = Vec::new();
    for (i, attenuation) in [0u8, 40, 40, 40].into_iter().enumerate() {
        let bot = stage
            .publisher_bot(pubs, &format!("publisher{i}"), attenuation)
            .await?;
        publishers.push(stage.bots[bot].id.clone());
    }
    let speaker = publishers[0].clone();
    let bot_host = stage.host("bot")?;
    let web_host = stage.host("web")?;
    let bot = stage.subscriber_bot(bot_host, "bot").await?;
    let bot_id = stage.bots[bot].id.clone();
    let (page, page_id) = stage.chromium(web_host, "web", "audience").await?;
    let subscribers = [("chromium", page_id.clone()), ("bot", bot_id.clone())];
    let mut notes = Vec::new();
    let all_flowing = |stage: &Stage| {
        stage.sampler.samples().last().is_some_and(|s| {
            subscribers.iter().all(|(_, sub)| {
                publishers
                    .iter()
                    .all(|p| layer_value(server_video(s, sub, p)) >= 0.0)
            }) && s.active_speakers.first() == Some(&speaker)
        })
    };
    if !stage.wait_for(config.phase(25, 30), all_flowing).await {
        notes.push("not every video flowed to both subscribers (or the speaker was not first) before the cap".into());
    }
    tokio::time::sleep(config.phase(2, 10)).await;
    // The last 80 % of that, for whether the bots kept up before any impairment.
    let calm = config.phase(2, 10).as_secs_f64() * 800.0;
    let mut timeline = vec![(stage.t0, Impairment::default())];
    let impair =
        |stage: &Stage, imp: Impairment, timeline: &mut Vec<(f64, Impairment)>| -> Result<()> {
            for host in [bot_host, web_host] {
                stage.hosts[host].link.apply(imp)?;
            }
            timeline.push((now_ms(), imp));
            Ok(())
        };
    impair(&stage, capped(CAP_FOUR_PUBLISHERS_KBPS), &mut timeline)?;
    let a = now_ms();
    tokio::time::sleep(config.phase(12, 40)).await;
    let b = now_ms();
    impair(&stage, Impairment::default(), &mut timeline)?;
    tokio::time::sleep(config.phase(12, 30)).await;
    let c = now_ms();

    let server = stage.sampler.samples();
    let pages = stage.chromium[page].samples();
    let bots = stage.bots[bot].samples();
    let settle = a + 5000.0;
    let others = &publishers[1..];
    // The bots share the machine with the server and Chromium: starved, they measure it.
    let starved = metrics::bot_machine_limited(&bots, &pages, a - calm, a);
    let mut measures = vec![
        Measure::new(
            "audio_loss",
            "chromium",
            Some(metrics::page_loss(&pages, a, b, "audio")),
            "",
            Target::AtMost(0.01),
        ),
        Measure::new(
            "audio_loss",
            "bot",
            Some(metrics::bot_loss(
                &bots,
                a,
                b,
                Some(roomcast_protocol::TrackKind::Audio),
            )),
            "",
            Target::AtMost(0.01),
        )
        .limited_by(starved.clone()),
    ];
    for (who, id) in &subscribers {
        let window: Vec<_> = server
            .iter()
            .filter(|s| s.t >= settle && s.t <= b)
            .collect();
        let kept = window
            .iter()
            .filter(|s| layer_value(server_video(s, id, &speaker)) >= 0.0)
            .count() as f64
            / window.len().max(1) as f64;
        measures.push(Measure::new(
            "speaker_video_kept",
            who,
            Some(kept),
            "",
            Target::AtLeast(0.95),
        ));
        let paused_at_end = at_end(&server, b, |s| {
            others
                .iter()
                .filter(|p| server_video(s, id, p).is_some_and(|t| t.paused))
                .count() as f64
        });
        measures.push(Measure::new(
            "others_paused",
            who,
            paused_at_end,
            "of 3",
            Target::AtLeast(3.0),
        ));
        let all_back = settled_when(
            &server,
            b,
            c,
            |s| s.t,
            |s| {
                publishers.iter().all(|p| {
                    server_video(s, id, p).is_some_and(|t| !t.paused && t.current.is_some())
                })
            },
        );
        measures.push(Measure::new(
            "all_resumed_after",
            who,
            all_back.map(|t| (t - b) / 1000.0),
            "s",
            Target::AtMost(10.0),
        ));
    }
    let signals = stage.chromium[page].events();
    let told = |kind: &str, from: f64, to: f64| {
        let mut ids: Vec<String> = signals
            .iter()
            .filter_map(|e| match e {
                crate::chromium::Event::Signal {
                    t,
                    sent: false,
                    message,
                } if *t >= from && *t <= to && message["type"] == kind => {
                    message["track_id"].as_str().map(str::to_owned)
                }
                _ => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids.len() as f64
    };
    measures.push(Measure::new(
        "track_paused_received",
        "chromium",
        Some(told("track_paused", a, b)),
        "tracks",
        Target::AtLeast(3.0),
    ));
    measures.push(Measure::new(
        "track_resumed_received",
        "chromium",
        Some(told("track_resumed", b, c)),
        "tracks",
        Target::AtLeast(3.0),
    ));
    let bot_paused = bot_messages(&bots, b, |s| s.paused_messages)
        - bot_messages(&bots, a, |s| s.paused_messages);
    measures.push(Measure::new(
        "track_paused_received",
        "bot",
        Some(bot_paused),
        "messages",
        Target::AtLeast(3.0),
    ));
    measures.push(Measure::new(
        "speaker_freeze_ratio",
        "chromium",
        Some(metrics::page_freeze_ratio(
            &pages,
            settle,
            b,
            Some(&speaker),
        )),
        "",
        Target::Info,
    ));

    let mut series = subscriber_series(&server, &pages, stage.t0, &page_id, &speaker);
    for (i, p) in publishers.iter().enumerate() {
        let label = if i == 0 {
            "speaker".to_owned()
        } else {
            format!("publisher {i}")
        };
        series
            .layers
            .push((label, layer_line(&server, stage.t0, &page_id, p)));
    }
    timeline_into(&timeline, stage.t0, now_ms(), &mut series, |imp| {
        imp.down.cap_kbps
    });
    stage.finish().await?;
    Ok(Outcome {
        id: "4-cap-500-four-publishers",
        title: "downlink capped at 500 kbit/s, four video publishers",
        measures,
        series,
        notes,
    })
}

/// The value of `f` at the last server sample before `t`.
fn at_end(samples: &[RoomSample], t: f64, f: impl Fn(&RoomSample) -> f64) -> Option<f64> {
    metrics::at(samples, t, |s| s.t).map(f)
}

fn bot_messages(
    samples: &[crate::bots::BotSample],
    t: f64,
    f: impl Fn(&crate::bots::BotSample) -> usize,
) -> f64 {
    metrics::at(samples, t, |s| s.t).map_or(0.0, |s| f(s) as f64)
}

/// Scenario 6: A Chromium publisher's uplink capped at 500 kbit/s: Chrome stops sending `f`, and
/// subscribers asking for `high` get `h` without a freeze over a second.
pub async fn publisher_cap_500(config: &Config) -> Result<Outcome> {
    let mut stage = Stage::new(config, "pubcap500")?;
    let pub_host = stage.host("pub")?;
    let (publisher_page, publisher) = stage.chromium(pub_host, "presenter", "presenter").await?;
    let bot_host = stage.host("bot")?;
    let web_host = stage.host("web")?;
    let bot = stage.subscriber_bot(bot_host, "bot").await?;
    let bot_id = stage.bots[bot].id.clone();
    let (page, page_id) = stage.chromium(web_host, "web", "audience").await?;
    let subscribers = [("chromium", page_id.clone()), ("bot", bot_id.clone())];
    let mut notes = Vec::new();
    let on_f = |stage: &Stage| {
        stage.sampler.samples().last().is_some_and(|s| {
            subscribers
                .iter()
                .all(|(_, sub)| layer_value(server_video(s, sub, &publisher)) == TOP)
        })
    };
    // Chrome's estimate can take a while to allow all three layers.
    if !stage.wait_for(config.phase(40, 60), on_f).await {
        notes.push(
            "the subscribers were not both on f before the cap (Chrome did not send f)".into(),
        );
    }
    tokio::time::sleep(config.phase(2, 10)).await;
    let mut cap = Impairment::default();
    cap.up.cap_kbps = Some(500);
    stage.hosts[pub_host].link.apply(cap)?;
    let timeline = vec![(stage.t0, Impairment::default()), (now_ms(), cap)];
    let a = now_ms();
    tokio::time::sleep(config.phase(15, 60)).await;
    let b = now_ms();
    stage.hosts[pub_host].link.apply(Impairment::default())?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let server = stage.sampler.samples();
    let published = stage.chromium[publisher_page].samples();
    let rid_bytes = |s: &PageSample, rid: &str| {
        s.outbound
            .iter()
            .filter(|o| o.rid.as_deref() == Some(rid))
            .map(|o| o.bytes_sent)
            .sum::<f64>()
    };
    let late = b - 5000.0;
    let f_kbps = metrics::page_delta(&published, late, b, |s| rid_bytes(s, "f")) * 8.0 / 5000.0;
    // Without f before the cap, there is nothing to stop: the run would show nothing.
    let f_before =
        metrics::page_delta(&published, a - 3000.0, a, |s| rid_bytes(s, "f")) * 8.0 / 3000.0;
    let mut measures = vec![Measure::new(
        "f_sent_before_cap",
        "publisher",
        Some(f_before),
        "kbit/s",
        Target::Info,
    )];
    measures.push(Measure::new(
        "f_sent_late_in_cap",
        "publisher",
        Some(f_kbps),
        "kbit/s",
        Target::AtMost(5.0),
    ));
    let f_stopped = settled_when(
        &published,
        a,
        b,
        |s| s.t,
        |s| {
            metrics::at(&published, s.t - 1000.0, |x| x.t)
                .is_some_and(|x| rid_bytes(s, "f") == rid_bytes(x, "f"))
        },
    );
    measures.push(Measure::new(
        "f_stopped_after",
        "publisher",
        f_stopped.map(|t| (t - a) / 1000.0),
        "s",
        Target::Info,
    ));
    let settle = a + 5000.0;
    for (who, id) in &subscribers {
        let window: Vec<_> = server
            .iter()
            .filter(|s| s.t >= settle && s.t <= b)
            .collect();
        let on_h = window
            .iter()
            .filter(|s| layer_value(server_video(s, id, &publisher)) == 1.0)
            .count() as f64
            / window.len().max(1) as f64;
        measures.push(Measure::new(
            "time_on_h",
            who,
            Some(on_h),
            "",
            Target::AtLeast(0.9),
        ));
    }
    let pages = stage.chromium[page].samples();
    let bots = stage.bots[bot].samples();
    measures.push(Measure::new(
        "longest_freeze",
        "chromium",
        Some(metrics::page_longest_stall(&pages, a, b, Some(&publisher)) / 1000.0),
        "s",
        Target::AtMost(1.0),
    ));
    let bot_longest = metrics::bot_freezes(&bots, &publisher, a, b)
        .iter()
        .map(|(x, y)| y - x)
        .fold(0.0, f64::max);
    measures.push(Measure::new(
        "longest_freeze",
        "bot",
        Some(bot_longest / 1000.0),
        "s",
        Target::AtMost(1.0),
    ));

    let mut series = subscriber_series(&server, &pages, stage.t0, &page_id, &publisher);
    for (who, id) in &subscribers {
        series.layers.push((
            who.to_string(),
            layer_line(&server, stage.t0, id, &publisher),
        ));
    }
    // What the publisher's Chrome sent, in place of what the subscriber received.
    let s = |t: f64| (t - stage.t0) / 1000.0;
    series.received_kbps = published
        .windows(2)
        .filter(|w| w[1].t > w[0].t)
        .map(|w| {
            let sent = |x: &PageSample| x.outbound.iter().map(|o| o.bytes_sent).sum::<f64>();
            (
                s(w[1].t),
                (sent(&w[1]) - sent(&w[0])).max(0.0) * 8.0 / (w[1].t - w[0].t),
            )
        })
        .collect();
    timeline_into(&timeline, stage.t0, b, &mut series, |imp| imp.up.cap_kbps);
    notes.push("in this plot 'received' is what the publisher's Chrome sent".into());
    stage.finish().await?;
    Ok(Outcome {
        id: "6-publisher-cap-500",
        title: "publisher (Chromium) uplink capped at 500 kbit/s",
        measures,
        series,
        notes,
    })
}
