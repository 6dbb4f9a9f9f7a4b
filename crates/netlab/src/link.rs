//! One participant's link to the server and its impairments. The link runs through a
//! router namespace of its own (participant ⇄ router ⇄ server), where every impairment
//! lives, the way it would inside a network:
//!
//! - **bandwidth cap:** a `tbf` qdisc on the router's egress towards the participant (down)
//!   or towards the server (up), with a queue of [`QUEUE`];
//! - **random loss, bursty loss, outage:** nftables drops in the router's forward hook, so
//!   no sending socket ever sees an error. Bursts use the flow's conntrack mark as a shift
//!   register: a random packet starts a burst and the next 2–7 packets of the flow follow it;
//! - **delay and jitter:** policy routing sends both ways through a TUN device read by the
//!   [`DelayShim`].
//!
//! Every setting can change while media flows; [`Link::apply`] moves to the new settings.
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::delay_shim::{Delay, DelayShim};
use crate::netns::Netns;

/// The router's interface towards the participant, towards the server, and the shim's TUN.
pub const TO_PARTICIPANT: &str = "p";
pub const TO_SERVER: &str = "s";
const TUN: &str = "dly";
/// The policy-routing table that sends packets into the TUN.
const DELAY_TABLE: &str = "100";
/// How much a capped link queues before it drops (tbf's `latency`).
pub const QUEUE: Duration = Duration::from_millis(200);

/// One direction of a link.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Direction {
    /// Bandwidth cap in kbit/s; `None` is the veth's own speed.
    pub cap_kbps: Option<u32>,
    /// Fraction of packets dropped at random (0.05 = 5 %).
    pub loss: f64,
    /// Fraction of packets dropped in bursts of 3–8 packets (only one direction of a link).
    pub burst_loss: f64,
    pub delay: Delay,
}

/// Everything wrong with a link at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    /// Towards the participant.
    pub down: Direction,
    /// Towards the server.
    pub up: Direction,
    /// Nothing gets through, either way.
    pub outage: bool,
}

pub struct Link {
    router: Netns,
    /// The participant's address, which tells the shim a packet's direction.
    participant_ip: std::net::Ipv4Addr,
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    applied: Impairment,
    shim: Option<DelayShim>,
    delay_routed: bool,
}

impl Link {
    pub(crate) fn new(router: Netns, participant_ip: std::net::Ipv4Addr) -> Link {
        Link {
            router,
            participant_ip,
            state: Mutex::new(LinkState::default()),
        }
    }

    pub fn router(&self) -> &Netns {
        &self.router
    }

    /// What the link does now.
    pub fn current(&self) -> Impairment {
        self.state.lock().map(|s| s.applied).unwrap_or_default()
    }

    /// Changes the link to `to`.
    pub fn apply(&self, to: Impairment) -> Result<()> {
        if to.down.burst_loss > 0.0 && to.up.burst_loss > 0.0 {
            bail!("bursty loss can be set on one direction of a link only");
        }
        let mut state = self
            .state
            .lock()
            .map_err(|_| anyhow::anyhow!("link state poisoned"))?;
        let from = state.applied;
        if from.down.cap_kbps != to.down.cap_kbps {
            self.set_cap(TO_PARTICIPANT, to.down.cap_kbps)?;
        }
        if from.up.cap_kbps != to.up.cap_kbps {
            self.set_cap(TO_SERVER, to.up.cap_kbps)?;
        }
        let rules = nft_ruleset(&to);
        if rules != nft_ruleset(&from) {
            let script = format!("table inet netlab\ndelete table inet netlab\n{rules}");
            self.router.exec_with_input("nft", &["-f", "-"], &script)?;
        }
        let delayed = to.down.delay != Delay::default() || to.up.delay != Delay::default();
        if delayed && state.shim.is_none() {
            let shim = DelayShim::start(&self.router, TUN, self.participant_ip)?;
            self.router.ip(&["link", "set", TUN, "up"])?;
            self.router
                .ip(&["route", "add", "default", "dev", TUN, "table", DELAY_TABLE])?;
            state.shim = Some(shim);
        }
        if let Some(shim) = &state.shim {
            shim.set(to.down.delay, to.up.delay);
        }
        if delayed != state.delay_routed {
            let verb = if delayed { "add" } else { "del" };
            for (iif, pref) in [(TO_PARTICIPANT, "100"), (TO_SERVER, "101")] {
                self.router.ip(&[
                    "rule",
                    verb,
                    "iif",
                    iif,
                    "lookup",
                    DELAY_TABLE,
                    "pref",
                    pref,
                ])?;
            }
            state.delay_routed = delayed;
        }
        state.applied = to;
        Ok(())
    }

    fn set_cap(&self, device: &str, cap_kbps: Option<u32>) -> Result<()> {
        match cap_kbps {
            Some(kbps) => {
                let rate = format!("{kbps}kbit");
                let burst = burst_bytes(kbps).to_string();
                let latency = format!("{}ms", QUEUE.as_millis());
                self.router.tc(&[
                    "qdisc", "replace", "dev", device, "root", "tbf", "rate", &rate, "burst",
                    &burst, "latency", &latency,
                ])?;
            }
            None => {
                self.router.tc(&["qdisc", "del", "dev", device, "root"])?;
            }
        }
        Ok(())
    }

    /// The qdisc statistics of both directions (`tc -s qdisc`), for a report.
    pub fn qdisc_stats(&self) -> String {
        [TO_PARTICIPANT, TO_SERVER]
            .iter()
            .filter_map(|dev| self.router.tc(&["-s", "qdisc", "show", "dev", dev]).ok())
            .collect::<Vec<_>>()
            .join("")
    }
}

/// tbf's bucket: two full-size packets, or 10 ms at the rate if that is more, so a link
/// sends at its rate without letting long bursts through.
fn burst_bytes(kbps: u32) -> u32 {
    (kbps * 1000 / 8 / 100).max(2 * 1514)
}

/// Burst lengths run from 3 to 8 packets: 5.5 on average.
const MEAN_BURST: f64 = 5.5;
/// nftables' random numbers are compared against this many.
const ODDS: u32 = 1_000_000;

/// The router's nftables table for impairment `imp`: drops in the forward hook, by the
/// interface the packet came in on (its direction).
pub fn nft_ruleset(imp: &Impairment) -> String {
    let mut rules = Vec::new();
    if imp.outage {
        rules.push(format!(
            "iifname {{ \"{TO_PARTICIPANT}\", \"{TO_SERVER}\" }} drop"
        ));
    }
    for (direction, iif) in [(&imp.down, TO_SERVER), (&imp.up, TO_PARTICIPANT)] {
        if direction.burst_loss > 0.0 {
            // The fraction f of all packets is lost when bursts of mean length L start at a
            // packet outside a burst with probability p = f / (L - f L + f).
            let f = direction.burst_loss;
            let p = f / (MEAN_BURST - f * MEAN_BURST + f);
            rules.push(format!(
                "iifname \"{iif}\" ct mark & 0x1 == 0x1 ct mark set ct mark >> 1 drop"
            ));
            rules.push(format!(
                "iifname \"{iif}\" numgen random mod {ODDS} < {} ct mark set numgen random mod 6 \
                 map {{ 0 : 0x3, 1 : 0x7, 2 : 0xf, 3 : 0x1f, 4 : 0x3f, 5 : 0x7f }} drop",
                odds(p)
            ));
        }
        if direction.loss > 0.0 {
            rules.push(format!(
                "iifname \"{iif}\" numgen random mod {ODDS} < {} drop",
                odds(direction.loss)
            ));
        }
    }
    let body: String = rules.iter().map(|r| format!("    {r}\n")).collect();
    format!(
        "table inet netlab {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n{body}  }}\n}}\n"
    )
}

fn odds(fraction: f64) -> u32 {
    (fraction.clamp(0.0, 1.0) * f64::from(ODDS)).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_link_has_an_empty_chain() {
        let rules = nft_ruleset(&Impairment::default());
        assert!(rules.contains("hook forward"));
        assert!(!rules.contains("drop"));
    }

    #[test]
    fn random_loss_drops_on_the_way_in() {
        let mut imp = Impairment::default();
        imp.down.loss = 0.05;
        let rules = nft_ruleset(&imp);
        assert!(
            rules.contains("iifname \"s\" numgen random mod 1000000 < 50000 drop"),
            "{rules}"
        );
        assert!(!rules.contains("iifname \"p\""), "{rules}");
    }

    #[test]
    fn bursts_start_rarely_enough_to_lose_the_fraction_asked() {
        let mut imp = Impairment::default();
        imp.up.burst_loss = 0.02;
        let rules = nft_ruleset(&imp);
        // p = 0.02 / (5.5 - 0.11 + 0.02)
        assert!(
            rules.contains("numgen random mod 1000000 < 3697 ct mark set"),
            "{rules}"
        );
        assert!(
            rules.contains("iifname \"p\" ct mark & 0x1 == 0x1"),
            "{rules}"
        );
    }

    #[test]
    fn an_outage_drops_both_ways() {
        let imp = Impairment {
            outage: true,
            ..Impairment::default()
        };
        assert!(nft_ruleset(&imp).contains("iifname { \"p\", \"s\" } drop"));
    }

    #[test]
    fn the_bucket_holds_two_packets_at_least() {
        assert_eq!(burst_bytes(350), 3028);
        assert_eq!(burst_bytes(10_000), 12_500);
    }
}
