//! WHIP ingest (RFC 9725): an encoder (OBS, GStreamer, a hardware box) publishes into a room
//! with one HTTP POST of its SDP offer, and the answer comes back in the response. WHEP
//! egress is the same exchange the other way: a player POSTs a receive-only offer to
//! `/whep/{room}` (the room's presenter, followed as it changes without renegotiation) or
//! `/whep/{room}/{participant}` (that participant, by id or name), and watches; the
//! resource (PATCH, DELETE, OPTIONS) and the status codes are the same.
//!
//! - `POST /whip/{room}` (`application/sdp`, `Authorization: Bearer <join token>`) → 201
//!   with the answer (the server's candidates in it), `Location: /whip/{room}/{id}`, an
//!   `ETag` and a `Link` per ICE server.
//! - `PATCH /whip/{room}/{id}` (`application/trickle-ice-sdpfrag`) → 204: the client's
//!   candidates. With new `ice-ufrag`/`ice-pwd` it is an ICE restart (`If-Match` required:
//!   428 without, 412 when it names another ICE session) → 200 with the server's new
//!   credentials and candidates as a fragment, and a new `ETag`.
//! - `DELETE /whip/{room}/{id}` → 200: the participant leaves.
//! - `OPTIONS` on both, for CORS preflights and to read the ICE servers (without
//!   credentials).
//!
//! The publisher or viewer is a session like a WebSocket client's (see `session.rs`): same
//! tokens (a viewer's may be an audience token), room rules, forwarding, bandwidth
//! estimation and moderation.
pub mod sdp;
pub mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use roomcast_protocol::{ClientMessage, ErrorCode, IceServer};
use roomcast_sfu::signaling::sdp_media::media_sections;
use roomcast_sfu::{Client, JoinGate, Mode, Sessions};

use crate::admission::proxy::TrustedProxies;
use session::{PatchKind, Refused, Request, Resource, Resources};

/// Largest body a WHIP or WHEP request may have (an offer with many m-lines stays far below).
const MAX_BODY: usize = 64 * 1024;
const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
/// The name a publisher or viewer gets on an open server when the request names none.
const DEFAULT_NAME: &str = "WHIP";
const DEFAULT_VIEWER_NAME: &str = "WHEP viewer";
const ACCEPT_PATCH: header::HeaderName = header::HeaderName::from_static("accept-patch");
const ACCEPT_POST: header::HeaderName = header::HeaderName::from_static("accept-post");

/// Which of the two protocols a route serves: each has its own resources.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Whip,
    Whep,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Whip => "whip",
            Endpoint::Whep => "whep",
        }
    }

    fn no_such_session(self) -> &'static str {
        match self {
            Endpoint::Whip => "no such WHIP session",
            Endpoint::Whep => "no such WHEP session",
        }
    }
}

#[derive(Clone)]
struct WhipState {
    endpoint: Endpoint,
    sessions: Arc<Sessions>,
    resources: Arc<Resources>,
    join_gate: Option<Arc<dyn JoinGate>>,
    trusted: TrustedProxies,
}

/// The WHIP and WHEP routes; `join_gate` is the per-address join rate WebSocket joins share.
pub fn routes<S: Clone + Send + Sync + 'static>(
    sessions: Arc<Sessions>,
    join_gate: Option<Arc<dyn JoinGate>>,
    trusted: TrustedProxies,
) -> Router<S> {
    let state = |endpoint| WhipState {
        endpoint,
        sessions: Arc::clone(&sessions),
        resources: Arc::default(),
        join_gate: join_gate.clone(),
        trusted: trusted.clone(),
    };
    let resource = || {
        axum::routing::patch(patch)
            .delete(delete)
            .options(options_resource)
    };
    let whip = Router::new()
        .route("/whip/{room}", post(publish).options(options_endpoint))
        .route("/whip/{room}/{id}", resource())
        .with_state(state(Endpoint::Whip));
    let whep = Router::new()
        .route("/whep/{room}", post(view).options(options_endpoint))
        .route("/whep/{room}/{id}", resource().post(view_participant))
        .with_state(state(Endpoint::Whep));
    whip.merge(whep).layer(DefaultBodyLimit::max(MAX_BODY))
}

/// What every POST carries besides its path.
struct Post {
    query: HashMap<String, String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
}

async fn publish(
    State(state): State<WhipState>,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let post = Post {
        query,
        peer,
        headers,
        body,
    };
    start(state, room, Mode::PublishOnly, post).await
}

async fn view(
    State(state): State<WhipState>,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let post = Post {
        query,
        peer,
        headers,
        body,
    };
    start(state, room, Mode::View { pinned: None }, post).await
}

async fn view_participant(
    State(state): State<WhipState>,
    Path((room, participant)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let post = Post {
        query,
        peer,
        headers,
        body,
    };
    let mode = Mode::View {
        pinned: Some(participant),
    };
    start(state, room, mode, post).await
}

/// A POST of either endpoint: checks the offer, runs the session in `mode` and answers.
async fn start(state: WhipState, room: String, mode: Mode, post: Post) -> Response {
    let Post {
        query,
        peer,
        headers,
        body,
    } = post;
    if !content_type_is(&headers, SDP) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the offer must be sent as Content-Type: application/sdp",
        );
    }
    let offer = match std::str::from_utf8(&body) {
        Ok(text) if sdp::looks_like_sdp(text) => text.to_owned(),
        _ => return error(StatusCode::BAD_REQUEST, "the body is not an SDP offer"),
    };
    if matches!(mode, Mode::View { .. }) {
        if let Err(why) = receive_only(&offer) {
            return error(StatusCode::BAD_REQUEST, &why);
        }
    }
    if state.sessions.resume.shutdown_token().is_cancelled() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    let ip = peer.map(|Extension(ConnectInfo(addr))| state.trusted.client_ip(addr.ip(), &headers));
    let client = Client {
        ip,
        join_gate: state.join_gate.clone(),
        mode: mode.clone(),
        hidden: false,
    };
    let default_name = match mode {
        Mode::View { .. } => DEFAULT_VIEWER_NAME,
        _ => DEFAULT_NAME,
    };
    let request = Request {
        name: query
            .get("name")
            .cloned()
            .unwrap_or_else(|| default_name.to_owned()),
        token: bearer(&headers).map(str::to_owned),
        offer,
        room: room.clone(),
        mode,
    };
    match session::start(&state.sessions, &state.resources, client, request).await {
        Ok(started) => {
            let location = format!("/{}/{room}/{}", state.endpoint.path(), started.id);
            let mut response = (
                StatusCode::CREATED,
                [
                    (header::CONTENT_TYPE, SDP.to_owned()),
                    (header::LOCATION, location),
                    (header::ETAG, format!("\"{}\"", started.etag)),
                    (ACCEPT_PATCH, SDPFRAG.to_owned()),
                ],
                started.answer,
            )
                .into_response();
            add_links(response.headers_mut(), &started.ice_servers);
            cors(response.headers_mut());
            response
        }
        Err(refused) => refusal(refused),
    }
}

async fn patch(
    State(state): State<WhipState>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(resource) = state.resources.get(&id).filter(|r| r.room == room) else {
        return error(StatusCode::NOT_FOUND, state.endpoint.no_such_session());
    };
    if !content_type_is(&headers, SDPFRAG) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "PATCH takes Content-Type: application/trickle-ice-sdpfrag",
        );
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not an SDP fragment");
    };
    let fragment = match sdp::parse_fragment(text) {
        Ok(fragment) => fragment,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    let kind = resource.patch_kind(fragment.ufrag.as_deref(), fragment.pwd.as_deref());
    // RFC 9725 §4.4.1: a missing entity tag is 428, another ICE session's is 412. A trickle
    // without If-Match is still taken, as from clients written before the RFC.
    match headers.get(header::IF_MATCH) {
        None if kind == PatchKind::Restart => {
            return error(
                StatusCode::PRECONDITION_REQUIRED,
                "an ICE restart needs If-Match (\"*\" or the session's ETag)",
            );
        }
        None => {}
        Some(tag) => {
            let wanted = format!("\"{}\"", resource.etag());
            let matches = tag.to_str().is_ok_and(|tag| {
                tag.split(',')
                    .any(|t| t.trim() == "*" || t.trim() == wanted)
            });
            if !matches {
                return error(
                    StatusCode::PRECONDITION_FAILED,
                    "If-Match names another ICE session",
                );
            }
        }
    }
    if kind == PatchKind::Restart {
        return restart(&state, &resource, fragment).await;
    }
    for candidate in fragment.candidates {
        let msg = ClientMessage::Candidate {
            candidate: Some(candidate),
        };
        if !resource.tell(&msg).await {
            return error(StatusCode::NOT_FOUND, state.endpoint.no_such_session());
        }
    }
    if fragment.end {
        resource
            .tell(&ClientMessage::Candidate { candidate: None })
            .await;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    cors(response.headers_mut());
    response
}

/// An ICE restart (RFC 9725 §4.4.1.2): 200 with the server's new credentials and
/// candidates as an `application/trickle-ice-sdpfrag` and the new ICE session's `ETag`. A
/// refused restart keeps the session and its ICE session as they were.
async fn restart(state: &WhipState, resource: &Resource, fragment: sdp::Fragment) -> Response {
    let (Some(ufrag), Some(pwd)) = (fragment.ufrag, fragment.pwd) else {
        return error(
            StatusCode::BAD_REQUEST,
            "an ICE restart carries both a=ice-ufrag and a=ice-pwd",
        );
    };
    match resource
        .restart_ice(&ufrag, &pwd, fragment.candidates)
        .await
    {
        Ok(restarted) => {
            tracing::info!(room = %resource.room, participant = %resource.participant_id, endpoint = state.endpoint.path(), "ICE restarted");
            let mut response = (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, SDPFRAG.to_owned()),
                    (header::ETAG, format!("\"{}\"", restarted.etag)),
                ],
                restarted.fragment,
            )
                .into_response();
            cors(response.headers_mut());
            response
        }
        Err(refused) => {
            tracing::info!(room = %resource.room, participant = %resource.participant_id, code = refused.code.as_str(), "ICE restart refused");
            refusal(refused)
        }
    }
}

async fn delete(
    State(state): State<WhipState>,
    Path((room, id)): Path<(String, String)>,
) -> Response {
    let known = state.resources.get(&id).is_some_and(|r| r.room == room);
    let Some(resource) = known.then(|| state.resources.remove(&id)).flatten() else {
        return error(StatusCode::NOT_FOUND, state.endpoint.no_such_session());
    };
    resource.tell(&ClientMessage::Leave).await;
    tracing::info!(room = %resource.room, participant = %resource.participant_id, endpoint = state.endpoint.path(), "session deleted");
    let mut response = StatusCode::OK.into_response();
    cors(response.headers_mut());
    response
}

/// The endpoint's OPTIONS: what it accepts, and the ICE servers without credentials (the
/// request is not authenticated).
async fn options_endpoint(State(state): State<WhipState>) -> Response {
    let mut response = (
        StatusCode::NO_CONTENT,
        [(header::ALLOW, "OPTIONS, POST"), (ACCEPT_POST, SDP)],
    )
        .into_response();
    let servers: Vec<IceServer> = state
        .sessions
        .sfu
        .config
        .ice
        .for_participant("", roomcast_sfu::auth::unix_now())
        .into_iter()
        .map(|s| IceServer {
            urls: s.urls,
            username: None,
            credential: None,
        })
        .collect();
    add_links(response.headers_mut(), &servers);
    cors(response.headers_mut());
    response
}

/// A resource's OPTIONS. On WHEP, `/whep/{room}/{x}` is also the endpoint that watches
/// participant `x`, so POST is allowed there too.
async fn options_resource(State(state): State<WhipState>) -> Response {
    let allow = match state.endpoint {
        Endpoint::Whip => "OPTIONS, PATCH, DELETE",
        Endpoint::Whep => "OPTIONS, POST, PATCH, DELETE",
    };
    let mut response = (
        StatusCode::NO_CONTENT,
        [(header::ALLOW, allow), (ACCEPT_PATCH, SDPFRAG)],
    )
        .into_response();
    cors(response.headers_mut());
    response
}

/// The HTTP answer to a refused POST: the session's error code as a status, its message as
/// the body.
fn refusal(refused: Refused) -> Response {
    let status = match refused.code {
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::RoomLocked => StatusCode::FORBIDDEN,
        ErrorCode::RoomFull => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::ServerShutdown => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::BadRequest | ErrorCode::BadSdp | ErrorCode::LimitExceeded => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = error(status, &refused.message);
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response();
    cors(response.headers_mut());
    response
}

/// A WHEP offer receives and sends nothing: at least one audio or video m-line, none sending.
fn receive_only(offer: &str) -> Result<(), String> {
    let sections = media_sections(offer)?;
    if sections.iter().any(|s| s.sends) {
        return Err("a WHEP offer only receives: its m-lines must be recvonly".into());
    }
    if !sections.iter().any(|s| s.receives && s.kind.is_some()) {
        return Err("a WHEP offer needs a recvonly audio or video m-line".into());
    }
    Ok(())
}

/// Whether the request's `Content-Type` is `mime` (parameters ignored).
fn content_type_is(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
}

/// The bearer token of `Authorization`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn add_links(headers: &mut HeaderMap, servers: &[IceServer]) {
    for link in sdp::link_headers(servers) {
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.append(header::LINK, value);
        }
    }
}

/// Browsers on other origins may use WHIP: the bearer token is a header, never a cookie,
/// so any origin may send it.
fn cors(headers: &mut HeaderMap) {
    for (name, value) in [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "OPTIONS, POST, PATCH, DELETE",
        ),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, If-Match",
        ),
        (
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "Location, ETag, Link, Accept-Patch",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}
