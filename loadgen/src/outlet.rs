//! Where a participant's chat lines go: what the send clock
//! ([`crate::pacer`]) writes each encoded line to.
//!
//! Over plain TCP it is a duplicate of the socket the reader holds,
//! non-blocking, and the clock thread writes it itself ([`Outlet::Socket`]):
//! a line leaves when it is due, without waiting for the runtime. Bytes the
//! server is not taking yet wait in the outlet, in order, for the clock to
//! offer them again.
//!
//! A TLS connection has one state for both directions, so no second
//! descriptor can write it. Over TLS the outlet hands each line to the
//! connection's writer task ([`write_lines`]), which owns the write half of
//! the TLS stream on the runtime, writes whatever lines have come in as
//! one piece (so a batch is one TLS record), flushes, and records each
//! line's send lag when the write is done. That task runs on the runtime
//! with the readers, so over TLS a busy receive side can delay sends; the
//! send lag shows it. Its queue is a channel bounded, like the socket
//! outlet's, by the participant's share of the schedule.
//!
//! Leaving is closing the sending side: a TCP half-close, or over TLS the
//! writer's `close_notify` and half-close once it has written what it
//! holds. It does not read, and it decides nothing about the schedule.

use std::io::{self, Write as _};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::shared::Shared;
use crate::stats::LatencyBuffer;

/// Lines a TLS writer takes from its channel per write.
const BATCH_LINES: usize = 64;

/// One encoded line on its way to a TLS writer, with the instant it was
/// due (for its send lag).
#[derive(Debug)]
pub struct Line {
    /// When the line was scheduled.
    pub scheduled: Instant,
    /// The whole frame, header included.
    pub frame: Bytes,
}

/// A participant's sending side.
#[derive(Debug)]
pub enum Outlet {
    /// Plain TCP: the clock thread writes the socket itself.
    Socket {
        /// A duplicate of the reader's socket, non-blocking.
        socket: std::net::TcpStream,
        /// Bytes the server has not accepted yet, oldest first.
        queued: Vec<u8>,
    },
    /// TLS: lines go to the connection's writer task; `None` once the
    /// participant has left.
    Writer(Option<mpsc::UnboundedSender<Line>>),
}

/// What became of a line offered to an outlet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Written to the socket, or queued behind bytes the server has not
    /// accepted yet: the clock records its send lag now.
    Written,
    /// Handed to the writer task, which records its send lag once written.
    Handed,
    /// The connection is gone (the reader reports how).
    Broken,
}

impl Outlet {
    /// The plain-TCP outlet on `socket` (a non-blocking duplicate of the
    /// reader's).
    pub fn socket(socket: std::net::TcpStream) -> Self {
        Outlet::Socket {
            socket,
            queued: Vec::new(),
        }
    }

    /// The TLS outlet for `write`, the write half of a connection: spawns
    /// its writer task on the current runtime.
    pub fn writer<W>(shared: Arc<Shared>, write: W) -> Self
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (lines, incoming) = mpsc::unbounded_channel();
        tokio::spawn(write_lines(shared, write, incoming));
        Outlet::Writer(Some(lines))
    }

    /// Offers one frame, due at `scheduled`.
    pub fn offer(&mut self, frame: Bytes, scheduled: Instant) -> Offered {
        match self {
            Outlet::Socket { socket, queued } => {
                if !queued.is_empty() {
                    queued.extend_from_slice(&frame);
                    return match flush_socket(socket, queued) {
                        Ok(_) => Offered::Written,
                        Err(_) => Offered::Broken,
                    };
                }
                match write_some(socket, &frame) {
                    Ok(written) => {
                        queued.extend_from_slice(&frame[written..]);
                        Offered::Written
                    }
                    Err(_) => Offered::Broken,
                }
            }
            Outlet::Writer(lines) => match lines {
                Some(sender) if sender.send(Line { scheduled, frame }).is_ok() => Offered::Handed,
                _ => Offered::Broken,
            },
        }
    }

    /// Offers the queued bytes to the socket again: `Ok(true)` if none are
    /// left (always, over TLS: the writer task holds its own queue).
    pub fn flush(&mut self) -> io::Result<bool> {
        match self {
            Outlet::Socket { socket, queued } => flush_socket(socket, queued),
            Outlet::Writer(_) => Ok(true),
        }
    }

    /// Drops what is queued (the connection is gone).
    pub fn discard(&mut self) {
        if let Outlet::Socket { queued, .. } = self {
            queued.clear();
        }
    }

    /// Whether bytes wait for the server here.
    pub fn has_queued(&self) -> bool {
        matches!(self, Outlet::Socket { queued, .. } if !queued.is_empty())
    }

    /// Closes the sending side: how a participant leaves. Over TLS the
    /// writer writes what it holds first.
    pub fn leave(&mut self) {
        match self {
            Outlet::Socket { socket, .. } => {
                let _ = socket.shutdown(Shutdown::Write);
            }
            Outlet::Writer(lines) => drop(lines.take()),
        }
    }
}

/// Offers `queued` to `socket`; `Ok(true)` once it is empty.
fn flush_socket(socket: &mut std::net::TcpStream, queued: &mut Vec<u8>) -> io::Result<bool> {
    if queued.is_empty() {
        return Ok(true);
    }
    let written = write_some(socket, queued)?;
    queued.drain(..written);
    Ok(queued.is_empty())
}

/// Writes as much of `bytes` as the socket takes now: `Ok(0)` when it takes
/// nothing (would block).
fn write_some(socket: &mut std::net::TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match socket.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// A TLS connection's writer task: writes the lines as they come, each
/// batch as one piece, flushed (a TLS stream holds a record's end until
/// flushed), and records their send lag. When the channel closes (the
/// participant left, or the run ended) it closes the sending side; when a
/// write fails it stops, and the clock's next offer finds it gone.
pub async fn write_lines<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut write: W,
    mut incoming: mpsc::UnboundedReceiver<Line>,
) {
    let mut batch = Vec::with_capacity(BATCH_LINES);
    let mut bytes = Vec::new();
    let mut lag = LatencyBuffer::default();
    while incoming.recv_many(&mut batch, BATCH_LINES).await > 0 {
        bytes.clear();
        for line in &batch {
            bytes.extend_from_slice(&line.frame);
        }
        if write.write_all(&bytes).await.is_err() || write.flush().await.is_err() {
            return;
        }
        let now = Instant::now();
        for line in batch.drain(..) {
            let micros = now.saturating_duration_since(line.scheduled).as_micros() as u64;
            lag.push(micros, &shared.send_lag);
        }
        // Merged after every write, not only when the buffer fills: the
        // report is read while this task may still be closing.
        shared.send_lag.merge(&mut lag);
    }
    let _ = write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use tokio::io::AsyncReadExt as _;

    use super::*;
    use crate::config::Config;
    use crate::transport::Transport;

    fn shared() -> Arc<Shared> {
        let config = Config::parse_from(["loadgen"]);
        Arc::new(Shared::new(
            config,
            "127.0.0.1:1".parse().unwrap(),
            Transport::Plain,
        ))
    }

    #[tokio::test]
    async fn a_writer_sends_every_line_in_order_then_closes_on_leave() {
        let shared = shared();
        let (near, mut far) = tokio::io::duplex(1024);
        let mut outlet = Outlet::writer(shared.clone(), near);
        let mut expected = Vec::new();
        for i in 0..500u32 {
            let frame = Bytes::from(i.to_be_bytes().repeat(3));
            expected.extend_from_slice(&frame);
            assert_eq!(outlet.offer(frame, Instant::now()), Offered::Handed);
            assert!(!outlet.has_queued());
        }
        outlet.leave();
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, expected);
        assert_eq!(shared.send_lag.snapshot().len(), 500);
        assert_eq!(
            outlet.offer(Bytes::from_static(b"late"), Instant::now()),
            Offered::Broken
        );
    }

    #[tokio::test]
    async fn a_writer_whose_stream_failed_is_broken() {
        let (near, far) = tokio::io::duplex(64);
        drop(far);
        let mut outlet = Outlet::writer(shared(), near);
        let mut offered = Offered::Handed;
        for _ in 0..1000 {
            offered = outlet.offer(Bytes::from_static(b"line"), Instant::now());
            if offered == Offered::Broken {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(offered, Offered::Broken);
    }
}
