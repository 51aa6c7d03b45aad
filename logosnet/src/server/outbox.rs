//! One connection's bounded outgoing queue: the room task pushes frames
//! without ever waiting, the connection's task takes them all at once and
//! writes them in as few system calls as it can.
//!
//! The bound is what keeps a client that stops reading from costing the
//! server more than [`MAX_QUEUED_BYTES`] or delaying anyone else: a push that
//! would exceed it fails, and the driver drops that connection as a slow
//! consumer.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Mutex;

use bytes::{Buf, Bytes};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Most bytes queued or being written for one connection: 1 MiB. That is
/// about 240 maximum-length (1000-character, 4-byte) chat lines, or some
/// 7,000 typical ones — seconds of a busy room — while 510 such queues stay
/// well within memory. (Redis caps a pub/sub client's output at 32 MB, NATS
/// at 64 MiB; our frames are small and our room is bounded, so less does.)
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// The queue was over its bound; the connection must be dropped.
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
    frames: VecDeque<Bytes>,
    /// Queued plus taken-but-not-yet-written bytes.
    bytes: usize,
    closing: bool,
    overflowed: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    limit: usize,
    ready: Notify,
    cancel: CancellationToken,
}

impl Outbox {
    /// An empty queue holding at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            limit,
            ready: Notify::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Queues one frame, or fails if that would pass the bound (and keeps
    /// failing: the connection is finished).
    pub fn push(&self, frame: Bytes) -> Result<(), Overflow> {
        let mut q = self.lock();
        if q.overflowed || q.bytes + frame.len() > self.limit {
            q.overflowed = true;
            return Err(Overflow);
        }
        if q.closing {
            return Ok(());
        }
        let was_empty = q.frames.is_empty();
        q.bytes += frame.len();
        q.frames.push_back(frame);
        drop(q);
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Asks the writer to flush what is queued and then close.
    pub fn close(&self) {
        self.lock().closing = true;
        self.ready.notify_one();
    }

    /// Drops the connection now, unflushed.
    pub fn abort(&self) {
        self.cancel.cancel();
    }

    /// Bytes queued or being written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Moves every queued frame into `batch`.
    pub(crate) fn take(&self, batch: &mut Batch) -> Next {
        let mut q = self.lock();
        batch.extend(q.frames.drain(..));
        match (batch.has_remaining(), q.closing) {
            (_, true) => Next::WriteThenClose,
            (true, false) => Next::Write,
            (false, false) => Next::Wait,
        }
    }

    /// Records that `n` taken bytes reached the socket.
    pub(crate) fn written(&self, n: usize) {
        let mut q = self.lock();
        q.bytes = q.bytes.saturating_sub(n);
    }

    /// Resolves when there may be something to take.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Resolves when the connection must be dropped at once.
    pub(crate) async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The lock is never held across a panic-prone call; recover anyway.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Frames taken for one write, presented to the socket as one buffer so that
/// a vectored write sends many frames in one system call.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    frames: VecDeque<Bytes>,
    remaining: usize,
}

impl Batch {
    /// Frames (or what is left of them) still to write.
    pub(crate) fn frames(&self) -> usize {
        self.frames.len()
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
                break;
            }
            cnt -= front.len();
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

    #[test]
    fn push_past_the_limit_overflows_and_stays_overflowed() {
        let outbox = Outbox::new(10);
        assert_eq!(outbox.push(Bytes::from_static(b"123456")), Ok(()));
        assert_eq!(outbox.push(Bytes::from_static(b"12345")), Err(Overflow));
        assert_eq!(outbox.push(Bytes::from_static(b"1")), Err(Overflow));
    }

    #[test]
    fn taken_bytes_count_until_written() {
        let outbox = Outbox::new(10);
        outbox.push(Bytes::from_static(b"12345678")).unwrap();
        let mut batch = Batch::default();
        assert_eq!(outbox.take(&mut batch), Next::Write);
        assert_eq!(outbox.push(Bytes::from_static(b"123")), Err(Overflow));
        let outbox = Outbox::new(10);
        outbox.push(Bytes::from_static(b"12345678")).unwrap();
        outbox.take(&mut batch);
        outbox.written(8);
        assert_eq!(outbox.push(Bytes::from_static(b"123")), Ok(()));
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
    fn close_is_reported_after_the_frames() {
        let outbox = Outbox::new(100);
        let mut batch = Batch::default();
        assert_eq!(outbox.take(&mut batch), Next::Wait);
        outbox.push(Bytes::from_static(b"bye")).unwrap();
        outbox.close();
        assert_eq!(outbox.take(&mut batch), Next::WriteThenClose);
        assert_eq!(batch.remaining(), 3);
    }
}
