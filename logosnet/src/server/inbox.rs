//! One connection's bounded incoming queue: whole frames its task has read
//! and decoded, waiting for the room task to take them.
//!
//! The room *pulls*: it takes a connection's frames when its rules allow
//! (flood control, back-pressure), one at a time and in turn with everyone
//! else. When the queue holds [`INBOX_BYTES`], the connection's task stops
//! reading its socket, so a sender the room is not taking from fills its own
//! TCP window and nothing else. The end of the stream (or a violation) is
//! queued behind the frames before it, so no line is lost at the edges.
//!
//! The inbox also carries the room's answer back: the [`FrameLimit`] of the
//! connection's state, *settled* once the room has taken every frame handed
//! in so far. The connection judges each new header by it; a header over a
//! limit that is not settled yet waits until it is, since the frames ahead
//! (a `Hello`, an accepted name) may raise it. So a client that sends its
//! name and its first line back to back is judged exactly as one that
//! waits for each answer.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::codec::FrameLimit;
use crate::protocol::{ClientFrame, FrameError};
use crate::room::HELLO_LIMIT;

/// Most bytes of decoded input one connection may have waiting: a 4,000-byte
/// line (1,000 four-byte characters) or some forty short ones. With the
/// partial frame in the decoder that keeps any connection's input to a few
/// KiB however fast it sends.
pub const INBOX_BYTES: usize = 4096;

/// What the room takes from a connection, in the order it happened.
#[derive(Debug)]
pub(crate) enum Input {
    /// A whole frame.
    Frame(ClientFrame),
    /// A frame over the connection's limit went by, skipped unread: its
    /// announced length.
    Oversized(usize),
    /// The stream broke the protocol; nothing follows.
    Violation(FrameError),
    /// The peer is gone; nothing follows.
    End,
}

impl Input {
    /// What holding it counts against [`INBOX_BYTES`].
    fn cost(&self) -> usize {
        const SLOT: usize = std::mem::size_of::<Input>();
        match self {
            Input::Frame(ClientFrame::Chat(text) | ClientFrame::Username(text)) => {
                SLOT + text.len()
            }
            _ => SLOT,
        }
    }
}

impl Input {
    /// Whether the room's answer to it can change the frame limit.
    fn is_frame(&self) -> bool {
        matches!(self, Input::Frame(_) | Input::Oversized(_))
    }
}

#[derive(Debug)]
struct State {
    /// Input read and not yet taken by the room, oldest first.
    items: VecDeque<Input>,
    /// Bytes of `items`, against [`INBOX_BYTES`].
    bytes: usize,
    /// The room has been told there is input and has not yet found the
    /// queue empty: at most one wake-up is in flight per connection.
    scheduled: bool,
    /// Frames queued, taken by the room, and taken *and* settled: the
    /// limit below reflects every one of the first `settled`.
    pushed: u64,
    /// Frames the room has taken (see `pushed`).
    popped: u64,
    /// Frames taken whose answer the limit reflects (see `pushed`).
    settled: u64,
    /// The limit of the connection's state after the settled frames.
    limit: FrameLimit,
    /// The connection waits for the limit to settle.
    awaiting_settle: bool,
}

impl Default for State {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            scheduled: false,
            pushed: 0,
            popped: 0,
            settled: 0,
            // What the room gives a connection it has just opened.
            limit: HELLO_LIMIT,
            awaiting_settle: false,
        }
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// The queue and its bookkeeping, shared by the reader and the room.
    state: Mutex<State>,
    /// Wakes the reader when the room has taken something or the limit settled.
    space: Notify,
}

impl Inbox {
    /// True while another frame may be queued.
    pub(crate) fn has_space(&self) -> bool {
        self.lock().bytes < INBOX_BYTES
    }

    /// Queues `input` (the end and violations always fit); true if the room
    /// must be told that this connection has input.
    pub(crate) fn push(&self, input: Input) -> bool {
        let mut s = self.lock();
        if input.is_frame() {
            s.pushed += 1;
        }
        s.bytes += input.cost();
        s.items.push_back(input);
        !std::mem::replace(&mut s.scheduled, true)
    }

    /// Whether the next input is a chat line (what back-pressure holds).
    pub(crate) fn next_is_chat(&self) -> bool {
        matches!(
            self.lock().items.front(),
            Some(Input::Frame(ClientFrame::Chat(_)))
        )
    }

    /// Takes the next input; `None` (and the connection unscheduled) if
    /// there is none.
    pub(crate) fn pop(&self) -> Option<Input> {
        let mut s = self.lock();
        let Some(input) = s.items.pop_front() else {
            s.scheduled = false;
            return None;
        };
        if input.is_frame() {
            s.popped += 1;
        }
        let was_full = s.bytes >= INBOX_BYTES;
        s.bytes -= input.cost();
        let has_space = s.bytes < INBOX_BYTES;
        drop(s);
        if was_full && has_space {
            self.space.notify_one();
        }
        Some(input)
    }

    /// True if nothing is waiting; the connection is then unscheduled, so
    /// its next push tells the room again.
    pub(crate) fn unschedule_if_empty(&self) -> bool {
        let mut s = self.lock();
        if s.items.is_empty() {
            s.scheduled = false;
            true
        } else {
            false
        }
    }

    /// Resolves when a full queue may have space again, or a limit the
    /// connection waits for has settled.
    pub(crate) async fn space(&self) {
        self.space.notified().await;
    }

    /// The room has taken every frame popped so far (none is held by flood
    /// control), and `limit` is the connection's limit after them.
    pub(crate) fn settle(&self, limit: FrameLimit) {
        let mut s = self.lock();
        s.settled = s.popped;
        s.limit = limit;
        let wake = s.awaiting_settle && s.settled == s.pushed;
        if wake {
            s.awaiting_settle = false;
        }
        drop(s);
        if wake {
            self.space.notify_one();
        }
    }

    /// The limit to judge the next header by, and whether it is settled
    /// (reflects every frame handed in).
    pub(crate) fn frame_limit(&self) -> (FrameLimit, bool) {
        let s = self.lock();
        (s.limit, s.settled == s.pushed)
    }

    /// Asks to be woken (through [`Inbox::space`]) once the limit has
    /// settled; false if it already has.
    pub(crate) fn await_settle(&self) -> bool {
        let mut s = self.lock();
        s.awaiting_settle = s.settled != s.pushed;
        s.awaiting_settle
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::{MEMBER_LIMIT, NAMING_LIMIT};

    fn chat(len: usize) -> Input {
        Input::Frame(ClientFrame::Chat("x".repeat(len)))
    }

    #[test]
    fn only_the_first_push_after_the_queue_was_found_empty_wakes_the_room() {
        let inbox = Inbox::default();
        assert!(inbox.push(chat(1)));
        assert!(!inbox.push(chat(1)));
        assert!(inbox.pop().is_some());
        assert!(inbox.pop().is_some());
        assert!(!inbox.push(chat(1)), "still scheduled until found empty");
        assert!(inbox.pop().is_some());
        assert!(inbox.pop().is_none());
        assert!(inbox.push(chat(1)), "found empty: the next push wakes");
    }

    #[test]
    fn a_full_queue_has_no_space_until_the_room_takes() {
        let inbox = Inbox::default();
        let mut pushed = 0;
        while inbox.has_space() {
            inbox.push(chat(1000));
            pushed += 1;
        }
        assert_eq!(pushed, INBOX_BYTES.div_ceil(chat(1000).cost()));
        inbox.push(Input::End);
        assert!(!inbox.has_space());
        inbox.pop();
        assert!(inbox.has_space());
    }

    #[test]
    fn the_limit_settles_once_the_room_has_taken_every_frame_handed_in() {
        let inbox = Inbox::default();
        assert_eq!(inbox.frame_limit(), (HELLO_LIMIT, true), "a new connection");
        inbox.push(chat(1));
        inbox.push(chat(1));
        assert_eq!(inbox.frame_limit(), (HELLO_LIMIT, false));
        assert!(inbox.await_settle());
        inbox.pop();
        inbox.settle(MEMBER_LIMIT);
        // One frame taken and settled, one still queued.
        assert_eq!(inbox.frame_limit(), (MEMBER_LIMIT, false));
        inbox.pop();
        inbox.settle(MEMBER_LIMIT);
        assert_eq!(inbox.frame_limit(), (MEMBER_LIMIT, true));
        // Neither the end nor a violation waits for the room.
        inbox.push(Input::Violation(FrameError::Empty));
        inbox.push(Input::End);
        assert_eq!(inbox.frame_limit(), (MEMBER_LIMIT, true));
        assert!(!inbox.await_settle());
    }

    #[tokio::test]
    async fn settling_wakes_a_connection_that_waits_for_it() {
        let inbox = Inbox::default();
        inbox.push(chat(1));
        assert!(inbox.await_settle());
        inbox.pop();
        inbox.settle(NAMING_LIMIT);
        tokio::time::timeout(std::time::Duration::from_secs(5), inbox.space())
            .await
            .expect("woken");
    }

    #[test]
    fn inputs_come_out_in_order_with_the_end_last() {
        let inbox = Inbox::default();
        inbox.push(chat(1));
        inbox.push(Input::Frame(ClientFrame::Username("x".into())));
        inbox.push(Input::End);
        assert!(inbox.next_is_chat());
        assert!(matches!(
            inbox.pop(),
            Some(Input::Frame(ClientFrame::Chat(_)))
        ));
        assert!(!inbox.next_is_chat());
        assert!(matches!(
            inbox.pop(),
            Some(Input::Frame(ClientFrame::Username(_)))
        ));
        assert!(matches!(inbox.pop(), Some(Input::End)));
        assert!(inbox.unschedule_if_empty());
    }
}
