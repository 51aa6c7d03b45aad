//! The decision table, row by row, on a hand-moved clock and hand-set
//! queues.

use super::*;

/// Queues as the tests set them.
#[derive(Debug, Default)]
pub(super) struct FakeQueues {
    /// Per connection: bytes charged and the oldest unsent frame's instant.
    pub(super) queues: BTreeMap<ConnId, (usize, Option<Instant>)>,
    /// Per connection: bytes written, ever.
    pub(super) written: BTreeMap<ConnId, u64>,
}

impl FakeQueues {
    pub(super) fn set(&mut self, conn: ConnId, charged: usize, oldest: Option<Instant>) {
        self.queues.insert(conn, (charged, oldest));
    }
}

impl Queues for FakeQueues {
    fn charged(&self, conn: ConnId) -> usize {
        self.queues.get(&conn).map_or(0, |q| q.0)
    }

    fn oldest_unsent(&self, conn: ConnId) -> Option<Instant> {
        self.queues.get(&conn).and_then(|q| q.1)
    }

    fn written(&self, conn: ConnId) -> u64 {
        self.written.get(&conn).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.queues.values().map(|q| q.0).sum()
    }
}

pub(super) const MAX_LAG: Duration = Duration::from_secs(10);
pub(super) const HOLD: Duration = Duration::from_millis(500);
pub(super) const WINDOW: Duration = Duration::from_secs(10);
pub(super) const MARK: usize = 1000;
pub(super) const RESUME: usize = 750;

/// How long a full hold budget keeps the room waiting: 500 ms, plus what it
/// earns meanwhile.
const FULL_HOLD: Duration = Duration::from_nanos(526_315_789);

pub(super) fn config() -> PressureConfig {
    PressureConfig {
        max_lag: MAX_LAG,
        hold: HOLD,
        hold_window: WINDOW,
        budget_mark: MARK,
        budget_resume: RESUME,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A policy at `t0` with connections 1 to `n` open.
fn policy(t0: Instant, n: ConnId) -> Pressure {
    let mut p = Pressure::new(t0, config());
    for conn in 1..=n {
        p.opened(t0, conn);
    }
    p
}

/// Asks for a verdict on each ready connection's chat line, in turn.
fn offer_chat(p: &mut Pressure, now: Instant, q: &FakeQueues) -> Vec<(ConnId, Verdict)> {
    let mut out = Vec::new();
    while let Some(conn) = p.next_ready() {
        out.push((conn, p.verdict(now, conn, false, true, q)));
    }
    out
}

#[test]
fn a_ready_connection_is_taken_in_turn() {
    let t0 = Instant::now();
    let q = FakeQueues::default();
    let mut p = policy(t0, 3);
    for conn in [3, 1, 2] {
        p.input_ready(conn);
    }
    assert_eq!(
        offer_chat(&mut p, t0, &q),
        [(3, Verdict::Take), (1, Verdict::Take), (2, Verdict::Take)]
    );
    p.taken(1, true);
    p.taken(2, false);
    assert_eq!(p.next_ready(), Some(1), "only the one with more input");
    assert_eq!(p.next_ready(), None);
}

#[test]
fn has_ready_says_whether_a_turn_is_owed_and_nothing_else() {
    let t0 = Instant::now();
    let mut p = policy(t0, 2);
    assert!(!p.has_ready(), "nothing offered yet");
    p.input_ready(7);
    assert!(
        !p.has_ready(),
        "input from a connection never opened is ignored"
    );
    p.input_ready(2);
    assert!(p.has_ready());
    assert_eq!(p.next_ready(), Some(2));
    assert!(!p.has_ready(), "the only turn was taken");
}

#[test]
fn flood_control_parks_a_sender_until_its_line_is_released() {
    let t0 = Instant::now();
    let q = FakeQueues::default();
    let mut p = policy(t0, 2);
    p.input_ready(1);
    let conn = p.next_ready().expect("ready");
    assert_eq!(p.verdict(t0, conn, true, true, &q), Verdict::Park);
    assert_eq!(p.parked().collect::<Vec<_>>(), [1]);
    assert_eq!(p.next_ready(), None, "a parked sender is not looked at");
    p.unpark(2);
    assert_eq!(
        p.next_ready(),
        None,
        "unparking one not parked does nothing"
    );
    p.unpark(1);
    assert_eq!(p.next_ready(), Some(1));
    assert_eq!(p.parked().count(), 0);
}

#[test]
fn a_heavy_member_pauses_chat_lines_only_and_resumes_them_in_order_when_light() {
    let t0 = Instant::now();
    let q = FakeQueues::default();
    let mut p = policy(t0, 5);
    p.set_heavy(t0, 1, true);
    assert!(p.is_paused());
    p.input_ready(2);
    p.input_ready(3);
    assert_eq!(
        offer_chat(&mut p, t0, &q),
        [(2, Verdict::Pause), (3, Verdict::Pause)]
    );
    p.gone(t0, 5);
    assert!(
        !p.has_ready(),
        "while the room is paused the paused wait, whatever else happens"
    );
    // A name or a roster request is not what pressure holds back.
    p.input_ready(4);
    let conn = p.next_ready().expect("ready");
    assert_eq!(p.verdict(t0, conn, false, false, &q), Verdict::Take);
    p.set_heavy(t0 + ms(100), 1, false);
    assert!(!p.is_paused());
    assert_eq!(
        offer_chat(&mut p, t0 + ms(100), &q),
        [(2, Verdict::Take), (3, Verdict::Take)]
    );
}

#[test]
fn a_heavy_member_holds_the_room_no_longer_than_the_budget_and_nothing_else_is_needed() {
    let t0 = Instant::now();
    let q = FakeQueues::default();
    let mut p = policy(t0, 2);
    p.set_heavy(t0, 1, true);
    p.input_ready(2);
    assert_eq!(offer_chat(&mut p, t0, &q), [(2, Verdict::Pause)]);
    assert_eq!(p.poll_timeout(), Some(t0 + FULL_HOLD));
    // The timer alone resumes the room: no other event.
    p.handle_timeout(t0 + FULL_HOLD, &q);
    assert!(!p.is_paused());
    assert_eq!(offer_chat(&mut p, t0 + FULL_HOLD, &q), [(2, Verdict::Take)]);
    assert!(p.poll_drop().is_none(), "behind, not dropped");
}

#[test]
fn a_hold_told_late_still_ended_when_its_budget_ran_out() {
    let t0 = Instant::now();
    let q = FakeQueues::default();
    let mut p = policy(t0, 3);
    p.set_heavy(t0, 1, true);
    // The driver got round to it 200 ms late, with a chat line to judge.
    p.input_ready(2);
    let late = t0 + FULL_HOLD + ms(200);
    assert_eq!(offer_chat(&mut p, late, &q), [(2, Verdict::Take)]);
    // The budget ran out at its instant, and has earned 10 ms since.
    assert_eq!(p.members_hold.left(late), ms(10));
}

#[test]
fn a_member_heavy_once_the_hold_budget_is_spent_pauses_nobody() {
    let t0 = Instant::now();
    let q = FakeQueues::default();
    let mut p = policy(t0, 3);
    p.set_heavy(t0, 1, true);
    p.handle_timeout(t0 + FULL_HOLD, &q);
    p.set_heavy(t0 + FULL_HOLD, 2, true);
    assert!(!p.is_paused(), "the members' budget is shared and spent");
    p.input_ready(3);
    assert_eq!(offer_chat(&mut p, t0 + FULL_HOLD, &q), [(3, Verdict::Take)]);
    // Staying heavy does not hold again when the budget is earned back;
    // turning heavy afresh does.
    let later = t0 + FULL_HOLD + WINDOW;
    p.handle_timeout(later, &q);
    assert!(!p.is_paused());
    p.set_heavy(later, 2, false);
    p.set_heavy(later, 2, true);
    assert!(p.is_paused());
    assert_eq!(p.poll_timeout(), Some(later + FULL_HOLD));
}

#[test]
fn two_heavy_members_share_one_hold_and_are_both_released_when_it_runs_out() {
    let t0 = Instant::now();
    let q = FakeQueues::default();
    let mut p = policy(t0, 2);
    p.set_heavy(t0, 1, true);
    p.set_heavy(t0 + ms(100), 2, true);
    p.set_heavy(t0 + ms(200), 1, false);
    assert!(p.is_paused(), "the other still holds");
    assert_eq!(
        p.poll_timeout(),
        Some(t0 + FULL_HOLD),
        "one budget, spent since t0"
    );
    p.handle_timeout(t0 + FULL_HOLD, &q);
    assert!(!p.is_paused());
}

#[test]
fn a_holding_member_that_goes_resumes_the_room_at_once() {
    // The liveness hole: once the member holding the room was dropped,
    // nothing re-checked whether the room might resume.
    let t0 = Instant::now();
    let q = FakeQueues::default();
    let mut p = policy(t0, 2);
    p.set_heavy(t0, 1, true);
    p.input_ready(2);
    assert_eq!(offer_chat(&mut p, t0, &q), [(2, Verdict::Pause)]);
    p.gone(t0 + ms(10), 1);
    assert!(!p.is_paused());
    assert_eq!(p.next_ready(), Some(2));
    // The budget stopped being spent when it went.
    assert_eq!(
        p.members_hold.left(t0 + ms(10)),
        ms(490) + Duration::from_micros(500)
    );
}

#[test]
fn a_connection_is_dropped_once_its_oldest_unsent_frame_is_max_lag_old() {
    let t0 = Instant::now();
    let mut q = FakeQueues::default();
    let mut p = policy(t0, 2);
    assert_eq!(
        p.poll_timeout(),
        Some(t0 + MAX_LAG),
        "looked at after max_lag"
    );
    q.set(1, 100, Some(t0 + ms(5)));
    q.set(2, 100, Some(t0 + ms(1)));
    p.handle_timeout(t0 + MAX_LAG, &q);
    assert!(p.poll_drop().is_none(), "neither is 10 s behind yet");
    assert_eq!(p.poll_timeout(), Some(t0 + ms(1) + MAX_LAG));
    // Connection 2 wrote its oldest frame meanwhile; connection 1 did not.
    q.set(2, 100, Some(t0 + ms(9000)));
    p.handle_timeout(t0 + ms(1) + MAX_LAG, &q);
    assert!(p.poll_drop().is_none());
    assert_eq!(p.poll_timeout(), Some(t0 + ms(5) + MAX_LAG));
    p.handle_timeout(t0 + ms(5) + MAX_LAG, &q);
    assert_eq!(
        p.poll_drop(),
        Some(Drop {
            conn: 1,
            reason: DropReason::Lagging { lag: MAX_LAG }
        })
    );
    assert!(p.poll_drop().is_none());
}

#[test]
fn a_connection_with_nothing_unsent_is_never_dropped_and_is_looked_at_again_later() {
    let t0 = Instant::now();
    let q = FakeQueues::default();
    let mut p = policy(t0, 1);
    for k in 1..5 {
        p.handle_timeout(t0 + MAX_LAG * k, &q);
        assert!(p.poll_drop().is_none());
        assert_eq!(p.poll_timeout(), Some(t0 + MAX_LAG * (k + 1)));
    }
}

#[test]
fn the_budget_pauses_the_room_at_its_mark_and_resumes_it_below_the_resume_mark() {
    let t0 = Instant::now();
    let mut q = FakeQueues::default();
    let mut p = policy(t0, 2);
    q.set(1, MARK - 1, Some(t0));
    p.check_budget(t0, &q);
    assert!(!p.is_paused());
    assert_eq!(p.wake_below(), None);
    q.set(1, MARK, Some(t0));
    p.check_budget(t0, &q);
    assert!(p.is_paused());
    assert_eq!(
        p.wake_below(),
        Some(RESUME),
        "the queues must wake the room"
    );
    p.input_ready(2);
    assert_eq!(offer_chat(&mut p, t0, &q), [(2, Verdict::Pause)]);
    q.set(1, RESUME, Some(t0));
    p.check_budget(t0 + ms(100), &q);
    assert!(p.is_paused(), "hysteresis: not yet below the resume mark");
    q.set(1, RESUME - 1, Some(t0));
    p.check_budget(t0 + ms(100), &q);
    assert!(!p.is_paused());
    assert_eq!(p.wake_below(), None);
    assert_eq!(p.next_ready(), Some(2));
    assert!(p.poll_drop().is_none(), "nobody pays for a short pause");
}

#[test]
fn a_chat_line_is_judged_against_the_total_as_it_is_now() {
    let t0 = Instant::now();
    let mut q = FakeQueues::default();
    let mut p = policy(t0, 2);
    q.set(1, MARK, Some(t0));
    p.input_ready(2);
    assert_eq!(offer_chat(&mut p, t0, &q), [(2, Verdict::Pause)]);
}

#[test]
fn past_its_hold_the_budget_sheds_the_furthest_behind_until_below_the_resume_mark() {
    let t0 = Instant::now();
    let mut q = FakeQueues::default();
    let mut p = policy(t0, 4);
    q.set(1, 500, Some(t0 + ms(30)));
    q.set(2, 300, Some(t0 + ms(10))); // furthest behind
    q.set(3, 300, Some(t0 + ms(20)));
    q.set(4, 0, None);
    p.check_budget(t0 + ms(50), &q);
    assert!(p.is_paused());
    let out = t0 + ms(50) + FULL_HOLD;
    assert_eq!(p.poll_timeout(), Some(out));
    p.handle_timeout(out, &q);
    let first = p.poll_drop().expect("a drop");
    assert_eq!(first.conn, 2);
    assert_eq!(
        first.reason,
        DropReason::Shed {
            lag: out - (t0 + ms(10)),
            charged: 300,
            drained: 0,
        }
    );
    assert!(p.poll_drop().is_none(), "one at a time");
    // The driver drops it; its bytes leave the total (800: still over the
    // resume mark), so the next furthest behind goes.
    q.queues.remove(&2);
    p.gone(out, 2);
    p.check_budget(out, &q);
    assert_eq!(p.poll_drop().map(|d| d.conn), Some(3));
    q.queues.remove(&3);
    p.gone(out, 3);
    p.check_budget(out, &q);
    assert!(p.poll_drop().is_none(), "500 is below the resume mark");
    assert!(!p.is_paused());
}

#[test]
fn a_budget_short_with_nothing_unsent_drops_nobody() {
    let t0 = Instant::now();
    let mut q = FakeQueues::default();
    let mut p = policy(t0, 1);
    q.set(1, MARK, None); // bookkeeping, nothing waiting to be written
    p.check_budget(t0, &q);
    p.handle_timeout(t0 + FULL_HOLD, &q);
    assert!(p.poll_drop().is_none());
    assert!(p.is_paused());
    assert_eq!(p.wake_below(), Some(RESUME));
}

#[test]
fn the_budget_and_the_members_have_their_own_holds() {
    let t0 = Instant::now();
    let mut q = FakeQueues::default();
    let mut p = policy(t0, 2);
    p.set_heavy(t0, 1, true);
    p.handle_timeout(t0 + FULL_HOLD, &q); // the members' hold is spent
    q.set(2, MARK, Some(t0));
    p.check_budget(t0 + FULL_HOLD, &q);
    assert!(p.is_paused(), "the budget still has its own");
    assert!(p.poll_drop().is_none());
}

#[test]
fn a_gone_connection_leaves_no_trace() {
    let t0 = Instant::now();
    let q = FakeQueues::default();
    let mut p = policy(t0, 3);
    p.input_ready(1);
    p.input_ready(2);
    let conn = p.next_ready().expect("ready");
    p.verdict(t0, conn, true, true, &q);
    p.set_heavy(t0, 3, true);
    for conn in 1..=3 {
        p.gone(t0, conn);
    }
    assert_eq!(p.next_ready(), None);
    assert_eq!(p.parked().count(), 0);
    assert!(!p.is_paused());
    assert_eq!(p.poll_timeout(), None, "no lag checks, no hold");
    p.input_ready(1);
    assert_eq!(p.next_ready(), None, "unknown ids are ignored");
    assert!(!p.is_waiting(1));
}

#[test]
fn the_budget_sheds_the_one_that_drained_least_while_it_waited() {
    // A burst dated every backlog alike: the ages cannot tell a fast
    // reader from a slow one, what each drained during the wait can.
    let t0 = Instant::now();
    let mut q = FakeQueues::default();
    let mut p = policy(t0, 3);
    for conn in 1..=3 {
        q.set(conn, 400, Some(t0));
    }
    p.check_budget(t0, &q);
    q.written.insert(1, 90_000); // the observer drained a lot
    q.written.insert(2, 500);
    q.written.insert(3, 700);
    let out = t0 + FULL_HOLD;
    p.handle_timeout(out, &q);
    let first = p.poll_drop().expect("a drop");
    assert_eq!(first.conn, 2, "the one that drained least");
    assert_eq!(
        first.reason,
        DropReason::Shed {
            lag: FULL_HOLD,
            charged: 400,
            drained: 500,
        }
    );
    q.queues.remove(&2);
    p.gone(out, 2);
    p.check_budget(out, &q);
    assert_eq!(
        p.poll_drop().map(|d| d.conn),
        Some(3),
        "then the next slowest"
    );
}

#[test]
fn past_its_hold_the_budget_waits_for_queues_draining_within_it_and_looks_again() {
    // A burst bigger than the budget, for a reader that drains it: when the
    // hold runs out, its oldest unsent frame is younger than the hold, so
    // it is not behind, and nobody pays yet.
    let t0 = Instant::now();
    let mut q = FakeQueues::default();
    let mut p = policy(t0, 2);
    q.set(1, MARK, Some(t0));
    p.check_budget(t0, &q);
    let out = t0 + FULL_HOLD;
    let young = out - ms(100);
    q.set(1, MARK, Some(young));
    p.handle_timeout(out, &q);
    assert!(
        p.poll_drop().is_none(),
        "nobody behind by more than the hold"
    );
    assert!(p.is_paused());
    assert_eq!(p.poll_timeout(), Some(young + HOLD), "looked at again then");
    // It stopped draining: now it is behind, and pays.
    p.handle_timeout(young + HOLD, &q);
    assert_eq!(p.poll_drop().map(|d| d.conn), Some(1));
}
