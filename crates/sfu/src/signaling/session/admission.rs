//! Who may join, in one place, in the order the checks run: the rate of joins from the
//! client's address, the room and display names, the join token. The room's own rules (the
//! server's room cap, full, locked, ended, webinar roles) follow in [`crate::Sfu::join`] and
//! [`crate::room::RoomState::join`], under their locks. A refused join leaves no trace.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use roomcast_protocol::{ErrorCode, Role, RoomSettings, ServerMessage};

use crate::room::JoinRefused;
use crate::sfu::SfuConfig;

/// A limit on joins that depends on where they come from (the HTTP layer's per-IP rate).
pub trait JoinGate: Send + Sync {
    /// `Err(why)` refuses the join with `rate_limited`; `why` is told to the client.
    fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), String>;
}

/// What the transport knows about the client.
#[derive(Clone, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub join_gate: Option<Arc<dyn JoinGate>>,
    pub mode: Mode,
    /// Another node's cascade relay (the HTTP layer believes it only from a registered
    /// node): a hidden member (see [`crate::room::Joining::hidden`]).
    pub hidden: bool,
}

/// How the client takes part, by what its transport can do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Publishes and receives, taking the server's offers (a WebSocket client).
    #[default]
    Full,
    /// Publishes and receives nothing (a WHIP encoder: it cannot take the server's offers),
    /// so the session never subscribes it to the room's tracks.
    PublishOnly,
    /// Receives the room's presenter (or `pinned`'s tracks: a participant id or name) on the
    /// receivers of its one offer, switched in place (a WHEP player).
    View { pinned: Option<String> },
}

/// A `join`'s fields.
pub struct JoinRequest {
    pub room: String,
    pub name: String,
    pub role: Option<Role>,
    pub token: Option<String>,
    pub room_settings: Option<RoomSettings>,
}

/// A join the policy allows, with what the token granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub name: String,
    pub role: Role,
    /// The role came from the client or its token; otherwise a webinar makes it audience.
    pub role_given: bool,
}

/// Why a join was refused: the `error` the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

impl From<Refusal> for ServerMessage {
    fn from(r: Refusal) -> ServerMessage {
        ServerMessage::error(r.code, r.message)
    }
}

/// Checks a join before anything is created. `unix_now` is for the token's time claims.
pub fn admit(
    config: &SfuConfig,
    client: &Client,
    request: &JoinRequest,
    now: Instant,
    unix_now: u64,
) -> Result<Admitted, Refusal> {
    if let (Some(ip), Some(gate)) = (client.ip, &client.join_gate) {
        gate.admit(ip, now)
            .map_err(|why| refuse(ErrorCode::RateLimited, why))?;
    }
    if !roomcast_protocol::is_valid_room_name(&request.room) {
        return Err(refuse(
            ErrorCode::BadRequest,
            "room must be 1-64 characters of A-Z a-z 0-9 _ - .",
        ));
    }
    if !roomcast_protocol::is_valid_display_name(&request.name) {
        return Err(refuse(
            ErrorCode::BadRequest,
            roomcast_protocol::DISPLAY_NAME_RULE,
        ));
    }
    let Some(secret) = &config.jwt_secret else {
        return Ok(Admitted {
            name: request.name.clone(),
            role: request.role.unwrap_or_default(),
            role_given: request.role.is_some(),
        });
    };
    let asked = crate::auth::TokenRequest {
        room: &request.room,
        role: request.role,
    };
    let grant = crate::auth::verify_join(
        secret,
        request.token.as_deref(),
        asked,
        config.max_token_ttl,
        unix_now,
    )
    .map_err(|e| refuse(ErrorCode::Unauthorized, e.to_string()))?;
    Ok(Admitted {
        name: grant.name,
        role: grant.role,
        role_given: true,
    })
}

/// The error a join the room (or the server's room cap) refused gets.
pub fn refusal(refused: JoinRefused, config: &SfuConfig) -> Refusal {
    let (code, message) = match refused {
        JoinRefused::Full => (ErrorCode::RoomFull, "the room is full".to_owned()),
        JoinRefused::TooManyRooms => {
            // Per join, so only at debug (an attack would fill the log); `/metrics`
            // counts every `room_full`.
            tracing::debug!(max_rooms = config.max_rooms, "join refused: too many rooms");
            (
                ErrorCode::RoomFull,
                format!(
                    "the server holds its maximum of {} rooms; join an existing room or try later",
                    config.max_rooms
                ),
            )
        }
        JoinRefused::Locked => (ErrorCode::RoomLocked, "the room is locked".to_owned()),
        JoinRefused::Ended => (ErrorCode::RoomLocked, "the room is ending".to_owned()),
    };
    refuse(code, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::MediaConfig;
    use std::net::Ipv4Addr;

    fn config(secret: Option<&str>) -> SfuConfig {
        SfuConfig {
            media: MediaConfig {
                udp_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                udp_port: 0,
                public_ips: vec![],
                include_loopback: true,
            },
            ice: Default::default(),
            max_participants_per_room: 10,
            max_rooms: 2,
            congestion_control: true,
            jwt_secret: secret.map(str::to_owned),
            max_token_ttl: crate::auth::DEFAULT_MAX_TOKEN_TTL,
        }
    }

    fn request(room: &str, name: &str) -> JoinRequest {
        JoinRequest {
            room: room.into(),
            name: name.into(),
            role: None,
            token: None,
            room_settings: None,
        }
    }

    fn code(refused: Result<Admitted, Refusal>) -> ErrorCode {
        refused.expect_err("refused").code
    }

    /// Allows `n` joins, then refuses.
    struct Allow(std::sync::atomic::AtomicUsize);

    impl JoinGate for Allow {
        fn admit(&self, _: IpAddr, _: Instant) -> Result<(), String> {
            let left = self.0.load(std::sync::atomic::Ordering::Relaxed);
            if left == 0 {
                return Err("too many joins".into());
            }
            self.0.store(left - 1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn an_open_server_takes_the_joins_role_and_name() {
        let admitted = admit(
            &config(None),
            &Client::default(),
            &JoinRequest {
                role: Some(Role::Host),
                ..request("r", "Ann")
            },
            Instant::now(),
            0,
        )
        .unwrap();
        assert_eq!(
            admitted,
            Admitted {
                name: "Ann".into(),
                role: Role::Host,
                role_given: true
            }
        );
        let admitted = admit(
            &config(None),
            &Client::default(),
            &request("r", "Bo"),
            Instant::now(),
            0,
        )
        .unwrap();
        assert!(!admitted.role_given, "a webinar may make it audience");
    }

    #[test]
    fn names_and_tokens_are_checked() {
        let now = Instant::now();
        let open = config(None);
        let client = Client::default();
        assert_eq!(
            code(admit(&open, &client, &request("a b", "x"), now, 0)),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(admit(&open, &client, &request("r", " "), now, 0)),
            ErrorCode::BadRequest
        );
        let closed = config(Some("secret"));
        assert_eq!(
            code(admit(&closed, &client, &request("r", "x"), now, 0)),
            ErrorCode::Unauthorized,
            "no token"
        );
    }

    #[test]
    fn the_gate_is_asked_first_and_only_with_an_address() {
        let now = Instant::now();
        let gated = Client {
            ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            join_gate: Some(Arc::new(Allow(1.into()))),
            mode: Mode::Full,
            hidden: false,
        };
        assert!(admit(&config(None), &gated, &request("r", "x"), now, 0).is_ok());
        assert_eq!(
            code(admit(&config(None), &gated, &request("r", "x"), now, 0)),
            ErrorCode::RateLimited
        );
        let unknown_address = Client { ip: None, ..gated };
        assert!(admit(&config(None), &unknown_address, &request("r", "x"), now, 0).is_ok());
    }

    #[test]
    fn the_room_cap_says_how_many_rooms() {
        let refused = refusal(JoinRefused::TooManyRooms, &config(None));
        assert_eq!(refused.code, ErrorCode::RoomFull);
        assert!(refused.message.contains("2 rooms"), "{refused:?}");
    }
}
