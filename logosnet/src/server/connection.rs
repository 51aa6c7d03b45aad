//! One connection's task: socket bytes → frames → its [`Inbox`]; its
//! [`Outbox`] → the socket, in batches.
//!
//! Each header is judged by the frame limit of the connection's state,
//! which the room settles in the inbox (see [`super::inbox`]): a frame over
//! it is refused at the header or skipped as it streams in, so the decoder
//! never holds more than [`MAX_DECODER_BYTES`]. A frame begun must be
//! finished within the frame deadline of *reading* time: the clock runs
//! only while the task is willing to read (not while flood control or a
//! full inbox has stopped it), so a peer stuck mid-frame, or dribbling one,
//! is told why and closed, and a peer the server is not reading is never
//! blamed for it.
//!
//! Reading and writing are polled together on the one stream, so a pending
//! write never stops the task reading and a full inbox never stops it
//! writing: the task waits on nobody but its own peer. It reports to the
//! room task only what the room must act on — input to take, a writer that
//! stalled or recovered, a writer past its deadline — and never waits for
//! the room to answer.
//!
//! The task ends when the room closes the connection (flush, half-close,
//! linger briefly so the last frames are not overtaken by a reset), drops it
//! (one last `ProtocolError` if the socket takes it), or the peer goes away
//! (every whole frame already read is handed to the room first).

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

use super::Event;
use super::inbox::{Inbox, Input};
use super::outbox::{Batch, Next, Outbox};
use crate::codec::{Decoded, FrameDecoder};
use crate::protocol::{ClientFrame, FrameError, HEADER_BYTES, MAX_CHAT_PAYLOAD, MAX_FRAME_BYTES};
use crate::room::ConnId;

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
    /// See [`super::STALL_GRACE`].
    pub(super) stall_grace: Duration,
    /// See [`super::WRITE_DEADLINE`].
    pub(super) write_deadline: Duration,
    /// See [`super::FRAME_DEADLINE`].
    pub(super) frame_deadline: Duration,
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
        decoder: FrameDecoder::new(),
        batch: Batch::default(),
        link,
        policy,
        reading: true,
        eof: false,
        awaiting_limit: false,
        drained: true,
        frame_clock: FrameClock::default(),
        writing: true,
        closing: false,
        hold_until: None,
        batch_frames: 0,
        last_progress: Instant::now(),
        stalled: false,
        reported_too_slow: false,
        give_up_reading_at: None,
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        timer_at: None,
        unflushed: false,
    };
    task.run().await;
}

/// What woke the task.
enum Step {
    /// The room dropped the connection.
    Dropped,
    /// The socket did something.
    Io(IoOutcome),
    /// There may be frames to take from the outbox.
    Take,
    /// The inbox may have space again.
    Space,
    /// The earliest of the task's [`Deadlines`] came.
    Timer,
}

/// The instants a connection's task must act at, whatever its socket does.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    /// The waiting writer's stall grace or write deadline.
    write: Option<Instant>,
    /// The end of a coalescing gap.
    hold: Option<Instant>,
    /// After a failed write, the last moment to read what the peer sent.
    give_up_reading: Option<Instant>,
    /// The frame in progress must be finished by then.
    frame: Option<Instant>,
}

impl Deadlines {
    fn earliest(&self) -> Option<Instant> {
        [self.write, self.hold, self.give_up_reading, self.frame]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The results of one poll of the socket in each direction.
#[derive(Default)]
struct IoOutcome {
    /// What a read gave, if one was ready.
    read: Option<io::Result<usize>>,
    /// What a write took, if one was ready.
    wrote: Option<io::Result<usize>>,
    /// The stream pushed out what it had buffered (see `Task::unflushed`).
    flushed: Option<io::Result<()>>,
}

struct Task<S> {
    /// The socket (or TLS stream).
    stream: S,
    /// What has been read of frames not yet in the inbox.
    decoder: FrameDecoder,
    /// The frames taken from the outbox for the write in progress.
    batch: Batch,
    /// The connection's id, inbox, outbox and line to the room.
    link: Link,
    /// The server's write and close settings.
    policy: Policy,
    /// Still taking input for the room (the end has not been handed in).
    reading: bool,
    /// The socket has no more to give (end of stream, an error, or reading
    /// given up); what the decoder holds still goes to the room.
    eof: bool,
    /// The next header is over a limit that is not settled yet.
    awaiting_limit: bool,
    /// The last [`Task::forward`] handed in every whole frame the decoder
    /// held (it did not stop for a full inbox).
    drained: bool,
    /// Reading time spent on the frame in progress.
    frame_clock: FrameClock,
    /// Still writing (false once a write failed).
    writing: bool,
    /// The room asked for a flush and close; the batch is the last.
    closing: bool,
    /// Coalescing: the next take waits until then.
    hold_until: Option<Instant>,
    /// Frames in the batch when it was taken.
    batch_frames: usize,
    /// When a write last made progress (or the writer last had nothing to
    /// do).
    last_progress: Instant,
    /// The outbox has been told the writer is stalled.
    stalled: bool,
    /// The room has been told the write deadline passed.
    reported_too_slow: bool,
    /// After a failed write, reading stops at this instant at the latest.
    give_up_reading_at: Option<Instant>,
    /// The one timer for every deadline.
    timer: Pin<Box<Sleep>>,
    /// The instant `timer` is armed for (`None`: no deadline pending); the
    /// timer is reset only when the earliest deadline moves.
    timer_at: Option<Instant>,
    /// Bytes were written since the stream last flushed. A TLS stream may
    /// still hold part of them; the writer is not idle until it flushed.
    unflushed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Task<S> {
    async fn run(&mut self) {
        loop {
            self.forward();
            // Read only once every whole frame read is handed in: the room
            // may free inbox space at any moment, but what the decoder holds
            // must stay under one frame plus the next read.
            let want_read = self.reading
                && !self.eof
                && !self.awaiting_limit
                && self.drained
                && self.link.inbox.has_space();
            let now = Instant::now();
            let frame_due = self.frame_clock.track(
                want_read && self.decoder.is_mid_frame(),
                now,
                self.policy.frame_deadline,
            );
            if frame_due.is_some_and(|due| due <= now) {
                self.frame_deadline_passed();
                continue;
            }
            let want_write = self.writing && (self.batch.has_remaining() || self.unflushed);
            if !self.reading && !want_write && !self.writing {
                break;
            }
            let idle_writer = self.writing && !self.closing && !want_write;
            let deadlines = Deadlines {
                write: if want_write {
                    self.next_write_timer()
                } else {
                    None
                },
                hold: self.hold_until.filter(|_| idle_writer),
                give_up_reading: self.give_up_reading_at,
                frame: frame_due,
            };
            // One timer for all four, reset only when the earliest moves:
            // a busy connection must not register a timer on every turn.
            let next = deadlines.earliest();
            if next != self.timer_at {
                self.timer_at = next;
                if let Some(at) = next {
                    self.timer.as_mut().reset(at);
                }
            }
            let (hold_until, reading, timer_armed) =
                (self.hold_until, self.reading, self.timer_at.is_some());
            let step = {
                let Self {
                    stream,
                    decoder,
                    batch,
                    link,
                    timer,
                    ..
                } = self;
                let io = poll_fn(|cx| poll_io(cx, stream, decoder, batch, want_read, want_write));
                tokio::select! {
                    biased;
                    () = link.outbox.cancelled() => Step::Dropped,
                    outcome = io, if want_read || want_write => Step::Io(outcome),
                    () = link.outbox.ready(), if idle_writer && hold_until.is_none() => Step::Take,
                    () = link.inbox.space(), if reading && !want_read => Step::Space,
                    () = timer.as_mut(), if timer_armed => Step::Timer,
                }
            };
            match step {
                Step::Dropped => return self.farewell().await,
                Step::Io(outcome) => self.handle_io(outcome),
                Step::Take => self.take(),
                Step::Space => {}
                Step::Timer => {
                    // Fired: re-armed next turn from whatever is still due.
                    self.timer_at = None;
                    let now = Instant::now();
                    let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
                    if due(deadlines.frame) {
                        self.frame_deadline_passed();
                    }
                    if due(deadlines.give_up_reading) {
                        self.end_input();
                    }
                    if due(deadlines.hold) {
                        self.take();
                    }
                    if due(deadlines.write) && self.on_write_timer() {
                        return;
                    }
                }
            }
            if self.closing && !self.batch.has_remaining() {
                close_gracefully(&mut self.stream, self.policy.linger).await;
                return;
            }
        }
    }

    /// Hands the room every whole frame already read, while it has space,
    /// each judged by the limit the room settled; once the socket has no
    /// more to give and the decoder no whole frame, the end.
    fn forward(&mut self) {
        self.awaiting_limit = false;
        self.drained = false;
        while self.reading && self.link.inbox.has_space() {
            let (limit, settled) = self.link.inbox.frame_limit();
            let over = self.decoder.announced().is_some_and(|len| {
                (limit.max_payload + 1..=MAX_FRAME_BYTES).contains(&(len as usize))
            });
            if over && !settled {
                // The frames ahead of this one may raise the limit: wait
                // for the room to take them, or read it again if it has.
                if self.link.inbox.await_settle() {
                    self.awaiting_limit = true;
                    return;
                }
                continue;
            }
            match self.decoder.next_frame_within::<ClientFrame>(limit) {
                Ok(None) => {
                    self.drained = true;
                    if self.eof {
                        self.reading = false;
                        self.link.hand_in(Input::End);
                    }
                    return;
                }
                Ok(Some(Decoded::Frame(frame))) => {
                    self.frame_clock.reset();
                    self.link.hand_in(Input::Frame(frame));
                }
                Ok(Some(Decoded::Skipped(len))) => {
                    self.frame_clock.reset();
                    tracing::debug!(conn = self.link.conn, len, "skipped an oversized frame");
                    self.link.hand_in(Input::Oversized(len));
                }
                Err(e) => {
                    self.reading = false;
                    self.link.hand_in(Input::Violation(e));
                }
            }
        }
    }

    /// The frame in progress has had its deadline: the room is told, as of
    /// a violation, and nothing more is read.
    fn frame_deadline_passed(&mut self) {
        self.frame_clock.reset();
        if self.reading {
            tracing::info!(
                conn = self.link.conn,
                "frame not finished within the deadline"
            );
            self.reading = false;
            self.link.hand_in(Input::Violation(FrameError::Unfinished(
                self.policy.frame_deadline,
            )));
        }
    }

    fn handle_io(&mut self, outcome: IoOutcome) {
        match outcome.wrote {
            Some(Ok(n)) if n > 0 => self.progress(),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::debug!(conn = self.link.conn, error = %e, "write failed");
                self.stop_writing();
            }
            None => {}
        }
        match outcome.flushed {
            Some(Ok(())) => self.unflushed = false,
            Some(Err(e)) => {
                tracing::debug!(conn = self.link.conn, error = %e, "flush failed");
                self.stop_writing();
            }
            None => {}
        }
        match outcome.read {
            Some(Ok(0)) => {
                if self.decoder.is_mid_frame() {
                    tracing::debug!(conn = self.link.conn, "peer closed mid-frame");
                }
                self.end_input();
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::debug!(conn = self.link.conn, error = %e, "read failed");
                self.end_input();
            }
            None => {}
        }
    }

    /// Something was written: the writer is moving.
    fn progress(&mut self) {
        self.unflushed = true;
        self.last_progress = Instant::now();
        let done = self.batch.take_written();
        if self.link.outbox.written(done) {
            self.link.tell(Event::Pressure(self.link.conn));
        }
        self.set_stalled(false);
        if !self.batch.has_remaining() && self.batch_frames >= self.policy.busy_frames {
            self.hold_until = Some(Instant::now() + self.policy.gap);
        }
    }

    /// The socket cannot be written: stop, drop what was queued, and read
    /// what the peer already sent (bounded by the linger) so that none of
    /// its lines is lost.
    fn stop_writing(&mut self) {
        self.writing = false;
        self.batch = Batch::default();
        self.link.outbox.retire();
        if self.reading {
            self.give_up_reading_at = Some(Instant::now() + self.policy.linger);
        }
    }

    /// No more input from the socket: the room gets the end behind every
    /// whole frame already read, as it takes them.
    fn end_input(&mut self) {
        self.eof = true;
        self.give_up_reading_at = None;
        self.forward();
    }

    fn take(&mut self) {
        self.hold_until = None;
        match self.link.outbox.take(&mut self.batch) {
            Next::Wait => {}
            Next::Write => {}
            Next::WriteThenClose => {
                // The room has forgotten the connection: input is discarded
                // from here on (by the close's linger).
                self.closing = true;
                self.reading = false;
                self.give_up_reading_at = None;
            }
        }
        self.batch_frames = self.batch.frames();
        self.last_progress = Instant::now();
    }

    /// When the waiting writer next needs a look: at the stall grace, then
    /// at the deadline, then never (the room has been told).
    fn next_write_timer(&self) -> Option<Instant> {
        if !self.stalled {
            Some(self.last_progress + self.policy.stall_grace)
        } else if !self.reported_too_slow || self.closing {
            Some(self.last_progress + self.policy.write_deadline)
        } else {
            None
        }
    }

    /// Tells the outbox (and, on a change, the room) whether the writer is
    /// stalled.
    fn set_stalled(&mut self, stalled: bool) {
        if self.stalled != stalled {
            self.stalled = stalled;
            if self.link.outbox.set_stalled(stalled) {
                self.link.tell(Event::Pressure(self.link.conn));
            }
        }
    }

    /// The writer has waited long: report a stall, then the deadline. True
    /// if the task should end now.
    fn on_write_timer(&mut self) -> bool {
        let waited = self.last_progress.elapsed();
        if waited >= self.policy.stall_grace {
            self.set_stalled(true);
        }
        if waited >= self.policy.write_deadline {
            if self.closing {
                // Nobody is waiting for this connection any more.
                tracing::debug!(conn = self.link.conn, "closing flush timed out");
                return true;
            }
            if !self.reported_too_slow {
                self.reported_too_slow = true;
                self.link.tell(Event::TooSlow(self.link.conn));
            }
        }
        false
    }

    /// The room dropped the connection: cut the queue, and send its last
    /// frame if the socket takes it within the linger.
    async fn farewell(&mut self) {
        let Some(last) = self.link.outbox.take_farewell() else {
            return;
        };
        if !self.writing {
            return;
        }
        self.batch.cut_and_append(last);
        let linger = self.policy.linger;
        let stream = &mut self.stream;
        let batch = &mut self.batch;
        let _ = tokio::time::timeout(linger, async {
            while batch.has_remaining() {
                if stream.write_buf(batch).await.unwrap_or(0) == 0 {
                    return;
                }
            }
            close_gracefully(stream, linger).await;
        })
        .await;
    }
}

/// Polls the socket for the directions wanted; ready when either made a
/// move.
fn poll_io<S: AsyncRead + AsyncWrite + Unpin>(
    cx: &mut Context<'_>,
    stream: &mut S,
    decoder: &mut FrameDecoder,
    batch: &mut Batch,
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

/// The frame deadline's clock: reading time spent on the frame in
/// progress. It runs only while the task is willing to read and a frame is
/// incomplete.
#[derive(Debug, Default)]
struct FrameClock {
    /// Time counted before the clock last paused.
    spent: Duration,
    /// When it last started running, if it is running.
    since: Option<Instant>,
}

impl FrameClock {
    /// A frame was finished (or the deadline acted): start from zero.
    fn reset(&mut self) {
        *self = Self::default();
    }

    /// Runs the clock while `running` and pauses it otherwise; returns the
    /// instant the deadline falls at while it runs.
    fn track(&mut self, running: bool, now: Instant, deadline: Duration) -> Option<Instant> {
        match (running, self.since) {
            (true, None) => self.since = Some(now),
            (false, Some(since)) => {
                self.spent += now.saturating_duration_since(since);
                self.since = None;
            }
            _ => {}
        }
        self.since?.checked_add(deadline.saturating_sub(self.spent))
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

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_secs(60);

    #[test]
    fn the_frame_clock_counts_only_time_spent_willing_to_read() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut clock = FrameClock::default();
        assert_eq!(clock.track(false, t0, DEADLINE), None, "no frame begun");
        // Reading a frame for 20 s...
        assert_eq!(clock.track(true, t0, DEADLINE), Some(t0 + s(60)));
        assert_eq!(clock.track(true, t0 + s(20), DEADLINE), Some(t0 + s(60)));
        // ...then paused (flood control, a full inbox) for 100 s...
        assert_eq!(clock.track(false, t0 + s(20), DEADLINE), None);
        assert_eq!(clock.track(false, t0 + s(120), DEADLINE), None);
        // ...then reading again: 40 s of the deadline are left.
        assert_eq!(clock.track(true, t0 + s(120), DEADLINE), Some(t0 + s(160)));
        // A finished frame starts the next from zero.
        clock.reset();
        assert_eq!(clock.track(true, t0 + s(130), DEADLINE), Some(t0 + s(190)));
    }

    #[test]
    fn a_deadline_too_long_for_the_clock_is_never() {
        let mut clock = FrameClock::default();
        assert_eq!(clock.track(true, Instant::now(), Duration::MAX), None);
    }
}
