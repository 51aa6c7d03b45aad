//! The metrics endpoint end to end: a server in this process with
//! `ServerConfig::metrics`, its figures served on a loopback listener of
//! their own as `--metrics` serves them, fetched over HTTP and read by a
//! Prometheus text-format parser (`testkit::metrics`). Each test makes the
//! room do something countable and checks the exact figures it must show.
//!
//! The tests run on one thread (tokio's test default): when a peer has
//! read a frame, the room's turn that sent it, and its publishing of the
//! figures at the end of the turn, are over.

use std::sync::Arc;

use logosnet::protocol::{
    ClientFrame, Role, ServerFrame, joined, no_such_user, private_line, public_line,
    too_many_connections_from,
};
use logosnet::server::metrics::METRICS_PATH;
use logosnet::server::{Metrics, RateLimit, ServerConfig};
use testkit::metrics::{Figures, get, scrape, serve_metrics_on_loopback};
use testkit::peer::frame_bytes;
use testkit::{Peer, spawn_server, unthrottled};
use tokio::net::TcpStream;

/// A server counting in fresh metrics served on loopback: the chat
/// address, the metrics address, the server.
async fn counted(
    mut config: ServerConfig,
) -> (
    std::net::SocketAddr,
    std::net::SocketAddr,
    testkit::ServerHandle,
) {
    let metrics = Arc::new(Metrics::new());
    config.metrics = Some(metrics.clone());
    let (addr, server) = spawn_server(config).await;
    let scrape_at = serve_metrics_on_loopback(metrics).await;
    (addr, scrape_at, server)
}

/// Bytes of `frames` on the wire.
fn wire(frames: &[ServerFrame]) -> u64 {
    frames.iter().map(|f| frame_bytes(f).len() as u64).sum()
}

#[tokio::test]
async fn a_scrape_during_a_conversation_shows_exactly_what_the_room_did() {
    let config = unthrottled();
    let budget = config.max_queued_total;
    let (addr, metrics, _server) = counted(config).await;
    // A socket that never says Hello.
    let _silent = TcpStream::connect(addr).await.expect("connect");
    let mut observer = Peer::observer(addr, "observer").await;
    let mut alice = Peer::participant(addr, "alice").await;
    observer.expect(joined("alice")).await;
    let mut bob = Peer::participant(addr, "bob").await;
    alice.expect(joined("bob")).await;
    observer.expect(joined("bob")).await;
    // A participant who asks for a name in use, and has none yet.
    let mut carol = Peer::connect("carol", addr).await;
    carol.hello(Role::Participant).await;
    carol.send(&ClientFrame::Username("bob".into())).await;
    carol.expect(ServerFrame::UsernameTaken).await;

    // Five public lines, one private line, one warning.
    let mut said = Vec::new();
    for (i, speaker) in ["alice", "bob", "alice", "bob", "alice"].iter().enumerate() {
        let line = format!("line {i}");
        let (from, to) = if *speaker == "alice" {
            (&mut alice, &mut bob)
        } else {
            (&mut bob, &mut alice)
        };
        from.chat(&line).await;
        to.expect(public_line(speaker, &line)).await;
        observer.expect(public_line(speaker, &line)).await;
        said.push(public_line(speaker, &line));
    }
    bob.chat("@alice psst").await;
    alice.expect(private_line("bob", "@alice psst")).await;
    bob.chat("@dave anyone?").await;
    bob.expect(no_such_user("dave")).await;

    let figures = scrape(metrics).await;
    let gauge = |state: &str| figures.count("logosnet_connections", &[("state", state)]);
    assert_eq!(gauge("before_hello"), 1);
    assert_eq!(gauge("naming"), 1);
    assert_eq!(gauge("participant"), 2);
    assert_eq!(gauge("observer"), 1);
    assert_eq!(
        figures.count("logosnet_lines_total", &[("kind", "public")]),
        5
    );
    assert_eq!(
        figures.count("logosnet_lines_total", &[("kind", "private")]),
        1
    );
    // Each public line to the two members but its sender, the private
    // line to one.
    assert_eq!(figures.count("logosnet_deliveries_total", &[]), 5 * 2 + 1);
    assert_eq!(figures.count("logosnet_warnings_total", &[]), 1);
    assert_eq!(figures.count("logosnet_flood_delayed_lines_total", &[]), 0);
    assert_eq!(figures.count("logosnet_connections_accepted_total", &[]), 5);
    assert_eq!(
        figures.count("logosnet_refusals_total", &[("reason", "name")]),
        1
    );
    for reason in ["full", "per_address", "rate", "busy", "evicted"] {
        assert_eq!(
            figures.count("logosnet_refusals_total", &[("reason", reason)]),
            0,
            "{reason}"
        );
    }
    for reason in [
        "too_far_behind",
        "budget_shed",
        "violation",
        "hello_timeout",
        "username_timeout",
        "frame_timeout",
    ] {
        assert_eq!(
            figures.count("logosnet_drops_total", &[("reason", reason)]),
            0,
            "{reason}"
        );
    }
    assert_eq!(figures.count("logosnet_room_paused", &[]), 0);
    assert_eq!(figures.count("logosnet_room_pauses_total", &[]), 0);
    assert_eq!(
        figures.count("logosnet_queued_bytes_budget", &[]),
        budget as u64
    );
    // Every byte every peer read, and nothing else, was written.
    let accepted = ServerFrame::Accepted;
    let named = ServerFrame::UsernameAccepted;
    let observer_read = wire(&[accepted.clone(), joined("alice"), joined("bob")]) + wire(&said);
    let alice_read = wire(&[
        accepted.clone(),
        named.clone(),
        joined("alice"),
        joined("bob"),
    ]) + wire(&said[1..2])
        + wire(&said[3..4])
        + wire(&[private_line("bob", "@alice psst")]);
    let bob_read = wire(&[accepted.clone(), named, joined("bob")])
        + wire(&said[0..1])
        + wire(&said[2..3])
        + wire(&said[4..5])
        + wire(&[no_such_user("dave")]);
    let carol_read = wire(&[accepted, ServerFrame::UsernameTaken]);
    assert_eq!(
        figures.count("logosnet_written_bytes_total", &[]),
        observer_read + alice_read + bob_read + carol_read
    );
    // What the process figures say, they say under Prometheus' own names.
    assert!(figures.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(figures.value("process_open_fds", &[]) >= 3.0);
    assert!(figures.value("process_cpu_seconds_total", &[]) >= 0.0);
}

#[tokio::test]
async fn the_endpoint_serves_one_path() {
    let (_addr, metrics, _server) = counted(ServerConfig::default()).await;
    let (status, body) = get(metrics, METRICS_PATH).await;
    assert_eq!(status, 200);
    Figures::parse(&body);
    let (status, _) = get(metrics, "/").await;
    assert_eq!(status, 404);
    let (status, _) = get(metrics, "/metrics/more").await;
    assert_eq!(status, 404);
}

/// The one refusal `reason` is 1 and every other refusal 0.
fn only_refusal(figures: &Figures, reason: &str) {
    for other in ["full", "per_address", "rate", "busy", "evicted", "name"] {
        let want = u64::from(other == reason);
        assert_eq!(
            figures.count("logosnet_refusals_total", &[("reason", other)]),
            want,
            "{other} after a refusal for {reason}:\n{}",
            figures.text
        );
    }
}

#[tokio::test]
async fn a_full_role_counts_one_refusal_for_full() {
    let mut config = ServerConfig::default();
    config.room.max_observers = 1;
    let (addr, metrics, _server) = counted(config).await;
    let _first = Peer::observer(addr, "first").await;
    let mut second = Peer::connect("second", addr).await;
    second.send(&ClientFrame::Hello(Role::Observer)).await;
    second.expect(ServerFrame::Full).await;
    second.expect_closed().await;
    only_refusal(&scrape(metrics).await, "full");
}

#[tokio::test]
async fn a_source_past_its_open_connections_counts_one_refusal_per_address() {
    let config = ServerConfig {
        limit_loopback: true,
        max_per_address: 1,
        connect_rate: RateLimit {
            burst: 0,
            ..RateLimit::DEFAULT
        },
        ..ServerConfig::default()
    };
    let (addr, metrics, _server) = counted(config).await;
    let _first = Peer::observer(addr, "first").await;
    let mut second = Peer::connect("second", addr).await;
    second
        .recv_until(&too_many_connections_from("127.0.0.1"))
        .await;
    second.expect_closed().await;
    only_refusal(&scrape(metrics).await, "per_address");
}

#[tokio::test]
async fn a_source_past_its_connection_rate_counts_one_refusal_for_rate() {
    let config = ServerConfig {
        limit_loopback: true,
        connect_rate: RateLimit {
            burst: 1,
            ..RateLimit::DEFAULT
        },
        ..ServerConfig::default()
    };
    let (addr, metrics, _server) = counted(config).await;
    let _first = Peer::observer(addr, "first").await;
    let mut second = Peer::connect("second", addr).await;
    let frame = second.recv().await;
    let ServerFrame::ProtocolError(_) = &frame else {
        panic!("refused with {frame:?}");
    };
    second.expect_closed().await;
    only_refusal(&scrape(metrics).await, "rate");
}

#[tokio::test]
async fn a_newcomer_making_room_counts_one_eviction() {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let (addr, metrics, _server) = counted(config).await;
    let mut silent = Peer::connect("silent", addr).await;
    // Known to the room before the newcomer comes.
    let _member = Peer::observer(addr, "member").await;
    silent.recv().await;
    silent.expect_closed().await;
    only_refusal(&scrape(metrics).await, "evicted");
}

#[tokio::test]
async fn a_newcomer_when_every_socket_is_a_member_counts_one_refusal_for_busy() {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let (addr, metrics, _server) = counted(config).await;
    let _member = Peer::observer(addr, "member").await;
    let mut late = Peer::connect("late", addr).await;
    let frame = late.recv().await;
    let ServerFrame::ProtocolError(_) = &frame else {
        panic!("refused with {frame:?}");
    };
    late.expect_closed().await;
    only_refusal(&scrape(metrics).await, "busy");
}
