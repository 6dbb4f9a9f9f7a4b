//! The ICE servers handed to each participant in `joined` and `resumed`, with TURN
//! credentials that expire.
//!
//! With a shared TURN secret, every participant gets its own credential in the "TURN REST
//! API" scheme (draft-uberti-behave-turn-rest) that coturn (`use-auth-secret`,
//! `static-auth-secret`), LiveKit and Jitsi use: the username is `expiry:participant_id`
//! (expiry in unix seconds) and the credential is base64(HMAC-SHA1(secret, username)). The
//! TURN server recomputes the HMAC from its copy of the secret and refuses the username once
//! its expiry has passed, so a credential handed to someone who joined once stops working on
//! its own; nothing has to be stored or revoked.
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use roomcast_protocol::IceServer;
use sha1::Sha1;

/// How TURN URLs are authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TurnAuth {
    /// No credentials (STUN only, or a TURN server that needs none).
    #[default]
    None,
    /// One username and credential for everyone (`--ice-username`, `--ice-credential`):
    /// whoever joins once keeps a relay account for good. Prefer [`TurnAuth::Secret`].
    Static {
        username: String,
        credential: String,
    },
    /// A credential per participant, minted from the secret the TURN server shares
    /// (`--turn-secret`), valid for `ttl`.
    Secret { secret: String, ttl: Duration },
}

/// The STUN/TURN URLs clients are told about, and how their TURN URLs authenticate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceServers {
    pub urls: Vec<String>,
    pub auth: TurnAuth,
}

impl IceServers {
    /// The `ice_servers` for `participant_id` at `now` (unix seconds). With a secret, the
    /// STUN URLs go in one entry without credentials and the TURN ones (`turn:`, `turns:`) in
    /// another with a credential minted now.
    pub fn for_participant(&self, participant_id: &str, now: u64) -> Vec<IceServer> {
        if self.urls.is_empty() {
            return Vec::new();
        }
        match &self.auth {
            TurnAuth::None => vec![entry(self.urls.clone(), None)],
            TurnAuth::Static {
                username,
                credential,
            } => vec![entry(
                self.urls.clone(),
                Some((username.clone(), credential.clone())),
            )],
            TurnAuth::Secret { secret, ttl } => {
                let (turn, stun): (Vec<String>, Vec<String>) =
                    self.urls.iter().cloned().partition(|u| is_turn_url(u));
                let mut servers = Vec::new();
                if !stun.is_empty() {
                    servers.push(entry(stun, None));
                }
                if !turn.is_empty() {
                    let expiry = now.saturating_add(ttl.as_secs());
                    servers.push(entry(
                        turn,
                        Some(credential(secret, participant_id, expiry)),
                    ));
                }
                servers
            }
        }
    }
}

fn entry(urls: Vec<String>, auth: Option<(String, String)>) -> IceServer {
    let (username, credential) = auth.unzip();
    IceServer {
        urls,
        username,
        credential,
    }
}

/// `turn:` and `turns:` URLs (RFC 7065) need credentials; `stun:`/`stuns:` do not.
pub fn is_turn_url(url: &str) -> bool {
    let scheme = url.split(':').next().unwrap_or_default();
    scheme.eq_ignore_ascii_case("turn") || scheme.eq_ignore_ascii_case("turns")
}

/// The username `expiry:participant_id` and its credential, base64(HMAC-SHA1(secret,
/// username)).
pub fn credential(secret: &str, participant_id: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{participant_id}");
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_matches_the_turn_rest_api_scheme() {
        // Worked out independently: printf '1700003600:PA_ann' | openssl dgst -sha1 -hmac
        // 'north-star' -binary | base64
        let (username, credential) = credential("north-star", "PA_ann", 1_700_003_600);
        assert_eq!(username, "1700003600:PA_ann");
        assert_eq!(credential, "oWxnbQn6P3k9/9LiikN/8KN5Fjo=");
    }

    #[test]
    fn each_participant_gets_its_own_expiring_credential() {
        let servers = IceServers {
            urls: vec![
                "stun:turn.example.org:3478".into(),
                "turn:turn.example.org:3478?transport=udp".into(),
                "turns:turn.example.org:5349?transport=tcp".into(),
            ],
            auth: TurnAuth::Secret {
                secret: "s3cret".into(),
                ttl: Duration::from_secs(3600),
            },
        };
        let ann = servers.for_participant("PA_ann", 1_000);
        assert_eq!(ann.len(), 2, "{ann:?}");
        assert_eq!(ann[0].urls, ["stun:turn.example.org:3478"]);
        assert_eq!(
            (ann[0].username.as_ref(), ann[0].credential.as_ref()),
            (None, None)
        );
        assert_eq!(ann[1].urls.len(), 2);
        assert_eq!(ann[1].username.as_deref(), Some("4600:PA_ann"));
        let expected = credential("s3cret", "PA_ann", 4_600).1;
        assert_eq!(ann[1].credential.as_deref(), Some(expected.as_str()));
        let bob = servers.for_participant("PA_bob", 1_000);
        assert_ne!(bob[1].credential, ann[1].credential);
        let later = servers.for_participant("PA_ann", 2_000);
        assert_eq!(later[1].username.as_deref(), Some("5600:PA_ann"));
    }

    #[test]
    fn static_and_no_credentials_are_handed_out_as_configured() {
        let urls = vec!["stun:a:3478".to_owned(), "turn:a:3478".to_owned()];
        let open = IceServers {
            urls: urls.clone(),
            auth: TurnAuth::None,
        };
        assert_eq!(open.for_participant("PA_x", 0), [entry(urls.clone(), None)]);
        let fixed = IceServers {
            urls: urls.clone(),
            auth: TurnAuth::Static {
                username: "u".into(),
                credential: "c".into(),
            },
        };
        assert_eq!(
            fixed.for_participant("PA_x", 0),
            [entry(urls, Some(("u".into(), "c".into())))]
        );
        assert!(IceServers::default().for_participant("PA_x", 0).is_empty());
    }

    #[test]
    fn turn_urls_are_told_from_stun_urls() {
        assert!(is_turn_url("turn:h:3478"));
        assert!(is_turn_url("TURNS:h:443?transport=tcp"));
        assert!(!is_turn_url("stun:h:3478"));
        assert!(!is_turn_url("stuns:h"));
        assert!(!is_turn_url(""));
    }
}
