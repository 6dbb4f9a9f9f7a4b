//! One node as the registry knows it: who it is, where to reach it, how loaded it is.
//!
//! The record is stored flat (a Redis hash, field by field), so an operator can read it with
//! `HGETALL` and a node of a newer version can add fields older ones ignore.
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Whether a node takes new rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Takes new rooms and new participants.
    Serving,
    /// Going away: keeps its rooms until they empty or the drain deadline, takes no new ones.
    Draining,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Serving => "serving",
            NodeState::Draining => "draining",
        }
    }
}

impl FromStr for NodeState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "serving" => Ok(NodeState::Serving),
            "draining" => Ok(NodeState::Draining),
            _ => Err(()),
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a node carries now, refreshed with every heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    pub rooms: u64,
    pub participants: u64,
    /// RTP packets sent to subscribers per second, over the last heartbeat interval.
    pub packets_per_second: u64,
    /// Share of the machine's CPU the process used over the last interval (0 to 1).
    pub cpu: f64,
}

/// Where a node is and what it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// Unique in the cluster (`A-Z a-z 0-9 _ - .`, see [`is_valid_node_id`]).
    pub id: String,
    /// A label (e.g. `eu-west`); placement prefers nodes in the placing node's region.
    pub region: String,
    /// The signaling WebSocket URL clients use, e.g. `ws://203.0.113.10:8080/ws`.
    pub public_url: String,
    /// The media address clients send to (`IP:UDP port`; the host of its ICE candidates).
    pub media_addr: String,
    /// Base URL other nodes use to reach this one, e.g. `http://10.0.0.5:7000`.
    pub internal_url: String,
    pub state: NodeState,
    pub load: Load,
    /// Participants this node is meant to carry; load is measured against it.
    pub capacity: u64,
}

impl NodeInfo {
    /// How full the node is, 0 (idle) to 1 and above (over capacity): the larger of its
    /// participants against its capacity and its CPU share.
    pub fn utilisation(&self) -> f64 {
        let people = self.load.participants as f64 / self.capacity.max(1) as f64;
        people.max(self.load.cpu)
    }

    /// The record as field/value pairs (a Redis hash).
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("id", self.id.clone()),
            ("region", self.region.clone()),
            ("public_url", self.public_url.clone()),
            ("media_addr", self.media_addr.clone()),
            ("internal_url", self.internal_url.clone()),
            ("state", self.state.to_string()),
            ("rooms", self.load.rooms.to_string()),
            ("participants", self.load.participants.to_string()),
            (
                "packets_per_second",
                self.load.packets_per_second.to_string(),
            ),
            ("cpu", format!("{:.3}", self.load.cpu)),
            ("capacity", self.capacity.to_string()),
        ]
    }

    /// Reads a record written by [`NodeInfo::to_fields`]; `None` if a field is missing or
    /// malformed (the store may hold anything).
    pub fn from_fields(fields: &HashMap<String, String>) -> Option<NodeInfo> {
        let text = |name: &str| fields.get(name).cloned();
        let number = |name: &str| fields.get(name)?.parse::<u64>().ok();
        let cpu = fields
            .get("cpu")?
            .parse::<f64>()
            .ok()
            .filter(|c| c.is_finite())?;
        let id = text("id").filter(|id| is_valid_node_id(id))?;
        Some(NodeInfo {
            id,
            region: text("region")?,
            public_url: text("public_url")?,
            media_addr: text("media_addr")?,
            internal_url: text("internal_url")?,
            state: fields.get("state")?.parse().ok()?,
            load: Load {
                rooms: number("rooms")?,
                participants: number("participants")?,
                packets_per_second: number("packets_per_second")?,
                cpu: cpu.max(0.0),
            },
            capacity: number("capacity")?,
        })
    }
}

/// Node ids go into store keys and log lines, so they follow the rule for room names:
/// 1-64 of `A-Z a-z 0-9 _ - .`.
pub fn is_valid_node_id(id: &str) -> bool {
    roomcast_protocol::is_valid_room_name(id)
}

#[cfg(test)]
pub(crate) fn test_node(id: &str, region: &str, participants: u64, cpu: f64) -> NodeInfo {
    NodeInfo {
        id: id.to_owned(),
        region: region.to_owned(),
        public_url: format!("ws://{id}.example:8080/ws"),
        media_addr: "192.0.2.1:50000".to_owned(),
        internal_url: format!("http://{id}.internal:7000"),
        state: NodeState::Serving,
        load: Load {
            rooms: 0,
            participants,
            packets_per_second: 0,
            cpu,
        },
        capacity: 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_map(node: &NodeInfo) -> HashMap<String, String> {
        node.to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    #[test]
    fn fields_round_trip() {
        let mut node = test_node("n1", "eu", 120, 0.25);
        node.state = NodeState::Draining;
        node.load.rooms = 7;
        node.load.packets_per_second = 12_345;
        assert_eq!(NodeInfo::from_fields(&as_map(&node)), Some(node));
    }

    #[test]
    fn malformed_records_are_skipped() {
        let good = as_map(&test_node("n1", "eu", 1, 0.0));
        for (field, bad) in [
            ("state", "sleeping"),
            ("participants", "-1"),
            ("cpu", "NaN"),
            ("id", "a b"),
            ("capacity", ""),
        ] {
            let mut fields = good.clone();
            fields.insert(field.to_owned(), bad.to_owned());
            assert_eq!(NodeInfo::from_fields(&fields), None, "{field}={bad}");
        }
        let mut missing = good;
        missing.remove("internal_url");
        assert_eq!(NodeInfo::from_fields(&missing), None);
    }

    #[test]
    fn utilisation_is_the_fuller_of_people_and_cpu() {
        assert_eq!(test_node("a", "r", 500, 0.1).utilisation(), 0.5);
        assert_eq!(test_node("a", "r", 100, 0.9).utilisation(), 0.9);
    }

    #[test]
    fn node_ids() {
        assert!(is_valid_node_id("node-1.eu_west"));
        assert!(!is_valid_node_id(""));
        assert!(!is_valid_node_id("a:b"));
        assert!(!is_valid_node_id(&"x".repeat(65)));
    }
}
