//! TLS over simulated TCP: the real `serve` with `TlsListener` beside the
//! plaintext listener (`Both`), rustls reading and writing turmoil's TCP in
//! two-byte pieces, to show the `Listener` seam holds for TLS as it does
//! for plain TCP: the room, its rules and its timers do not know which
//! port a member came in by.

use std::time::Duration;

use logosnet::protocol::{Role, joined, left, private_line, public_line};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::harness::tls::{TLS_PORT, certs, connect_tls};
use crate::harness::{PieceSize, SERVER, World, connect, connect_with};

const SEED: u64 = 13;

/// A TLS observer, a TLS participant and a plaintext participant in one
/// room, every connection in `pieces` both ways and every frame written in
/// `write_piece`-byte pieces; the run's trace hash.
fn mixed_room(pieces: PieceSize, write_piece: Option<usize>) -> u64 {
    let certs = certs();
    let mut world = World::new(SEED);
    world.pieces = pieces;
    let mut run = world.build_tls(certs.acceptor.clone());
    let log = run.log.clone();
    let connector = certs.connector.clone();
    run.sim.client("clients", async move {
        let mut watcher = connect_tls("watcher", &log, &connector, pieces, write_piece).await?;
        watcher.hello(Role::Observer).await;
        let mut alice = connect_tls("alice", &log, &connector, pieces, write_piece).await?;
        alice.join("alice").await;
        watcher.expect(joined("alice")).await;
        let mut bob = connect_with("bob", &log, pieces, write_piece).await?;
        bob.join("bob").await;
        alice.expect(joined("bob")).await;
        watcher.expect(joined("bob")).await;

        alice.chat("sealed in TLS").await;
        bob.expect(public_line("alice", "sealed in TLS")).await;
        watcher.expect(public_line("alice", "sealed in TLS")).await;
        bob.chat("@alice plain, but only for you").await;
        alice
            .expect(private_line("bob", "@alice plain, but only for you"))
            .await;
        bob.chat("to all").await;
        alice.expect(public_line("bob", "to all")).await;
        watcher.expect(public_line("bob", "to all")).await;

        bob.leave();
        alice.expect(left("bob")).await;
        watcher.expect(left("bob")).await;
        alice.leave();
        watcher.expect(left("alice")).await;
        watcher.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
    let stats = run.stats.clone();
    let hash = run.run();
    if let PieceSize::AtMost(n) = pieces {
        let stats = stats.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(stats.max_read, n, "the server read bigger pieces");
        assert_eq!(stats.max_write, n, "the server wrote bigger pieces");
        // Two handshakes of a few hundred bytes each, two bytes at a time.
        assert!(stats.reads > 200, "only {} reads", stats.reads);
    }
    hash
}

#[test]
fn tls_and_plaintext_members_share_the_room_in_two_byte_pieces() {
    mixed_room(PieceSize::AtMost(2), Some(2));
}

#[test]
fn a_tls_run_replays_exactly() {
    let first = mixed_room(PieceSize::Any, None);
    assert_eq!(first, mixed_room(PieceSize::Any, None));
}

/// A TLS observer that stops reading while lines pile up: the server's
/// writes fill the simulated window, so rustls holds the rest of a record
/// when the room has nothing more to send. When the observer reads again it
/// must get every line: the connection flushes what the stream buffered.
#[test]
fn a_tls_reader_that_fell_behind_gets_every_line() {
    let certs = certs();
    let mut world = World::new(SEED);
    world.pieces = PieceSize::AtMost(2);
    let mut run = world.build_tls(certs.acceptor.clone());
    let log = run.log.clone();
    let connector = certs.connector.clone();
    run.sim.client("clients", async move {
        let mut watcher = connect_tls("watcher", &log, &connector, PieceSize::Any, None).await?;
        watcher.hello(Role::Observer).await;
        let mut bob = connect("bob", &log).await;
        bob.join("bob").await;
        watcher.expect(joined("bob")).await;
        let lines: Vec<String> = (0..20)
            .map(|i| format!("line {i} {}", "x".repeat(40)))
            .collect();
        for line in &lines {
            bob.chat(line).await;
        }
        // The watcher reads nothing meanwhile.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for line in &lines {
            watcher.expect(public_line("bob", line)).await;
        }
        watcher.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
    run.run();
}

/// A client that stops after three bytes of its ClientHello is closed when
/// the Hello timeout runs out, in simulated time, and the room never hears
/// of it.
#[test]
fn a_stalled_handshake_is_closed_at_the_hello_timeout() {
    let hello_timeout = Duration::from_secs(5);
    let certs = certs();
    let mut world = World::timers(SEED, Duration::from_secs(30));
    world.config.room.hello_timeout = hello_timeout;
    let mut run = world.build_tls(certs.acceptor.clone());
    let log = run.log.clone();
    let connector = certs.connector.clone();
    run.sim.client("clients", async move {
        let mut watcher = connect_tls("watcher", &log, &connector, PieceSize::Any, None).await?;
        watcher.hello(Role::Observer).await;
        let mut stalled = turmoil::net::TcpStream::connect((SERVER, TLS_PORT)).await?;
        let opened = Instant::now();
        stalled.write_all(&[0x16, 0x03, 0x01]).await?;
        let mut buf = [0u8; 64];
        let read = stalled.read(&mut buf).await;
        let closed_after = opened.elapsed();
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the server answered a stalled handshake: {read:?}"
        );
        // One latency each way and a tick of slack around the deadline.
        assert!(
            closed_after >= hello_timeout
                && closed_after <= hello_timeout + Duration::from_millis(50),
            "closed after {closed_after:?}"
        );
        let mut late = connect_tls("late", &log, &connector, PieceSize::Any, None).await?;
        late.join("late").await;
        watcher.expect(joined("late")).await;
        Ok(())
    });
    run.run();
}
