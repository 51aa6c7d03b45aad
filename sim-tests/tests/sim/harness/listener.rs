//! The turmoil side of the server's network: [`SimListener`] implements
//! `logosnet::server::Listener` for `turmoil::net::TcpListener`, and
//! [`Capped`] wraps each accepted stream so that the real server reads (and
//! writes) in pieces of at most N bytes — 1, 2 or a seeded random size.
//!
//! Nothing here knows a rule of the chat room: the simulated server is
//! `logosnet::server::serve`, the same code the binary runs.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::lock;
use super::log::EventLog;
use super::rng::SplitMix;

/// How big each piece handed through a [`Capped`] stream may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceSize {
    /// Whatever the network gives.
    Any,
    /// At most this many bytes per read or write.
    AtMost(usize),
    /// A random size in `1..=max` for each read or write, from a seeded
    /// generator (so the run stays deterministic).
    Random {
        /// The largest piece.
        max: usize,
    },
}

/// The largest capped piece: [`PieceSize::AtMost`] and [`PieceSize::Random`]
/// above this are clamped to it.
pub const MAX_PIECE: usize = 64;

/// The largest read and write a [`Capped`] stream let through, shared so a
/// test can check that the cap really applied.
#[derive(Debug, Default, Clone)]
pub struct PieceStats {
    /// Largest read passed on.
    pub max_read: usize,
    /// Largest write passed on.
    pub max_write: usize,
    /// Number of non-empty reads.
    pub reads: usize,
}

/// A stream that passes on at most a few bytes per poll, in both directions.
#[derive(Debug)]
pub struct Capped<S> {
    inner: S,
    size: PieceSize,
    rng: SplitMix,
    stats: Arc<Mutex<PieceStats>>,
}

impl<S> Capped<S> {
    /// Wraps `inner`; `seed` drives [`PieceSize::Random`].
    pub fn new(inner: S, size: PieceSize, seed: u64, stats: Arc<Mutex<PieceStats>>) -> Self {
        Self {
            inner,
            size,
            rng: SplitMix::new(seed),
            stats,
        }
    }

    fn next_cap(&mut self, wanted: usize) -> usize {
        let cap = match self.size {
            PieceSize::Any => wanted,
            PieceSize::AtMost(n) => n.min(MAX_PIECE),
            PieceSize::Random { max } => 1 + self.rng.below(max.min(MAX_PIECE) as u64) as usize,
        };
        cap.min(wanted).max(1)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 || self.size == PieceSize::Any {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let cap = self.next_cap(buf.remaining().min(MAX_PIECE));
        let n = ready!(poll_read_at_most(&mut self.inner, cx, buf, cap))?;
        if n > 0 {
            let mut stats = lock(&self.stats);
            stats.max_read = stats.max_read.max(n);
            stats.reads += 1;
        }
        Poll::Ready(Ok(()))
    }
}

/// Reads at most `cap` bytes (at most [`MAX_READ_PIECE`]) from `inner`
/// into `buf`; how many came. Through a small local buffer rather than a
/// sub-view of `buf`, so no unsafe is needed to hand the bytes on.
pub fn poll_read_at_most<R: AsyncRead + Unpin>(
    inner: &mut R,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
    cap: usize,
) -> Poll<io::Result<usize>> {
    let mut local = [0u8; MAX_READ_PIECE];
    let cap = cap.min(buf.remaining()).min(MAX_READ_PIECE);
    let mut piece = ReadBuf::new(&mut local[..cap]);
    ready!(Pin::new(inner).poll_read(cx, &mut piece))?;
    buf.put_slice(piece.filled());
    Poll::Ready(Ok(piece.filled().len()))
}

/// The most [`poll_read_at_most`] passes on in one read: above every cap
/// and pace the simulations use.
pub const MAX_READ_PIECE: usize = 1024;

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        let cap = self.next_cap(buf.len());
        let result = Pin::new(&mut self.inner).poll_write(cx, &buf[..cap]);
        if let Poll::Ready(Ok(n)) = result {
            let mut stats = lock(&self.stats);
            stats.max_write = stats.max_write.max(n);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `logosnet::server::Listener` over turmoil's simulated TCP.
pub struct SimListener {
    inner: turmoil::net::TcpListener,
    size: PieceSize,
    rng: SplitMix,
    stats: Arc<Mutex<PieceStats>>,
    log: EventLog,
}

impl SimListener {
    /// Binds `0.0.0.0:port` inside the current turmoil host.
    pub async fn bind(
        port: u16,
        size: PieceSize,
        seed: u64,
        stats: Arc<Mutex<PieceStats>>,
        log: EventLog,
    ) -> io::Result<Self> {
        let inner = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
        Ok(Self {
            inner,
            size,
            rng: SplitMix::new(seed),
            stats,
            log,
        })
    }
}

impl logosnet::server::Listener for SimListener {
    type Stream = Capped<turmoil::net::TcpStream>;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        self.log.record("server", format_args!("accepted {peer}"));
        let seed = self.rng.next_u64();
        Ok((
            Capped::new(stream, self.size, seed, self.stats.clone()),
            peer,
        ))
    }
}
