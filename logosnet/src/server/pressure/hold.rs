//! How long the room may wait: a bucket of waiting time, in the manner of
//! quinn-proto's `pacing` (a token bucket, `now` passed in, no clock read).
//!
//! The bucket holds at most `capacity` of waiting time and earns it back at
//! `capacity` per `window` (5 % of real time for the defaults, 500 ms per
//! 10 s). While the room waits, the time is spent as it passes (and the
//! bucket keeps earning). So whoever draws on it can make the room wait at
//! most `capacity` at once, and over any stretch of time `t` at most
//! `capacity + t × capacity / window` in all: the room's pace is set by the
//! room, except for that bounded moment.

use std::time::{Duration, Instant};

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct HoldBudget {
    /// The most waiting time the bucket holds.
    capacity: Duration,
    /// The time over which a whole `capacity` is earned back.
    window: Duration,
    /// Waiting time in the bucket as of `at`.
    tokens: Duration,
    /// When `tokens` was last brought up to date.
    at: Instant,
    /// The room is waiting on this bucket (it is being spent) since `at`.
    spending: bool,
}

impl HoldBudget {
    /// A full bucket of `capacity`, earned back over `window`.
    pub(crate) fn new(now: Instant, capacity: Duration, window: Duration) -> Self {
        Self {
            capacity,
            window,
            tokens: capacity,
            at: now,
            spending: false,
        }
    }

    /// Whether the room is waiting on this bucket.
    pub(crate) fn is_spending(&self) -> bool {
        self.spending
    }

    /// Waiting time left at `now`.
    pub(crate) fn left(&self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at);
        let earned = self.earned(elapsed);
        if self.spending {
            (self.tokens + earned).saturating_sub(elapsed)
        } else {
            (self.tokens + earned).min(self.capacity)
        }
    }

    /// The room starts waiting at `now`; false (and nothing changes) if the
    /// bucket is empty.
    pub(crate) fn start(&mut self, now: Instant) -> bool {
        if self.spending {
            return true;
        }
        let left = self.left(now);
        if left.is_zero() {
            return false;
        }
        self.tokens = left;
        self.at = now;
        self.spending = true;
        true
    }

    /// The room stops waiting at `at`, or when the bucket ran out if that
    /// was earlier.
    pub(crate) fn stop(&mut self, at: Instant) {
        if !self.spending {
            return;
        }
        // Told late, it still stopped when it ran out.
        let at = self.runs_out_at().map_or(at, |out| at.min(out));
        self.tokens = self.left(at);
        self.at = at.max(self.at);
        self.spending = false;
    }

    /// While spending: the instant the bucket is empty, if it ever will be
    /// (a bucket that earns as fast as it spends never runs out).
    pub(crate) fn runs_out_at(&self) -> Option<Instant> {
        if !self.spending {
            return None;
        }
        // Spent at one second a second, earned at capacity/window: the net
        // drain is (window - capacity) / window a second.
        let net = self.window.checked_sub(self.capacity)?;
        if net.is_zero() {
            return None;
        }
        let nanos = self.tokens.as_nanos() * self.window.as_nanos() / net.as_nanos();
        let wait = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        Some(
            self.at
                .checked_add(wait)
                .unwrap_or(self.at + crate::room::FAR_FUTURE),
        )
    }

    /// What `elapsed` earns back.
    fn earned(&self, elapsed: Duration) -> Duration {
        if self.window.is_zero() {
            return self.capacity;
        }
        let nanos = elapsed.as_nanos() * self.capacity.as_nanos() / self.window.as_nanos();
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn bucket(t0: Instant) -> HoldBudget {
        HoldBudget::new(t0, ms(500), Duration::from_secs(10))
    }

    #[test]
    fn a_full_bucket_lasts_its_capacity_plus_what_it_earns_meanwhile() {
        let t0 = Instant::now();
        let mut b = bucket(t0);
        assert!(b.start(t0));
        // 500 ms at a net drain of 95 %: 526.315789 ms.
        let out = b.runs_out_at().expect("runs out");
        assert_eq!(out - t0, Duration::from_nanos(526_315_789));
        assert_eq!(b.left(out), Duration::ZERO);
        b.stop(out);
        assert!(!b.start(out), "empty");
    }

    #[test]
    fn it_earns_back_its_capacity_over_the_window_and_no_more() {
        let t0 = Instant::now();
        let mut b = bucket(t0);
        b.start(t0);
        let out = b.runs_out_at().expect("runs out");
        b.stop(out);
        assert_eq!(b.left(out + ms(1000)), ms(50));
        assert_eq!(b.left(out + ms(10_000)), ms(500));
        assert_eq!(b.left(out + ms(60_000)), ms(500), "capped");
    }

    #[test]
    fn stopping_early_keeps_what_is_left() {
        let t0 = Instant::now();
        let mut b = bucket(t0);
        b.start(t0);
        b.stop(t0 + ms(200));
        // 500 - 200 + 10 earned.
        assert_eq!(b.left(t0 + ms(200)), ms(310));
        assert!(!b.is_spending());
        assert_eq!(b.runs_out_at(), None);
        b.start(t0 + ms(200));
        assert!(b.is_spending());
    }

    #[test]
    fn a_zero_capacity_never_lets_the_room_wait() {
        let t0 = Instant::now();
        let mut b = HoldBudget::new(t0, Duration::ZERO, Duration::from_secs(10));
        assert!(!b.start(t0));
        assert!(!b.start(t0 + Duration::from_secs(100)));
    }

    #[test]
    fn a_bucket_that_earns_as_fast_as_it_spends_never_runs_out() {
        let t0 = Instant::now();
        let mut b = HoldBudget::new(t0, ms(500), ms(500));
        assert!(b.start(t0));
        assert_eq!(b.runs_out_at(), None);
        assert_eq!(b.left(t0 + Duration::from_secs(100)), ms(500));
    }
}
