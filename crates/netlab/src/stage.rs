//! A scenario's stage: the lab, the server in it, and the participants a scenario adds:
//! publishing bots, subscribing bots and Chromium pages, each in its own namespace.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use roomcast_bots::BotConfig;
use roomcast_protocol::Role;

use crate::bots::NsBot;
use crate::chromium::{Chromium, PageOptions};
use crate::clock::now_ms;
use crate::lab::{Host, Lab};
use crate::server::{Sampler, Server};

/// How a scenario is run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `roomcast` binary to test.
    pub server: PathBuf,
    /// Extra flags for `roomcast serve` (e.g. `--no-congestion-control`).
    pub server_args: Vec<String>,
    /// `tests/browser/netlab.mjs`.
    pub browser_script: PathBuf,
    /// Where logs go.
    pub out_dir: PathBuf,
    /// Full-length phases (the benchmark) instead of the short ones (the tests).
    pub full: bool,
}

impl Config {
    /// The short or the full length of a phase.
    pub fn phase(&self, short_s: u64, full_s: u64) -> Duration {
        Duration::from_secs(if self.full { full_s } else { short_s })
    }
}

/// How often participants and the server are sampled.
pub const BOT_SAMPLE: Duration = Duration::from_millis(100);
pub const SERVER_SAMPLE: Duration = Duration::from_millis(250);

pub struct Stage {
    pub config: Config,
    pub room: String,
    /// Wall-clock ms when the stage was set up: the zero of every plot.
    pub t0: f64,
    pub chromium: Vec<Chromium>,
    pub bots: Vec<NsBot>,
    pub sampler: Sampler,
    pub server: Option<Server>,
    pub hosts: Vec<Host>,
    pub lab: Lab,
}

impl Stage {
    pub fn new(config: &Config, name: &str) -> Result<Stage> {
        std::fs::create_dir_all(&config.out_dir)?;
        let lab = Lab::new()?;
        let args: Vec<&str> = config.server_args.iter().map(String::as_str).collect();
        let log = config.out_dir.join(format!("{name}-server.log"));
        let server = Server::start(&lab, &config.server, &args, &log)?;
        let room = format!("netlab-{name}");
        let sampler = server.sample(&room, SERVER_SAMPLE);
        Ok(Stage {
            config: config.clone(),
            room,
            t0: now_ms(),
            chromium: Vec::new(),
            bots: Vec::new(),
            sampler,
            server: Some(server),
            hosts: Vec::new(),
            lab,
        })
    }

    /// A new namespace linked to the server; its index in `hosts`.
    pub fn host(&mut self, label: &str) -> Result<usize> {
        self.hosts.push(self.lab.add_host(label)?);
        Ok(self.hosts.len() - 1)
    }

    /// A bot publishing audio and simulcast VP8 (q/h/f) from host `host`; its index in
    /// `bots`. `attenuation_db` makes it a quieter speaker.
    pub async fn publisher_bot(
        &mut self,
        host: usize,
        name: &str,
        attenuation_db: u8,
    ) -> Result<usize> {
        let config = BotConfig::new(Server::ws_url(), &self.room, name)
            .with_role(Role::Presenter)
            .with_simulcast(true)
            .with_audio_attenuation_db(attenuation_db);
        self.bot(host, config).await
    }

    /// A bot that only receives; its index in `bots`.
    pub async fn subscriber_bot(&mut self, host: usize, name: &str) -> Result<usize> {
        let config = BotConfig::new(Server::ws_url(), &self.room, name)
            .with_role(Role::Audience)
            .with_publish(false, None);
        self.bot(host, config).await
    }

    async fn bot(&mut self, host: usize, config: BotConfig) -> Result<usize> {
        let config = config.with_connect_timeout(Duration::from_secs(20));
        let bot = NsBot::join(&self.hosts[host].ns, config, BOT_SAMPLE).await?;
        self.bots.push(bot);
        Ok(self.bots.len() - 1)
    }

    /// A Chromium page of the web client in host `host`; its index in `chromium` and its
    /// participant id once joined.
    pub async fn chromium(
        &mut self,
        host: usize,
        name: &str,
        role: &'static str,
    ) -> Result<(usize, String)> {
        let page = PageOptions {
            room: self.room.clone(),
            name: name.to_owned(),
            role,
            width: 1280,
            height: 800,
        };
        let log = self
            .config
            .out_dir
            .join(format!("{}-{name}-chromium.log", self.room));
        let mut chromium = Chromium::start(
            &self.hosts[host].ns,
            &self.config.browser_script,
            &page,
            &log,
        )
        .await?;
        let id = chromium.joined(Duration::from_secs(40)).await?;
        self.chromium.push(chromium);
        Ok((self.chromium.len() - 1, id))
    }

    /// Seconds since the stage was set up.
    pub fn elapsed(&self) -> f64 {
        (now_ms() - self.t0) / 1000.0
    }

    /// Waits until `done` says yes (checked every 250 ms), at most `limit`: whether it did.
    pub async fn wait_for(&self, limit: Duration, mut done: impl FnMut(&Stage) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if done(self) {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Ends everything: pages, bots, the server; the namespaces go when the stage drops.
    pub async fn finish(mut self) -> Result<()> {
        let raw = serde_json::json!({
            "t0": self.t0,
            "server": self.sampler.samples(),
            "stats": self.server.as_ref().map(|s| s.stats().unwrap_or_else(|e| serde_json::json!({"error": format!("{e:#}")}))),
            "bots": self.bots.iter().map(|b| serde_json::json!({"id": b.id, "samples": b.samples()})).collect::<Vec<_>>(),
            "chromium": self.chromium.iter().map(|c| c.events()).collect::<Vec<_>>(),
        });
        let path = self.config.out_dir.join(format!("{}-raw.json", self.room));
        std::fs::write(path, serde_json::to_vec(&raw)?)?;
        for chromium in self.chromium.drain(..) {
            chromium.stop().await;
        }
        self.bots.clear();
        if let Some(server) = self.server.take() {
            server.stop();
        }
        Ok(())
    }
}
