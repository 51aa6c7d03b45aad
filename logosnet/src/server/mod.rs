//! The tokio driver: runs the [`Room`](crate::room::Room) over any [`Listener`] — real TCP in
//! the binary, turmoil's simulated TCP in `sim-tests`, either one wrapped in
//! TLS ([`TlsListener`]), or two at once ([`Both`]).
//!
//! Shape: one *room task* (`driver`) owns the `Room` and is the only place
//! rules run; one task per connection (`connection`) reads and writes its
//! socket; an accept task (`accept`) admits sockets. Between a connection
//! and the room sit two bounded queues: its `inbox` of frames read, which
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
pub mod connect_rate;
mod connection;
mod driver;
mod inbox;
mod listeners;
pub mod outbox;
pub mod per_address;
mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

pub use connect_rate::{MAX_NEW_PER_ADDRESS, NEW_PER_ADDRESS_WINDOW, RateLimit};
pub use connection::{MAX_DECODER_BYTES, SERVER_READ_BYTES};
pub use driver::MIN_DRAIN_PER_DEADLINE;
pub use inbox::INBOX_BYTES;
pub use listeners::Both;
pub use outbox::{
    HEAVY_QUEUED_BYTES, IDLE_BUFFER_BYTES, LIGHT_QUEUED_BYTES, MAX_QUEUED_BYTES, Outbox,
};
pub use per_address::MAX_PER_ADDRESS;
pub use tls::{MAX_HANDSHAKES, TLS_HANDSHAKE_TIMEOUT, TlsListener, TlsOnAccept};

use crate::room::{ConnId, RoomConfig};

/// The socket table: sockets open at once before a newcomer has to make
/// room. Above the room's 510 slots so that `Full` can be said to the 256th
/// of each role. When it is full a newcomer is still accepted, and the room
/// closes the oldest connection that has not said `Hello` (else the oldest
/// participant without a name) to make room for it
/// ([`Room::make_room_for`](crate::room::Room::make_room_for)); only when
/// every older socket is a member's is the newcomer told `server busy`.
/// `--max-connections`.
pub const MAX_CONNECTIONS: usize = 2048;

/// Sockets past the table that may be open at once: newcomers whose
/// places are being made, and the connections closed for them while they
/// linger (up to [`CLOSE_LINGER`], or a TLS handshake's deadline). A
/// quarter of the default table: enough that keeping it full takes 256 new
/// connections a second, sustained, and few enough that a storm cannot
/// exhaust file descriptors. Past it a socket is told `server busy` and
/// closed as soon as it is accepted.
pub const MAX_MAKING_ROOM: usize = 512;

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
/// queue no longer holds the room paused, and it is the first to go if the
/// server-wide budget runs short. One second: a reader that is merely slow,
/// or starved of CPU for a moment, drains something within it; one that
/// stopped reading just as its queue turned heavy delays the others by this
/// much at most, once.
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

/// Reading time a connection has to finish a frame it has begun; past it,
/// a `ProtocolError` and a close. 60 s, the spec's own patience with a
/// silent peer (the Hello and username timeouts): the longest frame any
/// state allows (4 KiB) then needs 68 bytes a second, less than any link a
/// person chats over, while a peer stuck mid-frame — or dribbling one a
/// byte at a time — lets go of its slot within a minute. Time the server
/// spends not reading the connection (flood control, a full inbox) does
/// not count.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(60);

/// Sockets refused at accept (past [`MAX_MAKING_ROOM`], the per-address
/// limit or the connection rate) that may be lingering at once
/// while they are told the server is busy; beyond that they are just closed.
pub const MAX_REFUSING: usize = 64;

/// Idle time before the kernel probes a silent connection (TCP keepalive).
/// A peer whose network died without a word (lid closed, cable pulled,
/// a NAT forgot it) sends no FIN or RST, and a quiet room sends it nothing
/// that could fail, so without probes it would hold its name and slot until
/// the server restarts; Linux's default waits two hours before the first.
/// 60 s matches the spec's own patience (the Hello and username timeouts)
/// and stays under the idle timeouts of common NATs and load balancers, so
/// the probes also keep a live idle client's path open. The cost is one
/// small packet a minute per idle connection, 8.5 a second for a full room.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// Time between unanswered keepalive probes: 10 s.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Unanswered probes before the kernel declares the peer dead: 3, so a
/// probe or two lost on a lossy link does not cut a live peer, and a dead
/// one is found [`KEEPALIVE_IDLE`] + 3 × [`KEEPALIVE_INTERVAL`] = 90 s
/// after it last spoke. (While data is unacknowledged the kernel's
/// retransmission timeout applies instead; the write deadline bounds that
/// case first.)
pub const KEEPALIVE_PROBES: u32 = 3;

/// Turns TCP keepalive on for an accepted socket with the numbers above.
fn set_keepalive(stream: &tokio::net::TcpStream) -> io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// Something that hands out connected byte streams.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection. It must do no work for the stream
    /// beyond accepting it (no TLS handshake): the accept loop judges the
    /// peer first, and a refused one must cost as little as possible.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// Whether a frame written to `stream` reaches the peer as it is, so a
    /// connection refused at accept can be told why for the price of one
    /// write. True for plain TCP; false for TLS, where saying anything
    /// takes a handshake, which a refusal for rate must not cost: such a
    /// stream is refused by closing it.
    fn is_plaintext(stream: &Self::Stream) -> bool {
        let _ = stream;
        true
    }
}

/// Whether the socket table had a place free when a socket was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    /// It took a free place.
    HadRoom,
    /// Every place was taken: the room makes one for it (or refuses it).
    Full,
}

/// The kernel send buffer asked for on every accepted socket (Linux
/// doubles it for its own bookkeeping, so 128 KiB in all). Without it the
/// kernel grows each socket's buffer up to `tcp_wmem`'s maximum (4 MiB
/// here), so a client that never reads would hide megabytes in the kernel,
/// outside the server's accounting, before its queue showed anything. 64 KiB
/// is many times what one chat reader takes per round trip.
pub const SEND_BUFFER_BYTES: usize = 64 * 1024;

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        // Chat frames are small and latency matters more than packet count;
        // batching is done by the outbox, not by Nagle.
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER_BYTES);
        // Dead peers are found by probes (see KEEPALIVE_IDLE). A socket that
        // refuses the option is still served.
        if let Err(e) = set_keepalive(&stream) {
            tracing::debug!(%addr, error = %e, "cannot set TCP keepalive");
        }
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
    /// See [`FRAME_DEADLINE`].
    pub frame_deadline: Duration,
    /// Connections one IPv4 address or IPv6 /64 may have open (see
    /// [`per_address`]); 0 turns the limit off.
    pub max_per_address: usize,
    /// Whether loopback peers are limited too (they are exempt by default):
    /// by the per-address limit and the connection rate alike.
    pub limit_loopback: bool,
    /// New connections one IPv4 address or IPv6 /64 may open (see
    /// [`connect_rate`]); a burst of 0 turns the rate off.
    pub connect_rate: RateLimit,
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
            frame_deadline: FRAME_DEADLINE,
            max_per_address: MAX_PER_ADDRESS,
            limit_loopback: false,
            connect_rate: RateLimit::DEFAULT,
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
    /// A socket was accepted, into a free place in the table or not.
    Opened(ConnId, driver::Handles, Table),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Keepalive cannot be simulated (turmoil has no probes), so this reads
    /// the options back from a real accepted loopback socket.
    #[tokio::test]
    async fn accepted_sockets_have_keepalive_with_our_numbers() {
        let mut listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, peer) = Listener::accept(&mut listener).await.expect("accept");
        assert_eq!(peer, client.local_addr().expect("client address"));
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(
            socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            KEEPALIVE_IDLE
        );
        assert_eq!(
            socket.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
            KEEPALIVE_INTERVAL
        );
        assert_eq!(
            socket.tcp_keepalive_retries().expect("TCP_KEEPCNT"),
            KEEPALIVE_PROBES
        );
        assert!(accepted.nodelay().expect("TCP_NODELAY"));
        // The client's own socket is untouched: the option is the server's.
        assert!(
            !socket2::SockRef::from(&client)
                .keepalive()
                .expect("SO_KEEPALIVE")
        );
    }
}
