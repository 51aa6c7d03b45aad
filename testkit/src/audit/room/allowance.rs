//! The model's flood allowance, from docs/PROTOCOL.md §8: a bucket of
//! `burst` tokens, full at first, refilled at `per_second` tokens a second
//! and never past full; a frame costs one token plus one per whole 1,024
//! bytes of its text, at most a full bucket; a frame that finds too few
//! waits until the instant there are enough.
//!
//! Kept as what the words say — a level that rises with time and falls
//! with each frame — in time units (one token is the time it takes to
//! come back), not as the room's single "full at" instant, so that the two
//! formulations check each other.

use std::time::{Duration, Instant};

/// Bytes of text that cost one more token.
const BYTES_PER_TOKEN: usize = 1024;

/// A sender's allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowance {
    /// Time one token takes to come back.
    pub(crate) per_token: Duration,
    /// Tokens in a full bucket.
    pub(crate) burst: u32,
}

impl Allowance {
    /// `burst` at once, then `per_second`.
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_token: Duration::from_secs(1) / per_second,
            burst,
        }
    }

    /// The tokens a frame carrying `text_bytes` bytes of text costs.
    pub(crate) fn cost(&self, text_bytes: usize) -> u32 {
        let extra = u32::try_from(text_bytes / BYTES_PER_TOKEN).unwrap_or(u32::MAX);
        extra.saturating_add(1).min(self.burst)
    }
}

/// One sender's bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    /// Tokens held at `at`, as the time they took to come back.
    level: Duration,
    /// When `level` was last worked out.
    at: Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub(crate) fn full(now: Instant, allowance: &Allowance) -> Self {
        Self {
            level: allowance.per_token * allowance.burst,
            at: now,
        }
    }

    /// Takes `cost` tokens at `now` if they are there; otherwise takes
    /// nothing and says the instant they will be.
    pub(crate) fn take(
        &mut self,
        now: Instant,
        cost: u32,
        allowance: &Allowance,
    ) -> Result<(), Instant> {
        let full = allowance.per_token * allowance.burst;
        let level = (self.level + (now - self.at)).min(full);
        let need = allowance.per_token * cost;
        if level < need {
            return Err(now + (need - level));
        }
        self.level = level - need;
        self.at = now;
        Ok(())
    }
}
