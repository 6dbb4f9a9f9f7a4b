//! A WHEP player: a receive-only PeerConnection (one audio, one video m-line) set up with
//! one HTTP POST of its offer, candidates included, and torn down with DELETE. It counts
//! what it receives with the same readers as a [`crate::Bot`], and sends the same
//! transport-cc feedback, so the server estimates its bandwidth like any subscriber's.
//!
//! Plain `http://` only (the viewer is for tests and load tests next to the server).
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info_span};
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
        let (authority, path) = split_url(url)?;
        let loopback = peer_connection::is_loopback_url(url);
        let ipv6 = peer_connection::is_ipv6_url(url);
        let (pc, mut receive) =
            peer_connection::new_peer_connection(&[], loopback, ipv6, false).await?;
        let subscriptions = Arc::new(Subscriptions::new());
        let span = info_span!("whep", %path);
        let readers = Arc::clone(&subscriptions);
        pc.on_track(Box::new(move |track, _, _| {
            subscriber::spawn_reader(Arc::clone(&readers), track, span.clone());
            Box::pin(async {})
        }));
        for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
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
            answered_at,
        })
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
}
