//! Whether an audience join arriving at a node that does not hold its room is served here,
//! on an edge of the room (cascading), or relayed to the room's node. Synchronous, no I/O.
use roomcast_protocol::Role;

/// What to do with a `join` of a room held by another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeChoice {
    /// Relay it to the room's node, as any join.
    Owner,
    /// Serve it here, in this node's mirror of the room.
    Edge,
    /// Serve it here if the room is a webinar (a join naming no role is audience there);
    /// the mirror knows.
    EdgeIfWebinar,
}

/// `role` and `token` are the join's; `owner_participants` the owner's participants as its
/// last heartbeat registered them; `cascade_after` this node's `--cascade-after`. Only the
/// audience goes to edges: publishers (and anyone a token may make one) go to the owner,
/// where the room's media is.
pub fn choose(
    role: Option<Role>,
    has_token: bool,
    owner_participants: u64,
    cascade_after: u64,
) -> EdgeChoice {
    if owner_participants < cascade_after {
        return EdgeChoice::Owner;
    }
    match (role, has_token) {
        // A token may grant a role that publishes: the owner decides.
        (_, true) => EdgeChoice::Owner,
        (Some(Role::Audience), false) => EdgeChoice::Edge,
        (None, false) => EdgeChoice::EdgeIfWebinar,
        // Staff publish.
        (Some(_), false) => EdgeChoice::Owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_audience_goes_to_edges_and_only_past_the_threshold() {
        assert_eq!(
            choose(Some(Role::Audience), false, 9, 10),
            EdgeChoice::Owner
        );
        assert_eq!(
            choose(Some(Role::Audience), false, 10, 10),
            EdgeChoice::Edge
        );
        assert_eq!(
            choose(Some(Role::Audience), true, 10, 10),
            EdgeChoice::Owner
        );
        assert_eq!(choose(None, false, 10, 10), EdgeChoice::EdgeIfWebinar);
        assert_eq!(choose(None, true, 10, 10), EdgeChoice::Owner);
        assert_eq!(
            choose(Some(Role::Presenter), false, 99, 10),
            EdgeChoice::Owner
        );
        assert_eq!(choose(Some(Role::Host), false, 99, 0), EdgeChoice::Owner);
        assert_eq!(choose(Some(Role::Audience), false, 0, 0), EdgeChoice::Edge);
    }
}
