//! Plain HTTP/1.1 requests to another node's internal URL (`http://host:port`), for the few
//! admin calls one node makes on another. One request per connection, bounded in time and
//! size.
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The whole exchange (connect, send, read) takes at most this long.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The most of an answer read.
const MAX_REPLY: u64 = 1 << 20;

pub struct Reply {
    pub status: u16,
    /// The answer's header fields, as sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// `method path` on the node at `base`, with `authorization` passed on if given, `headers`
/// and `body`. The node answers for itself only (see [`super::rooms::LOCAL_ONLY_HEADER`]).
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Reply> {
    request_within(TIMEOUT, base, method, path, authorization, headers, body).await
}

/// [`request`], taking at most `timeout`.
pub async fn request_within(
    timeout: Duration,
    base: &str,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Reply> {
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("internal URLs must be http:// ({base})"))?
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = authorization {
        head.push_str(&format!("Authorization: {auth}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "{}: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        super::rooms::LOCAL_ONLY_HEADER,
        body.len()
    ));
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let exchange = async {
        let mut stream = TcpStream::connect(&authority).await?;
        stream.write_all(&request).await?;
        let mut raw = Vec::new();
        stream.take(MAX_REPLY).read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(timeout, exchange).await??;
    parse(&raw)
}

fn parse(raw: &[u8]) -> anyhow::Result<Reply> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no complete HTTP answer"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no HTTP status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    if headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v != "identity")
    {
        anyhow::bail!("a chunked answer (the server's own answers have a length)");
    }
    Ok(Reply {
        status,
        headers,
        body: body.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse() {
        let reply = parse(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (202, "{}"));
        assert_eq!(
            reply.headers,
            [("content-length".to_owned(), "2".to_owned())]
        );
        let reply = parse(b"HTTP/1.1 201 Created\r\nLocation: /whip/r/x\r\nLink: <stun:a>; rel=\"ice-server\"\r\n\r\nv=0").unwrap();
        assert_eq!(
            reply.headers[0],
            ("Location".to_owned(), "/whip/r/x".to_owned())
        );
        assert_eq!(reply.headers[1].1, "<stun:a>; rel=\"ice-server\"");
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}").is_err());
        assert!(parse(b"HTTP/1.1 200").is_err());
    }
}
