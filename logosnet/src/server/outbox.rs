//! One connection's outgoing queue: the frames the room has for it, back to
//! back in one buffer, what they cost in memory, and how old the oldest of
//! them is.
//!
//! The room task pushes frames without ever waiting: each push copies the
//! frame's bytes onto the end of the connection's buffer (a chat line is a
//! few dozen bytes: the copy costs less than sharing a handle to it would,
//! and needs no reference count touched by two threads). The connection's
//! task takes the whole buffer at once (the two swap buffers, so a steady
//! connection allocates nothing) and writes it as one contiguous piece, so
//! a write carries every frame that came meanwhile in one system call.
//!
//! What a queue is *charged* is the memory it holds: the capacity of the
//! buffer being filled (once it holds a frame), of the one being written,
//! and of its bookkeeping — not the length of the frames — so the
//! server-wide [`Totals`] are a bound on real memory, whatever the
//! allocator's doubling does. A buffer that grew past [`IDLE_BUFFER_BYTES`]
//! is given back once it is drained; a connection keeps at most that much
//! (uncharged, like its read buffer: a fixed cost per connection). The
//! queue's charge and the totals change together, under the queue's lock,
//! so no reader of the totals ever sees a writer's subtraction before the
//! room's addition.
//!
//! The queue also keeps the facts the pressure policy
//! ([`super::pressure`]) judges by: its charge, whether it is *heavy*
//! (charged past the heavy mark, until below the light mark), and the
//! [lag](Outbox::oldest_unsent): when the oldest frame not yet wholly
//! written was queued, to within [`LAG_GRAIN`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Buf;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::codec;
use crate::protocol::HEADER_BYTES;

/// An emptied buffer that grew past this gives its memory back, so an idle
/// connection keeps at most this much for each of its two buffers.
pub const IDLE_BUFFER_BYTES: usize = 4096;

/// How finely a queue remembers when its frames were queued: frames queued
/// within this much of the first of a group share one record, dated by the
/// last of them. A member's lag is therefore never overstated, and
/// understated by at most this much; a queue [`max_lag`](super::MAX_LAG)
/// behind keeps at most `max_lag / LAG_GRAIN` records (100 for the default,
/// 3.2 KiB, charged).
pub const LAG_GRAIN: Duration = Duration::from_millis(100);

/// Bytes charged to every queue together, for the server-wide budget, and
/// the wake-up for a room that paused on it.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    /// Bytes charged right now, all queues together.
    charged: AtomicUsize,
    /// While non-zero, the room is paused on the budget and wants to hear
    /// when the total falls below this mark.
    wake_below: AtomicUsize,
    /// Wakes the room once the total falls below `wake_below`.
    eased: Notify,
    /// Bytes ever written to any connection's socket (for the metrics).
    written: AtomicU64,
}

impl Totals {
    /// Bytes charged right now.
    pub(crate) fn charged(&self) -> usize {
        self.charged.load(Ordering::Relaxed)
    }

    /// Bytes ever written to any connection's socket.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Asks for [`Totals::eased`] to resolve once the total is below `mark`.
    pub(crate) fn wake_below(&self, mark: usize) {
        self.wake_below.store(mark, Ordering::Relaxed);
        if self.charged() < mark {
            self.wake();
        }
    }

    /// Resolves after the total fell below the mark asked for.
    pub(crate) async fn eased(&self) {
        self.eased.notified().await;
    }

    /// Moves the total from `before` to `after` for one queue (called with
    /// that queue's lock held).
    fn recharge(&self, before: usize, after: usize) {
        if after > before {
            self.charged.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            let total =
                self.charged.fetch_sub(before - after, Ordering::Relaxed) - (before - after);
            let mark = self.wake_below.load(Ordering::Relaxed);
            if mark != 0 && total < mark {
                self.wake();
            }
        }
    }

    fn wake(&self) {
        if self.wake_below.swap(0, Ordering::Relaxed) != 0 {
            self.eased.notify_one();
        }
    }
}

/// Where a queue turns heavy and light again, in bytes charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueMarks {
    /// Charged past this, the queue is heavy.
    pub(crate) heavy: usize,
    /// A heavy queue charged below this is light again.
    pub(crate) light: usize,
}

/// What the writer should do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Write the frames taken, then ask again.
    Write,
    /// Write the frames taken, then close the connection.
    WriteThenClose,
    /// Nothing to do yet: wait for [`Outbox::ready`].
    Wait,
}

/// A group of frames queued close together (see [`LAG_GRAIN`]).
#[derive(Debug, Clone, Copy)]
struct Mark {
    /// Bytes ever queued, up to the end of the group's last frame.
    end: u64,
    /// When the group's first frame was queued: the group closes
    /// [`LAG_GRAIN`] after it.
    first: Instant,
    /// When the group's last frame was queued: the group's age.
    last: Instant,
}

#[derive(Debug, Default)]
struct Queue {
    /// Frames not yet taken by the writer, back to back.
    pending: Vec<u8>,
    /// Frames in `pending`.
    pending_frames: usize,
    /// Where the last frame in `pending` begins.
    last_frame_at: usize,
    /// Capacity of the buffer the writer is writing.
    in_flight: usize,
    /// What the queue is charged (see the module docs).
    charged: usize,
    /// Bytes ever queued.
    pushed: u64,
    /// Bytes ever written.
    written: u64,
    /// Frames not yet wholly written, by when they were queued.
    marks: VecDeque<Mark>,
    /// The room asked for a flush and close.
    closing: bool,
    /// Nothing more is accepted or counted: the connection is finished.
    retired: bool,
    /// Past the heavy mark, until below the light mark.
    heavy: bool,
    /// The one frame to try to send after [`Outbox::abort`].
    farewell: Option<Vec<u8>>,
}

impl Queue {
    /// What the queue holds in memory now.
    fn charge(&self) -> usize {
        if self.retired {
            return 0;
        }
        let pending = if self.pending.is_empty() {
            0
        } else {
            self.pending.capacity()
        };
        pending + self.in_flight + self.marks.capacity() * std::mem::size_of::<Mark>()
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// The frames and the state the room and the writer share.
    queue: Mutex<Queue>,
    /// Where the queue turns heavy and light.
    marks: QueueMarks,
    /// The server-wide total this queue is charged to.
    totals: Arc<Totals>,
    /// Wakes the writer when there is something to write or to close.
    ready: Notify,
    /// Fired by [`Outbox::abort`]: the writer gives up at once.
    cancel: CancellationToken,
}

impl Outbox {
    /// An empty queue with these marks, charged to `totals`.
    pub(crate) fn new(marks: QueueMarks, totals: Arc<Totals>) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            marks,
            totals,
            ready: Notify::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Queues one whole frame, queued at `now`; true if the queue has just
    /// become heavy. Frames for a closing or finished connection are
    /// dropped silently.
    pub(crate) fn push(&self, frame: &[u8], now: Instant) -> bool {
        let mut q = self.lock();
        if q.retired || q.closing {
            return false;
        }
        let was_empty = q.pending.is_empty();
        q.last_frame_at = q.pending.len();
        q.pending.extend_from_slice(frame);
        q.pending_frames += 1;
        q.pushed += frame.len() as u64;
        let pushed = q.pushed;
        match q.marks.back_mut() {
            Some(mark) if now < mark.first + LAG_GRAIN => {
                mark.end = pushed;
                mark.last = now;
            }
            _ => q.marks.push_back(Mark {
                end: pushed,
                first: now,
                last: now,
            }),
        }
        let became_heavy = self.recharge(&mut q);
        drop(q);
        if was_empty {
            self.ready.notify_one();
        }
        became_heavy
    }

    /// Asks the writer to flush what is queued and then close.
    pub(crate) fn close(&self) {
        self.lock().closing = true;
        self.ready.notify_one();
    }

    /// Drops the connection now: everything queued is discarded and
    /// uncharged, and the writer is told to stop, sending only `farewell`
    /// after the frame it is in the middle of (if the socket takes it in
    /// time).
    pub(crate) fn abort(&self, farewell: Option<Vec<u8>>) {
        let mut q = self.lock();
        self.retire_locked(&mut q);
        q.farewell = farewell;
        drop(q);
        self.cancel.cancel();
    }

    /// The frame to send after an abort, once.
    pub(crate) fn take_farewell(&self) -> Option<Vec<u8>> {
        self.lock().farewell.take()
    }

    /// For a cut at shutdown: discards every frame not yet taken but the
    /// last one queued (the room's last word: the shutdown notice, or why
    /// it closed the connection), which is returned; the queue is retired.
    pub(crate) fn cut(&self) -> Option<Vec<u8>> {
        let mut q = self.lock();
        let last = (!q.pending.is_empty()).then(|| q.pending[q.last_frame_at..].to_vec());
        self.retire_locked(&mut q);
        last
    }

    /// Stops charging this queue: its frames are discarded and its bytes
    /// leave the totals. Called when the connection ends, however it ends.
    pub(crate) fn retire(&self) {
        let mut q = self.lock();
        self.retire_locked(&mut q);
    }

    fn retire_locked(&self, q: &mut Queue) {
        if q.retired {
            return;
        }
        let before = q.charged;
        q.retired = true;
        q.pending = Vec::new();
        q.pending_frames = 0;
        q.marks = VecDeque::new();
        q.in_flight = 0;
        q.heavy = false;
        q.charged = 0;
        self.totals.recharge(before, 0);
    }

    /// Bytes this queue is charged.
    pub(crate) fn charged(&self) -> usize {
        self.lock().charged
    }

    /// True while the queue is heavy.
    pub(crate) fn is_heavy(&self) -> bool {
        self.lock().heavy
    }

    /// When the oldest frame not yet wholly written was queued (the latest
    /// instant of its [`LAG_GRAIN`] group); `None` if everything is written.
    pub(crate) fn oldest_unsent(&self) -> Option<Instant> {
        let q = self.lock();
        if q.retired {
            return None;
        }
        q.marks.front().map(|mark| mark.last)
    }

    /// Moves every queued frame into `batch`, which must have been
    /// [finished](Outbox::finished) (its buffer becomes the next one to
    /// fill).
    pub(crate) fn take(&self, batch: &mut Batch) -> Next {
        debug_assert!(!batch.has_remaining(), "take into an unwritten batch");
        let mut q = self.lock();
        if !q.pending.is_empty() && !q.retired {
            batch.buf.clear();
            std::mem::swap(&mut batch.buf, &mut q.pending);
            batch.pos = 0;
            batch.frames = std::mem::take(&mut q.pending_frames);
            batch.last_frame_at = q.last_frame_at;
            q.in_flight = batch.buf.capacity();
            self.recharge(&mut q);
        }
        match (batch.has_remaining(), q.closing) {
            (_, true) => Next::WriteThenClose,
            (true, false) => Next::Write,
            (false, false) => Next::Wait,
        }
    }

    /// Records that `written` bytes reached the socket.
    pub(crate) fn written(&self, written: usize) {
        let mut q = self.lock();
        if q.retired || written == 0 {
            return;
        }
        q.written += written as u64;
        // Once per write (a batch of frames), not per frame.
        self.totals
            .written
            .fetch_add(written as u64, Ordering::Relaxed);
        let done = q.written;
        while q.marks.front().is_some_and(|mark| mark.end <= done) {
            q.marks.pop_front();
        }
    }

    /// The writer wrote the whole batch: its buffer is no longer charged
    /// (and is given back if it grew large); true if that made a heavy
    /// queue light.
    pub(crate) fn finished(&self, batch: &mut Batch) -> bool {
        batch.buf.clear();
        batch.pos = 0;
        batch.frames = 0;
        if batch.buf.capacity() > IDLE_BUFFER_BYTES {
            batch.buf = Vec::new();
        }
        let mut q = self.lock();
        if q.retired {
            return false;
        }
        q.in_flight = 0;
        if q.pending.is_empty() && q.pending.capacity() > IDLE_BUFFER_BYTES {
            q.pending = Vec::new();
        }
        if q.marks.is_empty() && q.marks.capacity() > 8 {
            q.marks = VecDeque::new();
        }
        let was_heavy = q.heavy;
        self.recharge(&mut q);
        was_heavy && !q.heavy
    }

    /// Bytes ever written to the socket.
    pub(crate) fn written_total(&self) -> u64 {
        self.lock().written
    }

    /// Resolves when there may be something to take.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Resolves when the connection must be dropped at once.
    pub(crate) async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Brings the queue's charge, its heavy flag and the totals up to date;
    /// true if it has just become heavy.
    fn recharge(&self, q: &mut Queue) -> bool {
        let before = q.charged;
        q.charged = q.charge();
        self.totals.recharge(before, q.charged);
        if !q.heavy && q.charged > self.marks.heavy {
            q.heavy = true;
            return true;
        }
        if q.heavy && q.charged < self.marks.light {
            q.heavy = false;
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The lock is never held across a panic-prone call; recover anyway.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Frames taken for one write: whole frames back to back, written from the
/// front. It remembers how many bytes went out since it was last asked.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// What was taken (and, after a cut, what is left of it).
    buf: Vec<u8>,
    /// Bytes of `buf` written.
    pos: usize,
    /// Frames taken with the last take.
    frames: usize,
    /// Where the last frame in `buf` begins.
    last_frame_at: usize,
    /// Bytes written since [`Batch::take_written`].
    written: usize,
}

impl Batch {
    /// Frames taken with the last take.
    pub(crate) fn frames(&self) -> usize {
        self.frames
    }

    /// Bytes written since the last call.
    pub(crate) fn take_written(&mut self) -> usize {
        std::mem::take(&mut self.written)
    }

    /// Drops every frame not yet begun, keeping the rest of one half
    /// written (so the stream stays framed), then appends `last`: the
    /// farewell of a dropped connection.
    pub(crate) fn cut_and_append(&mut self, last: &[u8]) {
        let frame_end = self.frame_end();
        self.rebuild(frame_end, last);
    }

    /// A cut at shutdown: drops every frame not yet begun, keeping the rest
    /// of one half written, then `last` if the queue still held the final
    /// frame, or else this batch's own final frame if it is not begun.
    pub(crate) fn cut_keeping_last(&mut self, last: Option<Vec<u8>>) {
        let frame_end = self.frame_end();
        let last = match last {
            Some(last) => last,
            None if self.last_frame_at >= frame_end && self.last_frame_at < self.buf.len() => {
                self.buf[self.last_frame_at..].to_vec()
            }
            None => Vec::new(),
        };
        self.rebuild(frame_end, &last);
    }

    /// Where the frame being written ends (`pos` itself between frames).
    fn frame_end(&self) -> usize {
        let mut end = 0;
        while end < self.pos {
            // Only whole frames are queued, so a header is always there; a
            // stub must still not loop for ever.
            let len =
                codec::announced_len(&self.buf[end..]).map_or(self.buf.len(), |len| len as usize);
            end = end.saturating_add(HEADER_BYTES + len);
        }
        end.min(self.buf.len())
    }

    fn rebuild(&mut self, frame_end: usize, last: &[u8]) {
        let mut rest = Vec::with_capacity(frame_end - self.pos + last.len());
        rest.extend_from_slice(&self.buf[self.pos..frame_end]);
        rest.extend_from_slice(last);
        self.buf = rest;
        self.pos = 0;
        self.last_frame_at = self.buf.len();
    }
}

impl Buf for Batch {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn chunk(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn advance(&mut self, cnt: usize) {
        let cnt = cnt.min(self.remaining());
        self.pos += cnt;
        self.written += cnt;
    }
}

#[cfg(test)]
mod tests;
