//! An invariant-checking harness for the [`Room`]: drives it with arbitrary
//! event sequences and holds every output against an independent model of
//! the room, so that the property tests (`logosnet/tests/properties/room.rs`)
//! and the coverage-guided fuzz target (`fuzz/fuzz_targets/room_events.rs`)
//! share one oracle.
//!
//! The model ([`model`]) is written from docs/PROTOCOL.md and shares no
//! code with the room: its own account of who is open and in which phase
//! and of the order names were accepted in (the roster), its own name rule
//! ([`names`]: NFC, the character classes, the line marks, case folding,
//! the two look-alike keys, the reserved name, and which clause a refusal
//! names), its own wording of every text ([`texts`], the refusal reasons
//! included) and its own flood allowance ([`allowance`]). It also knows
//! the doors' part: the per-state frame limits, padded (overlong) varints
//! and making room when every socket is taken. For each event
//! it says exactly which frames go to which connection, in order, and
//! which connections the room closes; the frames are compared whole, texts
//! included (a `Broadcast` counts as its frame to each of its recipients,
//! in order, read through `Output::deliveries` as a driver queues them),
//! and any difference panics with the event that caused it.
//! Flood control runs on as well as off (see [`Scenario::flood`]), so
//! frames held back by it meet closes, timeouts, violations and shutdown.
//!
//! The auditor plays the driver: a raw payload is judged against the
//! connection's frame limit before it is decoded, as the server's reader
//! does (a member's longer one skipped, anyone else's a violation), and
//! only then decoded with the codec's `decode_payload`; a padded payload
//! is built by the auditor itself, and the model says what must become of
//! it without asking the decoder.
//!
//! On top of that exact comparison it checks the standing invariants after
//! every event: the slot counts, the open connections and the active names
//! (in the order they joined) are the model's; no two active names clash
//! and none is the reserved one; at most the configured (≤ 255) connections
//! per role; no frame to a
//! connection that was not open, none after its close; the next instant
//! the room asks to be called is the model's; each connection's frame
//! limit is the one for its phase and it is throttled exactly while the
//! model holds its input; and a reused connection id is refused without
//! effect. At the end every admitted participant's departure has been
//! announced exactly once (save those a shutdown closed).

mod allowance;
mod model;
mod names;
mod texts;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use logosnet::codec::{FrameDecoder, Oversize, decode_payload};
use logosnet::protocol::{
    self, ClientFrame, FrameError, MAX_FRAME_BYTES, MAX_MESSAGE_CHARS, Role, ServerFrame,
};
use logosnet::room::flood::FloodLimit;
use logosnet::room::{ConnId, EndReason, Output, Room, RoomConfig};

use allowance::Allowance;
use model::{Effects, Input, Model, Rules};

/// Names the events draw from, so that collisions, case variants,
/// normalization twins, look-alikes (within a case and across it), the
/// reserved name, names that imitate a room line and other invalid names
/// turn up often rather than by luck.
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
    "\u{392}\u{39f}\u{392}",
    "STRASSE",
    "stra\u{df}e",
    "aNoNyMoUs",
    "@bob",
    "\u{ff20}bob",
    ">bob:",
    "%x",
    "a:b",
    "a\u{2236}b",
    "a@b",
    "50%",
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
    /// Flood control, taken modulo 4: off; the spec's (a burst of 10, then
    /// 5 a second); a burst of 1 at 1 a second; a burst of 3 at 2 a second
    /// (the last two hold frames within a few events).
    pub flood: u8,
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
    /// A connection is accepted while every socket is taken, and the
    /// driver asks the room to make room for it (`Room::make_room_for`).
    Crowded {
        /// `None`: the connection just accepted, as the driver does; or a
        /// connection picked as for any event, which the room's contract
        /// also allows (only those older than it may make room).
        newcomer: Option<u16>,
    },
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
    /// A raw payload arrives: judged against the connection's frame limit
    /// and decoded as the driver would, so an undecodable one is a
    /// violation.
    Raw {
        /// Which connection.
        conn: u16,
        /// The payload bytes (after the header).
        payload: Vec<u8>,
    },
    /// A well-formed frame arrives with one of its varints padded by a
    /// continuation byte (`80 00` for 0): overlong, a violation (§2).
    Padded {
        /// Which connection.
        conn: u16,
        /// The frame.
        frame: FrameChoice,
        /// Which of its varints (the variant index, the role's index or
        /// the string's length), taken modulo how many it has.
        varint: u8,
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
    /// deadlines are handled: a driver that woke late, everything due in
    /// between handled in one call.
    Advance {
        /// How far.
        millis: u32,
    },
    /// The clock moves to the instant the room next needs a call (the
    /// model's reckoning of it), or a nanosecond before it, and the room
    /// is called: a driver that wakes on time, and the edge of every timer.
    Wake {
        /// A nanosecond early: nothing may happen yet.
        early: bool,
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
    /// A frame begun and not finished in time.
    Unfinished,
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
            ViolationKind::Unfinished => FrameError::Unfinished(Duration::from_secs(60)),
        }
    }
}

/// `frame`'s payload as §2 spells it, with its `which`th varint (modulo
/// how many it has) padded to one byte more than it needs.
fn padded_payload(frame: &ClientFrame, which: u8) -> Vec<u8> {
    let (index, role, text) = match frame {
        ClientFrame::Hello(Role::Participant) => (0, Some(0), None),
        ClientFrame::Hello(Role::Observer) => (0, Some(1), None),
        ClientFrame::Username(text) => (1, None, Some(text.as_bytes())),
        ClientFrame::Chat(text) => (2, None, Some(text.as_bytes())),
        ClientFrame::Who => (3, None, None),
    };
    let varints = 1 + usize::from(role.is_some() || text.is_some());
    let pad = usize::from(which) % varints;
    let mut payload = Vec::new();
    let second = role.or(text.map(<[u8]>::len));
    for (i, value) in std::iter::once(index).chain(second).enumerate() {
        let mut rest = value;
        loop {
            let low = (rest & 0x7f) as u8;
            rest >>= 7;
            if rest == 0 {
                if i == pad {
                    payload.extend([low | 0x80, 0]);
                } else {
                    payload.push(low);
                }
                break;
            }
            payload.push(low | 0x80);
        }
    }
    payload.extend_from_slice(text.unwrap_or_default());
    payload
}

fn role(observer: bool) -> Role {
    if observer {
        Role::Observer
    } else {
        Role::Participant
    }
}

/// The flood settings a scenario picks from: `(lines a second, burst)`.
const FLOOD_SETTINGS: [Option<(u32, u32)>; 4] = [None, Some((5, 10)), Some((1, 1)), Some((2, 3))];

/// Drives a [`Room`] and checks it against the model; panics on the first
/// discrepancy. See the module docs.
#[derive(Debug)]
pub struct Auditor {
    /// The room under test.
    room: Room,
    /// What it should do.
    model: Model,
    /// The clock the events move.
    now: Instant,
    /// The id the next open gets.
    next_id: ConnId,
    /// Every id opened, in order.
    opened: Vec<ConnId>,
    /// Connections open when the current event began, or opened by it:
    /// the only ones the room may send to or close during it.
    reachable: BTreeSet<ConnId>,
}

/// The id used for "a connection that was never opened".
const NEVER_OPENED: ConnId = ConnId::MAX;

impl Auditor {
    /// A fresh room with the given limits (see [`Scenario`]).
    pub fn new(capacity: u8, flood: u8) -> Self {
        let setting = FLOOD_SETTINGS[usize::from(flood) % FLOOD_SETTINGS.len()];
        let mut config = RoomConfig {
            flood: setting.and_then(|(rate, burst)| FloodLimit::new(rate, burst)),
            ..RoomConfig::default()
        };
        // The spec's numbers, typed from docs/PROTOCOL.md §6 rather than
        // read from the room's defaults.
        let mut rules = Rules {
            max_participants: 255,
            max_observers: 255,
            hello_timeout: Duration::from_secs(60),
            username_timeout: Duration::from_secs(60),
            naming_ceiling: Duration::from_secs(5 * 60),
            max_refused: 10,
            flood: setting.map(|(rate, burst)| Allowance::new(rate, burst)),
        };
        if capacity != 0 {
            let n = 1 + capacity as usize % 3;
            (config.max_participants, config.max_observers) = (n, n);
            (rules.max_participants, rules.max_observers) = (n, n);
        }
        Self {
            room: Room::new(config),
            model: Model::new(rules),
            now: Instant::now(),
            next_id: 1,
            opened: Vec::new(),
            reachable: BTreeSet::new(),
        }
    }

    /// Runs a whole scenario, checking after every event.
    pub fn run(scenario: &Scenario) -> Self {
        let mut auditor = Self::new(scenario.capacity, scenario.flood);
        for event in &scenario.events {
            auditor.apply(event);
        }
        auditor.finish();
        auditor
    }

    /// Participants whose departure was announced (each exactly once).
    pub fn departures(&self) -> usize {
        self.model.departures()
    }

    /// Ends every connection still open, then checks that every participant
    /// ever admitted had its departure announced exactly once (except those
    /// a shutdown closed, which is announced to no one).
    pub fn finish(&mut self) {
        let open: Vec<ConnId> = self.model.conns().keys().copied().collect();
        let event = Event::Close {
            conn: 0,
            slow: false,
        };
        for conn in open {
            self.begin();
            self.closed(conn, false, &event);
            self.check_standing(&event);
        }
        assert!(
            self.model.owed_left().is_empty(),
            "participants never announced as left: {:?}",
            self.model.owed_left()
        );
        assert_eq!(self.room.connections(), 0);
        assert_eq!(self.room.poll_timeout(), None);
    }

    /// Feeds one event to the room and checks what comes out.
    pub fn apply(&mut self, event: &Event) {
        self.begin();
        match event {
            Event::Open => {
                self.open(event);
            }
            Event::Crowded { newcomer } => {
                let newcomer = match newcomer {
                    None => self.open(event),
                    Some(conn) => self.pick(*conn),
                };
                self.make_room(newcomer, event);
            }
            Event::OpenMany { count, observer } => {
                for _ in 0..(*count % (MAX_OPEN_MANY + 1)) {
                    let conn = self.open(event);
                    self.frame(conn, ClientFrame::Hello(role(*observer)), event);
                }
            }
            Event::Join(name) => {
                let conn = self.open(event);
                self.frame(conn, ClientFrame::Hello(Role::Participant), event);
                self.frame(conn, ClientFrame::Username(name.text()), event);
            }
            Event::Frame { conn, frame } => {
                let conn = self.pick(*conn);
                self.frame(conn, frame.frame(), event);
            }
            Event::Raw { conn, payload } => {
                let conn = self.pick(*conn);
                self.payload(conn, payload, false, event);
            }
            Event::Padded {
                conn,
                frame,
                varint,
            } => {
                let conn = self.pick(*conn);
                self.payload(conn, &padded_payload(&frame.frame(), *varint), true, event);
            }
            Event::Squat { conn, attempts } => {
                let conn = self.pick(*conn);
                for _ in 0..attempts % 13 {
                    self.frame(conn, ClientFrame::Username("a b".into()), event);
                }
            }
            Event::Oversized { conn, len } => {
                let conn = self.pick(*conn);
                let member_limit = model::MEMBER_LIMIT;
                let span = MAX_FRAME_BYTES - member_limit;
                let len = member_limit + 1 + *len as usize % span;
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
                self.advance_to(self.now + by, event);
            }
            Event::Wake { early } => {
                if let Some(due) = self.model.next_due() {
                    let at = if *early {
                        due - Duration::from_nanos(1)
                    } else {
                        due
                    };
                    self.advance_to(at.max(self.now), event);
                }
            }
            Event::Reopen { conn } => {
                // Only an open id: one that ended is forgotten by the room,
                // and reusing it is a driver bug the room cannot see.
                let conn = self.pick(*conn);
                if self.model.is_open(conn) {
                    assert!(
                        !self.room.handle_open(self.now, conn),
                        "the reused open id {conn} was taken"
                    );
                    self.expect(Effects::default(), event);
                }
            }
            Event::Shutdown => {
                let mut want = Effects::default();
                self.model.shutdown(&mut want);
                self.room.shutdown(self.now);
                self.expect(want, event);
            }
        }
        self.check_standing(event);
    }

    /// For testing the oracle itself: the room shuts down without the model
    /// knowing, so the next event's output cannot match.
    pub fn inject_behind_the_model(&mut self) {
        self.room.shutdown(self.now);
    }

    /// Notes who may be sent to during the event that begins.
    fn begin(&mut self) {
        self.reachable = self.model.conns().keys().copied().collect();
    }

    fn pick(&self, index: u16) -> ConnId {
        let (which, index) = (index % 4, index as usize / 4);
        let open = self.model.conns();
        if which != 0
            && !open.is_empty()
            && let Some(&conn) = open.keys().nth(index % open.len())
        {
            return conn;
        }
        let index = index % (self.opened.len() + 1);
        self.opened.get(index).copied().unwrap_or(NEVER_OPENED)
    }

    fn open(&mut self, event: &Event) -> ConnId {
        let conn = self.next_id;
        self.next_id += 1;
        self.opened.push(conn);
        self.reachable.insert(conn);
        assert!(
            self.room.handle_open(self.now, conn),
            "a new id was refused"
        );
        self.model.open(self.now, conn);
        self.expect(Effects::default(), event);
        conn
    }

    /// A payload arrives, as the driver's reader takes it: an empty or
    /// over-long header is a violation; one past the connection's limit is
    /// skipped (a member's) or refused on its header; the rest is decoded,
    /// and an undecodable payload is a violation. A `padded` payload is an
    /// overlong encoding of a frame: the model says it is a violation
    /// whatever the decoder makes of it.
    fn payload(&mut self, conn: ConnId, payload: &[u8], padded: bool, event: &Event) {
        let len = payload.len();
        let Ok(announced) = u32::try_from(len) else {
            unreachable!("no event makes a payload of 4 GiB");
        };
        if len == 0 {
            return self.violation(conn, &FrameError::Empty, event);
        }
        if len > MAX_FRAME_BYTES {
            return self.violation(conn, &FrameError::TooLong(announced), event);
        }
        let limit = self.room.frame_limit(conn);
        if len > limit.max_payload {
            if limit.oversize == Oversize::Skip {
                return self.oversized(conn, len, event);
            }
            let mut want = Effects::default();
            self.model.over_limit(conn, len, &mut want);
            let error = FrameError::OverLimit {
                len: announced,
                limit: limit.max_payload,
                when: limit.when,
            };
            self.room.handle_violation(self.now, conn, &error);
            return self.expect(want, event);
        }
        let decoded = decode_payload::<ClientFrame>(payload);
        if !padded {
            return match decoded {
                Ok(frame) => self.frame(conn, frame, event),
                Err(error) => self.violation(conn, &error, event),
            };
        }
        let mut want = Effects::default();
        self.model.overlong(conn, &mut want);
        match decoded {
            Ok(frame) => self.room.handle_frame(self.now, conn, frame),
            Err(error) => self.room.handle_violation(self.now, conn, &error),
        }
        self.expect(want, event);
    }

    /// The room is asked to make room for `newcomer`.
    fn make_room(&mut self, newcomer: ConnId, event: &Event) {
        let mut want = Effects::default();
        let victim = self.model.make_room(newcomer, &mut want);
        assert_eq!(
            self.room.make_room_for(self.now, newcomer),
            victim,
            "the connection closed to make room for {newcomer}, on {event:?}"
        );
        self.expect(want, event);
    }

    fn frame(&mut self, conn: ConnId, frame: ClientFrame, event: &Event) {
        let mut want = Effects::default();
        self.model
            .input(self.now, conn, Input::Frame(frame.clone()), &mut want);
        self.room.handle_frame(self.now, conn, frame);
        self.expect(want, event);
    }

    fn oversized(&mut self, conn: ConnId, len: usize, event: &Event) {
        let mut want = Effects::default();
        self.model
            .input(self.now, conn, Input::Oversized(len), &mut want);
        self.room.handle_oversized(self.now, conn, len);
        self.expect(want, event);
    }

    fn violation(&mut self, conn: ConnId, error: &FrameError, event: &Event) {
        let mut want = Effects::default();
        self.model.violation(conn, error, &mut want);
        self.room.handle_violation(self.now, conn, error);
        self.expect(want, event);
    }

    fn closed(&mut self, conn: ConnId, slow: bool, event: &Event) {
        let mut want = Effects::default();
        self.model.closed(conn, &mut want);
        let reason = if slow {
            EndReason::SlowConsumer
        } else {
            EndReason::Disconnected
        };
        self.room.handle_closed(self.now, conn, reason);
        self.expect(want, event);
    }

    fn advance_to(&mut self, now: Instant, event: &Event) {
        self.now = now;
        let mut want = Effects::default();
        self.model.advance(now, &mut want);
        self.room.handle_timeout(now);
        self.expect(want, event);
    }

    /// Drains the room's output and compares it with the model's, frame
    /// for frame.
    fn expect(&mut self, want: Effects, event: &Event) {
        let mut got = Effects::default();
        while let Some(output) = self.room.poll_output() {
            match output {
                Output::Send { .. } | Output::Broadcast { .. } => {
                    for (to, frame) in output.deliveries() {
                        assert!(
                            self.reachable.contains(&to),
                            "frame to conn {to}, which was not open, on {event:?}"
                        );
                        assert!(
                            !got.closed.contains(&to),
                            "frame to conn {to} after its close, on {event:?}"
                        );
                        let mut decoder = FrameDecoder::new();
                        decoder.extend(frame);
                        let decoded: ServerFrame = decoder
                            .next_frame()
                            .expect("the room sends only decodable frames")
                            .expect("one whole frame");
                        assert_eq!(decoder.buffered(), 0, "one whole frame, nothing after it");
                        got.sent.entry(to).or_default().push(decoded);
                    }
                }
                Output::Close { conn, .. } => {
                    assert!(
                        self.reachable.contains(&conn),
                        "close of conn {conn}, which was not open, on {event:?}"
                    );
                    assert!(
                        got.closed.insert(conn),
                        "conn {conn} closed twice, on {event:?}"
                    );
                }
            }
        }
        assert_eq!(got, want, "room output differs from the model on {event:?}");
    }

    fn check_standing(&self, event: &Event) {
        let rules = self.model.rules();
        let (participants, observers) = (self.model.participants(), self.model.observers());
        assert!(participants <= rules.max_participants.min(255));
        assert!(observers <= rules.max_observers.min(255));
        assert_eq!(
            (self.room.participants(), self.room.observers()),
            (participants, observers),
            "slot counts after {event:?}"
        );
        assert_eq!(
            self.room.connections(),
            self.model.conns().len(),
            "open connections after {event:?}"
        );
        let active: Vec<&str> = self.room.names().collect();
        let model: Vec<&str> = self.model.names().map(|n| n.display.as_str()).collect();
        assert_eq!(
            active, model,
            "active names, in the order they joined, after {event:?}"
        );
        let judged: Vec<names::Name> = active
            .iter()
            .map(|name| names::judge(name).expect("active names are valid"))
            .collect();
        for (i, a) in judged.iter().enumerate() {
            for b in &judged[i + 1..] {
                assert_eq!(
                    names::clash(a, b),
                    None,
                    "{} and {} are both active after {event:?}",
                    a.display,
                    b.display
                );
            }
        }
        assert!(
            !judged.iter().any(names::is_reserved),
            "the reserved name is active after {event:?}"
        );
        assert_eq!(
            self.room.poll_timeout(),
            self.model.next_due(),
            "next call wanted after {event:?}"
        );
        for &conn in self.model.conns().keys() {
            let limit = self.room.frame_limit(conn);
            assert_eq!(
                (limit.max_payload, limit.oversize == Oversize::Skip),
                self.model.limit(conn),
                "frame limit of {conn} after {event:?}"
            );
            assert_eq!(
                self.room.is_throttled(conn),
                self.model.is_held(conn),
                "throttled, conn {conn}, after {event:?}"
            );
        }
    }
}
