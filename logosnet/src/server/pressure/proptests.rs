//! The policy's invariants over arbitrary sequences of facts, driven as the
//! room task drives it (every timer fired at its instant, every drop
//! carried out at once, the budget re-read after every change to a queue):
//!
//! - nobody that kept pace is dropped: a connection is dropped only when
//!   its oldest unsent frame is at least `max_lag` old, or when the budget
//!   is short past its hold, it is behind by more than the hold, and no
//!   such connection drained less (or as little and is further behind);
//! - the room waits for heavy members, and for the budget, no longer than
//!   each hold budget allows: over any stretch `t`, at most
//!   `hold + t × hold / window` each — past its hold, the budget keeps the
//!   room waiting only while every unsent frame is younger than the hold;
//! - whatever pauses a connection is undone by the policy itself: whenever
//!   the room is not paused, no connection is left paused, and while it is,
//!   a timer or the queues' wake-up is asked for;
//! - no chat line is taken while the queues are at the budget's mark.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;

use super::tests::{FakeQueues, HOLD, MARK, MAX_LAG, WINDOW, config};
use super::*;

const CONNS: ConnId = 6;

#[derive(Debug, Clone)]
enum Step {
    Open(ConnId),
    Gone(ConnId),
    Ready(ConnId),
    /// The next ready connection offers an input.
    Offer {
        throttled: bool,
        chat: bool,
        more: bool,
    },
    Unpark(ConnId),
    /// The room queues `bytes` more for the connection.
    Queue(ConnId, usize),
    /// The connection's writer catches up: everything written.
    Drain(ConnId),
    /// The writer wrote its oldest frames: the oldest unsent is now.
    Progress(ConnId),
    Heavy(ConnId, bool),
    /// Time passes (ms).
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let conn = 1..=CONNS;
    prop_oneof![
        1 => conn.clone().prop_map(Step::Open),
        1 => conn.clone().prop_map(Step::Gone),
        3 => conn.clone().prop_map(Step::Ready),
        3 => (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(throttled, chat, more)| Step::Offer { throttled, chat, more }),
        1 => conn.clone().prop_map(Step::Unpark),
        3 => (conn.clone(), 1usize..400).prop_map(|(c, b)| Step::Queue(c, b)),
        1 => conn.clone().prop_map(Step::Drain),
        1 => conn.clone().prop_map(Step::Progress),
        2 => (conn.clone(), any::<bool>()).prop_map(|(c, h)| Step::Heavy(c, h)),
        3 => prop_oneof![0u64..50, 50u64..2_000, 2_000u64..15_000].prop_map(Step::Wait),
    ]
}

/// The room task's part, with a record of what the policy did.
struct Harness {
    p: Pressure,
    q: FakeQueues,
    now: Instant,
    open: BTreeMap<ConnId, ()>,
    /// Bytes each had written when the budget last went short.
    short_since: BTreeMap<ConnId, u64>,
    /// The budget was short at the last record.
    was_short: bool,
    /// (instant, members hold the room, the budget's hold is being spent),
    /// at every change.
    timeline: Vec<(Instant, bool, bool)>,
}

impl Harness {
    fn new(t0: Instant) -> Self {
        Self {
            p: Pressure::new(t0, config()),
            q: FakeQueues::default(),
            now: t0,
            open: BTreeMap::new(),
            short_since: BTreeMap::new(),
            was_short: false,
            timeline: vec![(t0, false, false)],
        }
    }

    fn record(&mut self) {
        let state = (!self.p.holding.is_empty(), self.p.budget_hold.is_spending());
        if self.p.over_budget && !self.was_short {
            // The budget just went short: what each had written then.
            self.short_since = self
                .open
                .keys()
                .map(|&conn| (conn, self.q.written(conn)))
                .collect();
        }
        self.was_short = self.p.over_budget;
        if self.timeline.last().map(|&(_, h, b)| (h, b)) != Some(state) {
            self.timeline.push((self.now, state.0, state.1));
        }
    }

    /// Carries out every drop, checking each was deserved.
    fn carry_out_drops(&mut self) {
        while let Some(drop) = self.p.poll_drop() {
            let oldest = self.q.oldest_unsent(drop.conn);
            match drop.reason {
                DropReason::Lagging { lag } => {
                    let oldest = oldest.expect("dropped for lag with nothing unsent");
                    assert_eq!(lag, self.now - oldest);
                    assert!(lag >= MAX_LAG, "dropped at a lag of {lag:?}");
                }
                DropReason::Shed {
                    lag,
                    charged,
                    drained,
                } => {
                    assert!(self.p.over_budget, "shed with the budget not short");
                    assert!(!self.p.budget_hold.is_spending(), "shed within the hold");
                    let oldest = oldest.expect("shed with nothing unsent");
                    assert_eq!(lag, self.now - oldest);
                    assert!(lag >= HOLD, "shed one draining within the hold: {lag:?}");
                    assert_eq!(charged, self.q.charged(drop.conn));
                    // Nobody with unsent frames drained less, and nobody
                    // who drained as little was further behind.
                    let drained_by = |conn: ConnId| {
                        let since = self.short_since.get(&conn).copied().unwrap_or(0);
                        self.q.written(conn) - since
                    };
                    assert_eq!(drained, drained_by(drop.conn));
                    for (&other, q) in &self.q.queues {
                        let Some(other_oldest) = q.1.filter(|&o| self.now - o >= HOLD) else {
                            continue;
                        };
                        assert!(drained_by(other) >= drained, "shed one that drained more");
                        if drained_by(other) == drained {
                            assert!(other_oldest >= oldest, "shed one not furthest behind");
                        }
                    }
                }
            }
            self.q.queues.remove(&drop.conn);
            self.open.remove(&drop.conn);
            self.p.gone(self.now, drop.conn);
            self.p.check_budget(self.now, &self.q);
            self.record();
        }
    }

    /// What the driver does after anything changed the queues.
    fn settle(&mut self) {
        self.p.check_budget(self.now, &self.q);
        self.record();
        self.carry_out_drops();
        self.check_liveness();
    }

    fn advance(&mut self, until: Instant) {
        while let Some(at) = self.p.poll_timeout().filter(|&at| at <= until) {
            self.now = at.max(self.now);
            self.p.handle_timeout(self.now, &self.q);
            self.record();
            self.carry_out_drops();
            self.check_liveness();
        }
        self.now = until;
        // A total that fell below the resume mark wakes the room at once.
        if self
            .p
            .wake_below()
            .is_some_and(|mark| self.q.total() < mark)
        {
            self.settle();
        }
    }

    fn check_liveness(&self) {
        if !self.p.is_paused() {
            assert!(
                self.p.paused.is_empty(),
                "paused with nothing pausing the room"
            );
        }
        if !self.p.holding.is_empty() {
            let out = self
                .p
                .members_hold
                .runs_out_at()
                .expect("a hold that never ends");
            assert!(self.p.poll_timeout().is_some_and(|t| t <= out));
        }
        if self.p.over_budget {
            assert!(self.p.wake_below().is_some(), "nobody will wake the room");
            if !self.p.budget_hold.is_spending() {
                // Past the hold, the room waits only for queues draining
                // within it, and looks again when one no longer is.
                for q in self.q.queues.values() {
                    if let Some(oldest) = q.1 {
                        assert!(self.now - oldest < HOLD, "a queue behind the hold kept");
                        assert!(self.p.poll_timeout().is_some_and(|t| t <= oldest + HOLD));
                    }
                }
            }
        }
        if !self.p.conns.is_empty() {
            assert!(self.p.poll_timeout().is_some(), "lag checks not armed");
        }
        for (&conn, c) in &self.p.conns {
            let at = c.lag_check.expect("every connection's lag is looked at");
            assert!(self.p.lag_checks.contains(&(at, conn)));
            // Never later than its oldest frame reaches the bound.
            if let Some(oldest) = self.q.oldest_unsent(conn) {
                assert!(at <= oldest + MAX_LAG);
            }
        }
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Open(conn) => {
                if self.open.insert(conn, ()).is_none() {
                    self.p.opened(self.now, conn);
                }
            }
            Step::Gone(conn) => {
                self.open.remove(&conn);
                self.q.queues.remove(&conn);
                self.p.gone(self.now, conn);
            }
            Step::Ready(conn) => self.p.input_ready(conn),
            Step::Offer {
                throttled,
                chat,
                more,
            } => {
                if let Some(conn) = self.p.next_ready() {
                    let verdict = self.p.verdict(self.now, conn, throttled, chat, &self.q);
                    if verdict == Verdict::Take {
                        if chat {
                            assert!(self.q.total() < MARK, "a line taken at the mark");
                        }
                        self.p.taken(conn, more);
                    }
                }
            }
            Step::Unpark(conn) => self.p.unpark(conn),
            Step::Queue(conn, bytes) => {
                if self.open.contains_key(&conn) {
                    let now = self.now;
                    let entry = self.q.queues.entry(conn).or_insert((0, None));
                    entry.0 += bytes;
                    entry.1.get_or_insert(now);
                }
            }
            Step::Drain(conn) => {
                if let Some((charged, _)) = self.q.queues.remove(&conn) {
                    *self.q.written.entry(conn).or_default() += charged as u64;
                }
            }
            Step::Progress(conn) => {
                let now = self.now;
                if let Some(entry) = self.q.queues.get_mut(&conn) {
                    entry.1 = Some(now);
                    *self.q.written.entry(conn).or_default() += 100;
                }
            }
            Step::Heavy(conn, heavy) => self.p.set_heavy(self.now, conn, heavy),
            Step::Wait(ms) => self.advance(self.now + Duration::from_millis(ms)),
        }
        self.settle();
    }

    /// Over every stretch between two changes, each kind of wait stayed
    /// within its hold budget.
    fn check_holds(&self) {
        let rate = HOLD.as_secs_f64() / WINDOW.as_secs_f64();
        let mut points = self.timeline.clone();
        points.push((self.now, false, false));
        for kind in [1, 2] {
            let held = |i: usize| -> bool { if kind == 1 { points[i].1 } else { points[i].2 } };
            for a in 0..points.len() {
                let mut spent = Duration::ZERO;
                for b in a + 1..points.len() {
                    if held(b - 1) {
                        spent += points[b].0 - points[b - 1].0;
                    }
                    let stretch = (points[b].0 - points[a].0).as_secs_f64();
                    let allowed = HOLD.as_secs_f64() + stretch * rate + 1e-6;
                    assert!(
                        spent.as_secs_f64() <= allowed,
                        "kind {kind}: waited {spent:?} in {stretch} s"
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_policy_keeps_its_invariants(steps in vec(step(), 1..150)) {
        let t0 = Instant::now();
        let mut h = Harness::new(t0);
        for step in steps {
            h.run(step);
        }
        h.advance(h.now + Duration::from_secs(30));
        h.check_holds();
    }
}
