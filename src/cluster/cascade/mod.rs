//! Cascading: one room across nodes. When the node holding a room carries at least
//! `--cascade-after` participants, an audience member joining through another node is
//! served by that node (an edge) instead of being relayed to the owner: the edge mirrors
//! the room ([`mirror`]) through one hidden relay participant per (room, edge), which
//! pulls each published track from the owner once and fans it out to the edge's audience.
//! Publishers always go to the owner. docs/cluster.md has the design and its limits.
pub mod decide;
pub mod keyframe_hold;
pub mod layer_demand;
pub mod layer_gate;
pub mod layer_relay;
pub mod mirror;
pub mod presence;
pub mod uplink;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use parking_lot::Mutex;
use roomcast_cluster::NodeInfo;
use roomcast_sfu::Sfu;
use tokio::sync::OnceCell;

use mirror::Mirror;

/// The query a node's relay connects to the owner's `/ws` with (see
/// [`super::ClusterNode::is_cascade_relay`]).
pub const RELAY_QUERY: &str = "cascade_relay=1";

/// A `join`'s text with its role set to `audience` (what an edge serves it as: the local
/// room's settings come from its first mirrored host, which a room may not have).
pub fn as_audience(join: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(join) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.insert("role".to_owned(), "audience".into());
            serde_json::Value::Object(fields).to_string()
        }
        _ => join.to_owned(),
    }
}

/// This node's mirrors of rooms held elsewhere.
pub struct Cascade {
    node_id: String,
    sfu: Arc<Sfu>,
    /// Audience joins go to edges once the owner registers this many participants.
    pub cascade_after: u64,
    mirrors: Mutex<HashMap<String, Arc<OnceCell<Arc<Mirror>>>>>,
    /// Members of rooms here that watch through an edge ([`presence`]): they cost this
    /// node no media, so its registered load leaves them out.
    pub edge_viewers: AtomicUsize,
}

impl Cascade {
    pub fn new(node_id: String, sfu: Arc<Sfu>, cascade_after: u64) -> Arc<Cascade> {
        Arc::new(Cascade {
            node_id,
            sfu,
            cascade_after,
            mirrors: Mutex::new(HashMap::new()),
            edge_viewers: AtomicUsize::new(0),
        })
    }

    /// Whether `room` here is a mirror of a room held by another node (its lease is the
    /// owner's, never this node's).
    pub fn is_mirror(&self, room: &str) -> bool {
        self.mirrors.lock().contains_key(room)
    }

    /// This node's mirror of `room`, opened on `owner` if there is none yet (concurrent
    /// joins share one opening).
    pub async fn mirror(
        self: &Arc<Self>,
        owner: &NodeInfo,
        room: &str,
    ) -> anyhow::Result<Arc<Mirror>> {
        let cell = Arc::clone(
            self.mirrors
                .lock()
                .entry(room.to_owned())
                .or_insert_with(|| Arc::new(OnceCell::new())),
        );
        let opened = cell
            .get_or_try_init(|| async {
                let (mirror, media) =
                    Mirror::open(Arc::clone(&self.sfu), &self.node_id, owner, room).await?;
                let this = Arc::clone(self);
                let running = Arc::clone(&mirror);
                let name = room.to_owned();
                let cell = Arc::clone(&cell);
                tokio::spawn(async move {
                    running.run(media).await;
                    this.forget(&name, &cell);
                });
                anyhow::Ok(mirror)
            })
            .await;
        match opened {
            Ok(mirror) => Ok(Arc::clone(mirror)),
            Err(e) => {
                self.forget(room, &cell);
                Err(e)
            }
        }
    }

    fn forget(&self, room: &str, cell: &Arc<OnceCell<Arc<Mirror>>>) {
        let mut mirrors = self.mirrors.lock();
        if mirrors.get(room).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            mirrors.remove(room);
        }
    }

    /// Stops every mirror (this node is stopping).
    pub fn close_all(&self) {
        for cell in self.mirrors.lock().values() {
            if let Some(mirror) = cell.get() {
                mirror.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_edge_join_is_an_audience_join() {
        let join = super::as_audience(r#"{"type":"join","room":"r","name":"n"}"#);
        let value: serde_json::Value = serde_json::from_str(&join).unwrap();
        assert_eq!(value["role"], "audience");
        assert_eq!(value["room"], "r");
        assert_eq!(super::as_audience("not json"), "not json");
    }
}
