//! Simulated clients: `testkit`'s [`Peer`] over turmoil's TCP (or TLS on
//! it), every frame it sends or receives recorded in the run's
//! [`EventLog`]. What is particular to the simulation is only how the
//! stream is built: reads through a [`Capped`] stream (pieces of the
//! scenario's size), or a [`Paced`] one (a slow link), and frames written
//! in pieces a tick apart.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use logosnet::protocol::{Role, ServerFrame};
use testkit::{Peer, Trace};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use turmoil::net::TcpStream;

use super::listener::{Capped, PieceSize, PieceStats, poll_read_at_most};
use super::log::EventLog;
use super::{PORT, SERVER};

/// How long (simulated) a client waits for a frame it expects.
pub const EXPECT_WITHIN: Duration = Duration::from_secs(5);

/// What one read attempt found.
pub type Got = testkit::Got<ServerFrame>;

/// A client's byte stream: plain or TLS, its reads capped or paced.
pub trait SimStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> SimStream for S {}

/// One simulated client connection.
pub type SimClient = Peer<Box<dyn SimStream>>;

/// Records a client's frames in `log`.
pub fn trace(log: &EventLog) -> Trace {
    let log = log.clone();
    Arc::new(move |who, what| log.record(who, what))
}

/// A client over an already connected stream; each frame is written in
/// pieces of `write_piece` bytes, a tick apart, when it is `Some`.
pub fn client_over(
    label: &str,
    log: &EventLog,
    stream: Box<dyn SimStream>,
    write_piece: Option<usize>,
) -> SimClient {
    let client = Peer::new(label, stream)
        .with_patience(EXPECT_WITHIN)
        .traced(trace(log));
    match write_piece {
        Some(bytes) => client.writing_in_pieces(bytes),
        None => client,
    }
}

/// Connects with whole-frame writes and uncapped reads; panics if the
/// server cannot be reached.
pub async fn connect(label: &str, log: &EventLog) -> SimClient {
    connect_with(label, log, PieceSize::Any, None)
        .await
        .unwrap_or_else(|e| panic!("{label}: connect failed: {e}"))
}

/// Connects; reads come in `read` pieces and each frame is written in
/// pieces of `write_piece` bytes (a tick apart) when it is `Some`.
pub async fn connect_with(
    label: &str,
    log: &EventLog,
    read: PieceSize,
    write_piece: Option<usize>,
) -> io::Result<SimClient> {
    let (reader, writer) = tcp(label, log).await?;
    let reader = capped(label, reader, read);
    let stream = Box::new(tokio::io::join(reader, writer));
    Ok(client_over(label, log, stream, write_piece))
}

/// Connects as a reader on a slow link: it takes at most `per_tick` bytes
/// off the socket each `tick` (in reads of `read` pieces), so the server
/// sees a reader that keeps reading, slowly.
pub async fn connect_paced(
    label: &str,
    log: &EventLog,
    read: PieceSize,
    per_tick: usize,
    tick: Duration,
) -> SimClient {
    let (reader, writer) = tcp(label, log)
        .await
        .unwrap_or_else(|e| panic!("{label}: connect failed: {e}"));
    let reader = Paced::new(capped(label, reader, read), per_tick, tick);
    let stream = Box::new(tokio::io::join(reader, writer));
    client_over(label, log, stream, None)
}

/// A TCP connection to the server's plaintext port, in halves.
async fn tcp(
    label: &str,
    log: &EventLog,
) -> io::Result<(
    turmoil::net::tcp::OwnedReadHalf,
    turmoil::net::tcp::OwnedWriteHalf,
)> {
    let stream = TcpStream::connect((SERVER, PORT)).await?;
    log.record(label, format_args!("connected"));
    Ok(stream.into_split())
}

/// `reader` passing on pieces of `size`, seeded from the label.
fn capped<R>(label: &str, reader: R, size: PieceSize) -> Capped<R> {
    let stats = Arc::new(Mutex::new(PieceStats::default()));
    Capped::new(reader, size, label_seed(label), stats)
}

/// A seed for a client's piece sizes, from its label.
pub fn label_seed(label: &str) -> u64 {
    label
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

/// Connects with whole-frame writes and uncapped reads, and records only
/// the connection, not each frame: for crowds whose every frame would
/// swamp the log (the run is as deterministic; the log is only shorter).
pub async fn connect_quiet(label: &str, log: &EventLog) -> SimClient {
    let (reader, writer) = tcp(label, log)
        .await
        .unwrap_or_else(|e| panic!("{label}: connect failed: {e}"));
    let reader = capped(label, reader, PieceSize::Any);
    let stream: Box<dyn SimStream> = Box::new(tokio::io::join(reader, writer));
    Peer::new(label, stream).with_patience(EXPECT_WITHIN)
}

/// Connects a participant named `name` (label = name) and joins the room.
pub async fn participant(name: &str, log: &EventLog) -> SimClient {
    let mut client = connect(name, log).await;
    client.join(name).await;
    client
}

/// Connects an observer labelled `label`.
pub async fn observer(label: &str, log: &EventLog) -> SimClient {
    let mut client = connect(label, log).await;
    client.hello(Role::Observer).await;
    client
}

/// A reader that passes on at most `per_tick` bytes, then waits a `tick`
/// (of simulated time, under turmoil) before passing on more.
pub struct Paced<R> {
    /// The stream read from.
    inner: R,
    /// Bytes passed on per tick.
    per_tick: usize,
    /// How long a tick is.
    tick: Duration,
    /// Bytes passed on in this tick.
    used: usize,
    /// The wait for the next tick, once this one's bytes are used up.
    wait: Option<Pin<Box<Sleep>>>,
}

impl<R> Paced<R> {
    /// Paces `inner` to `per_tick` bytes a `tick`.
    pub fn new(inner: R, per_tick: usize, tick: Duration) -> Self {
        Self {
            inner,
            per_tick: per_tick.max(1),
            tick,
            used: 0,
            wait: None,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Paced<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.used >= this.per_tick {
            let tick = this.tick;
            let wait = this
                .wait
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(tick)));
            ready!(wait.as_mut().poll(cx));
            this.wait = None;
            this.used = 0;
        }
        let room = this.per_tick - this.used;
        this.used += ready!(poll_read_at_most(&mut this.inner, cx, buf, room))?;
        Poll::Ready(Ok(()))
    }
}
