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
//!
//! For operators: [`metrics`] (what `--metrics` serves, read from atomics
//! the room task publishes once a turn), [`certificate`] (the TLS pair in
//! service, replaced on SIGHUP), [`peers`] and [`json_log`] (the peer
//! address on every connection's JSON log line).

mod accept;
pub mod certificate;
pub(crate) mod connect_rate;
mod connection;
mod driver;
mod inbox;
pub mod json_log;
mod listeners;
pub mod metrics;
pub(crate) mod outbox;
pub mod peers;
pub(crate) mod per_address;
mod pressure;
mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

pub use certificate::ServerCertificate;
pub use connect_rate::{MAX_NEW_PER_ADDRESS, NEW_PER_ADDRESS_WINDOW, RateLimit};
pub use connection::{MAX_DECODER_BYTES, SERVER_READ_BYTES};
pub use inbox::INBOX_BYTES;
pub use listeners::Both;
pub use metrics::Metrics;
pub use outbox::{IDLE_BUFFER_BYTES, LAG_GRAIN};
pub use peers::Peers;
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

/// How long shutdown waits for every queue to flush. Past half of it, each
/// connection still flushing has its queue cut after the frame in progress
/// and gets only the shutdown notice; past all of it, every connection is
/// dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A connection whose oldest frame not yet written was queued this long ago
/// is dropped as too far behind: the lag bound, in seconds of room traffic
/// rather than bytes, so that a member that keeps up with what the room
/// actually sends is never dropped, whatever its bytes per second. 10 s:
/// NATS' write deadline (a subscriber whose socket write blocks that long is
/// a slow consumer); Redis lets a pub/sub client sit over its soft output
/// limit for 60 s; an IRC server's send queue is a byte count (typically
/// some hundreds of KiB), which at a busy room's 1.3 MB/s is under a second
/// of traffic. Ten seconds behind, a chat is no longer a conversation.
pub const MAX_LAG: Duration = Duration::from_secs(10);

/// The most the room waits at once for members whose queues turned heavy,
/// and, separately, for the server-wide budget (see
/// [`pressure`](pressure::HoldBudget)): half a second, a pause a person
/// reading barely notices, and long enough for a reader that hiccuped
/// (a scheduling stall, a lost packet's retransmission) to catch up.
pub const HOLD_BUDGET: Duration = Duration::from_millis(500);

/// The time over which a spent [`HOLD_BUDGET`] is earned back: 10 s, so the
/// room waits for others at most 5 % of the time.
pub const HOLD_WINDOW: Duration = Duration::from_secs(10);

/// A queue charged past this is *heavy*: its reader fell well behind (at a
/// busy room's 1.3 MB/s, about 0.4 s), and the room may pause for it, within
/// the hold budget.
pub const HEAVY_QUEUED_BYTES: usize = 512 * 1024;

/// A heavy queue charged below this is light again: a quarter of the heavy
/// mark, so the room does not flap between paused and running.
pub const LIGHT_QUEUED_BYTES: usize = 128 * 1024;

/// Bytes that may be charged to all queues together: 64 MiB. The room
/// stops taking chat lines at half of it (within its hold budget; past it
/// the connection furthest behind is dropped until the total is under three
/// eighths), so the charged total stays near half. (NATS' per-client
/// `max_pending` is 64 MiB; ours is for the whole server.)
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
/// retransmission timeout applies instead; the lag bound bounds that
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
    /// See [`MAX_LAG`].
    pub max_lag: Duration,
    /// See [`HOLD_BUDGET`]; zero: the room never waits for anyone.
    pub hold_budget: Duration,
    /// See [`HOLD_WINDOW`].
    pub hold_window: Duration,
    /// See [`HEAVY_QUEUED_BYTES`].
    pub heavy_queued_bytes: usize,
    /// See [`LIGHT_QUEUED_BYTES`].
    pub light_queued_bytes: usize,
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
    /// Where the server counts what it does, for `--metrics` (see
    /// [`metrics`]); `None` (the default): nothing is counted.
    pub metrics: Option<Arc<Metrics>>,
    /// Where each open connection's address is kept for the log (see
    /// [`peers`]); `None` (the default): nowhere.
    pub peers: Option<Arc<Peers>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            room: RoomConfig::default(),
            max_lag: MAX_LAG,
            hold_budget: HOLD_BUDGET,
            hold_window: HOLD_WINDOW,
            heavy_queued_bytes: HEAVY_QUEUED_BYTES,
            light_queued_bytes: LIGHT_QUEUED_BYTES,
            max_queued_total: MAX_QUEUED_TOTAL,
            max_connections: MAX_CONNECTIONS,
            close_linger: CLOSE_LINGER,
            shutdown_grace: SHUTDOWN_GRACE,
            busy_write_frames: BUSY_WRITE_FRAMES,
            write_gap: WRITE_GAP,
            frame_deadline: FRAME_DEADLINE,
            max_per_address: MAX_PER_ADDRESS,
            limit_loopback: false,
            connect_rate: RateLimit::DEFAULT,
            metrics: None,
            peers: None,
        }
    }
}

impl ServerConfig {
    /// The pressure policy's numbers: the budget's mark is half the total,
    /// its resume mark three quarters of that.
    fn pressure(&self) -> pressure::PressureConfig {
        let mark = self.max_queued_total / 2;
        pressure::PressureConfig {
            max_lag: self.max_lag,
            hold: self.hold_budget,
            hold_window: self.hold_window,
            budget_mark: mark,
            budget_resume: mark / 4 * 3,
        }
    }

    /// Where each queue turns heavy and light.
    fn queue_marks(&self) -> outbox::QueueMarks {
        outbox::QueueMarks {
            heavy: self.heavy_queued_bytes,
            light: self.light_queued_bytes.min(self.heavy_queued_bytes),
        }
    }
}

/// What the accept loop and the connection tasks tell the room task. None
/// carries a frame: frames wait in each connection's inbox until the room
/// takes them, so these never queue behind a flood. Each connection sends
/// at most one `Ready` until the room has found its inbox empty, and one
/// `Light` per batch that made its queue light, so the channel holds a few
/// events per connection at most.
#[derive(Debug)]
enum Event {
    /// A socket was accepted, into a free place in the table or not.
    Opened(ConnId, driver::Handles, Table),
    /// The connection has input for the room.
    Ready(ConnId),
    /// The connection's queue became light.
    Light(ConnId),
}

/// How long the last wait of a shutdown may take, after every connection
/// task has been told to stop at once (they stop at their next poll).
const ABORT_WAIT: Duration = Duration::from_secs(1);

/// Serves the room on `listener` until `shutdown` resolves; then tells every
/// client, flushes (bounded by [`ServerConfig::shutdown_grace`]) and returns.
pub async fn serve<L, F>(listener: L, config: ServerConfig, shutdown: F)
where
    L: Listener,
    F: Future<Output = ()> + Send,
{
    let (events_tx, events) = mpsc::unbounded_channel();
    let tracker = TaskTracker::new();
    let signals = connection::Signals::default();
    let totals = Arc::new(outbox::Totals::default());
    if let Some(metrics) = &config.metrics {
        metrics.attach(totals.clone(), config.max_queued_total);
    }
    let accept = tokio::spawn(accept::accept_loop(
        listener,
        config.clone(),
        events_tx,
        totals.clone(),
        tracker.clone(),
        signals.clone(),
    ));
    let mut driver = driver::Driver::new(&config, events, totals);
    driver.run(shutdown).await;
    // Nothing new is accepted from here on, so the room hears of every
    // connection there will ever be before it says goodbye.
    accept.abort();
    let _ = accept.await;
    driver.finish();
    tracker.close();
    let half = config.shutdown_grace / 2;
    if tokio::time::timeout(half, tracker.wait()).await.is_err() {
        tracing::info!("cutting the queues of connections still flushing");
        signals.cut.cancel();
        let rest = config.shutdown_grace.saturating_sub(half);
        if tokio::time::timeout(rest, tracker.wait()).await.is_err() {
            tracing::warn!("shutdown grace ran out; dropping unflushed connections");
            signals.abort.cancel();
            if tokio::time::timeout(ABORT_WAIT, tracker.wait())
                .await
                .is_err()
            {
                tracing::error!("connection tasks did not stop; leaving them");
            }
        }
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
