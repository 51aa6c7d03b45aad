//! Admission on loopback: the per-address limit with and without
//! `limit_loopback`, the per-state frame limits, and thousands of sockets
//! that announce a maximum-size frame before `Hello`, which are refused at
//! the header and cost the server almost nothing (that one against the
//! binary, whose memory it reads).

use std::sync::Arc;
use std::time::Duration;

use logosnet::protocol::{
    ClientFrame, MAX_FRAME_BYTES, MAX_HELLO_PAYLOAD, Role, ServerFrame, joined, left, public_line,
    too_long_warning, too_many_connections_from,
};
use logosnet::server::{MAX_PER_ADDRESS, RateLimit, ServerConfig};
use testkit::peer::frame_bytes;
use testkit::{PATIENCE, Peer, spawn_server};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::server_process::{ServerProcess, bounded, raise_fd_limit};

/// Sockets in the pre-Hello storm: the attack.
const BIG_ANNOUNCERS: usize = 2_000;

/// Payload bytes each of them sends of the frame it announces.
const SENT_OF_IT: usize = 65_000;

/// The peak resident memory the server may reach under that storm. The
/// attack held 148.6 MiB before frames were judged at the header.
const PEAK_RSS_LIMIT_KIB: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seventeenth_loopback_connection_is_refused_with_limit_loopback() {
    let config = ServerConfig {
        limit_loopback: true,
        // The connection rate would refuse the 33rd try; it is not the
        // subject here (see `loopback_addresses_holding_every_socket...`).
        connect_rate: RateLimit {
            burst: 0,
            ..RateLimit::DEFAULT
        },
        ..ServerConfig::default()
    };
    let (addr, _server) = spawn_server(config).await;
    let refusal = too_many_connections_from("127.0.0.1");
    bounded(Duration::from_secs(120), async {
        let mut held = Peer::crowd(addr, Role::Observer, MAX_PER_ADDRESS).await;
        let mut extra = Peer::connect("extra", addr).await;
        assert_eq!(extra.until_closed().await, vec![refusal.clone()]);
        // One of the sixteen leaves: its place comes back once the server
        // has seen the close, which nothing announces (an observer leaves
        // silently), so it is looked for until one generous deadline,
        // however slowly a loaded machine lets the server see the close.
        drop(held.pop());
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let mut again = Peer::connect("again", addr).await;
            again.send(&ClientFrame::Hello(Role::Observer)).await;
            match again.recv().await {
                ServerFrame::Accepted => break,
                refused => {
                    assert_eq!(refused, refusal);
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the freed place did not come back within {PATIENCE:?}"
                    );
                    // A pause between looks, not a guess at how long it takes.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_not_limited_by_default() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    bounded(Duration::from_secs(120), async {
        // Three times the limit, all open at once, and each one admitted
        // (`observer` insists on Accepted, not a refusal).
        let _held = Peer::crowd(addr, Role::Observer, 3 * MAX_PER_ADDRESS).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_frames_announced_before_hello_are_refused_at_once_and_memory_stays_small() {
    raise_fd_limit();
    let server = ServerProcess::start(&[]);
    let addr = server.addr;
    let (rss_before, _) = server.memory_kib();
    bounded(Duration::from_secs(240), async {
        // All of them connected before any speaks, as in the attack.
        let mut sockets = Vec::with_capacity(BIG_ANNOUNCERS);
        for _ in 0..BIG_ANNOUNCERS {
            sockets.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        let mut announcement = (MAX_FRAME_BYTES as u32).to_be_bytes().to_vec();
        announcement.resize(4 + SENT_OF_IT, b'z');
        let announcement: Arc<[u8]> = announcement.into();
        // A few hundred writing at once: the storm, without this test
        // process itself holding 130 MB in flight.
        let gate = Arc::new(Semaphore::new(256));
        let mut ends = JoinSet::new();
        for stream in sockets {
            let (announcement, gate) = (announcement.clone(), gate.clone());
            ends.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore");
                let mut client = Peer::new("announcer", stream);
                // The server may close before all of it is written.
                let _ = client.try_send_raw(&announcement).await;
                client.until_closed().await
            });
        }
        let reason = format!(
            "frame length {MAX_FRAME_BYTES} exceeds the limit of {MAX_HELLO_PAYLOAD} bytes before Hello"
        );
        while let Some(frames) = ends.join_next().await {
            // Refused by the header, not left to the 60 s Hello timeout.
            assert_eq!(
                frames.expect("socket task"),
                vec![ServerFrame::ProtocolError(reason.clone())]
            );
        }
        // And the room is whole.
        Peer::participant(addr, "alice").await;
    })
    .await;
    let (rss_after, peak) = server.memory_kib();
    println!(
        "{BIG_ANNOUNCERS} pre-Hello sockets announcing {MAX_FRAME_BYTES} bytes: \
         server RSS {rss_before} KiB before, {rss_after} KiB after, peak {peak} KiB"
    );
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "peak RSS {peak} KiB, limit {PEAK_RSS_LIMIT_KIB} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_limits_follow_the_state_and_pipelined_frames_are_judged_in_order() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    bounded(Duration::from_secs(120), async {
        let mut watcher = Peer::observer(addr, "watcher").await;

        // While naming: a frame longer than any name request is fatal.
        let mut naming = Peer::connect("naming", addr).await;
        naming.hello(Role::Participant).await;
        naming.send_raw(&256u32.to_be_bytes()).await;
        assert_eq!(
            naming.until_closed().await,
            vec![ServerFrame::ProtocolError(
                "frame length 256 exceeds the limit of 122 bytes before a username is accepted"
                    .into()
            )]
        );
        watcher.expect(left("Anonymous")).await;

        // Hello, a name and a 3,000-byte line in one write: each is judged
        // by the limit its predecessors earned, so the line is delivered.
        let line = "\u{1F980}".repeat(750);
        let mut burst = Vec::new();
        for frame in [
            ClientFrame::Hello(Role::Participant),
            ClientFrame::Username("eager".into()),
            ClientFrame::Chat(line.clone()),
        ] {
            burst.extend_from_slice(&frame_bytes(&frame));
        }
        let mut eager = Peer::connect("eager", addr).await;
        eager.send_raw(&burst).await;
        eager.expect(ServerFrame::Accepted).await;
        eager.expect(ServerFrame::UsernameAccepted).await;
        watcher.expect(joined("eager")).await;
        watcher.expect(public_line("eager", &line)).await;

        // A member's frame over the chat limit is skipped as it streams in
        // and answered with a warning; the member stays.
        let mut huge = (MAX_FRAME_BYTES as u32).to_be_bytes().to_vec();
        huge.resize(4 + MAX_FRAME_BYTES, b'z');
        eager.send_raw(&huge).await;
        eager.expect(joined("eager")).await;
        eager.expect(too_long_warning()).await;
        // Its tokens come back (a 64 KiB frame costs the whole burst).
        eager.chat("still here").await;
        watcher.expect(public_line("eager", "still here")).await;
    })
    .await;
}
