//! One connection's bounded incoming queue: whole frames its task has read
//! and decoded, waiting for the room task to take them.
//!
//! The room *pulls*: it takes a connection's frames when its rules allow
//! (flood control, back-pressure), one at a time and in turn with everyone
//! else. When the queue holds [`INBOX_BYTES`], the connection's task stops
//! reading its socket, so a sender the room is not taking from fills its own
//! TCP window and nothing else. The end of the stream (or a violation) is
//! queued behind the frames before it, so no line is lost at the edges.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::protocol::{ClientFrame, FrameError};

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

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Input>,
    bytes: usize,
    /// The room has been told there is input and has not yet found the
    /// queue empty: at most one wake-up is in flight per connection.
    scheduled: bool,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    state: Mutex<State>,
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

    /// Resolves when a full queue may have space again.
    pub(crate) async fn space(&self) {
        self.space.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
