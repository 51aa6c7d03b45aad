//! Shutdown in simulated time: every connection gets the shutdown notice
//! and the server stops within its grace, whatever state each connection
//! is in — a member, a reader deep in a backlog (its queue is cut after
//! the frame in progress, so the notice is not stuck behind it), and one
//! accepted in the very instant the stop began, before the room heard of
//! it (once, its task waited for ever and so did the server).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logosnet::protocol::{
    ClientFrame, MAX_MESSAGE_CHARS, Role, joined, public_line, shutdown_notice,
};
use logosnet::server::{Listener, SHUTDOWN_GRACE, serve};
use testkit::Got;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::harness::{PORT, PieceSize, World, connect, connect_paced, lock, participant};

const SEED: u64 = 29;

/// A listener that starts the server's stop when it accepts its `stop_on`th
/// connection, before handing that connection over: the room task sees
/// the stop before it can hear of the connection.
struct StopOnAccept<L> {
    inner: L,
    stop_on: usize,
    accepted: usize,
    stop: Arc<Notify>,
}

impl<L: Listener + Sync> Listener for StopOnAccept<L> {
    type Stream = L::Stream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let accepted = self.inner.accept().await?;
        self.accepted += 1;
        if self.accepted == self.stop_on {
            self.stop.notify_one();
        }
        Ok(accepted)
    }
}

/// When the stop began and when `serve` returned.
#[derive(Debug, Default, Clone, Copy)]
struct Stopped {
    began: Option<Instant>,
    returned: Option<Instant>,
}

#[test]
fn every_connection_hears_the_shutdown_and_the_server_stops_within_its_grace() {
    const FLOOD: usize = 300;
    let mut world = World::new(SEED);
    world.duration = Duration::from_secs(60);
    world.config.room.flood = None;
    world.pieces = PieceSize::AtMost(64);
    let stopped = Arc::new(Mutex::new(Stopped::default()));
    let mut run = world.build_serving({
        let stopped = stopped.clone();
        move |host| {
            let stopped = stopped.clone();
            async move {
                let stop = Arc::new(Notify::new());
                let listener = StopOnAccept {
                    inner: host.listen(PORT, 0).await?,
                    // alice, the slow reader, the flooder, then the late one.
                    stop_on: 4,
                    accepted: 0,
                    stop: stop.clone(),
                };
                let began = {
                    let stopped = stopped.clone();
                    async move {
                        stop.notified().await;
                        lock(&stopped).began = Some(Instant::now());
                    }
                };
                serve(listener, host.config, began).await;
                lock(&stopped).returned = Some(Instant::now());
                host.log.record("server", format_args!("stopped"));
                Ok(())
            }
        }
    });
    let log = run.log.clone();
    run.sim.client("clients", async move {
        let mut alice = participant("alice", &log).await;
        // 10 bytes a millisecond: 300 KB of flood would take it 30 s.
        let mut slow = connect_paced("slow", &log, PieceSize::AtMost(64), 10, ms(1)).await;
        slow.hello(Role::Observer).await;
        let mut flooder = participant("flood", &log).await;
        alice.expect(joined("flood")).await;
        let line = |k: usize| format!("{k:04} {}", "z".repeat(MAX_MESSAGE_CHARS - 5));
        let flood: Vec<ClientFrame> = (0..FLOOD).map(|k| ClientFrame::Chat(line(k))).collect();
        flooder.send_batch(&flood).await;
        for k in 0..FLOOD {
            alice.expect(public_line("flood", &line(k))).await;
        }
        // The fourth connection starts the stop as it is accepted.
        let mut late = connect("late", &log).await;
        late.expect(shutdown_notice()).await;
        late.expect_closed().await;
        alice.expect(shutdown_notice()).await;
        alice.expect_closed().await;
        flooder.expect(shutdown_notice()).await;
        flooder.expect_closed().await;
        // The slow reader: a prefix of what it was owed, in whole frames,
        // then the notice, then the end.
        let mut frames = Vec::new();
        while frames.last() != Some(&shutdown_notice()) {
            match slow.next(Duration::from_secs(10)).await {
                Got::Frame(frame) => frames.push(frame),
                other => panic!("slow: {other:?} after {} frames", frames.len()),
            }
        }
        // Nothing after the notice. (Whether the end itself shows depends on
        // turmoil: it parks a FIN sent while the reader's queue was full.)
        let after = slow.next(Duration::from_secs(10)).await;
        assert!(
            !matches!(after, Got::Frame(_)),
            "slow got {after:?} after the notice"
        );
        assert_eq!(
            frames.pop(),
            Some(shutdown_notice()),
            "the notice came last"
        );
        let owed: Vec<_> = std::iter::once(joined("flood"))
            .chain((0..FLOOD).map(|k| public_line("flood", &line(k))))
            .collect();
        assert!(
            frames.len() < owed.len(),
            "the slow reader's backlog was not cut"
        );
        assert_eq!(
            frames[..],
            owed[..frames.len()],
            "not a prefix of whole frames"
        );
        Ok(())
    });
    run.run();
    let stopped = *lock(&stopped);
    let began = stopped.began.expect("the stop began");
    let returned = stopped.returned.expect("the server stopped");
    println!(
        "the server stopped {:?} after the stop began",
        returned - began
    );
    assert!(
        returned - began <= SHUTDOWN_GRACE,
        "the server took {:?} to stop",
        returned - began
    );
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
