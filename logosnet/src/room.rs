//! The protocol core: every rule of the chat room, and nothing else.
//!
//! [`Room`] is a sans-IO state machine in the manner of quinn-proto. Its
//! driver tells it what happened — a connection opened, a frame arrived, a
//! framing violation, a connection ended, the time is now `now` — and then
//! drains [`Room::poll_output`] for what to do: send these frame bytes to
//! that connection, close that one after flushing. [`Room::poll_timeout`]
//! says when it next needs [`Room::handle_timeout`]. It never touches a
//! socket, never reads a clock and never spawns: the tokio server and the
//! turmoil simulations run this same code, and tests drive it directly.
//!
//! Every broadcast frame is encoded once and its bytes shared (`Bytes`) by
//! all recipients. Iteration is in connection-id order (`BTreeMap`), so
//! output is deterministic for a given input sequence.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::{self, FrameLimit, Oversize};
use crate::protocol::{
    self, ClientFrame, FrameError, MAX_CHAT_PAYLOAD, MAX_HELLO_PAYLOAD, MAX_MESSAGE_CHARS,
    MAX_OBSERVERS, MAX_PARTICIPANTS, MAX_USERNAME_PAYLOAD, PRIVATE_PREFIX, Role, ServerFrame,
};
use crate::username::{self, Clash, NameKey, Username};

pub mod eviction;
pub mod flood;
pub mod tally;

use flood::{Bucket, FLOOD_BURST, FLOOD_LINES_PER_SEC, FloodLimit};
pub use tally::{Census, Tally};

/// Identifies one connection for the life of a server; assigned by the driver,
/// never reused.
pub type ConnId = u64;

/// Time a participant has, from `Accepted` or its last refused attempt, to
/// get a name accepted: the spec's 60 s.
pub const USERNAME_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a new connection has to send `Hello`, so idle sockets cannot pile up;
/// the spec's 60 s.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a participant has from `Accepted` to get a name accepted, however
/// often a refusal restarts [`USERNAME_TIMEOUT`]: our one addition to the
/// spec's timer rule, so that refused attempts cannot hold a slot for ever.
/// Five minutes: five full username timeouts, far more than a person
/// choosing a name needs, and a bound on how long anyone can squat a slot.
pub const NAMING_CEILING: Duration = Duration::from_secs(5 * 60);
/// Refused name attempts a connection may make; the next refusal ends it
/// with `UsernameTimeout`. Ten: a person who picks ten taken or invalid
/// names in a row has been told why each time; a script cycling names to
/// keep restarting the timer is cut off after at most ten minutes' worth.
pub const MAX_REFUSED_NAMES: u32 = 10;
/// What a timeout too long for the clock to represent is cut to: about 30
/// years, "never" in practice. The same stand-in tokio's `sleep` uses for
/// `Duration::MAX`, so the driver's timer accepts it too.
pub const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// The numbers the rules are parameterised by. Tests and the storm tests
/// shorten the timeouts; everything else uses [`RoomConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    /// See [`MAX_PARTICIPANTS`].
    pub max_participants: usize,
    /// See [`MAX_OBSERVERS`].
    pub max_observers: usize,
    /// See [`USERNAME_TIMEOUT`].
    pub username_timeout: Duration,
    /// See [`HELLO_TIMEOUT`].
    pub hello_timeout: Duration,
    /// Each sender's allowance after `Hello` (see [`flood`]); `None` turns
    /// flood control off.
    pub flood: Option<FloodLimit>,
    /// See [`NAMING_CEILING`].
    pub naming_ceiling: Duration,
    /// See [`MAX_REFUSED_NAMES`].
    pub max_refused_names: u32,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            max_participants: MAX_PARTICIPANTS,
            max_observers: MAX_OBSERVERS,
            username_timeout: USERNAME_TIMEOUT,
            hello_timeout: HELLO_TIMEOUT,
            flood: FloodLimit::new(FLOOD_LINES_PER_SEC, FLOOD_BURST),
            naming_ceiling: NAMING_CEILING,
            max_refused_names: MAX_REFUSED_NAMES,
        }
    }
}

/// Why the room asks for a connection to be closed (for logs and drivers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its role was full.
    Full,
    /// No `Hello` within the Hello timeout.
    HelloTimeout,
    /// No accepted username within the username timeout or the naming
    /// ceiling, or too many refused attempts.
    UsernameTimeout,
    /// It broke the protocol.
    Violation,
    /// The server is shutting down.
    Shutdown,
    /// Every socket was taken, and it was closed to make room for a newer
    /// connection (see [`Room::make_room_for`]).
    MadeRoom,
    /// Every socket was taken by members or by newer connections: the
    /// newcomer itself was refused.
    Busy,
}

/// Why a connection ended from the driver's side (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The peer closed or the socket failed.
    Disconnected,
    /// It did not read fast enough and its outgoing queue overflowed.
    SlowConsumer,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Queue these complete frame bytes for the connection.
    Send {
        /// The recipient.
        to: ConnId,
        /// One whole encoded frame, shared among recipients.
        frame: Bytes,
    },
    /// Queue this one frame for every connection in `to` but `except` (the
    /// sender of a public line): a broadcast, encoded once. `to` is the
    /// room's members when it was said, in connection order, shared by
    /// every broadcast until the membership changes.
    Broadcast {
        /// The members then.
        to: Arc<[ConnId]>,
        /// Who does not get it.
        except: Option<ConnId>,
        /// One whole encoded frame.
        frame: Bytes,
    },
    /// Flush what was queued for the connection, then close it. The room has
    /// already forgotten it; later events for it are ignored.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
}

impl Output {
    /// Every (recipient, frame) this output queues, in order: one for a
    /// send, one for each member but the excepted for a broadcast, none for
    /// a close. For drivers and tests that want deliveries one by one.
    pub fn deliveries(&self) -> Box<dyn Iterator<Item = (ConnId, &Bytes)> + '_> {
        match self {
            Output::Send { to, frame } => Box::new(std::iter::once((*to, frame))),
            Output::Broadcast { to, except, frame } => Box::new(
                to.iter()
                    .copied()
                    .filter(move |&conn| Some(conn) != *except)
                    .map(move |conn| (conn, frame)),
            ),
            Output::Close { .. } => Box::new(std::iter::empty()),
        }
    }
}

#[derive(Debug)]
enum State {
    /// Connected, no `Hello` yet.
    AwaitingHello { deadline: Instant },
    /// A participant slot is held; no name yet. `deadline` is the username
    /// timeout or the ceiling, whichever comes first.
    Naming {
        /// When it is closed unless a name is accepted first.
        deadline: Instant,
        /// The latest `deadline` may be: [`NAMING_CEILING`] after `Hello`.
        ceiling: Instant,
        /// Names refused so far, against [`MAX_REFUSED_NAMES`].
        refused: u32,
    },
    /// A named participant, in the room; `joined` orders the roster.
    Active {
        /// Its name.
        name: Username,
        /// When it joined, as a sequence number of the room's joins.
        joined: u64,
    },
    /// An observer, in the room.
    Observer,
}

impl State {
    /// How far it has come, for [`eviction`].
    fn stage(&self) -> eviction::Stage {
        match self {
            State::AwaitingHello { .. } => eviction::Stage::BeforeHello,
            State::Naming { .. } => eviction::Stage::Naming,
            State::Active { .. } | State::Observer => eviction::Stage::Member,
        }
    }
}

/// One connection as the room sees it.
#[derive(Debug)]
struct Conn {
    /// Where it is in the protocol.
    state: State,
    /// Its flood allowance, from its `Hello` on.
    bucket: Bucket,
    /// Input that arrived while its bucket was empty, oldest first: taken
    /// in order as tokens come back. The driver stops feeding a connection
    /// that has any (see [`Room::is_throttled`]), so this holds one frame.
    held: VecDeque<Incoming>,
}

/// One piece of input from a connection, as the room takes it.
#[derive(Debug)]
enum Incoming {
    /// A whole frame.
    Frame(ClientFrame),
    /// A frame over the connection's limit, skipped unread: its length.
    Oversized(usize),
}

impl Incoming {
    /// The bytes of text it carries, for its flood cost.
    fn text_bytes(&self) -> usize {
        match self {
            Incoming::Frame(ClientFrame::Hello(_) | ClientFrame::Who) => 0,
            Incoming::Frame(ClientFrame::Username(text) | ClientFrame::Chat(text)) => text.len(),
            Incoming::Oversized(len) => *len,
        }
    }
}

/// What a connection may send before its `Hello`: a Hello, and a longer
/// frame is a violation.
pub const HELLO_LIMIT: FrameLimit = FrameLimit {
    max_payload: MAX_HELLO_PAYLOAD,
    oversize: Oversize::Refuse,
    when: "before Hello",
};

/// What a participant may send while naming: a request the name rule reads,
/// and a longer frame is a violation.
pub const NAMING_LIMIT: FrameLimit = FrameLimit {
    max_payload: MAX_USERNAME_PAYLOAD,
    oversize: Oversize::Refuse,
    when: "before a username is accepted",
};

/// What a member (a named participant or an observer) may send: the
/// longest deliverable chat line. A longer frame is skipped as it arrives
/// and answered as the spec answers a long line, with a warning.
pub const MEMBER_LIMIT: FrameLimit = FrameLimit {
    max_payload: MAX_CHAT_PAYLOAD,
    oversize: Oversize::Skip,
    when: "for a member",
};

// The limits only grow from state to state: a driver may judge a header by
// a limit read before the room took the frames ahead of it (see
// `Room::frame_limit`).
const _: () = assert!(
    HELLO_LIMIT.max_payload < NAMING_LIMIT.max_payload
        && NAMING_LIMIT.max_payload < MEMBER_LIMIT.max_payload
);

/// What a member's line comes to.
#[derive(Debug)]
enum Said {
    /// A public line, for everyone else.
    Public(ServerFrame),
    /// A private line, for its target.
    Private(ConnId, ServerFrame),
    /// A warning back to the sender.
    Back(ServerFrame),
}

/// The chat room's state and rules. See the module docs.
#[derive(Debug)]
pub struct Room {
    /// The numbers the rules use.
    config: RoomConfig,
    /// Every connection the room knows, in any state.
    conns: BTreeMap<ConnId, Conn>,
    /// Active participants by every comparison key of their name (see
    /// [`Username::keys`]), so that no two active names clash: no key
    /// belongs to two of them. The display form is in their `State`.
    names: BTreeMap<NameKey, ConnId>,
    /// Active participants in the order they joined, for the roster.
    roster: BTreeMap<u64, ConnId>,
    /// The sequence number the next join gets.
    next_join: u64,
    /// Everyone who receives the room's traffic: active participants and
    /// observers.
    members: BTreeSet<ConnId>,
    /// `members` as broadcasts carry it, built when first needed after a
    /// change.
    member_list: Option<Arc<[ConnId]>>,
    /// Pending Hello and username deadlines, earliest first.
    deadlines: BTreeSet<(Instant, ConnId)>,
    /// When each throttled connection's next held frame may go, earliest
    /// first.
    releases: BTreeSet<(Instant, ConnId)>,
    /// Participant slots held (named or not).
    participants: usize,
    /// Observer slots held.
    observers: usize,
    /// What the driver has yet to do, in order.
    output: VecDeque<Output>,
    /// What the room has counted of what it did (see [`tally`]).
    tally: Tally,
}

impl Room {
    /// An empty room.
    pub fn new(config: RoomConfig) -> Self {
        Self {
            config,
            conns: BTreeMap::new(),
            names: BTreeMap::new(),
            roster: BTreeMap::new(),
            next_join: 0,
            members: BTreeSet::new(),
            member_list: None,
            deadlines: BTreeSet::new(),
            releases: BTreeSet::new(),
            participants: 0,
            observers: 0,
            output: VecDeque::new(),
            tally: Tally::default(),
        }
    }

    /// A connection was accepted. Ids must be new: a reused one is refused
    /// — `false`, logged as an error, and nothing changes — because taking
    /// it would mix two sockets' traffic under one name. A driver that gets
    /// `false` has a bug, and should close the socket it just accepted.
    pub fn handle_open(&mut self, now: Instant, conn: ConnId) -> bool {
        if self.conns.contains_key(&conn) {
            tracing::error!(conn, "connection id reused; the new connection is refused");
            return false;
        }
        let deadline = deadline_after(now, self.config.hello_timeout);
        let fresh = Conn {
            state: State::AwaitingHello { deadline },
            bucket: Bucket::new(now),
            held: VecDeque::new(),
        };
        self.conns.insert(conn, fresh);
        self.deadlines.insert((deadline, conn));
        true
    }

    /// The newly opened `newcomer` was accepted while every socket was
    /// taken: the room closes the oldest connection still before `Hello`,
    /// else the oldest participant still without a name, telling it why
    /// (see [`eviction`]), and returns it. If every older connection is a
    /// member, the newcomer itself is told `server busy` and closed, and
    /// the answer is `None` (also for an unknown newcomer, which is left
    /// alone). Members are never closed for this.
    pub fn make_room_for(&mut self, _now: Instant, newcomer: ConnId) -> Option<ConnId> {
        if !self.conns.contains_key(&newcomer) {
            return None;
        }
        let stages = self.conns.iter().map(|(&id, c)| (id, c.state.stage()));
        match eviction::choose(newcomer, stages) {
            Some((victim, stage)) => {
                tracing::info!(conn = victim, newcomer, ?stage, "closed to make room");
                let reason = match stage {
                    eviction::Stage::Naming => protocol::closed_to_make_room_before_naming(),
                    _ => protocol::closed_to_make_room_before_hello(),
                };
                self.close_with(victim, &reason, CloseReason::MadeRoom);
                Some(victim)
            }
            None => {
                tracing::warn!(conn = newcomer, "every socket is taken by members; refused");
                self.close_with(newcomer, &protocol::server_busy(), CloseReason::Busy);
                None
            }
        }
    }

    /// A whole frame arrived from a connection. Past `Hello`, a frame the
    /// sender's flood allowance does not cover yet is held, in order, and
    /// taken when it does (at [`Room::poll_timeout`]); meanwhile
    /// [`Room::is_throttled`] is true and the driver should stop reading it.
    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: ClientFrame) {
        self.handle_incoming(now, conn, Incoming::Frame(frame));
    }

    /// A frame longer than the connection's [`Room::frame_limit`] went by,
    /// skipped unread; `len` is its announced length. It is paid for like a
    /// line of that length and answered as the state answers a long frame:
    /// a member is warned, anyone else has broken the protocol.
    pub fn handle_oversized(&mut self, now: Instant, conn: ConnId, len: usize) {
        self.handle_incoming(now, conn, Incoming::Oversized(len));
    }

    /// The longest frame the connection may send in its current state, and
    /// what happens to a longer one. It only grows as a connection goes
    /// from `Hello` to naming to member, so a driver that judges a header
    /// by a limit read before the room took the frames ahead of it never
    /// refuses what the room would take. An unknown connection gets the
    /// strictest.
    pub fn frame_limit(&self, conn: ConnId) -> FrameLimit {
        match self.conns.get(&conn).map(|c| &c.state) {
            Some(State::Naming { .. }) => NAMING_LIMIT,
            Some(State::Active { .. } | State::Observer) => MEMBER_LIMIT,
            Some(State::AwaitingHello { .. }) | None => HELLO_LIMIT,
        }
    }

    fn handle_incoming(&mut self, now: Instant, conn: ConnId, input: Incoming) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.held.is_empty() {
            c.held.push_back(input);
            self.tally.flood_delayed += 1;
            return;
        }
        let Some(limit) = self.config.flood else {
            return self.take(now, conn, input);
        };
        if matches!(c.state, State::AwaitingHello { .. }) {
            // Hello itself is free: the allowance starts after it.
            return self.take(now, conn, input);
        }
        let cost = flood::line_cost(input.text_bytes(), &limit);
        match c.bucket.take(now, cost, &limit) {
            Ok(()) => self.take(now, conn, input),
            Err(at) => {
                tracing::debug!(conn, "throttled");
                c.held.push_back(input);
                self.tally.flood_delayed += 1;
                self.releases.insert((at, conn));
            }
        }
    }

    /// True while the connection has frames held by flood control: the
    /// driver should take no more from it until this clears.
    pub fn is_throttled(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| !c.held.is_empty())
    }

    /// Applies one input's rule.
    fn take(&mut self, now: Instant, conn: ConnId, input: Incoming) {
        match input {
            Incoming::Frame(frame) => self.take_frame(now, conn, frame),
            Incoming::Oversized(len) => self.take_oversized(conn, len),
        }
    }

    /// A frame over the limit: a member is warned as for a long line (an
    /// observer as for anything it sends); before that, the limit was a
    /// hard one.
    fn take_oversized(&mut self, conn: ConnId, len: usize) {
        match self.conns.get(&conn).map(|c| &c.state) {
            Some(State::Active { .. }) => self.send_frame(conn, &protocol::too_long_warning()),
            Some(State::Observer) => self.send_frame(conn, &protocol::observers_only_read()),
            Some(State::AwaitingHello { .. } | State::Naming { .. }) => {
                let limit = self.frame_limit(conn);
                let error = FrameError::OverLimit {
                    len: u32::try_from(len).unwrap_or(u32::MAX),
                    limit: limit.max_payload,
                    when: limit.when,
                };
                self.violation(conn, error.reason());
            }
            None => {}
        }
    }

    /// Applies one frame's rule.
    fn take_frame(&mut self, now: Instant, conn: ConnId, frame: ClientFrame) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        match (&c.state, frame) {
            (State::AwaitingHello { .. }, ClientFrame::Hello(role)) => self.hello(now, conn, role),
            (State::AwaitingHello { .. }, _) => {
                self.close_with(
                    conn,
                    &protocol::first_frame_must_be_hello(),
                    CloseReason::Violation,
                );
            }
            (State::Naming { .. }, ClientFrame::Username(requested)) => {
                self.username(now, conn, &requested);
            }
            (State::Naming { .. }, ClientFrame::Chat(_)) => {
                self.send_frame(conn, &protocol::choose_a_username_first());
            }
            (State::Naming { .. }, ClientFrame::Who) => {
                self.send_frame(conn, &protocol::who_before_a_name());
            }
            (State::Active { .. } | State::Observer, ClientFrame::Who) => {
                let roster = self.roster();
                self.send_frame(conn, &roster);
            }
            (State::Active { .. }, ClientFrame::Chat(line)) => self.chat(conn, &line),
            (State::Active { .. }, ClientFrame::Username(_)) => {
                self.send_frame(conn, &protocol::already_named());
            }
            (State::Observer, _) => {
                self.send_frame(conn, &protocol::observers_only_read());
            }
            (_, ClientFrame::Hello(_)) => {
                self.send_frame(conn, &protocol::hello_again());
            }
        }
    }

    /// The connection's byte stream broke the protocol: it is told why and
    /// closed.
    pub fn handle_violation(&mut self, _now: Instant, conn: ConnId, error: &FrameError) {
        if self.conns.contains_key(&conn) {
            if matches!(error, FrameError::Unfinished(_)) {
                self.tally.count_frame_timeout();
            }
            self.violation(conn, error.reason());
        }
    }

    /// The connection is gone (peer closed, socket error, or the driver
    /// dropped it). Unknown or already-closed ids are ignored.
    pub fn handle_closed(&mut self, _now: Instant, conn: ConnId, reason: EndReason) {
        if let Some(state) = self.forget(conn) {
            tracing::debug!(conn, ?reason, "connection ended");
            self.announce_left(conn, &state, reason);
        }
    }

    /// Expires every deadline at or before `now` and takes every held frame
    /// whose time has come, in the order of their instants (a frame held
    /// until the same instant as a deadline goes first: it arrived before).
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            let release = self.releases.first().copied().filter(|&(at, _)| at <= now);
            let deadline = self.deadlines.first().copied().filter(|&(at, _)| at <= now);
            match (release, deadline) {
                (Some(r), Some(d)) if r.0 <= d.0 => self.release(now, r.1),
                (Some(r), None) => self.release(now, r.1),
                (_, Some(d)) => self.expire(d.1),
                (None, None) => return,
            }
        }
    }

    /// Takes the connection's held frames that its allowance now covers.
    fn release(&mut self, now: Instant, conn: ConnId) {
        self.releases.retain(|&(_, c)| c != conn);
        let Some(limit) = self.config.flood else {
            // Flood control cannot be turned off on a live room; nothing is
            // ever held without it.
            return;
        };
        while let Some(c) = self.conns.get_mut(&conn) {
            let Some(input) = c.held.front() else {
                return;
            };
            let cost = flood::line_cost(input.text_bytes(), &limit);
            match c.bucket.take(now, cost, &limit) {
                Ok(()) => {
                    if let Some(input) = c.held.pop_front() {
                        self.take(now, conn, input);
                    }
                }
                Err(at) => {
                    self.releases.insert((at, conn));
                    return;
                }
            }
        }
    }

    /// The earliest deadline, `conn`'s Hello or username deadline (or its
    /// naming ceiling), has passed.
    fn expire(&mut self, conn: ConnId) {
        self.deadlines.pop_first();
        match self.conns.get(&conn).map(|c| &c.state) {
            Some(State::AwaitingHello { .. }) => {
                tracing::info!(conn, "no Hello in time");
                let reason = protocol::no_hello_within(self.config.hello_timeout);
                self.close_with(conn, &reason, CloseReason::HelloTimeout);
            }
            Some(State::Naming { .. }) => {
                tracing::info!(conn, "no username in time");
                self.send_frame(conn, &ServerFrame::UsernameTimeout);
                self.close(conn, CloseReason::UsernameTimeout);
            }
            _ => {}
        }
    }

    /// When [`Room::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.deadlines.first().map(|&(at, _)| at);
        let release = self.releases.first().map(|&(at, _)| at);
        match (deadline, release) {
            (Some(d), Some(r)) => Some(d.min(r)),
            (d, r) => d.or(r),
        }
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.output.pop_front()
    }

    /// Tells everyone the server is going away and closes every connection.
    pub fn shutdown(&mut self, _now: Instant) {
        let frame = encode(&protocol::shutdown_notice());
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in all {
            if let Some(frame) = &frame {
                self.output.push_back(Output::Send {
                    to: conn,
                    frame: frame.clone(),
                });
            }
            self.close(conn, CloseReason::Shutdown);
        }
    }

    /// Participants holding a slot (named or not).
    pub fn participants(&self) -> usize {
        self.participants
    }

    /// Observers holding a slot.
    pub fn observers(&self) -> usize {
        self.observers
    }

    /// Connections the room knows, in any state.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The names of active participants as shown (NFC), in the order they
    /// joined.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roster
            .values()
            .filter_map(|conn| self.active_name(*conn).map(Username::as_str))
    }

    /// Who is in the room, as a `Roster` frame: the participants in the
    /// order they joined and the number of observers.
    fn roster(&self) -> ServerFrame {
        ServerFrame::Roster {
            participants: self.names().map(str::to_owned).collect(),
            observers: u32::try_from(self.observers).unwrap_or(u32::MAX),
        }
    }

    /// The name of `conn`, if it is an active participant.
    fn active_name(&self, conn: ConnId) -> Option<&Username> {
        match self.conns.get(&conn).map(|c| &c.state) {
            Some(State::Active { name, .. }) => Some(name),
            _ => None,
        }
    }

    /// The active participant whose name clashes with `name`, tried key by
    /// key (the first key first: a name that is the same up to case is found
    /// before one that only looks alike).
    fn holder(&self, name: &Username) -> Option<(ConnId, &Username)> {
        name.keys().iter().find_map(|key| {
            let conn = *self.names.get(key)?;
            Some((conn, self.active_name(conn)?))
        })
    }

    fn hello(&mut self, now: Instant, conn: ConnId, role: Role) {
        let (count, max) = match role {
            Role::Participant => (self.participants, self.config.max_participants),
            Role::Observer => (self.observers, self.config.max_observers),
        };
        if count >= max {
            tracing::info!(conn, ?role, "refused: role full");
            self.send_frame(conn, &ServerFrame::Full);
            self.close(conn, CloseReason::Full);
            return;
        }
        self.clear_deadline(conn);
        self.send_frame(conn, &ServerFrame::Accepted);
        match role {
            Role::Participant => {
                self.participants += 1;
                let ceiling = deadline_after(now, self.config.naming_ceiling);
                self.set_state(conn, self.naming(now, ceiling, 0));
            }
            Role::Observer => {
                self.observers += 1;
                self.members.insert(conn);
                self.member_list = None;
                self.set_state(conn, State::Observer);
            }
        }
        tracing::info!(conn, ?role, "admitted");
    }

    /// Naming, with the username timeout restarted at `now` but never
    /// past the ceiling.
    fn naming(&self, now: Instant, ceiling: Instant, refused: u32) -> State {
        State::Naming {
            deadline: deadline_after(now, self.config.username_timeout).min(ceiling),
            ceiling,
            refused,
        }
    }

    /// A name attempt: accepted, or refused with the verdict frame and,
    /// unless the name is simply in use, a notice that says why first.
    fn username(&mut self, now: Instant, conn: ConnId, requested: &str) {
        let (reason, verdict) = match Username::parse(requested) {
            Err(broken) => (
                Some(protocol::invalid_username(broken)),
                ServerFrame::UsernameInvalid,
            ),
            // The name the room uses for unnamed participants is held by
            // the room: taken.
            Ok(name) if name.is_reserved() => (
                Some(protocol::name_reserved(username::ANONYMOUS)),
                ServerFrame::UsernameTaken,
            ),
            Ok(name) => match self.holder(&name).map(|(_, held)| (name.clash(held), held)) {
                Some((Some(Clash::LookAlike), held)) => (
                    Some(protocol::name_too_similar(held)),
                    ServerFrame::UsernameTaken,
                ),
                Some(_) => (None, ServerFrame::UsernameTaken),
                None => return self.accept_name(conn, name),
            },
        };
        self.tally.names_refused += 1;
        let Some(State::Naming {
            ceiling, refused, ..
        }) = self.conns.get(&conn).map(|c| &c.state)
        else {
            return;
        };
        let (ceiling, refused) = (*ceiling, refused.saturating_add(1));
        if refused > self.config.max_refused_names {
            tracing::info!(conn, refused, "too many refused names");
            let warning = protocol::too_many_names(self.config.max_refused_names);
            self.send_frame(conn, &warning);
            self.send_frame(conn, &ServerFrame::UsernameTimeout);
            self.close(conn, CloseReason::UsernameTimeout);
            return;
        }
        // A refused attempt restarts the clock, up to the ceiling.
        self.clear_deadline(conn);
        self.set_state(conn, self.naming(now, ceiling, refused));
        if let Some(reason) = reason {
            self.send_frame(conn, &reason);
        }
        self.send_frame(conn, &verdict);
    }

    /// `conn` is in the room as `name`.
    fn accept_name(&mut self, conn: ConnId, name: Username) {
        self.clear_deadline(conn);
        for key in name.keys() {
            self.names.insert(key.clone(), conn);
        }
        let joined = self.next_join;
        self.next_join += 1;
        self.roster.insert(joined, conn);
        self.members.insert(conn);
        self.member_list = None;
        self.send_frame(conn, &ServerFrame::UsernameAccepted);
        tracing::info!(conn, user = %name, "joined");
        self.broadcast(None, &protocol::joined(&name));
        self.set_state(conn, State::Active { name, joined });
    }

    fn chat(&mut self, conn: ConnId, line: &str) {
        match self.judge_line(conn, line) {
            Some(Said::Public(frame)) => {
                self.tally
                    .count_public(self.members.len().saturating_sub(1));
                self.broadcast(Some(conn), &frame);
            }
            Some(Said::Private(target, frame)) => {
                self.tally.count_private();
                self.send_frame(target, &frame);
            }
            Some(Said::Back(frame)) => self.send_frame(conn, &frame),
            None => {}
        }
    }

    /// What a member's line comes to, judged with the sender's name
    /// borrowed where it is kept (a line costs no copy of it).
    fn judge_line(&self, conn: ConnId, line: &str) -> Option<Said> {
        let Some(State::Active { name, .. }) = self.conns.get(&conn).map(|c| &c.state) else {
            return None;
        };
        let sender = name.as_str();
        if protocol::is_blank(line) {
            return None;
        }
        if line.chars().count() > MAX_MESSAGE_CHARS {
            return Some(Said::Back(protocol::too_long_warning()));
        }
        let Some(rest) = line.strip_prefix(PRIVATE_PREFIX) else {
            return Some(Said::Public(protocol::public_line(sender, line)));
        };
        if rest.is_empty() || rest.starts_with(' ') {
            return Some(Said::Back(protocol::private_needs_a_name()));
        }
        let Some((typed, _text)) = rest.split_once(' ') else {
            return Some(Said::Back(protocol::private_needs_a_space()));
        };
        // Addressed by the same comparison as names: `@Alice` and `@аlice`
        // reach `alice`.
        let target = Username::parse(typed)
            .ok()
            .and_then(|name| self.holder(&name).map(|(target, _)| target));
        Some(match target {
            Some(target) => Said::Private(target, protocol::private_line(sender, line)),
            None => Said::Back(protocol::no_such_user(typed)),
        })
    }

    fn violation(&mut self, conn: ConnId, reason: String) {
        tracing::info!(conn, %reason, "protocol violation");
        let frame = ServerFrame::ProtocolError(reason);
        self.close_with(conn, &frame, CloseReason::Violation);
    }

    /// Sends the connection its last frame, then closes it.
    fn close_with(&mut self, conn: ConnId, last: &ServerFrame, reason: CloseReason) {
        self.send_frame(conn, last);
        self.close(conn, reason);
    }

    /// Forgets the connection, asks the driver to close it, and tells the
    /// room if a participant left.
    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        if let Some(state) = self.forget(conn) {
            self.tally.count_close(reason);
            self.output.push_back(Output::Close { conn, reason });
            if reason != CloseReason::Shutdown {
                self.announce_left(conn, &state, EndReason::Disconnected);
            }
        }
    }

    /// Removes every trace of the connection and frees its slot. This is
    /// the instant the connection stops being part of the room: its slot
    /// and name are free for the next `Hello` or `Username` at once,
    /// whatever its socket still does (a dropped member's farewell may
    /// wait on its peer for the close linger). It is logged as `let go`
    /// with the connection's id, once per connection: the simulations read
    /// that event to judge who is in the room when a client cannot yet
    /// see its own close.
    fn forget(&mut self, conn: ConnId) -> Option<State> {
        self.clear_deadline(conn);
        let state = self.conns.remove(&conn)?.state;
        tracing::debug!(conn, "let go");
        self.releases.retain(|&(_, c)| c != conn);
        self.members.remove(&conn);
        self.member_list = None;
        match &state {
            State::Naming { .. } => self.participants -= 1,
            State::Active { name, joined } => {
                self.participants -= 1;
                for key in name.keys() {
                    self.names.remove(key);
                }
                self.roster.remove(joined);
            }
            State::Observer => self.observers -= 1,
            State::AwaitingHello { .. } => {}
        }
        Some(state)
    }

    fn announce_left(&mut self, conn: ConnId, state: &State, reason: EndReason) {
        let name = match state {
            State::Naming { .. } => username::ANONYMOUS,
            State::Active { name, .. } => name.as_str(),
            State::AwaitingHello { .. } | State::Observer => return,
        };
        tracing::info!(conn, user = %name, ?reason, "left");
        self.broadcast(None, &protocol::left(name));
    }

    fn set_state(&mut self, conn: ConnId, state: State) {
        if let State::AwaitingHello { deadline } | State::Naming { deadline, .. } = state {
            self.deadlines.insert((deadline, conn));
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = state;
        }
    }

    fn clear_deadline(&mut self, conn: ConnId) {
        if let Some(State::AwaitingHello { deadline } | State::Naming { deadline, .. }) =
            self.conns.get(&conn).map(|c| &c.state)
        {
            self.deadlines.remove(&(*deadline, conn));
        }
    }

    fn send_frame(&mut self, to: ConnId, frame: &ServerFrame) {
        if protocol::is_warning(frame) {
            self.tally.warnings += 1;
        }
        if let Some(frame) = encode(frame) {
            self.output.push_back(Output::Send { to, frame });
        }
    }

    /// Encodes once; every member but `except` gets the same bytes, in one
    /// output.
    fn broadcast(&mut self, except: Option<ConnId>, frame: &ServerFrame) {
        let Some(frame) = encode(frame) else {
            return;
        };
        let to = self
            .member_list
            .get_or_insert_with(|| self.members.iter().copied().collect())
            .clone();
        self.output
            .push_back(Output::Broadcast { to, except, frame });
    }
}

/// `now + timeout`, never panicking: a timeout past what `Instant` can
/// hold becomes [`FAR_FUTURE`] (and, should even that overflow, `now`
/// itself, which only makes the deadline fire at once).
pub(crate) fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// A frame's bytes, or `None` — logged, and the frame not sent — if it
/// cannot be one. Every frame the room builds is far under the limit (the
/// longest is a chat line: [`MAX_CHAT_PAYLOAD`] plus its prefix), so this
/// only guards against a future text without a bound.
fn encode(frame: &ServerFrame) -> Option<Bytes> {
    codec::encode(frame)
        .inspect_err(|e| tracing::error!(error = %e, "frame not sent"))
        .ok()
}

#[cfg(test)]
mod make_room_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
