//! Replacing the TLS certificate while the server runs, in process: the
//! binary calls `server::certificate::reload` on SIGHUP; here the test
//! calls it. A client that trusts only the new CA fails before the reload
//! and succeeds after it; a member connected over TLS before it keeps
//! chatting across it; a broken pair (the new certificate with the old
//! key) keeps the old pair in service; the metrics count every reload and
//! handshake by its outcome.

use std::net::SocketAddr;
use std::sync::Arc;

use devcerts::{KeyKind, TempSet};
use logosnet::protocol::{joined, public_line};
use logosnet::server::certificate::reload;
use logosnet::server::{Metrics, ServerCertificate, ServerConfig};
use logosnet::tls::{self, ClientTlsStream, TlsConnector, Trust};
use testkit::Peer;
use testkit::metrics::{scrape, serve_metrics_on_loopback};
use testkit::spawn_tls_server_reloadable;
use tokio::net::TcpStream;

/// A TLS connection to `addr` as `localhost`, trusting only `set`'s CA.
async fn connect(addr: SocketAddr, set: &TempSet) -> std::io::Result<ClientTlsStream<TcpStream>> {
    let config = tls::client_config(&Trust::CaFile(set.paths.ca.clone())).expect("client TLS");
    let name = tls::server_name("localhost").expect("a server name");
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config).connect(name, tcp).await
}

/// A participant named `name` over TLS, trusting `set`'s CA.
async fn participant(
    addr: SocketAddr,
    set: &TempSet,
    name: &str,
) -> Peer<ClientTlsStream<TcpStream>> {
    let stream = connect(addr, set)
        .await
        .unwrap_or_else(|e| panic!("{name}: handshake failed: {e}"));
    let mut peer = Peer::new(name, stream);
    peer.join(name).await;
    peer
}

#[tokio::test]
async fn a_reload_serves_new_handshakes_and_leaves_the_room_untouched() {
    let old = TempSet::local(KeyKind::EcdsaP256).expect("certificates");
    let new = TempSet::local(KeyKind::EcdsaP256).expect("certificates");
    let first = tls::server_config(&old.paths.cert, &old.paths.key).expect("the first pair");
    let certificate = Arc::new(ServerCertificate::new(first));
    let metrics = Arc::new(Metrics::new());
    let config = ServerConfig {
        metrics: Some(metrics.clone()),
        ..testkit::unthrottled()
    };
    let (addr, _server) = spawn_tls_server_reloadable(config, certificate.clone()).await;
    let scrape_at = serve_metrics_on_loopback(metrics).await;

    let mut alice = participant(addr, &old, "alice").await;
    assert!(
        connect(addr, &new).await.is_err(),
        "a client trusting only the new CA got in before the reload"
    );
    // The new certificate with the old key: refused, the old pair stays.
    assert!(!reload(&certificate, &new.paths.cert, &old.paths.key, None));
    let mut bob = participant(addr, &old, "bob").await;
    alice.expect(joined("bob")).await;
    assert!(
        connect(addr, &new).await.is_err(),
        "a broken pair was put in service"
    );

    assert!(reload(&certificate, &new.paths.cert, &new.paths.key, None));
    let mut carol = participant(addr, &new, "carol").await;
    alice.expect(joined("carol")).await;
    bob.expect(joined("carol")).await;
    assert!(
        connect(addr, &old).await.is_err(),
        "a client trusting only the old CA got in after the reload"
    );
    // alice's session, made before the reload, goes on both ways.
    alice.chat("still here").await;
    bob.expect(public_line("alice", "still here")).await;
    carol.expect(public_line("alice", "still here")).await;
    carol.chat("hello alice").await;
    alice.expect(public_line("carol", "hello alice")).await;

    let figures = scrape(scrape_at).await;
    let handshakes = |result| figures.count("logosnet_tls_handshakes_total", &[("result", result)]);
    assert_eq!(handshakes("ok"), 3, "alice, bob, carol");
    assert_eq!(handshakes("failed"), 3, "the three clients refused");
}

#[tokio::test]
async fn reloads_are_counted_by_outcome() {
    let old = TempSet::local(KeyKind::EcdsaP256).expect("certificates");
    let new = TempSet::local(KeyKind::EcdsaP256).expect("certificates");
    let first = tls::server_config(&old.paths.cert, &old.paths.key).expect("the first pair");
    let certificate = ServerCertificate::new(first);
    let metrics = Arc::new(Metrics::new());
    let scrape_at = serve_metrics_on_loopback(metrics.clone()).await;
    let missing = new.dir().join("missing.pem");
    assert!(!reload(
        &certificate,
        &missing,
        &new.paths.key,
        Some(&metrics)
    ));
    assert!(!reload(
        &certificate,
        &new.paths.cert,
        &old.paths.key,
        Some(&metrics)
    ));
    assert!(reload(
        &certificate,
        &new.paths.cert,
        &new.paths.key,
        Some(&metrics)
    ));
    let figures = scrape(scrape_at).await;
    let reloads =
        |result| figures.count("logosnet_certificate_reloads_total", &[("result", result)]);
    assert_eq!((reloads("ok"), reloads("failed")), (1, 2));
}
