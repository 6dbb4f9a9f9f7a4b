//! Draining this node (SIGTERM, or `POST /api/nodes/{id}/drain`): no new rooms here, wait
//! until nobody is left or the deadline passes, then give the rooms up so that the clients
//! told to `reconnect` (as the server stops) land on other nodes.
use std::time::Duration;

use roomcast_cluster::drain::{Drain, DrainStep};
use roomcast_sfu::Sfu;

use super::ClusterNode;
use crate::http::Connections;

/// How often the drain looks at what is left (connections and rooms have no event for
/// "all gone" that covers both).
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Drains until the node may stop; returns whether clients are left to be told to
/// `reconnect`.
pub async fn run(node: &ClusterNode, connections: &Connections, sfu: &Sfu) -> bool {
    node.cluster.drain();
    let drain = Drain::new(std::time::Instant::now(), node.drain_timeout());
    tracing::info!(node = %node.id(), timeout = ?node.drain_timeout(), "draining");
    loop {
        let participants = sfu.stats().participants;
        match drain.step(std::time::Instant::now(), connections.count(), participants) {
            DrainStep::Stop => {
                tracing::info!(node = %node.id(), "drained: nobody left");
                return false;
            }
            DrainStep::Evacuate => {
                node.evacuate().await;
                return true;
            }
            DrainStep::Wait { until } => {
                let next = until.min(std::time::Instant::now() + LOOK_EVERY);
                tokio::time::sleep_until(next.into()).await;
            }
        }
    }
}
