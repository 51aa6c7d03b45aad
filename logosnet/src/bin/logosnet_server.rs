//! `logosnet_server`: argument parsing, logging, the listening socket and
//! signals around [`logosnet::server::serve`].

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use logosnet::room::HELLO_TIMEOUT;
use logosnet::room::flood::{FLOOD_BURST, FLOOD_LINES_PER_SEC, FloodLimit, MAX_FLOOD_SETTING};
use logosnet::server::{self, MAX_QUEUED_TOTAL, ServerConfig, WRITE_DEADLINE, WRITE_GAP};
use tokio::net::TcpListener;

/// LogosNet Server, the server version for the primitive networked chat program
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// IP address
    #[arg(short, long, value_name = "i")]
    ip: String,
    /// port number
    #[arg(short, long, value_name = "p")]
    port: u16,
    /// Seconds a new connection has to send Hello before it is closed
    #[arg(long, value_name = "SECS", default_value_t = HELLO_TIMEOUT.as_secs_f64())]
    hello_timeout: f64,
    /// Milliseconds a busy connection waits between writes to batch frames (0: off)
    #[arg(long, value_name = "MS", default_value_t = WRITE_GAP.as_millis() as u64)]
    write_gap_ms: u64,
    /// Lines a second each sender may keep up after its burst (0: flood control off)
    #[arg(long, value_name = "LINES_PER_SEC", default_value_t = FLOOD_LINES_PER_SEC,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_FLOOD_SETTING)))]
    flood_rate: u32,
    /// Lines a sender may send at once before it is slowed
    #[arg(long, value_name = "LINES", default_value_t = FLOOD_BURST,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_FLOOD_SETTING)))]
    flood_burst: u32,
    /// Seconds a member may make no write progress (or hold the room paused) before it is dropped
    #[arg(long, value_name = "SECS", default_value_t = WRITE_DEADLINE.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    write_deadline: u64,
    /// Bytes all outgoing queues together may hold; reading pauses at half
    #[arg(long, value_name = "BYTES", default_value_t = MAX_QUEUED_TOTAL as u64,
          value_parser = clap::value_parser!(u64).range(1 << 20..=1 << 40))]
    max_queued_total: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("logosnet_server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("logosnet_server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if !(args.hello_timeout.is_finite() && args.hello_timeout > 0.0) {
        return Err(format!(
            "--hello-timeout must be a positive number of seconds, not {}",
            args.hello_timeout
        ));
    }
    raise_open_file_limit();
    let listener = bind(&args.ip, args.port).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    println!("listening on {addr}");
    tracing::info!(%addr, "listening");

    let mut config = ServerConfig::default();
    config.room.hello_timeout = Duration::from_secs_f64(args.hello_timeout);
    config.write_gap = Duration::from_millis(args.write_gap_ms);
    config.room.flood = FloodLimit::new(args.flood_rate, args.flood_burst);
    config.write_deadline = Duration::from_secs(args.write_deadline);
    config.max_queued_total = usize::try_from(args.max_queued_total).unwrap_or(usize::MAX);
    server::serve(listener, config, shutdown_signal()).await;
    Ok(())
}

/// Resolves `ip` (an address or a host name) and binds the first address
/// that works.
async fn bind(ip: &str, port: u16) -> Result<TcpListener, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((ip, port))
        .await
        .map_err(|e| format!("cannot resolve address {ip}: {e}"))?
        .collect();
    let mut last_error = format!("no address found for {ip}");
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = format!("cannot listen on {addr}: {e}"),
        }
    }
    Err(last_error)
}

/// 510 clients plus the listener and storms need more than the common
/// default soft limit of 1024 descriptors.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot listen for signals; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
