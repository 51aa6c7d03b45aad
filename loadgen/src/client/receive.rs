//! The reader both roles share: reads the socket until the server closes it
//! or the run stops it, and checks every frame where it lies in the read
//! buffer.
//!
//! One pass per read: every whole frame the read completed is parsed in
//! place ([`crate::wire`]), stamped with one receipt time, recorded in this
//! client's own [`ReceiverLog`] and latency batch, and the shared delivery
//! counter is bumped once for the lot. Nothing on that path allocates or
//! locks: the phase is an atomic load, latencies merge into the shared
//! histogram once per [`crate::stats::LatencyBuffer`]-full, and only a
//! problem (rare by definition) takes the problems' lock.

use std::sync::atomic::Ordering;
use std::time::Instant;

use logosnet::protocol::{self, Presence, ServerFrame};
use tokio::io::AsyncRead;
use tokio::sync::oneshot;

use crate::check::{Receipt, Receiver, ReceiverLog};
use crate::message::{self, Garbled};
use crate::shared::{Phase, ProblemKind, Shared};
use crate::stats::LatencyBuffer;
use crate::wire::{Frame, FrameBuffer, MessageView};

use super::frame_name;

/// Join and leave notices seen by one observer, per participant.
#[derive(Debug, Clone)]
pub struct NoticeCounts {
    /// Join notices ([`protocol::joined`]), per participant index.
    pub joined: Vec<u32>,
    /// Leave notices ([`protocol::left`]), per participant index.
    pub left: Vec<u32>,
}

/// Reads `read` (a socket, a TLS stream or its read half) until the
/// connection ends or `stop` fires; returns what arrived and, for an
/// observer, the notices it counted.
pub(super) async fn run<R: AsyncRead + Unpin>(
    shared: &Shared,
    label: &str,
    who: Receiver,
    me: Option<&str>,
    mut read: R,
    mut buffer: FrameBuffer,
    mut stop: oneshot::Receiver<()>,
) -> (ReceiverLog, Option<NoticeCounts>) {
    let participants = shared.config.participants;
    let mut reader = Reader {
        shared,
        label,
        me,
        log: ReceiverLog::new(
            who,
            participants,
            shared.config.total_messages().div_ceil(participants as u64) as usize,
        ),
        latencies: LatencyBuffer::default(),
        notices: (who == Receiver::Observer).then(|| NoticeCounts {
            joined: vec![0; participants],
            left: vec![0; participants],
        }),
        closed_after_leave: false,
    };
    // The handshake may have read frames past its last answer.
    if reader.pass(&mut buffer) {
        loop {
            tokio::select! {
                // The socket first: the stop signal is looked at only when
                // there is nothing to read.
                biased;
                filled = buffer.fill(&mut read) => {
                    if !reader.on_read(filled, &mut buffer) {
                        break;
                    }
                }
                _ = &mut stop => break,
            }
        }
    }
    reader.finish()
}

/// One client's receive side: what it checks against and what it keeps.
struct Reader<'a> {
    /// The run's shared state.
    shared: &'a Shared,
    /// Who this is, for problem lines (`observer 3`, `participant lg7`).
    label: &'a str,
    /// This client's name, for private messages addressed to it.
    me: Option<&'a str>,
    /// Every message received, by sender and sequence number.
    log: ReceiverLog,
    /// Delivery latencies not yet merged into the shared histogram.
    latencies: LatencyBuffer,
    /// Observers: the join and leave notices counted.
    notices: Option<NoticeCounts>,
    /// A participant whose connection the server closed after it left.
    closed_after_leave: bool,
}

impl Reader<'_> {
    /// Handles one read; false when the connection is over.
    fn on_read(&mut self, filled: std::io::Result<usize>, buffer: &mut FrameBuffer) -> bool {
        let phase = self.shared.phase.now();
        let expected_end = phase.leaving() && self.me.is_some();
        let problems = &self.shared.problems;
        let label = self.label;
        match filled {
            Ok(0) | Err(_) if expected_end => {
                self.closed_after_leave = true;
                self.shared
                    .counters
                    .participants_closed
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
            Ok(0) => {
                let how = if buffer.is_mid_frame() {
                    " in the middle of a frame"
                } else {
                    ""
                };
                problems.report(ProblemKind::UnexpectedClose, || {
                    format!("{label}: the server closed the connection{how} during {phase}")
                });
                false
            }
            Err(e) => {
                problems.report(ProblemKind::UnexpectedClose, || {
                    format!(
                        "{label}: the connection failed during {phase} ({})",
                        e.kind()
                    )
                });
                false
            }
            Ok(_) => self.pass(buffer),
        }
    }

    /// Handles every whole frame in the buffer, all stamped with the same
    /// receipt time; false if the stream is broken.
    fn pass(&mut self, buffer: &mut FrameBuffer) -> bool {
        // Judge frames by the phase as it is now: with several runtime
        // threads another client may already have acted on a change.
        let phase = self.shared.phase.now();
        let now = self.shared.micros_since_epoch(Instant::now());
        let mut first_receipts = 0;
        let intact = loop {
            match buffer.next_frame() {
                Ok(Some(Frame::Message(view))) => match self.delivery(view, now) {
                    Some(first) => first_receipts += u64::from(first),
                    None => break false,
                },
                Ok(Some(Frame::Other(frame))) => self.other(frame, phase),
                Ok(None) => break true,
                Err(e) => {
                    let label = self.label;
                    self.shared.problems.report(ProblemKind::ProtocolError, || {
                        format!("{label}: the server broke the framing: {e}")
                    });
                    break false;
                }
            }
        };
        if first_receipts > 0 {
            self.shared
                .counters
                .delivered
                .fetch_add(first_receipts, Ordering::Relaxed);
        }
        intact
    }

    /// Checks one chat message received at `now` (µs since the epoch):
    /// `Some(true)` for a first receipt, `Some(false)` for a repeat or a
    /// problem, `None` if the frame does not decode (the stream is broken).
    fn delivery(&mut self, view: MessageView<'_>, now: u64) -> Option<bool> {
        let config = &self.shared.config;
        let parsed = message::parse_delivery(
            view.text(),
            &config.name_prefix,
            config.participants,
            self.me,
            config.size,
        );
        match parsed {
            Ok(d) => {
                self.latencies
                    .push(now.saturating_sub(d.scheduled_us), &self.shared.delivery);
                Some(self.log.record(d.sender, d.seq, d.private) != Receipt::Duplicate)
            }
            Err(why) => self.undelivered(view, why).then_some(false),
        }
    }

    /// Describes a message that is not one of ours, intact; false if it does
    /// not even decode.
    fn undelivered(&mut self, view: MessageView<'_>, why: Garbled) -> bool {
        let shared = self.shared;
        let problems = &shared.problems;
        let label = self.label;
        let text = match view.decode() {
            Ok(ServerFrame::Message(text)) => text,
            Ok(other) => {
                // Not reachable with the current protocol: a payload the
                // fast path reads as a message decodes as one.
                problems.report(ProblemKind::UnexpectedFrame, || {
                    format!("{label}: unexpected {}", frame_name(&other))
                });
                return true;
            }
            Err(e) => {
                problems.report(ProblemKind::ProtocolError, || {
                    format!("{label}: the server sent a frame that does not decode: {e}")
                });
                return false;
            }
        };
        // A chat line from someone who is not one of ours: a stranger in
        // the room, not a fault of the server. (Prefix: a name that is not
        // ASCII does not fit the prefix as loadgen's names do.)
        if matches!(why, Garbled::Prefix | Garbled::Sender)
            && let Some(line) = protocol::parse_line(&text)
            && message::participant_index(
                &shared.config.name_prefix,
                line.sender,
                shared.config.participants,
            )
            .is_none()
        {
            let sender = line.sender;
            shared.note_foreign_name(sender);
            problems.report(ProblemKind::Foreign, || {
                format!("{label}: a message from {sender}, who is not a loadgen client")
            });
            return true;
        }
        let what = match why {
            Garbled::Prefix => "a message without the server's sender prefix",
            Garbled::Sender => "a message from an unknown sender",
            Garbled::Target => "a private message addressed to someone else",
            Garbled::Header => "a message whose sequence number or time does not parse",
            Garbled::Body => "a message whose bytes differ from what was sent",
        };
        problems.report(ProblemKind::Garbled, || {
            format!("{label}: {what}: \"{}\"", excerpt(&text))
        });
        true
    }

    /// Handles a frame other than a chat message.
    fn other(&mut self, frame: ServerFrame, phase: Phase) {
        let problems = &self.shared.problems;
        let label = self.label;
        match frame {
            ServerFrame::Notice(text) => self.notice(&text, phase),
            ServerFrame::Full => problems.report(ProblemKind::UnexpectedFull, || {
                format!("{label}: the server said Full during {phase}")
            }),
            ServerFrame::ProtocolError(reason) => {
                problems.report(ProblemKind::ProtocolError, || {
                    format!("{label}: the server reported a protocol error: {reason}")
                });
            }
            other => problems.report(ProblemKind::UnexpectedFrame, || {
                format!("{label}: unexpected {} during {phase}", frame_name(&other))
            }),
        }
    }

    fn notice(&mut self, text: &str, phase: Phase) {
        let shared = self.shared;
        let config = &shared.config;
        let problems = &shared.problems;
        let label = self.label;
        let (name, joined) = match protocol::parse_presence(text) {
            Some(Presence::Joined(name)) => (name, true),
            Some(Presence::Left(name)) => (name, false),
            None => {
                problems.report(ProblemKind::UnexpectedFrame, || {
                    format!(
                        "{label}: unexpected notice during {phase}: \"{}\"",
                        excerpt(text)
                    )
                });
                return;
            }
        };
        let Some(index) =
            message::participant_index(&config.name_prefix, name, config.participants)
        else {
            if shared.note_foreign_name(name) {
                let did = if joined { "joined" } else { "left" };
                problems.report(ProblemKind::Foreign, || {
                    format!("{label}: {name}, who is not a loadgen client, {did} the room")
                });
            }
            return;
        };
        let counts = self.notices.as_mut();
        if joined {
            // A join may still be in flight when traffic starts; observers
            // check that each participant's arrives exactly once.
            if let Some(counts) = counts {
                counts.joined[usize::from(index)] += 1;
            }
            if !phase.leaving() {
                return;
            }
        } else if phase.leaving() {
            if let Some(counts) = counts {
                let left = &mut counts.left;
                left[usize::from(index)] += 1;
                if left[usize::from(index)] == 1 && left.iter().all(|&n| n > 0) {
                    shared
                        .counters
                        .observers_done
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        problems.report(ProblemKind::UnexpectedFrame, || {
            format!(
                "{label}: unexpected notice during {phase}: \"{}\"",
                excerpt(text)
            )
        });
    }

    fn finish(mut self) -> (ReceiverLog, Option<NoticeCounts>) {
        self.shared.delivery.merge(&mut self.latencies);
        if self.me.is_some() && self.shared.phase.leave_ran() && !self.closed_after_leave {
            let label = self.label;
            self.shared
                .problems
                .report(ProblemKind::NotClosedAfterLeave, || {
                    format!("{label}: the server did not close the connection after it left")
                });
        }
        (self.log, self.notices)
    }
}

/// The first characters of a received text, with control characters
/// escaped, for a problem line.
fn excerpt(text: &str) -> String {
    const SHOWN: usize = 80;
    let mut out: String = text
        .chars()
        .take(SHOWN)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(SHOWN).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt("a\u{1b}b"), "a\\u{1b}b");
        let long = "x".repeat(100);
        assert_eq!(excerpt(&long), format!("{}…", "x".repeat(80)));
    }
}
