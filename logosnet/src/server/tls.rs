//! TLS as a [`Listener`]: [`TlsListener`] wraps any listener (real TCP,
//! turmoil's) and hands out [`TlsOnAccept`] streams whose handshake runs
//! when the connection's own task first reads or writes, never in the
//! accept loop, so a client that stalls its handshake delays nobody else.
//!
//! The handshake counts against the Hello timeout: it must finish by the
//! same instant the room's Hello deadline falls (both start at accept), or
//! the stream fails with `TimedOut` and its socket is closed. A failed or
//! timed-out handshake is, to the connection task, a read error like any
//! other: the room forgets a connection that never said Hello, and the
//! failure is logged at debug. Past the handshake the stream is the plain
//! frame stream, encrypted; nothing above this module knows the difference.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::{FallibleAccept, TlsStream};

use super::Listener;
use crate::tls::TlsAcceptor;

/// A listener whose connections speak TLS.
pub struct TlsListener<L> {
    /// The listener whose connections are wrapped.
    inner: L,
    /// The server's certificate and TLS settings.
    acceptor: TlsAcceptor,
    /// How long after accept a handshake may take.
    handshake_timeout: Duration,
}

impl<L: Listener> TlsListener<L> {
    /// Serves TLS on `inner`'s connections with `acceptor`'s certificate;
    /// a handshake not finished `handshake_timeout` after accept fails
    /// (give it the Hello timeout).
    pub fn new(inner: L, acceptor: TlsAcceptor, handshake_timeout: Duration) -> Self {
        Self {
            inner,
            acceptor,
            handshake_timeout,
        }
    }
}

impl<L: Listener> Listener for TlsListener<L> {
    type Stream = TlsOnAccept<L::Stream>;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        let handshake = self.acceptor.accept(stream).into_fallible();
        let deadline = Instant::now()
            .checked_add(self.handshake_timeout)
            .unwrap_or_else(far_future);
        Ok((TlsOnAccept::new(handshake, deadline, peer), peer))
    }
}

/// An instant no handshake waits for (about 30 years on): the Hello timeout
/// is capped by the command line long before that.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// An accepted connection that completes its TLS handshake on first use.
pub struct TlsOnAccept<S> {
    /// Handshaking, or the established stream.
    state: State<S>,
    /// Set while handshaking: when the handshake gives up.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whom it came from, for the log.
    peer: SocketAddr,
}

enum State<S> {
    /// The handshake is under way. (Both rustls states are boxed: a
    /// connection's state is over a kilobyte either way, and the failed and
    /// closed ones are small.)
    Handshaking(Box<FallibleAccept<S>>),
    /// The handshake finished: application data flows.
    Ready(Box<TlsStream<S>>),
    /// The handshake failed; rustls has tried to send its alert. The socket
    /// is kept so that it can be closed gracefully.
    Failed {
        /// The socket, to close gracefully.
        io: S,
        /// Reported by the next read or write, then `None`.
        error: Option<io::Error>,
    },
    /// The handshake was abandoned (timed out, or the server closed the
    /// connection first) and the socket is closed.
    Closed { error: Option<io::Error> },
}

impl<S> TlsOnAccept<S> {
    fn new(handshake: FallibleAccept<S>, deadline: Instant, peer: SocketAddr) -> Self {
        Self {
            state: State::Handshaking(Box::new(handshake)),
            deadline: Some(Box::pin(tokio::time::sleep_until(deadline))),
            peer,
        }
    }

    /// True once the handshake has finished successfully.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Ready(_))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsOnAccept<S> {
    /// Drives the handshake: ready once it is over, with an error (taken
    /// once; later calls say the stream is unusable) if it did not succeed.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let State::Handshaking(handshake) = &mut self.state else {
            return Poll::Ready(self.take_failure());
        };
        match Pin::new(handshake.as_mut()).poll(cx) {
            Poll::Ready(Ok(stream)) => {
                tracing::debug!(peer = %self.peer, "TLS handshake done");
                self.state = State::Ready(Box::new(stream));
                self.deadline = None;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err((error, io))) => {
                tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
                self.state = State::Failed {
                    io,
                    error: Some(error),
                };
                self.deadline = None;
                Poll::Ready(self.take_failure())
            }
            Poll::Pending => {
                let expired = self
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                self.abandon(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake not finished within the Hello timeout",
                ));
                Poll::Ready(self.take_failure())
            }
        }
    }

    /// Drops the handshake and its socket.
    fn abandon(&mut self, error: io::Error) {
        self.state = State::Closed { error: Some(error) };
        self.deadline = None;
    }

    /// The stored failure, once; after that a generic one. `Ok` if the
    /// stream is ready.
    fn take_failure(&mut self) -> io::Result<()> {
        let stored = match &mut self.state {
            State::Ready(_) => return Ok(()),
            State::Handshaking(_) => None,
            State::Failed { error, .. } | State::Closed { error } => error.take(),
        };
        Err(stored.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "the TLS handshake failed")
        }))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsOnAccept<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.state, State::Handshaking(_)) {
            ready!(this.poll_handshake(cx))?;
        }
        match &mut this.state {
            State::Ready(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            State::Failed { error: Some(_), .. } | State::Closed { error: Some(_) } => {
                Poll::Ready(this.take_failure())
            }
            // Reported already: what the peer still sends is discarded until
            // it closes, so a graceful close can wait for its end.
            State::Failed { io, error: None } => poll_discard(io, cx),
            State::Closed { error: None } | State::Handshaking(_) => Poll::Ready(Ok(())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsOnAccept<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(cx))?;
        match &mut this.state {
            State::Ready(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            _ => Poll::Ready(this.take_failure().map(|()| 0)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(cx))?;
        match &mut this.state {
            State::Ready(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
            _ => Poll::Ready(this.take_failure().map(|()| 0)),
        }
    }

    /// Vectored, as rustls is: a batch of frames becomes one TLS record (up
    /// to 16 KiB) and one write, not a record and a write per frame.
    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Ready(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.state {
            // close_notify, then the socket's own shutdown.
            State::Ready(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            State::Failed { io, .. } => Pin::new(io).poll_shutdown(cx),
            State::Handshaking(_) => {
                // Nothing was said over TLS yet: just close the socket.
                tracing::debug!(peer = %this.peer, "closed during the TLS handshake");
                this.abandon(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "closed during the TLS handshake",
                ));
                Poll::Ready(Ok(()))
            }
            State::Closed { .. } => Poll::Ready(Ok(())),
        }
    }
}

/// Reads and drops whatever `io` has; ready (as an end of stream) only when
/// the peer has closed or the socket failed. Yields after
/// [`DISCARD_READS_PER_POLL`] reads so a peer that keeps sending cannot hold
/// the thread.
fn poll_discard<S: AsyncRead + Unpin>(io: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let mut sink = [0u8; 512];
    for _ in 0..DISCARD_READS_PER_POLL {
        let mut scratch = ReadBuf::new(&mut sink);
        match ready!(Pin::new(&mut *io).poll_read(cx, &mut scratch)) {
            Ok(()) if scratch.filled().is_empty() => return Poll::Ready(Ok(())),
            Ok(()) => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Reads of 512 bytes a failed connection's discarding may do per poll
/// (8 KiB): the linger that bounds it is the connection task's.
const DISCARD_READS_PER_POLL: usize = 16;

#[cfg(test)]
mod tests;
