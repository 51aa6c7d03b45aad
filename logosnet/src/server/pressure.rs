//! Who pays for the pace of the room: the one place that decides which
//! connection's input the room takes next, which waits, and who is dropped
//! for falling behind. A sans-IO unit in quinn-proto's shape: the room task
//! tells it facts with `now` (a connection opened or gone, has input, its
//! queue turned heavy or light) and asks it what to do (take / park /
//! pause, whom to drop and why, when to be woken); it reads the queues'
//! sizes and ages through [`Queues`] and touches no socket and no clock.
//!
//! The rule, stated in time:
//! - **Nobody sets the room's pace.** A member whose queue turns heavy (its
//!   reader fell well behind a burst) may pause the room — no chat line is
//!   taken from anyone — so it can catch up; so may the server-wide budget
//!   when all queues together pass its mark. Each draws on its own
//!   [`HoldBudget`] (members share one): at most `hold` at once, earned
//!   back at `hold` per `hold_window` (500 ms, and 500 ms per 10 s, by
//!   default). A heavy member that finds the members' budget spent no
//!   longer pauses anyone: it is *behind*, and either catches up or is
//!   dropped for its lag.
//! - **A member that keeps up is never dropped, whatever its bytes per
//!   second; one that cannot is dropped, never waited for.** Each
//!   connection's lag is the age of its oldest frame not yet wholly
//!   written. Past `max_lag` (10 s by default, NATS' write deadline) it is
//!   dropped as too far behind.
//! - **Memory is bounded by the server-wide budget.** When the budget has
//!   paused the room for as long as its own hold budget allows and the
//!   queues are still over the mark, a connection that is behind by more
//!   than the hold (its oldest unsent frame is older) is dropped — the one
//!   that drained least while the room waited, then among equals the one
//!   furthest behind — then the next, until the total is under the resume
//!   mark. A reader that drains fast is never the one to go while a slower
//!   one holds unsent frames, even when a burst dated all their backlogs
//!   alike; and while every queue is younger than the hold (fast readers
//!   draining a burst bigger than the budget), the room waits for them:
//!   they are done within the hold, or some queue is then old enough to
//!   pay.
//! - **Flood control parks a sender**: while the room holds one of its
//!   lines for its allowance it is not read, and it is unparked when the
//!   line is released.
//!
//! Liveness: every cause of a wait has a way out that needs no unrelated
//! event. A pause by a heavy member ends when it turns light, goes, or the
//! budget runs out (a timer); a pause by the server-wide budget ends when
//! the total falls below the resume mark (the driver is woken by the
//! queues: [`Pressure::wake_below`]) or the budget runs out (a timer, then
//! drops until it does). Whenever the room stops being paused, every
//! connection paused is put back in turn.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::room::ConnId;

mod hold;
mod pauses;

pub(crate) use hold::HoldBudget;
pub(crate) use pauses::Pauses;

/// The numbers the policy is parameterised by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PressureConfig {
    /// A connection whose oldest unsent frame is this old is dropped.
    pub(crate) max_lag: Duration,
    /// The most the room waits at once for members' heavy queues, and
    /// again for the server-wide budget (see [`HoldBudget`]).
    pub(crate) hold: Duration,
    /// The time over which a spent `hold` is earned back.
    pub(crate) hold_window: Duration,
    /// The room stops taking chat lines once all queues together are
    /// charged this much.
    pub(crate) budget_mark: usize,
    /// ... and takes them again below this.
    pub(crate) budget_resume: usize,
}

/// What the policy reads of the connections' outgoing queues.
pub(crate) trait Queues {
    /// Bytes the connection's queue is charged.
    fn charged(&self, conn: ConnId) -> usize;
    /// When its oldest frame not yet wholly written was queued.
    fn oldest_unsent(&self, conn: ConnId) -> Option<Instant>;
    /// Bytes its writer has written, ever.
    fn written(&self, conn: ConnId) -> u64;
    /// Bytes charged to all queues together.
    fn total(&self) -> usize;
}

/// What to do with a connection's next input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Take it now.
    Take,
    /// Flood control holds the connection's last line: take nothing more
    /// until [`Pressure::unpark`].
    Park,
    /// It is a chat line and the room is paused: it waits until the room
    /// resumes (the policy puts it back in turn by itself).
    Pause,
}

/// Why a connection is dropped. Either way it is told it is too far behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Its oldest unsent frame was this old: past the lag bound.
    Lagging {
        /// The age of its oldest unsent frame.
        lag: Duration,
    },
    /// The server-wide budget stayed short past its hold budget and this
    /// connection drained least while it did (then: was furthest behind).
    Shed {
        /// The age of its oldest unsent frame.
        lag: Duration,
        /// Bytes its queue was charged.
        charged: usize,
        /// Bytes it wrote since the budget went short.
        drained: u64,
    },
}

/// A connection to drop, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drop {
    /// The connection.
    pub(crate) conn: ConnId,
    /// Why.
    pub(crate) reason: DropReason,
}

/// What the policy knows of one connection.
#[derive(Debug, Clone, Copy, Default)]
struct Conn {
    /// Its queue is heavy.
    heavy: bool,
    /// It holds the room paused (heavy, and the members' budget lasted).
    holding: bool,
    /// When its lag is next looked at.
    lag_check: Option<Instant>,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Pressure {
    /// The numbers.
    config: PressureConfig,
    /// Every connection the room task knows.
    conns: BTreeMap<ConnId, Conn>,
    /// Connections with input to take, in turn order.
    ready: VecDeque<ConnId>,
    /// Connections whose input waits on flood control.
    parked: BTreeSet<ConnId>,
    /// Connections whose next input is a chat line held by a pause.
    paused: VecDeque<ConnId>,
    /// Heavy members holding the room paused.
    holding: BTreeSet<ConnId>,
    /// The waiting time heavy members may cost the room (shared).
    members_hold: HoldBudget,
    /// The waiting time the server-wide budget may cost the room.
    budget_hold: HoldBudget,
    /// The queues together are over the budget mark (until below the
    /// resume mark).
    over_budget: bool,
    /// Bytes each connection had written when the budget went short: what
    /// it drained since is what shedding judges it by.
    written_when_short: BTreeMap<ConnId, u64>,
    /// With the budget short and its hold spent but nobody behind by more
    /// than the hold: when the oldest unsent frame will be.
    budget_recheck: Option<Instant>,
    /// Lag checks, earliest first.
    lag_checks: BTreeSet<(Instant, ConnId)>,
    /// Connections to drop, for the driver.
    drops: VecDeque<Drop>,
    /// How often and how long the room has been paused, for the metrics.
    pauses: Pauses,
}

impl Pressure {
    /// A policy with nobody in it; both hold budgets full.
    pub(crate) fn new(now: Instant, config: PressureConfig) -> Self {
        let hold = HoldBudget::new(now, config.hold, config.hold_window);
        Self {
            config,
            conns: BTreeMap::new(),
            ready: VecDeque::new(),
            parked: BTreeSet::new(),
            paused: VecDeque::new(),
            holding: BTreeSet::new(),
            members_hold: hold.clone(),
            budget_hold: hold,
            over_budget: false,
            written_when_short: BTreeMap::new(),
            budget_recheck: None,
            lag_checks: BTreeSet::new(),
            drops: VecDeque::new(),
            pauses: Pauses::default(),
        }
    }

    /// A connection was opened at `now`.
    pub(crate) fn opened(&mut self, now: Instant, conn: ConnId) {
        self.conns.insert(conn, Conn::default());
        self.arm_lag_check(conn, crate::room::deadline_after(now, self.config.max_lag));
    }

    /// The connection is gone (closed, dropped or ended): the policy forgets
    /// it, and whatever it was holding is released.
    pub(crate) fn gone(&mut self, now: Instant, conn: ConnId) {
        self.expire_holds(now);
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(at) = c.lag_check {
            self.lag_checks.remove(&(at, conn));
        }
        self.parked.remove(&conn);
        self.written_when_short.remove(&conn);
        self.drops.retain(|d| d.conn != conn);
        // `ready` and `paused` forget it lazily: unknown ids are skipped.
        if c.holding {
            self.release_hold(now, conn);
        }
        self.resume_if_eased();
        self.note_pause(now);
    }

    /// The connection has input for the room.
    pub(crate) fn input_ready(&mut self, conn: ConnId) {
        if self.conns.contains_key(&conn) {
            self.ready.push_back(conn);
        }
    }

    /// The next connection to look at, in turn.
    pub(crate) fn next_ready(&mut self) -> Option<ConnId> {
        while let Some(conn) = self.ready.pop_front() {
            if self.conns.contains_key(&conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Whether any connection waits to be looked at.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// What to do with `conn`'s next input (`conn` just came from
    /// [`Pressure::next_ready`]): `throttled` if flood control holds one of
    /// its lines, `chat` if the input is a chat line.
    pub(crate) fn verdict(
        &mut self,
        now: Instant,
        conn: ConnId,
        throttled: bool,
        chat: bool,
        queues: &impl Queues,
    ) -> Verdict {
        self.expire_holds(now);
        self.note_pause(now);
        if throttled {
            self.parked.insert(conn);
            return Verdict::Park;
        }
        if chat {
            self.check_budget(now, queues);
            if self.is_paused() {
                self.paused.push_back(conn);
                return Verdict::Pause;
            }
        }
        Verdict::Take
    }

    /// The room took one input from `conn`; `more` if it has more.
    pub(crate) fn taken(&mut self, conn: ConnId, more: bool) {
        if more {
            self.input_ready(conn);
        }
    }

    /// Flood control no longer holds `conn`'s line: it is read again.
    pub(crate) fn unpark(&mut self, conn: ConnId) {
        if self.parked.remove(&conn) {
            self.ready.push_back(conn);
        }
    }

    /// Connections parked by flood control.
    pub(crate) fn parked(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.parked.iter().copied()
    }

    /// The connection's queue is now heavy or not.
    pub(crate) fn set_heavy(&mut self, now: Instant, conn: ConnId, heavy: bool) {
        self.apply_heavy(now, conn, heavy);
        self.note_pause(now);
    }

    fn apply_heavy(&mut self, now: Instant, conn: ConnId, heavy: bool) {
        self.expire_holds(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.heavy == heavy {
            return;
        }
        c.heavy = heavy;
        if heavy {
            if self.members_hold.start(now) {
                c.holding = true;
                self.holding.insert(conn);
                tracing::debug!(conn, "a heavy queue pauses the room");
            } else {
                tracing::debug!(conn, "a heavy queue finds the hold budget spent: behind");
            }
        } else {
            let was_holding = std::mem::take(&mut c.holding);
            if was_holding {
                self.release_hold(now, conn);
            }
            self.resume_if_eased();
        }
    }

    /// Re-reads the server-wide total (call it after every change to the
    /// queues): pauses the room at the mark, resumes it below the resume
    /// mark, and sheds once the budget's hold is spent.
    pub(crate) fn check_budget(&mut self, now: Instant, queues: &impl Queues) {
        self.reread_budget(now, queues);
        self.note_pause(now);
    }

    fn reread_budget(&mut self, now: Instant, queues: &impl Queues) {
        self.expire_holds(now);
        let total = queues.total();
        if self.over_budget {
            if total < self.config.budget_resume {
                self.over_budget = false;
                self.budget_recheck = None;
                self.written_when_short.clear();
                self.budget_hold.stop(now);
                self.resume_if_eased();
                return;
            }
        } else if total >= self.config.budget_mark {
            self.over_budget = true;
            self.written_when_short = self
                .conns
                .keys()
                .map(|&conn| (conn, queues.written(conn)))
                .collect();
            if self.budget_hold.start(now) {
                tracing::debug!(total, "the server-wide budget pauses the room");
            }
        } else {
            return;
        }
        if !self.budget_hold.is_spending() {
            self.shed(now, queues);
        }
    }

    /// Fires every deadline at or before `now`: the hold budgets running
    /// out (at their exact instants) and the lag checks.
    pub(crate) fn handle_timeout(&mut self, now: Instant, queues: &impl Queues) {
        self.expire_holds(now);
        while let Some(&(at, conn)) = self.lag_checks.first()
            && at <= now
        {
            self.lag_checks.pop_first();
            if let Some(c) = self.conns.get_mut(&conn) {
                c.lag_check = None;
            }
            self.check_lag(now, conn, queues);
        }
        self.check_budget(now, queues);
        self.resume_if_eased();
        self.note_pause(now);
    }

    /// The next connection to drop, if any.
    pub(crate) fn poll_drop(&mut self) -> Option<Drop> {
        self.drops.pop_front()
    }

    /// When [`Pressure::handle_timeout`] must next be called, if ever.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let members = self.members_hold.runs_out_at();
        let budget = self.budget_hold.runs_out_at().filter(|_| self.over_budget);
        let lag = self.lag_checks.first().map(|&(at, _)| at);
        let recheck = self.budget_recheck.filter(|_| self.over_budget);
        [members, budget, lag, recheck].into_iter().flatten().min()
    }

    /// While the budget pauses the room: the total below which the driver
    /// must wake it (the queues' own wake-up).
    pub(crate) fn wake_below(&self) -> Option<usize> {
        self.over_budget.then_some(self.config.budget_resume)
    }

    /// Whether chat lines wait: a member holds the room or the budget is
    /// short.
    pub(crate) fn is_paused(&self) -> bool {
        !self.holding.is_empty() || self.over_budget
    }

    /// How often the room has been paused since the policy was made, and
    /// for how long in all up to `now` (a pause under way counts up to
    /// `now`): what the metrics publish.
    pub(crate) fn pauses(&self, now: Instant) -> pauses::PauseTally {
        self.pauses.tally(now)
    }

    /// Brings the pause accounting up to date with whether the room is
    /// paused now (called at the end of every entry point that may change
    /// it).
    fn note_pause(&mut self, now: Instant) {
        self.pauses.note(now, self.is_paused());
    }

    /// Whether the connection is paused because of pressure.
    #[cfg(test)]
    fn is_waiting(&self, conn: ConnId) -> bool {
        self.paused.contains(&conn)
    }

    /// Ends, at their exact instants, the holds whose budget ran out by
    /// `now` (whenever the caller gets to it, the room waited no longer than
    /// the budget in the policy's account, and stops waiting now).
    fn expire_holds(&mut self, now: Instant) {
        if let Some(out) = self.members_hold.runs_out_at()
            && out <= now
        {
            self.members_hold.stop(out);
            for conn in std::mem::take(&mut self.holding) {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.holding = false;
                }
                tracing::info!(conn, "held the room as long as it may: behind now");
            }
        }
        if self.over_budget
            && let Some(out) = self.budget_hold.runs_out_at()
            && out <= now
        {
            self.budget_hold.stop(out);
            tracing::info!("the server-wide budget held the room as long as it may");
        }
    }

    /// Looks at `conn`'s lag: drops it past the bound, or looks again when
    /// its oldest frame would reach it.
    fn check_lag(&mut self, now: Instant, conn: ConnId, queues: &impl Queues) {
        match queues.oldest_unsent(conn) {
            Some(oldest) if now.saturating_duration_since(oldest) >= self.config.max_lag => {
                let lag = now.saturating_duration_since(oldest);
                tracing::info!(conn, lag_ms = lag.as_millis() as u64, "too far behind");
                self.push_drop(conn, DropReason::Lagging { lag });
            }
            Some(oldest) => {
                self.arm_lag_check(
                    conn,
                    crate::room::deadline_after(oldest, self.config.max_lag),
                );
            }
            // Anything queued from now on reaches the bound no earlier.
            None => {
                self.arm_lag_check(conn, crate::room::deadline_after(now, self.config.max_lag));
            }
        }
    }

    fn arm_lag_check(&mut self, conn: ConnId, at: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if let Some(old) = c.lag_check.replace(at) {
                self.lag_checks.remove(&(old, conn));
            }
            self.lag_checks.insert((at, conn));
        }
    }

    /// The budget is short and its hold is spent: drops the connection that
    /// drained least since it went short, the furthest behind among equals
    /// (then, by the driver's next check, the next).
    fn shed(&mut self, now: Instant, queues: &impl Queues) {
        if !self.drops.is_empty() {
            return; // one at a time: the drop itself eases the total
        }
        self.budget_recheck = None;
        let hold = self.config.hold;
        let slowest = self
            .conns
            .keys()
            .filter_map(|&conn| {
                let oldest = queues.oldest_unsent(conn)?;
                if now.saturating_duration_since(oldest) < hold {
                    // Draining within the hold: looked at again when it
                    // no longer would be.
                    let due = crate::room::deadline_after(oldest, hold);
                    self.budget_recheck = Some(self.budget_recheck.map_or(due, |at| at.min(due)));
                    return None;
                }
                let since = self.written_when_short.get(&conn).copied().unwrap_or(0);
                let drained = queues.written(conn).saturating_sub(since);
                let charged = queues.charged(conn);
                Some((drained, oldest, std::cmp::Reverse(charged), conn))
            })
            .min();
        if let Some((drained, oldest, std::cmp::Reverse(charged), conn)) = slowest {
            let lag = now.saturating_duration_since(oldest);
            tracing::info!(
                conn,
                lag_ms = lag.as_millis() as u64,
                charged,
                drained,
                "drained least while the server's budget ran short"
            );
            self.push_drop(
                conn,
                DropReason::Shed {
                    lag,
                    charged,
                    drained,
                },
            );
        }
    }

    fn push_drop(&mut self, conn: ConnId, reason: DropReason) {
        if !self.drops.iter().any(|d| d.conn == conn) {
            self.drops.push_back(Drop { conn, reason });
        }
    }

    /// `conn` stops holding the room; the members' budget stops being spent
    /// once nobody holds it.
    fn release_hold(&mut self, now: Instant, conn: ConnId) {
        self.holding.remove(&conn);
        if self.holding.is_empty() {
            self.members_hold.stop(now);
        }
    }

    /// Once nothing pauses the room, every paused connection goes back in
    /// turn.
    fn resume_if_eased(&mut self) {
        if !self.is_paused() && !self.paused.is_empty() {
            self.ready.extend(self.paused.drain(..));
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
