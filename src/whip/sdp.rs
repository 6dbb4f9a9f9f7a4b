//! The text WHIP adds around the session's SDP, without I/O: the server's candidates put
//! into its answer (an encoder that does not trickle reads them there), a client's
//! `application/trickle-ice-sdpfrag` (RFC 8840) read into candidates, and ICE servers as
//! `Link` headers (RFC 9725 §4.6).
use roomcast_protocol::{IceCandidate, IceServer};

/// Most candidate lines one PATCH may carry (the session limits the total as well).
pub const MAX_FRAGMENT_CANDIDATES: usize = 64;

/// Whether `body` looks like an SDP description (it must start with `v=0`).
pub fn looks_like_sdp(body: &str) -> bool {
    body.trim_start().starts_with("v=0")
}

/// The first `a=ice-ufrag` and `a=ice-pwd` of a description or fragment.
pub fn ice_credentials(sdp: &str) -> (Option<&str>, Option<&str>) {
    let value = |key: &str| {
        sdp.lines()
            .find_map(|line| line.trim_end().strip_prefix(key))
            .map(str::trim)
    };
    (value("a=ice-ufrag:"), value("a=ice-pwd:"))
}

/// `answer` with the server's candidates and `a=end-of-candidates` at the end of every
/// m-section, as a non-trickle answer carries them (RFC 8839 §5.1).
pub fn with_candidates(answer: &str, candidates: &[String]) -> String {
    let mut out = String::with_capacity(answer.len() + candidates.len() * 80 * 2);
    let mut in_media = false;
    let finish = |out: &mut String| {
        for c in candidates {
            out.push_str("a=");
            out.push_str(c.strip_prefix("a=").unwrap_or(c));
            out.push_str("\r\n");
        }
        out.push_str("a=end-of-candidates\r\n");
    };
    for line in answer.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with("a=end-of-candidates") {
            continue;
        }
        if line.starts_with("m=") {
            if in_media {
                finish(&mut out);
            }
            in_media = true;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if in_media {
        finish(&mut out);
    }
    out
}

/// The offer an ICE restart applies (RFC 9725 §4.4.1.2): the stored `offer` with the
/// client's new `ufrag` and `pwd`, and none of the old ICE session's candidates. Everything
/// else was negotiated already and still applies.
pub fn restarted_offer(offer: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(offer.len());
    for line in offer.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("a=candidate:") || line.starts_with("a=end-of-candidates") {
            continue;
        }
        if line.starts_with("a=ice-ufrag:") {
            out.push_str("a=ice-ufrag:");
            out.push_str(ufrag);
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str("a=ice-pwd:");
            out.push_str(pwd);
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}

/// The `application/trickle-ice-sdpfrag` answering an ICE restart: the server's new
/// `ice-ufrag`/`ice-pwd` from its `answer`, with its candidates (those in the answer and
/// `more`, once each) under the answer's first m-section, and the same `ice-lite`,
/// `ice-options` and `BUNDLE` group as the answer (RFC 9725 §4.4.1.2, RFC 8840).
pub fn restart_fragment(answer: &str, more: &[String]) -> Result<String, String> {
    let (Some(ufrag), Some(pwd)) = ice_credentials(answer) else {
        return Err("the restarted session's answer has no ICE credentials".into());
    };
    let mut out = String::new();
    let mut section: Option<(&str, Option<&str>)> = None;
    let mut candidates: Vec<&str> = Vec::new();
    let mut media_seen = 0;
    for line in answer.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("m=") {
            media_seen += 1;
            if media_seen == 1 {
                section = Some((line, None));
            }
            continue;
        }
        if media_seen == 0 {
            if line == "a=ice-lite"
                || line.starts_with("a=ice-options:")
                || line.starts_with("a=group:BUNDLE")
            {
                out.push_str(line);
                out.push_str("\r\n");
            }
        } else if let Some(c) = line.strip_prefix("a=") {
            if media_seen == 1 {
                if let (Some(mid), Some((_, slot))) = (c.strip_prefix("mid:"), section.as_mut()) {
                    *slot = Some(mid);
                }
            }
            if c.starts_with("candidate:") && !candidates.contains(&c) {
                candidates.push(c);
            }
        }
    }
    for c in more {
        let c = c.strip_prefix("a=").unwrap_or(c);
        if !candidates.contains(&c) {
            candidates.push(c);
        }
    }
    let Some((m_line, mid)) = section else {
        return Err("the restarted session's answer has no m-line".into());
    };
    out.push_str(m_line);
    out.push_str("\r\n");
    if let Some(mid) = mid {
        out.push_str(&format!("a=mid:{mid}\r\n"));
    }
    out.push_str(&format!("a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"));
    for c in candidates {
        out.push_str("a=");
        out.push_str(c);
        out.push_str("\r\n");
    }
    out.push_str("a=end-of-candidates\r\n");
    Ok(out)
}

/// What a trickle PATCH carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fragment {
    pub ufrag: Option<String>,
    pub pwd: Option<String>,
    pub candidates: Vec<IceCandidate>,
    /// `a=end-of-candidates` was present.
    pub end: bool,
}

/// Reads an `application/trickle-ice-sdpfrag` body: candidates belong to the m-section
/// (its `a=mid`, else its index) they follow; before any `m=` line, to the first.
pub fn parse_fragment(body: &str) -> Result<Fragment, String> {
    let mut fragment = Fragment::default();
    let mut index: Option<u16> = None;
    let mut mid: Option<String> = None;
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((kind, value)) = line.split_once('=') else {
            return Err("not an SDP fragment: every line is <type>=<value>".into());
        };
        match kind {
            "m" => {
                index = Some(index.map_or(0, |i| i.saturating_add(1)));
                mid = None;
            }
            "a" => {
                if let Some(v) = value.strip_prefix("ice-ufrag:") {
                    fragment.ufrag = Some(v.trim().to_owned());
                } else if let Some(v) = value.strip_prefix("ice-pwd:") {
                    fragment.pwd = Some(v.trim().to_owned());
                } else if let Some(v) = value.strip_prefix("mid:") {
                    mid = Some(v.trim().to_owned());
                } else if value.starts_with("candidate:") {
                    if fragment.candidates.len() >= MAX_FRAGMENT_CANDIDATES {
                        return Err(format!(
                            "at most {MAX_FRAGMENT_CANDIDATES} candidates per PATCH"
                        ));
                    }
                    fragment.candidates.push(IceCandidate {
                        candidate: value.to_owned(),
                        sdp_mid: mid.clone(),
                        sdp_mline_index: Some(index.unwrap_or(0)),
                        username_fragment: fragment.ufrag.clone(),
                    });
                } else if value == "end-of-candidates" {
                    fragment.end = true;
                }
            }
            _ if kind.len() == 1 => {}
            _ => return Err("not an SDP fragment: every line is <type>=<value>".into()),
        }
    }
    Ok(fragment)
}

/// The `Link` header values for `servers` (RFC 9725 §4.6): one per URL, with the username
/// and credential when there are some.
pub fn link_headers(servers: &[IceServer]) -> Vec<String> {
    let mut links = Vec::new();
    for server in servers {
        for url in &server.urls {
            let mut link = format!("<{}>; rel=\"ice-server\"", url.replace(['<', '>'], ""));
            if let (Some(user), Some(credential)) = (&server.username, &server.credential) {
                link.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    quoted(user),
                    quoted(credential)
                ));
            }
            links.push(link);
        }
    }
    links
}

fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:abc\r\na=ice-pwd:secret\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n";

    #[test]
    fn candidates_go_into_every_media_section_with_an_end() {
        let sdp = with_candidates(
            ANSWER,
            &["candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".to_owned()],
        );
        let sections: Vec<&str> = sdp.split("m=").skip(1).collect();
        assert_eq!(sections.len(), 2);
        for section in sections {
            assert!(
                section.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n"),
                "{section}"
            );
            assert!(section.ends_with("a=end-of-candidates\r\n"), "{section}");
        }
        assert!(sdp.starts_with("v=0\r\n"));
        assert_eq!(ice_credentials(&sdp), (Some("abc"), Some("secret")));
    }

    #[test]
    fn a_restart_reapplies_the_offer_with_new_credentials_and_no_old_candidates() {
        let offer = "v=0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
            a=ice-ufrag:old1\r\na=ice-pwd:oldpassword\r\na=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n\
            a=end-of-candidates\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n\
            a=ice-ufrag:old1\r\na=ice-pwd:oldpassword\r\n";
        let restarted = restarted_offer(offer, "new2", "newpassword");
        assert_eq!(
            restarted,
            "v=0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
             a=ice-ufrag:new2\r\na=ice-pwd:newpassword\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
             a=mid:1\r\na=ice-ufrag:new2\r\na=ice-pwd:newpassword\r\n"
        );
    }

    #[test]
    fn a_restart_answers_with_the_new_credentials_and_every_candidate_once() {
        let answer = "v=0\r\na=ice-lite\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
            a=mid:0\r\na=ice-ufrag:srv2\r\na=ice-pwd:srvsecret\r\n\
            a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=ice-ufrag:srv2\r\na=ice-pwd:srvsecret\r\n\
            a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n";
        let more = [
            "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".to_owned(),
            "candidate:2 1 udp 2130706431 192.0.2.1 50000 typ host".to_owned(),
        ];
        assert_eq!(
            restart_fragment(answer, &more).unwrap(),
            "a=ice-lite\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
             a=ice-ufrag:srv2\r\na=ice-pwd:srvsecret\r\n\
             a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n\
             a=candidate:2 1 udp 2130706431 192.0.2.1 50000 typ host\r\na=end-of-candidates\r\n"
        );
        assert!(restart_fragment("v=0\r\nm=audio 9 RTP/AVP 0\r\n", &[]).is_err());
    }

    #[test]
    fn a_fragment_gives_its_candidates_with_their_section() {
        let body = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
            m=audio 9 RTP/AVP 0\r\na=mid:0\r\n\
            a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host\r\n\
            a=end-of-candidates\r\n";
        let f = parse_fragment(body).expect("a fragment");
        assert_eq!(f.ufrag.as_deref(), Some("EsAw"));
        assert_eq!(f.pwd.as_deref(), Some("P2uYro0UCOQ4zxjKXaWCBui1"));
        assert_eq!(f.candidates.len(), 1);
        let c = &f.candidates[0];
        assert_eq!(
            c.candidate,
            "candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host"
        );
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_mline_index, Some(0));
        assert!(f.end);
    }

    #[test]
    fn junk_and_floods_are_not_fragments() {
        assert!(parse_fragment("hello world").is_err());
        assert!(parse_fragment("{\"candidate\":1}").is_err());
        let flood = "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n".repeat(65);
        assert!(parse_fragment(&flood).is_err());
        assert!(looks_like_sdp("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"));
        assert!(!looks_like_sdp("{\"sdp\":\"v=0\"}"));
    }

    #[test]
    fn links_carry_credentials_only_when_there_are_some() {
        let servers = [
            IceServer {
                urls: vec!["stun:stun.example.org".into()],
                username: None,
                credential: None,
            },
            IceServer {
                urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
                username: Some("1700000000:PA_x".into()),
                credential: Some("c\"x".into()),
            },
        ];
        assert_eq!(
            link_headers(&servers),
            [
                "<stun:stun.example.org>; rel=\"ice-server\"".to_owned(),
                "<turn:turn.example.org:3478?transport=udp>; rel=\"ice-server\"; \
                 username=\"1700000000:PA_x\"; credential=\"c\\\"x\"; credential-type=\"password\""
                    .to_owned(),
            ]
        );
    }
}
