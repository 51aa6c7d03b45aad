//! [`Room::make_room_for`]: the eviction rule carried out by the room —
//! who is closed, what it is told, what the room hears — row by row, and
//! under arbitrary sequences of opens, Hellos, names and departures.

use std::collections::BTreeMap;
use std::time::Instant;

use proptest::prelude::*;

use super::*;
use crate::codec::decode_payload;
use crate::protocol::{
    HEADER_BYTES, closed_to_make_room_before_hello, closed_to_make_room_before_naming, left,
    server_busy,
};

/// A room and what it sent and closed, per connection.
struct Doors {
    room: Room,
    now: Instant,
    next_id: ConnId,
    got: BTreeMap<ConnId, Vec<ServerFrame>>,
    closed: BTreeMap<ConnId, CloseReason>,
}

impl Doors {
    fn new() -> Self {
        Self {
            room: Room::new(RoomConfig::default()),
            now: Instant::now(),
            next_id: 1,
            got: BTreeMap::new(),
            closed: BTreeMap::new(),
        }
    }

    fn pump(&mut self) {
        while let Some(out) = self.room.poll_output() {
            if let Output::Close { conn, reason } = out {
                assert!(self.closed.insert(conn, reason).is_none(), "closed twice");
                continue;
            }
            for (to, frame) in out.deliveries() {
                let frame = decode_payload(&frame[HEADER_BYTES..]).expect("a frame");
                self.got.entry(to).or_default().push(frame);
            }
        }
    }

    fn open(&mut self) -> ConnId {
        let id = self.next_id;
        self.next_id += 1;
        assert!(self.room.handle_open(self.now, id));
        id
    }

    fn send(&mut self, conn: ConnId, frame: ClientFrame) {
        self.room.handle_frame(self.now, conn, frame);
        self.pump();
    }

    fn silent(&mut self) -> ConnId {
        self.open()
    }

    fn naming(&mut self) -> ConnId {
        let id = self.open();
        self.send(id, ClientFrame::Hello(Role::Participant));
        id
    }

    fn named(&mut self, name: &str) -> ConnId {
        let id = self.naming();
        self.send(id, ClientFrame::Username(name.into()));
        id
    }

    fn observer(&mut self) -> ConnId {
        let id = self.open();
        self.send(id, ClientFrame::Hello(Role::Observer));
        id
    }

    /// Opens a newcomer past the table and lets the room make room for it.
    fn newcomer(&mut self) -> (ConnId, Option<ConnId>) {
        let id = self.open();
        let victim = self.room.make_room_for(self.now, id);
        self.pump();
        (id, victim)
    }

    fn take(&mut self, conn: ConnId) -> Vec<ServerFrame> {
        self.got.remove(&conn).unwrap_or_default()
    }
}

#[test]
fn the_oldest_connection_before_hello_is_told_why_and_closed() {
    let mut d = Doors::new();
    let alice = d.named("alice");
    let watcher = d.observer();
    let unnamed = d.naming();
    let (old, young) = (d.silent(), d.silent());
    d.got.clear();
    let (newcomer, victim) = d.newcomer();
    assert_eq!(victim, Some(old), "the oldest silent one, not the unnamed");
    assert_eq!(d.take(old), vec![closed_to_make_room_before_hello()]);
    assert_eq!(d.closed.get(&old), Some(&CloseReason::MadeRoom));
    // Nobody else hears of it (it was in no room), nobody else is closed.
    for other in [alice, watcher, unnamed, young, newcomer] {
        assert_eq!(d.take(other), vec![], "{other}");
        assert!(!d.closed.contains_key(&other), "{other}");
    }
    // The newcomer is an ordinary connection.
    d.send(newcomer, ClientFrame::Hello(Role::Observer));
    assert_eq!(d.take(newcomer), vec![ServerFrame::Accepted]);
}

#[test]
fn with_nobody_before_hello_the_oldest_unnamed_participant_makes_room() {
    let mut d = Doors::new();
    let watcher = d.observer();
    let first = d.naming();
    let _alice = d.named("alice");
    let second = d.naming();
    assert_eq!(d.room.participants(), 3);
    d.got.clear();
    let (_, victim) = d.newcomer();
    assert_eq!(victim, Some(first));
    assert_eq!(d.take(first), vec![closed_to_make_room_before_naming()]);
    assert_eq!(d.closed.get(&first), Some(&CloseReason::MadeRoom));
    // Its slot is free again, and the room hears it leave as any unnamed
    // participant does.
    assert_eq!(d.room.participants(), 2);
    assert_eq!(d.take(watcher), vec![left("Anonymous")]);
    assert!(!d.closed.contains_key(&second));
}

#[test]
fn when_only_members_are_older_the_newcomer_is_told_server_busy() {
    let mut d = Doors::new();
    let alice = d.named("alice");
    let watcher = d.observer();
    d.got.clear();
    let (newcomer, victim) = d.newcomer();
    assert_eq!(victim, None);
    assert_eq!(d.take(newcomer), vec![server_busy()]);
    assert_eq!(d.closed.get(&newcomer), Some(&CloseReason::Busy));
    for member in [alice, watcher] {
        assert_eq!(d.take(member), vec![]);
        assert!(!d.closed.contains_key(&member));
    }
    assert_eq!(d.room.connections(), 2);
}

#[test]
fn a_newer_connection_is_never_taken_for_an_older_newcomer() {
    let mut d = Doors::new();
    let _alice = d.named("alice");
    let newcomer = d.open();
    // Opened after the newcomer (its own turn to make room comes later).
    let later = d.silent();
    assert_eq!(d.room.make_room_for(d.now, newcomer), None);
    d.pump();
    assert_eq!(d.closed.get(&newcomer), Some(&CloseReason::Busy));
    assert!(!d.closed.contains_key(&later));
}

#[test]
fn an_unknown_newcomer_changes_nothing() {
    let mut d = Doors::new();
    let silent = d.silent();
    assert_eq!(d.room.make_room_for(d.now, 99), None);
    d.pump();
    assert!(d.closed.is_empty());
    assert!(d.got.is_empty());
    assert_eq!(d.room.connections(), 1);
    assert!(!d.closed.contains_key(&silent));
}

/// One step of a session: what happens next in the room.
#[derive(Debug, Clone)]
enum Step {
    /// A socket connects and says nothing yet.
    Open,
    /// The `n`th live connection sends `Hello` (participant or observer).
    Hello(usize, bool),
    /// The `n`th live connection asks for a name.
    Name(usize),
    /// The `n`th live connection goes away.
    Leave(usize),
    /// A socket connects while every socket is taken.
    Newcomer,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Open),
        2 => (0usize..64, any::<bool>()).prop_map(|(n, observer)| Step::Hello(n, observer)),
        2 => (0usize..64).prop_map(Step::Name),
        1 => (0usize..64).prop_map(Step::Leave),
        3 => Just(Step::Newcomer),
    ]
}

proptest! {
    /// Whatever happened before, making room closes exactly one connection
    /// — the one the rule picks: older than the newcomer, not a member,
    /// before `Hello` if any older one is — or refuses the newcomer when
    /// every older connection is a member; members are never closed by it,
    /// and the slot counts stay true.
    #[test]
    fn making_room_never_costs_a_member_and_takes_whom_the_rule_picks(
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let mut d = Doors::new();
        let mut names = 0;
        for step in steps {
            let live: Vec<ConnId> = d.room.conns.keys().copied().collect();
            let pick = |n: usize| live.get(n % live.len().max(1)).copied();
            match step {
                Step::Open => {
                    d.open();
                }
                Step::Hello(n, observer) => {
                    if let Some(conn) = pick(n) {
                        let role = if observer { Role::Observer } else { Role::Participant };
                        d.send(conn, ClientFrame::Hello(role));
                    }
                }
                Step::Name(n) => {
                    if let Some(conn) = pick(n) {
                        names += 1;
                        d.send(conn, ClientFrame::Username(format!("n{names}")));
                    }
                }
                Step::Leave(n) => {
                    if let Some(conn) = pick(n) {
                        d.room.handle_closed(d.now, conn, EndReason::Disconnected);
                        d.pump();
                    }
                }
                Step::Newcomer => {
                    let before: Vec<(ConnId, eviction::Stage)> = d
                        .room
                        .conns
                        .iter()
                        .map(|(&id, c)| (id, c.state.stage()))
                        .collect();
                    let (newcomer, victim) = d.newcomer();
                    let older = |stage| before.iter().filter(move |&&(_, s)| s == stage);
                    let expected = older(eviction::Stage::BeforeHello)
                        .chain(older(eviction::Stage::Naming))
                        .map(|&(id, _)| id)
                        .next();
                    prop_assert_eq!(victim, expected);
                    match victim {
                        Some(victim) => {
                            prop_assert_eq!(d.closed.get(&victim), Some(&CloseReason::MadeRoom));
                            prop_assert!(d.room.conns.contains_key(&newcomer));
                            prop_assert!(!d.room.conns.contains_key(&victim));
                            prop_assert_eq!(d.room.connections(), before.len());
                        }
                        None => {
                            prop_assert_eq!(d.closed.get(&newcomer), Some(&CloseReason::Busy));
                            prop_assert!(before.iter().all(|&(_, s)| s == eviction::Stage::Member));
                            prop_assert_eq!(d.room.connections(), before.len());
                        }
                    }
                }
            }
            let (mut participants, mut observers) = (0, 0);
            for c in d.room.conns.values() {
                match c.state {
                    State::Naming { .. } | State::Active { .. } => participants += 1,
                    State::Observer => observers += 1,
                    State::AwaitingHello { .. } => {}
                }
            }
            prop_assert_eq!((d.room.participants(), d.room.observers()), (participants, observers));
            d.got.clear();
        }
    }
}
