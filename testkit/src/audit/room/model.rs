//! The room as docs/PROTOCOL.md §6–§8 describe it, for the auditor to
//! hold the real one against. It keeps its own account of every
//! connection (its phase, its timers, its allowance and the frames held
//! back by it) and, for each input, says exactly which frames go to whom
//! and which connections the room closes ([`Effects`]). It calls nothing
//! in `logosnet` but the frame types: the name rule is [`names`], the
//! wording [`texts`], the flood rule [`allowance`]. Besides the frames a
//! connection sends, it knows the doors' part of the room (§5): a payload
//! over its state's limit, one whose varint is padded, and a newcomer that
//! finds every socket taken.
//!
//! What the protocol leaves to the room's contract rather than the wire,
//! the model takes from `Room`'s documentation: deadlines and held frames
//! due by the same call are handled in the order of their instants, a
//! frame held until a deadline's instant before that deadline, ties by
//! connection id; a batch of due frames is charged at the time of the call;
//! a connection's held frames die with it; a newcomer may be any open
//! connection, and only those older than it (opened before it) make room.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use logosnet::protocol::{ClientFrame, FrameError, Role, ServerFrame};
use logosnet::room::ConnId;

use super::allowance::{Allowance, Bucket};
use super::names::{self, ANONYMOUS, Clash, Name};
use super::texts;

/// The longest chat line, in characters (§6, chat rules).
const MAX_LINE_CHARS: usize = 1000;
/// The longest payload before `Hello` (§6, frame limits): a `Hello`.
pub(crate) const HELLO_LIMIT: usize = 2;
/// The longest payload while naming: a `Username` of 120 bytes.
pub(crate) const NAMING_LIMIT: usize = 122;
/// The longest payload from a member: a `Chat` of 1,000 four-byte
/// characters.
pub(crate) const MEMBER_LIMIT: usize = 4003;

/// The numbers the model's rules use.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// Participant slots.
    pub(crate) max_participants: usize,
    /// Observer slots.
    pub(crate) max_observers: usize,
    /// Time to send `Hello`.
    pub(crate) hello_timeout: Duration,
    /// Time to get a name accepted, restarted by each refusal.
    pub(crate) username_timeout: Duration,
    /// Time from `Accepted` by which a name must be accepted, whatever.
    pub(crate) naming_ceiling: Duration,
    /// Names that may be refused; one more ends the connection.
    pub(crate) max_refused: u32,
    /// The flood allowance, if flood control is on.
    pub(crate) flood: Option<Allowance>,
}

/// Where a connection is in its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connected, no `Hello` yet.
    AwaitingHello,
    /// A participant choosing a name.
    Naming,
    /// A named participant, in the room.
    Active(Name),
    /// An observer, in the room.
    Observer,
}

/// One input from a connection.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    /// A whole frame.
    Frame(ClientFrame),
    /// A frame over the member limit skipped unread: its length.
    Oversized(usize),
}

impl Input {
    /// Bytes of text it carries, for its cost.
    fn text_bytes(&self) -> usize {
        match self {
            Input::Frame(ClientFrame::Hello(_) | ClientFrame::Who) => 0,
            Input::Frame(ClientFrame::Username(text) | ClientFrame::Chat(text)) => text.len(),
            Input::Oversized(len) => *len,
        }
    }
}

/// What the model knows of one open connection.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    /// Its phase.
    pub(crate) phase: Phase,
    /// When it is closed unless it moves on first (Hello or name).
    deadline: Option<Instant>,
    /// While naming: the latest its deadline may be.
    ceiling: Option<Instant>,
    /// While naming: names refused so far.
    refused: u32,
    /// Its flood allowance.
    bucket: Option<Bucket>,
    /// Input waiting for tokens, oldest first.
    held: VecDeque<Input>,
    /// When the first held input can be paid for.
    release_at: Option<Instant>,
}

/// What one event must make the room do.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Effects {
    /// Frames per recipient, in order.
    pub(crate) sent: BTreeMap<ConnId, Vec<ServerFrame>>,
    /// Connections the room closes.
    pub(crate) closed: BTreeSet<ConnId>,
}

impl Effects {
    fn send(&mut self, to: ConnId, frame: ServerFrame) {
        self.sent.entry(to).or_default().push(frame);
    }
}

/// The model room. See the module docs.
#[derive(Debug)]
pub(crate) struct Model {
    /// Its numbers.
    rules: Rules,
    /// Every open connection.
    conns: BTreeMap<ConnId, Conn>,
    /// Active participants, in the order their names were accepted.
    roster: Vec<ConnId>,
    /// Participants admitted and not yet announced as left.
    owed_left: BTreeSet<ConnId>,
    /// Departures announced.
    departures: usize,
}

/// Something due at an instant: a held frame's release before a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Release,
    Deadline,
}

impl Model {
    /// An empty room.
    pub(crate) fn new(rules: Rules) -> Self {
        Self {
            rules,
            conns: BTreeMap::new(),
            roster: Vec::new(),
            owed_left: BTreeSet::new(),
            departures: 0,
        }
    }

    /// Its numbers.
    pub(crate) fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The open connections.
    pub(crate) fn conns(&self) -> &BTreeMap<ConnId, Conn> {
        &self.conns
    }

    /// Whether `conn` is open.
    pub(crate) fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Departures announced so far.
    pub(crate) fn departures(&self) -> usize {
        self.departures
    }

    /// Participants admitted whose departure is still owed.
    pub(crate) fn owed_left(&self) -> &BTreeSet<ConnId> {
        &self.owed_left
    }

    /// Participants holding a slot, named or not.
    pub(crate) fn participants(&self) -> usize {
        self.conns
            .values()
            .filter(|c| matches!(c.phase, Phase::Naming | Phase::Active(_)))
            .count()
    }

    /// Observers holding a slot.
    pub(crate) fn observers(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.phase == Phase::Observer)
            .count()
    }

    /// Active participants' names, in the order they joined.
    pub(crate) fn names(&self) -> impl Iterator<Item = &Name> {
        self.roster
            .iter()
            .filter_map(|conn| match self.conns.get(conn).map(|c| &c.phase) {
                Some(Phase::Active(name)) => Some(name),
                _ => None,
            })
    }

    /// Whether `conn` has input held back by its allowance.
    pub(crate) fn is_held(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| !c.held.is_empty())
    }

    /// The longest payload `conn` may send now, and whether a longer one
    /// is skipped (a member's) rather than a violation.
    pub(crate) fn limit(&self, conn: ConnId) -> (usize, bool) {
        match self.conns.get(&conn).map(|c| &c.phase) {
            Some(Phase::Naming) => (NAMING_LIMIT, false),
            Some(Phase::Active(_) | Phase::Observer) => (MEMBER_LIMIT, true),
            Some(Phase::AwaitingHello) | None => (HELLO_LIMIT, false),
        }
    }

    /// The earliest instant something is due, if anything is.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.first_due().map(|(at, _, _)| at)
    }

    /// What is due first: the earliest instant; at one instant, a release
    /// before a deadline; then the lower connection id.
    fn first_due(&self) -> Option<(Instant, Due, ConnId)> {
        self.conns
            .iter()
            .flat_map(|(&id, c)| {
                let release = c.release_at.map(|at| (at, Due::Release, id));
                let deadline = c.deadline.map(|at| (at, Due::Deadline, id));
                release.into_iter().chain(deadline)
            })
            .min()
    }

    /// Members: active participants and observers, in id order.
    fn members(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Active(_) | Phase::Observer))
            .map(|(&id, _)| id)
            .collect()
    }

    /// The active participant whose name clashes with `name`, and that
    /// name: the one with `name`'s first key among its keys if any (the
    /// same name up to case wins), otherwise the one with its second.
    /// At most one active name has a given key, since none clash.
    fn holder(&self, name: &Name) -> Option<(ConnId, &Name)> {
        name.keys.iter().find_map(|key| {
            self.conns.iter().find_map(|(&id, c)| match &c.phase {
                Phase::Active(held) if held.keys.contains(key) => Some((id, held)),
                _ => None,
            })
        })
    }

    /// A connection is accepted at `now`.
    pub(crate) fn open(&mut self, now: Instant, conn: ConnId) {
        let bucket = self.rules.flood.map(|a| Bucket::full(now, &a));
        let fresh = Conn {
            phase: Phase::AwaitingHello,
            deadline: Some(now + self.rules.hello_timeout),
            ceiling: None,
            refused: 0,
            bucket,
            held: VecDeque::new(),
            release_at: None,
        };
        assert!(self.conns.insert(conn, fresh).is_none(), "ids are new");
    }

    /// Input arrives from `conn` at `now`: taken at once, or held until
    /// its allowance pays for it (after everything held before it).
    pub(crate) fn input(&mut self, now: Instant, conn: ConnId, input: Input, out: &mut Effects) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.held.is_empty() {
            c.held.push_back(input);
            return;
        }
        let (Some(allowance), Some(bucket)) = (self.rules.flood, c.bucket.as_mut()) else {
            return self.take(now, conn, input, out);
        };
        if c.phase == Phase::AwaitingHello {
            // The allowance starts after Hello.
            return self.take(now, conn, input, out);
        }
        match bucket.take(now, allowance.cost(input.text_bytes()), &allowance) {
            Ok(()) => self.take(now, conn, input, out),
            Err(at) => {
                c.held.push_back(input);
                c.release_at = Some(at);
            }
        }
    }

    /// The framing layer reported `error` on `conn`.
    pub(crate) fn violation(&mut self, conn: ConnId, error: &FrameError, out: &mut Effects) {
        if self.is_open(conn) {
            out.send(conn, texts::violation(error));
            self.end(conn, true, out);
        }
    }

    /// A payload from `conn` longer than it may send before it is a
    /// member was refused on its header (§5): a violation.
    pub(crate) fn over_limit(&mut self, conn: ConnId, len: usize, out: &mut Effects) {
        let Some(phase) = self.conns.get(&conn).map(|c| c.phase.clone()) else {
            return;
        };
        self.oversized(conn, &phase, len, out);
    }

    /// A payload from `conn` whose varint was padded: a violation (§2).
    pub(crate) fn overlong(&mut self, conn: ConnId, out: &mut Effects) {
        if self.is_open(conn) {
            out.send(conn, texts::overlong_varint());
            self.end(conn, true, out);
        }
    }

    /// `newcomer` arrived while every socket was taken (§5, §6 Limits):
    /// the oldest connection before `Hello` older than it is told why and
    /// closed, else the oldest participant without a name; if neither,
    /// the newcomer itself is refused. Returns the connection closed to
    /// make room; nothing at all happens for a newcomer not open.
    pub(crate) fn make_room(&mut self, newcomer: ConnId, out: &mut Effects) -> Option<ConnId> {
        if !self.is_open(newcomer) {
            return None;
        }
        let oldest = |phase: Phase| {
            self.conns
                .range(..newcomer)
                .find(|(_, c)| c.phase == phase)
                .map(|(&id, _)| id)
        };
        if let Some(victim) = oldest(Phase::AwaitingHello) {
            out.send(victim, texts::made_room_before_hello());
            self.end(victim, true, out);
            return Some(victim);
        }
        if let Some(victim) = oldest(Phase::Naming) {
            out.send(victim, texts::made_room_before_naming());
            self.end(victim, true, out);
            return Some(victim);
        }
        out.send(newcomer, texts::server_busy());
        self.end(newcomer, true, out);
        None
    }

    /// `conn` ended from the driver's side.
    pub(crate) fn closed(&mut self, conn: ConnId, out: &mut Effects) {
        self.end(conn, false, out);
    }

    /// The clock reads `now`: everything due by then happens, in order.
    pub(crate) fn advance(&mut self, now: Instant, out: &mut Effects) {
        while let Some((at, due, conn)) = self.first_due()
            && at <= now
        {
            match due {
                Due::Release => self.release(now, conn, out),
                Due::Deadline => self.expire(conn, out),
            }
        }
    }

    /// The server shuts down: everyone is told, everyone is closed, and no
    /// departure is announced.
    pub(crate) fn shutdown(&mut self, out: &mut Effects) {
        self.roster.clear();
        for (conn, _) in std::mem::take(&mut self.conns) {
            out.send(conn, texts::shutting_down());
            out.closed.insert(conn);
            self.owed_left.remove(&conn);
        }
    }

    /// Pays for held input as far as the allowance goes at `now`.
    fn release(&mut self, now: Instant, conn: ConnId, out: &mut Effects) {
        let Some(allowance) = self.rules.flood else {
            unreachable!("nothing is held without flood control");
        };
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            c.release_at = None;
            let Some(first) = c.held.front() else {
                return;
            };
            let cost = allowance.cost(first.text_bytes());
            let bucket = c.bucket.as_mut().expect("a bucket with flood control");
            if let Err(at) = bucket.take(now, cost, &allowance) {
                c.release_at = Some(at);
                return;
            }
            let input = c.held.pop_front().expect("a held input");
            self.take(now, conn, input, out);
        }
    }

    /// `conn`'s deadline has passed.
    fn expire(&mut self, conn: ConnId, out: &mut Effects) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        match c.phase {
            Phase::AwaitingHello => {
                out.send(conn, texts::no_hello_within(self.rules.hello_timeout));
            }
            Phase::Naming => out.send(conn, ServerFrame::UsernameTimeout),
            Phase::Active(_) | Phase::Observer => unreachable!("members have no deadline"),
        }
        self.end(conn, true, out);
    }

    /// Applies one input's rule.
    fn take(&mut self, now: Instant, conn: ConnId, input: Input, out: &mut Effects) {
        let Some(phase) = self.conns.get(&conn).map(|c| c.phase.clone()) else {
            return;
        };
        let frame = match input {
            Input::Oversized(len) => return self.oversized(conn, &phase, len, out),
            Input::Frame(frame) => frame,
        };
        match (phase, frame) {
            (Phase::AwaitingHello, ClientFrame::Hello(role)) => self.hello(now, conn, role, out),
            (Phase::AwaitingHello, _) => {
                out.send(conn, texts::first_frame_must_be_hello());
                self.end(conn, true, out);
            }
            (Phase::Naming, ClientFrame::Username(requested)) => {
                self.username(now, conn, &requested, out);
            }
            (Phase::Naming, ClientFrame::Chat(_)) => {
                out.send(conn, texts::choose_a_username_first());
            }
            (Phase::Naming | Phase::Active(_), ClientFrame::Hello(_)) => {
                out.send(conn, texts::hello_again());
            }
            (Phase::Active(_), ClientFrame::Username(_)) => {
                out.send(conn, texts::already_named());
            }
            (Phase::Active(name), ClientFrame::Chat(line)) => {
                self.chat(conn, &name.display, &line, out);
            }
            (Phase::Naming, ClientFrame::Who) => out.send(conn, texts::who_before_a_name()),
            (Phase::Active(_) | Phase::Observer, ClientFrame::Who) => {
                let roster = ServerFrame::Roster {
                    participants: self.names().map(|n| n.display.clone()).collect(),
                    observers: u32::try_from(self.observers()).expect("at most 255"),
                };
                out.send(conn, roster);
            }
            (Phase::Observer, _) => out.send(conn, texts::observers_only_read()),
        }
    }

    /// A frame over the limit, skipped unread.
    fn oversized(&mut self, conn: ConnId, phase: &Phase, len: usize, out: &mut Effects) {
        let (limit, when) = match phase {
            Phase::Active(_) => return out.send(conn, texts::too_long()),
            Phase::Observer => return out.send(conn, texts::observers_only_read()),
            Phase::AwaitingHello => (HELLO_LIMIT, "before Hello"),
            Phase::Naming => (NAMING_LIMIT, "before a username is accepted"),
        };
        out.send(conn, texts::over_limit(len, limit, when));
        self.end(conn, true, out);
    }

    fn hello(&mut self, now: Instant, conn: ConnId, role: Role, out: &mut Effects) {
        let (held, max) = match role {
            Role::Participant => (self.participants(), self.rules.max_participants),
            Role::Observer => (self.observers(), self.rules.max_observers),
        };
        if held >= max {
            out.send(conn, ServerFrame::Full);
            self.end(conn, true, out);
            return;
        }
        out.send(conn, ServerFrame::Accepted);
        let ceiling = now + self.rules.naming_ceiling;
        let username_deadline = (now + self.rules.username_timeout).min(ceiling);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match role {
            Role::Participant => {
                c.phase = Phase::Naming;
                c.ceiling = Some(ceiling);
                c.deadline = Some(username_deadline);
                self.owed_left.insert(conn);
            }
            Role::Observer => {
                c.phase = Phase::Observer;
                c.deadline = None;
            }
        }
    }

    /// A name request: accepted, or refused with its verdict and, unless
    /// the name is simply in use (the same up to case), the reason first.
    fn username(&mut self, now: Instant, conn: ConnId, requested: &str, out: &mut Effects) {
        let (reason, verdict) = match names::judge(requested) {
            Err(refusal) => (
                Some(texts::invalid_username(refusal)),
                ServerFrame::UsernameInvalid,
            ),
            Ok(name) if names::is_reserved(&name) => {
                (Some(texts::reserved()), ServerFrame::UsernameTaken)
            }
            Ok(name) => match self.holder(&name) {
                Some((_, held)) => match names::clash(&name, held) {
                    Some(Clash::Same) => (None, ServerFrame::UsernameTaken),
                    Some(Clash::LookAlike) => (
                        Some(texts::too_similar(&held.display)),
                        ServerFrame::UsernameTaken,
                    ),
                    None => unreachable!("a holder shares a key"),
                },
                None => return self.accept(conn, name, out),
            },
        };
        let max_refused = self.rules.max_refused;
        let username_timeout = self.rules.username_timeout;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.refused += 1;
        if c.refused > max_refused {
            out.send(conn, texts::too_many_names(max_refused));
            out.send(conn, ServerFrame::UsernameTimeout);
            self.end(conn, true, out);
            return;
        }
        let ceiling = c.ceiling.expect("a naming participant has a ceiling");
        c.deadline = Some((now + username_timeout).min(ceiling));
        if let Some(reason) = reason {
            out.send(conn, reason);
        }
        out.send(conn, verdict);
    }

    /// `conn` is in the room as `name`: last in the roster, and the room,
    /// itself included, is told.
    fn accept(&mut self, conn: ConnId, name: Name, out: &mut Effects) {
        out.send(conn, ServerFrame::UsernameAccepted);
        let joined = texts::joined(&name.display);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Active(name);
            c.deadline = None;
            c.ceiling = None;
        }
        self.roster.push(conn);
        for member in self.members() {
            out.send(member, joined.clone());
        }
    }

    fn chat(&mut self, conn: ConnId, sender: &str, line: &str, out: &mut Effects) {
        if line.chars().all(char::is_whitespace) {
            return;
        }
        if line.chars().count() > MAX_LINE_CHARS {
            return out.send(conn, texts::too_long());
        }
        let Some(addressed) = line.strip_prefix('@') else {
            let frame = texts::public(sender, line);
            for member in self.members() {
                if member != conn {
                    out.send(member, frame.clone());
                }
            }
            return;
        };
        if addressed.is_empty() || addressed.starts_with(' ') {
            return out.send(conn, texts::private_needs_a_name());
        }
        let Some((typed, _)) = addressed.split_once(' ') else {
            return out.send(conn, texts::private_needs_a_space());
        };
        let target = names::judge(typed)
            .ok()
            .and_then(|name| self.holder(&name).map(|(target, _)| target));
        match target {
            Some(target) => out.send(target, texts::private(sender, line)),
            None => out.send(conn, texts::no_such_user(typed)),
        }
    }

    /// `conn` leaves the room (closed by it if `room_closes`); the room
    /// that remains hears of a participant's departure.
    fn end(&mut self, conn: ConnId, room_closes: bool, out: &mut Effects) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if room_closes {
            out.closed.insert(conn);
        }
        self.roster.retain(|&active| active != conn);
        let name = match &c.phase {
            Phase::Naming => ANONYMOUS.to_owned(),
            Phase::Active(name) => name.display.clone(),
            Phase::AwaitingHello | Phase::Observer => return,
        };
        assert!(self.owed_left.remove(&conn), "{conn} left twice");
        self.departures += 1;
        let left = texts::left(&name);
        for member in self.members() {
            out.send(member, left.clone());
        }
    }
}
