//! An invariant-checking harness for the [`Room`]: drives it with arbitrary
//! event sequences and checks every output against a shadow model, so that
//! the property tests (`logosnet/tests/properties/room.rs`) and the
//! coverage-guided fuzz target (`fuzz/fuzz_targets/room_events.rs`) share
//! one oracle.
//!
//! The shadow model is built only from what a driver can see — the events it
//! fed in and the outputs that came back — and for each event it predicts,
//! per connection, exactly which frames the room must send and which
//! connections it must close (the username timer, its ceiling and the cap
//! on refused names included). Any difference panics with the event that
//! caused it. The frames are compared whole, texts included: the model
//! builds them with the same [`protocol`] functions the room is meant to
//! use, so it checks that the right text goes to the right connection
//! (the wording itself is pinned by `protocol::text`'s own tests). On top
//! of that exact comparison it checks the standing
//! invariants after every event: no two active participants whose names
//! clash (the same up to case, or look alike), the active names in the
//! order they joined, at
//! most the configured (≤ 255) connections per role, no frame to a closed or
//! never-opened connection, chat reaching only the room (private lines only
//! their target), "has left" announced exactly once per departing
//! participant, the next deadline being the earliest one held, and each
//! connection's frame limit being the one for its state, and a reused
//! connection id being refused without effect.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use logosnet::codec::{FrameDecoder, decode_payload};
use logosnet::protocol::{
    self, ClientFrame, FrameError, MAX_FRAME_BYTES, MAX_MESSAGE_CHARS, PRIVATE_PREFIX, Role,
    ServerFrame,
};
use logosnet::room::{
    ConnId, EndReason, HELLO_LIMIT, MEMBER_LIMIT, NAMING_LIMIT, Output, Room, RoomConfig,
};
use logosnet::username::{ANONYMOUS, Clash, Username};

/// Names the events draw from, so that collisions, normalization twins,
/// look-alikes, the reserved name and invalid names turn up often rather
/// than by luck.
pub const NAME_POOL: &[&str] = &[
    "alice",
    "\u{430}lice",
    "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
    "alice\u{fe0f}",
    "Anonymous",
    "anonymous",
    "\u{3164}",
    "\u{2800}",
    "b0b",
    "bOb",
    "bob",
    "Bob",
    "jos\u{e9}",
    "jose\u{301}",
    "ten_chars_",
    "elevenchars",
    "名前",
    "",
    "a b",
    "a\0b",
    "\u{202e}evil",
    "\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}",
    "\u{1b}[2J",
    "Alice",
    "ALICE",
    "a1ice",
    "Ian",
    "lan",
    "ian",
    "@bob",
    ">bob:",
    "%x",
    "a:b",
];

/// Largest clock jump one event makes: past both 60 s timeouts.
pub const MAX_JUMP_MILLIS: u32 = 130_000;

/// Most connections one [`Event::OpenMany`] opens: enough to fill a role.
pub const MAX_OPEN_MANY: u16 = 300;

/// A whole run: the room's limits and what happens to it.
#[derive(Debug, Clone, arbitrary::Arbitrary)]
pub struct Scenario {
    /// 0 means the spec's limits (255 each); otherwise `1 + n % 3` of each
    /// role, so that `Full` is reached quickly.
    pub capacity: u8,
    /// The events, in order.
    pub events: Vec<Event>,
}

/// One thing that happens to the room. A connection is named by a `u16`:
/// three times in four it picks one still open, otherwise one from every id
/// opened so far or an id that was never opened.
#[derive(Debug, Clone, arbitrary::Arbitrary)]
pub enum Event {
    /// A connection is accepted.
    Open,
    /// Up to [`MAX_OPEN_MANY`] connections are accepted, each sends `Hello`.
    OpenMany {
        /// How many (taken modulo [`MAX_OPEN_MANY`] + 1).
        count: u16,
        /// Hello as an observer rather than a participant.
        observer: bool,
    },
    /// A connection is accepted, says `Hello` as a participant and asks
    /// for a name.
    Join(NameChoice),
    /// A well-formed frame arrives.
    Frame {
        /// Which connection.
        conn: u16,
        /// What it says.
        frame: FrameChoice,
    },
    /// A raw payload arrives: decoded as the driver would, so an
    /// undecodable one is a violation.
    Raw {
        /// Which connection.
        conn: u16,
        /// The payload bytes (after the header).
        payload: Vec<u8>,
    },
    /// A connection asks for an invalid name this many times in a row
    /// (modulo 13), enough to pass the cap on refusals.
    Squat {
        /// Which connection.
        conn: u16,
        /// How many attempts.
        attempts: u8,
    },
    /// A frame over the connection's limit went by, skipped unread.
    Oversized {
        /// Which connection.
        conn: u16,
        /// Its length, past the member limit (taken modulo the span up to
        /// the protocol's maximum).
        len: u16,
    },
    /// The framing layer reports a violation.
    Violation {
        /// Which connection.
        conn: u16,
        /// Which violation.
        kind: ViolationKind,
    },
    /// The connection ends from the driver's side.
    Close {
        /// Which connection.
        conn: u16,
        /// Dropped as a slow consumer rather than disconnected.
        slow: bool,
    },
    /// The clock moves forward (modulo [`MAX_JUMP_MILLIS`] + 1 ms) and
    /// deadlines are handled.
    Advance {
        /// How far.
        millis: u32,
    },
    /// The driver opens the id of a connection still open (a driver bug
    /// the room must refuse without effect).
    Reopen {
        /// Which connection's id.
        conn: u16,
    },
    /// The server shuts down.
    Shutdown,
}

/// A well-formed client frame, with strings biased towards interesting ones.
#[derive(Debug, Clone, arbitrary::Arbitrary)]
pub enum FrameChoice {
    /// `Hello`.
    Hello {
        /// Observer rather than participant.
        observer: bool,
    },
    /// `Username`.
    Username(NameChoice),
    /// `Chat`.
    Chat(LineChoice),
    /// `Who`.
    Who,
}

/// A name: one of [`NAME_POOL`] or anything.
#[derive(Debug, Clone, arbitrary::Arbitrary)]
pub enum NameChoice {
    /// `NAME_POOL[i % len]`.
    Pool(u8),
    /// Any string.
    Raw(String),
}

/// A chat line.
#[derive(Debug, Clone, arbitrary::Arbitrary)]
pub enum LineChoice {
    /// Any text, sent as it is (it may itself start with `@`).
    Text(String),
    /// `@name text`.
    Private {
        /// The addressee as typed.
        to: NameChoice,
        /// What follows the space.
        text: String,
    },
    /// `@name` with no space: not deliverable.
    AtWithoutSpace(NameChoice),
    /// A line of `MAX_MESSAGE_CHARS - 1 + n % 3` characters, either side of
    /// the limit.
    Long {
        /// Selects the length.
        n: u8,
        /// Use a 4-byte character instead of ASCII.
        wide: bool,
    },
}

/// A framing violation.
#[derive(Debug, Clone, arbitrary::Arbitrary)]
pub enum ViolationKind {
    /// Length 0.
    Empty,
    /// A length over the maximum.
    TooLong(u32),
    /// An undecodable payload.
    Undecodable,
}

impl NameChoice {
    fn text(&self) -> String {
        match self {
            NameChoice::Pool(i) => NAME_POOL[*i as usize % NAME_POOL.len()].to_owned(),
            NameChoice::Raw(s) => s.clone(),
        }
    }
}

impl LineChoice {
    fn text(&self) -> String {
        match self {
            LineChoice::Text(s) => s.clone(),
            LineChoice::Private { to, text } => format!("@{} {text}", to.text()),
            LineChoice::AtWithoutSpace(to) => format!("@{}", to.text()).replace(' ', "_"),
            LineChoice::Long { n, wide } => {
                let c = if *wide { '🦀' } else { 'x' };
                std::iter::repeat_n(c, MAX_MESSAGE_CHARS - 1 + *n as usize % 3).collect()
            }
        }
    }
}

impl FrameChoice {
    fn frame(&self) -> ClientFrame {
        match self {
            FrameChoice::Hello { observer } => ClientFrame::Hello(role(*observer)),
            FrameChoice::Username(name) => ClientFrame::Username(name.text()),
            FrameChoice::Chat(line) => ClientFrame::Chat(line.text()),
            FrameChoice::Who => ClientFrame::Who,
        }
    }
}

impl ViolationKind {
    fn error(&self) -> FrameError {
        match self {
            ViolationKind::Empty => FrameError::Empty,
            ViolationKind::TooLong(n) => {
                FrameError::TooLong((*n).max(protocol::MAX_FRAME_BYTES as u32 + 1))
            }
            ViolationKind::Undecodable => FrameError::Undecodable("audit"),
        }
    }
}

fn role(observer: bool) -> Role {
    if observer {
        Role::Observer
    } else {
        Role::Participant
    }
}

/// What the model knows about one live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    AwaitingHello,
    Naming,
    /// Named: the name as shown and when it joined (a count of joins).
    Active(String, u64),
    Observer,
}

#[derive(Debug, Clone)]
struct Shadow {
    /// Where it is in the protocol.
    phase: Phase,
    /// Its Hello or username deadline, if it has one.
    deadline: Option<Instant>,
    /// While naming: the latest the deadline may be.
    ceiling: Option<Instant>,
    /// While naming: the names refused so far.
    refused: u32,
}

impl Shadow {
    fn new(phase: Phase, deadline: Option<Instant>) -> Self {
        Self {
            phase,
            deadline,
            ceiling: None,
            refused: 0,
        }
    }
}

/// What one event must produce: frames per recipient, in order, and the
/// connections closed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Effects {
    /// Frames per recipient, in order.
    sent: BTreeMap<ConnId, Vec<ServerFrame>>,
    /// Connections the room closes.
    closed: BTreeSet<ConnId>,
}

impl Effects {
    fn send(&mut self, to: ConnId, frame: ServerFrame) {
        self.sent.entry(to).or_default().push(frame);
    }
}

/// Drives a [`Room`] and checks it against the shadow model; panics on the
/// first discrepancy. See the module docs.
#[derive(Debug)]
pub struct Auditor {
    /// The room under test.
    room: Room,
    /// Its limits, for the model.
    config: RoomConfig,
    /// The clock the events move.
    now: Instant,
    /// The id the next open gets.
    next_id: ConnId,
    /// Every id opened, in order.
    opened: Vec<ConnId>,
    /// The model of every connection still open.
    live: BTreeMap<ConnId, Shadow>,
    /// Connections the room closed or the driver reported ended.
    ended: BTreeSet<ConnId>,
    /// Those of them that ended during the current event.
    ended_now: BTreeSet<ConnId>,
    /// Admitted participants whose departure has not been announced yet.
    owed_left: BTreeSet<ConnId>,
    /// Participants whose departure was announced.
    departures: usize,
    /// Events applied so far.
    events_run: usize,
    /// Names accepted so far: the next join's place in the roster.
    joins: u64,
}

/// The id used for "a connection that was never opened".
const NEVER_OPENED: ConnId = ConnId::MAX;

impl Auditor {
    /// A fresh room with the scenario's limits. Flood control is off: the
    /// model checks the rules of the room, and the flood rule's own
    /// properties (order kept, nothing lost, exact instants) are tested in
    /// `room::proptests` and `room::flood`.
    pub fn new(capacity: u8) -> Self {
        let unlimited = RoomConfig {
            flood: None,
            ..RoomConfig::default()
        };
        let config = if capacity == 0 {
            unlimited
        } else {
            let n = 1 + capacity as usize % 3;
            RoomConfig {
                max_participants: n,
                max_observers: n,
                ..unlimited
            }
        };
        Self {
            room: Room::new(config.clone()),
            config,
            now: Instant::now(),
            next_id: 1,
            opened: Vec::new(),
            live: BTreeMap::new(),
            ended: BTreeSet::new(),
            ended_now: BTreeSet::new(),
            owed_left: BTreeSet::new(),
            departures: 0,
            events_run: 0,
            joins: 0,
        }
    }

    /// Runs a whole scenario, checking after every event.
    pub fn run(scenario: &Scenario) -> Self {
        let mut auditor = Self::new(scenario.capacity);
        for event in &scenario.events {
            auditor.apply(event);
        }
        auditor.finish();
        auditor
    }

    /// Events applied so far.
    pub fn events_run(&self) -> usize {
        self.events_run
    }

    /// Participants whose departure was announced (each exactly once).
    pub fn departures(&self) -> usize {
        self.departures
    }

    /// Ends every connection still open, then checks that every participant
    /// ever admitted had its departure announced exactly once (except those
    /// a shutdown closed, which is announced to no one).
    pub fn finish(&mut self) {
        let live: Vec<ConnId> = self.live.keys().copied().collect();
        for conn in live {
            let event = Event::Close {
                conn: 0,
                slow: false,
            };
            self.closed(conn, false, &event);
            self.check_standing(&event);
        }
        assert!(
            self.owed_left.is_empty(),
            "participants never announced as left: {:?}",
            self.owed_left
        );
        assert_eq!(self.room.connections(), 0);
        assert_eq!(self.room.poll_timeout(), None);
    }

    /// Feeds one event to the room and checks what comes out.
    pub fn apply(&mut self, event: &Event) {
        self.events_run += 1;
        match event {
            Event::Open => {
                self.open();
            }
            Event::OpenMany { count, observer } => {
                for _ in 0..(*count % (MAX_OPEN_MANY + 1)) {
                    let conn = self.open();
                    self.frame(conn, ClientFrame::Hello(role(*observer)), event);
                }
            }
            Event::Join(name) => {
                let conn = self.open();
                self.frame(conn, ClientFrame::Hello(Role::Participant), event);
                self.frame(conn, ClientFrame::Username(name.text()), event);
            }
            Event::Frame { conn, frame } => {
                let conn = self.pick(*conn);
                self.frame(conn, frame.frame(), event);
            }
            Event::Raw { conn, payload } => {
                let conn = self.pick(*conn);
                match decode_payload::<ClientFrame>(payload) {
                    Ok(frame) => self.frame(conn, frame, event),
                    Err(error) => self.violation(conn, &error, event),
                }
            }
            Event::Squat { conn, attempts } => {
                let conn = self.pick(*conn);
                for _ in 0..attempts % 13 {
                    self.frame(conn, ClientFrame::Username("a b".into()), event);
                }
            }
            Event::Oversized { conn, len } => {
                let conn = self.pick(*conn);
                let span = MAX_FRAME_BYTES - MEMBER_LIMIT.max_payload;
                let len = MEMBER_LIMIT.max_payload + 1 + *len as usize % span;
                self.oversized(conn, len, event);
            }
            Event::Violation { conn, kind } => {
                let conn = self.pick(*conn);
                self.violation(conn, &kind.error(), event);
            }
            Event::Close { conn, slow } => {
                let conn = self.pick(*conn);
                self.closed(conn, *slow, event);
            }
            Event::Advance { millis } => {
                let by = Duration::from_millis(u64::from(*millis % (MAX_JUMP_MILLIS + 1)));
                self.advance(by, event);
            }
            Event::Reopen { conn } => {
                // Only a live id: one that ended is forgotten by the room,
                // and reusing it is a driver bug the room cannot see.
                let conn = self.pick(*conn);
                if self.live.contains_key(&conn) {
                    assert!(
                        !self.room.handle_open(self.now, conn),
                        "the reused live id {conn} was taken"
                    );
                    self.expect(Effects::default(), event);
                }
            }
            Event::Shutdown => self.shutdown(event),
        }
        self.check_standing(event);
    }

    /// For testing the oracle itself: the room shuts down without the model
    /// knowing, so the next event's output cannot match.
    pub fn inject_behind_the_model(&mut self) {
        self.room.shutdown(self.now);
    }

    fn pick(&self, index: u16) -> ConnId {
        let (which, index) = (index % 4, index as usize / 4);
        if which != 0
            && !self.live.is_empty()
            && let Some(&conn) = self.live.keys().nth(index % self.live.len())
        {
            return conn;
        }
        let index = index % (self.opened.len() + 1);
        self.opened.get(index).copied().unwrap_or(NEVER_OPENED)
    }

    fn open(&mut self) -> ConnId {
        let conn = self.next_id;
        self.next_id += 1;
        self.opened.push(conn);
        assert!(
            self.room.handle_open(self.now, conn),
            "a new id was refused"
        );
        self.live.insert(
            conn,
            Shadow::new(
                Phase::AwaitingHello,
                Some(self.now + self.config.hello_timeout),
            ),
        );
        self.expect(Effects::default(), &Event::Open);
        conn
    }

    fn frame(&mut self, conn: ConnId, frame: ClientFrame, event: &Event) {
        let mut want = Effects::default();
        if let Some(shadow) = self.live.get(&conn).cloned() {
            self.predict_frame(conn, &shadow.phase, &frame, &mut want);
        }
        self.room.handle_frame(self.now, conn, frame);
        self.expect(want, event);
    }

    fn predict_frame(
        &mut self,
        conn: ConnId,
        phase: &Phase,
        frame: &ClientFrame,
        want: &mut Effects,
    ) {
        match (phase, frame) {
            (Phase::AwaitingHello, ClientFrame::Hello(role)) => {
                let (held, max) = match role {
                    Role::Participant => (self.count_participants(), self.config.max_participants),
                    Role::Observer => (self.count_observers(), self.config.max_observers),
                };
                if held >= max {
                    want.send(conn, ServerFrame::Full);
                    self.end(conn, want, true);
                } else {
                    want.send(conn, ServerFrame::Accepted);
                    let shadow = match role {
                        Role::Participant => {
                            self.owed_left.insert(conn);
                            let ceiling = self.now + self.config.naming_ceiling;
                            Shadow {
                                ceiling: Some(ceiling),
                                ..Shadow::new(Phase::Naming, Some(self.naming_deadline(ceiling)))
                            }
                        }
                        Role::Observer => Shadow::new(Phase::Observer, None),
                    };
                    self.live.insert(conn, shadow);
                }
            }
            (Phase::AwaitingHello, _) => {
                want.send(conn, protocol::first_frame_must_be_hello());
                self.end(conn, want, true);
            }
            (Phase::Naming, ClientFrame::Username(requested)) => {
                let (reason, reply) = match Username::parse(requested) {
                    Err(broken) => (
                        Some(protocol::invalid_username(broken)),
                        ServerFrame::UsernameInvalid,
                    ),
                    Ok(name) if name.is_reserved() => (
                        Some(protocol::name_reserved(ANONYMOUS)),
                        ServerFrame::UsernameTaken,
                    ),
                    Ok(name) => match self.holder(&name) {
                        Some((_, held)) => match name.clash(&held) {
                            Some(Clash::LookAlike) => (
                                Some(protocol::name_too_similar(&held)),
                                ServerFrame::UsernameTaken,
                            ),
                            Some(Clash::Same) => (None, ServerFrame::UsernameTaken),
                            None => panic!("{name} does not clash with its holder {held}"),
                        },
                        None => {
                            want.send(conn, ServerFrame::UsernameAccepted);
                            let joined = self.joins;
                            self.joins += 1;
                            let phase = Phase::Active(name.to_string(), joined);
                            self.live.insert(conn, Shadow::new(phase, None));
                            let joined = protocol::joined(&name);
                            for member in self.members() {
                                want.send(member, joined.clone());
                            }
                            return;
                        }
                    },
                };
                let Some(shadow) = self.live.get(&conn).cloned() else {
                    return;
                };
                let refused = shadow.refused + 1;
                if refused > self.config.max_refused_names {
                    want.send(
                        conn,
                        protocol::too_many_names(self.config.max_refused_names),
                    );
                    want.send(conn, ServerFrame::UsernameTimeout);
                    self.end(conn, want, true);
                    return;
                }
                if let Some(reason) = reason {
                    want.send(conn, reason);
                }
                want.send(conn, reply);
                let ceiling = shadow.ceiling.expect("a naming participant has a ceiling");
                let deadline = self.naming_deadline(ceiling);
                if let Some(shadow) = self.live.get_mut(&conn) {
                    shadow.deadline = Some(deadline);
                    shadow.refused = refused;
                }
            }
            (Phase::Active(sender, _), ClientFrame::Chat(line)) => {
                self.predict_chat(conn, sender, line, want);
            }
            // Any member may ask who is here; only the asker is answered.
            (Phase::Active(..) | Phase::Observer, ClientFrame::Who) => {
                let roster = ServerFrame::Roster {
                    participants: self.active_names(),
                    observers: self.count_observers() as u32,
                };
                want.send(conn, roster);
            }
            (Phase::Naming, ClientFrame::Who) => want.send(conn, protocol::who_before_a_name()),
            // Everything else out of place: a warning to the sender alone.
            (Phase::Observer, _) => want.send(conn, protocol::observers_only_read()),
            (Phase::Naming | Phase::Active(..), ClientFrame::Hello(_)) => {
                want.send(conn, protocol::hello_again());
            }
            (Phase::Naming, ClientFrame::Chat(_)) => {
                want.send(conn, protocol::choose_a_username_first());
            }
            (Phase::Active(..), ClientFrame::Username(_)) => {
                want.send(conn, protocol::already_named());
            }
        }
    }

    fn predict_chat(&self, conn: ConnId, sender: &str, line: &str, want: &mut Effects) {
        if protocol::is_blank(line) {
            return;
        }
        if line.chars().count() > MAX_MESSAGE_CHARS {
            want.send(conn, protocol::too_long_warning());
            return;
        }
        let Some(rest) = line.strip_prefix(PRIVATE_PREFIX) else {
            let frame = protocol::public_line(sender, line);
            for member in self.members() {
                if member != conn {
                    want.send(member, frame.clone());
                }
            }
            return;
        };
        // The name runs to the first space; `@ hi` and `@` alone name
        // nobody (PROTOCOL.md, section 6).
        if rest.split(' ').next().is_none_or(str::is_empty) {
            want.send(conn, protocol::private_needs_a_name());
            return;
        }
        let Some((typed, _)) = rest.split_once(' ') else {
            want.send(conn, protocol::private_needs_a_space());
            return;
        };
        let target = Username::parse(typed)
            .ok()
            .and_then(|typed| self.holder(&typed));
        match target {
            Some((target, _)) => want.send(target, protocol::private_line(sender, line)),
            None => want.send(conn, protocol::no_such_user(typed)),
        }
    }

    /// The username timeout from now, cut at the ceiling.
    fn naming_deadline(&self, ceiling: Instant) -> Instant {
        (self.now + self.config.username_timeout).min(ceiling)
    }

    fn oversized(&mut self, conn: ConnId, len: usize, event: &Event) {
        let mut want = Effects::default();
        match self.live.get(&conn).map(|s| &s.phase) {
            Some(Phase::Active(..)) => want.send(conn, protocol::too_long_warning()),
            Some(Phase::Observer) => want.send(conn, protocol::observers_only_read()),
            Some(phase) => {
                let limit = if *phase == Phase::Naming {
                    NAMING_LIMIT
                } else {
                    HELLO_LIMIT
                };
                let error = FrameError::OverLimit {
                    len: len as u32,
                    limit: limit.max_payload,
                    when: limit.when,
                };
                want.send(conn, ServerFrame::ProtocolError(error.reason()));
                self.end(conn, &mut want, true);
            }
            None => {}
        }
        self.room.handle_oversized(self.now, conn, len);
        self.expect(want, event);
    }

    fn violation(&mut self, conn: ConnId, error: &FrameError, event: &Event) {
        let mut want = Effects::default();
        if self.live.contains_key(&conn) {
            want.send(conn, ServerFrame::ProtocolError(error.reason()));
            self.end(conn, &mut want, true);
        }
        self.room.handle_violation(self.now, conn, error);
        self.expect(want, event);
    }

    fn closed(&mut self, conn: ConnId, slow: bool, event: &Event) {
        let mut want = Effects::default();
        if self.live.contains_key(&conn) {
            self.end(conn, &mut want, false);
        }
        let reason = if slow {
            EndReason::SlowConsumer
        } else {
            EndReason::Disconnected
        };
        self.room.handle_closed(self.now, conn, reason);
        self.expect(want, event);
    }

    fn advance(&mut self, by: Duration, event: &Event) {
        self.now += by;
        let mut expired: Vec<(Instant, ConnId)> = self
            .live
            .iter()
            .filter_map(|(&conn, s)| s.deadline.filter(|&d| d <= self.now).map(|d| (d, conn)))
            .collect();
        expired.sort();
        let mut want = Effects::default();
        for (_, conn) in expired {
            let reply = match self.live.get(&conn).map(|s| &s.phase) {
                Some(Phase::AwaitingHello) => protocol::no_hello_within(self.config.hello_timeout),
                _ => ServerFrame::UsernameTimeout,
            };
            want.send(conn, reply);
            self.end(conn, &mut want, true);
        }
        self.room.handle_timeout(self.now);
        self.expect(want, event);
    }

    fn shutdown(&mut self, event: &Event) {
        let mut want = Effects::default();
        let all: Vec<ConnId> = self.live.keys().copied().collect();
        for conn in all {
            want.send(conn, protocol::shutdown_notice());
            want.closed.insert(conn);
            self.live.remove(&conn);
            self.ended.insert(conn);
            self.ended_now.insert(conn);
            self.owed_left.remove(&conn);
        }
        self.room.shutdown(self.now);
        self.expect(want, event);
    }

    /// The connection leaves the model; a participant's departure is
    /// announced to the room that remains.
    fn end(&mut self, conn: ConnId, want: &mut Effects, room_closes: bool) {
        let Some(shadow) = self.live.remove(&conn) else {
            return;
        };
        self.ended.insert(conn);
        self.ended_now.insert(conn);
        if room_closes {
            want.closed.insert(conn);
        }
        let name = match &shadow.phase {
            Phase::Naming => ANONYMOUS.to_owned(),
            Phase::Active(name, _) => name.clone(),
            Phase::AwaitingHello | Phase::Observer => return,
        };
        let left = protocol::left(&name);
        for member in self.members() {
            want.send(member, left.clone());
        }
        assert!(
            self.owed_left.remove(&conn),
            "conn {conn} announced as left twice"
        );
        self.departures += 1;
    }

    fn members(&self) -> Vec<ConnId> {
        self.live
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::Active(..) | Phase::Observer))
            .map(|(&c, _)| c)
            .collect()
    }

    /// The active participant a name (requested, or typed after `@`)
    /// clashes with, by a scan of every active name: the one that has the
    /// name's first key if any (the same name up to case, or a lower-case
    /// look-alike), otherwise the one that has its second.
    fn holder(&self, name: &Username) -> Option<(ConnId, Username)> {
        let active: Vec<(ConnId, Username)> = self
            .live
            .iter()
            .filter_map(|(&conn, s)| match &s.phase {
                Phase::Active(held, _) => {
                    Some((conn, Username::parse(held).expect("active names are valid")))
                }
                _ => None,
            })
            .collect();
        name.keys()
            .iter()
            .find_map(|key| active.iter().find(|(_, held)| held.keys().contains(key)))
            .cloned()
    }

    /// The active names as shown, in the order they joined.
    fn active_names(&self) -> Vec<String> {
        let mut active: Vec<(u64, String)> = self
            .live
            .values()
            .filter_map(|s| match &s.phase {
                Phase::Active(name, joined) => Some((*joined, name.clone())),
                _ => None,
            })
            .collect();
        active.sort();
        active.into_iter().map(|(_, name)| name).collect()
    }

    fn count_participants(&self) -> usize {
        self.live
            .values()
            .filter(|s| matches!(s.phase, Phase::Naming | Phase::Active(..)))
            .count()
    }

    fn count_observers(&self) -> usize {
        self.live
            .values()
            .filter(|s| s.phase == Phase::Observer)
            .count()
    }

    /// Drains the room's output and compares it with the prediction, frame
    /// for frame.
    fn expect(&mut self, want: Effects, event: &Event) {
        let mut got = Effects::default();
        while let Some(output) = self.room.poll_output() {
            match output {
                Output::Send { .. } | Output::Broadcast { .. } => {
                    for (to, frame) in output.deliveries() {
                        assert!(
                            !self.ended.contains(&to) || self.ended_now.contains(&to),
                            "frame to conn {to}, which had already ended, on {event:?}"
                        );
                        assert!(
                            !got.closed.contains(&to),
                            "frame to conn {to} after its close, on {event:?}"
                        );
                        // Ids are handed out in order from 1.
                        assert!(
                            (1..self.next_id).contains(&to),
                            "frame to never-opened conn {to}, on {event:?}"
                        );
                        let mut decoder = FrameDecoder::new();
                        decoder.extend(frame);
                        let decoded: ServerFrame = decoder
                            .next_frame()
                            .expect("the room sends only decodable frames")
                            .expect("one whole frame");
                        assert_eq!(decoder.buffered(), 0, "one whole frame, nothing after it");
                        got.send(to, decoded);
                    }
                }
                Output::Close { conn, .. } => {
                    assert!(
                        !self.ended.contains(&conn) || self.ended_now.contains(&conn),
                        "close of conn {conn}, which had already ended, on {event:?}"
                    );
                    assert!(
                        got.closed.insert(conn),
                        "conn {conn} closed twice, on {event:?}"
                    );
                }
            }
        }
        self.ended_now.clear();
        assert_eq!(got, want, "room output differs from the model on {event:?}");
    }

    fn check_standing(&self, event: &Event) {
        let participants = self.count_participants();
        let observers = self.count_observers();
        assert!(participants <= self.config.max_participants.min(255));
        assert!(observers <= self.config.max_observers.min(255));
        assert_eq!(
            (self.room.participants(), self.room.observers()),
            (participants, observers),
            "slot counts after {event:?}"
        );
        assert_eq!(
            self.room.connections(),
            self.live.len(),
            "live connections after {event:?}"
        );
        let names: Vec<&str> = self.room.names().collect();
        let parsed: Vec<Username> = names
            .iter()
            .map(|name| Username::parse(name).expect("active names are valid"))
            .collect();
        for (i, a) in parsed.iter().enumerate() {
            for b in &parsed[i + 1..] {
                assert_eq!(
                    a.clash(b),
                    None,
                    "{a} and {b} are both active after {event:?}"
                );
            }
        }
        assert!(
            names
                .iter()
                .all(|name| !Username::parse(name).is_ok_and(|n| n.is_reserved())),
            "the reserved name is active after {event:?}"
        );
        assert_eq!(
            names,
            self.active_names(),
            "active names, in the order they joined, after {event:?}"
        );
        let earliest = self.live.values().filter_map(|s| s.deadline).min();
        assert_eq!(
            self.room.poll_timeout(),
            earliest,
            "next deadline after {event:?}"
        );
        for (&conn, shadow) in &self.live {
            let limit = match shadow.phase {
                Phase::AwaitingHello => HELLO_LIMIT,
                Phase::Naming => NAMING_LIMIT,
                Phase::Active(..) | Phase::Observer => MEMBER_LIMIT,
            };
            assert_eq!(
                self.room.frame_limit(conn),
                limit,
                "frame limit of {conn} after {event:?}"
            );
        }
    }
}
