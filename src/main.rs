//! `roomcast`: run the SFU (the default), or one of its tools.
use clap::{Parser, Subcommand};
use roomcast::config::{LogFormat, ServeArgs};
use roomcast::RunningServer;
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

#[derive(Subcommand)]
enum Command {
    /// Run the server (what `roomcast` with no subcommand does).
    Serve(ServeArgs),
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "info,webrtc=warn,webrtc_ice=warn,webrtc_dtls=warn,webrtc_srtp=error,interceptor=warn",
        )
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
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
        None => cli.serve,
    };
    init_logs(args.log_format);
    let server = RunningServer::start(&args).await?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn terminate() {
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await
}
