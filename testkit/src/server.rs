//! The real server in the test's own process, the way mini-redis's
//! `tests/server.rs` starts its own: bind `127.0.0.1:0`, spawn
//! [`serve`], hand back the address. No binary, no build, no port race;
//! the server's log goes to the test's captured output. [`spawn_server`]
//! serves plain TCP, [`spawn_tls_server`] TLS.
//!
//! Tests that need a process — an exit status, a signal, `--help`, memory
//! or descriptors read from `/proc` — start the binary instead (each suite's
//! `support` module, through Cargo's `CARGO_BIN_EXE_*`).

use std::net::SocketAddr;
use std::sync::{Arc, Once};

use logosnet::server::{Listener, ServerCertificate, ServerConfig, TlsListener, serve};
use logosnet::tls::TlsAcceptor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server started by [`spawn_server`]. Dropping it stops the server at
/// once, without the shutdown notice; [`ServerHandle::shut_down`] stops it
/// the way SIGTERM does.
#[derive(Debug)]
pub struct ServerHandle {
    /// Resolves `serve`'s shutdown future.
    stop: Option<oneshot::Sender<()>>,
    /// The task running `serve`.
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Tells every client the server is going away, flushes (within the
    /// configured grace) and waits for `serve` to return.
    pub async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("the server task panicked");
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts `serve` with `config` on `127.0.0.1` and a free port, on the
/// current tokio runtime; returns the address it listens on.
pub async fn spawn_server(config: ServerConfig) -> (SocketAddr, ServerHandle) {
    let (listener, addr) = bind_loopback().await;
    (addr, spawn_serving(listener, config))
}

/// [`spawn_server`] on a port the test chose: for a server that comes
/// back where a client already looks for it (a restart).
pub async fn spawn_server_at(addr: SocketAddr, config: ServerConfig) -> ServerHandle {
    capture_logs();
    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    spawn_serving(listener, config)
}

/// [`spawn_server`] serving TLS only, with `acceptor`'s certificate (make
/// one with `devcerts`): a [`TlsListener`] whose handshakes must end within
/// the Hello timeout, as the binary's `--tls-port` does.
pub async fn spawn_tls_server(
    config: ServerConfig,
    acceptor: TlsAcceptor,
) -> (SocketAddr, ServerHandle) {
    let (listener, addr) = bind_loopback().await;
    let handshake_timeout = config.room.hello_timeout;
    let secure = TlsListener::new(listener, acceptor, handshake_timeout);
    (addr, spawn_serving(secure, config))
}

/// [`spawn_tls_server`] with a certificate that may be replaced while it
/// serves (what the binary reloads on SIGHUP); handshakes are counted in
/// `config.metrics`, if any.
pub async fn spawn_tls_server_reloadable(
    config: ServerConfig,
    certificate: Arc<ServerCertificate>,
) -> (SocketAddr, ServerHandle) {
    let (listener, addr) = bind_loopback().await;
    let handshake_timeout = config.room.hello_timeout;
    let mut secure = TlsListener::serving(listener, certificate, handshake_timeout);
    if let Some(metrics) = &config.metrics {
        secure = secure.counted_in(metrics.clone());
    }
    (addr, spawn_serving(secure, config))
}

/// A listener on `127.0.0.1` and a free port, and its address.
async fn bind_loopback() -> (TcpListener, SocketAddr) {
    capture_logs();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the listener's address");
    (listener, addr)
}

/// Spawns `serve` on `listener` on the current runtime.
fn spawn_serving<L: Listener>(listener: L, config: ServerConfig) -> ServerHandle {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, config, async {
        let _ = stopped.await;
    }));
    ServerHandle {
        stop: Some(stop),
        task,
    }
}

/// [`ServerConfig::default`] with flood control off: for tests that send
/// faster than a person types and are not about flood control.
pub fn unthrottled() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.room.flood = None;
    config
}

/// Sends the server's warnings and errors (or what `RUST_LOG` asks for) to
/// the test harness's captured output, shown only when a test fails.
fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
