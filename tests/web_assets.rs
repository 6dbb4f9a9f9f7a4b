//! The embedded web client over real HTTP: every file `index.html` references is served
//! with its type, responses revalidate by ETag (304), unknown paths are 404 and nothing
//! outside `web/` can be reached.
mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request with the raw `path` (not normalised) and extra header lines.
async fn get(server: &roomcast::RunningServer, path: &str, extra: &str) -> Reply {
    let mut conn = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .expect("HTTP connects");
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{extra}\r\n");
    conn.write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut raw = Vec::new();
    tokio::time::timeout(MESSAGE_TIMEOUT, conn.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("response read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// The `src="…"` and `href="…"` values of `html` that are local files.
fn local_references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attr) {
            let rest = &html[at + attr.len()..];
            let value = &rest[..rest.find('"').unwrap_or(0)];
            if !value.is_empty() && !value.contains(':') && !value.starts_with('#') {
                found.push(format!("/{}", value.trim_start_matches("./")));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_everything_it_references_are_served() {
    let server = start_server().await;
    let index = get(&server, "/", "").await;
    assert_eq!(index.status, 200);
    assert!(
        index
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        index.headers
    );
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    assert_eq!(index.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(index.header("x-content-type-options"), Some("nosniff"));
    let html = String::from_utf8(index.body).expect("UTF-8 page");
    let references = local_references(&html);
    assert!(
        references.iter().any(|r| r.ends_with(".js")),
        "the page loads its script: {references:?}"
    );
    for path in &references {
        let reply = get(&server, path, "").await;
        assert_eq!(reply.status, 200, "{path}");
        assert!(!reply.body.is_empty(), "{path}");
        let ty = reply.header("content-type").unwrap_or_default().to_owned();
        if path.ends_with(".js") {
            // Browsers refuse ES modules served with any other type.
            assert!(ty.contains("javascript"), "{path}: {ty}");
        } else if path.ends_with(".css") {
            assert!(ty.starts_with("text/css"), "{path}: {ty}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_copy_is_revalidated_with_its_etag() {
    let server = start_server().await;
    let first = get(&server, "/index.html", "").await;
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let again = get(
        &server,
        "/index.html",
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    let stale = get(&server, "/index.html", "If-None-Match: \"0123\"\r\n").await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, first.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_outside_paths_are_not_found() {
    let server = start_server().await;
    for path in [
        "/no-such-file.js",
        "/../Cargo.toml",
        "/..%2fCargo.toml",
        "/js/../../Cargo.toml",
        "/%2e%2e/src/main.rs",
    ] {
        let reply = get(&server, path, "").await;
        assert!(
            reply.status == 404 || reply.status == 400,
            "{path}: {}",
            reply.status
        );
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("[package]"),
            "{path} leaked a file"
        );
    }
}
