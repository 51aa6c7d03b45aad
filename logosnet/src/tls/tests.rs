use std::fs;

use devcerts::{KeyKind, TempSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::codec;
use crate::protocol::{ClientFrame, MAX_FRAME_BYTES, Role, ServerFrame};

/// The frame's bytes; every frame these tests encode fits.
fn encode(message: &impl serde::Serialize) -> bytes::Bytes {
    codec::encode(message).expect("a frame within the limit")
}

fn set() -> TempSet {
    TempSet::local(KeyKind::EcdsaP256).expect("make certificates")
}

/// A TLS server on a free loopback port that answers each connection's
/// first byte with the same byte; the address to connect to.
async fn echo_one_byte(set: &TempSet) -> std::net::SocketAddr {
    let acceptor = TlsAcceptor::from(server_config(&set.paths.cert, &set.paths.key).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut byte = [0u8];
                if tls.read_exact(&mut byte).await.is_ok() {
                    let _ = tls.write_all(&byte).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

/// Shakes hands with `addr` trusting `trust`, verifying `name`; sends a
/// byte and expects it back.
async fn round_trip(
    addr: std::net::SocketAddr,
    trust: &Trust,
    name: &str,
) -> Result<(), HandshakeFailure> {
    let connector = TlsConnector::from(client_config(trust).unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(server_name(name).unwrap(), tcp)
        .await
        .map_err(|e| classify_handshake_error(&e))?;
    tls.write_all(b"x").await.unwrap();
    let mut byte = [0u8];
    tls.read_exact(&mut byte).await.unwrap();
    assert_eq!(&byte, b"x");
    Ok(())
}

#[tokio::test]
async fn host_names_and_ip_addresses_both_verify() {
    let set = set();
    let addr = echo_one_byte(&set).await;
    let trust = Trust::CaFile(set.paths.ca.clone());
    for name in ["localhost", "127.0.0.1", "::1", "[::1]"] {
        assert_eq!(round_trip(addr, &trust, name).await, Ok(()), "{name}");
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let set = set();
    let addr = echo_one_byte(&set).await;
    // Another CA of the same name (the set made again) ...
    let again = self::set();
    let result = round_trip(addr, &Trust::CaFile(again.paths.ca.clone()), "localhost").await;
    match result {
        Err(HandshakeFailure::Certificate(reason)) => {
            assert!(reason.contains("an older or another CA file"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // ... and one of another name.
    let stranger = devcerts::Ca::new("Someone else", KeyKind::EcdsaP256).unwrap();
    let path = set.dir().join("stranger.pem");
    fs::write(&path, stranger.cert_pem()).unwrap();
    let result = round_trip(addr, &Trust::CaFile(path), "localhost").await;
    assert_eq!(
        result,
        Err(HandshakeFailure::Certificate(
            "its certificate is not signed by a trusted CA".into()
        ))
    );
}

#[tokio::test]
async fn a_second_hosts_certificate_signed_with_the_kept_ca_key_is_trusted() {
    let first = set();
    let second = TempSet::signed_by(&first, &["127.0.0.1"]).unwrap();
    let addr = echo_one_byte(&second).await;
    let trust = Trust::CaFile(first.paths.ca.clone());
    assert_eq!(round_trip(addr, &trust, "127.0.0.1").await, Ok(()));
}

#[tokio::test]
async fn a_name_the_certificate_does_not_carry_is_refused() {
    let set = set();
    let addr = echo_one_byte(&set).await;
    let trust = Trust::CaFile(set.paths.ca.clone());
    for name in ["example.org", "127.0.0.2"] {
        match round_trip(addr, &trust, name).await {
            Err(HandshakeFailure::Certificate(reason)) => {
                assert!(reason.contains("not valid for name"), "{name}: {reason}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_plaintext_answer_is_not_tls_and_a_silent_close_is_a_close() {
    let set = set();
    let trust = Trust::CaFile(set.paths.ca.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // First connection: a LogosNet server's answer to a ClientHello.
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; 4];
        stream.read_exact(&mut hello).await.unwrap();
        let refusal = ServerFrame::ProtocolError("frame length too long".into());
        stream.write_all(&encode(&refusal)).await.unwrap();
        let _ = stream.shutdown().await;
        let _ = stream.read(&mut [0u8; 1024]).await;
        // Second: closed without a word.
        let (stream, _) = listener.accept().await.unwrap();
        drop(stream);
    });
    assert_eq!(
        round_trip(addr, &trust, "localhost").await,
        Err(HandshakeFailure::NotTls)
    );
    assert_eq!(
        round_trip(addr, &trust, "localhost").await,
        Err(HandshakeFailure::Closed)
    );
}

#[test]
fn tls_record_headers_are_told_from_frame_headers() {
    // An alert (TLS 1.2 record version) and a ClientHello (1.0 record version).
    assert!(is_tls_record_header([0x15, 0x03, 0x03, 0x00]));
    assert!(is_tls_record_header([0x16, 0x03, 0x01, 0x02]));
    // What a text protocol or a LogosNet peer sends first.
    assert!(!is_tls_record_header(*b"SSH-"));
    assert!(!is_tls_record_header(*b"HTTP"));
    let largest = u32::try_from(MAX_FRAME_BYTES).unwrap().to_be_bytes();
    assert!(!is_tls_record_header(largest));
    for frame in [
        encode(&ClientFrame::Hello(Role::Participant)),
        encode(&ServerFrame::Accepted),
        encode(&ServerFrame::Message("x".repeat(1000))),
    ] {
        let header: [u8; 4] = frame[..4].try_into().unwrap();
        assert!(!is_tls_record_header(header), "{header:?}");
    }
}

#[test]
fn server_names_are_dns_names_or_ip_addresses() {
    assert!(matches!(
        server_name("localhost"),
        Ok(ServerName::DnsName(_))
    ));
    assert!(matches!(
        server_name("10.0.0.1"),
        Ok(ServerName::IpAddress(_))
    ));
    assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
    let error = server_name("no spaces").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot verify a server named \"no spaces\": "),
        "{error}"
    );
}

#[test]
fn unusable_files_are_named_in_one_line() {
    let set = set();
    let other = self::set();
    let dir = set.dir();
    let missing = dir.join("missing.pem");
    let empty = dir.join("empty.pem");
    fs::write(&empty, "").unwrap();
    let (cert, key) = (&set.paths.cert, &set.paths.key);
    let cases: Vec<(Result<Arc<ServerConfig>, SetupError>, String)> = vec![
        (
            server_config(&missing, key),
            format!(
                "cannot read the certificate file {}: no such file",
                missing.display()
            ),
        ),
        (
            server_config(key, key),
            format!(
                "cannot read the certificate file {}: no PEM certificate (BEGIN CERTIFICATE) in it",
                key.display()
            ),
        ),
        (
            server_config(cert, &empty),
            format!(
                "cannot read the private key file {}: no PEM private key in it",
                empty.display()
            ),
        ),
        (
            server_config(cert, &other.paths.key),
            format!(
                "cannot use the certificate {} with the key {}: the key file does not match the certificate",
                cert.display(),
                other.paths.key.display()
            ),
        ),
    ];
    for (result, expected) in cases {
        let line = result.map(|_| ()).unwrap_err().to_string();
        assert!(line.starts_with(&expected), "{line:?} vs {expected:?}");
        assert!(!line.contains('\n'), "{line:?}");
    }
    assert!(server_config(cert, key).is_ok());
    for (path, reason) in [(&missing, "no such file"), (&empty, "no PEM certificate")] {
        let line = client_config(&Trust::CaFile(path.clone()))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            line.starts_with(&format!(
                "cannot read the CA file {}: {reason}",
                path.display()
            )),
            "{line}"
        );
    }
}
