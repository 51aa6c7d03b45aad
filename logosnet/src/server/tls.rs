//! TLS as a [`Listener`]: [`TlsListener`] wraps any listener (real TCP,
//! turmoil's) and hands out [`TlsOnAccept`] streams. Accepting does no TLS
//! work at all, so the accept loop can judge (and refuse) a peer for the
//! price of an accept. The handshake starts when the connection's own task
//! first reads or writes, and runs as a task of its own — on a runtime of
//! its own when the binary gives one ([`TlsListener::on_runtime`]) — so its
//! CPU (a signature, a key exchange: about a millisecond with RSA-2048) is
//! never spent on the room's event loop. The finished stream is handed
//! back to the connection's task.
//!
//! Which reactor: the socket stays registered with the runtime that
//! accepted it (the room's) from start to finish. While handshaking, that
//! reactor only relays the socket's few readiness events to the handshake
//! task (an event and a cross-thread wake each, a few per handshake); once
//! the stream is handed back, every read and write is the room runtime's
//! own, exactly as for a plaintext socket, with no thread hop on the way.
//! (Registering it with the handshake runtime instead would make every
//! later read and write of a member wait for a wake from that thread.)
//!
//! Bounds: a handshake must finish within its deadline from accept
//! ([`TLS_HANDSHAKE_TIMEOUT`], cut to the Hello timeout if that is
//! shorter), or the stream fails with `TimedOut` and its socket is closed:
//! a stalled ClientHello is cut. The ClientHello is read without a slot
//! (waiting costs nothing but a few hundred bytes of buffer); the rest of
//! the handshake, where the CPU goes, needs one of [`MAX_HANDSHAKES`]
//! slots, waited for in order within the same deadline.
//!
//! The certificate is read at each handshake from the listener's
//! [`ServerCertificate`], when the ClientHello has arrived: a reload
//! (SIGHUP) reaches every handshake after it and no session before it.
//! With [`TlsListener::counted_in`], each handshake's outcome (done, or
//! failed, timed out or abandoned) is counted once.
//!
//! A failed or timed-out handshake is, to the connection task, a read
//! error like any other: the room forgets a connection that never said
//! Hello, and the failure is logged at debug. Past the handshake the
//! stream is the plain frame stream, encrypted; nothing above this module
//! knows the difference.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::rustls::server::Acceptor;
use tokio_rustls::server::TlsStream;

use super::Listener;
use super::certificate::ServerCertificate;
use super::metrics::Metrics;
use crate::tls::TlsAcceptor;

/// The longest a TLS handshake may take from accept: 10 s, Go's
/// `http.Transport` default. A client on any real link finishes in a few
/// round trips; a peer that has not sent its ClientHello, or stopped
/// half-way, is cut then rather than holding a socket for the whole Hello
/// timeout. The binary passes the shorter of this and the Hello timeout.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes past their ClientHello that may be in progress at once: the
/// part that costs CPU and rustls state (tens of KiB each while under way,
/// so a few MiB in all). Past it a handshake waits for a slot, in order,
/// within its deadline; nobody is refused for it. 256: half the room's
/// slots, so that every client of a restarted server reconnects within a
/// few rounds, and an attacker who stalls its handshakes after the
/// ClientHello needs 16 sources at the default `--max-per-ip` to hold them
/// all, and then a new stalled handshake every 40 ms to keep them held
/// (the rate limit allows one per 18.75 s per source).
pub const MAX_HANDSHAKES: usize = 256;

/// How the listener's connections do their handshakes; shared by all of
/// them.
#[derive(Clone)]
struct Handshakes {
    /// The server's certificate and TLS settings, as in service when a
    /// handshake's ClientHello arrives.
    certificate: Arc<ServerCertificate>,
    /// Where each handshake's outcome is counted, if anywhere.
    metrics: Option<Arc<Metrics>>,
    /// Where handshakes run; `None`: on the runtime the connection's task
    /// runs on (tests and simulations, which have one).
    runtime: Option<Handle>,
    /// Slots for handshakes past their ClientHello.
    slots: Arc<Semaphore>,
    /// How long after accept a handshake may take.
    timeout: Duration,
}

/// A listener whose connections speak TLS.
pub struct TlsListener<L> {
    /// The listener whose connections are wrapped.
    inner: L,
    /// Shared by every connection.
    handshakes: Handshakes,
}

impl<L: Listener> TlsListener<L> {
    /// Serves TLS on `inner`'s connections with `acceptor`'s certificate;
    /// a handshake not finished `handshake_timeout` after accept fails.
    /// Handshakes run as tasks on the current runtime until
    /// [`TlsListener::on_runtime`] says otherwise.
    pub fn new(inner: L, acceptor: TlsAcceptor, handshake_timeout: Duration) -> Self {
        let certificate = Arc::new(ServerCertificate::new(acceptor.config().clone()));
        Self::serving(inner, certificate, handshake_timeout)
    }

    /// [`TlsListener::new`] with a certificate that may be replaced while
    /// it serves ([`ServerCertificate::reload`]).
    pub fn serving(
        inner: L,
        certificate: Arc<ServerCertificate>,
        handshake_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            handshakes: Handshakes {
                certificate,
                metrics: None,
                runtime: None,
                slots: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
                timeout: handshake_timeout,
            },
        }
    }

    /// Runs every handshake on `runtime` (one whose threads the room does
    /// not use) and hands the finished stream back.
    pub fn on_runtime(mut self, runtime: Handle) -> Self {
        self.handshakes.runtime = Some(runtime);
        self
    }

    /// Counts each handshake's outcome in `metrics`.
    pub fn counted_in(mut self, metrics: Arc<Metrics>) -> Self {
        self.handshakes.metrics = Some(metrics);
        self
    }

    /// At most `max` handshakes past their ClientHello at once (at least
    /// one), instead of [`MAX_HANDSHAKES`].
    pub fn max_handshakes(mut self, max: usize) -> Self {
        self.handshakes.slots = Arc::new(Semaphore::new(max.max(1)));
        self
    }
}

impl<L: Listener> Listener for TlsListener<L> {
    type Stream = TlsOnAccept<L::Stream>;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        let deadline = Instant::now()
            .checked_add(self.handshakes.timeout)
            .unwrap_or_else(far_future);
        let handshakes = self.handshakes.clone();
        Ok((TlsOnAccept::new(stream, handshakes, deadline, peer), peer))
    }

    fn is_plaintext(_stream: &Self::Stream) -> bool {
        false
    }
}

/// An instant no handshake waits for (about 30 years on): the Hello timeout
/// is capped by the command line long before that.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// An accepted connection that completes its TLS handshake on first use.
pub struct TlsOnAccept<S> {
    /// Not started, handshaking, or the established stream.
    state: State<S>,
    /// Whom it came from, for the log.
    peer: SocketAddr,
}

/// What a handshake task gives back: the stream, or why not and the socket
/// (when it is still open, so that it can be closed gracefully).
type Outcome<S> = Result<TlsStream<S>, (io::Error, Option<S>)>;

/// A handshake task; dropping it stops the handshake and closes its socket.
struct Handshake<S>(JoinHandle<Outcome<S>>);

impl<S> Drop for Handshake<S> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum State<S> {
    /// Accepted; no TLS work done yet.
    Fresh {
        /// The socket.
        io: S,
        /// Where and how the handshake will run.
        handshakes: Handshakes,
        /// When it must be done.
        deadline: Instant,
    },
    /// The handshake task is under way.
    Handshaking(Handshake<S>),
    /// The handshake finished: application data flows. (Boxed: a rustls
    /// connection's state is over a kilobyte, the other states are small.)
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
    fn new(io: S, handshakes: Handshakes, deadline: Instant, peer: SocketAddr) -> Self {
        Self {
            state: State::Fresh {
                io,
                handshakes,
                deadline,
            },
            peer,
        }
    }

    /// True once the handshake has finished successfully.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Ready(_))
    }

    /// True until the handshake has been started (no TLS work done yet).
    pub fn is_fresh(&self) -> bool {
        matches!(self.state, State::Fresh { .. })
    }
}

/// The handshake, from the first byte of the ClientHello to the finished
/// stream, all within `deadline`.
async fn handshake<S>(io: S, handshakes: Handshakes, deadline: Instant) -> Outcome<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut outcome = Counted {
        metrics: handshakes.metrics.clone(),
        ok: false,
    };
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake not finished within its deadline",
        )
    };
    // The ClientHello, without a slot: waiting for it costs no CPU.
    let mut hello = LazyConfigAcceptor::new(Acceptor::default(), io);
    let start = match tokio::time::timeout_at(deadline, &mut hello).await {
        Ok(Ok(start)) => start,
        // Not TLS (an alert has been sent), or the peer went away.
        Ok(Err(error)) => return Err((error, hello.take_io())),
        Err(_) => return Err((timed_out(), None)),
    };
    let Ok(Ok(_slot)) = tokio::time::timeout_at(deadline, handshakes.slots.acquire()).await else {
        return Err((timed_out(), None));
    };
    let rest = start
        .into_stream(handshakes.certificate.current())
        .into_fallible();
    match tokio::time::timeout_at(deadline, rest).await {
        Ok(Ok(stream)) => {
            outcome.ok = true;
            Ok(stream)
        }
        Ok(Err((error, io))) => Err((error, Some(io))),
        Err(_) => Err((timed_out(), None)),
    }
}

/// Counts a handshake's outcome when it ends, however it ends: done
/// (`ok` set), failed, timed out, or its task dropped part-way.
struct Counted {
    metrics: Option<Arc<Metrics>>,
    ok: bool,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.handshake(self.ok);
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsOnAccept<S> {
    /// Starts the handshake task, if it has not started.
    fn start(&mut self) {
        let state = std::mem::replace(&mut self.state, State::Closed { error: None });
        self.state = match state {
            State::Fresh {
                io,
                handshakes,
                deadline,
            } => {
                let runtime = handshakes.runtime.clone();
                let task = handshake(io, handshakes, deadline);
                let handle = match runtime {
                    Some(runtime) => runtime.spawn(task),
                    None => tokio::spawn(task),
                };
                State::Handshaking(Handshake(handle))
            }
            other => other,
        };
    }

    /// Drives the handshake: ready once it is over, with an error (taken
    /// once; later calls say the stream is unusable) if it did not succeed.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if matches!(self.state, State::Fresh { .. }) {
            self.start();
        }
        let State::Handshaking(Handshake(task)) = &mut self.state else {
            return Poll::Ready(self.take_failure());
        };
        match ready!(Pin::new(task).poll(cx)) {
            Ok(Ok(stream)) => {
                tracing::debug!(peer = %self.peer, "TLS handshake done");
                self.state = State::Ready(Box::new(stream));
                Poll::Ready(Ok(()))
            }
            Ok(Err((error, io))) => {
                tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
                self.state = match io {
                    Some(io) => State::Failed {
                        io,
                        error: Some(error),
                    },
                    None => State::Closed { error: Some(error) },
                };
                Poll::Ready(self.take_failure())
            }
            Err(join) => {
                // Only if the handshake runtime went away (shutdown).
                tracing::debug!(peer = %self.peer, error = %join, "TLS handshake task ended");
                self.abandon(io::Error::other("the TLS handshake was stopped"));
                Poll::Ready(self.take_failure())
            }
        }
    }

    /// Drops the handshake (or the socket not yet shaken hands with).
    fn abandon(&mut self, error: io::Error) {
        self.state = State::Closed { error: Some(error) };
    }

    /// The stored failure, once; after that a generic one. `Ok` if the
    /// stream is ready.
    fn take_failure(&mut self) -> io::Result<()> {
        let stored = match &mut self.state {
            State::Ready(_) => return Ok(()),
            State::Fresh { .. } | State::Handshaking(_) => None,
            State::Failed { error, .. } | State::Closed { error } => error.take(),
        };
        Err(stored.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "the TLS handshake failed")
        }))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for TlsOnAccept<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.state, State::Fresh { .. } | State::Handshaking(_)) {
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
            State::Closed { error: None } | State::Fresh { .. } | State::Handshaking(_) => {
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for TlsOnAccept<S> {
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
            State::Fresh { .. } | State::Handshaking(_) => {
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
