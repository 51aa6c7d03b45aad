//! What the room counts of what it did: lines taken, deliveries, warnings,
//! refusals and closes by why, lines held by flood control — and who is in
//! it, by state. Plain numbers the room adds to at the point where it
//! decides (one addition per chat line, never one per recipient: a public
//! line's deliveries are the count of members it goes to), for a driver to
//! publish as it likes (the tokio server copies them into its metrics once
//! per turn of the room task). Nothing here reads a clock or takes a lock.

use super::{CloseReason, Room};

/// The room's counts since it was made. Every field only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Public chat lines taken (each broadcast to every other member).
    pub public_lines: u64,
    /// Private lines taken (each sent to the one participant it names).
    pub private_lines: u64,
    /// Chat lines queued for a recipient: a public line once per member
    /// other than its sender, a private line once. Notices (joins, leaves,
    /// warnings) are not deliveries.
    pub deliveries: u64,
    /// Notices that begin `Warning: ` (see [`crate::protocol::is_warning`]).
    pub warnings: u64,
    /// Frames past `Hello` that flood control held until the sender's
    /// allowance covered them.
    pub flood_delayed: u64,
    /// Name attempts refused by the username rule (invalid, taken,
    /// reserved, too like a name in use).
    pub names_refused: u64,
    /// Connections the room closed, by why (indexed by [`close_index`]).
    closed: [u64; CLOSE_REASONS],
    /// Of the `Violation` closes, those for a frame not finished within the
    /// frame deadline: a timeout rather than a broken rule.
    frame_timeouts: u64,
}

/// How many [`CloseReason`]s there are.
const CLOSE_REASONS: usize = 7;

/// Where `reason` is counted in [`Tally`].
fn close_index(reason: CloseReason) -> usize {
    match reason {
        CloseReason::Full => 0,
        CloseReason::HelloTimeout => 1,
        CloseReason::UsernameTimeout => 2,
        CloseReason::Violation => 3,
        CloseReason::Shutdown => 4,
        CloseReason::MadeRoom => 5,
        CloseReason::Busy => 6,
    }
}

impl Tally {
    /// Connections the room closed for `reason`. `Violation` here does not
    /// include [`Tally::frame_timeouts`].
    pub fn closed(&self, reason: CloseReason) -> u64 {
        let all = self.closed[close_index(reason)];
        match reason {
            CloseReason::Violation => all.saturating_sub(self.frame_timeouts),
            _ => all,
        }
    }

    /// Connections closed because a frame begun was not finished within
    /// the frame deadline.
    pub fn frame_timeouts(&self) -> u64 {
        self.frame_timeouts
    }

    pub(super) fn count_close(&mut self, reason: CloseReason) {
        self.closed[close_index(reason)] += 1;
    }

    pub(super) fn count_frame_timeout(&mut self) {
        self.frame_timeouts += 1;
    }

    /// A public line from a member to `recipients` others.
    pub(super) fn count_public(&mut self, recipients: usize) {
        self.public_lines += 1;
        self.deliveries += recipients as u64;
    }

    /// A private line to its one recipient.
    pub(super) fn count_private(&mut self) {
        self.private_lines += 1;
        self.deliveries += 1;
    }
}

/// Connections the room knows, by how far they have come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Connected, no `Hello` yet.
    pub before_hello: usize,
    /// Participants holding a slot without a name yet.
    pub naming: usize,
    /// Named participants, in the room.
    pub participants: usize,
    /// Observers.
    pub observers: usize,
}

impl Room {
    /// What the room has counted so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Who the room knows, by state. Derived from the counts the room
    /// keeps anyway, not by walking its connections.
    pub fn census(&self) -> Census {
        let named = self.roster.len();
        let holding = self.participants + self.observers;
        Census {
            before_hello: self.conns.len().saturating_sub(holding),
            naming: self.participants.saturating_sub(named),
            participants: named,
            observers: self.observers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_reason_has_its_own_place() {
        let reasons = [
            CloseReason::Full,
            CloseReason::HelloTimeout,
            CloseReason::UsernameTimeout,
            CloseReason::Violation,
            CloseReason::Shutdown,
            CloseReason::MadeRoom,
            CloseReason::Busy,
        ];
        let mut tally = Tally::default();
        for (i, reason) in reasons.into_iter().enumerate() {
            for _ in 0..=i {
                tally.count_close(reason);
            }
        }
        for (i, reason) in reasons.into_iter().enumerate() {
            assert_eq!(tally.closed(reason), i as u64 + 1, "{reason:?}");
        }
    }

    #[test]
    fn a_frame_timeout_is_not_also_a_violation() {
        let mut tally = Tally::default();
        tally.count_close(CloseReason::Violation);
        tally.count_close(CloseReason::Violation);
        tally.count_frame_timeout();
        assert_eq!(tally.closed(CloseReason::Violation), 1);
        assert_eq!(tally.frame_timeouts(), 1);
    }
}
