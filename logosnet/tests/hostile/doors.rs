//! The doors on the real binary, from many loopback addresses
//! (127.0.x.y, which Linux routes to the machine without setup, with
//! `--limit-loopback` so each counts as a source of its own):
//! - 130 addresses × 16 silent sockets hold every place in the socket
//!   table, and an honest client from another address still joins and
//!   chats; the sockets closed to make room are the oldest, told why;
//! - a TLS handshake churn from one address beside a resident member:
//!   every handshake completes or is refused, the churn is slowed by the
//!   connection rate, and the member's lines all arrive. How long they
//!   take is printed, never asserted; [`handshake_churn_figures`] is the
//!   `#[ignore]`d long version whose figures are in BENCHMARKS.md.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use devcerts::{KeyKind, TempSet};
use logosnet::protocol::{
    Role, closed_to_make_room_before_hello, joined, private_line, public_line,
};
use logosnet::server::{MAX_CONNECTIONS, MAX_NEW_PER_ADDRESS, MAX_PER_ADDRESS};
use logosnet::tls::{self, TlsConnector, Trust};
use testkit::Peer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::server_process::{ServerProcess, bounded, raise_fd_limit};
use crate::support::Server;

/// Addresses that hold the table: 130 × 16 = 2,080 sockets, more than the
/// 2,048 places (the attack).
const HOLDERS: u8 = 130;

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.into(), 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The `n`th holder's address: 127.0.1.1, 127.0.1.2, …
fn holder(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, n + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_addresses_holding_every_socket_cannot_keep_an_honest_client_out() {
    raise_fd_limit();
    let server = ServerProcess::start(&["--limit-loopback"]);
    let addr = server.addr;
    bounded(Duration::from_secs(300), async {
        let watcher = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr).await;
        let mut watcher = Peer::new("watcher", watcher.expect("connect the watcher"));
        watcher.hello(Role::Observer).await;
        // Every address at its per-address limit, each socket silent.
        let mut held = Vec::new();
        for n in 0..HOLDERS {
            for _ in 0..MAX_PER_ADDRESS {
                let stream = connect_from(holder(n), addr)
                    .await
                    .expect("connect a holder");
                held.push(Peer::new(&format!("holder{n}"), stream));
            }
        }
        let mut ends = JoinSet::new();
        for (age, mut socket) in held.into_iter().enumerate() {
            ends.spawn(async move { (age, socket.until_closed().await) });
        }
        // The honest client, from an address of its own.
        let started = Instant::now();
        let honest = connect_from(Ipv4Addr::new(127, 0, 0, 3), addr).await;
        let mut honest = Peer::new("honest", honest.expect("connect the honest client"));
        honest.join("honest").await;
        let joined_after = started.elapsed();
        honest.chat("made it").await;
        watcher.expect(joined("honest")).await;
        watcher.expect(public_line("honest", "made it")).await;
        println!(
            "{} sockets from {HOLDERS} addresses held the table; the honest client \
             joined {joined_after:?} after connecting",
            HOLDERS as usize * MAX_PER_ADDRESS
        );
        // Each socket past the table made room by closing the oldest
        // silent one: the watcher, 2,080 holders and the honest client are
        // 2,082 sockets for 2,048 places, so the 34 oldest holders went,
        // each told why.
        let made_room = 1 + HOLDERS as usize * MAX_PER_ADDRESS + 1 - MAX_CONNECTIONS;
        let mut closed = Vec::new();
        for _ in 0..made_room {
            let (age, frames) = ends
                .join_next()
                .await
                .expect("a holder")
                .expect("holder task");
            assert_eq!(frames, [closed_to_make_room_before_hello()], "holder {age}");
            closed.push(age);
        }
        closed.sort_unstable();
        assert_eq!(closed, (0..made_room).collect::<Vec<_>>(), "not the oldest");
        assert_eq!(ends.len(), HOLDERS as usize * MAX_PER_ADDRESS - made_room);
        ends.abort_all();
    })
    .await;
}

/// What a churn run saw.
#[derive(Debug, Default)]
struct Churn {
    /// Handshakes that completed.
    completed: u64,
    /// Connections the server closed before the handshake completed.
    refused: u64,
    /// How long the churn ran.
    took: Duration,
}

/// A server with a TLS port (and the certificates), its TLS address, and a
/// client configuration that trusts it.
struct TlsRoom {
    _server: Server,
    tls: SocketAddr,
    connector: TlsConnector,
    _set: Option<TempSet>,
}

/// Starts the binary on a TLS port with `extra` options. The certificate
/// is devcerts' ECDSA P-256 one, unless `LOGOSNET_CHURN_CERTS` names a
/// directory with `cert.pem`, `key.pem` and `ca.pem` (an RSA-2048 set made
/// with openssl, say, as the measurement used).
fn tls_room(extra: &[&str]) -> TlsRoom {
    let (set, dir) = match std::env::var_os("LOGOSNET_CHURN_CERTS") {
        Some(dir) => (None, std::path::PathBuf::from(dir)),
        None => {
            let set = TempSet::local(KeyKind::EcdsaP256).expect("make certificates");
            let dir = set.dir().to_owned();
            (Some(set), dir)
        }
    };
    let (cert, key, ca) = match &set {
        Some(set) => (
            set.paths.cert.clone(),
            set.paths.key.clone(),
            set.paths.ca.clone(),
        ),
        None => (
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("ca.pem"),
        ),
    };
    let (cert_arg, key_arg) = (
        cert.to_str().expect("UTF-8 path").to_owned(),
        key.to_str().expect("UTF-8 path").to_owned(),
    );
    let mut args = vec!["--ip", "127.0.0.1", "--tls-port", "0"];
    args.extend(["--tls-cert", &cert_arg, "--tls-key", &key_arg]);
    args.extend_from_slice(extra);
    let (server, addrs) = Server::start_listening(&args, 1);
    let client = tls::client_config(&Trust::CaFile(ca)).expect("client TLS config");
    TlsRoom {
        _server: server,
        tls: addrs[0],
        connector: TlsConnector::from(client),
        _set: set,
    }
}

impl TlsRoom {
    /// A TLS session from `from`, handshake done.
    async fn connect(
        &self,
        from: Ipv4Addr,
    ) -> std::io::Result<impl AsyncRead + AsyncWrite + Unpin + Send + 'static> {
        let tcp = connect_from(from, self.tls).await?;
        let name = tls::server_name("127.0.0.1").map_err(std::io::Error::other)?;
        self.connector.connect(name, tcp).await
    }

    /// `tasks` loops from `from`, each connecting, shaking hands and
    /// closing, until `attempts` attempts are made or `stop` is set; every
    /// attempt must complete or be refused (the server closed it before
    /// the handshake finished).
    async fn churn(
        self: &Arc<Self>,
        from: Ipv4Addr,
        tasks: usize,
        attempts: u64,
        stop: Arc<AtomicBool>,
    ) -> Churn {
        let started = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut loops = JoinSet::new();
        for _ in 0..tasks {
            let (room, next, stop) = (self.clone(), next.clone(), stop.clone());
            loops.spawn(async move {
                let mut seen = Churn::default();
                while next.fetch_add(1, Ordering::Relaxed) < attempts
                    && !stop.load(Ordering::Relaxed)
                {
                    match room.connect(from).await {
                        Ok(session) => {
                            seen.completed += 1;
                            drop(session);
                        }
                        Err(e) => {
                            use std::io::ErrorKind::*;
                            assert!(
                                matches!(
                                    e.kind(),
                                    UnexpectedEof
                                        | ConnectionReset
                                        | ConnectionAborted
                                        | BrokenPipe
                                ),
                                "a handshake neither completed nor was refused: {e}"
                            );
                            seen.refused += 1;
                        }
                    }
                }
                seen
            });
        }
        let mut all = Churn::default();
        while let Some(seen) = loops.join_next().await {
            let seen = seen.expect("churn task");
            all.completed += seen.completed;
            all.refused += seen.refused;
        }
        all.took = started.elapsed();
        all
    }
}

/// A resident member over TLS that sends itself private lines and times
/// each one's way through the room.
struct Resident<S> {
    peer: Peer<S>,
    sent: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Resident<S> {
    async fn new(stream: S) -> Self {
        let mut peer = Peer::new("resident", stream);
        peer.join("resident").await;
        Self { peer, sent: 0 }
    }

    /// One line to itself; its round trip. The line must be the next
    /// frame, exactly.
    async fn round_trip(&mut self) -> Duration {
        self.sent += 1;
        let line = format!("@resident ping {}", self.sent);
        let started = Instant::now();
        self.peer.chat(&line).await;
        let got = self.peer.recv().await;
        assert_eq!(got, private_line("resident", &line), "the resident's line");
        started.elapsed()
    }

    /// Round trips every `gap` until `stop` is set (at least `min` of them).
    async fn sample(&mut self, gap: Duration, min: usize, stop: &AtomicBool) -> Vec<Duration> {
        let mut trips = Vec::new();
        while trips.len() < min || !stop.load(Ordering::Relaxed) {
            trips.push(self.round_trip().await);
            tokio::time::sleep(gap).await;
        }
        trips
    }
}

/// Median, 99th percentile and maximum, for printing.
fn summary(mut trips: Vec<Duration>) -> String {
    trips.sort_unstable();
    let at = |q: f64| trips[((trips.len() - 1) as f64 * q).round() as usize];
    format!(
        "{} round trips: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        trips.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3
    )
}

const RESIDENT: Ipv4Addr = Ipv4Addr::new(127, 0, 2, 1);
const CHURNER: Ipv4Addr = Ipv4Addr::new(127, 0, 2, 2);

/// A bounded churn of 120 TLS connects from one address beside a resident
/// member, at the default connection rate: every handshake completes or is
/// refused, no more complete than the rate allows in the time the churn
/// took, and every one of the resident's lines arrives, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_churn_is_slowed_and_the_resident_member_is_served() {
    let room = Arc::new(tls_room(&["--limit-loopback", "--flood-rate", "0"]));
    bounded(Duration::from_secs(120), async {
        let session = room
            .connect(RESIDENT)
            .await
            .expect("the resident's handshake");
        let mut resident = Resident::new(session).await;
        let stop = Arc::new(AtomicBool::new(false));
        let churn = {
            let (room, stop) = (room.clone(), stop.clone());
            tokio::spawn(async move { room.churn(CHURNER, 4, 120, stop).await })
        };
        let trips = resident
            .sample(Duration::from_millis(5), 40, &AtomicBool::new(true))
            .await;
        let seen = churn.await.expect("churn");
        stop.store(true, Ordering::Relaxed);
        println!(
            "churn: {} handshakes completed, {} refused in {:?}; resident: {}",
            seen.completed,
            seen.refused,
            seen.took,
            summary(trips)
        );
        assert_eq!(seen.completed + seen.refused, 120);
        // The burst, plus one token per 18.75 s of churn, plus one for the
        // token that may have come back as it ended.
        let refills = seen.took.as_secs_f64() / 18.75;
        let allowed = u64::from(MAX_NEW_PER_ADDRESS) + refills as u64 + 1;
        assert!(
            seen.completed >= 1 && seen.completed <= allowed,
            "{} handshakes completed; the rate allows {allowed}",
            seen.completed
        );
        assert!(seen.refused > 0, "the churn was never slowed");
        // The room is still whole: a line after the churn arrives too.
        resident.round_trip().await;
    })
    .await;
}

/// The long version, for the figures: the resident's round trips at rest,
/// then during a full-speed churn of `LOGOSNET_CHURN_SECS` seconds (default
/// 10) from `LOGOSNET_CHURN_TASKS` loops (default 2), with the connection
/// rate off (`--max-new-per-ip 0`: every handshake is done) and then at its
/// default. The resident runs on a thread and runtime of its own, so the
/// churning client's own TLS work does not queue ahead of it in this
/// process (the machine's cores are still shared). Run it in release mode:
/// `cargo test --release -p logosnet --test hostile handshake_churn_figures -- --ignored --nocapture`.
#[ignore = "a real-time measurement: run by hand, figures in BENCHMARKS.md"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_churn_figures() {
    let secs: u64 = std::env::var("LOGOSNET_CHURN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let tasks: usize = std::env::var("LOGOSNET_CHURN_TASKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    for (label, rate) in [("rate off", "0"), ("default rate", "32")] {
        let room = Arc::new(tls_room(&[
            "--limit-loopback",
            "--flood-rate",
            "0",
            "--max-per-ip",
            "0",
            "--max-new-per-ip",
            rate,
        ]));
        let stop = Arc::new(AtomicBool::new(false));
        let (rested, at_rest) = std::sync::mpsc::channel();
        let resident = {
            let (room, stop) = (room.clone(), stop.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the resident's runtime");
                runtime.block_on(async {
                    let session = room
                        .connect(RESIDENT)
                        .await
                        .expect("the resident's handshake");
                    let mut resident = Resident::new(session).await;
                    let gap = Duration::from_millis(10);
                    let trips = resident.sample(gap, 300, &AtomicBool::new(true)).await;
                    rested.send(trips).expect("report the trips at rest");
                    resident.sample(gap, 1, &stop).await
                })
            })
        };
        let at_rest = tokio::task::spawn_blocking(move || at_rest.recv())
            .await
            .expect("wait for the resident")
            .expect("the trips at rest");
        let churn = {
            let (room, stop) = (room.clone(), stop.clone());
            tokio::spawn(async move { room.churn(CHURNER, tasks, u64::MAX, stop).await })
        };
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let seen = churn.await.expect("churn");
        let during = tokio::task::spawn_blocking(move || resident.join())
            .await
            .expect("wait for the resident")
            .expect("the resident's thread");
        let per_sec = |n: u64| n as f64 / seen.took.as_secs_f64();
        println!("--- {label}, {tasks} churn loops for {secs} s ---");
        println!("at rest:      {}", summary(at_rest));
        println!("during churn: {}", summary(during));
        println!(
            "churn: {} handshakes completed ({:.0}/s), {} refused ({:.0}/s)",
            seen.completed,
            per_sec(seen.completed),
            seen.refused,
            per_sec(seen.refused)
        );
    }
}
