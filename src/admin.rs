//! The admin HTTP API under `/api/rooms`: list and inspect rooms, mute and remove
//! participants, end rooms. Every request needs `Authorization: Bearer <admin key>`; without
//! `--admin-key` the API is disabled and answers every request with 503 `disabled`.
//!
//! The actions reuse the moderation a host has over the WebSocket (`mute_participant`,
//! `kick`, `end_room`): the same room methods, so the participants see exactly the same
//! messages. See docs/admin-api.md and docs/openapi.yaml.
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use roomcast_protocol::{Role, RoomSettings, Track, TrackKind};
use roomcast_sfu::room::{MutedTrack, Room};
use roomcast_sfu::stats::MediaStats;
use roomcast_sfu::Sfu;
use serde::{Deserialize, Serialize};

/// The bearer key that opens the admin API. Its `Debug` does not show it.
#[derive(Clone)]
pub struct AdminKey(Arc<[u8]>);

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKey(..)")
    }
}

/// Keys shorter than this are accepted, with a warning.
const SHORT_KEY: usize = 16;

impl AdminKey {
    pub fn new(key: &str) -> AdminKey {
        if key.len() < SHORT_KEY {
            tracing::warn!(
                "the admin key is shorter than {SHORT_KEY} characters; use a long random one (e.g. `openssl rand -hex 32`)"
            );
        }
        AdminKey(Arc::from(key.as_bytes()))
    }

    /// Whether `given` is the key, in time that depends only on the length of `given`:
    /// every byte of `given` is compared (against the key, repeated), whatever matches.
    pub fn matches(&self, given: &[u8]) -> bool {
        let key = &self.0;
        if key.is_empty() {
            return false;
        }
        let mut diff = (key.len() ^ given.len()) as u64;
        for (i, b) in given.iter().enumerate() {
            diff |= u64::from(key[i % key.len()] ^ b);
        }
        std::hint::black_box(diff) == 0
    }
}

/// An error as the admin API answers it: `{"error":{"code":...,"message":...}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn disabled() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "disabled",
            "the admin API is disabled: start the server with --admin-key (or ROOMCAST_ADMIN_KEY)",
        )
    }

    fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn no_room(room: &str) -> ApiError {
        ApiError::not_found(format!("no room {room}"))
    }

    fn no_participant(room: &str, id: &str) -> ApiError {
        ApiError::not_found(format!("no participant {id} in room {room}"))
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"roomcast-admin\""),
            );
        }
        response
    }
}

#[derive(Clone)]
struct AdminState {
    sfu: Arc<Sfu>,
    key: Option<AdminKey>,
}

/// Proof that the request carried the admin key; extracted first by every handler, so a
/// disabled API or a missing key answers before anything else is looked at.
struct Authorized;

impl FromRequestParts<AdminState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Authorized, ApiError> {
        let Some(key) = &state.key else {
            return Err(ApiError::disabled());
        };
        check_bearer(&parts.headers, key).map(|()| Authorized)
    }
}

/// Whether `headers` carry `Authorization: Bearer <key>`; the refusal says what is wrong.
pub fn check_bearer(headers: &HeaderMap, key: &AdminKey) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing admin key: send `Authorization: Bearer <key>`",
        ));
    };
    let value = value.as_bytes();
    let token = match value.split_first_chunk::<7>() {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
        _ => {
            return Err(ApiError::unauthorized(
                "the Authorization header must be `Bearer <key>`",
            ))
        }
    };
    if key.matches(token) {
        Ok(())
    } else {
        tracing::warn!("admin API request with a wrong key");
        Err(ApiError::unauthorized("wrong admin key"))
    }
}

/// The admin routes (`/api/rooms...`), ready to merge into the server's router.
pub fn routes<S>(sfu: Arc<Sfu>, key: Option<AdminKey>) -> Router<S> {
    Router::new()
        .route("/api/rooms", get(list_rooms).fallback(method_not_allowed))
        .route(
            "/api/rooms/{room}",
            get(show_room).delete(end_room).fallback(method_not_allowed),
        )
        .route(
            "/api/rooms/{room}/participants/{id}",
            delete(kick).fallback(method_not_allowed),
        )
        .route(
            "/api/rooms/{room}/participants/{id}/mute",
            post(mute).fallback(method_not_allowed),
        )
        .route("/api/rooms/", get(unknown_path).fallback(unknown_path))
        .route(
            "/api/rooms/{room}/{*rest}",
            get(unknown_path).fallback(unknown_path),
        )
        .with_state(AdminState { sfu, key })
}

async fn method_not_allowed(_: Authorized) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed here; see docs/admin-api.md",
    )
}

async fn unknown_path(_: Authorized) -> ApiError {
    ApiError::not_found("no such admin API path; see docs/admin-api.md")
}

fn path<T>(extracted: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    extracted
        .map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
}

fn find_room(sfu: &Sfu, name: &str) -> Result<Arc<Room>, ApiError> {
    sfu.room(name)
        .filter(|r| !r.is_ended() && !r.is_closed())
        .ok_or_else(|| ApiError::no_room(name))
}

/// One room in `GET /api/rooms`.
#[derive(Debug, Serialize)]
pub struct RoomSummary {
    pub name: String,
    pub participants: usize,
    pub audience: usize,
    pub tracks: usize,
    pub locked: bool,
    pub webinar: bool,
}

#[derive(Debug, Serialize)]
pub struct RoomList {
    pub rooms: Vec<RoomSummary>,
}

async fn list_rooms(_: Authorized, State(state): State<AdminState>) -> Json<RoomList> {
    let mut rooms: Vec<RoomSummary> = state
        .sfu
        .rooms()
        .iter()
        .filter(|r| !r.is_ended() && !r.is_closed())
        .map(|r| {
            let participants = r.participants();
            RoomSummary {
                name: r.name.clone(),
                participants: participants.len(),
                audience: participants.iter().filter(|p| p.role.is_audience()).count(),
                tracks: participants.iter().map(|p| p.tracks.len()).sum(),
                locked: r.is_locked(),
                webinar: r.settings().webinar,
            }
        })
        .collect();
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    Json(RoomList { rooms })
}

/// A published track with its counters.
#[derive(Debug, Serialize)]
pub struct TrackDetail {
    #[serde(flatten)]
    pub track: Track,
    /// Counters of this track (absent if it ended while the answer was being made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaStats>,
}

#[derive(Debug, Serialize)]
pub struct ParticipantDetail {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub tracks: Vec<TrackDetail>,
    /// What this participant receives (absent if it left while the answer was being made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<SubscriberDetail>,
}

/// A participant as a subscriber: what the server estimates it can take and what it sends.
#[derive(Debug, Serialize)]
pub struct SubscriberDetail {
    /// The bandwidth estimate, from the subscriber's feedback; `null` before any arrived.
    pub estimate_bps: Option<u64>,
    /// What the subscriber's feedback says it received lately; `null` before any arrived.
    pub acked_bps: Option<u64>,
    /// What the server sent it over the last second (media, retransmissions, probes).
    pub sent_bps: u64,
    pub tracks: Vec<ReceivedTrack>,
}

/// One track a subscriber receives. Layers are numbered from 0, the lowest (`q`); a track
/// without simulcast has only layer 0. `null` means none.
#[derive(Debug, Serialize)]
pub struct ReceivedTrack {
    pub track_id: String,
    pub publisher_id: String,
    pub kind: TrackKind,
    /// The most the subscriber asked for (`set_quality`).
    pub requested: Option<u8>,
    /// The most its bandwidth allows.
    pub allowed: Option<u8>,
    /// The layer being forwarded now.
    pub current: Option<u8>,
    /// Asked for but stopped for lack of bandwidth (`track_paused`).
    pub paused: bool,
}

/// Window of [`SubscriberDetail::sent_bps`].
const SENT_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

fn subscriber_detail(room: &Room, id: &str) -> Option<SubscriberDetail> {
    let egress = room.egress_of(id)?;
    let estimate = egress.bandwidth.estimate();
    let tracks = room
        .tracks_for(id)
        .iter()
        .filter_map(|track| {
            let state = track.down_track_on(&egress)?.layer_state();
            Some(ReceivedTrack {
                track_id: track.info.id.clone(),
                publisher_id: track.publisher_id.clone(),
                kind: track.info.kind,
                requested: state.requested,
                allowed: state.allowed,
                current: state.current,
                paused: track.info.kind == TrackKind::Video
                    && state.requested.is_some()
                    && state.allowed.is_none(),
            })
        })
        .collect();
    Some(SubscriberDetail {
        estimate_bps: estimate.as_ref().map(|e| e.bps),
        acked_bps: estimate.as_ref().map(|e| e.acked_bps),
        sent_bps: egress
            .bandwidth
            .history
            .sent_bps(std::time::Instant::now(), SENT_WINDOW),
        tracks,
    })
}

/// `GET /api/rooms/{room}`.
#[derive(Debug, Serialize)]
pub struct RoomDetail {
    pub name: String,
    pub settings: RoomSettings,
    pub locked: bool,
    pub participant_count: usize,
    pub audience_count: usize,
    pub track_count: usize,
    /// Participant ids of the current speakers, loudest first.
    pub active_speakers: Vec<String>,
    pub participants: Vec<ParticipantDetail>,
    /// The room's totals (tracks that ended included), as in `GET /api/stats`.
    pub media: MediaStats,
}

async fn show_room(
    _: Authorized,
    State(state): State<AdminState>,
    room: Result<Path<String>, PathRejection>,
) -> Result<Json<RoomDetail>, ApiError> {
    let name = path(room)?;
    let room = find_room(&state.sfu, &name)?;
    let participants: Vec<ParticipantDetail> = room
        .participants()
        .into_iter()
        .map(|p| {
            let counters: HashMap<String, MediaStats> = room
                .tracks_of(&p.id)
                .unwrap_or_default()
                .iter()
                .map(|t| (t.info.id.clone(), t.counters.snapshot()))
                .collect();
            ParticipantDetail {
                subscriber: subscriber_detail(&room, &p.id),
                tracks: p
                    .tracks
                    .into_iter()
                    .map(|t| TrackDetail {
                        media: counters.get(&t.id).copied(),
                        track: t,
                    })
                    .collect(),
                id: p.id,
                name: p.name,
                role: p.role,
            }
        })
        .collect();
    Ok(Json(RoomDetail {
        name: room.name.clone(),
        settings: room.settings(),
        locked: room.is_locked(),
        participant_count: participants.len(),
        audience_count: participants.iter().filter(|p| p.role.is_audience()).count(),
        track_count: participants.iter().map(|p| p.tracks.len()).sum(),
        active_speakers: room.active_speakers(),
        participants,
        media: room.media_stats(),
    }))
}

/// The body of `POST .../mute` (optional: no body mutes audio and video).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteRequest {
    /// Only tracks of this kind; absent: every track.
    #[serde(default)]
    kind: Option<TrackKind>,
    /// `false` unmutes.
    #[serde(default = "yes")]
    muted: bool,
}

fn yes() -> bool {
    true
}

impl Default for MuteRequest {
    fn default() -> Self {
        MuteRequest {
            kind: None,
            muted: true,
        }
    }
}

/// A mute body: a JSON object only (serde would take `[]` for a struct too).
fn parse_mute(body: &[u8]) -> Result<MuteRequest, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    if !value.is_object() {
        return Err(serde::de::Error::custom("not an object"));
    }
    serde_json::from_value(value)
}

/// The answer to `POST .../mute`.
#[derive(Debug, Serialize)]
pub struct MuteResult {
    pub participant_id: String,
    pub muted: bool,
    pub tracks: Vec<MutedTrack>,
}

async fn mute(
    _: Authorized,
    State(state): State<AdminState>,
    ids: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> Result<Json<MuteResult>, ApiError> {
    let (name, id) = path(ids)?;
    let request: MuteRequest = if body.iter().all(u8::is_ascii_whitespace) {
        MuteRequest::default()
    } else {
        parse_mute(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be a JSON object {{\"kind\":\"audio\"|\"video\",\"muted\":true|false}} (both optional): {e}"
            ))
        })?
    };
    let room = find_room(&state.sfu, &name)?;
    tracing::info!(room = %name, participant = %id, kind = ?request.kind, muted = request.muted, "admin mute");
    // As a host's `mute_participant`: the readers stop forwarding, everyone is told.
    let tracks = room
        .mute_participant(&id, request.kind, request.muted)
        .await
        .map_err(|_| ApiError::no_participant(&name, &id))?;
    Ok(Json(MuteResult {
        participant_id: id,
        muted: request.muted,
        tracks,
    }))
}

async fn kick(
    _: Authorized,
    State(state): State<AdminState>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (name, id) = path(ids)?;
    let room = find_room(&state.sfu, &name)?;
    match room.kick(&id) {
        Ok(()) => {
            tracing::info!(room = %name, participant = %id, "admin kick");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(_) => Err(ApiError::no_participant(&name, &id)),
    }
}

async fn end_room(
    _: Authorized,
    State(state): State<AdminState>,
    room: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let name = path(room)?;
    let room = find_room(&state.sfu, &name)?;
    // As a host's `end_room`: everyone gets `room_ended` and is closed, and the name is
    // free at once.
    if state.sfu.end_room(&room) {
        tracing::info!(room = %name, "admin end_room");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_only_exactly() {
        let key = AdminKey::new("s3cret-admin-key-0123");
        assert!(key.matches(b"s3cret-admin-key-0123"));
        for wrong in [
            &b""[..],
            b"s3cret-admin-key-012",
            b"s3cret-admin-key-01234",
            b"s3cret-admin-key-0124",
            b"S3cret-admin-key-0123",
            b"s3cret-admin-key-0123s3cret-admin-key-0123",
        ] {
            assert!(!key.matches(wrong), "{wrong:?}");
        }
        assert!(!format!("{key:?}").contains("s3cret"));
    }
}
