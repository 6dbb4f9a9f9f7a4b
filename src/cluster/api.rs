//! `/api/nodes`: the cluster's registry, and draining a node, from any node (admin key
//! required, as the rest of the admin API). `/api/cluster/urls`: the serving nodes' public
//! signaling URLs, for clients (no key: clients connect to them anyway).
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use roomcast_cluster::NodeInfo;
use serde::Serialize;

use super::{peer_http, ClusterNode};
use crate::admin::{check_bearer, AdminKey, ApiError};

#[derive(Clone)]
struct ApiState {
    node: Arc<ClusterNode>,
    key: Option<AdminKey>,
}

pub fn routes<S>(node: Arc<ClusterNode>, key: Option<AdminKey>) -> Router<S> {
    Router::new()
        .route("/api/nodes", get(list_nodes))
        .route("/api/nodes/{id}/drain", post(drain))
        .route("/api/cluster/urls", get(signaling_urls))
        .merge(super::cascade::presence::routes(Arc::clone(&node)))
        .with_state(ApiState { node, key })
}

fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let key = state.key.as_ref().ok_or_else(ApiError::disabled)?;
    check_bearer(headers, key)
}

/// One node as `/api/nodes` lists it.
#[derive(Debug, Serialize)]
pub struct NodeSummary {
    pub id: String,
    pub region: String,
    pub state: String,
    pub public_url: String,
    pub internal_url: String,
    pub media_addr: String,
    pub rooms: u64,
    pub participants: u64,
    pub packets_per_second: u64,
    pub cpu: f64,
    pub capacity: u64,
}

impl From<NodeInfo> for NodeSummary {
    fn from(n: NodeInfo) -> Self {
        NodeSummary {
            id: n.id,
            region: n.region,
            state: n.state.to_string(),
            public_url: n.public_url,
            internal_url: n.internal_url,
            media_addr: n.media_addr,
            rooms: n.load.rooms,
            participants: n.load.participants,
            packets_per_second: n.load.packets_per_second,
            cpu: n.load.cpu,
            capacity: n.capacity,
        }
    }
}

#[derive(Debug, Serialize)]
struct NodeList {
    /// The node that answered.
    this: String,
    nodes: Vec<NodeSummary>,
}

async fn list_nodes(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorize(&state, &headers) {
        return refused.into_response();
    }
    let Ok(mut nodes) = state.node.cluster.nodes().await else {
        return unavailable().into_response();
    };
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Json(NodeList {
        this: state.node.id().to_owned(),
        nodes: nodes.into_iter().map(NodeSummary::from).collect(),
    })
    .into_response()
}

#[derive(Debug, Serialize)]
struct SignalingUrls {
    urls: Vec<String>,
}

/// The public URLs of the nodes that serve, least utilised first, as this node last read
/// the registry: where a client whose node stops answering can try next (a page opened
/// at a node's own address, with no load balancer in front, knows no other).
async fn signaling_urls(State(state): State<ApiState>) -> Json<SignalingUrls> {
    let mut nodes: Vec<NodeInfo> = state
        .node
        .cluster
        .known_nodes()
        .into_iter()
        .filter(|n| n.state == roomcast_cluster::NodeState::Serving)
        .collect();
    nodes.sort_by(|a, b| a.utilisation().total_cmp(&b.utilisation()));
    Json(SignalingUrls {
        urls: nodes.into_iter().map(|n| n.public_url).collect(),
    })
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster_unavailable",
        "the cluster's store is unreachable",
    )
}

/// Drains node `id`: this one, or another through its internal URL.
async fn drain(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorize(&state, &headers) {
        return refused.into_response();
    }
    if id == state.node.id() {
        state.node.request_drain();
        let body = serde_json::json!({ "id": id, "state": "draining" });
        return (StatusCode::ACCEPTED, Json(body)).into_response();
    }
    let Ok(nodes) = state.node.cluster.nodes().await else {
        return unavailable().into_response();
    };
    let Some(target) = nodes.into_iter().find(|n| n.id == id) else {
        return ApiError::not_found(format!("no node {id}")).into_response();
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let path = format!("/api/nodes/{id}/drain");
    match peer_http::request(&target.internal_url, "POST", &path, auth, &[], &[]).await {
        Ok(reply) => (
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(header::CONTENT_TYPE, "application/json")],
            reply.body,
        )
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "node_unreachable",
            format!("node {id} did not answer: {e}"),
        )
        .into_response(),
    }
}
