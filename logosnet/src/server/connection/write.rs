//! A connection's write side: its outbox → the socket, one batch at a
//! time, in one of five states (the legal ones are the type).
//!
//! A connection that wrote [`busy_frames`](WriteSide::new) frames in one
//! batch is behind the room, and waits out a short gap before it takes the
//! next, so each write carries many frames. Whether a member keeps up is
//! not this side's to judge: the outbox dates its frames, and the room's
//! pressure policy drops a member whose oldest frame waits too long. The
//! only deadline here is the closing flush's: a connection the room has
//! already forgotten gives up once its socket takes nothing for that long.

use std::time::Duration;

use bytes::Buf;
use tokio::time::Instant;

use super::Link;
use crate::server::outbox::{Batch, Next};

/// Where the write side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteState {
    /// Nothing to write: waiting for the outbox.
    Idle,
    /// Writing the batch, then pushing out what the stream itself holds
    /// (a TLS session keeps the tail of a record until flushed).
    Writing,
    /// A busy batch went out: the next take waits until then.
    Gap(Instant),
    /// The room closed the connection (or the server is stopping): writing
    /// the last batch, then closing.
    Closing,
    /// The socket failed: nothing more is written.
    Failed,
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct WriteSide {
    /// The frames taken for the write in progress.
    pub(super) batch: Batch,
    /// Where the side is.
    state: WriteState,
    /// Bytes went out since the stream last flushed.
    unflushed: bool,
    /// Frames in the batch when it was taken.
    batch_frames: usize,
    /// When a write last made progress (or a batch was taken).
    last_progress: Instant,
    /// A batch this big means the connection is behind the room.
    busy_frames: usize,
    /// See [`crate::server::WRITE_GAP`].
    gap: Duration,
    /// How long a closing connection's socket may take nothing.
    close_deadline: Duration,
}

impl WriteSide {
    pub(super) fn new(busy_frames: usize, gap: Duration, close_deadline: Duration) -> Self {
        Self {
            batch: Batch::default(),
            state: WriteState::Idle,
            unflushed: false,
            batch_frames: 0,
            last_progress: Instant::now(),
            busy_frames: busy_frames.max(1),
            gap,
            close_deadline,
        }
    }

    /// Whether the socket should be written (or flushed) now.
    pub(super) fn wants_write(&self) -> bool {
        self.state != WriteState::Failed && (self.batch.has_remaining() || self.unflushed)
    }

    /// Whether the side waits for the outbox to have something (once what
    /// it wrote is flushed).
    pub(super) fn awaits_frames(&self) -> bool {
        self.state == WriteState::Idle && !self.unflushed
    }

    /// Whether the socket failed.
    pub(super) fn has_failed(&self) -> bool {
        self.state == WriteState::Failed
    }

    /// Whether the last batch is out and the socket may be closed.
    pub(super) fn is_done_closing(&self) -> bool {
        self.state == WriteState::Closing && !self.batch.has_remaining() && !self.unflushed
    }

    /// The instant the side must act at: the end of a gap, or the closing
    /// flush's deadline.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.state {
            WriteState::Gap(until) => Some(until),
            WriteState::Closing => self.last_progress.checked_add(self.close_deadline),
            _ => None,
        }
    }

    /// Takes what the outbox has (at once, or when a gap is over).
    pub(super) fn take(&mut self, link: &Link) -> TakeOutcome {
        if matches!(self.state, WriteState::Failed | WriteState::Closing) {
            return TakeOutcome::Nothing;
        }
        let next = link.outbox.take(&mut self.batch);
        self.batch_frames = self.batch.frames();
        self.last_progress = Instant::now();
        match next {
            Next::Wait => {
                self.state = WriteState::Idle;
                TakeOutcome::Nothing
            }
            Next::Write => {
                self.state = WriteState::Writing;
                TakeOutcome::Nothing
            }
            Next::WriteThenClose => {
                self.state = WriteState::Closing;
                TakeOutcome::Closing
            }
        }
    }

    /// The deadline came: a gap is over, or a closing flush gave up (true:
    /// the connection ends now).
    pub(super) fn on_deadline(&mut self, link: &Link, now: Instant) -> bool {
        match self.state {
            WriteState::Gap(until) if until <= now => {
                self.take(link);
                false
            }
            WriteState::Closing
                if self
                    .last_progress
                    .checked_add(self.close_deadline)
                    .is_some_and(|at| at <= now) =>
            {
                tracing::debug!(conn = link.conn, "closing flush timed out");
                true
            }
            _ => false,
        }
    }

    /// Bytes reached the socket.
    pub(super) fn wrote(&mut self, link: &Link) {
        self.unflushed = true;
        self.last_progress = Instant::now();
        link.outbox.written(self.batch.take_written());
        if !self.batch.has_remaining() {
            self.batch_done(link);
        }
    }

    /// The stream pushed out everything it held.
    pub(super) fn flushed(&mut self) {
        self.unflushed = false;
    }

    /// The socket cannot be written: nothing more is, and what was queued
    /// is dropped.
    pub(super) fn fail(&mut self, link: &Link) {
        self.state = WriteState::Failed;
        self.batch = Batch::default();
        self.unflushed = false;
        link.outbox.retire();
    }

    /// The server is stopping and this connection is not done: what is not
    /// yet begun is dropped but the last frame queued (the shutdown
    /// notice), and the side closes after it.
    pub(super) fn cut(&mut self, link: &Link) {
        if self.state == WriteState::Failed {
            return;
        }
        let last = link.outbox.cut();
        self.batch.cut_keeping_last(last);
        self.state = WriteState::Closing;
        self.last_progress = Instant::now();
    }

    /// The whole batch is out: the outbox takes its buffer back (and may
    /// tell the room the queue is light); a busy batch starts a gap.
    fn batch_done(&mut self, link: &Link) {
        if link.outbox.finished(&mut self.batch) {
            link.tell_light();
        }
        if self.state == WriteState::Writing {
            self.state = if self.batch_frames >= self.busy_frames && !self.gap.is_zero() {
                WriteState::Gap(Instant::now() + self.gap)
            } else {
                WriteState::Idle
            };
        }
    }
}

/// What a take led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TakeOutcome {
    /// Nothing the task must act on.
    Nothing,
    /// The room closed the connection: input is discarded from here on.
    Closing,
}
