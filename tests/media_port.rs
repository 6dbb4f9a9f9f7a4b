//! The server as the README starts it: the `roomcast` binary with media on every address
//! (`--udp-ip` left at its default, 0.0.0.0, dual-stack where the host has IPv6), so it
//! announces a host candidate for every local address. Clients reach it the ways users do:
//! `roomcast bots` on the same machine (IPv4 and IPv6), Chromium, and bots in a network
//! namespace that only reach the server through a second, non-loopback address, the one the
//! kernel would not pick as the source of a reply.
//!
//! Every track must arrive. Before the media port answered each check from the address it
//! was sent to, the README's defaults lost 12 to 20 of 36 tracks to bots on this machine.
//! The bots now pair only with the server's loopback candidates when it is on their machine
//! (a pair on any other address dies with that address: a namespace or container interface
//! removed by something else on the host lost a whole publisher's tracks), so that case is
//! the namespace test's, whose clients can only reach a non-loopback address, and
//! Chromium's, which pairs with any.
//!
//! The namespace test needs root and `ip` (iproute2); `tests/run.sh` installs `ip`.
mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::browser::{run_script, tail};
use roomcast_bots::{Bot, BotConfig, MessageCursor};
use roomcast_protocol::{ServerMessage, TrackKind};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const ROOMCAST: &str = env!("CARGO_BIN_EXE_roomcast");
/// For a `roomcast bots` run: joining, the media it checks, leaving.
const BOTS_LIMIT: Duration = Duration::from_secs(120);

/// The namespace test adds addresses to this host and removes them when it ends. A server
/// started meanwhile announces them, and a client on this host may pair with one; when the
/// address goes, that pair goes, and the client's media connection fails (the server's
/// sends get "network unreachable"). That is what a vanishing interface does to any ICE
/// session, and browsers restart ICE for it; here it is one test changing another's host.
/// So every other test holds this shared while its server runs, and the namespace test holds
/// it exclusively.
static HOST_ADDRESSES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A `roomcast` server process, killed when dropped.
struct Server {
    child: Child,
    /// Shared hold on [`HOST_ADDRESSES`] (none for the test that changes them).
    _addresses: Option<tokio::sync::RwLockReadGuard<'static, ()>>,
    http_port: u16,
    udp_port: u16,
    /// Its log (JSON lines) so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// The last `n` lines of its log above debug level (joins, media connections lost,
    /// warnings), for a failure's message.
    fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().expect("log");
        let kept: Vec<&str> = log
            .iter()
            .map(String::as_str)
            .filter(|l| !l.contains("\"level\":\"DEBUG\"") && !l.contains("\"level\":\"TRACE\""))
            .collect();
        kept[kept.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A UDP port free on every address (IPv4 and IPv6).
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))
        .or_else(|_| UdpSocket::bind(("0.0.0.0", 0)))
        .expect("a free UDP port");
    socket.local_addr().expect("bound").port()
}

fn free_tcp_port(host: &str) -> u16 {
    let listener = TcpListener::bind((host, 0)).expect("a free TCP port");
    listener.local_addr().expect("bound").port()
}

/// Starts the binary with the README's media settings: only the ports are picked (free
/// ones), `http_host` is where HTTP listens (`0.0.0.0` as in the README, or `::` for
/// clients that come over IPv6).
async fn readme_server(http_host: &str) -> Server {
    let addresses = HOST_ADDRESSES.read().await;
    let mut server = readme_server_while_addresses_change(http_host).await;
    server._addresses = Some(addresses);
    server
}

/// [`readme_server`] for the test that holds [`HOST_ADDRESSES`] exclusively.
async fn readme_server_while_addresses_change(http_host: &str) -> Server {
    let http_port = free_tcp_port(http_host);
    let http_addr = SocketAddr::new(http_host.parse().expect("host"), http_port);
    let udp_port = free_udp_port();
    let mut child = Command::new(ROOMCAST)
        .args(["--http-addr", &http_addr.to_string()])
        .args(["--udp-port", &udp_port.to_string()])
        .args(["--log-format", "json"])
        .env_remove("RUST_LOG")
        .env_remove("ROOMCAST_UDP_IP")
        .env_remove("ROOMCAST_PUBLIC_IP")
        .env_remove("ROOMCAST_NO_LOOPBACK_CANDIDATE")
        .env_remove("ROOMCAST_JWT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("roomcast starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("stdout readable") {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "roomcast listening" {
                return;
            }
        }
        panic!("the server exited before it listened");
    })
    .await
    .expect("the server starts in time");
    // Keep draining the log so the server never blocks on a full pipe.
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().expect("log").push(line);
        }
    });
    Server {
        child,
        _addresses: None,
        http_port,
        udp_port,
        log,
    }
}

/// `GET path` on the server's HTTP port.
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .expect("writes");
    let mut body = String::new();
    s.read_to_string(&mut body).await.expect("reads");
    body
}

/// The value of `sample` (a name with its labels) in `/metrics`.
async fn metric(port: u16, sample: &str) -> u64 {
    let metrics = http_get(port, "/metrics").await;
    let prefix = format!("{sample} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
}

/// `roomcast_udp_dropped_total{reason="…"}` from `/metrics`.
async fn dropped(port: u16, reason: &str) -> u64 {
    metric(
        port,
        &format!("roomcast_udp_dropped_total{{reason=\"{reason}\"}}"),
    )
    .await
}

/// `roomcast_ice_checks_total{direction="…"}` from `/metrics`.
async fn ice_checks(port: u16, direction: &str) -> u64 {
    metric(
        port,
        &format!("roomcast_ice_checks_total{{direction=\"{direction}\"}}"),
    )
    .await
}

/// The server's media counters from `/metrics` that say where a missing track stopped:
/// RTP in from publishers, out to subscribers, and what was dropped by reason (non-zero
/// ones only), on one line.
async fn media_counters(port: u16) -> String {
    let metrics = http_get(port, "/metrics").await;
    let wanted = [
        "roomcast_packets_in_total",
        "roomcast_packets_out_total",
        "roomcast_dropped_packets_total",
        "roomcast_udp_dropped_total",
    ];
    metrics
        .lines()
        .filter(|l| wanted.iter().any(|w| l.starts_with(w)))
        .filter(|l| !l.ends_with(" 0"))
        .map(|l| l.trim_start_matches("roomcast_"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs `roomcast bots` (optionally inside the network namespace `netns`) and returns
/// what it printed; it exits 0 only if every subscriber got every track.
async fn run_bots(netns: Option<&str>, url: &str, room: &str, args: &[&str]) -> Output {
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, ROOMCAST]);
            c
        }
        None => Command::new(ROOMCAST),
    };
    command
        .args(["bots", "--url", url, "--room", room, "--quiet"])
        .args(args)
        .env("RUST_LOG", "error")
        .kill_on_drop(true);
    tokio::time::timeout(BOTS_LIMIT, command.output())
        .await
        .expect("the bots finish in time")
        .expect("roomcast bots runs")
}

/// Fails with the bots' report, their errors, the server's media counters and its log (its
/// info and warnings: joins, media connections lost) if any track is missing.
async fn assert_every_track_arrived(what: &str, out: &Output, server: &Server) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && stdout.contains("result: ok") {
        return;
    }
    panic!(
        "{what}: {}\n{}\n{}\nserver counters: {}\nserver log:\n{}",
        out.status,
        tail(&stdout, 30),
        tail(&stderr, 30),
        media_counters(server.http_port).await,
        server.log_tail(60)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_defaults_give_every_bot_every_track() {
    let server = readme_server("0.0.0.0").await;
    let url = format!("ws://127.0.0.1:{}/ws", server.http_port);
    let out = run_bots(
        None,
        &url,
        "readme",
        &[
            "--publishers",
            "2",
            "--subscribers",
            "8",
            "--duration",
            "4s",
        ],
    )
    .await;
    assert_every_track_arrived("2 publishers, 8 subscribers over IPv4", &out, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_over_ipv6_get_every_track() {
    if UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
        // No IPv6 here: the server announces none (the socket test checks that).
        return;
    }
    let server = readme_server("::").await;
    let url = format!("ws://[::1]:{}/ws", server.http_port);
    let out = run_bots(
        None,
        &url,
        "six",
        &[
            "--publishers",
            "1",
            "--subscribers",
            "3",
            "--duration",
            "3s",
        ],
    )
    .await;
    assert_every_track_arrived("bots on ::1", &out, &server).await;
}

/// The non-loopback addresses among the ICE candidates in `text` (SDP or a trickled
/// `candidate:` value).
fn non_loopback_candidates(text: &str) -> Vec<std::net::IpAddr> {
    text.lines()
        .filter_map(|l| l.trim().trim_start_matches("a=").strip_prefix("candidate:"))
        .filter_map(|c| {
            c.split_whitespace()
                .nth(4)?
                .parse::<std::net::IpAddr>()
                .ok()
        })
        .filter(|ip| !ip.is_loopback())
        .collect()
}

/// The addresses of the remote candidates `bot`'s ICE agent knows.
async fn remote_candidates(bot: &Bot) -> Vec<String> {
    let stats = bot.peer_connection().get_stats().await;
    stats
        .reports
        .values()
        .filter_map(|r| match r {
            webrtc::stats::StatsReportType::RemoteCandidate(c) => Some(c.ip.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_pair_only_with_the_loopback_address_of_a_server_on_their_machine() {
    let server = readme_server("0.0.0.0").await;
    let url = format!("ws://127.0.0.1:{}/ws", server.http_port);
    let bot = Bot::join(BotConfig::new(url, "loopback", "bot"))
        .await
        .expect("the bot joins");
    // Every candidate the server gathered has been sent once it says gathering is over.
    let end = |m: &ServerMessage| matches!(m, ServerMessage::Candidate { candidate: None });
    bot.wait_for_message_after(MessageCursor::START, end, Duration::from_secs(20))
        .await
        .expect("the server finishes gathering");
    let announced: Vec<std::net::IpAddr> = bot
        .messages()
        .iter()
        .flat_map(|m| match m {
            ServerMessage::Offer { sdp } | ServerMessage::Answer { sdp } => {
                non_loopback_candidates(sdp)
            }
            ServerMessage::Candidate { candidate: Some(c) } => {
                non_loopback_candidates(&c.candidate)
            }
            _ => Vec::new(),
        })
        .collect();
    if announced.is_empty() {
        // A host with loopback only: nothing else to pair with.
        return;
    }
    // The bot's session applies the candidates it was sent one after the other, and
    // webrtc-rs has no event for it: look until its agent has one (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut remote = remote_candidates(&bot).await;
    while remote.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        remote = remote_candidates(&bot).await;
    }
    assert!(
        !remote.is_empty(),
        "the bot's agent has no remote candidate"
    );
    // A pair on any other address breaks when that address goes away (a namespace or
    // container interface removed by something else on the host): a whole publisher's
    // tracks were lost that way. The bot's ICE agent must not even know them.
    assert!(
        remote.iter().all(|ip| ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())),
        "the bot's agent knows {remote:?} (the server announced {announced:?} besides loopback)"
    );
    bot.leave().await.expect("the bot leaves");
}

/// The server is an ICE-lite agent. Once a connection's pair has succeeded, a client's
/// consent checks (RFC 7675; webrtc-rs sends one every 2 s) are answered and nothing more:
/// webrtc-ice checked back on each, twice the STUN per connection for the whole call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_checks_are_answered_without_checking_back() {
    let server = readme_server("0.0.0.0").await;
    let url = format!("ws://127.0.0.1:{}/ws", server.http_port);
    let publisher = Bot::join(BotConfig::new(url.clone(), "consent", "publisher"))
        .await
        .expect("the publisher joins");
    let viewer = Bot::join(BotConfig::new(url, "consent", "viewer"))
        .await
        .expect("the viewer joins");
    let from = publisher.participant_id().to_owned();
    viewer
        .wait_for_media(
            |t| t.iter().any(|x| x.publisher_id == from && x.packets > 20),
            Duration::from_secs(20),
        )
        .await
        .expect("the viewer receives the publisher's media");
    let received = ice_checks(server.http_port, "received").await;
    let sent = ice_checks(server.http_port, "sent").await;
    // Four more checks: two consent rounds of both bots. Polled (bounded): there is no
    // event for a counter.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ice_checks(server.http_port, "received").await < received + 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bots' consent checks stopped at {} (from {received})",
            ice_checks(server.http_port, "received").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ice_checks(server.http_port, "sent").await,
        sent,
        "the server checked back on consent checks"
    );
    viewer.leave().await.expect("the viewer leaves");
    publisher.leave().await.expect("the publisher leaves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_and_a_bot_exchange_media_with_the_readme_defaults() {
    let server = readme_server("0.0.0.0").await;
    let bot = Bot::join(BotConfig::new(
        format!("ws://127.0.0.1:{}/ws", server.http_port),
        "browser",
        "bot",
    ))
    .await
    .expect("the bot joins");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/interop.mjs");
    let url = format!("http://localhost:{}", server.http_port);
    let args = [
        "--url",
        &url,
        "--room",
        "browser",
        "--name",
        "Chromium",
        "--expect-remote",
        bot.participant_id(),
        "--timeout-ms",
        "40000",
        "--hold-ms",
        "3000",
    ];
    let (result, stderr) = run_script(script, &args, Duration::from_secs(90)).await;
    assert_eq!(
        result["ok"],
        true,
        "browser side: {result}\n{}\nserver log:\n{}",
        tail(&stderr, 30),
        server.log_tail(60)
    );
    let browser = result["participant_id"].as_str().expect("participant id");
    bot.wait_for_media(
        |t| {
            let from = |kind| {
                t.iter()
                    .any(|x| x.publisher_id == browser && x.kind == kind && x.packets > 20)
            };
            from(TrackKind::Audio) && from(TrackKind::Video)
        },
        Duration::from_secs(20),
    )
    .await
    .expect("the bot receives the browser's audio and video");
    bot.leave().await.expect("the bot leaves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_datagrams_are_counted_by_reason_and_never_logged() {
    let server = readme_server("0.0.0.0").await;
    let to = (Ipv4Addr::LOCALHOST, server.udp_port);
    let stranger = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds");
    let mut unknown_ufrag = vec![0, 1, 0, 12, 0x21, 0x12, 0xA4, 0x42];
    unknown_ufrag.extend_from_slice(&[7; 12]);
    unknown_ufrag.extend_from_slice(&[0, 6, 0, 8]);
    unknown_ufrag.extend_from_slice(b"nobody:x");
    let kinds: [(&str, Vec<u8>); 4] = [
        ("not_webrtc", vec![0xFF; 200]),
        (
            "malformed_stun",
            vec![0, 1, 0, 40, 0x21, 0x12, 0xA4, 0x42, 1, 2],
        ),
        ("unknown_ufrag", unknown_ufrag),
        ("unknown_remote", {
            let mut rtp = vec![0x80, 96];
            rtp.resize(1200, 0xAB);
            rtp
        }),
    ];
    const PER_KIND: u64 = 1000;
    const BURST: u64 = 100;
    let logged_before = server.log.lock().expect("log").len();
    for (reason, datagram) in &kinds {
        // In bursts the socket's buffer holds, each waited for: every datagram must be
        // counted, none lost before the server read it.
        for burst in 1..=PER_KIND / BURST {
            for _ in 0..BURST {
                stranger.send_to(datagram, to).expect("sends");
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while dropped(server.http_port, reason).await < burst * BURST {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{reason} not counted"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert_eq!(
            dropped(server.http_port, reason).await,
            PER_KIND,
            "{reason}"
        );
    }
    let log = server.log.lock().expect("log");
    // The binary's own start-up lines (target `roomcast`) may land after the first
    // datagrams; anything from the media path may not.
    let new_lines: Vec<&String> = log[logged_before..]
        .iter()
        .filter(|l| !l.contains("\"target\":\"roomcast\""))
        .collect();
    assert!(
        new_lines.is_empty(),
        "{} log lines for {} junk datagrams, e.g. {:?}",
        new_lines.len(),
        PER_KIND * kinds.len() as u64,
        new_lines.first()
    );
}

/// A network namespace joined to this one by a veth pair, removed on drop (with the pair).
///
/// This side has two addresses per family on the link: `primary` (10.213.N.1,
/// fd52:N::1) and `second` (10.214.N.1, fd53:N::1). The namespace has one address
/// (10.213.N.2, fd52:N::2) and a route to the second subnets only. So its clients reach
/// the server only through the second addresses, while the kernel's choice of source for
/// anything sent back to them is the primary one.
struct Namespace {
    name: String,
    /// This side's end of the veth pair, which holds the addresses.
    host: String,
    n: u8,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` runs (iproute2; tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "ip {}: {} (the namespace test runs as root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Namespace {
    fn create() -> Namespace {
        let pid = std::process::id();
        let used = std::process::Command::new("ip")
            .args(["-o", "addr"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .expect("`ip` runs (iproute2; tests/run.sh installs it)");
        let n = (0..250)
            .map(|i| ((pid as usize + i) % 250 + 1) as u8)
            .find(|n| !used.contains(&format!("10.214.{n}.")))
            .expect("a free subnet");
        let (host, inside) = (format!("rcu{pid}h"), format!("rcu{pid}n"));
        let ns = Namespace {
            name: format!("rcudp{pid}"),
            host: host.clone(),
            n,
        };
        let name = ns.name.as_str();
        ip(&["netns", "add", name]);
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", &inside,
        ]);
        ip(&["link", "set", &inside, "netns", name]);
        for addr in [format!("10.213.{n}.1/30"), format!("10.214.{n}.1/24")] {
            ip(&["addr", "add", &addr, "dev", &host]);
        }
        for addr in [format!("fd52:{n}::1/64"), format!("fd53:{n}::1/64")] {
            ip(&["-6", "addr", "add", &addr, "dev", &host, "nodad"]);
        }
        ip(&["link", "set", &host, "up"]);
        let inner = |args: &[&str]| {
            let mut all = vec!["-n", name];
            all.extend_from_slice(args);
            ip(&all);
        };
        inner(&["link", "set", "lo", "up"]);
        inner(&["addr", "add", &format!("10.213.{n}.2/32"), "dev", &inside]);
        inner(&[
            "-6",
            "addr",
            "add",
            &format!("fd52:{n}::2/128"),
            "dev",
            &inside,
            "nodad",
        ]);
        inner(&["link", "set", &inside, "up"]);
        inner(&["route", "add", &format!("10.214.{n}.0/24"), "dev", &inside]);
        inner(&[
            "-6",
            "route",
            "add",
            &format!("fd53:{n}::/64"),
            "dev",
            &inside,
        ]);
        ns
    }
}

impl Drop for Namespace {
    /// Deletes this side's end of the pair first: that removes its addresses at once.
    /// Deleting the namespace alone leaves the pair to the kernel's namespace cleanup,
    /// which runs asynchronously, so the addresses could outlive the exclusive hold on
    /// [`HOST_ADDRESSES`] and the next test's server would announce them.
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_second_address_get_every_track() {
    let _alone = HOST_ADDRESSES.write().await;
    let ns = Namespace::create();
    // HTTP on both families, for the IPv6 run; media as the README has it.
    let server = readme_server_while_addresses_change("::").await;
    let n = ns.n;
    let port = server.http_port;
    let v4 = format!("ws://10.214.{n}.1:{port}/ws");
    let out = run_bots(
        Some(&ns.name),
        &v4,
        "netns4",
        &[
            "--publishers",
            "1",
            "--subscribers",
            "2",
            "--duration",
            "3s",
        ],
    )
    .await;
    assert_every_track_arrived("bots reaching 10.214.N.1 from a namespace", &out, &server).await;
    let v6 = format!("ws://[fd53:{n}::1]:{port}/ws");
    let out = run_bots(
        Some(&ns.name),
        &v6,
        "netns6",
        &[
            "--publishers",
            "1",
            "--subscribers",
            "2",
            "--duration",
            "3s",
        ],
    )
    .await;
    assert_every_track_arrived("bots reaching fd53:N::1 from a namespace", &out, &server).await;
}
