//! Where a connection's first message belongs: here, or on the node that holds its room.
use roomcast_cluster::{Location, NodeInfo, PlaceError};
use roomcast_protocol::{decode_client_message, ClientMessage, ErrorCode, Role, ServerMessage};

use super::cascade::decide::{self, EdgeChoice};
use super::ClusterNode;

/// Separates the issuing node's id from the rest of a session token.
pub const TOKEN_NODE_SEPARATOR: char = '~';

#[derive(Debug)]
pub enum Route {
    /// This node serves the connection (its room is here, or the message needs no room).
    Here,
    /// The room (or the session a `resume` names) is on `owner`.
    Relay { owner: NodeInfo, resume: bool },
    /// An audience join of `room`, held by `owner`, that this node serves from its mirror
    /// (cascading); with `webinar_only`, only if the room is a webinar.
    Edge {
        owner: NodeInfo,
        room: String,
        webinar_only: bool,
    },
    /// The room cannot be placed now: this error goes back and the connection stays open.
    Refuse(ServerMessage),
    /// A `resume` no node can take (its node is gone, or its session is): answered
    /// `session_expired` here, and the connection stays open for the client's fresh `join`,
    /// which is routed like a first message (a node must not serve a room it does not hold).
    Expired,
}

impl ClusterNode {
    /// Where a connection whose first message is `text` belongs. A `join` of a room no node
    /// holds places it (see [`roomcast_cluster::Cluster::locate`]); `resumable` says whether
    /// a session token names a session of this node.
    pub async fn route(&self, text: &str, resumable: impl Fn(&str) -> bool) -> Route {
        match decode_client_message(text) {
            Ok(ClientMessage::Join {
                room, role, token, ..
            }) if roomcast_protocol::is_valid_room_name(&room) => {
                self.route_join(&room, role, token.is_some()).await
            }
            Ok(ClientMessage::Resume { session_token }) => {
                self.route_resume(&session_token, resumable)
            }
            // Anything else is answered here, as on a server alone.
            _ => Route::Here,
        }
    }

    async fn route_join(&self, room: &str, role: Option<Role>, has_token: bool) -> Route {
        match self.cluster.locate(room).await {
            Ok(Location::Here) => Route::Here,
            Ok(Location::Node(owner)) => {
                let choice = decide::choose(
                    role,
                    has_token,
                    owner.load.participants,
                    self.cascade.cascade_after,
                );
                match choice {
                    EdgeChoice::Owner => Route::Relay {
                        owner,
                        resume: false,
                    },
                    EdgeChoice::Edge | EdgeChoice::EdgeIfWebinar => Route::Edge {
                        owner,
                        room: room.to_owned(),
                        webinar_only: choice == EdgeChoice::EdgeIfWebinar,
                    },
                }
            }
            // A room already here is served here while the store is away.
            Err(_) if self.sfu.room(room).is_some() => Route::Here,
            Err(e) => {
                let why = match e {
                    PlaceError::Unavailable => {
                        "the cluster cannot place new rooms now (its store is unreachable); try again shortly"
                    }
                    PlaceError::NoNode => "no node of the cluster takes new rooms now; try again shortly",
                };
                Route::Refuse(ServerMessage::error(ErrorCode::ClusterUnavailable, why))
            }
        }
    }

    /// A session token starts with its node's id: a `resume` goes there if that node is
    /// registered, is served here if its session is here, and is expired otherwise (the
    /// client joins afresh).
    fn route_resume(&self, token: &str, resumable: impl Fn(&str) -> bool) -> Route {
        let Some((node, _)) = token.split_once(TOKEN_NODE_SEPARATOR) else {
            return Route::Expired;
        };
        if node == self.id() {
            return if resumable(token) {
                Route::Here
            } else {
                Route::Expired
            };
        }
        match self
            .cluster
            .known_nodes()
            .into_iter()
            .find(|n| n.id == node)
        {
            Some(owner) => Route::Relay {
                owner,
                resume: true,
            },
            None => Route::Expired,
        }
    }
}
