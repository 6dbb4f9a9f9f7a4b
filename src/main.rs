//! `roomcast`: run the SFU (the default), or one of its tools.
use std::io::IsTerminal;

use clap::{Parser, Subcommand};
use roomcast::config::{LogFormat, ServeArgs, TokenArgs};
use roomcast::loadtest::{self, progress::LogWriter, BotsArgs};
use roomcast::{RunningServer, SERVE_LOG_FILTER};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "roomcast",
    version,
    about = "A WebRTC Selective Forwarding Unit for meetings, webinars and load tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

// Parsed once at start: the size of `Serve` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server (what `roomcast` with no subcommand does).
    Serve(ServeArgs),
    /// Load-test a running server with headless bots and report what they receive
    /// (exit status 0: all joined and every track arrived, 1: not, 2: usage error).
    Bots(BotsArgs),
    /// Print a join token (an HS256 JWT) for a server run with `--jwt-secret`
    /// (exit status 2: usage error).
    Token(TokenArgs),
}

/// Logs filtered by `RUST_LOG`, or `default_filter` without it.
fn init_logs<W>(format: LogFormat, default_filter: &str, ansi: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        Some(Command::Bots(args)) => {
            let ansi = std::io::stderr().is_terminal();
            init_logs(
                LogFormat::Text,
                loadtest::DEFAULT_LOG_FILTER,
                ansi,
                LogWriter,
            );
            let status = loadtest::run(args).await;
            std::process::exit(status);
        }
        Some(Command::Token(args)) => match args.mint(roomcast_sfu::auth::unix_now()) {
            Ok(token) => {
                println!("{token}");
                return Ok(());
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        },
        None => cli.serve,
    };
    let ansi = std::io::stdout().is_terminal();
    init_logs(args.log_format, SERVE_LOG_FILTER, ansi, std::io::stdout);
    // Listen for the signals before anything starts, so none is missed.
    let mut signals = Signals::new()?;
    let server = RunningServer::start(&args).await?;
    if args.jwt_secret.is_some() {
        tracing::info!("joins need a token signed with --jwt-secret");
    } else {
        tracing::warn!(
            "no --jwt-secret: the server is open, anyone who can reach it may join any room \
             under any name and role"
        );
    }
    let signal = tokio::select! {
        signal = signals.recv() => signal,
        _ = server.drain_requested() => "drain request",
    };
    // A cluster node drains first (SIGINT stops at once); a second signal cuts it short.
    if server.cluster.is_some() && signal != "SIGINT" {
        tracing::info!(signal, "draining");
        tokio::select! {
            _ = server.drain() => {}
            signal = signals.recv() => tracing::info!(signal, "drain cut short"),
        }
    }
    tracing::info!(signal, "shutting down");
    // The hard deadline: whatever hangs, the process is gone 5 s after the signal.
    std::thread::spawn(|| {
        std::thread::sleep(HARD_DEADLINE);
        eprintln!("roomcast: shutdown did not finish in {HARD_DEADLINE:?}; exiting anyway");
        std::process::exit(1);
    });
    // A second signal quits at once.
    tokio::spawn(async move {
        let signal = signals.recv().await;
        eprintln!("roomcast: {signal} again; exiting now");
        std::process::exit(1);
    });
    server.shutdown().await;
    tracing::info!("stopped");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Exit here rather than wait for the runtime to drop tasks that may still be winding down.
    std::process::exit(0);
}

/// After SIGTERM or SIGINT, the server has this long to stop before the process exits
/// regardless.
const HARD_DEADLINE: std::time::Duration = std::time::Duration::from_millis(4_900);

/// SIGTERM and SIGINT (Ctrl-C), registered up front.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {})
    }

    /// Waits for the next signal and names it.
    #[cfg(unix)]
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
