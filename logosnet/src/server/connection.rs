//! One connection's task: bytes in → frames → events for the room; queued
//! frames out → the socket, in batches.
//!
//! Reading and writing share one task and one `select!`, so a connection
//! costs one task, and a peer that stops reading blocks only its own task's
//! writes: the room never waits on it (it pushes into the [`Outbox`] and
//! moves on). The task ends when the room closes the connection (flush,
//! half-close, linger briefly so the last frames are not overtaken by a
//! reset), aborts it (slow consumer), or the peer goes away.

use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Event;
use super::outbox::{Batch, Next, Outbox};
use crate::framed::FrameReader;
use crate::protocol::ClientFrame;
use crate::room::ConnId;

/// How a connection batches its writes, and how long it lingers on close.
///
/// A write system call costs the same for one small frame as for fifty (on
/// loopback it also runs the receiver's TCP path), so at a high message rate
/// the number of writes, not bytes, is what fills a core. A connection that
/// wrote `busy_frames` or more frames at once is behind the room: it then
/// waits `gap` before its next write so that write carries everything that
/// came meanwhile. A connection that keeps up writes each frame at once, so
/// a quiet room pays no added latency.
#[derive(Debug, Clone, Copy)]
pub(super) struct Coalescing {
    pub(super) busy_frames: usize,
    pub(super) gap: Duration,
    pub(super) linger: Duration,
}

/// Runs the connection until it is closed, aborted or gone.
pub(super) async fn run<S>(
    conn: ConnId,
    stream: S,
    outbox: Arc<Outbox>,
    events: mpsc::Sender<Event>,
    coalescing: Coalescing,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut reader = FrameReader::new(stream);
    let mut reading = true;
    let mut batch = Batch::default();
    // Set while the connection is busy: the next write waits until then so
    // that it carries many frames (see `Coalescing`).
    let mut hold_until: Option<Instant> = None;
    loop {
        let write_now = tokio::select! {
            biased;
            () = outbox.cancelled() => return,
            () = sleep_until(hold_until), if hold_until.is_some() => true,
            () = outbox.ready(), if hold_until.is_none() => true,
            filled = reader.fill(), if reading => {
                match filled {
                    Ok(0) => {
                        if reader.decoder().is_mid_frame() {
                            tracing::debug!(conn, "peer closed mid-frame");
                        }
                        reading = false;
                        let _ = events.send(Event::Closed(conn)).await;
                    }
                    Ok(_) => {
                        if !forward_frames(conn, &mut reader, &events).await {
                            reading = false;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(conn, error = %e, "read failed");
                        reading = false;
                        let _ = events.send(Event::Closed(conn)).await;
                    }
                }
                false
            }
        };
        if !write_now {
            continue;
        }
        hold_until = None;
        let next = outbox.take(&mut batch);
        if next == Next::Wait {
            continue;
        }
        let frames = batch.frames();
        let writing = async {
            let before = batch.remaining();
            let result = reader.get_mut().write_all_buf(&mut batch).await;
            (result, before - batch.remaining())
        };
        let (result, written) = tokio::select! {
            biased;
            () = outbox.cancelled() => return,
            done = writing => done,
        };
        outbox.written(written);
        if let Err(e) = result {
            tracing::debug!(conn, error = %e, "write failed");
            // The socket is finished: tell the room (it may already know,
            // and may already have closed us) and drop it.
            let _ = events.send(Event::Closed(conn)).await;
            return;
        }
        if next == Next::WriteThenClose {
            close_gracefully(reader.get_mut(), coalescing.linger).await;
            return;
        }
        if frames >= coalescing.busy_frames {
            hold_until = Some(Instant::now() + coalescing.gap);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Sends every complete frame to the room; false once the stream is broken
/// (a violation was reported) or the room is gone.
async fn forward_frames<S>(
    conn: ConnId,
    reader: &mut FrameReader<S>,
    events: &mpsc::Sender<Event>,
) -> bool
where
    S: AsyncRead + Unpin,
{
    loop {
        let event = match reader.decoder().next_frame::<ClientFrame>() {
            Ok(None) => return true,
            Ok(Some(frame)) => Event::Frame(conn, frame),
            Err(e) => {
                let _ = events.send(Event::Violation(conn, e)).await;
                return false;
            }
        };
        if events.send(event).await.is_err() {
            return false;
        }
    }
}

/// Half-closes, then reads and discards until the peer closes or `linger`
/// passes, so the frames just written are not destroyed by a reset that
/// unread incoming data would otherwise cause.
async fn close_gracefully<S>(stream: &mut S, linger: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(linger, async {
        let mut sink = [0u8; 4096];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;

    use super::*;

    /// A socket whose peer is gone: reads wait forever, writes fail.
    struct BrokenPeer;

    impl AsyncRead for BrokenPeer {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for BrokenPeer {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
    }

    /// Regression (found by the connect/close storm test): the room had
    /// already closed the connection when its last write failed; the task
    /// then waited for a close that had already come, holding the socket's
    /// descriptor and a connection slot for ever.
    #[tokio::test(start_paused = true)]
    async fn failed_write_after_close_ends_the_task() {
        let outbox = Arc::new(Outbox::new(1024));
        outbox.push(Bytes::from_static(b"\0\0\0\x01\x06")).unwrap();
        outbox.close();
        let (events_tx, mut events) = mpsc::channel(8);
        let task = run(
            1,
            BrokenPeer,
            outbox,
            events_tx,
            Coalescing {
                busy_frames: 4,
                gap: Duration::from_millis(5),
                linger: Duration::from_secs(2),
            },
        );
        // Paused time: this timeout fires only if the task never ends.
        tokio::time::timeout(Duration::from_secs(3600), task)
            .await
            .expect("the connection task must end once its socket is broken");
        assert!(matches!(events.recv().await, Some(Event::Closed(1))));
    }
}
