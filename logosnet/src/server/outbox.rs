//! One connection's bounded outgoing queue: the frames the room has for it,
//! back to back in one buffer, and the accounting of what they cost.
//!
//! The room task pushes frames without ever waiting: each push copies the
//! frame's bytes onto the end of the connection's buffer (a chat line is a
//! few dozen bytes: the copy costs less than sharing a handle to it would,
//! and needs no reference count touched by two threads). The connection's
//! task takes the whole buffer at once and writes it as one contiguous
//! piece, so a write carries every frame that came meanwhile in one system
//! call. What a queue holds is exactly its bytes, so the bound is the same
//! for 1-byte and 1,000-character lines, and the server-wide [`Totals`] are
//! the sum of real bytes (each held in a buffer at most twice its size).
//!
//! The queue also keeps the facts back-pressure needs: whether it is
//! *heavy* (past [`HEAVY_QUEUED_BYTES`], until it drains below
//! [`LIGHT_QUEUED_BYTES`]) and whether its writer is *stalled* (no write
//! progress for the stall grace, set by the connection's task). A heavy
//! queue whose writer is not stalled [holds the room](Outbox::holds_room);
//! the driver decides what that means; this module only keeps the facts
//! true.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::codec;
use crate::protocol::HEADER_BYTES;

/// Most bytes queued for one connection: 1 MiB. That is about 240
/// maximum-length (1000-character, 4-byte) chat lines, or some 11,000
/// typical ones. A member past it is dropped as too far behind. (Redis caps
/// a pub/sub client's output at 32 MB, NATS at 64 MiB; our frames are small
/// and our room is bounded, so less does.)
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// A queue holding more than this is *heavy*: while its reader keeps
/// draining it, the room stops taking chat lines until it is light. Half
/// the hard bound, so what is already taken when the room pauses fits below
/// the bound.
pub const HEAVY_QUEUED_BYTES: usize = MAX_QUEUED_BYTES / HEAVY_DIVISOR;

/// A heavy queue is light again once it drains below this: a quarter of the
/// heavy mark, so the room does not flap between paused and running.
pub const LIGHT_QUEUED_BYTES: usize = MAX_QUEUED_BYTES / LIGHT_DIVISOR;

/// The heavy mark as a part of a queue's bound, whatever the bound is set
/// to (a half).
const HEAVY_DIVISOR: usize = 2;

/// The light mark as a part of a queue's bound (an eighth: a quarter of the
/// heavy mark).
const LIGHT_DIVISOR: usize = 8;

/// An emptied buffer that grew past this gives its memory back, so an idle
/// connection keeps at most this much for its queue.
pub const IDLE_BUFFER_BYTES: usize = 4096;

/// Bytes queued across every connection, for the server-wide budget, and
/// the wake-up for a room that paused on it.
#[derive(Debug, Default)]
pub struct Totals {
    /// Bytes queued right now, all queues together.
    queued: AtomicUsize,
    /// While non-zero, the room is paused on the budget and wants to hear
    /// when the total falls below this mark.
    wake_below: AtomicUsize,
    /// Wakes the room once the total falls below `wake_below`.
    eased: Notify,
}

impl Totals {
    /// Bytes queued right now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Asks for [`Totals::eased`] to resolve once the total is below `mark`.
    pub(crate) fn wake_below(&self, mark: usize) {
        self.wake_below.store(mark, Ordering::Relaxed);
        if self.queued() < mark {
            self.wake();
        }
    }

    /// Resolves after the total fell below the mark asked for.
    pub(crate) async fn eased(&self) {
        self.eased.notified().await;
    }

    fn add(&self, n: usize) {
        self.queued.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        let before = self.queued.fetch_sub(n, Ordering::Relaxed);
        let mark = self.wake_below.load(Ordering::Relaxed);
        if mark != 0 && before - n < mark {
            self.wake();
        }
    }

    fn wake(&self) {
        if self.wake_below.swap(0, Ordering::Relaxed) != 0 {
            self.eased.notify_one();
        }
    }
}

/// A push would pass the connection's bound: it must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

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

#[derive(Debug, Default)]
struct Queue {
    /// Frames not yet taken by the writer, back to back.
    pending: BytesMut,
    /// Frames in `pending`.
    pending_frames: usize,
    /// Bytes queued plus taken-but-unwritten ones.
    queued: usize,
    /// The room asked for a flush and close.
    closing: bool,
    /// Nothing more is accepted or counted: the connection is finished.
    retired: bool,
    /// Past the heavy mark, until below the light mark.
    heavy: bool,
    /// The writer has made no progress for the stall grace.
    stalled: bool,
    /// The one frame to try to send after [`Outbox::abort`].
    farewell: Option<Bytes>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Outbox {
    /// The frames and the state the room and the writer share.
    queue: Mutex<Queue>,
    /// Bytes this queue may hold (see [`MAX_QUEUED_BYTES`]).
    limit: usize,
    /// The server-wide total this queue adds to.
    totals: Arc<Totals>,
    /// Wakes the writer when there is something to write or to close.
    ready: Notify,
    /// Fired by [`Outbox::abort`]: the writer gives up at once.
    cancel: CancellationToken,
}

impl Outbox {
    /// An empty queue holding at most `limit` bytes, counted into `totals`.
    pub fn new(limit: usize, totals: Arc<Totals>) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            limit,
            totals,
            ready: Notify::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Queues one whole frame, or fails if it would pass the bound (the
    /// caller then drops the connection); `Ok(true)` if the queue has just
    /// become heavy. Frames for a closing or finished connection are dropped
    /// silently.
    pub fn push(&self, frame: &[u8]) -> Result<bool, Overflow> {
        let mut q = self.lock();
        if q.retired || q.closing {
            return Ok(false);
        }
        if q.queued + frame.len() > self.limit {
            return Err(Overflow);
        }
        let was_empty = q.pending.is_empty();
        q.pending.extend_from_slice(frame);
        q.pending_frames += 1;
        q.queued += frame.len();
        let became_heavy = !q.heavy && q.queued > self.heavy_mark();
        q.heavy |= became_heavy;
        drop(q);
        self.totals.add(frame.len());
        if was_empty {
            self.ready.notify_one();
        }
        Ok(became_heavy)
    }

    /// Asks the writer to flush what is queued and then close.
    pub fn close(&self) {
        self.lock().closing = true;
        self.ready.notify_one();
    }

    /// Drops the connection now: everything queued is discarded and
    /// uncounted, and the writer is told to stop, sending only `farewell`
    /// (if the socket takes it in time).
    pub fn abort(&self, farewell: Option<Bytes>) {
        self.retire();
        self.lock().farewell = farewell;
        self.cancel.cancel();
    }

    /// The frame to send after an abort, once.
    pub(crate) fn take_farewell(&self) -> Option<Bytes> {
        self.lock().farewell.take()
    }

    /// Stops counting this queue: its frames are discarded and its bytes
    /// leave the totals. Called when the connection ends, however it ends.
    pub fn retire(&self) {
        let mut q = self.lock();
        if q.retired {
            return;
        }
        q.retired = true;
        let queued = std::mem::take(&mut q.queued);
        q.pending = BytesMut::new();
        q.pending_frames = 0;
        q.heavy = false;
        drop(q);
        self.totals.sub(queued);
    }

    /// Bytes queued or being written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().queued
    }

    /// True while this queue holds the room paused: it is heavy and its
    /// writer is not stalled (its reader is still taking what it is sent).
    pub fn holds_room(&self) -> bool {
        let q = self.lock();
        q.heavy && !q.stalled
    }

    /// True while the writer has made no progress for the stall grace.
    pub fn is_stalled(&self) -> bool {
        self.lock().stalled
    }

    /// Moves every queued frame into an empty `batch`.
    pub(crate) fn take(&self, batch: &mut Batch) -> Next {
        debug_assert!(!batch.has_remaining(), "take into an unwritten batch");
        let mut q = self.lock();
        if !q.pending.is_empty() {
            let taken = q.pending.split().freeze();
            batch.load(taken, std::mem::take(&mut q.pending_frames));
        }
        if q.pending.capacity() > IDLE_BUFFER_BYTES {
            // The rest of a burst's buffer: give it back.
            q.pending = BytesMut::new();
        }
        match (batch.has_remaining(), q.closing) {
            (_, true) => Next::WriteThenClose,
            (true, false) => Next::Write,
            (false, false) => Next::Wait,
        }
    }

    /// Records that `written` bytes reached the socket; true if that made a
    /// heavy queue light.
    pub(crate) fn written(&self, written: usize) -> bool {
        let mut q = self.lock();
        if q.retired || written == 0 {
            return false;
        }
        let written = written.min(q.queued);
        q.queued -= written;
        let became_light = q.heavy && q.queued < self.light_mark();
        if became_light {
            q.heavy = false;
        }
        drop(q);
        self.totals.sub(written);
        became_light
    }

    /// Sets whether the writer is stalled; true if that changed it.
    pub(crate) fn set_stalled(&self, stalled: bool) -> bool {
        let mut q = self.lock();
        std::mem::replace(&mut q.stalled, stalled) != stalled
    }

    /// Resolves when there may be something to take.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Resolves when the connection must be dropped at once.
    pub(crate) async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// What a heavy queue drains to become light again: what its member
    /// must drain in a write deadline to go on holding the room.
    pub(crate) fn catch_up_bytes(&self) -> usize {
        self.heavy_mark() - self.light_mark()
    }

    fn heavy_mark(&self) -> usize {
        self.limit / HEAVY_DIVISOR
    }

    fn light_mark(&self) -> usize {
        self.limit / LIGHT_DIVISOR
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
    /// What is taken and not yet written (plus, after a cut, the farewell).
    bytes: Bytes,
    /// Frames taken with the last take.
    frames: usize,
    /// Bytes of the taken frames written so far.
    written_total: usize,
    /// Bytes written since [`Batch::take_written`].
    written: usize,
    /// The whole of what was taken, to find frame boundaries for a cut.
    taken: Bytes,
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
    /// written (so the stream stays framed), then appends `last`.
    pub(crate) fn cut_and_append(&mut self, last: Bytes) {
        let done = self.written_total;
        let mut frame_end = 0;
        while frame_end < done {
            // Only whole frames are queued, so a header is always there; a
            // stub must still not loop for ever.
            let len = codec::announced_len(&self.taken[frame_end..])
                .map_or(self.taken.len(), |len| len as usize);
            frame_end += HEADER_BYTES + len;
        }
        let mut rest = Vec::with_capacity(frame_end - done + last.len());
        rest.extend_from_slice(&self.taken[done..frame_end.min(self.taken.len())]);
        rest.extend_from_slice(&last);
        self.bytes = Bytes::from(rest);
        self.taken = Bytes::new();
    }

    fn load(&mut self, taken: Bytes, frames: usize) {
        self.bytes = taken.clone();
        self.taken = taken;
        self.frames = frames;
        self.written_total = 0;
    }
}

impl Buf for Batch {
    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn chunk(&self) -> &[u8] {
        &self.bytes
    }

    fn advance(&mut self, cnt: usize) {
        self.bytes.advance(cnt);
        self.written += cnt;
        self.written_total += cnt;
        if self.bytes.is_empty() {
            self.taken = Bytes::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(limit: usize) -> (Outbox, Arc<Totals>) {
        let totals = Arc::new(Totals::default());
        (Outbox::new(limit, totals.clone()), totals)
    }

    /// A whole frame of `len` bytes (header included), all `fill` after it.
    fn frame(len: usize, fill: u8) -> Vec<u8> {
        let mut f = ((len - HEADER_BYTES) as u32).to_be_bytes().to_vec();
        f.resize(len, fill);
        f
    }

    fn write_all(batch: &mut Batch) -> Vec<u8> {
        let mut out = Vec::new();
        while batch.has_remaining() {
            out.extend_from_slice(batch.chunk());
            let n = batch.chunk().len();
            batch.advance(n);
        }
        out
    }

    #[test]
    fn every_frame_is_counted_by_its_bytes_here_and_in_the_totals() {
        let (outbox, totals) = outbox(10_000);
        outbox.push(&frame(5, 1)).unwrap();
        outbox.push(&frame(1000, 2)).unwrap();
        assert_eq!(outbox.queued_bytes(), 1005);
        assert_eq!(totals.queued(), 1005);
    }

    #[test]
    fn a_push_past_the_limit_fails_and_is_not_counted() {
        let (outbox, totals) = outbox(20);
        outbox.push(&frame(10, 1)).unwrap();
        outbox.push(&frame(10, 2)).unwrap();
        assert_eq!(outbox.push(&frame(5, 3)), Err(Overflow));
        assert_eq!(totals.queued(), 20);
    }

    #[test]
    fn one_byte_lines_fill_the_bound_by_their_bytes() {
        // A one-character line as delivered: header, variant, length, text.
        let line = frame(21, b'x');
        let (outbox, _) = outbox(MAX_QUEUED_BYTES);
        let mut pushed = 0;
        while outbox.push(&line).is_ok() {
            pushed += 1;
        }
        assert_eq!(pushed, MAX_QUEUED_BYTES / 21);
    }

    #[test]
    fn a_take_carries_every_frame_in_order_as_one_piece() {
        let (outbox, totals) = outbox(10_000);
        outbox.push(&frame(10, 1)).unwrap();
        outbox.push(&frame(20, 2)).unwrap();
        let mut batch = Batch::default();
        assert_eq!(outbox.take(&mut batch), Next::Write);
        assert_eq!(batch.frames(), 2);
        assert_eq!(batch.chunk().len(), 30, "one contiguous piece");
        let mut expected = frame(10, 1);
        expected.extend(frame(20, 2));
        batch.advance(15);
        assert_eq!(batch.take_written(), 15);
        outbox.written(15);
        assert_eq!(totals.queued(), 15);
        let rest = write_all(&mut batch);
        assert_eq!(rest, expected[15..]);
        outbox.written(batch.take_written());
        assert_eq!((outbox.queued_bytes(), totals.queued()), (0, 0));
    }

    #[test]
    fn heavy_from_half_the_limit_until_below_an_eighth() {
        let (outbox, _) = outbox(800);
        for _ in 0..4 {
            assert_eq!(outbox.push(&frame(100, 1)), Ok(false));
        }
        assert_eq!(outbox.push(&frame(100, 1)), Ok(true), "past half the limit");
        assert!(outbox.holds_room());
        assert_eq!(outbox.push(&frame(100, 1)), Ok(false), "already heavy");
        let mut batch = Batch::default();
        outbox.take(&mut batch);
        for _ in 0..5 {
            assert!(!outbox.written(100));
        }
        // Light again below an eighth of the limit (100 bytes).
        assert!(outbox.written(100));
        assert!(!outbox.holds_room());
    }

    #[test]
    fn a_stalled_writer_does_not_hold_the_room() {
        let (outbox, _) = outbox(800);
        while outbox.push(&frame(100, 1)).is_ok() {}
        assert!(outbox.holds_room());
        assert!(outbox.set_stalled(true));
        assert!(!outbox.holds_room());
        assert!(outbox.is_stalled());
        assert!(!outbox.set_stalled(true), "no change");
        assert!(outbox.set_stalled(false));
        assert!(outbox.holds_room());
    }

    #[test]
    fn retiring_uncounts_everything_once() {
        let (outbox, totals) = outbox(10_000);
        outbox.push(&frame(100, 1)).unwrap();
        outbox.push(&frame(100, 2)).unwrap();
        let mut batch = Batch::default();
        outbox.take(&mut batch);
        outbox.push(&frame(100, 3)).unwrap();
        outbox.abort(None);
        assert_eq!(totals.queued(), 0);
        outbox.retire();
        outbox.written(100);
        assert_eq!(totals.queued(), 0, "nothing counted twice");
        outbox.push(&frame(100, 4)).unwrap();
        assert_eq!(totals.queued(), 0, "a retired queue takes nothing");
    }

    #[test]
    fn a_cut_batch_keeps_the_half_written_frame_and_ends_with_the_last() {
        let (first, _) = outbox(10_000);
        for fill in [1, 2, 3] {
            first.push(&frame(8, fill)).unwrap();
        }
        let mut batch = Batch::default();
        first.take(&mut batch);
        batch.advance(10); // the first frame and 2 bytes of the second
        batch.cut_and_append(Bytes::from_static(b"XY"));
        let mut expected = frame(8, 2)[2..].to_vec();
        expected.extend_from_slice(b"XY");
        assert_eq!(write_all(&mut batch), expected);

        let (second, _) = outbox(10_000);
        second.push(&frame(8, 1)).unwrap();
        second.push(&frame(8, 2)).unwrap();
        let mut batch = Batch::default();
        second.take(&mut batch);
        batch.advance(8); // exactly one whole frame
        batch.cut_and_append(Bytes::from_static(b"XY"));
        assert_eq!(write_all(&mut batch), b"XY", "an unbegun frame is dropped");
    }

    #[test]
    fn close_is_reported_after_the_frames() {
        let (outbox, _) = outbox(1000);
        let mut batch = Batch::default();
        assert_eq!(outbox.take(&mut batch), Next::Wait);
        outbox.push(&frame(7, 9)).unwrap();
        outbox.close();
        assert_eq!(outbox.take(&mut batch), Next::WriteThenClose);
        assert_eq!(batch.remaining(), 7);
    }

    #[test]
    fn an_emptied_buffer_that_grew_gives_its_memory_back() {
        let (outbox, _) = outbox(MAX_QUEUED_BYTES);
        for _ in 0..100 {
            outbox.push(&frame(1000, 1)).unwrap();
        }
        let mut batch = Batch::default();
        outbox.take(&mut batch);
        assert!(outbox.lock().pending.capacity() <= IDLE_BUFFER_BYTES);
    }
}
