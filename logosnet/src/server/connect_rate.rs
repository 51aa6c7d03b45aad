//! The per-source connection rate: how many *new* connections one IPv4
//! address or IPv6 /64 ([`AddressGroup`]) may open, over time.
//!
//! The per-address limit ([`super::per_address`]) counts connections open
//! at once; it does nothing against a source that opens and closes as fast
//! as it can — churn that costs the server an accept, a socket set-up and,
//! on the TLS port, a handshake each time, and (with eviction, see
//! [`crate::room::eviction`]) pushes other people's fresh connections out.
//! So each source also has a token bucket: [`RateLimit::burst`] new
//! connections at once, then one more every `window / burst`. A connection
//! past it is refused at accept, before any TLS work, and told when to try
//! again.
//!
//! The bucket is kept as the instant it will be full again (GCRA, the
//! "theoretical arrival time"): one `Instant` per source, no timer. A
//! source whose bucket is full has no entry, so the table holds only
//! sources that connected within the last window. It never holds more than
//! [`MAX_TRACKED_SOURCES`]: entries are dropped when their bucket is full
//! again ([`ConnectRates::admit`] expires them as time passes), and when
//! the table is at its bound a new source takes the place of the entry
//! closest to full, which is the one that has spent least and so the one
//! whose forgetting lets least through. Sans-IO: `now` comes in, a verdict
//! goes out; the accept loop owns the clock and the socket.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::per_address::AddressGroup;

/// New connections one source may open at once before it is slowed:
/// ergo's default (32 per 10 minutes), twice what [`super::MAX_PER_ADDRESS`]
/// lets it hold open, so every one of a full house of a source's clients
/// can reconnect twice at once (a server restart, a network blip) without
/// meeting the limit.
pub const MAX_NEW_PER_ADDRESS: u32 = 32;

/// The time in which a source's whole burst comes back: ergo's 10 minutes.
/// With [`MAX_NEW_PER_ADDRESS`] that is one new connection every 18.75 s
/// once the burst is spent — far more than a person reconnecting needs,
/// and slow enough that churning from one source is pointless.
pub const NEW_PER_ADDRESS_WINDOW: Duration = Duration::from_secs(600);

/// Most sources the table tracks at once. An entry is an address group and
/// an instant, about 100 bytes with both indexes' overhead, so at most
/// about 1.6 MiB. A source is only tracked for as long as its bucket is
/// refilling (at most the window), so this many distinct sources would
/// have to connect within one window (27 a second for 10 minutes) before
/// any entry is dropped early.
pub(crate) const MAX_TRACKED_SOURCES: usize = 16_384;

/// The operator's setting: a burst and the time it takes to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// New connections at once; 0 turns the rate limit off.
    pub burst: u32,
    /// The time for a whole burst to come back (not zero).
    pub window: Duration,
}

impl RateLimit {
    /// The default: [`MAX_NEW_PER_ADDRESS`] per [`NEW_PER_ADDRESS_WINDOW`].
    pub const DEFAULT: Self = Self {
        burst: MAX_NEW_PER_ADDRESS,
        window: NEW_PER_ADDRESS_WINDOW,
    };

    /// Whether it limits anything.
    pub fn is_on(&self) -> bool {
        self.burst > 0 && !self.window.is_zero()
    }

    /// The time one token takes to come back.
    fn interval(&self) -> Duration {
        self.window / self.burst.max(1)
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Every tracked source's bucket, as the instant it is full again.
#[derive(Debug)]
pub(crate) struct ConnectRates {
    /// When each tracked source's bucket is full again.
    full_at: BTreeMap<AddressGroup, Instant>,
    /// The same entries, soonest full first: what expires next, and what
    /// goes first when the table is at its bound.
    by_full_at: BTreeSet<(Instant, AddressGroup)>,
    /// Most entries kept.
    capacity: usize,
}

impl Default for ConnectRates {
    fn default() -> Self {
        Self::with_capacity(MAX_TRACKED_SOURCES)
    }
}

impl ConnectRates {
    /// A table that tracks at most `capacity` sources (at least one).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            full_at: BTreeMap::new(),
            by_full_at: BTreeSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// A new connection from `group` at `now`: `Ok` if the rate allows it
    /// (and it is counted), or `Err` with how long until it would.
    /// Refused connections are not counted: hammering on a spent bucket
    /// does not push the time it refills further out.
    pub(crate) fn admit(
        &mut self,
        limit: &RateLimit,
        now: Instant,
        group: AddressGroup,
    ) -> Result<(), Duration> {
        if !limit.is_on() {
            return Ok(());
        }
        self.expire(now);
        let full_at = self.full_at.get(&group).copied().unwrap_or(now).max(now);
        // Instants near the end of what the clock can hold: refuse rather
        // than wrap (the window is capped by the command line long before).
        let Some(next) = full_at.checked_add(limit.interval()) else {
            return Err(limit.window);
        };
        let allowed_until = now.checked_add(limit.window).unwrap_or(next);
        if next > allowed_until {
            return Err(next - allowed_until);
        }
        self.set(group, next);
        Ok(())
    }

    /// Forgets every source whose bucket is full again by `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&(at, group)) = self.by_full_at.first() {
            if at > now {
                break;
            }
            self.by_full_at.pop_first();
            self.full_at.remove(&group);
        }
    }

    /// Records that `group`'s bucket is full again at `at`, making room
    /// in the table if it is a new source.
    fn set(&mut self, group: AddressGroup, at: Instant) {
        match self.full_at.insert(group, at) {
            Some(old) => {
                self.by_full_at.remove(&(old, group));
            }
            None => {
                if self.full_at.len() > self.capacity
                    && let Some((_, dropped)) = self.by_full_at.pop_first()
                {
                    self.full_at.remove(&dropped);
                }
            }
        }
        self.by_full_at.insert((at, group));
    }

    /// Sources tracked now.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.full_at.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;

    use super::*;

    fn source(n: u32) -> AddressGroup {
        AddressGroup::of(IpAddr::V4(Ipv4Addr::from(0xc000_0200 + n)))
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_thirty_third_at_once_is_refused_and_told_when_to_come_back() {
        let mut rates = ConnectRates::default();
        let limit = RateLimit::DEFAULT;
        let t0 = Instant::now();
        for i in 0..MAX_NEW_PER_ADDRESS {
            assert_eq!(rates.admit(&limit, t0, source(7)), Ok(()), "{i}");
        }
        // One token takes 600 / 32 = 18.75 s to come back.
        let interval = Duration::from_millis(18_750);
        assert_eq!(rates.admit(&limit, t0, source(7)), Err(interval));
        // Refusals are not counted: asking again changes nothing.
        let later = t0 + 5 * SECOND;
        assert_eq!(
            rates.admit(&limit, later, source(7)),
            Err(interval - 5 * SECOND)
        );
        // Another source is untouched.
        assert_eq!(rates.admit(&limit, t0, source(8)), Ok(()));
        // One token back exactly when promised, and only one.
        assert_eq!(
            rates.admit(&limit, t0 + interval - Duration::from_nanos(1), source(7)),
            Err(Duration::from_nanos(1))
        );
        assert_eq!(rates.admit(&limit, t0 + interval, source(7)), Ok(()));
        assert_eq!(rates.admit(&limit, t0 + interval, source(7)), Err(interval));
    }

    #[test]
    fn a_full_window_later_the_whole_burst_is_back_and_the_entry_gone() {
        let mut rates = ConnectRates::default();
        let limit = RateLimit {
            burst: 4,
            window: 8 * SECOND,
        };
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(rates.admit(&limit, t0, source(1)), Ok(()));
        }
        assert!(rates.admit(&limit, t0, source(1)).is_err());
        assert_eq!(rates.tracked(), 1);
        rates.expire(t0 + 8 * SECOND - Duration::from_nanos(1));
        assert_eq!(rates.tracked(), 1, "not full yet");
        rates.expire(t0 + 8 * SECOND);
        assert_eq!(rates.tracked(), 0, "full again: nothing to remember");
        for _ in 0..4 {
            assert_eq!(rates.admit(&limit, t0 + 8 * SECOND, source(1)), Ok(()));
        }
    }

    #[test]
    fn a_burst_of_zero_turns_the_limit_off_and_tracks_nothing() {
        let mut rates = ConnectRates::default();
        let off = RateLimit {
            burst: 0,
            window: NEW_PER_ADDRESS_WINDOW,
        };
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(rates.admit(&off, t0, source(1)), Ok(()));
        }
        assert_eq!(rates.tracked(), 0);
    }

    #[test]
    fn at_its_bound_the_table_forgets_the_source_closest_to_full() {
        let mut rates = ConnectRates::with_capacity(3);
        let limit = RateLimit {
            burst: 10,
            window: 100 * SECOND,
        };
        let t0 = Instant::now();
        // Source 1 spends three tokens, 2 spends two, 3 spends one: 3 is
        // the closest to full.
        for (n, spent) in [(1, 3), (2, 2), (3, 1)] {
            for _ in 0..spent {
                assert_eq!(rates.admit(&limit, t0, source(n)), Ok(()));
            }
        }
        assert_eq!(rates.tracked(), 3);
        assert_eq!(rates.admit(&limit, t0, source(4)), Ok(()));
        assert_eq!(rates.tracked(), 3, "the bound holds");
        assert!(!rates.full_at.contains_key(&source(3)), "3 was forgotten");
        for n in [1, 2, 4] {
            assert!(rates.full_at.contains_key(&source(n)), "{n} kept");
        }
    }

    #[test]
    fn a_refill_time_past_the_clock_is_a_refusal_not_a_panic() {
        let mut rates = ConnectRates::default();
        let limit = RateLimit {
            burst: 1,
            window: Duration::MAX,
        };
        let t0 = Instant::now();
        assert!(rates.admit(&limit, t0, source(1)).is_err());
    }

    /// Arrivals from up to four sources at sorted instants.
    fn arrivals() -> impl Strategy<Value = Vec<(u32, u64)>> {
        proptest::collection::vec((0u32..4, 0u64..5_000), 1..300).prop_map(|mut v| {
            v.sort_by_key(|&(_, at)| at);
            v
        })
    }

    proptest! {
        /// GCRA's promise: in any stretch of time, a source gets at most
        /// its burst plus one per interval that fits in the stretch; a
        /// refusal's wait is exact (admitted then, refused a nanosecond
        /// before, had nothing else arrived); and the table stays within
        /// its bound.
        #[test]
        fn never_more_than_the_burst_plus_the_rate_and_the_wait_is_exact(
            arrivals in arrivals(),
            burst in 1u32..8,
            window_ms in 1u64..4_000,
            capacity in 1usize..6,
        ) {
            let limit = RateLimit { burst, window: Duration::from_millis(window_ms) };
            let interval = limit.interval();
            let t0 = Instant::now();
            let mut rates = ConnectRates::with_capacity(capacity);
            let mut admitted: BTreeMap<u32, Vec<Instant>> = BTreeMap::new();
            for &(n, ms) in &arrivals {
                let now = t0 + Duration::from_millis(ms);
                let tracked = rates.full_at.contains_key(&source(n));
                match rates.admit(&limit, now, source(n)) {
                    Ok(()) => admitted.entry(n).or_default().push(now),
                    Err(wait) => {
                        prop_assert!(tracked, "a source it forgot was refused");
                        prop_assert!(wait > Duration::ZERO && wait <= interval);
                        let mut probe = ConnectRates::with_capacity(capacity);
                        probe.full_at.clone_from(&rates.full_at);
                        probe.by_full_at.clone_from(&rates.by_full_at);
                        let just_before = now + wait - Duration::from_nanos(1);
                        prop_assert!(probe.admit(&limit, just_before, source(n)).is_err());
                        prop_assert_eq!(probe.admit(&limit, now + wait, source(n)), Ok(()));
                    }
                }
                prop_assert!(rates.tracked() <= capacity);
                prop_assert_eq!(rates.tracked(), rates.by_full_at.len());
            }
            // Only checkable while no entry was forgotten early.
            if capacity >= 4 {
                for times in admitted.values() {
                    for (i, start) in times.iter().enumerate() {
                        for (j, end) in times.iter().enumerate().skip(i) {
                            // N admissions in a stretch T need N × interval
                            // ≤ T + window (each moves the refill instant one
                            // interval on, and it may run at most a window
                            // ahead): the burst, plus one per interval.
                            let stretch = end.duration_since(*start);
                            let allowed = (stretch + limit.window).as_nanos()
                                / interval.as_nanos().max(1);
                            prop_assert!(
                                (j - i + 1) as u128 <= allowed,
                                "{} admitted in {:?}", j - i + 1, stretch
                            );
                        }
                    }
                }
            }
        }

        /// A source that keeps to the rate — never faster than one
        /// connection per interval — is never refused, however the others
        /// behave.
        #[test]
        fn a_source_that_keeps_to_the_rate_is_never_refused(
            others in arrivals(),
            burst in 1u32..8,
            window_ms in 1u64..2_000,
            start_ms in 0u64..100,
        ) {
            let limit = RateLimit { burst, window: Duration::from_millis(window_ms) };
            let interval = limit.interval();
            let t0 = Instant::now();
            let mut rates = ConnectRates::default();
            let mut events: Vec<(Instant, u32)> = others
                .iter()
                .map(|&(n, ms)| (t0 + Duration::from_millis(ms), n))
                .collect();
            let mut at = t0 + Duration::from_millis(start_ms);
            while at < t0 + Duration::from_millis(5_000) {
                events.push((at, 99));
                at += interval;
            }
            events.sort();
            for (now, n) in events {
                let verdict = rates.admit(&limit, now, source(n));
                if n == 99 {
                    prop_assert_eq!(verdict, Ok(()), "the steady source at {:?}", now - t0);
                }
            }
        }
    }
}
