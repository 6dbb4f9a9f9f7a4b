//! The lab's topology: a server namespace, and for each participant a namespace of its own
//! joined to the server through a router namespace that carries the link's impairments.
//!
//! ```text
//!  participant i              router i                         server
//!  wan 10.77.i.2/24  ─veth─  p 10.77.i.1/24 │ s 10.78.i.2/24  ─veth─  l<i> 10.78.i.1/24
//!                                                                     lo  10.78.0.1 (the server's address)
//! ```
//!
//! Every address lives in a namespace the lab made; nothing reaches the host's network.
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{bail, Result};

use crate::link::{Impairment, Link, TO_PARTICIPANT, TO_SERVER};
use crate::netns::{sweep_stale, Netns};

/// Where the server is reached from every participant.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);

pub struct Lab {
    pub server: Netns,
    next: AtomicU8,
}

/// A participant's namespace and its link to the server.
pub struct Host {
    /// Dropped first: the link (its router and shim) goes before the namespace.
    pub link: Link,
    pub ns: Netns,
    pub ip: Ipv4Addr,
}

impl Lab {
    /// Sweeps namespaces left by killed lab runs, then makes the server's namespace.
    pub fn new() -> Result<Lab> {
        sweep_stale();
        let server = Netns::create("server")?;
        no_ipv6(&server)?;
        server.ip(&["addr", "add", &format!("{SERVER_IP}/32"), "dev", "lo"])?;
        Ok(Lab {
            server,
            next: AtomicU8::new(1),
        })
    }

    /// A new participant namespace `label`, linked to the server, with no impairment yet.
    pub fn add_host(&self, label: &str) -> Result<Host> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i == 0 || i > 250 {
            bail!("the lab holds at most 250 hosts");
        }
        let ns = Netns::create(label)?;
        let router = Netns::create(&format!("{label}-net"))?;
        no_ipv6(&ns)?;
        no_ipv6(&router)?;
        router.sysctl("net.ipv4.ip_forward", "1")?;
        // Packets the delay shim writes back come in on its TUN device, not the interface
        // their source is routed through.
        router.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
        router.sysctl("net.ipv4.conf.default.rp_filter", "0")?;

        let server_side = format!("l{i}");
        ns.ip(&[
            "link",
            "add",
            "wan",
            "type",
            "veth",
            "peer",
            "name",
            TO_PARTICIPANT,
            "netns",
            router.name(),
        ])?;
        router.ip(&[
            "link",
            "add",
            TO_SERVER,
            "type",
            "veth",
            "peer",
            "name",
            &server_side,
            "netns",
            self.server.name(),
        ])?;
        let ip = Ipv4Addr::new(10, 77, i, 2);
        let address = |ns: &Netns, dev: &str, addr: String| -> Result<()> {
            ns.ip(&["addr", "add", &addr, "dev", dev])?;
            ns.ip(&["link", "set", dev, "up"])?;
            Ok(())
        };
        address(&ns, "wan", format!("{ip}/24"))?;
        address(&router, TO_PARTICIPANT, format!("10.77.{i}.1/24"))?;
        address(&router, TO_SERVER, format!("10.78.{i}.2/24"))?;
        address(&self.server, &server_side, format!("10.78.{i}.1/24"))?;
        ns.ip(&["route", "add", "default", "via", &format!("10.77.{i}.1")])?;
        router.ip(&["route", "add", "default", "via", &format!("10.78.{i}.1")])?;
        self.server.ip(&[
            "route",
            "add",
            &format!("10.77.{i}.0/24"),
            "via",
            &format!("10.78.{i}.2"),
        ])?;
        let link = Link::new(router, ip);
        link.apply(Impairment::default())?;
        Ok(Host { link, ns, ip })
    }
}

fn no_ipv6(ns: &Netns) -> Result<()> {
    ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
    ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
}
