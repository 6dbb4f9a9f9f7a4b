//! The web client in a cluster, as an operator deploys one: nodes (the real binary, media
//! on every address) sharing a real `redis-server`, behind a load balancer that sends each
//! new connection to the first node whose `/readyz` answers 200. Chromium meets a bot there;
//! then its node is drained, or killed with SIGKILL. The page must get its meeting back by
//! itself on another node (after a drain, following the server's `reconnect`; after a kill,
//! its lost connection) and play the bot again; a drained node must exit.
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
/// The bound for a killed node's participants to be back on another node, counted
/// here from the moment the page plays the bot, just before the kill, to the moment it
/// plays the bot again: the dead node's record expires (up to 6 s), then the page and the
/// bot join afresh and the page decodes the bot's video.
const KILLED_BACK_WITHIN_MS: &str = "10000";

/// The real binary as a cluster node that drains within 1 s.
async fn node(redis: &RedisServer, id: &str) -> ServeProcess {
    node_with(redis, id, &[]).await
}

/// [`node`] with more arguments.
async fn node_with(redis: &RedisServer, id: &str, more: &[&str]) -> ServeProcess {
    ServeProcess::cluster_node(&redis.url(), id, ADMIN_KEY, "1s", more).await
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

/// `tests/browser/reconnect.mjs` in Chromium, joined through `balancer` to `room`, where
/// the bot `bot_name` publishes.
struct Page {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
}

impl Page {
    /// Starts the page; it has `back_timeout_ms` to play the bot again once it played it.
    fn open(balancer: &Balancer, room: &str, bot_name: &str, back_timeout_ms: &str) -> Page {
        Page::open_at(balancer.addr, room, bot_name, back_timeout_ms)
    }

    /// The page served by `at` (a balancer, or a node itself).
    fn open_at(at: SocketAddr, room: &str, bot_name: &str, back_timeout_ms: &str) -> Page {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/reconnect.mjs");
        let url = format!("http://localhost:{}", at.port());
        let mut child = Command::new("node")
            .args([script, "--url", &url, "--room", room])
            .args(["--remote-name", bot_name, "--timeout-ms", SCRIPT_TIMEOUT_MS])
            .args(["--back-timeout-ms", back_timeout_ms])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (tests/run.sh installs it)");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Page {
            child,
            lines,
            stderr,
        }
    }

    /// The script's next report.
    async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(120), next_line(&mut self.lines))
            .await
            .expect("the script reports in time")
    }

    /// Waits until the page plays the bot (the caller drains or kills its node next).
    async fn playing(&mut self) {
        let first = self.next().await;
        if first["event"] != "playing" {
            let _ = self.child.start_kill();
            let stderr = (&mut self.stderr).await.unwrap_or_default();
            panic!("before the drain or kill: {first}\n{}", tail(&stderr, 30));
        }
    }

    /// The script's result (`ok` once the page joined again and played the bot again),
    /// and the end of the page's console errors.
    async fn back(mut self) -> (Value, String) {
        let result = self.next().await;
        let stderr = self.stderr.await.unwrap_or_default();
        (result, tail(&stderr, 30))
    }
}

/// The last lines of a node's log, for a failure message.
fn log_tail(name: &str, node: &ServeProcess) -> String {
    let lines: Vec<String> = node
        .logs()
        .iter()
        .rev()
        .take(30)
        .map(Value::to_string)
        .collect();
    format!("node {name}:\n{}", lines.join("\n"))
}

/// The node that holds `room`, as `/api/rooms` on `at` says.
async fn room_node(at: SocketAddr, room: &str) -> Option<String> {
    let (200, body) = get(at, "/api/rooms", true).await? else {
        return None;
    };
    let v: Value = serde_json::from_str(&body).ok()?;
    v["rooms"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == room)
        .and_then(|r| r["node"].as_str().map(str::to_owned))
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

    let mut page = Page::open(&balancer, "drain", &bot_name, SCRIPT_TIMEOUT_MS);
    page.playing().await;
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

    let (result, errors) = page.back().await;
    assert_eq!(
        result["ok"],
        true,
        "after the drain: {result}\n{errors}\n{}",
        log_tail("a", &a)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_is_back_on_another_node_when_its_node_is_killed() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    // "b" is small: once the page is back through it (the balancer's next node), it is
    // full, so the room is placed afresh on "c" and the page must be relayed there: a node
    // must not serve a room it does not hold, even for a client coming back.
    let mut nodes = [
        node(&redis, "a").await,
        node_with(&redis, "b", &["--node-capacity", "1"]).await,
        node(&redis, "c").await,
    ];
    wait_registry(addr(&nodes[2]), &["a", "b", "c"]).await;
    let balancer = Balancer::start(nodes.iter().map(addr).collect()).await;

    // A bot publisher through "c", not the balancer: another way in. Its connection is
    // relayed to the room's node; when that node dies, "c" closes it (1012) and the swarm
    // joins it again through "c" (or "b", its second URL, if "c" does not answer). Ties in
    // placement go to the smaller id: the room goes to "a", the node the balancer gives
    // the page.
    let mut config = SwarmConfig::new(format!("{},{}", nodes[2].ws_url(), nodes[1].ws_url()));
    config.rooms = vec!["crash".to_owned()];
    config.publishers = 1;
    let swarm = Swarm::start(config).await;
    let bot_name = swarm.joined_bots()[0].0.name.clone();

    let mut page = Page::open(&balancer, "crash", &bot_name, KILLED_BACK_WITHIN_MS);
    page.playing().await;
    let owner = room_node(addr(&nodes[2]), "crash")
        .await
        .expect("the room is placed");
    let killed = ["a", "b", "c"]
        .iter()
        .position(|id| *id == owner)
        .expect("a node");
    nodes[killed].kill().await;

    // The page's connection drops without a word; its resume names a session of the dead
    // node (`session_expired`), and its fresh join waits until the dead node's record
    // expires, then places the room on a live node, where the bot's join lands too.
    let (result, errors) = page.back().await;
    if result["ok"] != true {
        let logs: Vec<String> = nodes
            .iter()
            .zip(["a", "b", "c"])
            .map(|(n, id)| log_tail(id, n))
            .collect();
        panic!("after the kill: {result}\n{errors}\n{}", logs.join("\n"));
    }
    eprintln!(
        "kill of {owner}: the page joined again after {} ms and played the bot after {} ms",
        result["rejoined_ms"], result["media_back_ms"]
    );
    let now = room_node(addr(&nodes[(killed + 1) % 3]), "crash").await;
    assert!(
        now.as_deref().is_some_and(|n| n != owner),
        "the room is on a live node: {now:?}"
    );
    // One room: nobody serves a copy of it that the cluster does not know.
    let listed = get(addr(&nodes[(killed + 1) % 3]), "/api/rooms", true).await;
    let rooms: Value = serde_json::from_str(&listed.expect("answers").1).expect("JSON");
    assert_eq!(rooms["rooms"].as_array().map(Vec::len), Some(1), "{rooms}");
    swarm.leave(MESSAGE_TIMEOUT).await;
}

/// No load balancer: the page is opened at the room's node itself, which then dies. The page knows
/// the cluster's other nodes (`/api/cluster/urls`, read when it joined) and comes back
/// through one of them within the 10 s.
#[tokio::test]
async fn a_page_opened_at_a_node_that_is_killed_comes_back_through_another() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    let mut nodes = [
        node(&redis, "a").await,
        node(&redis, "b").await,
        node(&redis, "c").await,
    ];
    wait_registry(addr(&nodes[2]), &["a", "b", "c"]).await;
    // What the page will read: every serving node's URL, once "a" has read the registry.
    let mut urls = Value::Null;
    for _ in 0..150 {
        let (status, body) = get(addr(&nodes[0]), "/api/cluster/urls", false)
            .await
            .expect("answers");
        assert_eq!(status, 200, "{body}");
        urls = serde_json::from_str(&body).expect("JSON");
        if urls["urls"].as_array().map(Vec::len) == Some(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(urls["urls"].as_array().map(Vec::len), Some(3), "{urls}");

    let mut config = SwarmConfig::new(format!("{},{}", nodes[2].ws_url(), nodes[1].ws_url()));
    config.rooms = vec!["direct".to_owned()];
    config.publishers = 1;
    let swarm = Swarm::start(config).await;
    let bot_name = swarm.joined_bots()[0].0.name.clone();

    // The page is opened at the room's node itself, which then dies.
    let owner = room_node(addr(&nodes[2]), "direct")
        .await
        .expect("the room is placed");
    let killed = ["a", "b", "c"]
        .iter()
        .position(|id| *id == owner)
        .expect("a node");
    let mut page = Page::open_at(
        addr(&nodes[killed]),
        "direct",
        &bot_name,
        KILLED_BACK_WITHIN_MS,
    );
    page.playing().await;
    nodes[killed].kill().await;

    let (result, errors) = page.back().await;
    if result["ok"] != true {
        let logs: Vec<String> = nodes
            .iter()
            .zip(["a", "b", "c"])
            .map(|(n, id)| log_tail(id, n))
            .collect();
        panic!("after the kill: {result}\n{errors}\n{}", logs.join("\n"));
    }
    eprintln!(
        "kill of the page's own node: the page joined again after {} ms and played the bot after {} ms",
        result["rejoined_ms"], result["media_back_ms"]
    );
    swarm.leave(MESSAGE_TIMEOUT).await;
}
