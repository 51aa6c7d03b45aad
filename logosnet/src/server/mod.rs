//! The tokio driver: runs the [`Room`](crate::room::Room) over any [`Listener`] — real TCP in
//! the binary, turmoil's simulated TCP in `sim-tests`, either one wrapped in
//! TLS ([`TlsListener`]), or two at once ([`Both`]).
//!
//! Shape: one *room task* ([`driver`]) owns the `Room` and is the only place
//! rules run; one task per connection ([`connection`]) reads and writes its
//! socket; an accept task ([`accept`]) admits sockets. Between a connection
//! and the room sit two bounded queues: its [`inbox`] of frames read, which
//! the room *pulls* from when its rules allow, and its [`Outbox`] of frames
//! to write, which the room pushes into without ever waiting. So no
//! connection can block another, and a sender the room is not taking from
//! (flood control, back-pressure) simply stops being read: its own TCP
//! window fills and nobody else notices. Per-connection tasks rather than
//! one hand-rolled poll over every socket: tokio's scheduler is that single
//! non-blocking event loop already (epoll underneath).
//!
//! Time comes only from `tokio::time`, which turmoil simulates; the room is
//! handed `now` and asked when it next needs waking.

mod accept;
mod connection;
mod driver;
mod inbox;
mod listeners;
pub mod outbox;
mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

pub use connection::SERVER_READ_BYTES;
pub use inbox::INBOX_BYTES;
pub use listeners::Both;
pub use outbox::{
    FRAME_OVERHEAD_BYTES, HEAVY_QUEUED_BYTES, LIGHT_QUEUED_BYTES, MAX_QUEUED_BYTES, Outbox,
    queued_cost,
};
pub use tls::{TlsListener, TlsOnAccept};

use crate::room::{ConnId, RoomConfig};

/// Most sockets open at once, admitted or not. Above the room's 510 slots so
/// that `Full` can be said to the 256th of each role, but bounded so a
/// connection storm cannot exhaust file descriptors; excess sockets are told
/// the server is busy and closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 2048;

/// How long a closing connection waits for its peer to finish after the last
/// frame is written, so that a reset cannot overtake that frame.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// A connection that wrote this many frames in one go is falling behind the
/// room and starts coalescing its writes (see [`WRITE_GAP`]).
pub const BUSY_WRITE_FRAMES: usize = 4;

/// How long a busy connection waits between writes so that each write
/// carries many frames: at 5,000 messages/s a full room would otherwise need
/// millions of write calls a second. Small against the latency targets, and
/// never paid by a connection that keeps up.
pub const WRITE_GAP: Duration = Duration::from_millis(5);

/// How long shutdown waits for every queue to flush.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A writer that has made no progress for this long is *stalled*: its heavy
/// queue no longer holds the room paused (a reader that stopped must not
/// stall everyone), and it is the first to go if the server-wide budget runs
/// short. One second: long against a healthy socket's wait for window space,
/// short against a person noticing the room paused.
pub const STALL_GRACE: Duration = Duration::from_secs(1);

/// A member whose writer makes no progress for this long, or whose heavy
/// queue holds the room paused this long, is dropped as too far behind.
/// NATS' `write_deadline` is 10 s; so is ours.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// Bytes that may be charged to all queues together: 64 MiB. The room
/// stops taking chat lines at half of it, and sheds stalled members first,
/// so the charged total stays near half. (NATS' per-client `max_pending` is
/// 64 MiB; ours is for the whole server.)
pub const MAX_QUEUED_TOTAL: usize = 64 << 20;

/// Sockets refused past [`MAX_CONNECTIONS`] that may be lingering at once
/// while they are told the server is busy; beyond that they are just closed.
pub const MAX_REFUSING: usize = 64;

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
    /// See [`MAX_QUEUED_TOTAL`].
    pub max_queued_total: usize,
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
    /// See [`STALL_GRACE`].
    pub stall_grace: Duration,
    /// See [`WRITE_DEADLINE`].
    pub write_deadline: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            room: RoomConfig::default(),
            max_queued_bytes: MAX_QUEUED_BYTES,
            max_queued_total: MAX_QUEUED_TOTAL,
            max_connections: MAX_CONNECTIONS,
            close_linger: CLOSE_LINGER,
            shutdown_grace: SHUTDOWN_GRACE,
            busy_write_frames: BUSY_WRITE_FRAMES,
            write_gap: WRITE_GAP,
            stall_grace: STALL_GRACE,
            write_deadline: WRITE_DEADLINE,
        }
    }
}

/// What the accept loop and the connection tasks tell the room task. None
/// carries a frame: frames wait in each connection's inbox until the room
/// takes them, so these never queue behind a flood. Each connection sends
/// at most one `Ready` until the room has found its inbox empty, and one
/// `Pressure` per change of its queue's state, so the channel holds a few
/// events per connection at most.
#[derive(Debug)]
enum Event {
    /// A socket was accepted.
    Opened(ConnId, driver::Handles),
    /// The connection has input for the room.
    Ready(ConnId),
    /// The connection's queue became light, or its writer stalled or
    /// recovered.
    Pressure(ConnId),
    /// The connection's writer made no progress for the write deadline.
    TooSlow(ConnId),
}

/// Serves the room on `listener` until `shutdown` resolves; then tells every
/// client, flushes (bounded by [`ServerConfig::shutdown_grace`]) and returns.
pub async fn serve<L, F>(listener: L, config: ServerConfig, shutdown: F)
where
    L: Listener,
    F: Future<Output = ()> + Send,
{
    let (events_tx, events) = mpsc::unbounded_channel();
    let tracker = TaskTracker::new();
    let totals = Arc::new(outbox::Totals::default());
    let accept = tokio::spawn(accept::accept_loop(
        listener,
        config.clone(),
        events_tx,
        totals.clone(),
        tracker.clone(),
    ));
    let mut driver = driver::Driver::new(config.clone(), events, totals);
    let outboxes = driver.run(shutdown).await;
    accept.abort();
    tracker.close();
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace ran out; dropping unflushed connections");
        for outbox in outboxes {
            outbox.abort(None);
        }
        tracker.wait().await;
    }
    tracing::info!("server stopped");
}
