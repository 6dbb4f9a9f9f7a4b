//! Which node a new room goes to. A pure decision over the registry's records; the store
//! then claims the room for the chosen node atomically, so two nodes that choose
//! differently for the same room still agree on the one that claimed it first.
use crate::node::{NodeInfo, NodeState};

/// A node at or above this utilisation is full: placement uses it only when every node is.
pub const FULL: f64 = 1.0;

/// The serving node a new room should go to: the least utilised one, preferring nodes in
/// `region` that are not full. Ties go to the node with fewer rooms, then the smaller id,
/// so nodes that read the same registry choose the same node.
pub fn choose<'a>(nodes: &'a [NodeInfo], region: &str) -> Option<&'a NodeInfo> {
    let serving = || nodes.iter().filter(|n| n.state == NodeState::Serving);
    let in_region = serving()
        .filter(|n| n.region == region && n.utilisation() < FULL)
        .min_by(|a, b| order(a, b));
    in_region.or_else(|| serving().min_by(|a, b| order(a, b)))
}

fn order(a: &NodeInfo, b: &NodeInfo) -> std::cmp::Ordering {
    a.utilisation()
        .total_cmp(&b.utilisation())
        .then(a.load.rooms.cmp(&b.load.rooms))
        .then(a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::test_node;

    fn ids(nodes: &[NodeInfo], region: &str) -> Option<String> {
        choose(nodes, region).map(|n| n.id.clone())
    }

    #[test]
    fn least_utilised_serving_node_wins() {
        let nodes = vec![
            test_node("a", "eu", 300, 0.1),
            test_node("b", "eu", 100, 0.1),
            test_node("c", "eu", 50, 0.6),
        ];
        assert_eq!(ids(&nodes, "eu").as_deref(), Some("b"));
    }

    #[test]
    fn draining_nodes_take_no_rooms() {
        let mut nodes = vec![test_node("a", "eu", 0, 0.0), test_node("b", "eu", 900, 0.9)];
        nodes[0].state = NodeState::Draining;
        assert_eq!(ids(&nodes, "eu").as_deref(), Some("b"));
        nodes[1].state = NodeState::Draining;
        assert_eq!(ids(&nodes, "eu"), None);
    }

    #[test]
    fn own_region_first_until_it_is_full() {
        let mut nodes = vec![
            test_node("far", "us", 0, 0.0),
            test_node("near", "eu", 600, 0.2),
        ];
        assert_eq!(ids(&nodes, "eu").as_deref(), Some("near"));
        nodes[1].load.participants = 1000;
        assert_eq!(ids(&nodes, "eu").as_deref(), Some("far"));
        // Everyone full: the least utilised anywhere.
        nodes[0].load.cpu = 1.5;
        assert_eq!(ids(&nodes, "eu").as_deref(), Some("near"));
    }

    #[test]
    fn ties_are_broken_the_same_way_everywhere() {
        let mut nodes = vec![
            test_node("b", "eu", 0, 0.0),
            test_node("a", "eu", 0, 0.0),
            test_node("c", "eu", 0, 0.0),
        ];
        assert_eq!(ids(&nodes, "eu").as_deref(), Some("a"));
        nodes[1].load.rooms = 3;
        assert_eq!(ids(&nodes, "eu").as_deref(), Some("b"));
        nodes.reverse();
        assert_eq!(ids(&nodes, "eu").as_deref(), Some("b"));
    }

    #[test]
    fn no_nodes_no_choice() {
        assert_eq!(ids(&[], "eu"), None);
    }
}
