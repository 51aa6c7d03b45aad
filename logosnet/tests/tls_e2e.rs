//! End to end over TLS: the real `logosnet_server` serving one room on a
//! plaintext and a TLS port, the real `logosnet_client` on either, with a
//! CA and certificate made for each test (devcerts). Covers the room shared
//! across both ports, the one-line failures (wrong CA, each mismatch) and a
//! handshake that never finishes. The binary is the server here because
//! its TLS options — the two ports, the certificate and key files — are
//! what is under test; the peers are `testkit`'s.

mod client_harness;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use client_harness::Client;
use devcerts::{KeyKind, TempSet};
use logosnet::protocol::{joined, left, private_line, public_line};
use support::Server;
use testkit::Peer;

/// A server on 127.0.0.1 with a plaintext and a TLS port, and the files.
struct TlsServer {
    server: Server,
    plain: SocketAddr,
    tls: SocketAddr,
    set: TempSet,
}

fn tls_server(extra: &[&str]) -> TlsServer {
    let set = TempSet::local(KeyKind::EcdsaP256).expect("make certificates");
    let (cert, key) = (path(&set.paths.cert), path(&set.paths.key));
    let mut args = vec!["--ip", "127.0.0.1", "--port", "0", "--tls-port", "0"];
    args.extend(["--tls-cert", &cert, "--tls-key", &key]);
    args.extend_from_slice(extra);
    let (server, addrs) = Server::start_listening(&args, 2);
    TlsServer {
        server,
        plain: addrs[0],
        tls: addrs[1],
        set,
    }
}

fn path(p: &std::path::Path) -> String {
    p.to_str().expect("UTF-8 temp path").to_owned()
}

impl TlsServer {
    fn ca(&self) -> String {
        path(&self.set.paths.ca)
    }

    /// A client at the TLS port reached as `host`, trusting the test's CA.
    fn tls_client(&self, label: &str, host: &str, extra: &[&str]) -> Client {
        let (port, ca) = (self.tls.port().to_string(), self.ca());
        let mut args = vec!["--ip", host, "--port", &port, "--tls-ca", &ca];
        args.extend_from_slice(extra);
        Client::spawn(label, &args)
    }
}

#[test]
fn tls_and_plaintext_clients_share_one_room() {
    let room = tls_server(&[]);
    // Over TLS, by IP address (checked against the certificate's IP SAN).
    let observer = room.tls_client("observer", "127.0.0.1", &["--observe"]);
    assert_eq!(
        observer.next_error_line(),
        format!("Connected to 127.0.0.1:{} over TLS", room.tls.port())
    );
    assert_eq!(
        observer.next_error_line(),
        "Observing the room until the server closes or Ctrl-C/SIGTERM/SIGHUP"
    );
    assert_eq!(observer.expect_roster(), "Nobody else is in the room");
    // Over TLS, by host name (checked against its DNS SAN).
    let mut alice = room.tls_client("alice", "localhost", &[]);
    assert_eq!(
        alice.next_error_line(),
        format!("Connected to localhost:{} over TLS", room.tls.port())
    );
    alice.send("alice");
    alice.expect_shown(joined("alice"));
    assert_eq!(alice.expect_roster(), "In the room: 1 observer");
    observer.expect_shown(joined("alice"));
    // Over plaintext, the same room.
    let mut bob = Client::join("bob", room.plain.port());
    alice.expect_shown(joined("bob"));
    observer.expect_shown(joined("bob"));

    alice.send("hello from TLS");
    bob.expect_shown(public_line("alice", "hello from TLS"));
    observer.expect_shown(public_line("alice", "hello from TLS"));
    bob.send("hello in plaintext");
    alice.expect_shown(public_line("bob", "hello in plaintext"));
    observer.expect_shown(public_line("bob", "hello in plaintext"));
    bob.send("@alice just you");
    alice.expect_shown(private_line("bob", "@alice just you"));

    alice.send("exit()");
    assert_eq!(alice.wait().code(), Some(0));
    bob.expect_shown(left("alice"));
    observer.expect_shown(left("alice"));
    bob.send("exit()");
    assert_eq!(bob.wait().code(), Some(0));
    observer.expect_shown(left("bob"));
    drop(room.server);
}

/// Runs a client that must fail at once: its exit status and every line it
/// printed on stderr.
fn failing(mut client: Client) -> (Option<i32>, Vec<String>) {
    let status = client.wait().code();
    (status, client.rest_of_stderr())
}

#[test]
fn a_certificate_from_another_ca_is_one_line_and_exit_1() {
    let room = tls_server(&[]);
    let other = TempSet::local(KeyKind::EcdsaP256).unwrap();
    let stranger = devcerts::Ca::new("Someone else's CA", KeyKind::EcdsaP256).unwrap();
    let stranger_file = other.dir().join("stranger.pem");
    std::fs::write(&stranger_file, stranger.cert_pem()).unwrap();
    let port = room.tls.port();
    for (ca, reason) in [
        (
            path(&stranger_file),
            "its certificate is not signed by a trusted CA",
        ),
        // The same CA name with other keys: a set made again.
        (
            path(&other.paths.ca),
            "its certificate's signature does not verify with the trusted CA of that name \
             (an older or another CA file?)",
        ),
    ] {
        let port_text = port.to_string();
        let client = Client::spawn(
            "client",
            &["--ip", "127.0.0.1", "--port", &port_text, "--tls-ca", &ca],
        );
        assert_eq!(
            failing(client),
            (
                Some(1),
                vec![format!(
                    "Cannot verify the server at 127.0.0.1:{port}: {reason}"
                )]
            )
        );
    }
    // The system's roots do not know the test's CA either.
    let client = Client::start("client", port, &["--tls"]);
    let (status, lines) = failing(client);
    assert_eq!(status, Some(1));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("Cannot verify the server at 127.0.0.1:{port}: "))
            || lines[0].starts_with("Cannot set up TLS: no trusted root certificates"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mismatch_says_what_happened_and_costs_the_room_nothing() {
    let room = tls_server(&[]);
    let mut watcher = Peer::observer(room.plain, "watcher").await;

    let plaintext_at_tls = Client::start("plain", room.tls.port(), &[]);
    assert_eq!(
        failing(plaintext_at_tls),
        (
            Some(1),
            vec![format!(
                "127.0.0.1:{} speaks TLS: add --tls (or --tls-ca FILE for a private CA)",
                room.tls.port()
            )]
        )
    );
    let tls_at_plaintext = Client::start("tls", room.plain.port(), &["--tls-ca", &room.ca()]);
    assert_eq!(
        failing(tls_at_plaintext),
        (
            Some(1),
            vec![format!(
                "127.0.0.1:{} is not a TLS server (it answered without TLS; \
                 for a plaintext port leave out --tls)",
                room.plain.port()
            )]
        )
    );
    // Neither reached the room: the next thing the watcher sees is this.
    let _carol = Peer::participant(room.plain, "carol").await;
    watcher.expect(joined("carol")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_finishes_is_closed_at_the_hello_timeout() {
    let hello_timeout = Duration::from_millis(500);
    let room = tls_server(&["--hello-timeout", "0.5"]);
    let mut watcher = Peer::observer(room.plain, "watcher").await;
    let started = Instant::now();
    let mut stalled = TcpStream::connect(room.tls).expect("connect");
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The first bytes of a ClientHello record, then nothing.
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let mut buf = [0u8; 64];
    let closed = match stalled.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(n) => panic!("the server sent {:02x?} to a stalled handshake", &buf[..n]),
    };
    assert!(closed, "the stalled connection was not closed");
    assert!(
        started.elapsed() >= hello_timeout,
        "closed after {:?}, before the Hello timeout",
        started.elapsed()
    );
    // The room never saw it, and still serves.
    let _dave = Peer::participant(room.plain, "dave").await;
    watcher.expect(joined("dave")).await;
}

/// A TLS connection to `addr` as `localhost`, trusting only the CA in
/// `ca`.
async fn tls_connect(
    addr: SocketAddr,
    ca: &std::path::Path,
) -> std::io::Result<logosnet::tls::ClientTlsStream<tokio::net::TcpStream>> {
    use logosnet::tls::{self, TlsConnector, Trust};
    let config = tls::client_config(&Trust::CaFile(ca.to_owned())).expect("client TLS");
    let name = tls::server_name("localhost").expect("a server name");
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    TlsConnector::from(config).connect(name, tcp).await
}

/// The binary's SIGHUP: the files are replaced, the signal sent, and the
/// new pair serves the next handshake while a member from before stays;
/// a broken pair on a second SIGHUP keeps the pair in service. The
/// metrics say each reload's outcome (read until they do: the signal is
/// handled on its own time, so the wait is bounded, not timed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_nobody_in_the_room_notices() {
    let files = TempSet::local(KeyKind::EcdsaP256).expect("make certificates");
    let new = TempSet::local(KeyKind::EcdsaP256).expect("make certificates");
    let (cert, key) = (path(&files.paths.cert), path(&files.paths.key));
    let args = [
        "--ip",
        "127.0.0.1",
        "--tls-port",
        "0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--metrics",
        "127.0.0.1:0",
    ];
    let (mut server, addrs) = Server::start_listening(&args, 2);
    let (tls, metrics) = (addrs[0], addrs[1]);
    let old_ca = files.paths.ca.clone();
    let stream = tls_connect(tls, &old_ca).await.expect("the first pair");
    let mut alice = Peer::new("alice", stream);
    alice.join("alice").await;
    assert!(tls_connect(tls, &new.paths.ca).await.is_err());

    std::fs::copy(&new.paths.cert, &files.paths.cert).expect("replace the certificate");
    std::fs::copy(&new.paths.key, &files.paths.key).expect("replace the key");
    hang_up(&server);
    reloads_reach(metrics, "ok", 1).await;
    let stream = tls_connect(tls, &new.paths.ca).await.expect("the new pair");
    let mut bob = Peer::new("bob", stream);
    bob.join("bob").await;
    alice.expect(joined("bob")).await;
    alice.chat("still here").await;
    bob.expect(public_line("alice", "still here")).await;

    // A key that is not the certificate's: the new pair stays.
    std::fs::copy(&files.paths.key, files.dir().join("new-key.pem")).expect("keep the key");
    std::fs::copy(&old_ca, &files.paths.key).expect("break the key");
    hang_up(&server);
    reloads_reach(metrics, "failed", 1).await;
    let stream = tls_connect(tls, &new.paths.ca)
        .await
        .expect("the pair in service");
    let mut carol = Peer::new("carol", stream);
    carol.join("carol").await;
    bob.expect(joined("carol")).await;
    // SIGHUP did not stop the server; SIGTERM still does, cleanly.
    assert!(server.signal_and_wait("TERM").success());
}

fn hang_up(server: &Server) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Scrapes until `logosnet_certificate_reloads_total{result}` is `count`,
/// for at most `support::WAIT`.
async fn reloads_reach(metrics: SocketAddr, result: &str, count: u64) {
    let deadline = Instant::now() + support::WAIT;
    loop {
        let figures = testkit::metrics::scrape(metrics).await;
        let now = figures.count("logosnet_certificate_reloads_total", &[("result", result)]);
        if now == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "reloads {result}: {now}, not {count}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
