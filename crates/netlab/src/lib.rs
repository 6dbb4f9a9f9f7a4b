//! roomcast's network impairment lab: participants (headless bots, real Chromium) in network
//! namespaces of their own, each linked to the server's namespace through a router whose
//! link the scenarios cap, make lossy, delay or cut while media flows. See `docs/network.md`.
pub mod bots;
pub mod chromium;
pub mod clock;
pub mod cpu;
pub mod delay_line;
pub mod delay_shim;
pub mod lab;
pub mod link;
pub mod metrics;
pub mod netns;
pub mod outcome;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod stage;
