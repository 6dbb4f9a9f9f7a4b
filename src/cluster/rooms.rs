//! The admin API's `/api/rooms...` for the whole cluster, from any node: the list gathers
//! every node's rooms, and a request about one room goes to the node that holds it.
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{peer_http, ClusterNode};

/// Marks a request one node makes on another: answered by that node alone.
pub const LOCAL_ONLY_HEADER: &str = "x-roomcast-local";
/// The largest admin answer or request body passed between nodes.
const MAX_BODY: usize = 1 << 20;

/// Middleware on the admin routes of a cluster node.
pub async fn cluster_wide(
    State(node): State<Arc<ClusterNode>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if request.headers().contains_key(LOCAL_ONLY_HEADER) {
        return next.run(request).await;
    }
    if path == "/api/rooms" && request.method() == Method::GET {
        let auth = authorization(&request);
        let local = next.run(request).await;
        if local.status() != StatusCode::OK {
            return local;
        }
        return gather(&node, local, auth.as_deref()).await;
    }
    let room = path
        .strip_prefix("/api/rooms/")
        .and_then(|rest| rest.split('/').next())
        .filter(|r| roomcast_protocol::is_valid_room_name(r))
        .map(str::to_owned);
    let Some(room) = room else {
        return next.run(request).await;
    };
    if node.sfu.room(&room).is_some() {
        return next.run(request).await;
    }
    let owner = match node.cluster.rooms().await {
        Ok(rooms) => rooms.into_iter().find(|(r, _)| *r == room).map(|(_, o)| o),
        Err(_) => None,
    };
    let target = owner
        .filter(|o| o != node.id())
        .and_then(|o| node.cluster.known_nodes().into_iter().find(|n| n.id == o));
    let Some(target) = target else {
        return next.run(request).await;
    };
    forward(&target.internal_url, request).await
}

fn authorization(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// This node's list, with every other node's rooms added; nodes that do not answer are
/// named in `unreachable`.
async fn gather(node: &ClusterNode, local: Response, auth: Option<&str>) -> Response {
    let Ok(body) = to_bytes(local.into_body(), MAX_BODY).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut rooms = rooms_of(&body, node.id());
    let mut unreachable = Vec::new();
    for other in node.cluster.known_nodes() {
        if other.id == node.id() {
            continue;
        }
        let reply =
            peer_http::request(&other.internal_url, "GET", "/api/rooms", auth, &[], &[]).await;
        match reply {
            Ok(reply) if reply.status == 200 => {
                rooms.extend(rooms_of(reply.body.as_bytes(), &other.id))
            }
            _ => unreachable.push(other.id.clone()),
        }
    }
    rooms.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut list = serde_json::json!({ "rooms": rooms });
    if !unreachable.is_empty() {
        list["unreachable"] = serde_json::json!(unreachable);
    }
    axum::Json(list).into_response()
}

/// The `rooms` of a node's own `/api/rooms` answer, each marked with `node`.
fn rooms_of(body: &[u8], node: &str) -> Vec<Value> {
    let Ok(Value::Object(mut list)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(Value::Array(rooms)) = list.remove("rooms") else {
        return Vec::new();
    };
    rooms
        .into_iter()
        .map(|mut room| {
            room["node"] = Value::from(node);
            room
        })
        .collect()
}

/// Sends `request` to the node at `base` and passes its answer back.
async fn forward(base: &str, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let auth = authorization(&request);
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = to_bytes(request.into_body(), MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let extra: Vec<(&str, &str)> = content_type
        .as_deref()
        .map(|c| vec![("Content-Type", c)])
        .unwrap_or_default();
    match peer_http::request(base, &method, &path, auth.as_deref(), &extra, &body).await {
        Ok(reply) => {
            let has_body = !reply.body.is_empty();
            let mut response = Response::new(Body::from(reply.body));
            *response.status_mut() =
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
            if has_body {
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            response
        }
        Err(e) => {
            tracing::info!(error = %e, "the room's node did not answer an admin request");
            StatusCode::BAD_GATEWAY.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_marked_with_their_node() {
        let rooms = rooms_of(br#"{"rooms":[{"name":"x","participants":2}]}"#, "n1");
        assert_eq!(
            rooms,
            [serde_json::json!({"name":"x","participants":2,"node":"n1"})]
        );
        assert!(rooms_of(b"garbage", "n1").is_empty());
    }
}
