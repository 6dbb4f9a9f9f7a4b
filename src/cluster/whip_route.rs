//! WHIP and WHEP on a cluster node: `/whip/{room}...` and `/whep/{room}...` for a room held
//! by another node are passed to that node over its internal URL and its answer comes back
//! unchanged (status, `Location`, `ETag`, `Link`, the SDP), so an encoder or player behind a
//! load balancer works whichever node it reaches, for the POST and for the PATCH and
//! DELETE on its resource after it (they go where the room is). Its media goes straight to
//! the room's node, whose candidates the answer carries, as for a relayed WebSocket.
//!
//! Why a proxy and not a 307 to the owner's public address: RFC 9725 clients must follow
//! 307 (OBS does since 30.0), but behind a load balancer the nodes' own addresses are often
//! not reachable from outside, and not every client follows redirects; passing one small
//! HTTP exchange on costs little. The owner believes the client's address in
//! [`super::CLIENT_IP_HEADER`] from a registered node only, as for WebSockets.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use roomcast_cluster::{Location, NodeInfo};

use super::rooms::LOCAL_ONLY_HEADER;
use super::{peer_http, ClusterNode, CLIENT_IP_HEADER};

/// How long the room's node may take to answer (a POST sets up a PeerConnection).
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body passed on (WHIP's own limit is lower).
const MAX_BODY: usize = 256 << 10;
/// Request header fields passed to the room's node (with the client's address and
/// `Authorization`).
const PASSED: [&str; 6] = [
    "content-type",
    "if-match",
    "origin",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];
/// Answer header fields not passed back (this connection's own).
const HOP_BY_HOP: [&str; 4] = ["connection", "content-length", "keep-alive", "date"];

/// The room a WHIP or WHEP request is about, and whether it creates a session (a POST,
/// which places the room if no node holds it). OPTIONS is answered by any node.
fn target(method: &Method, path: &str) -> Option<(String, bool)> {
    if method == Method::OPTIONS {
        return None;
    }
    let mut parts = path.strip_prefix('/')?.split('/');
    if !matches!(parts.next(), Some("whip" | "whep")) {
        return None;
    }
    let room = parts.next()?;
    roomcast_protocol::is_valid_room_name(room).then(|| (room.to_owned(), method == Method::POST))
}

/// Middleware on the WHIP and WHEP routes of a cluster node.
pub async fn route(
    State(node): State<Arc<ClusterNode>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some((room, create)) = target(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if request.headers().contains_key(LOCAL_ONLY_HEADER) {
        // Passed on by another node: its client's address is the one that counts.
        if let Some(peer) = peer {
            if let Some(ip) = node.relayed_client_ip(peer.ip(), request.headers()) {
                request
                    .extensions_mut()
                    .insert(ConnectInfo(SocketAddr::new(ip, peer.port())));
            }
        }
        return next.run(request).await;
    }
    if node.sfu.room(&room).is_some() && !node.cascade.is_mirror(&room) {
        return next.run(request).await;
    }
    let located = if create {
        node.cluster.locate(&room).await.map(Some)
    } else {
        node.cluster.find(&room).await
    };
    match located {
        Ok(Some(Location::Node(owner))) => forward(&owner, peer, request).await,
        Ok(Some(Location::Here) | None) => next.run(request).await,
        // A resource of a room nobody can be asked about: this node answers (404).
        Err(_) if !create => next.run(request).await,
        Err(e) => {
            tracing::info!(%room, error = ?e, "WHIP/WHEP: the room cannot be placed now");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "2")],
                "the cluster cannot place this room now; try again shortly\n",
            )
                .into_response()
        }
    }
}

async fn forward(owner: &NodeInfo, peer: Option<SocketAddr>, request: Request) -> Response {
    let (method, path, auth, passed) = head_of(&request, peer);
    let Ok(body) = to_bytes(request.into_body(), MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let extra: Vec<(&str, &str)> = passed
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let reply = peer_http::request_within(
        TIMEOUT,
        &owner.internal_url,
        &method,
        &path,
        auth.as_deref(),
        &extra,
        &body,
    )
    .await;
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            tracing::info!(owner = %owner.id, error = %e, "WHIP/WHEP: the room's node did not answer");
            return (
                StatusCode::BAD_GATEWAY,
                [(header::RETRY_AFTER, "2")],
                "the room's node did not answer; try again shortly\n",
            )
                .into_response();
        }
    };
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in reply.headers {
        if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// What of `request` goes to the room's node besides its body: method, path and query,
/// `Authorization`, and the [`PASSED`] fields with the client's address.
#[allow(clippy::type_complexity)]
fn head_of(
    request: &Request,
    peer: Option<SocketAddr>,
) -> (String, String, Option<String>, Vec<(String, String)>) {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let auth = header(header::AUTHORIZATION.as_str());
    let mut passed: Vec<(String, String)> = PASSED
        .iter()
        .filter_map(|name| header(name).map(|v| ((*name).to_owned(), v)))
        .collect();
    if let Some(peer) = peer {
        passed.push((
            CLIENT_IP_HEADER.to_owned(),
            peer.ip().to_canonical().to_string(),
        ));
    }
    (method, path, auth, passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whip_and_whep_paths_name_their_room() {
        let post = Method::POST;
        assert_eq!(target(&post, "/whip/r1"), Some(("r1".to_owned(), true)));
        assert_eq!(target(&post, "/whep/r1/ann"), Some(("r1".to_owned(), true)));
        assert_eq!(
            target(&Method::PATCH, "/whip/r1/PA_x"),
            Some(("r1".to_owned(), false))
        );
        assert_eq!(
            target(&Method::DELETE, "/whep/r1/WV_x"),
            Some(("r1".to_owned(), false))
        );
        assert_eq!(target(&Method::OPTIONS, "/whip/r1"), None);
        assert_eq!(target(&post, "/whip/bad room"), None);
        assert_eq!(target(&post, "/api/rooms/r1"), None);
        assert_eq!(target(&post, "/whip"), None);
    }
}
