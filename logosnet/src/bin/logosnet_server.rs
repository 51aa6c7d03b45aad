//! `logosnet_server`: the command line ([`logosnet::cli::server`]),
//! logging (text or JSON), the listening sockets (plaintext, TLS or both),
//! the metrics listener and signals around [`logosnet::server::serve`]:
//! SIGINT and SIGTERM stop the server, SIGHUP reloads the certificate.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use logosnet::cli::server::{LogFormat, ServerArgs};
use logosnet::cli::{self};
use logosnet::server::json_log::JsonWithPeer;
use logosnet::server::metrics::serve_metrics;
use logosnet::server::{self, Both, Metrics, Peers, ServerCertificate, TlsListener};
use tokio::net::TcpListener;

fn main() -> ExitCode {
    let args = match cli::parse::<ServerArgs, _, _>("logosnet_server", std::env::args_os()) {
        Ok(args) => args,
        Err(stop) => return stop.exit(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let peers = match args.log_format {
        LogFormat::Text => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_env_filter(filter)
                .init();
            None
        }
        LogFormat::Json => {
            let peers = Arc::new(Peers::default());
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_env_filter(filter)
                .fmt_fields(JsonWithPeer::fields())
                .event_format(JsonWithPeer::new(peers.clone()))
                .init();
            Some(peers)
        }
    };
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
    // TLS handshakes, and scrapes of the metrics, run on a runtime of their
    // own, so that their CPU never delays the room's event loop (see
    // `server::TlsListener`, `server::metrics`).
    let handshakes = match args.tls().is_some() || args.metrics.is_some() {
        true => match side_runtime() {
            Ok(handshakes) => Some(handshakes),
            Err(e) => {
                eprintln!("logosnet_server: cannot start the TLS handshake runtime: {e}");
                return ExitCode::FAILURE;
            }
        },
        false => None,
    };
    let handle = handshakes.as_ref().map(|rt| rt.handle().clone());
    let result = runtime.block_on(run(args, handle, peers));
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

/// Threads that run TLS handshakes and scrapes: one. A core's worth of handshakes is
/// about a thousand a second with an RSA-2048 key (several times that
/// with ECDSA), more than the whole room (510) reconnecting at once needs,
/// and it leaves the room's thread a core of its own on a two-core machine.
const HANDSHAKE_THREADS: usize = 1;

/// The runtime TLS handshakes and metrics scrapes run on:
/// [`HANDSHAKE_THREADS`] workers, a timer (for the handshake deadline) and
/// an I/O driver (for the metrics listener; TLS sockets stay registered
/// with the room's runtime, which only relays their readiness while they
/// shake hands).
fn side_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HANDSHAKE_THREADS)
        .thread_name("tls-and-metrics")
        .enable_all()
        .build()
}

async fn run(
    args: ServerArgs,
    side: Option<tokio::runtime::Handle>,
    peers: Option<Arc<Peers>>,
) -> Result<(), String> {
    raise_open_file_limit();
    // Certificates first: a bad file stops the server before it listens.
    let tls = match args.tls() {
        Some(tls) => {
            let config =
                logosnet::tls::server_config(tls.cert, tls.key).map_err(|e| e.to_string())?;
            let reload = Reload {
                certificate: Arc::new(ServerCertificate::new(config)),
                cert: tls.cert.to_owned(),
                key: tls.key.to_owned(),
            };
            Some((tls.port, reload))
        }
        None => None,
    };
    let mut config = args.config();
    config.peers = peers;
    let metrics = match (args.metrics, &side) {
        (Some(addr), Some(side)) => {
            let metrics = Arc::new(Metrics::new());
            let listener = bind_metrics(addr, side).await?;
            config.metrics = Some(metrics.clone());
            Some((metrics, listener))
        }
        _ => None,
    };
    let plain = match args.port {
        Some(port) => Some(bind(&args.ip, port).await?),
        None => None,
    };
    let secure = match tls {
        Some((port, reload)) => Some((bind(&args.ip, port).await?, reload)),
        None => None,
    };
    // Signals before the announcement: whoever reads `listening on` may
    // stop the server at once, or send SIGHUP (whose default would end the
    // process).
    let stop = shutdown_signal();
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| format!("cannot listen for SIGHUP: {e}"))?;
    // The plaintext line first: scripts and tests read the first line.
    if let Some(listener) = &plain {
        announce(listener, "")?;
    }
    if let Some((listener, _)) = &secure {
        announce(listener, " (tls)")?;
    }
    // The metrics line last, so the chat lines keep their places.
    let metrics = match (metrics, &side) {
        (Some((metrics, listener)), Some(side)) => {
            announce(&listener, " (metrics)")?;
            side.spawn(serve_metrics(
                listener,
                metrics.clone(),
                std::future::pending(),
            ));
            Some(metrics)
        }
        _ => None,
    };
    // The handshake is part of the time a new connection has to say Hello,
    // and has a deadline of its own besides.
    let handshake_timeout = config.room.hello_timeout.min(server::TLS_HANDSHAKE_TIMEOUT);
    let tls_listener = |listener, reload: &Reload| {
        let mut secure =
            TlsListener::serving(listener, reload.certificate.clone(), handshake_timeout);
        if let Some(metrics) = &metrics {
            secure = secure.counted_in(metrics.clone());
        }
        match side.clone() {
            Some(runtime) => secure.on_runtime(runtime),
            None => secure,
        }
    };
    let reload = secure.as_ref().map(|(_, reload)| reload.clone());
    tokio::spawn(reload_on_hangup(hangups, reload, metrics.clone()));
    match (plain, secure) {
        (Some(plain), Some((secure, reload))) => {
            let secure = tls_listener(secure, &reload);
            server::serve(Both::new(plain, secure), config, stop).await;
        }
        (Some(plain), None) => server::serve(plain, config, stop).await,
        (None, Some((secure, reload))) => {
            let secure = tls_listener(secure, &reload);
            server::serve(secure, config, stop).await;
        }
        (None, None) => return Err("nothing to listen on: give --port or --tls-port".into()),
    }
    Ok(())
}

/// The certificate in service and the files it is read again from.
#[derive(Clone)]
struct Reload {
    certificate: Arc<ServerCertificate>,
    cert: PathBuf,
    key: PathBuf,
}

/// On every SIGHUP, reads the certificate and key again (see
/// [`server::certificate::reload`]); nothing else changes. Without TLS
/// there is nothing to reload, and SIGHUP is only logged.
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    reload: Option<Reload>,
    metrics: Option<Arc<Metrics>>,
) {
    while hangups.recv().await.is_some() {
        let Some(reload) = &reload else {
            tracing::info!("SIGHUP: no TLS certificate to reload");
            continue;
        };
        server::certificate::reload(
            &reload.certificate,
            &reload.cert,
            &reload.key,
            metrics.as_deref(),
        );
    }
}

/// Binds `--metrics` on the side runtime, whose I/O driver then serves it.
async fn bind_metrics(
    addr: SocketAddr,
    side: &tokio::runtime::Handle,
) -> Result<TcpListener, String> {
    let listener = side
        .spawn(TcpListener::bind(addr))
        .await
        .map_err(|e| format!("cannot start the metrics listener: {e}"))?
        .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    Ok(listener)
}

/// Prints `listening on ADDR:PORT` (with `suffix`) for a bound listener.
fn announce(listener: &TcpListener, suffix: &str) -> Result<(), String> {
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    println!("listening on {addr}{suffix}");
    tracing::info!(
        %addr,
        tls = suffix == " (tls)",
        metrics = suffix == " (metrics)",
        "listening"
    );
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
