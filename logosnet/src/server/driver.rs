//! The room task: the one place the [`Room`]'s rules run, driven in
//! quinn's `ConnectionDriver` shape. It moves frames and arms one timer;
//! who pays for the room's pace is decided by the [`Pressure`] policy.
//!
//! Each turn it takes the events that are waiting (a batch, never one at a
//! time), then takes input from the connections the policy says may be
//! read — one frame per connection per visit, in turn, up to a budget —
//! then fires every deadline that has passed (the room's and the
//! policy's), whatever else is ready, and arms one stored timer for the
//! next. Output is applied after each input, and the policy re-reads the
//! server-wide total after each, so back-pressure sees every queue's size
//! before the next frame is taken.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::Sleep;

use super::inbox::{Inbox, Input};
use super::metrics::Metrics;
use super::outbox::{Outbox, Totals};
use super::pressure::{self, DropReason, Pressure, Verdict};
use super::{Event, ServerConfig, Table};
use crate::room::{ConnId, EndReason, Output, Room};
use crate::{codec, protocol};

/// Inputs taken per turn before deadlines are fired and other tasks run.
const TURN_INPUTS: usize = 64;

/// Events taken per turn.
const TURN_EVENTS: usize = 256;

/// What the room task holds for one connection.
#[derive(Debug)]
pub(super) struct Handles {
    /// Its input, for the room to take.
    pub(super) inbox: Arc<Inbox>,
    /// Its output queue.
    pub(super) outbox: Arc<Outbox>,
}

/// Every connection the room task knows, and the server-wide total: what
/// the policy reads of the queues.
struct Links {
    /// By id.
    conns: BTreeMap<ConnId, Handles>,
    /// Bytes charged to every queue.
    totals: Arc<Totals>,
}

impl pressure::Queues for Links {
    fn charged(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |h| h.outbox.charged())
    }

    fn oldest_unsent(&self, conn: ConnId) -> Option<Instant> {
        self.conns.get(&conn).and_then(|h| h.outbox.oldest_unsent())
    }

    fn written(&self, conn: ConnId) -> u64 {
        self.conns
            .get(&conn)
            .map_or(0, |h| h.outbox.written_total())
    }

    fn total(&self) -> usize {
        self.totals.charged()
    }
}

/// The outboxes of a broadcast's recipients, kept while the room's list of
/// members is the same one (it shares one list until its membership
/// changes), so a broadcast is a walk down a vector, not a lookup per
/// recipient.
#[derive(Default)]
struct Recipients {
    /// The room's list these were found for (held, so it cannot be freed
    /// and its address taken by another).
    list: Option<Arc<[ConnId]>>,
    /// Each member's outbox, in the list's order; members the driver no
    /// longer knows are left out.
    outboxes: Vec<(ConnId, Arc<Outbox>)>,
}

impl Recipients {
    /// Finds the outboxes for `list`, unless they are already found.
    fn refresh(&mut self, list: &Arc<[ConnId]>, conns: &BTreeMap<ConnId, Handles>) {
        if self
            .list
            .as_ref()
            .is_some_and(|held| Arc::ptr_eq(held, list))
        {
            return;
        }
        self.outboxes.clear();
        self.outboxes.extend(
            list.iter()
                .filter_map(|&conn| Some((conn, conns.get(&conn)?.outbox.clone()))),
        );
        self.list = Some(list.clone());
    }
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
    /// Who pays for the room's pace.
    pressure: Pressure,
    /// Every connection the room knows.
    links: Links,
    /// From the accept loop and the connection tasks.
    events: mpsc::UnboundedReceiver<Event>,
    /// Events taken by the last wait.
    event_batch: Vec<Event>,
    /// What a dropped connection is told, encoded once.
    farewell: Option<Vec<u8>>,
    /// The outboxes of the last broadcast's recipients.
    recipients: Recipients,
    /// Members whose queues a broadcast just made heavy.
    turned_heavy: Vec<ConnId>,
    /// The one timer, and the instant it is armed for.
    timer: Pin<Box<Sleep>>,
    /// The instant `timer` is armed for; `None` while it is not armed.
    timer_at: Option<Instant>,
    /// Where the room's figures are published, if anywhere.
    metrics: Option<Arc<Metrics>>,
}

impl Driver {
    pub(super) fn new(
        config: &ServerConfig,
        events: mpsc::UnboundedReceiver<Event>,
        totals: Arc<Totals>,
    ) -> Self {
        Self {
            room: Room::new(config.room.clone()),
            pressure: Pressure::new(now(), config.pressure()),
            links: Links {
                conns: BTreeMap::new(),
                totals,
            },
            events,
            event_batch: Vec::with_capacity(TURN_EVENTS),
            farewell: codec::encode(&protocol::too_far_behind())
                .ok()
                .map(|frame| frame.to_vec()),
            recipients: Recipients::default(),
            turned_heavy: Vec::new(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            timer_at: None,
            metrics: config.metrics.clone(),
        }
    }

    /// Runs the room until `shutdown` resolves. The room is told to stop by
    /// [`Driver::finish`], once nothing new can arrive.
    pub(super) async fn run<F: Future<Output = ()>>(&mut self, shutdown: F) {
        tokio::pin!(shutdown);
        loop {
            let busy = self.pressure.has_ready();
            let totals = self.links.totals.clone();
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
                Wake::Shutdown | Wake::ChannelClosed => return,
                Wake::Work => {}
            }
            self.take_events();
            self.take_inputs();
            self.fire_deadlines();
            self.arm_timer();
            self.publish();
            if let Some(mark) = self.pressure.wake_below() {
                self.links.totals.wake_below(mark);
            }
            if self.pressure.has_ready() {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Once the accept loop has stopped: takes the last events (so a
    /// connection accepted just before the stop is known and told too),
    /// tells everyone the server is going away and closes every connection.
    pub(super) fn finish(&mut self) {
        tracing::info!("shutting down");
        while let Ok(event) = self.events.try_recv() {
            if let Event::Opened(conn, handles, table) = event {
                self.open(conn, handles, table);
            }
        }
        self.room.shutdown(now());
        self.apply(now());
        self.publish();
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
            match event {
                Event::Opened(conn, handles, table) => self.open(conn, handles, table),
                Event::Ready(conn) => self.pressure.input_ready(conn),
                Event::Light(conn) => {
                    if let Some(handles) = self.links.conns.get(&conn) {
                        let heavy = handles.outbox.is_heavy();
                        self.pressure.set_heavy(now(), conn, heavy);
                    }
                }
            }
        }
        self.event_batch = batch;
    }

    fn open(&mut self, conn: ConnId, handles: Handles, table: Table) {
        let now = now();
        if self.room.handle_open(now, conn) {
            self.links.conns.insert(conn, handles);
            self.pressure.opened(now, conn);
            if table == Table::Full {
                self.room.make_room_for(now, conn);
            }
            self.apply(now);
        } else {
            // A reused id: the room refused it, so the socket it names is
            // closed rather than mixed with another's.
            handles.outbox.abort(None);
        }
    }

    /// Takes input from the connections the policy lets be read, one frame
    /// each per visit.
    fn take_inputs(&mut self) {
        let mut taken = 0;
        while taken < TURN_INPUTS {
            let Some(conn) = self.pressure.next_ready() else {
                break;
            };
            let Some(inbox) = self.links.conns.get(&conn).map(|h| h.inbox.clone()) else {
                continue;
            };
            let now = now();
            let throttled = self.room.is_throttled(conn);
            let chat = !throttled && inbox.next_is_chat();
            match self
                .pressure
                .verdict(now, conn, throttled, chat, &self.links)
            {
                Verdict::Park | Verdict::Pause => continue,
                Verdict::Take => {}
            }
            let Some(input) = inbox.pop() else {
                continue;
            };
            taken += 1;
            self.handle_input(now, conn, input);
            self.settle(conn);
            let more = self.links.conns.contains_key(&conn) && !inbox.unschedule_if_empty();
            self.pressure.taken(conn, more);
        }
    }

    fn handle_input(&mut self, now: Instant, conn: ConnId, input: Input) {
        match input {
            Input::Frame(frame) => self.room.handle_frame(now, conn, frame),
            Input::Oversized(len) => self.room.handle_oversized(now, conn, len),
            Input::Violation(error) => self.room.handle_violation(now, conn, &error),
            Input::End => {
                self.room.handle_closed(now, conn, EndReason::Disconnected);
                // Flush what is already queued (a half-closed peer may still
                // read), then close.
                if let Some(handles) = self.forget(now, conn) {
                    handles.outbox.close();
                }
            }
        }
        self.apply(now);
    }

    /// Fires the room's deadlines and the policy's, whatever else is
    /// waiting.
    fn fire_deadlines(&mut self) {
        let now = now();
        if self.room.poll_timeout().is_some_and(|at| at <= now) {
            self.room.handle_timeout(now);
            self.apply(now);
            let released: Vec<ConnId> = self
                .pressure
                .parked()
                .filter(|&conn| !self.room.is_throttled(conn))
                .collect();
            for conn in released {
                self.settle(conn);
                self.pressure.unpark(conn);
            }
        }
        if self.pressure.poll_timeout().is_some_and(|at| at <= now) {
            self.pressure.handle_timeout(now, &self.links);
        }
        // The queues may have drained since (that is what wakes a room the
        // budget paused): the policy re-reads the total, resumes or sheds.
        self.apply(now);
    }

    fn arm_timer(&mut self) {
        let next = [self.room.poll_timeout(), self.pressure.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        if next != self.timer_at {
            self.timer_at = next;
            if let Some(at) = next {
                self.timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(at));
            }
        }
    }

    /// Carries out everything the room asked for, then what the policy
    /// decides of the queues it left: a member it drops is announced by the
    /// room, so this repeats until both are quiet.
    fn apply(&mut self, now: Instant) {
        loop {
            while let Some(output) = self.room.poll_output() {
                match output {
                    Output::Send { to, frame } => {
                        if let Some(handles) = self.links.conns.get(&to)
                            && handles.outbox.push(&frame, now)
                        {
                            self.pressure.set_heavy(now, to, true);
                        }
                    }
                    Output::Broadcast { to, except, frame } => {
                        self.recipients.refresh(&to, &self.links.conns);
                        for (conn, outbox) in &self.recipients.outboxes {
                            if Some(*conn) != except && outbox.push(&frame, now) {
                                self.turned_heavy.push(*conn);
                            }
                        }
                        for conn in self.turned_heavy.drain(..) {
                            self.pressure.set_heavy(now, conn, true);
                        }
                    }
                    Output::Close { conn, reason } => {
                        tracing::debug!(conn, ?reason, "closing");
                        if let Some(handles) = self.forget(now, conn) {
                            handles.outbox.close();
                        }
                    }
                }
            }
            self.pressure.check_budget(now, &self.links);
            let Some(drop) = self.pressure.poll_drop() else {
                return;
            };
            self.drop_member(now, drop.conn, drop.reason);
        }
    }

    /// Drops a connection that fell too far behind: tells it why if its
    /// socket will take it, and the room that it left.
    fn drop_member(&mut self, now: Instant, conn: ConnId, reason: DropReason) {
        let Some(handles) = self.forget(now, conn) else {
            return;
        };
        tracing::warn!(
            conn,
            ?reason,
            "dropping a connection that is too far behind"
        );
        handles.outbox.abort(self.farewell.clone());
        self.room.handle_closed(now, conn, EndReason::SlowConsumer);
        if let Some(metrics) = &self.metrics {
            metrics.dropped(reason);
        }
    }

    /// Publishes the room's and the policy's counts (once a turn: a few
    /// stores, nothing per delivery).
    fn publish(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.publish(&self.room, &self.pressure, now());
        }
    }

    /// Once the room has taken every frame popped from the connection (none
    /// is held by flood control), tells the connection the frame limit of
    /// the state those frames left it in.
    fn settle(&self, conn: ConnId) {
        if let Some(handles) = self.links.conns.get(&conn)
            && !self.room.is_throttled(conn)
        {
            handles.inbox.settle(self.room.frame_limit(conn));
        }
    }

    /// Removes every trace of the connection from the driver and the
    /// policy.
    fn forget(&mut self, now: Instant, conn: ConnId) -> Option<Handles> {
        self.pressure.gone(now, conn);
        self.links.conns.remove(&conn)
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
