use std::net::SocketAddr;

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

/// A server side over an in-memory pipe whose handshake must end within
/// `timeout`, and the client's end of the pipe.
fn over_pipe(fixture: &Fixture, timeout: Duration) -> (TlsOnAccept<DuplexStream>, DuplexStream) {
    let (server, client) = tokio::io::duplex(64 * 1024);
    let handshake = fixture.acceptor.accept(server).into_fallible();
    let stream = TlsOnAccept::new(handshake, Instant::now() + timeout, PEER);
    (stream, client)
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
