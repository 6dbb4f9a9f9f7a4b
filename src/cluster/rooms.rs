//! The admin API's `/api/rooms...` for the whole cluster, from any node: the list gathers
//! every node's rooms, and a request about one room goes to the node that holds it.
use std::collections::HashMap;
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
    // A mirror here (cascading) is not the room: its node answers.
    if node.sfu.room(&room).is_some() && !node.cascade.is_mirror(&room) {
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
    let owners: HashMap<String, String> = node
        .cluster
        .rooms()
        .await
        .map(|rooms| rooms.into_iter().collect())
        .unwrap_or_default();
    let mut rooms = fold_mirrors(rooms, &owners);
    rooms.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut list = serde_json::json!({ "rooms": rooms });
    if !unreachable.is_empty() {
        list["unreachable"] = serde_json::json!(unreachable);
    }
    axum::Json(list).into_response()
}

/// Each room once, as its node lists it: another node's mirror of it (cascading) is not a
/// room but part of its audience, which the room's node counts already (edge viewers are
/// members there); the room lists its edges under `edges` (`node`, `audience`: the viewers
/// that node serves). A mirror whose room's node did not answer stays listed, with
/// `"mirror": true`.
fn fold_mirrors(rooms: Vec<Value>, owners: &HashMap<String, String>) -> Vec<Value> {
    let owner_of = |room: &Value| owners.get(room["name"].as_str().unwrap_or_default());
    let is_mirror = |room: &Value| owner_of(room).is_some_and(|o| room["node"].as_str() != Some(o));
    let (mirrors, mut held): (Vec<Value>, Vec<Value>) = rooms.into_iter().partition(is_mirror);
    for mut mirror in mirrors {
        let edge = serde_json::json!({
            "node": mirror["node"].clone(),
            "audience": mirror["audience"].clone(),
        });
        let room = held.iter_mut().find(|r| {
            r["name"] == mirror["name"] && owner_of(r).map(String::as_str) == r["node"].as_str()
        });
        match room {
            Some(room) => match room.get_mut("edges").and_then(Value::as_array_mut) {
                Some(edges) => edges.push(edge),
                None => room["edges"] = Value::Array(vec![edge]),
            },
            None => {
                mirror["mirror"] = Value::Bool(true);
                held.push(mirror);
            }
        }
    }
    held
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

    #[test]
    fn a_room_is_listed_once_with_its_edges() {
        let room = |name: &str, node: &str, audience: u64| serde_json::json!({"name": name, "node": node, "participants": audience + 1, "audience": audience});
        let owners: HashMap<String, String> = [("w", "n1"), ("m", "n2"), ("lost", "n9")]
            .into_iter()
            .map(|(r, n)| (r.to_owned(), n.to_owned()))
            .collect();
        let listed = fold_mirrors(
            vec![
                room("w", "n2", 2),
                room("w", "n1", 7),
                room("w", "n3", 3),
                room("m", "n2", 0),
                room("lost", "n3", 4),
                room("unplaced", "n3", 1),
            ],
            &owners,
        );
        assert_eq!(listed.len(), 4, "{listed:?}");
        let w = listed.iter().find(|r| r["name"] == "w").unwrap();
        assert_eq!(w["node"], "n1");
        assert_eq!(w["audience"], 7);
        assert_eq!(
            w["edges"],
            serde_json::json!([{"node": "n2", "audience": 2}, {"node": "n3", "audience": 3}])
        );
        let m = listed.iter().find(|r| r["name"] == "m").unwrap();
        assert!(m.get("edges").is_none());
        let lost = listed.iter().find(|r| r["name"] == "lost").unwrap();
        assert_eq!(lost["mirror"], true);
        assert!(listed.iter().any(|r| r["name"] == "unplaced"));
        // Without the store's answer, nothing is folded.
        assert_eq!(
            fold_mirrors(vec![room("w", "n2", 2)], &HashMap::new()).len(),
            1
        );
    }
}
