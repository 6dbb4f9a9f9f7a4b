//! A WHEP player: a receive-only PeerConnection (one audio, one video m-line) set up with
//! one HTTP POST of its offer, candidates included, and torn down with DELETE. It counts
//! what it receives with the same readers as a [`crate::Bot`], and sends the same
//! transport-cc feedback, so the server estimates its bandwidth like any subscriber's.
//!
//! Plain `http://` only (the viewer is for tests and load tests next to the server).
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, info_span};
use webrtc::ice_transport::ice_connection_state::RTCIceConnectionState;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;

use crate::subscriber_stats::Subscriptions;
use crate::transport_cc::ReceivePath;
use crate::{peer_connection, subscriber, BotError, RemoteTrackStats};

/// Largest HTTP response the viewer reads (an answer is a few kB).
const MAX_RESPONSE: u64 = 256 * 1024;

/// One HTTP response: its status, headers and body.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A WHEP session, watching until [`WhepViewer::delete`] or drop.
pub struct WhepViewer {
    pc: Arc<RTCPeerConnection>,
    subscriptions: Arc<Subscriptions>,
    receive: ReceivePath,
    /// `host:port` of the server.
    authority: String,
    /// The session's resource path (the `Location`).
    location: String,
    /// The entity tag of the current ICE session (the 201's `ETag`, then each restart's).
    etag: String,
    /// How often its ICE connection became connected.
    connections: IceConnections,
    /// When the server's 201 arrived.
    pub answered_at: Instant,
}

impl WhepViewer {
    /// POSTs a receive-only offer to `url` (`http://host:port/whep/{room}` or
    /// `.../{participant}`), with `token` as its bearer, and applies the answer. Each step
    /// is bounded by `timeout`; a refusal is [`BotError::Refused`]-like text in
    /// [`BotError::Protocol`] with the status.
    pub async fn watch(
        url: &str,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<WhepViewer, BotError> {
        WhepViewer::watch_voices(url, token, 1, timeout).await
    }

    /// As [`WhepViewer::watch`], offering `voices` audio receivers (and one video), as a
    /// player that wants to hear a panel does.
    pub async fn watch_voices(
        url: &str,
        token: Option<&str>,
        voices: usize,
        timeout: Duration,
    ) -> Result<WhepViewer, BotError> {
        let (authority, path) = split_url(url)?;
        let loopback = peer_connection::is_loopback_url(url);
        let ipv6 = peer_connection::is_ipv6_url(url);
        let (pc, mut receive) =
            peer_connection::new_peer_connection(&[], loopback, ipv6, false).await?;
        let subscriptions = Arc::new(Subscriptions::new());
        let connections = IceConnections::watch(&pc);
        let span = info_span!("whep", %path);
        let readers = Arc::clone(&subscriptions);
        pc.on_track(Box::new(move |track, _, _| {
            subscriber::spawn_reader(Arc::clone(&readers), track, span.clone());
            Box::pin(async {})
        }));
        let kinds = std::iter::repeat_n(RTPCodecType::Audio, voices).chain([RTPCodecType::Video]);
        for kind in kinds {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    send_encodings: Vec::new(),
                }),
            )
            .await?;
        }
        let offer = pc.create_offer(None).await?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(offer).await?;
        tokio::time::timeout(timeout, gathered.recv())
            .await
            .map_err(|_| BotError::Timeout("ICE gathering"))?;
        let sdp = pc
            .local_description()
            .await
            .ok_or_else(|| BotError::Protocol("no local description".into()))?
            .sdp;
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/sdp")];
        if let Some(bearer) = &bearer {
            headers.push(("Authorization", bearer.as_str()));
        }
        let reply = http(&authority, "POST", &path, &headers, &sdp, timeout).await?;
        if reply.status != 201 {
            let _ = pc.close().await;
            return Err(BotError::Protocol(format!(
                "WHEP POST answered {}: {}",
                reply.status,
                reply.body.trim()
            )));
        }
        let answered_at = Instant::now();
        let location = reply
            .header("location")
            .ok_or_else(|| BotError::Protocol("a 201 without Location".into()))?
            .to_owned();
        let etag = reply.header("etag").unwrap_or("*").to_owned();
        pc.set_remote_description(RTCSessionDescription::answer(reply.body)?)
            .await?;
        receive.start(Arc::clone(&pc));
        debug!(%location, "watching");
        Ok(WhepViewer {
            pc,
            subscriptions,
            receive,
            authority,
            location,
            etag,
            connections,
            answered_at,
        })
    }

    /// Restarts ICE through PATCH (RFC 9725 §4.4.1.2) and waits until the new ICE session
    /// is connected. Returns the server's reply to the PATCH.
    pub async fn restart_ice(&mut self, timeout: Duration) -> Result<HttpReply, BotError> {
        let before = self.connections.count();
        let target = Target {
            authority: &self.authority,
            location: &self.location,
        };
        let reply = restart_ice(&self.pc, target, "*", timeout).await?;
        if let Some(etag) = reply.header("etag") {
            self.etag = etag.to_owned();
        }
        self.connections.wait_beyond(before, timeout).await?;
        Ok(reply)
    }

    /// The entity tag of the current ICE session.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// How often the ICE connection became connected (2 after one restart).
    pub fn ice_connections(&self) -> u32 {
        self.connections.count()
    }

    /// The session's resource path, as the server's `Location` named it.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// What arrived so far, per received stream (named by the msid the answer gave it).
    pub fn remote_tracks(&self) -> Vec<RemoteTrackStats> {
        self.subscriptions.snapshot()
    }

    /// Waits until `pred` holds for what arrived.
    pub async fn wait_for_media(
        &self,
        pred: impl Fn(&[RemoteTrackStats]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<RemoteTrackStats>, BotError> {
        self.subscriptions.wait_for(pred, timeout).await
    }

    /// Ends the session with DELETE; returns the status the server gave.
    pub async fn delete(mut self) -> Result<u16, BotError> {
        let reply = http(
            &self.authority,
            "DELETE",
            &self.location,
            &[],
            "",
            Duration::from_secs(10),
        )
        .await;
        self.stop().await;
        Ok(reply?.status)
    }

    async fn stop(&mut self) {
        let _ = self.pc.close().await;
        self.subscriptions.abort_readers();
        self.receive.stop();
    }
}

impl Drop for WhepViewer {
    fn drop(&mut self) {
        self.subscriptions.abort_readers();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pc = Arc::clone(&self.pc);
            runtime.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// Counts the times a PeerConnection's ICE connection became connected, so a caller can
/// wait for the ICE session that follows a restart.
#[derive(Clone)]
pub struct IceConnections {
    count: watch::Receiver<u32>,
}

impl IceConnections {
    /// Watches `pc` (taking its ICE connection state handler).
    pub fn watch(pc: &RTCPeerConnection) -> IceConnections {
        let (tx, count) = watch::channel(0);
        pc.on_ice_connection_state_change(Box::new(move |state| {
            if state == RTCIceConnectionState::Connected {
                tx.send_modify(|n| *n += 1);
            }
            Box::pin(async {})
        }));
        IceConnections { count }
    }

    pub fn count(&self) -> u32 {
        *self.count.borrow()
    }

    /// Waits until the connection became connected more than `n` times.
    pub async fn wait_beyond(&self, n: u32, timeout: Duration) -> Result<(), BotError> {
        let mut count = self.count.clone();
        let beyond = async move { count.wait_for(|c| *c > n).await.map(|_| ()) };
        tokio::time::timeout(timeout, beyond)
            .await
            .map_err(|_| BotError::Timeout("the ICE connection after the restart"))?
            .map_err(|_| BotError::Protocol("the PeerConnection is gone".into()))
    }
}

/// A WHIP or WHEP session's resource: the server's `host:port` and the `Location` path.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub authority: &'a str,
    pub location: &'a str,
}

/// Restarts ICE on the WHIP or WHEP session `target` of `pc` as RFC 9725 §4.4.1.2 says: a
/// new offer with new ICE credentials is applied locally, only its credentials and
/// candidates go to the server in a PATCH (`If-Match: if_match`), and the server's new
/// credentials and candidates from the 200 replace those of the answer applied before.
/// Returns the server's reply; any status but 200 is an error (and the local offer stays
/// pending).
pub async fn restart_ice(
    pc: &RTCPeerConnection,
    target: Target<'_>,
    if_match: &str,
    timeout: Duration,
) -> Result<HttpReply, BotError> {
    let options = RTCOfferOptions {
        ice_restart: true,
        ..Default::default()
    };
    let offer = pc.create_offer(Some(options)).await?;
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(offer).await?;
    tokio::time::timeout(timeout, gathered.recv())
        .await
        .map_err(|_| BotError::Timeout("ICE gathering"))?;
    let local = pc
        .local_description()
        .await
        .ok_or_else(|| BotError::Protocol("no local description".into()))?
        .sdp;
    let fragment = ice_fragment(&local)
        .ok_or_else(|| BotError::Protocol("the restart offer has no ICE credentials".into()))?;
    let headers = [
        ("Content-Type", "application/trickle-ice-sdpfrag"),
        ("If-Match", if_match),
    ];
    let reply = http(
        target.authority,
        "PATCH",
        target.location,
        &headers,
        &fragment,
        timeout,
    )
    .await?;
    if reply.status != 200 {
        return Err(BotError::Protocol(format!(
            "the ICE restart PATCH answered {}: {}",
            reply.status,
            reply.body.trim()
        )));
    }
    let previous = pc
        .current_remote_description()
        .await
        .ok_or_else(|| BotError::Protocol("no remote description".into()))?
        .sdp;
    let answer = restarted_answer(&previous, &reply.body).ok_or_else(|| {
        BotError::Protocol(format!(
            "the ICE restart's 200 carries no ICE credentials: {}",
            reply.body.trim()
        ))
    })?;
    pc.set_remote_description(RTCSessionDescription::answer(answer)?)
        .await?;
    Ok(reply)
}

/// The value of the first `a=<key>` line.
fn attribute<'a>(sdp: &'a str, key: &str) -> Option<&'a str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=")?.strip_prefix(key))
        .map(str::trim)
}

/// The candidates of an SDP (each line without its `a=`), once each.
fn candidates(sdp: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a="))
        .filter(|c| c.starts_with("candidate:"))
    {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The `application/trickle-ice-sdpfrag` of a restart offer: its credentials and candidates
/// under its first m-section (the bundle's), ended.
fn ice_fragment(offer: &str) -> Option<String> {
    let ufrag = attribute(offer, "ice-ufrag:")?;
    let pwd = attribute(offer, "ice-pwd:")?;
    let m_line = offer.lines().find(|l| l.starts_with("m="))?.trim_end();
    let mut out = format!("a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n{m_line}\r\n");
    if let Some(mid) = attribute(offer, "mid:") {
        out.push_str(&format!("a=mid:{mid}\r\n"));
    }
    for c in candidates(offer) {
        out.push_str(&format!("a={c}\r\n"));
    }
    out.push_str("a=end-of-candidates\r\n");
    Some(out)
}

/// The answer applied before with the ICE credentials and candidates of the server's
/// restart `fragment` in place of the old ones (in every m-section).
fn restarted_answer(previous: &str, fragment: &str) -> Option<String> {
    let ufrag = attribute(fragment, "ice-ufrag:")?;
    let pwd = attribute(fragment, "ice-pwd:")?;
    let new_candidates = candidates(fragment);
    let mut out = String::with_capacity(previous.len() + fragment.len());
    let mut in_media = false;
    let end_section = |out: &mut String| {
        for c in &new_candidates {
            out.push_str(&format!("a={c}\r\n"));
        }
        out.push_str("a=end-of-candidates\r\n");
    };
    for line in previous.lines().map(str::trim_end) {
        if line.is_empty()
            || line.starts_with("a=candidate:")
            || line.starts_with("a=end-of-candidates")
        {
            continue;
        }
        if line.starts_with("m=") {
            if in_media {
                end_section(&mut out);
            }
            in_media = true;
        }
        if line.starts_with("a=ice-ufrag:") {
            out.push_str(&format!("a=ice-ufrag:{ufrag}\r\n"));
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str(&format!("a=ice-pwd:{pwd}\r\n"));
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    if in_media {
        end_section(&mut out);
    }
    Some(out)
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> Result<(String, String), BotError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| BotError::Protocol(format!("not an http:// URL: {url}")))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    Ok((authority.to_owned(), format!("/{path}")))
}

/// One HTTP/1.1 request with `Connection: close`.
pub async fn http(
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Result<HttpReply, BotError> {
    let connect_error = |e: std::io::Error| BotError::Connect {
        url: format!("http://{authority}{path}"),
        reason: e.to_string(),
    };
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(connect_error)?;
        let mut raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        raw.push_str(body);
        conn.write_all(raw.as_bytes())
            .await
            .map_err(connect_error)?;
        let mut bytes = Vec::new();
        conn.take(MAX_RESPONSE)
            .read_to_end(&mut bytes)
            .await
            .map_err(connect_error)?;
        parse_reply(&bytes)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| BotError::Timeout("the HTTP reply"))?
}

fn parse_reply(bytes: &[u8]) -> Result<HttpReply, BotError> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BotError::Protocol("no HTTP status line".into()))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(HttpReply {
        status,
        headers,
        body: body.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_replies_are_read() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/whep/demo").unwrap(),
            ("127.0.0.1:8080".to_owned(), "/whep/demo".to_owned())
        );
        assert!(split_url("https://x/whep/demo").is_err());
        let reply = parse_reply(b"HTTP/1.1 201 Created\r\nLocation: /whep/r/abc\r\n\r\nv=0\r\n")
            .expect("a reply");
        assert_eq!(reply.status, 201);
        assert_eq!(reply.header("location"), Some("/whep/r/abc"));
        assert_eq!(reply.body, "v=0\r\n");
        assert!(parse_reply(b"garbage").is_err());
    }

    #[test]
    fn a_restart_swaps_the_ice_credentials_and_candidates_of_the_answer() {
        let offer = "v=0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
            a=ice-ufrag:new1\r\na=ice-pwd:newpassword\r\na=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=ice-ufrag:new1\r\na=ice-pwd:newpassword\r\n\
            a=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n";
        assert_eq!(
            ice_fragment(offer).unwrap(),
            "a=ice-ufrag:new1\r\na=ice-pwd:newpassword\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
             a=mid:0\r\na=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\na=end-of-candidates\r\n"
        );
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:old\r\n\
            a=ice-pwd:oldpwd\r\na=candidate:9 1 udp 1 127.0.0.1 1 typ host\r\na=end-of-candidates\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\n";
        let fragment = "a=ice-lite\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
            a=ice-ufrag:srv2\r\na=ice-pwd:srvpwd2\r\na=candidate:7 1 udp 1 127.0.0.1 2 typ host\r\n\
            a=end-of-candidates\r\n";
        let restarted = restarted_answer(answer, fragment).unwrap();
        assert!(!restarted.contains("old"), "{restarted}");
        assert!(!restarted.contains("candidate:9"), "{restarted}");
        assert_eq!(restarted.matches("a=ice-ufrag:srv2\r\n").count(), 2);
        assert_eq!(
            restarted
                .matches("a=candidate:7 1 udp 1 127.0.0.1 2 typ host\r\na=end-of-candidates\r\n")
                .count(),
            2,
            "{restarted}"
        );
        assert!(restarted_answer(answer, "a=candidate:7 1 udp 1 127.0.0.1 2 typ host").is_none());
    }
}
