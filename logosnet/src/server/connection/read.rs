//! A connection's read side: socket bytes → whole frames → its inbox, each
//! header judged by the frame limit the room settled, in one of five
//! states (the legal ones are the type).
//!
//! A frame begun must be finished within the frame deadline of *reading*
//! time: the [`FrameClock`] runs only while the side is willing to read
//! (not while flood control or a full inbox has stopped it), so a peer
//! stuck mid-frame, or dribbling one, is told why and closed, and a peer
//! the server is not reading is never blamed for it.

use std::time::Duration;

use tokio::time::Instant;

use super::Link;
use crate::codec::{Decoded, FrameDecoder};
use crate::protocol::{ClientFrame, FrameError, MAX_FRAME_BYTES};
use crate::server::inbox::Input;

/// Where the read side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// Reading frames as they come.
    Open,
    /// The next header is over a limit that is not settled yet: the frames
    /// ahead of it (a `Hello`, a name) may raise it, so nothing is read
    /// until the room has taken them.
    AwaitingLimit,
    /// The inbox is full, or whole frames still wait for room in it:
    /// nothing is read until the room takes some.
    AwaitingSpace,
    /// The socket has no more to give (its end, an error, or reading given
    /// up): what the decoder holds goes in, then the end.
    Draining,
    /// The end or a violation is handed in; nothing more is read.
    Ended,
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct ReadSide {
    /// What has been read of frames not yet in the inbox.
    pub(super) decoder: FrameDecoder,
    /// Where the side is.
    state: ReadState,
    /// Reading time spent on the frame in progress.
    frame_clock: FrameClock,
    /// See [`crate::server::FRAME_DEADLINE`].
    frame_deadline: Duration,
    /// After a failed write, reading stops at this instant at the latest.
    give_up_at: Option<Instant>,
}

impl ReadSide {
    pub(super) fn new(frame_deadline: Duration) -> Self {
        Self {
            decoder: FrameDecoder::new(),
            state: ReadState::Open,
            frame_clock: FrameClock::default(),
            frame_deadline,
            give_up_at: None,
        }
    }

    /// Whether the socket should be read now.
    pub(super) fn wants_read(&self, link: &Link) -> bool {
        self.state == ReadState::Open && link.inbox.has_space()
    }

    /// Whether the side waits for the room (to take input, or to settle a
    /// limit) before it can go on.
    pub(super) fn awaits_room(&self, link: &Link) -> bool {
        !self.is_ended() && !self.wants_read(link)
    }

    /// Whether the end (or a violation) has been handed in.
    pub(super) fn is_ended(&self) -> bool {
        self.state == ReadState::Ended
    }

    /// Runs the frame clock while the socket is read mid-frame; the
    /// instant the frame in progress must be finished by, if it runs.
    pub(super) fn frame_due(&mut self, now: Instant, reading: bool) -> Option<Instant> {
        self.frame_clock.track(
            reading && self.decoder.is_mid_frame(),
            now,
            self.frame_deadline,
        )
    }

    /// After a failed write: read what the peer already sent until `at`.
    pub(super) fn give_up_at(&mut self, at: Instant) {
        if !self.is_ended() {
            self.give_up_at = Some(at);
        }
    }

    /// When reading is given up, if a write failed.
    pub(super) fn give_up_deadline(&self) -> Option<Instant> {
        self.give_up_at
    }

    /// The room has forgotten the connection: input is discarded from here
    /// on.
    pub(super) fn stop(&mut self) {
        self.state = ReadState::Ended;
        self.give_up_at = None;
    }

    /// No more input from the socket: the room gets the end behind every
    /// whole frame already read, as it takes them.
    pub(super) fn end_of_input(&mut self, link: &Link) {
        self.give_up_at = None;
        if !self.is_ended() {
            self.state = ReadState::Draining;
            self.forward(link);
        }
    }

    /// The frame in progress has had its deadline: the room is told, as of
    /// a violation, and nothing more is read.
    pub(super) fn frame_deadline_passed(&mut self, link: &Link) {
        self.frame_clock.reset();
        if !self.is_ended() {
            tracing::info!(conn = link.conn, "frame not finished within the deadline");
            self.state = ReadState::Ended;
            self.give_up_at = None;
            link.hand_in(Input::Violation(FrameError::Unfinished(
                self.frame_deadline,
            )));
        }
    }

    /// Hands the room every whole frame already read, while it has space,
    /// each judged by the limit the room settled; once the socket has no
    /// more to give and the decoder no whole frame, the end.
    pub(super) fn forward(&mut self, link: &Link) {
        let draining = self.state == ReadState::Draining;
        if self.is_ended() {
            return;
        }
        loop {
            if !link.inbox.has_space() {
                if !draining {
                    self.state = ReadState::AwaitingSpace;
                }
                return;
            }
            let (limit, settled) = link.inbox.frame_limit();
            let over = self.decoder.announced().is_some_and(|len| {
                (limit.max_payload + 1..=MAX_FRAME_BYTES).contains(&(len as usize))
            });
            if over && !settled {
                // Wait for the room to take the frames ahead, or read the
                // limit again if it just has.
                if link.inbox.await_settle() {
                    if !draining {
                        self.state = ReadState::AwaitingLimit;
                    }
                    return;
                }
                continue;
            }
            match self.decoder.next_frame_within::<ClientFrame>(limit) {
                Ok(None) => {
                    if draining {
                        self.state = ReadState::Ended;
                        link.hand_in(Input::End);
                    } else {
                        self.state = ReadState::Open;
                    }
                    return;
                }
                Ok(Some(Decoded::Frame(frame))) => {
                    self.frame_clock.reset();
                    link.hand_in(Input::Frame(frame));
                }
                Ok(Some(Decoded::Skipped(len))) => {
                    self.frame_clock.reset();
                    tracing::debug!(conn = link.conn, len, "skipped an oversized frame");
                    link.hand_in(Input::Oversized(len));
                }
                Err(e) => {
                    self.state = ReadState::Ended;
                    self.give_up_at = None;
                    link.hand_in(Input::Violation(e));
                    return;
                }
            }
        }
    }
}

/// The frame deadline's clock: reading time spent on the frame in
/// progress. It runs only while the task is willing to read and a frame is
/// incomplete.
#[derive(Debug, Default)]
pub(super) struct FrameClock {
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
