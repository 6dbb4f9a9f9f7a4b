//! What a change to a room asks of the world, as values: messages for members' clients,
//! wake-ups for their sessions, orders from a host, and tracks to stop. The room's state
//! returns them and [`super::Room`] delivers them, so the same decisions can later be carried
//! to members on another node unchanged.
use std::sync::Arc;

use roomcast_protocol::{Role, ServerMessage};

use crate::media::published_track::PublishedTrack;

/// An order from a host (or the room) for one member's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Send `kicked` and close the connection.
    Kicked,
    /// The room ended (`room_ended` is already queued): close the connection.
    Ended,
    /// The member's role is now this; demoted to audience, it stops publishing.
    RoleChanged(Role),
}

#[derive(Debug, Clone)]
pub enum Effect {
    /// `msg` for the client of each member in `to`, in this order.
    Tell { to: Vec<String>, msg: ServerMessage },
    /// The tracks each member in `to` may receive changed: its session reconciles.
    Resubscribe { to: Vec<String> },
    /// An order for one member's session.
    Order { to: String, order: Order },
    /// A track left the room: forwarding stops and its totals join the room's.
    Retire(Arc<PublishedTrack>),
    /// A track stops forwarding (its room ended); its totals stay with its member.
    Stop(Arc<PublishedTrack>),
}

/// The effects of one change, in the order they must be delivered.
pub type Effects = Vec<Effect>;
