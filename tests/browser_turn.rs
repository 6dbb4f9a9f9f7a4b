//! The relay path, for real: Debian's coturn (`turnserver`) on loopback with a shared secret
//! (`--use-auth-secret`), roomcast with the same `--turn-secret` handing out TURN URLs, and a
//! Chromium participant forced to `iceTransportPolicy: "relay"` (`tests/browser/turn.mjs`).
//! Its selected candidate pair must be relayed by coturn, over UDP and then over TCP, and
//! media must flow both ways: the page plays a bot's camera and the bot receives the page's
//! audio and video. Needs what `tests/run.sh` installs (Chromium, coturn).
mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::browser::{assert_no_failures, failed_steps, report, run_script, tail};
use common::*;
use roomcast::{RunningServer, ServeArgs};
use roomcast_bots::BotConfig;
use tokio::process::{Child, Command};

const SECRET: &str = "turn-secret-shared-with-coturn-0123456789";

/// coturn on 127.0.0.1, relaying on loopback too (where roomcast listens).
struct Coturn {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Coturn {
    async fn start(secret: &str) -> Coturn {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("roomcast-coturn-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for coturn");
        let child = Command::new("turnserver")
            .args(["-n", "--no-cli", "--simple-log", "--verbose"])
            .arg(format!("--log-file={}", dir.join("turn.log").display()))
            .args(["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg(format!("--listening-port={port}"))
            .args(["--min-port=49200", "--max-port=49400"])
            .args(["--no-tls", "--no-dtls", "--allow-loopback-peers"])
            .args(["--use-auth-secret", "--realm=roomcast.test"])
            .arg(format!("--static-auth-secret={secret}"))
            .arg(format!("--db={}", dir.join("turndb").display()))
            .arg(format!("--pidfile={}", dir.join("pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("turnserver runs (is coturn installed? tests/browser/setup.sh installs it)");
        let deadline = tokio::time::Instant::now() + MESSAGE_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "coturn did not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Coturn { child, port, dir }
    }

    /// Stops coturn: what it logged.
    async fn stop(mut self) -> String {
        let _ = self.child.kill().await;
        let log = std::fs::read_to_string(self.dir.join("turn.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&self.dir);
        log
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One relayed call over `transport`: the page's checks, then the bot's.
async fn relayed_call(coturn: &Coturn, transport: &str) {
    init_logs();
    let server = RunningServer::start(&ServeArgs {
        ice_urls: vec![format!(
            "turn:127.0.0.1:{}?transport={transport}",
            coturn.port
        )],
        turn_secret: Some(SECRET.into()),
        ..ServeArgs::local_ephemeral()
    })
    .await
    .expect("server starts");
    let room = format!("relay-{transport}");
    let bot = join_with(BotConfig::new(server.ws_url(), &room, "bot")).await;
    let url = format!("http://localhost:{}", server.http_addr.port());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/turn.mjs");
    let args = [
        "--url",
        url.as_str(),
        "--room",
        room.as_str(),
        "--expect-remote",
        bot.participant_id(),
        "--transport",
        transport,
    ];
    let (result, stderr) = run_script(script, &args, Duration::from_secs(90)).await;
    report(&format!("relay over {transport}"), &result);
    let failures = failed_steps(&result, &["relay"]);
    assert_no_failures(
        &format!("TURN over {transport}"),
        &failures,
        &result,
        &stderr,
    );

    // The page's own media reached the bot through the relay too.
    let page = result["steps"]["relay"]["participant_id"]
        .as_str()
        .expect("the page's participant id")
        .to_owned();
    bot.wait_for_media(
        |t| has_audio_from(t, &page, 20) && packets_from(t, &page) > 100,
        MEDIA_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("the bot got nothing from the relayed page: {e}"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_forced_to_relay_talks_through_coturn_with_minted_credentials() {
    let coturn = Coturn::start(SECRET).await;
    relayed_call(&coturn, "udp").await;
    relayed_call(&coturn, "tcp").await;
    let log = coturn.stop().await;
    // coturn checked the HMAC of the minted username and allocated relays with it.
    let allocated = log
        .lines()
        .filter(|l| l.contains("ALLOCATE processed, success"))
        .count();
    assert!(
        allocated >= 2,
        "coturn allocated {allocated} relays:\n{}",
        tail(&log, 40)
    );
}
