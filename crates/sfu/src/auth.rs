//! Join tokens: HS256 JWTs whose claims say who may join which room, as what, until when.
//!
//! Claims (all required): `room` (the room the token opens), `name` (the display name the
//! participant gets, whatever the `join` says), `role` (`host`, `presenter` or `audience`: the
//! participant's role; a `join` may not ask for more) and `exp` (unix seconds). `nbf`, when
//! present, is honoured too. Only HS256 is accepted: `alg: none` and every other algorithm
//! are refused before the signature is looked at. A token may not live longer than the
//! server's `--max-token-ttl` (an `exp` further away is refused), and the secret must be at
//! least [`MIN_SECRET_BYTES`] long: anyone holding one token can try secrets offline.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use roomcast_protocol::Role;
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// The longest a token may live by default: its `exp` at most this far from now.
pub const DEFAULT_MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The shortest secret accepted: HS256's key should be at least as long as its hash (RFC
/// 7518 §3.2), or a secret can be guessed offline from any token.
pub const MIN_SECRET_BYTES: usize = 32;

/// Refuses a secret shorter than [`MIN_SECRET_BYTES`], saying how to make a good one.
pub fn check_secret(secret: &str) -> Result<(), String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the JWT secret has {} bytes; it needs at least {MIN_SECRET_BYTES} (a shorter one \
             can be guessed offline from any token): generate one with `openssl rand -hex 32`",
            secret.len()
        ));
    }
    Ok(())
}

/// What a valid token grants the participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub role: Role,
    /// When the token expires (unix seconds).
    pub exp: u64,
}

/// Why a join was refused; `Display` is the message sent to the client with `unauthorized`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing token: this server requires a signed token in join")]
    MissingToken,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token algorithm {0} is not accepted: only HS256 tokens are")]
    WrongAlgorithm(String),
    #[error("bad signature: the token was not signed with this server's secret")]
    BadSignature,
    #[error("token is missing the `{0}` claim")]
    MissingClaim(&'static str),
    #[error("token claim `{claim}` is invalid: {reason}")]
    InvalidClaim { claim: &'static str, reason: String },
    #[error("token expired at {exp} (now {now}, unix seconds)")]
    Expired { exp: u64, now: u64 },
    #[error("token is not valid before {nbf} (now {now}, unix seconds)")]
    NotYetValid { nbf: u64, now: u64 },
    #[error("token lives too long: it expires at {exp} (now {now}, unix seconds); this server accepts tokens that expire within {max_secs} s")]
    TooLong { exp: u64, now: u64, max_secs: u64 },
    #[error("wrong room: the token is for room {token_room:?}, not {room:?}")]
    WrongRoom { token_room: String, room: String },
    #[error("role not granted: the token grants {granted}, the join asked for {asked}")]
    RoleNotGranted {
        granted: &'static str,
        asked: &'static str,
    },
}

/// The claims as minted by [`mint`] (and by `roomcast bots --jwt-secret`).
#[derive(Debug, Serialize)]
struct MintClaims<'a> {
    room: &'a str,
    name: &'a str,
    role: Role,
    exp: u64,
}

/// The claims as read: everything optional, so a missing one gets its own message.
#[derive(Debug, Deserialize)]
struct ReadClaims {
    room: Option<serde_json::Value>,
    name: Option<serde_json::Value>,
    role: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
}

/// Unix seconds now (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs an HS256 token for `room`, `name` and `role`, expiring at `exp` (unix seconds).
pub fn mint(secret: &str, room: &str, name: &str, role: Role, exp: u64) -> Result<String, String> {
    let claims = MintClaims {
        room,
        name,
        role,
        exp,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("cannot sign the token: {e}"))
}

/// `host` > `presenter` > `audience`.
fn rank(role: Role) -> u8 {
    match role {
        Role::Host => 2,
        Role::Presenter => 1,
        Role::Audience => 0,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Host => "host",
        Role::Presenter => "presenter",
        Role::Audience => "audience",
    }
}

fn string_claim(
    value: Option<serde_json::Value>,
    claim: &'static str,
) -> Result<String, AuthError> {
    match value {
        None | Some(serde_json::Value::Null) => Err(AuthError::MissingClaim(claim)),
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(_) => Err(AuthError::InvalidClaim {
            claim,
            reason: "not a string".into(),
        }),
    }
}

/// A NumericDate: a non-negative number of seconds (fractions allowed, rounded down).
fn time_claim(value: serde_json::Value, claim: &'static str) -> Result<u64, AuthError> {
    let invalid = || AuthError::InvalidClaim {
        claim,
        reason: "not a number of unix seconds".into(),
    };
    if let Some(secs) = value.as_u64() {
        return Ok(secs);
    }
    match value.as_f64() {
        Some(secs) if secs.is_finite() && secs >= 0.0 => Ok(secs.min(u64::MAX as f64) as u64),
        _ => Err(invalid()),
    }
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::WrongAlgorithm("(unrecognised)".into())
        }
        ErrorKind::Base64(_) => AuthError::Malformed("not base64url".into()),
        ErrorKind::Utf8(_) => AuthError::Malformed("not UTF-8".into()),
        ErrorKind::Json(_) => AuthError::Malformed("header or claims are not valid JSON".into()),
        ErrorKind::InvalidToken => {
            AuthError::Malformed("a JWT is three base64url parts separated by dots".into())
        }
        other => AuthError::Malformed(format!("{other:?}")),
    }
}

/// The `alg` a token's header names, read without trusting anything else in it.
fn header_alg(token: &str) -> Result<String, AuthError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(AuthError::Malformed(
            "a JWT is three base64url parts separated by dots".into(),
        ));
    }
    // jsonwebtoken refuses unknown algorithms (such as `none`) without saying which one;
    // read `alg` here so the client is told.
    let Some(json) = base64url_decode(parts[0]) else {
        return Err(AuthError::Malformed("the header is not base64url".into()));
    };
    let header: serde_json::Value = serde_json::from_slice(&json)
        .map_err(|_| AuthError::Malformed("the header is not valid JSON".into()))?;
    match header.get("alg").and_then(|a| a.as_str()) {
        Some(alg) => Ok(alg.to_owned()),
        None => Err(AuthError::Malformed("the header has no `alg`".into())),
    }
}

/// Unpadded (or padded) base64url; `None` on anything else.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Checks the token of a `join` for `room` (asking for `name` and, optionally, `role`) at
/// `now` (unix seconds); it must expire within `max_ttl`. On success the participant gets
/// the token's name and role.
pub fn verify_join(
    secret: &str,
    token: Option<&str>,
    join: TokenRequest<'_>,
    max_ttl: Duration,
    now: u64,
) -> Result<Grant, AuthError> {
    let TokenRequest { room, role } = join;
    let token = match token.map(str::trim) {
        None | Some("") => return Err(AuthError::MissingToken),
        Some(t) => t,
    };
    let alg = header_alg(token)?;
    if alg != "HS256" {
        return Err(AuthError::WrongAlgorithm(alg));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    // Time claims are checked below against `now`; no audience is used.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<ReadClaims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(map_jwt_error)?;
    let claims = data.claims;

    let exp = match claims.exp {
        None | Some(serde_json::Value::Null) => return Err(AuthError::MissingClaim("exp")),
        Some(v) => time_claim(v, "exp")?,
    };
    if exp.saturating_add(LEEWAY_SECS) <= now {
        return Err(AuthError::Expired { exp, now });
    }
    let max_secs = max_ttl.as_secs();
    if exp > now.saturating_add(max_secs).saturating_add(LEEWAY_SECS) {
        return Err(AuthError::TooLong { exp, now, max_secs });
    }
    if let Some(v) = claims.nbf.filter(|v| !v.is_null()) {
        let nbf = time_claim(v, "nbf")?;
        if nbf > now.saturating_add(LEEWAY_SECS) {
            return Err(AuthError::NotYetValid { nbf, now });
        }
    }

    let token_room = string_claim(claims.room, "room")?;
    if token_room != room {
        return Err(AuthError::WrongRoom {
            token_room,
            room: room.to_owned(),
        });
    }

    let granted = match string_claim(claims.role, "role")?.as_str() {
        "host" => Role::Host,
        "presenter" => Role::Presenter,
        "audience" => Role::Audience,
        other => {
            return Err(AuthError::InvalidClaim {
                claim: "role",
                reason: format!("{other:?} is not host, presenter or audience"),
            })
        }
    };
    if let Some(asked) = role {
        if rank(asked) > rank(granted) {
            return Err(AuthError::RoleNotGranted {
                granted: role_name(granted),
                asked: role_name(asked),
            });
        }
    }

    let token_name = string_claim(claims.name, "name")?;
    if !roomcast_protocol::is_valid_display_name(&token_name) {
        return Err(AuthError::InvalidClaim {
            claim: "name",
            reason: roomcast_protocol::DISPLAY_NAME_RULE.into(),
        });
    }
    Ok(Grant {
        name: token_name,
        role: granted,
        exp,
    })
}

/// What the `join` that carries a token asks for (its `name` is not needed: the token's
/// wins).
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    pub room: &'a str,
    pub role: Option<Role>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-secret";
    const NOW: u64 = 1_700_000_000;

    fn b64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        let mut acc: u32 = 0;
        let mut bits = 0;
        for &b in bytes {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 6 {
                bits -= 6;
                out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
        }
        out
    }

    fn signed(alg: Algorithm, secret: &str, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims(role: &str, exp: u64) -> serde_json::Value {
        serde_json::json!({ "room": "demo", "name": "Ann", "role": role, "exp": exp })
    }

    fn check(token: &str, role: Option<Role>) -> Result<Grant, AuthError> {
        let join = TokenRequest { room: "demo", role };
        verify_join(SECRET, Some(token), join, DEFAULT_MAX_TOKEN_TTL, NOW)
    }

    #[test]
    fn valid_token_grants_its_name_and_role() {
        let token = mint(SECRET, "demo", "Ann", Role::Host, NOW + 3600).unwrap();
        let grant = check(&token, None).unwrap();
        assert_eq!(
            grant,
            Grant {
                name: "Ann".into(),
                role: Role::Host,
                exp: NOW + 3600,
            }
        );
        // Asking for the granted role, or less, is fine; the token's role is what one gets.
        assert_eq!(check(&token, Some(Role::Host)).unwrap().role, Role::Host);
        assert_eq!(
            check(&token, Some(Role::Audience)).unwrap().role,
            Role::Host
        );
        // Fractional NumericDate and unknown extra claims are accepted.
        let mut c = claims("audience", 0);
        c["exp"] = serde_json::json!((NOW + 60) as f64 + 0.5);
        c["iat"] = serde_json::json!(NOW);
        c["aud"] = serde_json::json!("someone");
        let grant = check(&signed(Algorithm::HS256, SECRET, &c), None).unwrap();
        assert_eq!(grant.role, Role::Audience);
    }

    #[test]
    fn expired_tokens_are_refused_beyond_the_leeway() {
        let token = mint(SECRET, "demo", "Ann", Role::Presenter, NOW - 60).unwrap();
        assert_eq!(
            check(&token, None),
            Err(AuthError::Expired {
                exp: NOW - 60,
                now: NOW
            })
        );
        let just = mint(SECRET, "demo", "Ann", Role::Presenter, NOW - LEEWAY_SECS).unwrap();
        assert!(matches!(check(&just, None), Err(AuthError::Expired { .. })));
        let within = mint(SECRET, "demo", "Ann", Role::Presenter, NOW - 1).unwrap();
        assert!(check(&within, None).is_ok());
        let mut c = claims("presenter", NOW + 60);
        c["nbf"] = serde_json::json!(NOW + 600);
        let early = signed(Algorithm::HS256, SECRET, &c);
        assert!(matches!(
            check(&early, None),
            Err(AuthError::NotYetValid { .. })
        ));
        let msg = check(&token, None).unwrap_err().to_string();
        assert!(msg.contains("expired"), "{msg}");
    }

    #[test]
    fn tokens_that_live_longer_than_the_ceiling_are_refused() {
        let day = DEFAULT_MAX_TOKEN_TTL.as_secs();
        let ok = mint(SECRET, "demo", "Ann", Role::Host, NOW + day).unwrap();
        assert!(check(&ok, None).is_ok());
        let long = mint(SECRET, "demo", "Ann", Role::Host, NOW + day + 60).unwrap();
        let err = check(&long, None).unwrap_err();
        assert_eq!(
            err,
            AuthError::TooLong {
                exp: NOW + day + 60,
                now: NOW,
                max_secs: day
            }
        );
        assert!(err.to_string().contains("too long"), "{err}");
        // `exp: 1e300` was accepted once.
        let mut c = claims("host", 0);
        c["exp"] = serde_json::json!(1e300);
        let forever = signed(Algorithm::HS256, SECRET, &c);
        assert!(matches!(
            check(&forever, None),
            Err(AuthError::TooLong { .. })
        ));
        // A shorter ceiling.
        let join = TokenRequest {
            room: "demo",
            role: None,
        };
        let hour = mint(SECRET, "demo", "Ann", Role::Host, NOW + 3600).unwrap();
        let short = Duration::from_secs(600);
        assert!(matches!(
            verify_join(SECRET, Some(&hour), join, short, NOW),
            Err(AuthError::TooLong { .. })
        ));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(check_secret(&"k".repeat(MIN_SECRET_BYTES)).is_ok());
        let err = check_secret("correct horse battery").unwrap_err();
        assert!(err.contains("at least 32"), "{err}");
        assert!(check_secret("").is_err());
    }

    #[test]
    fn a_token_for_another_room_is_refused() {
        let token = mint(SECRET, "other", "Ann", Role::Host, NOW + 60).unwrap();
        let err = check(&token, None).unwrap_err();
        assert_eq!(
            err,
            AuthError::WrongRoom {
                token_room: "other".into(),
                room: "demo".into()
            }
        );
        assert!(err.to_string().contains("wrong room"));
    }

    #[test]
    fn bad_signatures_are_refused() {
        let token = mint("another-secret", "demo", "Ann", Role::Host, NOW + 60).unwrap();
        assert_eq!(check(&token, None), Err(AuthError::BadSignature));
        // A valid token whose claims were swapped for others keeps a signature that no
        // longer matches.
        let good = mint(SECRET, "demo", "Ann", Role::Audience, NOW + 60).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let forged_claims = b64(claims("host", NOW + 60).to_string().as_bytes());
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(check(&forged, None), Err(AuthError::BadSignature));
        let unsigned = format!("{}.{}.", parts[0], parts[1]);
        assert!(check(&unsigned, None).is_err());
        assert!(check(&good, None).is_ok());
    }

    #[test]
    fn only_hs256_is_accepted() {
        let body = b64(claims("host", NOW + 60).to_string().as_bytes());
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None"}"#,
            r#"{"alg":"NONE"}"#,
        ] {
            let none = format!("{}.{}.", b64(header.as_bytes()), body);
            let err = check(&none, None).unwrap_err();
            assert!(
                matches!(err, AuthError::WrongAlgorithm(_)),
                "{header}: {err:?}"
            );
        }
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = signed(alg, SECRET, &claims("host", NOW + 60));
            assert!(matches!(
                check(&token, None),
                Err(AuthError::WrongAlgorithm(_))
            ));
        }
        let no_alg = format!("{}.{}.sig", b64(br#"{"typ":"JWT"}"#), body);
        assert!(matches!(check(&no_alg, None), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn asking_for_more_than_the_token_grants_is_refused() {
        let audience = mint(SECRET, "demo", "Ann", Role::Audience, NOW + 60).unwrap();
        let presenter = mint(SECRET, "demo", "Ann", Role::Presenter, NOW + 60).unwrap();
        for (token, asked) in [
            (&audience, Role::Presenter),
            (&audience, Role::Host),
            (&presenter, Role::Host),
        ] {
            let err = check(token, Some(asked)).unwrap_err();
            assert!(matches!(err, AuthError::RoleNotGranted { .. }), "{err:?}");
            assert!(err.to_string().contains("role not granted"));
        }
        // No role asked: the token's role, even when it is less than the default presenter.
        assert_eq!(check(&audience, None).unwrap().role, Role::Audience);
        assert_eq!(
            check(&presenter, Some(Role::Audience)).unwrap().role,
            Role::Presenter
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let join = TokenRequest {
            room: "demo",
            role: None,
        };
        let ttl = DEFAULT_MAX_TOKEN_TTL;
        assert_eq!(
            verify_join(SECRET, None, join, ttl, NOW),
            Err(AuthError::MissingToken)
        );
        assert_eq!(
            verify_join(SECRET, Some(" "), join, ttl, NOW),
            Err(AuthError::MissingToken)
        );
        let good = mint(SECRET, "demo", "Ann", Role::Host, NOW + 60).unwrap();
        let long = "a".repeat(10_000);
        let cases = [
            "x",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "...",
            "é.é.é",
            "eyJhbGciOiJIUzI1NiJ9.!!!.abc",
            "eyJhbGciOiJIUzI1NiJ9..",
            "e30.e30.e30",
            long.as_str(),
            &good[..good.len() / 2],
        ];
        for garbage in cases {
            assert!(check(garbage, None).is_err(), "{garbage}");
        }
        // Claims that are not a JSON object.
        for body in ["[]", "42", "\"room\"", "not json"] {
            let token = format!(
                "{}.{}.x",
                b64(br#"{"alg":"HS256","typ":"JWT"}"#),
                b64(body.as_bytes())
            );
            assert!(check(&token, None).is_err(), "{body}");
        }
    }

    #[test]
    fn missing_or_mistyped_claims_are_refused() {
        for claim in ["room", "name", "role", "exp"] {
            let mut c = claims("host", NOW + 60);
            c.as_object_mut().unwrap().remove(claim);
            let err = check(&signed(Algorithm::HS256, SECRET, &c), None).unwrap_err();
            assert_eq!(err, AuthError::MissingClaim(claim), "{claim}");
        }
        let cases = [
            ("exp", serde_json::json!("tomorrow")),
            ("exp", serde_json::json!(-5)),
            ("room", serde_json::json!(5)),
            ("role", serde_json::json!("admin")),
            ("role", serde_json::json!(["host"])),
            ("name", serde_json::json!("")),
            ("name", serde_json::json!("x".repeat(65))),
        ];
        for (claim, value) in cases {
            let mut c = claims("host", NOW + 60);
            c[claim] = value.clone();
            let err = check(&signed(Algorithm::HS256, SECRET, &c), None).unwrap_err();
            assert!(
                matches!(err, AuthError::InvalidClaim { .. }),
                "{claim}={value}: {err:?}"
            );
        }
    }
}
