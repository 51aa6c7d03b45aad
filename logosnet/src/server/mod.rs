//! The tokio driver: runs the [`Room`] over any [`Listener`] — real TCP in
//! the binary, turmoil's simulated TCP in `sim-tests`.
//!
//! Shape: one *room task* owns the `Room` and is the only place rules run;
//! one task per connection reads and writes its socket (see
//! [`connection`]); an accept task admits sockets. Connection tasks send the
//! room events over one bounded channel; the room answers by pushing shared
//! frame bytes into each connection's bounded [`Outbox`] — never awaiting a
//! socket — so no connection can block another. Per-connection tasks rather
//! than one hand-rolled `select!` over every socket: tokio's scheduler is that
//! single non-blocking event loop already (epoll underneath), and a task
//! keeps each socket's partial frame and pending writes in plain locals.
//!
//! Time comes only from `tokio::time`, which turmoil simulates; the room is
//! handed `now` and asked when it next needs waking.

mod connection;
pub mod outbox;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;

pub use outbox::{MAX_QUEUED_BYTES, Outbox};

use crate::protocol::{ClientFrame, FrameError};
use crate::room::{ConnId, EndReason, Output, Room, RoomConfig};

/// Most sockets open at once, admitted or not. Above the room's 510 slots so
/// that `Full` can be said to the 256th of each role, but bounded so a
/// connection storm cannot exhaust file descriptors; excess sockets are
/// closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 2048;

/// How long a closing connection waits for its peer to finish after the last
/// frame is written, so that a reset cannot overtake that frame.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// A connection that wrote this many frames in one go is falling behind the
/// room and starts coalescing its writes (see [`WRITE_GAP`]).
pub const BUSY_WRITE_FRAMES: usize = 4;

/// How long a busy connection waits between writes so that each write
/// carries many frames: at 5,000 messages/s a full room would otherwise need
/// millions of write calls a second. Small against the 50 ms p99 target, and
/// never paid by a connection that keeps up.
pub const WRITE_GAP: Duration = Duration::from_millis(5);

/// How long shutdown waits for every queue to flush.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Events queued from the accept and connection tasks to the room task. The
/// bound turns a room that falls behind into TCP back-pressure on senders.
const EVENT_QUEUE: usize = 4096;

/// Something that hands out connected byte streams.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        // Chat frames are small and latency matters more than packet count;
        // batching is done by the outbox, not by Nagle.
        let _ = stream.set_nodelay(true);
        Ok((stream, addr))
    }
}

/// The server's limits. [`ServerConfig::default`] is the spec.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The room's rules.
    pub room: RoomConfig,
    /// See [`MAX_QUEUED_BYTES`].
    pub max_queued_bytes: usize,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`CLOSE_LINGER`].
    pub close_linger: Duration,
    /// See [`SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
    /// See [`BUSY_WRITE_FRAMES`].
    pub busy_write_frames: usize,
    /// See [`WRITE_GAP`]; zero turns coalescing off.
    pub write_gap: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            room: RoomConfig::default(),
            max_queued_bytes: MAX_QUEUED_BYTES,
            max_connections: MAX_CONNECTIONS,
            close_linger: CLOSE_LINGER,
            shutdown_grace: SHUTDOWN_GRACE,
            busy_write_frames: BUSY_WRITE_FRAMES,
            write_gap: WRITE_GAP,
        }
    }
}

/// What connection tasks tell the room task.
#[derive(Debug)]
enum Event {
    Opened(ConnId, Arc<Outbox>),
    Frame(ConnId, ClientFrame),
    Violation(ConnId, FrameError),
    Closed(ConnId),
}

/// Serves the room on `listener` until `shutdown` resolves; then tells every
/// client, flushes (bounded by [`ServerConfig::shutdown_grace`]) and returns.
pub async fn serve<L, F>(listener: L, config: ServerConfig, shutdown: F)
where
    L: Listener,
    F: Future<Output = ()> + Send,
{
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let tracker = TaskTracker::new();
    let accept = tokio::spawn(accept_loop(
        listener,
        config.clone(),
        events_tx,
        tracker.clone(),
    ));
    let mut driver = Driver {
        room: Room::new(config.room.clone()),
        conns: BTreeMap::new(),
        events,
    };
    driver.run(shutdown).await;
    accept.abort();
    tracker.close();
    driver
        .drain_until(tracker.wait(), config.shutdown_grace)
        .await;
    tracing::info!("server stopped");
}

/// The room task's state.
struct Driver {
    room: Room,
    conns: BTreeMap<ConnId, Arc<Outbox>>,
    events: mpsc::Receiver<Event>,
}

impl Driver {
    async fn run<F: Future<Output = ()>>(&mut self, shutdown: F) {
        tokio::pin!(shutdown);
        loop {
            let wake = self.room.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    tracing::info!("shutting down");
                    self.room.shutdown(now());
                    self.apply();
                    return;
                }
                event = self.events.recv() => match event {
                    Some(event) => self.handle(event),
                    None => return,
                },
                () = sleep_until(wake), if wake.is_some() => {
                    self.room.handle_timeout(now());
                }
            }
            self.apply();
        }
    }

    fn handle(&mut self, event: Event) {
        let now = now();
        match event {
            Event::Opened(conn, outbox) => {
                self.conns.insert(conn, outbox);
                self.room.handle_open(now, conn);
            }
            Event::Frame(conn, frame) => self.room.handle_frame(now, conn, frame),
            Event::Violation(conn, error) => self.room.handle_violation(now, conn, &error),
            Event::Closed(conn) => {
                self.room.handle_closed(now, conn, EndReason::Disconnected);
                // Flush what is already queued (a half-closed peer may still
                // read), then close.
                if let Some(outbox) = self.conns.remove(&conn) {
                    outbox.close();
                }
            }
        }
    }

    /// Carries out everything the room asked for. A recipient whose queue
    /// overflows is dropped as a slow consumer, which the room announces, so
    /// this repeats until the room is quiet.
    fn apply(&mut self) {
        let mut slow = BTreeSet::new();
        loop {
            while let Some(output) = self.room.poll_output() {
                match output {
                    Output::Send { to, frame } => {
                        if let Some(outbox) = self.conns.get(&to)
                            && outbox.push(frame).is_err()
                        {
                            slow.insert(to);
                        }
                    }
                    Output::Close { conn, reason } => {
                        tracing::debug!(conn, ?reason, "closing");
                        if let Some(outbox) = self.conns.remove(&conn) {
                            outbox.close();
                        }
                    }
                }
            }
            let Some(conn) = slow.pop_first() else {
                return;
            };
            if let Some(outbox) = self.conns.remove(&conn) {
                tracing::warn!(
                    conn,
                    queued = outbox.queued_bytes(),
                    "dropping slow consumer"
                );
                outbox.abort();
            }
            self.room
                .handle_closed(now(), conn, EndReason::SlowConsumer);
        }
    }

    /// Keeps the event channel moving (so connection tasks never block on
    /// it) until `done` resolves or `grace` passes.
    async fn drain_until<D: Future<Output = ()>>(&mut self, done: D, grace: Duration) {
        tokio::pin!(done);
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                biased;
                () = &mut done => return,
                () = &mut deadline => {
                    tracing::warn!("shutdown grace ran out; dropping unflushed connections");
                    for outbox in self.conns.values() {
                        outbox.abort();
                    }
                    return;
                }
                event = self.events.recv() => if event.is_none() { return },
            }
        }
    }
}

async fn accept_loop<L: Listener>(
    mut listener: L,
    config: ServerConfig,
    events: mpsc::Sender<Event>,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut next_id: ConnId = 1;
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(e) => {
                // EMFILE and friends: pause rather than spin.
                tracing::warn!(error = %e, pause_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = config.max_connections, "too many connections; closing");
            drop(stream);
            continue;
        };
        let conn = next_id;
        next_id += 1;
        tracing::debug!(conn, %peer, "accepted");
        let outbox = Arc::new(Outbox::new(config.max_queued_bytes));
        if events
            .send(Event::Opened(conn, outbox.clone()))
            .await
            .is_err()
        {
            return;
        }
        let events = events.clone();
        let coalescing = connection::Coalescing {
            busy_frames: config.busy_write_frames.max(1),
            gap: config.write_gap,
            linger: config.close_linger,
        };
        tracker.spawn(async move {
            connection::run(conn, stream, outbox, events, coalescing).await;
            drop(permit);
        });
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(wake: Option<tokio::time::Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
