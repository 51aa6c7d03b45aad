//! `logosnet_server`: the command line ([`logosnet::cli::server`]),
//! logging, the listening sockets (plaintext, TLS or both) and signals
//! around [`logosnet::server::serve`].

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use logosnet::cli::{self, server::ServerArgs};
use logosnet::server::{self, Both, TlsListener};
use logosnet::tls::TlsAcceptor;
use tokio::net::TcpListener;

fn main() -> ExitCode {
    let args = match cli::parse::<ServerArgs, _, _>("logosnet_server", std::env::args_os()) {
        Ok(args) => args,
        Err(stop) => return stop.exit(),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // One thread: the whole server is one event loop (the room task and every
    // connection's task on it). More: the connections' tasks spread over
    // that many workers, the room task on this thread.
    let mut builder = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(usize::from(args.threads));
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("logosnet_server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // TLS handshakes run on a runtime of their own, so that their CPU never
    // delays the room's event loop (see `server::TlsListener`).
    let handshakes = match args.tls() {
        Some(_) => match handshake_runtime() {
            Ok(handshakes) => Some(handshakes),
            Err(e) => {
                eprintln!("logosnet_server: cannot start the TLS handshake runtime: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let handle = handshakes.as_ref().map(|rt| rt.handle().clone());
    let result = runtime.block_on(run(args, handle));
    if let Some(handshakes) = handshakes {
        handshakes.shutdown_background();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("logosnet_server: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Threads that run TLS handshakes: one. A core's worth of handshakes is
/// about a thousand a second with an RSA-2048 key (several times that
/// with ECDSA), more than the whole room (510) reconnecting at once needs,
/// and it leaves the room's thread a core of its own on a two-core machine.
const HANDSHAKE_THREADS: usize = 1;

/// The runtime TLS handshakes run on: [`HANDSHAKE_THREADS`] workers and a
/// timer (for the handshake deadline). It needs no I/O driver of its own:
/// the sockets stay registered with the room's runtime, which only relays
/// their readiness while they shake hands.
fn handshake_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HANDSHAKE_THREADS)
        .thread_name("tls-handshake")
        .enable_time()
        .build()
}

async fn run(args: ServerArgs, handshakes: Option<tokio::runtime::Handle>) -> Result<(), String> {
    raise_open_file_limit();
    // Certificates first: a bad file stops the server before it listens.
    let tls = match args.tls() {
        Some(tls) => {
            let config =
                logosnet::tls::server_config(tls.cert, tls.key).map_err(|e| e.to_string())?;
            Some((tls.port, TlsAcceptor::from(config)))
        }
        None => None,
    };
    let plain = match args.port {
        Some(port) => Some(bind(&args.ip, port).await?),
        None => None,
    };
    let secure = match tls {
        Some((port, acceptor)) => Some((bind(&args.ip, port).await?, acceptor)),
        None => None,
    };
    // Signals before the announcement: whoever reads `listening on` may
    // stop the server at once.
    let stop = shutdown_signal();
    // The plaintext line first: scripts and tests read the first line.
    if let Some(listener) = &plain {
        announce(listener, "")?;
    }
    if let Some((listener, _)) = &secure {
        announce(listener, " (tls)")?;
    }
    let config = args.config();
    // The handshake is part of the time a new connection has to say Hello,
    // and has a deadline of its own besides.
    let handshake_timeout = config.room.hello_timeout.min(server::TLS_HANDSHAKE_TIMEOUT);
    let tls_listener = |listener, acceptor| {
        let secure = TlsListener::new(listener, acceptor, handshake_timeout);
        match handshakes.clone() {
            Some(runtime) => secure.on_runtime(runtime),
            None => secure,
        }
    };
    match (plain, secure) {
        (Some(plain), Some((secure, acceptor))) => {
            let secure = tls_listener(secure, acceptor);
            server::serve(Both::new(plain, secure), config, stop).await;
        }
        (Some(plain), None) => server::serve(plain, config, stop).await,
        (None, Some((secure, acceptor))) => {
            let secure = tls_listener(secure, acceptor);
            server::serve(secure, config, stop).await;
        }
        (None, None) => return Err("nothing to listen on: give --port or --tls-port".into()),
    }
    Ok(())
}

/// Prints `listening on ADDR:PORT` (with `suffix`) for a bound listener.
fn announce(listener: &TcpListener, suffix: &str) -> Result<(), String> {
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    println!("listening on {addr}{suffix}");
    tracing::info!(%addr, tls = !suffix.is_empty(), "listening");
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

/// Registers for SIGINT and SIGTERM at once (so a signal sent the moment
/// `listening on` is printed is already ours, not the default's death) and
/// returns the future that ends when one arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let registered = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = registered else {
            tracing::warn!("cannot listen for signals; stop with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
}
