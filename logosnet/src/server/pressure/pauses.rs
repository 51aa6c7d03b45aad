//! How often the room stopped taking chat lines, and for how long in all:
//! a stopwatch the pressure policy starts and stops as it pauses and
//! resumes the room, read by the metrics. `now` comes in; no clock is read.
//!
//! The policy tells it whether the room is paused at the end of each of its
//! entry points, so a pause is dated from the first call that found the
//! room paused to the first that found it running: to within one turn of
//! the room task, which is also how late the room itself acts on a resume.

use std::time::{Duration, Instant};

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pauses {
    /// Pauses begun.
    count: u64,
    /// Time paused in pauses that have ended.
    ended: Duration,
    /// When the pause under way began.
    since: Option<Instant>,
}

/// What [`Pauses`] has counted, as of some instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PauseTally {
    /// The room is paused now.
    pub(crate) paused: bool,
    /// Pauses begun.
    pub(crate) count: u64,
    /// Time paused in all, the pause under way included.
    pub(crate) total: Duration,
}

impl Pauses {
    /// The room is (`paused`) or is not paused at `now`.
    pub(crate) fn note(&mut self, now: Instant, paused: bool) {
        match (paused, self.since) {
            (true, None) => {
                self.count += 1;
                self.since = Some(now);
            }
            (false, Some(since)) => {
                self.ended += now.saturating_duration_since(since);
                self.since = None;
            }
            _ => {}
        }
    }

    /// The counts as of `now`.
    pub(crate) fn tally(&self, now: Instant) -> PauseTally {
        let current = self
            .since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        PauseTally {
            paused: self.since.is_some(),
            count: self.count,
            total: self.ended + current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn counts_each_pause_once_and_adds_up_their_time() {
        let t0 = Instant::now();
        let mut p = Pauses::default();
        p.note(t0, false);
        assert_eq!(p.tally(t0), PauseTally::default());
        p.note(t0 + ms(100), true);
        // Told again while paused: still one pause.
        p.note(t0 + ms(150), true);
        let under_way = p.tally(t0 + ms(300));
        assert_eq!(
            under_way,
            PauseTally {
                paused: true,
                count: 1,
                total: ms(200)
            }
        );
        p.note(t0 + ms(400), false);
        p.note(t0 + ms(450), false);
        p.note(t0 + ms(1000), true);
        p.note(t0 + ms(1050), false);
        assert_eq!(
            p.tally(t0 + ms(5000)),
            PauseTally {
                paused: false,
                count: 2,
                total: ms(350)
            }
        );
    }
}
