//! The room task: the one place the [`Room`]'s rules run, driven in
//! quinn's `ConnectionDriver` shape.
//!
//! Each turn it takes the events that are waiting (a batch, never one at a
//! time), then takes input from the connections that have some — one frame
//! per connection per visit, in turn, up to a budget — then fires every
//! deadline that has passed whatever else is ready, and arms one stored
//! timer for the next. Output is applied after each input, so back-pressure
//! sees every queue's size before the next frame is taken.
//!
//! What it decides beyond the room's rules is *who pays*:
//! - a sender whose flood allowance is spent is not read (the room holds
//!   its one early frame; its inbox fills; its socket stops being read);
//! - while a member that is still reading has a heavy queue, or the queues
//!   together pass half the server-wide budget, no chat line is taken from
//!   anyone (senders wait, readers catch up; nobody is dropped for it). A
//!   member whose writer has made no progress for the stall grace no longer
//!   holds the room: one that stopped reading delays the others by that
//!   much at most, once;
//! - a member is dropped, with a `ProtocolError` if its socket takes one,
//!   only for its own failing: its queue passed its hard bound, its writer
//!   made no progress for the write deadline, it held the room paused for a
//!   write deadline without draining [`MIN_DRAIN_PER_DEADLINE`] (from heavy
//!   back to light: three eighths of its queue's bound), or it
//!   stalled while the server-wide budget ran short.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::Sleep;

use super::inbox::{Inbox, Input};
use super::outbox::{HEAVY_QUEUED_BYTES, LIGHT_QUEUED_BYTES, Outbox, Totals};
use super::{Event, ServerConfig, Table};
use crate::room::{ConnId, EndReason, Output, Room};
use crate::{codec, protocol};

/// Inputs taken per turn before deadlines are fired and other tasks run.
const TURN_INPUTS: usize = 64;

/// Events taken per turn.
const TURN_EVENTS: usize = 256;

/// What a member holding the room paused must drain in each write deadline
/// to go on holding it: from heavy back to light, 384 KiB per 10 s by
/// default (about 38 KiB/s). A floor under the room's pace, paid by the
/// reader that cannot meet it: it is dropped, rather than everyone waiting
/// at the pace of a reader that reads just enough to look alive (a reader
/// this slow could not keep up with one participant's full flood allowance
/// of 1,000-character lines in four-byte characters anyway).
pub const MIN_DRAIN_PER_DEADLINE: usize = HEAVY_QUEUED_BYTES - LIGHT_QUEUED_BYTES;

/// A member holding the room paused, and how much it had queued when its
/// current deadline window began.
#[derive(Debug, Clone, Copy)]
struct Hold {
    /// When its current write-deadline window began.
    window_start: Instant,
    /// Bytes it had queued then: progress is measured against it.
    queued_then: usize,
}

/// What the room task holds for one connection.
#[derive(Debug)]
pub(super) struct Handles {
    /// Its input, for the room to take.
    pub(super) inbox: Arc<Inbox>,
    /// Its output queue.
    pub(super) outbox: Arc<Outbox>,
}

/// Why the loop woke.
enum Wake {
    Shutdown,
    Work,
    ChannelClosed,
}

/// The room task's state.
pub(super) struct Driver {
    /// The rules.
    room: Room,
    /// Every connection the room knows.
    conns: BTreeMap<ConnId, Handles>,
    /// From the accept loop and the connection tasks.
    events: mpsc::UnboundedReceiver<Event>,
    /// Events taken by the last wait.
    event_batch: Vec<Event>,
    /// Bytes queued across all connections.
    totals: Arc<Totals>,
    /// Limits: write deadline and the server-wide budget.
    config: ServerConfig,
    /// Connections with input to take, in turn order.
    ready: VecDeque<ConnId>,
    /// Connections whose input waits on flood control.
    throttled: BTreeSet<ConnId>,
    /// Connections whose next input is a chat line held by back-pressure.
    paused: VecDeque<ConnId>,
    /// Members whose heavy queue holds the room paused.
    holding: BTreeMap<ConnId, Hold>,
    /// Members whose writer is stalled.
    stalled: BTreeSet<ConnId>,
    /// The server-wide budget has the room paused (see
    /// [`Driver::budget_paused`]).
    over_budget: bool,
    /// The one timer, and the instant it is armed for.
    timer: Pin<Box<Sleep>>,
    /// The instant `timer` is armed for; `None` while it is not armed.
    timer_at: Option<Instant>,
}

impl Driver {
    pub(super) fn new(
        config: ServerConfig,
        events: mpsc::UnboundedReceiver<Event>,
        totals: Arc<Totals>,
    ) -> Self {
        Self {
            room: Room::new(config.room.clone()),
            conns: BTreeMap::new(),
            events,
            event_batch: Vec::with_capacity(TURN_EVENTS),
            totals,
            config,
            ready: VecDeque::new(),
            throttled: BTreeSet::new(),
            paused: VecDeque::new(),
            holding: BTreeMap::new(),
            stalled: BTreeSet::new(),
            over_budget: false,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            timer_at: None,
        }
    }

    /// Runs the room until `shutdown` resolves (then tells everyone, and
    /// returns every connection's outbox so the caller can bound the flush).
    pub(super) async fn run<F: Future<Output = ()>>(&mut self, shutdown: F) -> Vec<Arc<Outbox>> {
        tokio::pin!(shutdown);
        loop {
            let busy = !self.ready.is_empty();
            let totals = self.totals.clone();
            let wake = if busy {
                tokio::select! {
                    biased;
                    () = &mut shutdown => Wake::Shutdown,
                    () = std::future::ready(()) => Wake::Work,
                }
            } else {
                tokio::select! {
                    biased;
                    () = &mut shutdown => Wake::Shutdown,
                    n = self.events.recv_many(&mut self.event_batch, TURN_EVENTS) => {
                        if n == 0 { Wake::ChannelClosed } else { Wake::Work }
                    }
                    () = &mut self.timer, if self.timer_at.is_some() => Wake::Work,
                    () = totals.eased() => Wake::Work,
                }
            };
            match wake {
                Wake::Shutdown => {
                    tracing::info!("shutting down");
                    let outboxes = self.conns.values().map(|h| h.outbox.clone()).collect();
                    self.room.shutdown(now());
                    self.apply();
                    return outboxes;
                }
                Wake::ChannelClosed => return Vec::new(),
                Wake::Work => {}
            }
            self.take_events();
            self.take_inputs();
            self.fire_deadlines();
            self.arm_timer();
            if !self.ready.is_empty() {
                tokio::task::yield_now().await;
            }
        }
    }

    fn take_events(&mut self) {
        let mut batch = std::mem::take(&mut self.event_batch);
        while batch.len() < TURN_EVENTS {
            match self.events.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        for event in batch.drain(..) {
            self.handle_event(event);
        }
        self.event_batch = batch;
        self.resume_if_eased();
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Opened(conn, handles, table) => {
                if self.room.handle_open(now(), conn) {
                    self.conns.insert(conn, handles);
                    if table == Table::Full {
                        self.room.make_room_for(now(), conn);
                    }
                    self.apply();
                } else {
                    // A reused id: the room refused it, so the socket it
                    // names is closed rather than mixed with another's.
                    handles.outbox.abort(None);
                }
            }
            Event::Ready(conn) => {
                if self.conns.contains_key(&conn) {
                    self.ready.push_back(conn);
                }
            }
            Event::Pressure(conn) => self.reassess(conn),
            Event::TooSlow(conn) => {
                if self.conns.contains_key(&conn) {
                    tracing::info!(conn, "no write progress within the deadline");
                    self.drop_member(conn);
                    self.apply();
                }
            }
        }
    }

    /// Takes input from ready connections, one frame each per visit.
    fn take_inputs(&mut self) {
        self.resume_if_eased();
        let mut taken = 0;
        while taken < TURN_INPUTS {
            let Some(conn) = self.ready.pop_front() else {
                break;
            };
            let Some(inbox) = self.conns.get(&conn).map(|h| h.inbox.clone()) else {
                continue;
            };
            if self.room.is_throttled(conn) {
                self.throttled.insert(conn);
                continue;
            }
            if inbox.next_is_chat() && self.is_paused() {
                self.paused.push_back(conn);
                continue;
            }
            let Some(input) = inbox.pop() else {
                continue;
            };
            taken += 1;
            self.handle_input(conn, input);
            self.settle(conn);
            if let Some(handles) = self.conns.get(&conn)
                && !handles.inbox.unschedule_if_empty()
            {
                self.ready.push_back(conn);
            }
        }
        // Connections just paused wait for the room to ease: make sure
        // something will wake it when it does.
        self.resume_if_eased();
    }

    fn handle_input(&mut self, conn: ConnId, input: Input) {
        let now = now();
        match input {
            Input::Frame(frame) => self.room.handle_frame(now, conn, frame),
            Input::Oversized(len) => self.room.handle_oversized(now, conn, len),
            Input::Violation(error) => self.room.handle_violation(now, conn, &error),
            Input::End => {
                self.room.handle_closed(now, conn, EndReason::Disconnected);
                // Flush what is already queued (a half-closed peer may still
                // read), then close.
                if let Some(handles) = self.forget(conn) {
                    handles.outbox.close();
                }
            }
        }
        self.apply();
    }

    /// Fires the room's deadlines and the driver's own, whatever else is
    /// waiting.
    fn fire_deadlines(&mut self) {
        let now = now();
        if self.room.poll_timeout().is_some_and(|at| at <= now) {
            self.room.handle_timeout(now);
            self.apply();
            let free: Vec<ConnId> = self
                .throttled
                .iter()
                .copied()
                .filter(|&conn| !self.room.is_throttled(conn))
                .collect();
            for conn in free {
                self.throttled.remove(&conn);
                self.settle(conn);
                self.ready.push_back(conn);
            }
        }
        let due: Vec<ConnId> = self
            .holding
            .iter()
            .filter(|&(_, hold)| {
                now.duration_since(hold.window_start) >= self.config.write_deadline
            })
            .map(|(&conn, _)| conn)
            .collect();
        for conn in due {
            let Some(outbox) = self.conns.get(&conn).map(|h| h.outbox.clone()) else {
                continue;
            };
            let queued = outbox.queued_bytes();
            let Some(hold) = self.holding.get_mut(&conn) else {
                continue;
            };
            if hold.queued_then.saturating_sub(queued) < outbox.catch_up_bytes() {
                tracing::info!(conn, queued, "held the room paused without draining enough");
                self.drop_member(conn);
            } else {
                *hold = Hold {
                    window_start: now,
                    queued_then: queued,
                };
            }
        }
        self.apply();
    }

    fn arm_timer(&mut self) {
        let hold_limit = self
            .holding
            .values()
            .map(|hold| hold.window_start)
            .min()
            .map(|start| start + self.config.write_deadline);
        let next = match (self.room.poll_timeout(), hold_limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if next != self.timer_at {
            self.timer_at = next;
            if let Some(at) = next {
                self.timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(at));
            }
        }
    }

    /// Carries out everything the room asked for. A recipient whose queue
    /// overflows is dropped as too far behind, which the room announces,
    /// so this repeats until the room is quiet.
    fn apply(&mut self) {
        let mut overflowed = BTreeSet::new();
        loop {
            while let Some(output) = self.room.poll_output() {
                match output {
                    Output::Send { to, frame } => {
                        let Some(handles) = self.conns.get(&to) else {
                            continue;
                        };
                        match handles.outbox.push(&frame) {
                            Ok(true) => self.reassess(to),
                            Ok(false) => {}
                            Err(_) => {
                                overflowed.insert(to);
                            }
                        }
                    }
                    Output::Close { conn, reason } => {
                        tracing::debug!(conn, ?reason, "closing");
                        if let Some(handles) = self.forget(conn) {
                            handles.outbox.close();
                        }
                    }
                }
            }
            if let Some(conn) = overflowed.pop_first() {
                if self.conns.contains_key(&conn) {
                    tracing::info!(conn, "queue passed its bound");
                    self.drop_member(conn);
                }
                continue;
            }
            if !self.shed_stalled() {
                return;
            }
        }
    }

    /// Over the server-wide mark, drops stalled members, largest queue
    /// first, until it is under; true if any was dropped.
    fn shed_stalled(&mut self) -> bool {
        if self.stalled.is_empty() || self.totals.queued() < self.budget_mark() {
            return false;
        }
        let largest = self
            .stalled
            .iter()
            .filter_map(|&conn| Some((self.conns.get(&conn)?.outbox.queued_bytes(), conn)))
            .max();
        match largest {
            Some((queued, conn)) if queued > 0 => {
                tracing::info!(conn, queued, "stalled while the server's budget ran short");
                self.drop_member(conn);
                true
            }
            _ => false,
        }
    }

    /// Re-reads a member's queue flags: a heavy queue whose writer is not
    /// stalled holds the room.
    fn reassess(&mut self, conn: ConnId) {
        let Some(handles) = self.conns.get(&conn) else {
            return;
        };
        if handles.outbox.is_stalled() {
            self.stalled.insert(conn);
        } else {
            self.stalled.remove(&conn);
        }
        if handles.outbox.holds_room() {
            let queued_then = handles.outbox.queued_bytes();
            self.holding.entry(conn).or_insert(Hold {
                window_start: now(),
                queued_then,
            });
        } else {
            self.holding.remove(&conn);
        }
        self.resume_if_eased();
    }

    /// The server-wide mark: half the budget, so that what is already taken
    /// when reading pauses stays well within it.
    fn budget_mark(&self) -> usize {
        self.config.max_queued_total / 2
    }

    /// Where a room paused on the budget resumes: three quarters of the
    /// mark, so that it takes a good run of lines each time rather than
    /// pausing and waking for every one.
    fn budget_resume_mark(&self) -> usize {
        self.budget_mark() / 4 * 3
    }

    /// Whether the server-wide budget holds the room paused, with
    /// hysteresis: paused at the mark, resumed below the resume mark.
    fn budget_paused(&mut self) -> bool {
        let queued = self.totals.queued();
        if self.over_budget {
            self.over_budget = queued >= self.budget_resume_mark();
        } else {
            self.over_budget = queued >= self.budget_mark();
        }
        self.over_budget
    }

    fn is_paused(&mut self) -> bool {
        !self.holding.is_empty() || self.budget_paused()
    }

    /// Puts paused connections back in turn once nothing holds the room; if
    /// the budget still does, asks to be woken when it does not.
    fn resume_if_eased(&mut self) {
        if self.paused.is_empty() {
            return;
        }
        if self.budget_paused() {
            self.totals.wake_below(self.budget_resume_mark());
            return;
        }
        if self.holding.is_empty() {
            self.ready.extend(self.paused.drain(..));
        }
    }

    /// Drops a member for its own failing: tells it why if its socket
    /// will take it, and the room that it left.
    fn drop_member(&mut self, conn: ConnId) {
        let Some(handles) = self.forget(conn) else {
            return;
        };
        tracing::warn!(
            conn,
            queued = handles.outbox.queued_bytes(),
            "dropping a member that is too far behind"
        );
        let farewell = codec::encode(&protocol::too_far_behind()).ok();
        handles.outbox.abort(farewell);
        self.room
            .handle_closed(now(), conn, EndReason::SlowConsumer);
    }

    /// Once the room has taken every frame popped from the connection (none
    /// is held by flood control), tells the connection the frame limit of
    /// the state those frames left it in.
    fn settle(&self, conn: ConnId) {
        if let Some(handles) = self.conns.get(&conn)
            && !self.room.is_throttled(conn)
        {
            handles.inbox.settle(self.room.frame_limit(conn));
        }
    }

    /// Removes every trace of the connection from the driver.
    fn forget(&mut self, conn: ConnId) -> Option<Handles> {
        self.holding.remove(&conn);
        self.stalled.remove(&conn);
        self.throttled.remove(&conn);
        self.conns.remove(&conn)
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
