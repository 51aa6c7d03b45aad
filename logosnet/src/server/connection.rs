//! One connection's task: socket bytes → frames → its [`Inbox`] (the
//! [read side](read)); its [`Outbox`] → the socket, in batches (the [write
//! side](write)).
//!
//! Reading and writing are polled together on the one stream, so a pending
//! write never stops the task reading and a full inbox never stops it
//! writing: the task waits on nobody but its own peer. It reports to the
//! room task only what the room must act on — input to take, a queue that
//! turned light — and never waits for the room to answer.
//!
//! The task ends when the room closes the connection (flush, half-close,
//! linger briefly so the last frames are not overtaken by a reset), drops it
//! (one last `ProtocolError` if the socket takes it), the peer goes away
//! (every whole frame already read is handed to the room first), or the
//! server stops: every task hears the stop, whether the room ever knew the
//! connection or not ([`Signals`]).

mod read;
mod write;

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_util::io::{poll_read_buf, poll_write_buf};
use tokio_util::sync::CancellationToken;

use super::Event;
use super::inbox::{Inbox, Input};
use super::outbox::Outbox;
use crate::codec::FrameDecoder;
use crate::protocol::{HEADER_BYTES, MAX_CHAT_PAYLOAD};
use crate::room::ConnId;
use read::ReadSide;
use write::{TakeOutcome, WriteSide};

/// Bytes asked of the socket per read. Input is a few short frames at a
/// time, and the inbox holds 4 KiB: a bigger read would only sit in the
/// decoder.
pub const SERVER_READ_BYTES: usize = 4096;

/// The most the decoder may hold: the longest frame any state allows (a
/// member's chat line, 4,019 bytes with its header) plus one read, rounded
/// up to 8 KiB. A read never asks for more than the room left under it.
pub const MAX_DECODER_BYTES: usize = 8 * 1024;

const _: () = assert!(HEADER_BYTES + MAX_CHAT_PAYLOAD + SERVER_READ_BYTES <= MAX_DECODER_BYTES);

/// How a connection reads and writes, and how long it waits on its peer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    /// A write that carried this many frames means the connection is behind
    /// the room: it then waits `gap` before the next so that it carries many.
    pub(super) busy_frames: usize,
    /// See [`super::WRITE_GAP`].
    pub(super) gap: Duration,
    /// See [`super::CLOSE_LINGER`].
    pub(super) linger: Duration,
    /// How long a closing connection's socket may take nothing (the lag
    /// bound: a connection the room has forgotten gets no longer).
    pub(super) close_deadline: Duration,
    /// See [`super::FRAME_DEADLINE`].
    pub(super) frame_deadline: Duration,
}

/// What the server tells every connection task when it stops.
#[derive(Debug, Clone, Default)]
pub(super) struct Signals {
    /// Past half the shutdown grace: drop every frame not yet begun but
    /// the last one queued (the shutdown notice), send that, and close.
    pub(super) cut: CancellationToken,
    /// The grace is over: stop at once.
    pub(super) abort: CancellationToken,
}

/// What a connection shares with the room task.
#[derive(Debug, Clone)]
pub(super) struct Link {
    /// The connection's id.
    pub(super) conn: ConnId,
    /// Frames read, for the room to take.
    pub(super) inbox: Arc<Inbox>,
    /// Frames to write, from the room.
    pub(super) outbox: Arc<Outbox>,
    /// Where the connection tells the room something changed.
    pub(super) events: mpsc::UnboundedSender<Event>,
    /// The server's stop.
    pub(super) signals: Signals,
}

impl Link {
    fn tell(&self, event: Event) {
        // The room task is gone only at shutdown; nothing to tell then.
        let _ = self.events.send(event);
    }

    /// Queues input for the room, waking it if it was not already told.
    fn hand_in(&self, input: Input) {
        if self.inbox.push(input) {
            self.tell(Event::Ready(self.conn));
        }
    }

    /// The queue turned light.
    fn tell_light(&self) {
        self.tell(Event::Light(self.conn));
    }
}

/// Returns the outbox's charge to the totals however the task ends.
struct RetireOnDrop(Arc<Outbox>);

impl Drop for RetireOnDrop {
    fn drop(&mut self) {
        self.0.retire();
    }
}

/// Runs the connection until it is closed, dropped or gone.
pub(super) async fn run<S>(stream: S, link: Link, policy: Policy)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _retire = RetireOnDrop(link.outbox.clone());
    let mut task = Task {
        stream,
        read: ReadSide::new(policy.frame_deadline),
        write: WriteSide::new(policy.busy_frames, policy.gap, policy.close_deadline),
        link,
        policy,
        cut: false,
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        timer_at: None,
    };
    task.run().await;
}

/// What woke the task.
enum Step {
    /// The room dropped the connection.
    Dropped,
    /// The server's grace is over.
    Aborted,
    /// The server is stopping and this connection is not done.
    Cut,
    /// The socket did something.
    Io(IoOutcome),
    /// There may be frames to take from the outbox.
    Take,
    /// The inbox may have space again, or a limit settled.
    Space,
    /// The earliest deadline came.
    Timer,
}

/// The results of one poll of the socket in each direction.
#[derive(Default)]
struct IoOutcome {
    /// What a read gave, if one was ready.
    read: Option<io::Result<usize>>,
    /// What a write took, if one was ready.
    wrote: Option<io::Result<usize>>,
    /// The stream pushed out what it had buffered (TLS).
    flushed: Option<io::Result<()>>,
}

struct Task<S> {
    /// The socket (or TLS stream).
    stream: S,
    /// Socket → inbox.
    read: ReadSide,
    /// Outbox → socket.
    write: WriteSide,
    /// The connection's id, inbox, outbox, line to the room and the
    /// server's stop.
    link: Link,
    /// The server's read, write and close settings.
    policy: Policy,
    /// The server's cut has been carried out.
    cut: bool,
    /// The one timer for every deadline.
    timer: Pin<Box<Sleep>>,
    /// The instant `timer` is armed for (`None`: no deadline pending); the
    /// timer is reset only when the earliest deadline moves.
    timer_at: Option<Instant>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Task<S> {
    async fn run(&mut self) {
        loop {
            self.read.forward(&self.link);
            let want_read = self.read.wants_read(&self.link);
            let now = Instant::now();
            let frame_due = self.read.frame_due(now, want_read);
            if frame_due.is_some_and(|due| due <= now) {
                self.read.frame_deadline_passed(&self.link);
                continue;
            }
            let want_write = self.write.wants_write();
            if self.read.is_ended() && self.write.has_failed() {
                return;
            }
            if self.write.is_done_closing() {
                let abort = self.link.signals.abort.clone();
                tokio::select! {
                    biased;
                    () = abort.cancelled() => {}
                    () = close_gracefully(&mut self.stream, self.policy.linger) => {}
                }
                return;
            }
            let deadlines = [
                frame_due,
                self.read.give_up_deadline(),
                self.write.deadline(),
            ];
            // One timer for all, reset only when the earliest moves: a busy
            // connection must not register a timer on every turn.
            let next = deadlines.into_iter().flatten().min();
            if next != self.timer_at {
                self.timer_at = next;
                if let Some(at) = next {
                    self.timer.as_mut().reset(at);
                }
            }
            let awaits_frames = self.write.awaits_frames();
            let awaits_room = self.read.awaits_room(&self.link);
            let (timer_armed, cut) = (self.timer_at.is_some(), self.cut);
            let step = {
                let Self {
                    stream,
                    read,
                    write,
                    link,
                    timer,
                    ..
                } = self;
                let decoder = &mut read.decoder;
                let batch = &mut write.batch;
                let io = poll_fn(|cx| poll_io(cx, stream, decoder, batch, want_read, want_write));
                tokio::select! {
                    biased;
                    () = link.outbox.cancelled() => Step::Dropped,
                    () = link.signals.abort.cancelled() => Step::Aborted,
                    () = link.signals.cut.cancelled(), if !cut => Step::Cut,
                    outcome = io, if want_read || want_write => Step::Io(outcome),
                    () = link.outbox.ready(), if awaits_frames => Step::Take,
                    () = link.inbox.space(), if awaits_room => Step::Space,
                    () = timer.as_mut(), if timer_armed => Step::Timer,
                }
            };
            match step {
                Step::Dropped => return self.farewell().await,
                Step::Aborted => return,
                Step::Cut => {
                    self.cut = true;
                    self.read.stop();
                    self.write.cut(&self.link);
                }
                Step::Io(outcome) => self.handle_io(outcome),
                Step::Take => self.take(),
                Step::Space => {}
                Step::Timer => {
                    // Fired: re-armed next turn from whatever is still due.
                    self.timer_at = None;
                    let now = Instant::now();
                    let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
                    if due(deadlines[0]) {
                        self.read.frame_deadline_passed(&self.link);
                    }
                    if due(deadlines[1]) {
                        self.read.end_of_input(&self.link);
                    }
                    if due(deadlines[2]) && self.write.on_deadline(&self.link, now) {
                        return;
                    }
                }
            }
        }
    }

    fn take(&mut self) {
        if self.write.take(&self.link) == TakeOutcome::Closing {
            // The room has forgotten the connection: input is discarded
            // from here on (by the close's linger).
            self.read.stop();
        }
    }

    fn handle_io(&mut self, outcome: IoOutcome) {
        match outcome.wrote {
            Some(Ok(n)) if n > 0 => self.write.wrote(&self.link),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::debug!(conn = self.link.conn, error = %e, "write failed");
                self.write_failed();
            }
            None => {}
        }
        match outcome.flushed {
            Some(Ok(())) => self.write.flushed(),
            Some(Err(e)) => {
                tracing::debug!(conn = self.link.conn, error = %e, "flush failed");
                self.write_failed();
            }
            None => {}
        }
        match outcome.read {
            Some(Ok(0)) => {
                if self.read.decoder.is_mid_frame() {
                    tracing::debug!(conn = self.link.conn, "peer closed mid-frame");
                }
                self.read.end_of_input(&self.link);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::debug!(conn = self.link.conn, error = %e, "read failed");
                self.read.end_of_input(&self.link);
            }
            None => {}
        }
    }

    /// The socket cannot be written: stop, and read what the peer already
    /// sent (bounded by the linger) so that none of its lines is lost.
    fn write_failed(&mut self) {
        if !self.write.has_failed() {
            self.write.fail(&self.link);
            self.read.give_up_at(Instant::now() + self.policy.linger);
        }
    }

    /// The room dropped the connection: cut the batch at a frame boundary,
    /// and send its last frame if the socket takes it within the linger.
    async fn farewell(&mut self) {
        let Some(last) = self.link.outbox.take_farewell() else {
            return;
        };
        if self.write.has_failed() {
            return;
        }
        self.write.batch.cut_and_append(&last);
        let linger = self.policy.linger;
        let stream = &mut self.stream;
        let batch = &mut self.write.batch;
        let abort = self.link.signals.abort.clone();
        let send = async {
            while batch.has_remaining() {
                if stream.write_buf(batch).await.unwrap_or(0) == 0 {
                    return;
                }
            }
            let _ = stream.flush().await;
            close_gracefully(stream, linger).await;
        };
        tokio::select! {
            biased;
            () = abort.cancelled() => {}
            _ = tokio::time::timeout(linger, send) => {}
        }
    }
}

/// Polls the socket for the directions wanted; ready when either made a
/// move.
fn poll_io<S: AsyncRead + AsyncWrite + Unpin>(
    cx: &mut Context<'_>,
    stream: &mut S,
    decoder: &mut FrameDecoder,
    batch: &mut super::outbox::Batch,
    read: bool,
    write: bool,
) -> Poll<IoOutcome> {
    let mut outcome = IoOutcome::default();
    if write
        && batch.has_remaining()
        && let Poll::Ready(result) = poll_write_buf(Pin::new(&mut *stream), cx, batch)
    {
        outcome.wrote = Some(result);
    }
    // With the batch out, push out what the stream itself holds: nothing for
    // TCP, but a TLS session keeps the rest of a record the socket did not
    // take, and only a flush (or the next write) sends it.
    if write
        && !batch.has_remaining()
        && !matches!(outcome.wrote, Some(Err(_)))
        && let Poll::Ready(result) = Pin::new(&mut *stream).poll_flush(cx)
    {
        outcome.flushed = Some(result);
    }
    if read {
        // Judged headers keep the decoder under one frame of the largest
        // limit, so with this read it stays within MAX_DECODER_BYTES.
        debug_assert!(decoder.buffered() < HEADER_BYTES + MAX_CHAT_PAYLOAD);
        let buf = decoder.buffer_mut();
        if buf.capacity() - buf.len() < SERVER_READ_BYTES / 2 {
            buf.reserve(SERVER_READ_BYTES);
        }
        if let Poll::Ready(result) = poll_read_buf(
            Pin::new(&mut *stream),
            cx,
            &mut buf.limit(SERVER_READ_BYTES),
        ) {
            outcome.read = Some(result);
        }
    }
    if outcome.read.is_some() || outcome.wrote.is_some() || outcome.flushed.is_some() {
        Poll::Ready(outcome)
    } else {
        Poll::Pending
    }
}

/// Half-closes, then reads and discards until the peer closes or `linger`
/// passes, so the frames just written are not destroyed by a reset that
/// unread incoming data would otherwise cause.
async fn close_gracefully<S>(stream: &mut S, linger: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(linger, async {
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
