use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use devcerts::{KeyKind, TempSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::codec;
use crate::protocol::{ClientFrame, Role};
use crate::tls::{self, TlsConnector, Trust, is_tls_record_header};

const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);

/// The frame's bytes; every frame these tests encode fits.
fn encode(message: &ClientFrame) -> bytes::Bytes {
    codec::encode(message).expect("a frame within the limit")
}

struct Fixture {
    /// The server's side, with the test certificate.
    acceptor: TlsAcceptor,
    /// A client's side, trusting the test CA.
    connector: TlsConnector,
    /// The certificate files, kept until the test ends.
    _set: TempSet,
}

fn fixture() -> Fixture {
    let set = TempSet::local(KeyKind::EcdsaP256).expect("make certificates");
    let server = tls::server_config(&set.paths.cert, &set.paths.key).unwrap();
    let client = tls::client_config(&Trust::CaFile(set.paths.ca.clone())).unwrap();
    Fixture {
        acceptor: TlsAcceptor::from(server),
        connector: TlsConnector::from(client),
        _set: set,
    }
}

/// How the fixture's server does handshakes: on the current runtime, at
/// most `slots` at once, each within `timeout`.
fn handshakes(fixture: &Fixture, timeout: Duration, slots: usize) -> Handshakes {
    Handshakes {
        certificate: Arc::new(crate::server::ServerCertificate::new(
            fixture.acceptor.config().clone(),
        )),
        metrics: None,
        runtime: None,
        slots: Arc::new(tokio::sync::Semaphore::new(slots)),
        timeout,
    }
}

/// A server side over an in-memory pipe whose handshake must end within
/// `timeout`, and the client's end of the pipe.
fn over_pipe(fixture: &Fixture, timeout: Duration) -> (TlsOnAccept<DuplexStream>, DuplexStream) {
    over_pipe_with(handshakes(fixture, timeout, MAX_HANDSHAKES))
}

fn over_pipe_with(handshakes: Handshakes) -> (TlsOnAccept<DuplexStream>, DuplexStream) {
    let (server, client) = tokio::io::duplex(64 * 1024);
    let deadline = Instant::now() + handshakes.timeout;
    let stream = TlsOnAccept::new(server, handshakes, deadline, PEER);
    (stream, client)
}

/// The bytes of a real ClientHello, as a client sends them first.
fn client_hello(fixture: &Fixture) -> Vec<u8> {
    let config = tls::client_config(&Trust::CaFile(fixture._set.paths.ca.clone())).unwrap();
    let name = tls::server_name("localhost").unwrap();
    let mut client = tls::rustls::ClientConnection::new(config, name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    hello
}

/// A client that shakes hands over `pipe` and writes `ping`.
async fn shake_hands(connector: TlsConnector, pipe: DuplexStream) -> io::Result<()> {
    let name = tls::server_name("localhost").unwrap();
    let mut secure = connector.connect(name, pipe).await?;
    secure.write_all(b"ping").await?;
    secure.flush().await?;
    // Keep the session open until the server has read.
    let _ = secure.read(&mut [0u8; 1]).await;
    Ok(())
}

#[tokio::test]
async fn accept_returns_at_once_and_the_handshake_runs_on_first_read() {
    let fixture = fixture();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let mut listener = TlsListener::new(tcp, fixture.acceptor.clone(), Duration::from_secs(60));
    // The client connects but has not said a TLS word yet: accept must not
    // wait for it.
    let raw = TcpStream::connect(addr).await.unwrap();
    let (mut accepted, _) = listener.accept().await.unwrap();
    assert!(!accepted.is_established());
    assert!(accepted.is_fresh(), "accepting did no TLS work");
    assert!(!TlsListener::<TcpListener>::is_plaintext(&accepted));
    let connector = fixture.connector.clone();
    let client = tokio::spawn(async move {
        let name = tls::server_name("localhost").unwrap();
        let mut secure = connector.connect(name, raw).await.unwrap();
        secure
            .write_all(&encode(&ClientFrame::Hello(Role::Observer)))
            .await
            .unwrap();
        secure
    });
    let mut header = [0u8; 4];
    accepted.read_exact(&mut header).await.unwrap();
    assert!(accepted.is_established());
    let hello = encode(&ClientFrame::Hello(Role::Observer));
    assert_eq!(header, hello[..4]);
    drop(client.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_handshake_not_finished_by_the_deadline_is_a_timed_out_read() {
    let fixture = fixture();
    let timeout = Duration::from_secs(60);
    let (mut stream, mut client) = over_pipe(&fixture, timeout);
    let started = Instant::now();
    // Half a ClientHello record header, then silence.
    client.write_all(&[0x16, 0x03]).await.unwrap();
    let error = stream.read(&mut [0u8; 16]).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    assert_eq!(started.elapsed(), timeout);
    // The socket is closed: the peer reads the end of the stream.
    assert_eq!(client.read(&mut [0u8; 16]).await.unwrap(), 0);
    // Writing fails too, without waiting.
    assert!(stream.write(b"late").await.is_err());
}

#[tokio::test]
async fn a_plaintext_peer_gets_an_alert_and_the_server_a_read_error() {
    let fixture = fixture();
    let (mut stream, mut client) = over_pipe(&fixture, Duration::from_secs(60));
    client
        .write_all(&encode(&ClientFrame::Hello(Role::Participant)))
        .await
        .unwrap();
    let error = stream.read(&mut [0u8; 16]).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    let mut header = [0u8; 4];
    client.read_exact(&mut header).await.unwrap();
    assert!(is_tls_record_header(header), "{header:02x?}");
    // Afterwards the stream only waits for the peer to go: what it sends
    // is dropped, and its close is the end of the stream.
    client.write_all(b"more plaintext").await.unwrap();
    drop(client);
    assert_eq!(stream.read(&mut [0u8; 16]).await.unwrap(), 0);
}

#[tokio::test]
async fn shutting_down_before_the_handshake_just_closes_the_socket() {
    let fixture = fixture();
    let (mut stream, mut client) = over_pipe(&fixture, Duration::from_secs(60));
    stream.shutdown().await.unwrap();
    assert_eq!(client.read(&mut [0u8; 16]).await.unwrap(), 0);
    assert!(stream.read(&mut [0u8; 16]).await.is_err());
}

#[tokio::test]
async fn frames_flow_both_ways_once_established() {
    let fixture = fixture();
    let (mut stream, client) = over_pipe(&fixture, Duration::from_secs(60));
    let connector = fixture.connector.clone();
    let client = tokio::spawn(async move {
        let name = tls::server_name("127.0.0.1").unwrap();
        let mut secure = connector.connect(name, client).await.unwrap();
        secure.write_all(b"ping").await.unwrap();
        let mut answer = [0u8; 4];
        secure.read_exact(&mut answer).await.unwrap();
        secure.shutdown().await.unwrap();
        answer
    });
    let mut got = [0u8; 4];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping");
    // A batch of frames goes out in one write (one record), not one each.
    assert!(stream.is_write_vectored());
    let pieces = [io::IoSlice::new(b"po"), io::IoSlice::new(b"ng")];
    assert_eq!(stream.write_vectored(&pieces).await.unwrap(), 4);
    stream.flush().await.unwrap();
    assert_eq!(&client.await.unwrap(), b"pong");
    // The client's close_notify is a clean end of stream.
    assert_eq!(stream.read(&mut [0u8; 4]).await.unwrap(), 0);
}

/// A peer that connects and says nothing takes no handshake slot: with a
/// single slot, another client's handshake completes beside it.
#[tokio::test(start_paused = true)]
async fn waiting_for_a_client_hello_takes_no_slot() {
    let fixture = fixture();
    let timeout = Duration::from_secs(10);
    let shared = handshakes(&fixture, timeout, 1);
    let (mut silent, _silent_client) = over_pipe_with(shared.clone());
    let silent_deadline = Instant::now() + timeout;
    let mut scratch = [0u8; 4];
    // Start the silent one's handshake: it waits for a ClientHello.
    let _ = tokio::time::timeout(Duration::from_millis(1), silent.read(&mut scratch)).await;
    assert!(!silent.is_fresh(), "its handshake has started");
    let (mut honest, client) = over_pipe_with(shared);
    let started = Instant::now();
    let client = tokio::spawn(shake_hands(fixture.connector.clone(), client));
    honest.read_exact(&mut scratch).await.unwrap();
    assert_eq!(&scratch, b"ping");
    assert!(started.elapsed() < timeout, "it waited for the silent one");
    assert!(Instant::now() < silent_deadline);
    drop(honest);
    client.await.unwrap().unwrap();
}

/// Past the ClientHello a handshake holds a slot until it ends: with one
/// slot, a peer that sent its ClientHello and stalled keeps the next
/// handshake waiting until its deadline cuts it, and not a moment longer.
#[tokio::test(start_paused = true)]
async fn past_the_client_hello_a_handshake_waits_for_a_slot_in_order() {
    let fixture = fixture();
    let timeout = Duration::from_secs(10);
    let slots = handshakes(&fixture, timeout, 1);
    let (mut stalled, mut stalled_client) = over_pipe_with(slots.clone());
    stalled_client
        .write_all(&client_hello(&fixture))
        .await
        .unwrap();
    let stalled_deadline = Instant::now() + timeout;
    let stalled_read = tokio::spawn(async move { stalled.read(&mut [0u8; 4]).await });
    // Let it take the slot.
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Its own deadline is far off: only the slot holds it.
    let mut patient = slots;
    patient.timeout = Duration::from_secs(60);
    let (mut next, client) = over_pipe_with(patient);
    let client = tokio::spawn(shake_hands(fixture.connector.clone(), client));
    let mut scratch = [0u8; 4];
    next.read_exact(&mut scratch).await.unwrap();
    assert_eq!(&scratch, b"ping");
    assert!(
        Instant::now() >= stalled_deadline,
        "the second handshake got the only slot while the first held it"
    );
    let error = stalled_read.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    drop(next);
    client.await.unwrap().unwrap();
}

/// Given a runtime of its own, the handshake runs there: it completes while
/// the runtime the connection lives on is not running at all (its thread
/// blocked waiting for the client). Without `on_runtime` the same
/// handshake would be a task of the idle runtime, and never finish.
#[test]
fn a_handshake_runs_on_the_runtime_it_is_given() {
    let fixture = fixture();
    let handshake_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let room = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut config = handshakes(&fixture, Duration::from_secs(10), MAX_HANDSHAKES);
    config.runtime = Some(handshake_runtime.handle().clone());
    let (mut stream, client) = room.block_on(async { over_pipe_with(config) });
    // One poll, on the room's runtime, starts the handshake.
    room.block_on(async {
        let mut scratch = [0u8; 4];
        let first = std::future::poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut scratch);
            Poll::Ready(Pin::new(&mut stream).poll_read(cx, &mut buf).is_pending())
        })
        .await;
        assert!(first, "nothing to read before the handshake");
    });
    // Now only the client's thread and the handshake runtime run: the
    // room's runtime is not polled again until the client is done.
    let connector = fixture.connector.clone();
    let client = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let name = tls::server_name("localhost").unwrap();
            let connect = connector.connect(name, client);
            let secure = tokio::time::timeout(Duration::from_secs(5), connect).await;
            let mut secure = secure.expect("the handshake did not finish").unwrap();
            secure.write_all(b"ping").await.unwrap();
            secure.flush().await.unwrap();
            secure
        })
    });
    let secure = client.join().expect("the client shook hands");
    room.block_on(async {
        let mut got = [0u8; 4];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        assert!(stream.is_established());
    });
    drop((stream, secure));
}
