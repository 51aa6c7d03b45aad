//! Rule-by-rule tests of the core, driven directly with events and a
//! hand-moved clock.

use super::*;
use crate::codec::decode_payload;
use crate::protocol::{
    HEADER_BYTES, already_named, choose_a_username_first, first_frame_must_be_hello, hello_again,
    invalid_username, joined, left, name_reserved, name_too_similar, no_such_user,
    observers_only_read, private_line, public_line, shutdown_notice, too_long_warning,
    too_many_names, who_before_a_name,
};
use crate::username::{ANONYMOUS, UsernameError};
use std::sync::Arc;

/// What a participant gets for a name that breaks the rule: the reason,
/// then the verdict.
fn invalid(broken: UsernameError) -> Vec<ServerFrame> {
    vec![invalid_username(broken), ServerFrame::UsernameInvalid]
}

/// What a participant gets for a name that looks like `holder`'s.
fn too_similar(holder: &str) -> Vec<ServerFrame> {
    vec![name_too_similar(holder), ServerFrame::UsernameTaken]
}

/// Drives a [`Room`] and sorts its output per connection.
struct Harness {
    /// The room under test.
    room: Room,
    /// The hand-moved clock.
    now: Instant,
    /// The id the next open gets.
    next_id: ConnId,
    /// Frames sent to each connection and not yet taken by the test.
    inbox: BTreeMap<ConnId, Vec<ServerFrame>>,
    /// Connections the room closed, and why.
    closed: BTreeMap<ConnId, CloseReason>,
}

impl Harness {
    fn new() -> Self {
        Self::with(RoomConfig::default())
    }

    fn with(config: RoomConfig) -> Self {
        Self {
            room: Room::new(config),
            now: Instant::now(),
            next_id: 1,
            inbox: BTreeMap::new(),
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
                assert!(!self.closed.contains_key(&to), "send to {to} after close");
                let len = crate::codec::announced_len(frame).expect("a header") as usize;
                assert_eq!(len + HEADER_BYTES, frame.len(), "one whole frame");
                let decoded = decode_payload(&frame[HEADER_BYTES..]).unwrap();
                self.inbox.entry(to).or_default().push(decoded);
            }
        }
    }

    fn open(&mut self) -> ConnId {
        let id = self.next_id;
        self.next_id += 1;
        assert!(self.room.handle_open(self.now, id), "a new id is taken");
        self.pump();
        id
    }

    fn send(&mut self, conn: ConnId, frame: ClientFrame) {
        self.room.handle_frame(self.now, conn, frame);
        self.pump();
    }

    fn hello(&mut self, role: Role) -> ConnId {
        let id = self.open();
        self.send(id, ClientFrame::Hello(role));
        id
    }

    fn participant(&mut self, name: &str) -> ConnId {
        let id = self.hello(Role::Participant);
        self.send(id, ClientFrame::Username(name.into()));
        assert!(self.take(id).contains(&ServerFrame::UsernameAccepted));
        id
    }

    fn chat(&mut self, conn: ConnId, line: &str) {
        self.send(conn, ClientFrame::Chat(line.into()));
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.room.handle_timeout(self.now);
        self.pump();
    }

    fn drop_conn(&mut self, conn: ConnId) {
        self.room
            .handle_closed(self.now, conn, EndReason::Disconnected);
        self.pump();
    }

    fn take(&mut self, conn: ConnId) -> Vec<ServerFrame> {
        self.inbox.remove(&conn).unwrap_or_default()
    }

    /// A room with alice named and an observer, their output taken.
    fn alice_and_an_observer() -> (Self, ConnId, ConnId) {
        let mut h = Self::new();
        let alice = h.participant("alice");
        let observer = h.hello(Role::Observer);
        h.take_all();
        (h, alice, observer)
    }

    fn take_all(&mut self) {
        self.inbox.clear();
    }
}

#[test]
fn hello_is_accepted_for_each_role() {
    let mut h = Harness::new();
    let p = h.hello(Role::Participant);
    let o = h.hello(Role::Observer);
    assert_eq!(h.take(p), vec![ServerFrame::Accepted]);
    assert_eq!(h.take(o), vec![ServerFrame::Accepted]);
    assert_eq!((h.room.participants(), h.room.observers()), (1, 1));
}

#[test]
fn full_role_refuses_the_next_and_a_freed_slot_is_reusable_at_once() {
    let mut h = Harness::with(RoomConfig {
        max_participants: 2,
        max_observers: 1,
        ..RoomConfig::default()
    });
    let a = h.hello(Role::Participant);
    h.hello(Role::Participant);
    let third = h.hello(Role::Participant);
    assert_eq!(h.take(third), vec![ServerFrame::Full]);
    assert_eq!(h.closed.get(&third), Some(&CloseReason::Full));
    h.hello(Role::Observer);
    let o2 = h.hello(Role::Observer);
    assert_eq!(h.take(o2), vec![ServerFrame::Full]);

    h.drop_conn(a);
    let again = h.hello(Role::Participant);
    assert_eq!(h.take(again), vec![ServerFrame::Accepted]);
}

#[test]
fn default_capacity_is_255_of_each() {
    let mut h = Harness::new();
    for _ in 0..255 {
        h.hello(Role::Participant);
        h.hello(Role::Observer);
    }
    h.take_all();
    let p = h.hello(Role::Participant);
    let o = h.hello(Role::Observer);
    assert_eq!(h.take(p), vec![ServerFrame::Full]);
    assert_eq!(h.take(o), vec![ServerFrame::Full]);
    assert_eq!((h.room.participants(), h.room.observers()), (255, 255));
}

#[test]
fn accepted_name_joins_the_room_including_the_newcomer() {
    let mut h = Harness::new();
    let o = h.hello(Role::Observer);
    let naming = h.hello(Role::Participant);
    h.take_all();
    let p = h.hello(Role::Participant);
    h.send(p, ClientFrame::Username("alice".into()));
    assert_eq!(
        h.take(p),
        vec![
            ServerFrame::Accepted,
            ServerFrame::UsernameAccepted,
            joined("alice")
        ]
    );
    assert_eq!(h.take(o), vec![joined("alice")]);
    assert_eq!(h.take(naming), vec![], "not in the room until named");
}

#[test]
fn invalid_names_are_refused() {
    let mut h = Harness::new();
    for (bad, broken) in [
        ("", UsernameError::Empty),
        ("elevenchars", UsernameError::TooLong),
        ("a b", UsernameError::Whitespace(' ')),
        ("tab\there", UsernameError::Whitespace('\t')),
        ("bell\u{7}", UsernameError::Invisible('\u{7}')),
        ("\u{202e}x", UsernameError::Invisible('\u{202e}')),
        ("\u{301}x", UsernameError::LeadingMark),
        ("@bob", UsernameError::StartsWithAt('@')),
        (">bob:", UsernameError::LinePrefix('>')),
        ("%bob", UsernameError::LinePrefix('%')),
        ("bob:", UsernameError::Colon(':')),
        ("a\u{ff1a}b", UsernameError::Colon('\u{ff1a}')),
    ] {
        // A fresh participant each: more than ten refusals would end one.
        let p = h.hello(Role::Participant);
        h.take_all();
        h.send(p, ClientFrame::Username(bad.into()));
        assert_eq!(h.take(p), invalid(broken), "{bad:?}");
    }
    let p = h.hello(Role::Participant);
    h.take_all();
    h.send(p, ClientFrame::Username("tenchars10".into()));
    assert_eq!(h.take(p)[0], ServerFrame::UsernameAccepted);
}

#[test]
fn taken_name_is_refused_and_freed_on_leave() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.hello(Role::Participant);
    h.take_all();
    h.send(b, ClientFrame::Username("alice".into()));
    assert_eq!(h.take(b), vec![ServerFrame::UsernameTaken]);
    h.send(b, ClientFrame::Username("Alice".into()));
    assert_eq!(h.take(b), vec![ServerFrame::UsernameTaken]);
    assert_eq!(h.room.tally().names_refused, 2, "each refusal counted once");
    h.drop_conn(a);
    h.send(b, ClientFrame::Username("alice".into()));
    assert_eq!(h.take(b)[0], ServerFrame::UsernameAccepted);
    assert_eq!(
        h.room.tally().names_refused,
        2,
        "an accepted name is no refusal"
    );
}

#[test]
fn names_equal_after_normalization_collide() {
    let mut h = Harness::new();
    h.participant("jos\u{e9}");
    let b = h.hello(Role::Participant);
    h.take_all();
    h.send(b, ClientFrame::Username("jose\u{301}".into()));
    assert_eq!(h.take(b), vec![ServerFrame::UsernameTaken]);
}

#[test]
fn look_alike_of_an_active_name_is_taken_until_it_leaves() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.hello(Role::Participant);
    h.take_all();
    for look_alike in [
        "\u{430}lice",                              // Cyrillic a
        "\u{430}li\u{441}\u{435}",                  // Cyrillic a, c, e
        "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}", // full-width
    ] {
        h.send(b, ClientFrame::Username(look_alike.into()));
        assert_eq!(h.take(b), too_similar("alice"), "{look_alike:?}");
    }
    for (invisible, c) in [
        ("alice\u{fe0f}", '\u{fe0f}'),
        ("al\u{34f}ice", '\u{34f}'),
        ("\u{3164}", '\u{3164}'),
        ("\u{2800}", '\u{2800}'),
    ] {
        h.send(b, ClientFrame::Username(invisible.into()));
        assert_eq!(
            h.take(b),
            invalid(UsernameError::Invisible(c)),
            "{invisible:?}"
        );
    }
    assert_eq!(h.room.names().collect::<Vec<_>>(), vec!["alice"]);
    h.drop_conn(a);
    h.send(b, ClientFrame::Username("\u{430}lice".into()));
    assert_eq!(h.take(b)[0], ServerFrame::UsernameAccepted);
    assert_eq!(h.room.names().collect::<Vec<_>>(), vec!["\u{430}lice"]);
}

#[test]
fn names_differing_only_in_case_are_the_same_name_and_in_use() {
    let mut h = Harness::new();
    let a = h.participant("Alice");
    let b = h.hello(Role::Participant);
    h.take_all();
    for same in ["alice", "ALICE", "aLiCe", "Alice"] {
        h.send(b, ClientFrame::Username(same.into()));
        assert_eq!(h.take(b), vec![ServerFrame::UsernameTaken], "{same:?}");
    }
    assert_eq!(h.room.names().collect::<Vec<_>>(), vec!["Alice"]);
    // Once she leaves the name is free, in the case its new owner types.
    h.drop_conn(a);
    h.send(b, ClientFrame::Username("ALICE".into()));
    assert_eq!(h.take(b)[0], ServerFrame::UsernameAccepted);
    assert_eq!(h.room.names().collect::<Vec<_>>(), vec!["ALICE"]);
}

#[test]
fn look_alikes_are_too_similar_and_the_refusal_names_the_holder() {
    let mut h = Harness::new();
    h.participant("alice");
    h.participant("Ian");
    h.participant("bob");
    let p = h.hello(Role::Participant);
    h.take_all();
    for (look_alike, holder) in [
        ("a1ice", "alice"),
        ("A1ICE", "alice"),
        ("\u{410}lice", "alice"),
        ("lan", "Ian"),
        ("IAN", "Ian"),
        ("b0b", "bob"),
        ("\u{392}\u{39f}\u{392}", "bob"),
    ] {
        h.send(p, ClientFrame::Username(look_alike.into()));
        let want = if holder.eq_ignore_ascii_case(look_alike) {
            vec![ServerFrame::UsernameTaken]
        } else {
            too_similar(holder)
        };
        assert_eq!(h.take(p), want, "{look_alike:?}");
    }
    // Neither the same nor alike: `ian` and `lan` differ in lower case.
    h.send(p, ClientFrame::Username("ian2".into()));
    assert_eq!(h.take(p)[0], ServerFrame::UsernameAccepted);
}

#[test]
fn a_too_similar_holder_is_shown_as_it_typed_its_name() {
    let mut h = Harness::new();
    h.participant("\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}");
    let p = h.hello(Role::Participant);
    h.take_all();
    h.send(p, ClientFrame::Username("alice".into()));
    assert_eq!(
        h.take(p),
        too_similar("\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}")
    );
}

#[test]
fn anonymous_is_refused_in_any_case_and_look_alike() {
    let mut h = Harness::new();
    let p = h.hello(Role::Participant);
    h.take_all();
    for name in [
        "Anonymous",
        "anonymous",
        "ANONYMOUS",
        "\u{410}n\u{43e}nym\u{43e}us",
    ] {
        h.send(p, ClientFrame::Username(name.into()));
        assert_eq!(
            h.take(p),
            vec![name_reserved(ANONYMOUS), ServerFrame::UsernameTaken],
            "{name:?}"
        );
    }
    assert_eq!(h.room.names().count(), 0);
    h.send(p, ClientFrame::Username("Anon".into()));
    assert_eq!(h.take(p)[0], ServerFrame::UsernameAccepted);
}

#[test]
fn private_line_to_a_look_alike_reaches_the_name_it_looks_like() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.participant("bob");
    h.take_all();
    h.chat(b, "@\u{430}lice psst");
    assert_eq!(h.take(a), vec![private_line("bob", "@\u{430}lice psst")]);
    assert_eq!(h.room.tally().warnings, 0);
    h.chat(b, "@alic psst");
    assert_eq!(h.take(a), vec![]);
    assert_eq!(h.take(b), vec![no_such_user("alic")]);
    h.chat(b, "@nobody psst");
    assert_eq!(h.take(b), vec![no_such_user("nobody")]);
    assert_eq!(h.room.tally().warnings, 2, "each warning counted once");
}

#[test]
fn private_lines_are_addressed_case_insensitively() {
    let mut h = Harness::new();
    let alice = h.participant("alice");
    let ian = h.participant("Ian");
    let bob = h.participant("bob");
    let ian_small = h.participant("ian2");
    h.take_all();
    for (line, to, from_name) in [
        ("@Alice hi", alice, "bob"),
        ("@ALICE hi", alice, "bob"),
        ("@\u{410}LICE hi", alice, "bob"),
        ("@ian hi", ian, "bob"),
        // A look-alike across case still reaches the one it looks like.
        ("@lan hi", ian, "bob"),
        ("@IAN2 hi", ian_small, "bob"),
    ] {
        h.chat(bob, line);
        assert_eq!(h.take(to), vec![private_line(from_name, line)], "{line:?}");
        assert_eq!(h.take(bob), vec![], "{line:?}");
    }
}

#[test]
fn two_asking_for_the_same_free_name_exactly_one_wins() {
    let mut h = Harness::new();
    let a = h.hello(Role::Participant);
    let b = h.hello(Role::Participant);
    h.take_all();
    h.send(a, ClientFrame::Username("sam".into()));
    h.send(b, ClientFrame::Username("sam".into()));
    assert_eq!(h.take(a)[0], ServerFrame::UsernameAccepted);
    assert_eq!(h.take(b), vec![ServerFrame::UsernameTaken]);
    assert_eq!(h.room.names().collect::<Vec<_>>(), vec!["sam"]);
}

#[test]
fn username_times_out_after_60_s() {
    let mut h = Harness::new();
    let p = h.hello(Role::Participant);
    let o = h.hello(Role::Observer);
    h.take_all();
    h.advance(Duration::from_millis(59_999));
    assert!(h.closed.is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take(p), vec![ServerFrame::UsernameTimeout]);
    assert_eq!(h.closed.get(&p), Some(&CloseReason::UsernameTimeout));
    assert_eq!(h.take(o), vec![left("Anonymous")]);
    assert_eq!(h.room.participants(), 0);
}

#[test]
fn taken_and_invalid_replies_restart_the_timer() {
    let mut h = Harness::new();
    h.participant("taken");
    let p = h.hello(Role::Participant);
    h.advance(Duration::from_secs(50));
    h.send(p, ClientFrame::Username("bad name".into()));
    h.advance(Duration::from_secs(50));
    h.send(p, ClientFrame::Username("taken".into()));
    h.advance(Duration::from_secs(59));
    assert!(!h.closed.contains_key(&p), "alive at 159 s");
    assert_eq!(h.room.poll_timeout(), Some(h.now + Duration::from_secs(1)));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.closed.get(&p), Some(&CloseReason::UsernameTimeout));
}

#[test]
fn accepted_name_stops_the_timer() {
    let mut h = Harness::new();
    let p = h.participant("alice");
    assert_eq!(h.room.poll_timeout(), None);
    h.advance(Duration::from_secs(3600));
    assert!(!h.closed.contains_key(&p));
}

#[test]
fn silent_connection_is_closed_at_the_hello_timeout() {
    let mut h = Harness::new();
    let c = h.open();
    h.advance(Duration::from_secs(59));
    assert!(h.closed.is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.closed.get(&c), Some(&CloseReason::HelloTimeout));
    assert!(matches!(h.take(c)[..], [ServerFrame::ProtocolError(_)]));
    assert_eq!(h.room.connections(), 0);
}

#[test]
fn public_line_reaches_everyone_else_with_the_14_character_prefix() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.participant("bob");
    let o = h.hello(Role::Observer);
    let naming = h.hello(Role::Participant);
    h.take_all();
    h.chat(a, "hi");
    assert_eq!(h.take(b), vec![public_line("alice", "hi")]);
    assert_eq!(h.take(o), vec![public_line("alice", "hi")]);
    assert_eq!(h.take(a), vec![], "no echo to the sender");
    assert_eq!(
        h.take(naming),
        vec![],
        "unnamed participants are not in the room"
    );
}

#[test]
fn private_line_reaches_only_its_target() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.participant("bob");
    let c = h.participant("carol");
    let o = h.hello(Role::Observer);
    h.take_all();
    h.chat(a, "@bob secret stuff");
    assert_eq!(h.take(b), vec![private_line("alice", "@bob secret stuff")]);
    assert_eq!(h.take(c), vec![]);
    assert_eq!(h.take(o), vec![]);
    assert_eq!(h.take(a), vec![]);
}

#[test]
fn private_line_to_unknown_name_warns_the_sender_alone() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.participant("bob");
    h.take_all();
    h.chat(a, "@nobody hello");
    assert_eq!(h.take(a), vec![no_such_user("nobody")]);
    assert_eq!(h.take(b), vec![]);
}

#[test]
fn private_line_without_a_space_is_not_delivered() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.participant("bob");
    h.take_all();
    h.chat(a, "@bob");
    assert!(matches!(&h.take(a)[..], [ServerFrame::Notice(_)]));
    assert_eq!(h.take(b), vec![]);
}

#[test]
fn line_over_1000_characters_is_never_delivered() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.participant("bob");
    h.take_all();
    h.chat(a, &"é".repeat(1001));
    assert_eq!(h.take(b), vec![]);
    assert_eq!(h.take(a), vec![too_long_warning()]);
    let whole = "é".repeat(1000);
    h.chat(a, &whole);
    assert_eq!(h.take(b), vec![public_line("alice", &whole)]);
}

#[test]
fn leaving_is_announced_with_the_name_or_anonymous() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let o = h.hello(Role::Observer);
    let anon = h.hello(Role::Participant);
    h.take_all();
    h.drop_conn(a);
    h.drop_conn(anon);
    h.drop_conn(anon);
    assert_eq!(h.take(o), vec![left("alice"), left("Anonymous")]);
}

#[test]
fn observers_leaving_and_unadmitted_connections_are_not_announced() {
    let mut h = Harness::new();
    let o1 = h.hello(Role::Observer);
    let o2 = h.hello(Role::Observer);
    let silent = h.open();
    h.take_all();
    h.drop_conn(o2);
    h.drop_conn(silent);
    assert_eq!(h.take(o1), vec![]);
}

#[test]
fn out_of_place_frames_get_a_notice_and_reach_nobody() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let o = h.hello(Role::Observer);
    let naming = h.hello(Role::Participant);
    h.take_all();
    h.send(o, ClientFrame::Chat("from an observer".into()));
    h.send(o, ClientFrame::Username("obs".into()));
    h.send(o, ClientFrame::Hello(Role::Participant));
    h.send(naming, ClientFrame::Chat("too early".into()));
    h.send(a, ClientFrame::Hello(Role::Observer));
    h.send(a, ClientFrame::Username("again".into()));
    assert_eq!(
        h.take(o),
        vec![
            observers_only_read(),
            observers_only_read(),
            observers_only_read()
        ]
    );
    assert_eq!(h.take(naming), vec![choose_a_username_first()]);
    assert_eq!(h.take(a), vec![hello_again(), already_named()]);
    assert!(h.inbox.is_empty());
    assert!(h.closed.is_empty());
    assert_eq!(h.room.names().collect::<Vec<_>>(), vec!["alice"]);
}

#[test]
fn first_frame_other_than_hello_is_a_violation() {
    let mut h = Harness::new();
    let c = h.open();
    h.send(c, ClientFrame::Chat("hi".into()));
    assert_eq!(h.take(c), vec![first_frame_must_be_hello()]);
    assert_eq!(h.closed.get(&c), Some(&CloseReason::Violation));
}

#[test]
fn violation_closes_with_a_reason_and_announces_the_leave() {
    let (mut h, a, o) = Harness::alice_and_an_observer();
    h.room
        .handle_violation(h.now, a, &FrameError::TooLong(u32::MAX));
    h.pump();
    assert_eq!(
        h.take(a),
        vec![ServerFrame::ProtocolError(
            "frame length 4294967295 exceeds the maximum of 65536".into()
        )]
    );
    assert_eq!(h.closed.get(&a), Some(&CloseReason::Violation));
    assert_eq!(h.take(o), vec![left("alice")]);
    h.chat(a, "after close");
    assert!(h.inbox.is_empty(), "closed connections are ignored");
}

#[test]
fn shutdown_tells_everyone_and_closes_all() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let o = h.hello(Role::Observer);
    let silent = h.open();
    h.take_all();
    h.room.shutdown(h.now);
    h.pump();
    for c in [a, o, silent] {
        assert_eq!(h.take(c), vec![shutdown_notice()]);
        assert_eq!(h.closed.get(&c), Some(&CloseReason::Shutdown));
    }
    assert_eq!(h.room.connections(), 0);
}

#[test]
fn a_broadcast_is_one_output_encoded_once_for_every_member_but_the_sender() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.participant("bob");
    let c = h.participant("carol");
    h.take_all();
    let said = |h: &mut Harness, line: &str| {
        h.room
            .handle_frame(h.now, a, ClientFrame::Chat(line.into()));
        let out = h.room.poll_output().expect("an output");
        assert!(
            h.room.poll_output().is_none(),
            "one output for the whole room"
        );
        out
    };
    let first = said(&mut h, "x");
    let Output::Broadcast { to, except, frame } = &first else {
        panic!("not a broadcast: {first:?}");
    };
    assert_eq!(to[..], [a, b, c], "the members, in connection order");
    assert_eq!(*except, Some(a));
    let got: Vec<ConnId> = first.deliveries().map(|(to, _)| to).collect();
    assert_eq!(got, [b, c]);
    assert!(
        first
            .deliveries()
            .all(|(_, f)| f.as_ptr() == frame.as_ptr())
    );
    // The same list until the membership changes.
    let second = said(&mut h, "y");
    let Output::Broadcast { to: again, .. } = &second else {
        panic!("not a broadcast");
    };
    assert!(Arc::ptr_eq(to, again), "the members' list is shared");
    let d = h.participant("dave");
    h.take_all();
    let third = said(&mut h, "z");
    let Output::Broadcast { to: now, .. } = &third else {
        panic!("not a broadcast");
    };
    assert_eq!(now[..], [a, b, c, d]);
}

#[test]
fn excess_lines_are_held_and_come_out_later_in_order_none_lost() {
    let mut h = Harness::new();
    let flooder = h.participant("flooder");
    let reader = h.participant("reader");
    h.take_all();
    // A second later every bucket is full again (the name took a token).
    h.advance(Duration::from_secs(1));
    // 25 lines at once: the burst of 10 goes now, the rest are held.
    for i in 0..25 {
        h.chat(flooder, &format!("line {i}"));
    }
    let now: Vec<_> = (0..10)
        .map(|i| public_line("flooder", &format!("line {i}")))
        .collect();
    assert_eq!(h.take(reader), now);
    assert!(h.room.is_throttled(flooder));
    // The first line held (its bucket empty) and the fourteen behind it
    // (queued after a held one) are each counted once as delayed.
    assert_eq!(h.room.tally().flood_delayed, 15);
    // Then one every 200 ms, at exactly that instant and not a tick before.
    for i in 10..25 {
        let due = h.room.poll_timeout().expect("a held line is due");
        h.advance(due - h.now - Duration::from_nanos(1));
        assert_eq!(h.take(reader), vec![], "line {i} came early");
        h.advance(Duration::from_nanos(1));
        assert_eq!(
            h.take(reader),
            vec![public_line("flooder", &format!("line {i}"))]
        );
    }
    assert!(!h.room.is_throttled(flooder));
    assert_eq!(h.room.poll_timeout(), None, "nothing else is due");
    assert_eq!(
        h.room.tally().flood_delayed,
        15,
        "a release is no new delay"
    );
    // The flooder never hears its own lines; warnings would show here.
    assert_eq!(h.take(flooder), vec![]);
}

#[test]
fn a_throttled_sender_does_not_slow_anyone_else() {
    let mut h = Harness::new();
    let flooder = h.participant("flooder");
    let calm = h.participant("calm");
    let reader = h.participant("reader");
    h.take_all();
    // A second later every bucket is full again (the name took a token).
    h.advance(Duration::from_secs(1));
    for i in 0..15 {
        h.chat(flooder, &format!("flood {i}"));
    }
    h.chat(calm, "hello");
    let got = h.take(reader);
    assert_eq!(got.len(), 11);
    assert_eq!(got[10], public_line("calm", "hello"));
    assert!(!h.room.is_throttled(calm));
}

#[test]
fn hello_is_free_and_names_count_against_the_allowance() {
    let mut h = Harness::with(RoomConfig {
        flood: FloodLimit::new(1, 2),
        ..RoomConfig::default()
    });
    let p = h.hello(Role::Participant);
    assert_eq!(h.take(p), vec![ServerFrame::Accepted]);
    h.send(p, ClientFrame::Username("a b".into()));
    h.send(p, ClientFrame::Username("c d".into()));
    h.send(p, ClientFrame::Username("alice".into()));
    let mut refused = invalid(UsernameError::Whitespace(' '));
    refused.extend(invalid(UsernameError::Whitespace(' ')));
    assert_eq!(h.take(p), refused);
    assert!(h.room.is_throttled(p));
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.take(p),
        vec![ServerFrame::UsernameAccepted, joined("alice")]
    );
}

#[test]
fn flood_control_off_takes_every_line_at_once() {
    let mut h = Harness::with(RoomConfig {
        flood: None,
        ..RoomConfig::default()
    });
    let flooder = h.participant("flooder");
    let reader = h.participant("reader");
    h.take_all();
    for i in 0..1000 {
        h.chat(flooder, &format!("{i}"));
    }
    assert_eq!(h.take(reader).len(), 1000);
    assert!(!h.room.is_throttled(flooder));
    assert_eq!(h.room.poll_timeout(), None);
}

#[test]
fn a_held_line_is_dropped_with_its_sender_and_announced_once() {
    let mut h = Harness::new();
    let flooder = h.participant("flooder");
    let reader = h.participant("reader");
    h.take_all();
    for i in 0..12 {
        h.chat(flooder, &format!("{i}"));
    }
    h.take_all();
    h.drop_conn(flooder);
    assert_eq!(h.take(reader), vec![left("flooder")]);
    assert_eq!(
        h.room.poll_timeout(),
        None,
        "no release left for a gone sender"
    );
    h.advance(Duration::from_secs(10));
    assert_eq!(h.take(reader), vec![]);
}

#[test]
fn a_held_username_attempt_goes_before_the_deadline_it_arrived_before() {
    let mut h = Harness::with(RoomConfig {
        flood: FloodLimit::new(1, 1),
        username_timeout: Duration::from_secs(2),
        ..RoomConfig::default()
    });
    let p = h.hello(Role::Participant);
    h.take_all();
    h.advance(Duration::from_millis(1500));
    // One refused name restarts the 2 s clock (deadline now + 2 s); the
    // next attempt waits 1 s for its token and still beats the deadline.
    h.send(p, ClientFrame::Username("a b".into()));
    h.send(p, ClientFrame::Username("bob".into()));
    assert_eq!(h.take(p), invalid(UsernameError::Whitespace(' ')));
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.take(p),
        vec![ServerFrame::UsernameAccepted, joined("bob")]
    );
}

#[test]
fn timeouts_too_long_for_the_clock_never_panic() {
    let mut h = Harness::with(RoomConfig {
        hello_timeout: Duration::MAX,
        username_timeout: Duration::MAX,
        naming_ceiling: Duration::MAX,
        ..RoomConfig::default()
    });
    let silent = h.open();
    let naming = h.hello(Role::Participant);
    h.take_all();
    h.now += Duration::from_secs(10 * 365 * 24 * 60 * 60);
    h.room.handle_timeout(h.now);
    h.pump();
    assert!(h.closed.is_empty(), "a huge timeout means never, not now");
    assert!(h.room.poll_timeout().is_some_and(|at| at > h.now));
    assert_eq!(h.room.connections(), 2, "{silent} and {naming} still there");
}

/// The eleven names a squatter cycles through: invalid and taken by turns.
fn refused_name(i: u32) -> String {
    if i.is_multiple_of(2) {
        format!("bad name {i}")
    } else {
        "taken".into()
    }
}

#[test]
fn the_eleventh_refused_name_ends_the_connection() {
    let mut h = Harness::new();
    h.participant("taken");
    let o = h.hello(Role::Observer);
    let p = h.hello(Role::Participant);
    h.take_all();
    for i in 0..MAX_REFUSED_NAMES {
        // Half a second apart: within the flood allowance, so every
        // attempt is answered at once.
        h.advance(Duration::from_millis(500));
        h.send(p, ClientFrame::Username(refused_name(i)));
        let reply = h.take(p);
        let want = if i.is_multiple_of(2) {
            invalid(UsernameError::Whitespace(' '))
        } else {
            vec![ServerFrame::UsernameTaken]
        };
        assert_eq!(reply, want, "attempt {i}");
    }
    assert!(h.closed.is_empty());
    h.advance(Duration::from_millis(500));
    h.send(p, ClientFrame::Username(refused_name(MAX_REFUSED_NAMES)));
    assert_eq!(
        h.take(p),
        vec![too_many_names(10), ServerFrame::UsernameTimeout]
    );
    assert_eq!(h.closed.get(&p), Some(&CloseReason::UsernameTimeout));
    assert_eq!(h.take(o), vec![left("Anonymous")]);
    assert_eq!(h.room.participants(), 1);
}

#[test]
fn a_good_name_after_ten_refusals_is_accepted() {
    let mut h = Harness::new();
    h.participant("taken");
    let p = h.hello(Role::Participant);
    h.take_all();
    for i in 0..MAX_REFUSED_NAMES {
        h.advance(Duration::from_millis(500));
        h.send(p, ClientFrame::Username(refused_name(i)));
    }
    h.take_all();
    h.advance(Duration::from_millis(500));
    h.send(p, ClientFrame::Username("patient".into()));
    assert_eq!(h.take(p)[0], ServerFrame::UsernameAccepted);
}

#[test]
fn the_naming_ceiling_ends_naming_however_often_the_timer_restarts() {
    let mut h = Harness::new();
    h.participant("taken");
    let o = h.hello(Role::Observer);
    // Connected 30 s before its Hello: the ceiling counts from Accepted.
    let p = h.open();
    h.advance(Duration::from_secs(30));
    h.send(p, ClientFrame::Hello(Role::Participant));
    let accepted = h.now;
    h.take_all();
    // A refusal every 50 s restarts the 60 s timer each time...
    for i in 1..=5u32 {
        h.advance(Duration::from_secs(50));
        h.send(p, ClientFrame::Username(refused_name(i)));
        let verdict = h.take(p).pop();
        assert!(matches!(
            verdict,
            Some(ServerFrame::UsernameInvalid | ServerFrame::UsernameTaken)
        ));
    }
    // ...at 250 s; the timer would run to 310 s, the ceiling stops it at 300.
    assert_eq!(h.room.poll_timeout(), Some(accepted + NAMING_CEILING));
    h.advance(Duration::from_millis(49_999));
    assert!(h.closed.is_empty(), "alive just before the ceiling");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.now, accepted + NAMING_CEILING);
    assert_eq!(h.take(p), vec![ServerFrame::UsernameTimeout]);
    assert_eq!(h.closed.get(&p), Some(&CloseReason::UsernameTimeout));
    assert_eq!(h.take(o), vec![left("Anonymous")]);
}

#[test]
fn a_refusal_near_the_ceiling_does_not_move_it() {
    let mut h = Harness::new();
    let p = h.hello(Role::Participant);
    let accepted = h.now;
    h.take_all();
    for at in [50, 100, 150, 200, 250, 290] {
        h.advance(accepted + Duration::from_secs(at) - h.now);
        h.send(p, ClientFrame::Username("a b".into()));
        assert_eq!(
            h.take(p),
            invalid(UsernameError::Whitespace(' ')),
            "at {at} s"
        );
    }
    assert_eq!(h.room.poll_timeout(), Some(accepted + NAMING_CEILING));
    h.advance(Duration::from_secs(10));
    assert_eq!(h.take(p), vec![ServerFrame::UsernameTimeout]);
}

#[test]
fn the_frame_limit_follows_the_state_and_only_grows() {
    let mut h = Harness::new();
    let fresh = h.open();
    assert_eq!(h.room.frame_limit(fresh), HELLO_LIMIT);
    let naming = h.hello(Role::Participant);
    assert_eq!(h.room.frame_limit(naming), NAMING_LIMIT);
    let named = h.participant("alice");
    assert_eq!(h.room.frame_limit(named), MEMBER_LIMIT);
    let observer = h.hello(Role::Observer);
    assert_eq!(h.room.frame_limit(observer), MEMBER_LIMIT);
    assert_eq!(h.room.frame_limit(ConnId::MAX), HELLO_LIMIT, "unknown");
    assert_eq!(
        (
            HELLO_LIMIT.max_payload,
            NAMING_LIMIT.max_payload,
            MEMBER_LIMIT.max_payload
        ),
        (2, 122, 4003)
    );
    // Only a member's long frames are skipped; before that they are fatal.
    assert_eq!(HELLO_LIMIT.oversize, Oversize::Refuse);
    assert_eq!(NAMING_LIMIT.oversize, Oversize::Refuse);
    assert_eq!(MEMBER_LIMIT.oversize, Oversize::Skip);
}

#[test]
fn an_oversized_frame_from_a_member_is_only_warned_about() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.participant("bob");
    let o = h.hello(Role::Observer);
    h.take_all();
    // Full buckets: a frame this long costs all ten tokens.
    h.advance(Duration::from_secs(2));
    h.room.handle_oversized(h.now, a, 60_000);
    h.pump();
    assert_eq!(h.take(a), vec![too_long_warning()]);
    h.room.handle_oversized(h.now, o, 60_000);
    h.pump();
    assert_eq!(h.take(o), vec![observers_only_read()]);
    assert_eq!(h.take(b), vec![], "nothing reaches anyone else");
    assert!(h.closed.is_empty());
}

#[test]
fn an_oversized_frame_before_naming_is_a_violation() {
    let mut h = Harness::new();
    let o = h.hello(Role::Observer);
    let p = h.hello(Role::Participant);
    h.take_all();
    h.room.handle_oversized(h.now, p, 5000);
    h.pump();
    assert_eq!(
        h.take(p),
        vec![ServerFrame::ProtocolError(
            "frame length 5000 exceeds the limit of 122 bytes before a username is accepted".into()
        )]
    );
    assert_eq!(h.closed.get(&p), Some(&CloseReason::Violation));
    assert_eq!(h.take(o), vec![left("Anonymous")]);
}

#[test]
fn an_oversized_frame_costs_its_sender_like_a_long_line() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.participant("bob");
    h.take_all();
    h.advance(Duration::from_secs(2));
    // 65,536 bytes cost a whole bucket: the next line waits.
    h.room.handle_oversized(h.now, a, 65_536);
    h.chat(a, "after");
    assert!(h.room.is_throttled(a));
    assert_eq!(h.take(a), vec![too_long_warning()]);
    assert_eq!(h.take(b), vec![]);
    h.advance(Duration::from_millis(200));
    assert_eq!(h.take(b), vec![public_line("alice", "after")]);
}

#[test]
fn a_reused_connection_id_is_refused_and_changes_nothing() {
    let (mut h, a, o) = Harness::alice_and_an_observer();
    assert!(!h.room.handle_open(h.now, a), "a reused id is refused");
    h.pump();
    assert!(h.inbox.is_empty() && h.closed.is_empty());
    // The connection that had the id is untouched: still named, still in
    // the room, still on no deadline.
    assert_eq!(h.room.connections(), 2);
    assert_eq!(h.room.names().collect::<Vec<_>>(), ["alice"]);
    assert_eq!(h.room.poll_timeout(), None);
    h.chat(a, "still me");
    assert_eq!(h.take(o), vec![public_line("alice", "still me")]);
}

#[test]
fn blank_lines_are_dropped_without_a_word() {
    let (mut h, a, o) = Harness::alice_and_an_observer();
    for blank in ["", " ", "\t \u{3000}"] {
        h.chat(a, blank);
    }
    assert!(h.inbox.is_empty(), "{:?}", h.inbox);
    h.chat(a, " x ");
    assert_eq!(h.take(o), vec![public_line("alice", " x ")]);
}

/// `@` followed by a space, or alone, names nobody: the sender is told a
/// name is missing (not that the user "" doesn't exist), and nothing is
/// delivered to anyone.
#[test]
fn private_line_without_a_name_says_the_name_is_missing() {
    let mut h = Harness::new();
    let a = h.participant("alice");
    let b = h.participant("bob");
    h.take_all();
    for line in ["@ hi", "@", "@  bob hi"] {
        h.chat(a, line);
        assert_eq!(
            h.take(a),
            vec![crate::protocol::private_needs_a_name()],
            "{line:?}"
        );
        assert_eq!(h.take(b), vec![], "{line:?}");
    }
}

#[test]
fn a_name_the_same_up_to_case_is_reached_before_a_look_alike() {
    let mut h = Harness::new();
    let ian = h.participant("ian");
    let lan = h.participant("lan");
    let bob = h.participant("bob");
    h.take_all();
    // `Ian` is `ian` up to case and looks like `lan`: case wins.
    h.chat(bob, "@Ian hi");
    assert_eq!(h.take(ian), vec![private_line("bob", "@Ian hi")]);
    assert_eq!(h.take(lan), vec![]);
    h.drop_conn(ian);
    h.take_all();
    h.chat(bob, "@Ian hi");
    assert_eq!(h.take(lan), vec![private_line("bob", "@Ian hi")]);
}

/// The roster `conn` gets when it asks.
fn roster_for(h: &mut Harness, conn: ConnId) -> ServerFrame {
    h.take_all();
    h.send(conn, ClientFrame::Who);
    let mut answer = h.take(conn);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(
        h.inbox.is_empty(),
        "only the asker is answered: {:?}",
        h.inbox
    );
    answer.remove(0)
}

fn roster(participants: &[&str], observers: u32) -> ServerFrame {
    ServerFrame::Roster {
        participants: participants.iter().map(|&p| p.to_owned()).collect(),
        observers,
    }
}

#[test]
fn the_roster_lists_names_in_the_order_they_joined_and_counts_observers() {
    let mut h = Harness::new();
    let watcher = h.hello(Role::Observer);
    assert_eq!(roster_for(&mut h, watcher), roster(&[], 1));
    let carol = h.participant("carol");
    let alice = h.participant("alice");
    let naming = h.hello(Role::Participant);
    let bob = h.participant("bob");
    let second = h.hello(Role::Observer);
    // In the order they joined, not by name or by connection; the one
    // still choosing a name is not in it.
    assert_eq!(
        roster_for(&mut h, alice),
        roster(&["carol", "alice", "bob"], 2)
    );
    // A rename that fails changes nothing.
    h.send(alice, ClientFrame::Username("zed".into()));
    h.send(naming, ClientFrame::Username("Carol".into()));
    h.send(naming, ClientFrame::Username("a b".into()));
    assert_eq!(
        roster_for(&mut h, second),
        roster(&["carol", "alice", "bob"], 2)
    );
    // Leaving takes a name out; joining again goes to the end.
    h.drop_conn(carol);
    h.drop_conn(second);
    assert_eq!(roster_for(&mut h, bob), roster(&["alice", "bob"], 1));
    h.send(naming, ClientFrame::Username("carol".into()));
    assert_eq!(
        roster_for(&mut h, watcher),
        roster(&["alice", "bob", "carol"], 1)
    );
    h.drop_conn(watcher);
    assert_eq!(
        roster_for(&mut h, naming),
        roster(&["alice", "bob", "carol"], 0)
    );
}

#[test]
fn a_full_room_roster_is_one_frame_with_every_name() {
    let mut h = Harness::with(RoomConfig {
        flood: None,
        ..RoomConfig::default()
    });
    let names: Vec<String> = (0..MAX_PARTICIPANTS)
        .map(|i| format!("名前{i:03}🦀"))
        .collect();
    let mut last = 0;
    for name in &names {
        last = h.participant(name);
    }
    let late = h.hello(Role::Participant);
    assert_eq!(h.take(late), vec![ServerFrame::Full]);
    let observers: Vec<ConnId> = (0..3).map(|_| h.hello(Role::Observer)).collect();
    let ServerFrame::Roster {
        participants,
        observers: counted,
    } = roster_for(&mut h, last)
    else {
        panic!("not a roster");
    };
    assert_eq!(participants, names);
    assert_eq!(counted as usize, observers.len());
    let frame = crate::codec::encode(&roster(&[], 0)).expect("an empty roster");
    assert!(frame.len() < 8);
}

#[test]
fn only_members_may_ask_who_is_here() {
    let mut h = Harness::new();
    let naming = h.hello(Role::Participant);
    h.take_all();
    h.send(naming, ClientFrame::Who);
    assert_eq!(h.take(naming), vec![who_before_a_name()]);
    assert!(h.closed.is_empty());
    let fresh = h.open();
    h.send(fresh, ClientFrame::Who);
    assert_eq!(h.take(fresh), vec![first_frame_must_be_hello()]);
    assert_eq!(h.closed.get(&fresh), Some(&CloseReason::Violation));
}

#[test]
fn asking_who_is_here_costs_a_line_of_the_allowance() {
    let mut h = Harness::with(RoomConfig {
        flood: FloodLimit::new(1, 2),
        ..RoomConfig::default()
    });
    let o = h.hello(Role::Observer);
    h.take_all();
    for _ in 0..3 {
        h.send(o, ClientFrame::Who);
    }
    assert_eq!(h.take(o), vec![roster(&[], 1), roster(&[], 1)]);
    assert!(h.room.is_throttled(o), "the third waits for a token");
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take(o), vec![roster(&[], 1)]);
}
