//! Property tests of the core: arbitrary event sequences — opens, frames
//! valid and not (`Who` and padded varints among them), violations,
//! closes, a full socket table, clock jumps and on-time wake-ups,
//! shutdowns — with flood control off and on, run through the [`Auditor`]
//! (in `testkit`), which panics if the room ever differs from its
//! independent model or breaks an invariant: each property is that no
//! scenario makes it panic. Case counts are kept so that the whole file
//! runs in seconds in a debug build; the fuzz target `room_events` runs the
//! same oracle for as long as one likes.

use proptest::collection::vec;
use proptest::prelude::*;

use testkit::audit::room::{
    Auditor, Event, FrameChoice, LineChoice, MAX_JUMP_MILLIS, NameChoice, Scenario, ViolationKind,
};

fn name() -> impl Strategy<Value = NameChoice> {
    prop_oneof![
        6 => any::<u8>().prop_map(NameChoice::Pool),
        1 => "[a-zA-Z0-9_]{0,12}".prop_map(NameChoice::Raw),
        1 => any::<String>().prop_map(NameChoice::Raw),
    ]
}

fn line() -> impl Strategy<Value = LineChoice> {
    prop_oneof![
        3 => "[a-z @]{0,16}".prop_map(LineChoice::Text),
        1 => any::<String>().prop_map(LineChoice::Text),
        3 => (name(), "[a-z ]{0,8}").prop_map(|(to, text)| LineChoice::Private { to, text }),
        1 => name().prop_map(LineChoice::AtWithoutSpace),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(n, wide)| LineChoice::Long { n, wide }),
    ]
}

fn frame() -> impl Strategy<Value = FrameChoice> {
    prop_oneof![
        2 => any::<bool>().prop_map(|observer| FrameChoice::Hello { observer }),
        3 => name().prop_map(FrameChoice::Username),
        4 => line().prop_map(FrameChoice::Chat),
        1 => Just(FrameChoice::Who),
    ]
}

fn violation() -> impl Strategy<Value = ViolationKind> {
    prop_oneof![
        Just(ViolationKind::Empty),
        any::<u32>().prop_map(ViolationKind::TooLong),
        Just(ViolationKind::Undecodable),
        Just(ViolationKind::Unfinished),
    ]
}

fn event(max_open_many: u16) -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => Just(Event::Open),
        3 => name().prop_map(Event::Join),
        1 => (0..=max_open_many, any::<bool>())
            .prop_map(|(count, observer)| Event::OpenMany { count, observer }),
        12 => (any::<u16>(), frame()).prop_map(|(conn, frame)| Event::Frame { conn, frame }),
        2 => (any::<u16>(), vec(any::<u8>(), 0..12))
            .prop_map(|(conn, payload)| Event::Raw { conn, payload }),
        1 => (any::<u16>(), frame(), any::<u8>())
            .prop_map(|(conn, frame, varint)| Event::Padded { conn, frame, varint }),
        1 => proptest::option::of(any::<u16>()).prop_map(|newcomer| Event::Crowded { newcomer }),
        1 => (any::<u16>(), violation()).prop_map(|(conn, kind)| Event::Violation { conn, kind }),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(conn, len)| Event::Oversized { conn, len }),
        1 => (any::<u16>(), any::<u8>()).prop_map(|(conn, attempts)| Event::Squat { conn, attempts }),
        2 => (any::<u16>(), any::<bool>()).prop_map(|(conn, slow)| Event::Close { conn, slow }),
        2 => prop_oneof![
            0..=2_000u32,
            59_000..=61_000u32,
            0..=MAX_JUMP_MILLIS,
        ]
        .prop_map(|millis| Event::Advance { millis }),
        2 => any::<bool>().prop_map(|early| Event::Wake { early }),
        1 => any::<u16>().prop_map(|conn| Event::Reopen { conn }),
        1 => Just(Event::Shutdown),
    ]
}

fn small_room_scenario() -> impl Strategy<Value = Scenario> {
    (1..=u8::MAX, any::<u8>(), vec(event(6), 0..100)).prop_map(|(capacity, flood, events)| {
        Scenario {
            capacity,
            flood,
            events,
        }
    })
}

fn full_room_scenario() -> impl Strategy<Value = Scenario> {
    (any::<u8>(), vec(event(300), 0..40)).prop_map(|(flood, events)| Scenario {
        capacity: 0,
        flood,
        events,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Small limits (1–3 per role) so that `Full`, freed slots, name clashes
    /// and timeouts all happen within a few events.
    #[test]
    fn small_room_matches_its_model_under_any_events(scenario in small_room_scenario()) {
        Auditor::run(&scenario);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// The spec's limits, with bursts of up to 300 Hellos, so the 255 bound
    /// of each role is reached and pressed on.
    #[test]
    fn spec_sized_room_never_passes_255_per_role(scenario in full_room_scenario()) {
        Auditor::run(&scenario);
    }
}

/// Names the `k`th connection ever opened (see [`Event`]'s addressing).
fn opened(k: u16) -> u16 {
    4 * k
}

/// The oracle itself must be able to fail: a room that announced a leave
/// twice, or sent to a closed connection, would be caught. Here a scenario
/// that exercises joins, private lines, leaves and timeouts runs clean and
/// the auditor saw the departures it was meant to.
#[test]
fn auditor_counts_every_departure_once() {
    let name = |i| FrameChoice::Username(NameChoice::Pool(i));
    let scenario = Scenario {
        capacity: 0,
        flood: 0,
        events: vec![
            Event::Open,
            Event::Frame {
                conn: opened(0),
                frame: FrameChoice::Hello { observer: false },
            },
            Event::Frame {
                conn: opened(0),
                frame: name(0),
            },
            Event::Open,
            Event::Frame {
                conn: opened(1),
                frame: FrameChoice::Hello { observer: false },
            },
            Event::Frame {
                conn: opened(1),
                frame: FrameChoice::Chat(LineChoice::Text("too early".into())),
            },
            Event::Open,
            Event::Frame {
                conn: opened(2),
                frame: FrameChoice::Hello { observer: true },
            },
            Event::Frame {
                conn: opened(0),
                frame: FrameChoice::Chat(LineChoice::Private {
                    to: NameChoice::Pool(0),
                    text: "note to self".into(),
                }),
            },
            Event::Advance { millis: 61_000 },
            Event::Violation {
                conn: opened(0),
                kind: ViolationKind::Empty,
            },
        ],
    };
    let auditor = Auditor::run(&scenario);
    // conn 1 timed out unnamed (Anonymous), conn 0 was closed for a
    // violation; the observer's close at the end is not announced.
    assert_eq!(auditor.departures(), 2);
}

/// The squatting rules and the per-state limits, in one scenario the model
/// must match exactly: a squatter past the cap, one held past the ceiling
/// by refusals every 50 s, and an oversized frame in every state.
#[test]
fn auditor_models_the_cap_the_ceiling_and_oversized_frames() {
    let hello = |k, observer| Event::Frame {
        conn: opened(k),
        frame: FrameChoice::Hello { observer },
    };
    let refuse = |k| Event::Frame {
        conn: opened(k),
        frame: FrameChoice::Username(NameChoice::Raw("a b".into())),
    };
    let oversized = |k| Event::Oversized {
        conn: opened(k),
        len: 0,
    };
    let mut events = vec![
        // 0 squats past the cap; 1 refuses every 50 s until the ceiling.
        Event::Open,
        hello(0, false),
        Event::Squat {
            conn: opened(0),
            attempts: 11,
        },
        Event::Open,
        hello(1, false),
    ];
    for _ in 0..6 {
        events.push(Event::Advance { millis: 50_000 });
        events.push(refuse(1));
    }
    events.extend([
        // 2 joins as alice, 3 observes, 4 is still naming, 5 said nothing.
        Event::Join(NameChoice::Pool(0)),
        Event::Open,
        hello(3, true),
        Event::Open,
        hello(4, false),
        Event::Open,
        oversized(2),
        oversized(3),
        oversized(4),
        oversized(5),
    ]);
    let auditor = Auditor::run(&Scenario {
        capacity: 0,
        flood: 0,
        events,
    });
    // 0 (the cap), 1 (the ceiling), 4 (its oversized frame) and alice at
    // the end: four participants left.
    assert_eq!(auditor.departures(), 4);
}

#[test]
#[should_panic(expected = "room output differs from the model")]
fn auditor_rejects_output_the_model_does_not_predict() {
    // Feeding the room an event behind the auditor's back makes its next
    // output unexpected: proof that the comparison is live.
    let mut auditor = Auditor::new(0, 0);
    auditor.apply(&Event::Open);
    auditor.apply(&Event::Frame {
        conn: opened(0),
        frame: FrameChoice::Hello { observer: true },
    });
    auditor.inject_behind_the_model();
    auditor.apply(&Event::Open);
}

/// Presence, identity and the doors, in one scenario the model must match
/// frame for frame, so that each of their rules is met at least once
/// whatever the random cases draw: `Who` before `Hello`, while naming, from
/// a participant and from an observer; a name taken up to case (bare
/// `UsernameTaken`), a look-alike within a case and across it (the notice
/// names the holder), the reserved name, a leading `@`, `>` or `%` and a
/// `:` (each with its reason); `@ALICE` reaching `alice` and `@lan` reaching
/// `Ian`; `@ hi` and `@` alone; a padded varint; and a full socket table
/// making room from before `Hello`, then from naming, then refusing.
#[test]
fn auditor_models_presence_identity_and_the_doors() {
    let frame = |k, frame| Event::Frame {
        conn: opened(k),
        frame,
    };
    let hello = |k, observer| frame(k, FrameChoice::Hello { observer });
    let name = |k, name: &str| frame(k, FrameChoice::Username(NameChoice::Raw(name.into())));
    let say = |k, line: &str| frame(k, FrameChoice::Chat(LineChoice::Text(line.into())));
    let join = |name: &str| Event::Join(NameChoice::Raw(name.into()));
    let events = vec![
        // 0 asks before Hello: a violation.
        Event::Open,
        frame(0, FrameChoice::Who),
        // 1 asks while naming, then is alice; 2 observes and asks.
        Event::Open,
        hello(1, false),
        frame(1, FrameChoice::Who),
        name(1, "alice"),
        Event::Open,
        hello(2, true),
        frame(2, FrameChoice::Who),
        // 3: taken up to case, look-alike, reserved, the line marks, then Ian.
        join("Alice"),
        name(3, "a1ice"),
        name(3, "aNoNyMoUs"),
        name(3, "@bob"),
        name(3, ">bob:"),
        name(3, "%x"),
        name(3, "a:b"),
        name(3, "Ian"),
        // 4: `lan` looks like `Ian` across case; 5: `ian` is `Ian`.
        join("lan"),
        join("ian"),
        say(3, "@ALICE hi"),
        say(1, "@lan hi"),
        say(1, "@ hi"),
        say(1, "@"),
        frame(1, FrameChoice::Who),
        // alice pads a varint and is closed for it.
        Event::Padded {
            conn: opened(1),
            frame: FrameChoice::Chat(LineChoice::Text("hi".into())),
            varint: 1,
        },
        // 6 is silent; 7 arrives at a full table and 6 makes room; 8
        // arrives and 4, naming, makes room (7 is younger than 8's
        // older neighbours only by one: it has said Hello by then).
        Event::Open,
        Event::Crowded { newcomer: None },
        hello(7, false),
        Event::Crowded { newcomer: None },
        // Everyone older than 8 is a member: 8 itself is refused.
        name(5, "bob"),
        name(7, "carol"),
        Event::Crowded {
            newcomer: Some(opened(8)),
        },
    ];
    let auditor = Auditor::run(&Scenario {
        capacity: 0,
        flood: 0,
        events,
    });
    // alice (the padded varint), 4 (made room: Anonymous), and Ian, bob
    // and carol at the end.
    assert_eq!(auditor.departures(), 5);
}
