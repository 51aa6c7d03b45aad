//! One connection's bounded outgoing queue, and the accounting of what every
//! queued frame really costs.
//!
//! The room task pushes frames without ever waiting; the connection's task
//! takes them all at once and writes them in as few system calls as it can.
//!
//! Two accounts, each an upper bound on memory. A connection's own queue is
//! charged [`queued_cost`] per frame: its bytes plus [`FRAME_OVERHEAD_BYTES`],
//! as if it alone held them (it may be the last to), so its bound is the same
//! for 1-byte and 1,000-character lines. The server-wide [`Totals`] count
//! what all the queues really hold: [`ENTRY_BYTES`] for each queued frame,
//! and each distinct frame's bytes once ([`Totals::count`]: a broadcast is
//! shared by every recipient and freed when the last has written it).
//!
//! The queue also keeps the facts back-pressure needs: whether it is
//! *heavy* (past [`HEAVY_QUEUED_BYTES`], until it drains below
//! [`LIGHT_QUEUED_BYTES`]) and whether its writer is *stalled* (no write
//! progress for the stall grace, set by the connection's task). A heavy
//! queue whose writer is not stalled [holds the room](Outbox::holds_room);
//! the driver decides what that means; this module only keeps the facts
//! true.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Most bytes charged to one connection's queue: 1 MiB. That is about 240
/// maximum-length (1000-character, 4-byte) chat lines, or some 7,000 typical
/// ones. A member past it is dropped as too far behind. (Redis caps a
/// pub/sub client's output at 32 MB, NATS at 64 MiB; our frames are small and
/// our room is bounded, so less does.)
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// A queue charged more than this is *heavy*: while its reader keeps
/// draining it, the room stops taking chat lines until it is light. Half
/// the hard bound, so what is already taken when the room pauses fits below
/// the bound.
pub const HEAVY_QUEUED_BYTES: usize = MAX_QUEUED_BYTES / 2;

/// A heavy queue is light again once it drains below this: a quarter of the
/// heavy mark, so the room does not flap between paused and running.
pub const LIGHT_QUEUED_BYTES: usize = HEAVY_QUEUED_BYTES / 4;

/// What holding one queued frame costs beyond its bytes: its `Bytes` handle
/// (32 bytes), as much again for the queue's spare capacity (a `VecDeque`
/// grows by doubling), and 32 for the allocator's header and the shared
/// count of a frame that is not shared. Broadcast bytes are shared by every
/// recipient, so charging each recipient the whole frame over-counts them:
/// the charge is an upper bound on memory, never an under-estimate.
pub const FRAME_OVERHEAD_BYTES: usize = 96;

/// The charge for queuing one frame of `len` bytes.
pub fn queued_cost(len: usize) -> usize {
    len + FRAME_OVERHEAD_BYTES
}

/// What one queued frame costs the server beyond its shared bytes: its
/// `Bytes` handle (32) and as much again for its queue's spare capacity (a
/// `VecDeque` is at most twice as long as it needs; an emptied one that grew
/// gives its memory back).
pub const ENTRY_BYTES: usize = 64;

/// What holding a frame's bytes costs beyond them, once per distinct frame:
/// the allocator's header and rounding, and the shared owner with its count.
pub const PAYLOAD_OVERHEAD_BYTES: usize = 128;

/// A frame's bytes, counted in the totals while any queue holds them.
#[derive(Debug)]
struct Counted {
    bytes: Bytes,
    charge: usize,
    totals: Arc<Totals>,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.totals.sub(self.charge);
    }
}

/// Bytes the queues hold across the server (a slot per queued frame, each
/// distinct frame's bytes once), for the server-wide budget, and the
/// wake-up for a room that paused on it.
#[derive(Debug, Default)]
pub struct Totals {
    queued: AtomicUsize,
    /// While non-zero, the room is paused on the budget and wants to hear
    /// when the total falls below this mark.
    wake_below: AtomicUsize,
    eased: Notify,
}

impl Totals {
    /// Bytes charged right now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Wraps a frame so that its bytes count once in the totals for as long
    /// as any queue holds a copy of the handle returned.
    pub(crate) fn count(self: &Arc<Self>, frame: Bytes) -> Bytes {
        let charge = frame.len() + PAYLOAD_OVERHEAD_BYTES;
        self.add(charge);
        Bytes::from_owner(Counted {
            bytes: frame,
            charge,
            totals: self.clone(),
        })
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
    /// Frames not yet taken by the writer.
    frames: VecDeque<Bytes>,
    /// Charged bytes of queued frames plus taken-but-unwritten ones.
    cost: usize,
    /// Frames queued plus taken-but-unwritten, each [`ENTRY_BYTES`] in the
    /// totals.
    entries: usize,
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
    queue: Mutex<Queue>,
    limit: usize,
    totals: Arc<Totals>,
    ready: Notify,
    cancel: CancellationToken,
}

impl Outbox {
    /// An empty queue holding at most `limit` charged bytes, counted into
    /// `totals`.
    pub fn new(limit: usize, totals: Arc<Totals>) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            limit,
            totals,
            ready: Notify::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Queues one frame, or fails if its charge would pass the bound (the
    /// caller then drops the connection); `Ok(true)` if the queue has just
    /// become heavy. Frames for a closing or finished connection are dropped
    /// silently.
    pub fn push(&self, frame: Bytes) -> Result<bool, Overflow> {
        let cost = queued_cost(frame.len());
        let mut q = self.lock();
        if q.retired || q.closing {
            return Ok(false);
        }
        if q.cost + cost > self.limit {
            return Err(Overflow);
        }
        let was_empty = q.frames.is_empty();
        q.cost += cost;
        q.entries += 1;
        q.frames.push_back(frame);
        let became_heavy = !q.heavy && q.cost > self.heavy_mark();
        q.heavy |= became_heavy;
        drop(q);
        self.totals.add(ENTRY_BYTES);
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

    /// Stops counting this queue: its frames are discarded and its charge
    /// leaves the totals. Called when the connection ends, however it ends.
    pub fn retire(&self) {
        let mut q = self.lock();
        if q.retired {
            return;
        }
        q.retired = true;
        q.cost = 0;
        let entries = std::mem::take(&mut q.entries);
        q.frames = VecDeque::new();
        q.heavy = false;
        drop(q);
        self.totals.sub(entries * ENTRY_BYTES);
    }

    /// Bytes charged to this queue.
    pub fn queued_bytes(&self) -> usize {
        self.lock().cost
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

    /// Moves every queued frame into `batch`.
    pub(crate) fn take(&self, batch: &mut Batch) -> Next {
        let mut q = self.lock();
        batch.extend(q.frames.drain(..));
        if q.frames.capacity() > SHRINK_SLOTS {
            // A burst grew the queue: give the memory back once it is empty.
            q.frames = VecDeque::new();
        }
        match (batch.has_remaining(), q.closing) {
            (_, true) => Next::WriteThenClose,
            (true, false) => Next::Write,
            (false, false) => Next::Wait,
        }
    }

    /// Records that whole frames were written out; true if that made a
    /// heavy queue light.
    pub(crate) fn written(&self, done: Written) -> bool {
        let mut q = self.lock();
        if q.retired || done.frames == 0 {
            return false;
        }
        q.cost = q.cost.saturating_sub(done.cost);
        let frames = done.frames.min(q.entries);
        q.entries -= frames;
        let became_light = q.heavy && q.cost < self.light_mark();
        if became_light {
            q.heavy = false;
        }
        drop(q);
        self.totals.sub(frames * ENTRY_BYTES);
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

    fn heavy_mark(&self) -> usize {
        self.limit / 2
    }

    fn light_mark(&self) -> usize {
        self.limit / 8
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The lock is never held across a panic-prone call; recover anyway.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Queue slots (32 bytes each) kept after a queue empties; a queue that grew
/// past this gives its memory back, so an idle connection holds 2 KiB of
/// slots at most in each of its queue and its batch.
pub const SHRINK_SLOTS: usize = 64;

/// Whole frames written out, and their charge to their connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Written {
    /// How many.
    pub(crate) frames: usize,
    /// Their [`queued_cost`], summed.
    pub(crate) cost: usize,
}

/// Frames taken for one write, presented to the socket as one buffer so that
/// a vectored write sends many frames in one system call. It remembers the
/// frames written out since it was last asked.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    frames: VecDeque<Bytes>,
    remaining: usize,
    /// Bytes of the front frame already written.
    front_written: usize,
    /// Whole frames written since [`Batch::take_written`].
    written: Written,
}

impl Batch {
    /// Frames (or what is left of them) still to write.
    pub(crate) fn frames(&self) -> usize {
        self.frames.len()
    }

    /// The frames completed since the last call. An emptied batch that
    /// grew large gives its slots back.
    pub(crate) fn take_written(&mut self) -> Written {
        if self.frames.is_empty() && self.frames.capacity() > SHRINK_SLOTS {
            self.frames = VecDeque::new();
        }
        std::mem::take(&mut self.written)
    }

    /// Drops every frame not yet begun, keeping the rest of one half
    /// written (so the stream stays framed), then appends `last`.
    pub(crate) fn cut_and_append(&mut self, last: Bytes) {
        let keep = usize::from(self.front_written > 0);
        self.frames.truncate(keep);
        self.remaining = self.frames.iter().map(Bytes::len).sum::<usize>();
        self.remaining += last.len();
        self.frames.push_back(last);
    }

    fn extend(&mut self, frames: impl Iterator<Item = Bytes>) {
        for frame in frames {
            self.remaining += frame.len();
            self.frames.push_back(frame);
        }
    }
}

impl Buf for Batch {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.frames.front().map_or(&[], |f| f.chunk())
    }

    fn advance(&mut self, mut cnt: usize) {
        self.remaining -= cnt;
        while cnt > 0 {
            let Some(front) = self.frames.front_mut() else {
                break;
            };
            if cnt < front.len() {
                front.advance(cnt);
                self.front_written += cnt;
                break;
            }
            cnt -= front.len();
            self.written.frames += 1;
            self.written.cost += queued_cost(self.front_written + front.len());
            self.front_written = 0;
            self.frames.pop_front();
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, frame) in dst.iter_mut().zip(&self.frames) {
            *slot = IoSlice::new(frame);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(limit: usize) -> (Outbox, Arc<Totals>) {
        let totals = Arc::new(Totals::default());
        (Outbox::new(limit, totals.clone()), totals)
    }

    fn frame(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    /// One of `k` frames written out, charged as `len` bytes.
    fn one(len: usize) -> Written {
        Written {
            frames: 1,
            cost: queued_cost(len),
        }
    }

    #[test]
    fn every_frame_is_charged_its_bytes_and_its_overhead() {
        let (outbox, totals) = outbox(10_000);
        outbox.push(frame(1)).unwrap();
        outbox.push(frame(1000)).unwrap();
        let expected = 1 + 1000 + 2 * FRAME_OVERHEAD_BYTES;
        assert_eq!(outbox.queued_bytes(), expected);
        assert_eq!(totals.queued(), 2 * ENTRY_BYTES);
    }

    #[test]
    fn a_shared_frame_counts_once_in_the_totals_until_its_last_holder_lets_go() {
        let totals = Arc::new(Totals::default());
        let queues: Vec<Outbox> = (0..3)
            .map(|_| Outbox::new(10_000, totals.clone()))
            .collect();
        let shared = totals.count(frame(1000));
        for queue in &queues {
            queue.push(shared.clone()).unwrap();
        }
        drop(shared);
        let bytes_once = 1000 + PAYLOAD_OVERHEAD_BYTES;
        assert_eq!(totals.queued(), bytes_once + 3 * ENTRY_BYTES);
        // Two write it out; the third still holds the bytes.
        for queue in &queues[..2] {
            let mut batch = Batch::default();
            queue.take(&mut batch);
            batch.advance(1000);
            queue.written(batch.take_written());
        }
        assert_eq!(totals.queued(), bytes_once + ENTRY_BYTES);
        queues[2].retire();
        assert_eq!(totals.queued(), 0, "retired: its copy is gone too");
    }

    #[test]
    fn a_push_past_the_limit_fails_and_is_not_charged() {
        let (outbox, totals) = outbox(2 * queued_cost(10));
        outbox.push(frame(10)).unwrap();
        outbox.push(frame(10)).unwrap();
        assert_eq!(outbox.push(frame(1)), Err(Overflow));
        assert_eq!(outbox.queued_bytes(), 2 * queued_cost(10));
        assert_eq!(totals.queued(), 2 * ENTRY_BYTES);
    }

    #[test]
    fn one_byte_frames_cannot_hide_behind_their_size() {
        // 1 MiB of 9-byte frames is 16 times fewer frames once charged.
        let (outbox, _) = outbox(MAX_QUEUED_BYTES);
        let mut pushed = 0;
        while outbox.push(frame(9)).is_ok() {
            pushed += 1;
        }
        assert_eq!(pushed, MAX_QUEUED_BYTES / queued_cost(9));
    }

    #[test]
    fn written_frames_leave_the_charge_whole_frames_at_a_time() {
        let (outbox, totals) = outbox(10_000);
        outbox.push(frame(10)).unwrap();
        outbox.push(frame(20)).unwrap();
        let mut batch = Batch::default();
        assert_eq!(outbox.take(&mut batch), Next::Write);
        batch.advance(15);
        assert_eq!(batch.take_written(), one(10));
        outbox.written(one(10));
        assert_eq!(outbox.queued_bytes(), queued_cost(20));
        assert_eq!(totals.queued(), ENTRY_BYTES);
        batch.advance(15);
        outbox.written(batch.take_written());
        assert_eq!(outbox.queued_bytes(), 0);
        assert_eq!(totals.queued(), 0);
        assert!(!batch.has_remaining());
    }

    #[test]
    fn heavy_from_half_the_limit_until_below_an_eighth() {
        let (outbox, _) = outbox(8 * queued_cost(100));
        for _ in 0..4 {
            assert_eq!(outbox.push(frame(100)), Ok(false));
        }
        assert_eq!(outbox.push(frame(100)), Ok(true), "past half the limit");
        assert!(outbox.holds_room());
        assert_eq!(outbox.push(frame(100)), Ok(false), "already heavy");
        let mut batch = Batch::default();
        outbox.take(&mut batch);
        for _ in 0..5 {
            assert!(!outbox.written(one(100)));
        }
        // Light again below an eighth of the limit (one frame's charge).
        assert!(outbox.written(one(100)));
        assert!(!outbox.holds_room());
    }

    #[test]
    fn a_stalled_writer_does_not_hold_the_room() {
        let (outbox, _) = outbox(8 * queued_cost(100));
        while outbox.push(frame(100)).is_ok() {}
        assert!(outbox.holds_room());
        assert!(outbox.set_stalled(true));
        assert!(!outbox.holds_room());
        assert!(outbox.is_stalled());
        assert!(!outbox.set_stalled(true), "no change");
        assert!(outbox.set_stalled(false));
        assert!(outbox.holds_room());
    }

    #[test]
    fn batch_advances_across_frames() {
        let mut batch = Batch::default();
        batch.extend([Bytes::from_static(b"abc"), Bytes::from_static(b"de")].into_iter());
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(batch.chunks_vectored(&mut slices), 2);
        batch.advance(4);
        assert_eq!(batch.chunk(), b"e");
        assert_eq!(batch.remaining(), 1);
        batch.advance(1);
        assert!(!batch.has_remaining());
        assert_eq!(batch.chunk(), b"");
    }

    #[test]
    fn a_cut_batch_keeps_the_half_written_frame_and_ends_with_the_last() {
        let mut batch = Batch::default();
        batch.extend(
            [
                Bytes::from_static(b"abcd"),
                Bytes::from_static(b"efgh"),
                Bytes::from_static(b"ijkl"),
            ]
            .into_iter(),
        );
        batch.advance(2);
        batch.cut_and_append(Bytes::from_static(b"XY"));
        let mut out = Vec::new();
        while batch.has_remaining() {
            out.extend_from_slice(batch.chunk());
            let n = batch.chunk().len();
            batch.advance(n);
        }
        assert_eq!(out, b"cdXY");
        let mut fresh = Batch::default();
        fresh.extend([Bytes::from_static(b"abcd")].into_iter());
        fresh.cut_and_append(Bytes::from_static(b"XY"));
        assert_eq!(fresh.chunk(), b"XY", "an unbegun frame is dropped");
    }

    #[test]
    fn close_is_reported_after_the_frames() {
        let (outbox, _) = outbox(1000);
        let mut batch = Batch::default();
        assert_eq!(outbox.take(&mut batch), Next::Wait);
        outbox.push(Bytes::from_static(b"bye")).unwrap();
        outbox.close();
        assert_eq!(outbox.take(&mut batch), Next::WriteThenClose);
        assert_eq!(batch.remaining(), 3);
    }
}
