//! Flood control: the per-sender rate rule, as arithmetic on instants.
//!
//! Each connection past `Hello` has a [`Bucket`]: a token bucket of
//! [`FloodLimit::burst`] lines that refills at [`FloodLimit::per_second`]
//! lines a second (IRC's "fakelag"; ergo's defaults are a burst of 5, then 2
//! lines a second). A line costs one token, plus one more for every whole
//! [`BYTES_PER_TOKEN`] of its text, so a flood of long lines is slowed in
//! bytes as well as in lines. The bucket is kept as the generic cell rate
//! algorithm's *theoretical arrival time*: one `Instant`, no floating point
//! drift, and the instant a held line may go is exact.
//!
//! This module only says *when* a line may be taken; [`super::Room`] holds a
//! line that must wait, and the driver stops reading that socket meanwhile.
//! It reads no clock: `now` is passed in.

use std::time::{Duration, Instant};

/// Lines a sender may send at once before it is slowed: room for a short
/// paste or a quick exchange (ergo allows 5; a chat line here may be a
/// multi-line paste split by the client).
pub const FLOOD_BURST: u32 = 10;

/// Lines a second a sender may keep up after its burst. The default loadgen
/// run (1,000 msgs/s over 255 senders, 3.9 each) passes untouched; a human
/// types far less.
pub const FLOOD_LINES_PER_SEC: u32 = 5;

/// Bytes of text that cost one extra token: a 1,000-character ASCII line
/// costs one token, the same line in 4-byte characters costs four.
pub const BYTES_PER_TOKEN: usize = 1024;

/// The largest rate and burst a [`FloodLimit`] takes; larger values are
/// clamped to it, which keeps every instant the bucket computes within a few
/// days of the present.
pub const MAX_FLOOD_SETTING: u32 = 1_000_000;

/// A sender's allowance: `burst` lines at once, then `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimit {
    /// Time one token takes to come back (`1 / lines per second`).
    interval: Duration,
    /// Tokens the bucket holds when full.
    burst: u32,
}

impl FloodLimit {
    /// `per_second` lines a second after a burst of `burst`; `None` when
    /// either is zero (flood control off).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        if per_second == 0 || burst == 0 {
            return None;
        }
        Some(Self {
            interval: Duration::from_secs(1) / per_second.min(MAX_FLOOD_SETTING),
            burst: burst.min(MAX_FLOOD_SETTING),
        })
    }

    /// Lines a second after the burst.
    pub fn per_second(&self) -> u32 {
        (Duration::from_secs(1).as_nanos() / self.interval.as_nanos().max(1)) as u32
    }

    /// Lines allowed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// The tokens a line of `text_bytes` bytes costs: one, plus one per whole
/// [`BYTES_PER_TOKEN`], never more than a full bucket (so every line can go
/// eventually).
pub fn line_cost(text_bytes: usize, limit: &FloodLimit) -> u32 {
    let extra = u32::try_from(text_bytes / BYTES_PER_TOKEN).unwrap_or(u32::MAX);
    extra.saturating_add(1).min(limit.burst)
}

/// One sender's bucket. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// When the bucket will be full again if nothing more is taken; at or
    /// before `now` it is full.
    full_at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(now: Instant) -> Self {
        Self { full_at: now }
    }

    /// The earliest instant, not before `now`, at which `cost` tokens can
    /// be taken.
    pub fn ready_at(&self, now: Instant, cost: u32, limit: &FloodLimit) -> Instant {
        let cost = cost.min(limit.burst);
        // Taking `cost` moves `full_at` `cost` intervals later; allowed while
        // that stays within `burst` intervals of the present.
        let spare = limit.interval * (limit.burst - cost);
        match self.full_at.checked_sub(spare) {
            Some(at) if at > now => at,
            _ => now,
        }
    }

    /// Takes `cost` tokens at `now` if the bucket holds them; otherwise
    /// takes nothing and says when they will be there.
    pub fn take(&mut self, now: Instant, cost: u32, limit: &FloodLimit) -> Result<(), Instant> {
        let at = self.ready_at(now, cost, limit);
        if at > now {
            return Err(at);
        }
        let cost = cost.min(limit.burst);
        let from = self.full_at.max(now);
        // Bounded by MAX_FLOOD_SETTING intervals: cannot overflow an Instant.
        self.full_at = from + limit.interval * cost;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn default_limit() -> FloodLimit {
        FloodLimit::new(FLOOD_LINES_PER_SEC, FLOOD_BURST).unwrap()
    }

    #[test]
    fn zero_rate_or_burst_is_off() {
        assert_eq!(FloodLimit::new(0, 10), None);
        assert_eq!(FloodLimit::new(5, 0), None);
        let limit = default_limit();
        assert_eq!((limit.per_second(), limit.burst()), (5, 10));
    }

    #[test]
    fn a_full_bucket_lets_the_burst_through_at_once_and_no_more() {
        let limit = default_limit();
        let t0 = Instant::now();
        let mut bucket = Bucket::new(t0);
        for i in 0..FLOOD_BURST {
            assert_eq!(bucket.take(t0, 1, &limit), Ok(()), "line {i} of the burst");
        }
        // The 11th waits exactly one interval (200 ms at 5 lines a second).
        assert_eq!(bucket.take(t0, 1, &limit), Err(t0 + ms(200)));
    }

    #[test]
    fn after_the_burst_lines_go_at_exact_instants() {
        let limit = default_limit();
        let t0 = Instant::now();
        let mut bucket = Bucket::new(t0);
        for _ in 0..FLOOD_BURST {
            bucket.take(t0, 1, &limit).unwrap();
        }
        for k in 1..=20u32 {
            let due = t0 + ms(200) * k;
            let just_before = due - Duration::from_nanos(1);
            assert_eq!(bucket.take(just_before, 1, &limit), Err(due), "line {k}");
            assert_eq!(bucket.take(due, 1, &limit), Ok(()), "line {k}");
        }
    }

    #[test]
    fn an_idle_bucket_refills_to_the_burst_and_not_beyond() {
        let limit = default_limit();
        let t0 = Instant::now();
        let mut bucket = Bucket::new(t0);
        for _ in 0..FLOOD_BURST {
            bucket.take(t0, 1, &limit).unwrap();
        }
        // 1 s later: five tokens back.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..5 {
            assert_eq!(bucket.take(t1, 1, &limit), Ok(()));
        }
        assert!(bucket.take(t1, 1, &limit).is_err());
        // An hour idle: still only a burst's worth.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..FLOOD_BURST {
            assert_eq!(bucket.take(t2, 1, &limit), Ok(()));
        }
        assert_eq!(bucket.take(t2, 1, &limit), Err(t2 + ms(200)));
    }

    #[test]
    fn a_refused_take_costs_nothing() {
        let limit = FloodLimit::new(1, 1).unwrap();
        let t0 = Instant::now();
        let mut bucket = Bucket::new(t0);
        bucket.take(t0, 1, &limit).unwrap();
        for _ in 0..100 {
            assert_eq!(bucket.take(t0 + ms(500), 1, &limit), Err(t0 + ms(1000)));
        }
        assert_eq!(bucket.take(t0 + ms(1000), 1, &limit), Ok(()));
    }

    #[test]
    fn long_lines_cost_more_and_never_more_than_the_burst() {
        let limit = default_limit();
        assert_eq!(line_cost(0, &limit), 1);
        assert_eq!(line_cost(1023, &limit), 1);
        assert_eq!(line_cost(1024, &limit), 2);
        assert_eq!(line_cost(4000, &limit), 4);
        assert_eq!(line_cost(usize::MAX, &limit), FLOOD_BURST);
        let one = FloodLimit::new(5, 1).unwrap();
        assert_eq!(line_cost(4000, &one), 1);
        // Four 4-byte-character lines of 1,000 characters empty a bucket of
        // ten in two lines and a half: the third waits.
        let t0 = Instant::now();
        let mut bucket = Bucket::new(t0);
        assert_eq!(bucket.take(t0, 4, &limit), Ok(()));
        assert_eq!(bucket.take(t0, 4, &limit), Ok(()));
        assert_eq!(bucket.take(t0, 4, &limit), Err(t0 + ms(400)));
    }

    #[test]
    fn a_far_future_instant_does_not_panic() {
        let limit = FloodLimit::new(1, u32::MAX).unwrap();
        let t0 = Instant::now();
        let mut bucket = Bucket::new(t0);
        assert_eq!(bucket.take(t0, u32::MAX, &limit), Ok(()));
        assert!(bucket.take(t0, u32::MAX, &limit).is_err());
    }

    #[test]
    fn ready_at_is_now_whenever_the_tokens_are_there() {
        // Never an instant before `now`, however long the bucket has been
        // full: a fresh bucket a second later, a refilled one after a
        // take, and exactly at the refill instant.
        let limit = default_limit();
        let t0 = Instant::now();
        let mut bucket = Bucket::new(t0);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(bucket.ready_at(t1, 1, &limit), t1);
        assert_eq!(bucket.ready_at(t1, FLOOD_BURST, &limit), t1);
        for _ in 0..FLOOD_BURST {
            bucket.take(t0, 1, &limit).unwrap();
        }
        assert_eq!(bucket.ready_at(t0, 1, &limit), t0 + ms(200));
        assert_eq!(bucket.ready_at(t0 + ms(200), 1, &limit), t0 + ms(200));
        assert_eq!(bucket.ready_at(t0 + ms(250), 1, &limit), t0 + ms(250));
    }
}
