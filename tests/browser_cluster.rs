//! The web client in a cluster, as an operator deploys one: two nodes (the real binary, media
//! on every address) sharing a real `redis-server`, behind a load balancer that sends each
//! new connection to the first node whose `/readyz` answers 200. Chromium meets a bot there;
//! then its node is drained. The page must follow the server's `reconnect` by itself (a fresh
//! join through the balancer, which now picks the other node) and play the bot again, and the
//! drained node must exit.
//!
//! Needs `/usr/bin/chromium`, `tests/browser/node_modules` and `redis-server`;
//! `tests/run.sh` installs them.
mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::binary::ServeProcess;
use common::browser::tail;
use common::*;
use roomcast_bots::{Swarm, SwarmConfig};
use roomcast_cluster::redis_server::RedisServer;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

const ADMIN_KEY: &str = "browser-cluster-admin-key";
/// For the browser to join and play, and again after the drain.
const SCRIPT_TIMEOUT_MS: &str = "40000";

/// The real binary as a cluster node that drains within 1 s.
async fn node(redis: &RedisServer, id: &str) -> ServeProcess {
    let url = redis.url();
    ServeProcess::start(
        &[
            "--redis-url",
            &url,
            "--node-id",
            id,
            "--admin-key",
            ADMIN_KEY,
            "--drain-timeout",
            "1s",
        ],
        None,
    )
    .await
}

fn addr(node: &ServeProcess) -> SocketAddr {
    node.http_addr.parse().expect("an address")
}

/// `GET path` on `to`: the status and the body (`None` if the node does not answer).
async fn get(to: SocketAddr, path: &str, bearer: bool) -> Option<(u16, String)> {
    let mut conn = TcpStream::connect(to).await.ok()?;
    let auth = if bearer {
        format!("Authorization: Bearer {ADMIN_KEY}\r\n")
    } else {
        String::new()
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{auth}\r\n");
    conn.write_all(request.as_bytes()).await.ok()?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.ok()?;
    let status = reply.split(' ').nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// A TCP load balancer on loopback: each connection goes to the first of `backends` whose
/// `/readyz` says 200, as a balancer's health check would route it. Runs until dropped.
struct Balancer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    async fn start(backends: Vec<SocketAddr>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("bound");
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let backends = backends.clone();
                tokio::spawn(async move {
                    for backend in backends {
                        if !matches!(get(backend, "/readyz", false).await, Some((200, _))) {
                            continue;
                        }
                        if let Ok(mut server) = TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                });
            }
        });
        Balancer { addr, task }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until `/api/nodes` on `at` lists exactly `ids`.
async fn wait_registry(at: SocketAddr, ids: &[&str]) {
    let mut listed = Vec::new();
    for _ in 0..150 {
        if let Some((200, body)) = get(at, "/api/nodes", true).await {
            let v: Value = serde_json::from_str(&body).expect("JSON");
            listed = v["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .filter_map(|n| n["id"].as_str().map(str::to_owned))
                .collect();
            listed.sort();
            if listed == ids {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the registry lists {listed:?}, not {ids:?}");
}

/// The next line of the script's stdout, as JSON.
async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> Value {
    let line = lines
        .next_line()
        .await
        .expect("stdout readable")
        .expect("the script printed a line");
    serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON line: {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_follows_reconnect_to_another_node_when_its_node_drains() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    // Ties in placement go to the smaller id: the room goes to "a", which then drains.
    let mut a = node(&redis, "a").await;
    let b = node(&redis, "b").await;
    wait_registry(addr(&b), &["a", "b"]).await;
    let balancer = Balancer::start(vec![addr(&a), addr(&b)]).await;

    // A bot publisher through the balancer; swarm bots rejoin by themselves after `reconnect`.
    let mut config = SwarmConfig::new(format!("ws://{}/ws", balancer.addr));
    config.rooms = vec!["drain".to_owned()];
    config.publishers = 1;
    let swarm = Swarm::start(config).await;
    let bot_name = swarm.joined_bots()[0].0.name.clone();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/reconnect.mjs");
    let url = format!("http://localhost:{}", balancer.addr.port());
    let mut child = Command::new("node")
        .args([script, "--url", &url, "--room", "drain"])
        .args([
            "--remote-name",
            &bot_name,
            "--timeout-ms",
            SCRIPT_TIMEOUT_MS,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (tests/run.sh installs it)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr_text = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let limit = Duration::from_secs(120);

    let first = tokio::time::timeout(limit, next_line(&mut lines))
        .await
        .expect("the script reports in time");
    if first["event"] != "playing" {
        panic!(
            "before the drain: {first}\n{}",
            tail(&stderr_text.await.unwrap_or_default(), 30)
        );
    }
    // Drain "a" through "b"'s admin API, as an operator would.
    let drained = common::http::request(
        addr(&b),
        &format!(
            "POST /api/nodes/a/drain HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Length: 0\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(drained.status, 202, "{}", drained.body);

    let result = tokio::time::timeout(limit, next_line(&mut lines))
        .await
        .expect("the script reports in time");
    let stderr = stderr_text.await.unwrap_or_default();
    assert_eq!(
        result["ok"],
        true,
        "after the drain: {result}\n{}\nnode a:\n{}",
        tail(&stderr, 30),
        a.logs()
            .iter()
            .rev()
            .take(30)
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "drain: the page joined again after {} ms and played the bot after {} ms",
        result["rejoined_ms"], result["media_back_ms"]
    );
    let status = a.exited_within(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "the drained node exits cleanly: {status:?}"
    );
    swarm.leave(MESSAGE_TIMEOUT).await;
}
