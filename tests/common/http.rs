//! Plain HTTP and WebSocket requests with chosen headers, for checking what the server
//! answers before any signaling: statuses, refusals, `/metrics` samples.
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends `raw` (a whole HTTP/1.x request) on a new connection and reads the reply until the
/// server closes.
pub async fn request(addr: SocketAddr, raw: &str) -> Reply {
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("HTTP connects");
    conn.write_all(raw.as_bytes()).await.expect("request sent");
    let mut bytes = Vec::new();
    tokio::time::timeout(super::MESSAGE_TIMEOUT, conn.read_to_end(&mut bytes))
        .await
        .expect("response in time")
        .expect("response read");
    parse_reply(&bytes)
}

pub fn parse_reply(bytes: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `GET path` with `Connection: close` and extra header lines (each ending in `\r\n`).
pub async fn get(addr: SocketAddr, path: &str, extra: &str) -> Reply {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n"),
    )
    .await
}

/// The value of one `/metrics` sample, e.g. `roomcast_websockets` or
/// `roomcast_connections_refused_total{reason="origin"}`.
pub async fn metric(addr: SocketAddr, sample: &str) -> f64 {
    let reply = get(addr, "/metrics", "").await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in /metrics"))
}

/// Opens `url` as a WebSocket with extra request headers: the socket, or the HTTP status
/// the server refused it with.
pub async fn ws_connect(url: &str, headers: &[(&str, &str)]) -> Result<Socket, u16> {
    let mut request = url.into_client_request().expect("a WebSocket URL");
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("WebSocket to {url} failed without an HTTP status: {e}"),
    }
}

/// Requests to one server address, `Connection: close` each.
pub struct Http(pub SocketAddr);

impl Http {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        raw.push_str(body);
        request(self.0, &raw).await
    }
}

/// One request of a table: what it is, its headers and body, the status it must get.
pub struct Case<'a> {
    pub what: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a str,
    pub status: u16,
}

impl<'a> Case<'a> {
    pub fn new(
        what: &'a str,
        headers: &[(&'a str, &'a str)],
        body: &'a str,
        status: u16,
    ) -> Case<'a> {
        Case {
            what,
            headers: headers.to_vec(),
            body,
            status,
        }
    }
}

/// The values of header `name` in `reply`.
pub fn header<'a>(reply: &'a Reply, name: &str) -> Vec<&'a str> {
    reply
        .head
        .lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

/// `reply` has `status`; an error status comes with a body that says why.
pub fn expect(reply: &Reply, status: u16, what: &str) {
    assert_eq!(
        reply.status, status,
        "{what}: got {}\n{}\n\n{}",
        reply.status, reply.head, reply.body
    );
    if status >= 400 {
        assert!(!reply.body.trim().is_empty(), "{what}: an error says why");
    }
}
