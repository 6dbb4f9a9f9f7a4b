//! Join tokens through the real WebSocket: a server with `--jwt-secret` refuses forged,
//! expired, too long-lived, wrong-room and escalated tokens with `unauthorized` (and nothing
//! else happens), refuses to start with a secret shorter than 32 bytes,
//! admits valid ones under the token's name and role, accepts what `roomcast token` prints,
//! and a server without a secret stays open.
mod common;

use std::process::Output;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomcast::{RunningServer, ServeArgs};
use roomcast_protocol::Role;
use roomcast_sfu::auth::{mint, unix_now};
use serde_json::{json, Value};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

const ROOMCAST: &str = env!("CARGO_BIN_EXE_roomcast");
const SECRET: &str = "integration-test-secret-0123456789abcdef";
const WRONG_SECRET: &str = "another-secret-of-enough-bytes-0123456789";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn start(secret: Option<&str>) -> RunningServer {
    let mut args = ServeArgs::local_ephemeral();
    args.jwt_secret = secret.map(str::to_owned);
    common::init_logs();
    RunningServer::start(&args).await.expect("server starts")
}

async fn connect(server: &RunningServer) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("websocket connects");
    socket
}

async fn send(socket: &mut Socket, msg: Value) {
    socket
        .send(Message::Text(msg.to_string().into()))
        .await
        .expect("sent");
}

/// The next JSON message, or `None` if nothing arrives within `wait`.
async fn next_within(socket: &mut Socket, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => break serde_json::from_str(&t).expect("JSON"),
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
    .ok()
}

async fn next(socket: &mut Socket) -> Value {
    next_within(socket, common::MESSAGE_TIMEOUT)
        .await
        .expect("a message in time")
}

/// The next message of type `kind`, skipping others (offers, candidates, ...).
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let msg = next(socket).await;
        if msg["type"] == kind {
            return msg;
        }
    }
}

fn join_msg(room: &str, name: &str, role: Option<&str>, token: Option<&str>) -> Value {
    let mut msg = json!({ "type": "join", "room": room, "name": name });
    if let Some(role) = role {
        msg["role"] = json!(role);
    }
    if let Some(token) = token {
        msg["token"] = json!(token);
    }
    msg
}

/// Sends `join` and expects `unauthorized` whose message contains `why`, and no `joined`.
async fn expect_unauthorized(socket: &mut Socket, join: Value, why: &str) {
    send(socket, join.clone()).await;
    let reply = next(socket).await;
    assert_eq!(reply["type"], "error", "for {join}: {reply}");
    assert_eq!(reply["code"], "unauthorized", "for {join}: {reply}");
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(why),
        "for {join}: {message:?} lacks {why:?}"
    );
    if let Some(more) = next_within(socket, Duration::from_millis(200)).await {
        panic!("after unauthorized for {join}: {more}");
    }
}

fn token(room: &str, name: &str, role: Role, ttl_secs: i64) -> String {
    let exp = (unix_now() as i64 + ttl_secs).max(0) as u64;
    mint(SECRET, room, name, role, exp).expect("minted")
}

async fn roomcast_token(args: &[&str], env_secret: Option<&str>) -> Output {
    let mut command = Command::new(ROOMCAST);
    command
        .arg("token")
        .args(args)
        .env_remove("ROOMCAST_JWT_SECRET")
        .kill_on_drop(true);
    if let Some(secret) = env_secret {
        command.env("ROOMCAST_JWT_SECRET", secret);
    }
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("roomcast token finishes")
        .expect("roomcast runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_unauthorized_and_nothing_else_happens() {
    let server = start(Some(SECRET)).await;
    // Someone already in the room must not hear of any refused join.
    let mut host = connect(&server).await;
    send(
        &mut host,
        join_msg(
            "auth",
            "x",
            None,
            Some(&token("auth", "Hana", Role::Host, 600)),
        ),
    )
    .await;
    next_of(&mut host, "joined").await;

    let mut mallory = connect(&server).await;
    expect_unauthorized(
        &mut mallory,
        join_msg("auth", "mallory", None, None),
        "missing token",
    )
    .await;
    expect_unauthorized(
        &mut mallory,
        join_msg("auth", "mallory", None, Some("")),
        "missing token",
    )
    .await;
    let forged = mint(
        "not-the-secret",
        "auth",
        "mallory",
        Role::Host,
        unix_now() + 600,
    )
    .unwrap();
    expect_unauthorized(
        &mut mallory,
        join_msg("auth", "mallory", None, Some(&forged)),
        "bad signature",
    )
    .await;
    let expired = token("auth", "mallory", Role::Presenter, -120);
    expect_unauthorized(
        &mut mallory,
        join_msg("auth", "mallory", None, Some(&expired)),
        "expired",
    )
    .await;
    // Beyond the server's --max-token-ttl (24 h by default).
    let forever = token("auth", "mallory", Role::Presenter, 2 * 24 * 3600);
    expect_unauthorized(
        &mut mallory,
        join_msg("auth", "mallory", None, Some(&forever)),
        "too long",
    )
    .await;
    let other_room = token("elsewhere", "mallory", Role::Host, 600);
    expect_unauthorized(
        &mut mallory,
        join_msg("auth", "mallory", None, Some(&other_room)),
        "wrong room",
    )
    .await;
    let audience = token("auth", "mallory", Role::Audience, 600);
    for asked in ["presenter", "host"] {
        expect_unauthorized(
            &mut mallory,
            join_msg("auth", "mallory", Some(asked), Some(&audience)),
            "role not granted",
        )
        .await;
    }
    let presenter = token("auth", "mallory", Role::Presenter, 600);
    expect_unauthorized(
        &mut mallory,
        join_msg("auth", "mallory", Some("host"), Some(&presenter)),
        "role not granted",
    )
    .await;
    // `alg: none` with the host's claims.
    let claims = presenter.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{claims}.");
    expect_unauthorized(
        &mut mallory,
        join_msg("auth", "mallory", None, Some(&none)),
        "only HS256",
    )
    .await;
    expect_unauthorized(
        &mut mallory,
        join_msg("auth", "mallory", None, Some("garbage")),
        "malformed token",
    )
    .await;

    // Nothing happened: nobody else was told, the room holds only the host.
    if let Some(msg) = next_within(&mut host, Duration::from_millis(300)).await {
        assert_ne!(msg["type"], "participant_joined", "{msg}");
    }
    assert_eq!(server.stats().participants, 1);
    assert!(server.sfu.room("elsewhere").is_none());

    // The connection stayed open: the same client retries with a valid token and gets in.
    send(
        &mut mallory,
        join_msg("auth", "mallory", None, Some(&presenter)),
    )
    .await;
    let joined = next_of(&mut mallory, "joined").await;
    assert_eq!(joined["room"], "auth");
    assert_eq!(server.stats().participants, 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_joins_with_its_name_and_role() {
    let server = start(Some(SECRET)).await;
    let mut ann = connect(&server).await;
    // The join's name and (lesser) role are overridden by the token's.
    send(
        &mut ann,
        join_msg(
            "meet",
            "impostor",
            Some("audience"),
            Some(&token("meet", "Ann", Role::Host, 600)),
        ),
    )
    .await;
    let joined = next_of(&mut ann, "joined").await;
    let ann_id = joined["participant_id"].as_str().expect("an id").to_owned();
    assert_eq!(joined["room"], "meet");
    assert_eq!(joined["participants"], json!([]));
    assert!(joined["ice_servers"].is_array());

    let mut bob = connect(&server).await;
    send(
        &mut bob,
        join_msg(
            "meet",
            "Bob",
            None,
            Some(&token("meet", "Robert", Role::Presenter, 600)),
        ),
    )
    .await;
    let joined = next_of(&mut bob, "joined").await;
    let bob_id = joined["participant_id"].as_str().expect("an id").to_owned();
    assert_eq!(
        joined["participants"],
        json!([{ "id": ann_id, "name": "Ann", "role": "host", "tracks": [] }]),
        "{joined}"
    );
    let announced = next_of(&mut ann, "participant_joined").await;
    assert_eq!(
        announced["participant"],
        json!({ "id": bob_id, "name": "Robert", "role": "presenter", "tracks": [] })
    );
    // Chat carries the token's name too.
    send(&mut bob, json!({ "type": "chat", "text": "hi" })).await;
    let chat = next_of(&mut ann, "chat").await;
    assert_eq!(chat["name"], "Robert");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roomcast_token_output_is_accepted() {
    let server = start(Some(SECRET)).await;
    let out = roomcast_token(
        &[
            "--room", "cli", "--name", "Cleo", "--role", "host", "--ttl", "1h", "--secret", SECRET,
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout:?}");
    let printed = stdout.trim_end();
    assert_eq!(printed.split('.').count(), 3, "{printed}");

    let mut cleo = connect(&server).await;
    send(
        &mut cleo,
        join_msg("cli", "whoever", Some("host"), Some(printed)),
    )
    .await;
    next_of(&mut cleo, "joined").await;

    // The secret may come from the environment; the role defaults to presenter.
    let out = roomcast_token(&["--room", "cli", "--name", "Dan"], Some(SECRET)).await;
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let mut dan = connect(&server).await;
    send(
        &mut dan,
        join_msg("cli", "Dan", None, Some(printed.trim_end())),
    )
    .await;
    let joined = next_of(&mut dan, "joined").await;
    assert_eq!(joined["participants"][0]["name"], "Cleo");
    let announced = next_of(&mut cleo, "participant_joined").await;
    assert_eq!(announced["participant"]["role"], "presenter");

    // A token from another secret is refused.
    let out = roomcast_token(
        &["--room", "cli", "--name", "Eve", "--secret", WRONG_SECRET],
        None,
    )
    .await;
    assert!(out.status.success());
    let mut eve = connect(&server).await;
    let forged = String::from_utf8(out.stdout).unwrap();
    expect_unauthorized(
        &mut eve,
        join_msg("cli", "Eve", None, Some(forged.trim_end())),
        "bad signature",
    )
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn roomcast_token_usage_errors_exit_2() {
    let cases: [&[&str]; 8] = [
        &["--room", "r", "--name", "n"],
        &["--room", "bad room", "--name", "n", "--secret", SECRET],
        &["--room", "r", "--name", "", "--secret", SECRET],
        &["--room", "r", "--name", "a\nb", "--secret", SECRET],
        &[
            "--room", "r", "--name", "n", "--secret", SECRET, "--role", "admin",
        ],
        &[
            "--room", "r", "--name", "n", "--secret", SECRET, "--ttl", "soon",
        ],
        &["--room", "r", "--name", "n", "--secret", ""],
        // Shorter than 32 bytes: guessable offline from any token.
        &["--room", "r", "--name", "n", "--secret", "short-secret"],
    ];
    for args in cases {
        let out = roomcast_token(args, None).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn the_server_refuses_to_start_with_a_short_secret() {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(ROOMCAST)
            .args(["--http-addr", "127.0.0.1:0", "--udp-port", "0"])
            .env("ROOMCAST_JWT_SECRET", "hunter2hunter2")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("roomcast exits")
    .expect("roomcast runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32"), "{stderr}");
    // In-process too.
    let mut args = ServeArgs::local_ephemeral();
    args.jwt_secret = Some("short".into());
    let refused = RunningServer::start(&args).await;
    assert!(refused.is_err(), "a short secret is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_the_server_is_open() {
    let server = start(None).await;
    let mut ann = connect(&server).await;
    send(&mut ann, join_msg("open", "Ann", Some("host"), None)).await;
    let joined = next_of(&mut ann, "joined").await;
    assert_eq!(joined["room"], "open");
    // A token is ignored, whatever it says.
    let mut bob = connect(&server).await;
    send(&mut bob, join_msg("open", "Bob", None, Some("not checked"))).await;
    let joined = next_of(&mut bob, "joined").await;
    assert_eq!(joined["participants"][0]["name"], "Ann");
    assert_eq!(joined["participants"][0]["role"], "host");
    let announced = next_of(&mut ann, "participant_joined").await;
    assert_eq!(announced["participant"]["name"], "Bob");
    assert_eq!(announced["participant"]["role"], "presenter");
    server.shutdown().await;
}

/// `roomcast bots --jwt-secret` mints the claims this server checks: its bots join and
/// their media flows; with the wrong secret they are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roomcast_bots_with_the_secret_join_and_with_another_do_not() {
    let server = start(Some(SECRET)).await;
    let url = server.ws_url();
    let run = |secret: &'static str| {
        let mut command = Command::new(ROOMCAST);
        command
            .args([
                "bots",
                "--url",
                &url,
                "--publishers",
                "1",
                "--subscribers",
                "1",
            ])
            .args(["--duration", "2s", "--timeout", "20s", "--quiet"])
            .args(["--jwt-secret", secret])
            .env_remove("RUST_LOG")
            .kill_on_drop(true);
        async move {
            tokio::time::timeout(Duration::from_secs(90), command.output())
                .await
                .expect("roomcast bots finishes")
                .expect("roomcast runs")
        }
    };
    let out = run(SECRET).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = run("wrong-secret").await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("unauthorized") || stderr.contains("unauthorized"),
        "{stdout}\n{stderr}"
    );
    server.shutdown().await;
}
