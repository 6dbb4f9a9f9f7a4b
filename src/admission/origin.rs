//! Which web pages may open `/ws` through a visitor's browser. Browsers send `Origin` with
//! every WebSocket; without a check, any page a user on the same network opens could join
//! rooms through that user's browser and take media. Clients that send no `Origin` (bots,
//! native apps, scripts) are not browsers acting for someone else and are let through.
//!
//! By default the page must come from the server itself (its `Origin` names the host the
//! request was sent to, so the embedded web client works under any hostname, and behind a
//! trusted proxy under the `X-Forwarded-Host` it was sent to) or from localhost. With
//! `--allowed-origins`, exactly the origins listed are allowed (`*`: any).

/// The `--allowed-origins` policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// The server's own host, and `localhost`, `127.0.0.1`, `[::1]` on any port.
    #[default]
    SameHostOrLocalhost,
    /// Exactly these, normalized (`scheme://host[:port]`, lower case, no default port).
    List(Vec<String>),
    /// Any origin.
    Any,
}

impl AllowedOrigins {
    /// From `--allowed-origins` values: none gives the default, `*` allows any.
    pub fn parse(values: &[String]) -> Result<AllowedOrigins, String> {
        let values: Vec<&str> = values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Ok(AllowedOrigins::SameHostOrLocalhost);
        }
        if values.contains(&"*") {
            return Ok(AllowedOrigins::Any);
        }
        values
            .iter()
            .map(|v| {
                Origin::parse(v).map(|o| o.to_string()).ok_or_else(|| {
                    format!("{v:?} is not an origin like https://meet.example.org[:port]")
                })
            })
            .collect::<Result<_, _>>()
            .map(AllowedOrigins::List)
    }

    /// Whether a browser page at `origin` may connect, the request having been sent to one
    /// of `hosts` (the `Host` header, and the `X-Forwarded-Host` a trusted proxy set).
    pub fn allows(&self, origin: &str, hosts: &[&str]) -> bool {
        if *self == AllowedOrigins::Any {
            return true;
        }
        // "null" (sandboxed frames, file: pages) and anything unparsable name no origin.
        let Some(origin) = Origin::parse(origin) else {
            return false;
        };
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.contains(&origin.to_string()),
            AllowedOrigins::SameHostOrLocalhost => {
                origin.is_localhost()
                    || hosts
                        .iter()
                        .any(|host| origin.authority() == normalize_host(host, origin.scheme))
            }
        }
    }
}

/// A web origin: scheme, host and port (the port only when not the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: &'static str,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn parse(text: &str) -> Option<Origin> {
        let text = text.trim().trim_end_matches('/');
        let (scheme, rest) = text.split_once("://")?;
        let scheme = if scheme.eq_ignore_ascii_case("http") {
            "http"
        } else if scheme.eq_ignore_ascii_case("https") {
            "https"
        } else {
            return None;
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return None;
        }
        let (host, port) = split_port(rest)?;
        let port = port.filter(|p| *p != default_port(scheme));
        Some(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `host[:port]`, as a `Host` header would name it.
    fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    fn is_localhost(&self) -> bool {
        matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "[::1]")
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority())
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// `host` and its port, if any (`[v6]:port` included); `None` for an empty host or a bad
/// port.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            (&authority[..i], Some(authority[i + 1..].parse().ok()?))
        }
        _ => (authority, None),
    };
    (!host.is_empty()).then_some((host, port))
}

/// A `Host` header as [`Origin::authority`] would write it for `scheme`.
fn normalize_host(host: &str, scheme: &str) -> String {
    match split_port(host.trim()) {
        Some((name, Some(port))) if port != default_port(scheme) => {
            format!("{}:{port}", name.to_ascii_lowercase())
        }
        Some((name, _)) => name.to_ascii_lowercase(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(values: &[&str]) -> AllowedOrigins {
        AllowedOrigins::parse(&values.iter().map(|v| v.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn by_default_the_server_itself_and_localhost_are_allowed() {
        let default = AllowedOrigins::default();
        // The embedded client, however the server is reached.
        assert!(default.allows("http://localhost:8080", &["localhost:8080"]));
        assert!(default.allows("http://meet.lan:8080", &["meet.lan:8080"]));
        assert!(default.allows("http://192.168.1.20:8080", &["192.168.1.20:8080"]));
        assert!(default.allows("https://Meet.Example.org", &["meet.example.org"]));
        assert!(default.allows("https://meet.example.org", &["meet.example.org:443"]));
        assert!(default.allows("http://[fd00::5]:8080", &["[fd00::5]:8080"]));
        // Pages on this machine, e.g. a development server on another port.
        assert!(default.allows("http://localhost:3000", &["192.168.1.20:8080"]));
        assert!(default.allows("http://127.0.0.1:5173", &["meet.lan:8080"]));
        assert!(default.allows("https://[::1]", &["meet.lan:8080"]));
        // Someone else's page, opened by a user on the LAN.
        assert!(!default.allows("http://evil.example", &["192.168.1.20:8080"]));
        assert!(!default.allows("http://meet.lan:9999", &["meet.lan:8080"]));
        assert!(!default.allows("https://meet.lan:8080.evil.example", &["meet.lan:8080"]));
        assert!(!default.allows("http://localhost.evil.example", &["meet.lan:8080"]));
        assert!(!default.allows("null", &["meet.lan:8080"]));
        assert!(!default.allows("file://", &["meet.lan:8080"]));
        assert!(!default.allows("http://meet.lan:8080", &[]));
        // The host a trusted proxy forwarded.
        assert!(default.allows(
            "https://meet.example.org",
            &["127.0.0.1:8080", "meet.example.org"]
        ));
    }

    #[test]
    fn a_list_allows_exactly_its_origins() {
        let allowed = list(&["https://meet.example.org", "http://intranet:8080/"]);
        assert!(allowed.allows("https://meet.example.org", &["x"]));
        assert!(allowed.allows("https://meet.example.org:443", &["x"]));
        assert!(allowed.allows("http://INTRANET:8080", &["x"]));
        assert!(!allowed.allows("http://meet.example.org", &["meet.example.org"]));
        assert!(!allowed.allows("http://localhost:8080", &["localhost:8080"]));
        assert!(!allowed.allows("https://evil.example", &["evil.example"]));
    }

    #[test]
    fn a_star_allows_anything() {
        assert_eq!(list(&["*"]), AllowedOrigins::Any);
        assert!(list(&["*"]).allows("null", &[]));
        assert_eq!(list(&[]), AllowedOrigins::SameHostOrLocalhost);
        assert_eq!(list(&[" "]), AllowedOrigins::SameHostOrLocalhost);
    }

    #[test]
    fn bad_values_are_refused_at_start() {
        for bad in [
            "meet.example.org",
            "ftp://x",
            "https://",
            "https://x/path",
            "https://x:99999",
        ] {
            assert!(AllowedOrigins::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
