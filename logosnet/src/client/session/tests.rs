//! Rule-by-rule tests of the client's session, driven directly with frames
//! and input, no socket or terminal.

use super::*;
use crate::protocol::{
    invalid_username, joined, left, name_reserved, name_too_similar, public_line,
};
use crate::username::{ANONYMOUS, UsernameError};

const SERVER: &str = "127.0.0.1:8021";

/// What the session shows for `frame`: its text (sanitised, the texts
/// here have nothing to escape).
fn shown(frame: ServerFrame) -> Action {
    Action::Show(frame.text().unwrap_or_default().to_owned())
}

fn drain(session: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| session.poll_action()).collect()
}

fn line(text: &str) -> Input {
    Input::Line(text.to_owned())
}

fn participant_named(name: &str) -> Session {
    let mut s = Session::new(Role::Participant, SERVER);
    s.handle_frame(ServerFrame::Accepted);
    s.handle_input(line(name));
    s.handle_frame(ServerFrame::UsernameAccepted);
    drain(&mut s);
    s
}

/// Asserts that the session's next actions end it with `code` and
/// `message`.
fn assert_ends(session: &mut Session, code: u8, message: impl Into<String>) {
    let actions = drain(session);
    let end = ending(&actions).expect("the session ends");
    assert_eq!(end.exit_code(), code);
    assert_eq!(end.message(), Some(message.into()));
}

fn ending(actions: &[Action]) -> Option<&Ending> {
    actions.iter().find_map(|a| match a {
        Action::End(e) => Some(e),
        _ => None,
    })
}

#[test]
fn starts_with_hello_for_its_role() {
    for role in [Role::Participant, Role::Observer] {
        let mut s = Session::new(role, SERVER);
        assert_eq!(
            drain(&mut s),
            [
                Action::Prompt(Prompt::Waiting),
                Action::Send(ClientFrame::Hello(role))
            ]
        );
        assert!(!s.wants_input(), "no input before Accepted");
    }
}

#[test]
fn accepted_participant_is_asked_for_a_name() {
    let mut s = Session::new(Role::Participant, SERVER);
    drain(&mut s);
    s.handle_frame(ServerFrame::Accepted);
    assert_eq!(drain(&mut s), [Action::Prompt(Prompt::Username)]);
    assert!(s.wants_input());
    s.handle_input(line("Michael"));
    assert_eq!(
        drain(&mut s),
        [
            Action::Send(ClientFrame::Username("Michael".into())),
            Action::Prompt(Prompt::Waiting)
        ]
    );
    assert!(!s.wants_input(), "the next line waits for the verdict");
    s.handle_frame(ServerFrame::UsernameAccepted);
    assert_eq!(
        drain(&mut s),
        [
            Action::Prompt(Prompt::Chat("Michael".into())),
            Action::Send(ClientFrame::Who)
        ],
        "in the room, it asks who is there"
    );
    assert_eq!(Prompt::Chat("Michael".into()).text(), "> Michael: ");
    assert!(s.wants_input());
}

#[test]
fn full_ends_with_status_two() {
    let mut s = Session::new(Role::Observer, SERVER);
    s.handle_frame(ServerFrame::Full);
    assert_ends(&mut s, 2, "Server is full, try again later");
    assert!(s.is_ended());
}

#[test]
fn taken_name_asks_again() {
    let mut s = Session::new(Role::Participant, SERVER);
    s.handle_frame(ServerFrame::Accepted);
    s.handle_input(line("bob"));
    drain(&mut s);
    s.handle_frame(ServerFrame::UsernameTaken);
    assert_eq!(
        drain(&mut s),
        [
            Action::Status("Username already in use".into()),
            Action::Prompt(Prompt::Username)
        ]
    );
    assert!(s.wants_input());
}

#[test]
fn invalid_name_from_a_server_without_reasons_gets_the_clients_own() {
    let cases = [
        ("", "Invalid username: it is empty"),
        ("abcdefghijk", "Invalid username: max 10 characters"),
        ("a b", "Invalid username: no spaces or other whitespace"),
        (
            "a\u{202e}b",
            "Invalid username: no control or invisible characters (U+202E)",
        ),
        (
            "@bob",
            "Invalid username: it cannot start with @ (a private message to it could not be written)",
        ),
        ("fine", "Invalid username: the server refused it"),
    ];
    for (name, reason) in cases {
        let mut s = Session::new(Role::Participant, SERVER);
        s.handle_frame(ServerFrame::Accepted);
        drain(&mut s);
        s.handle_input(line(name));
        assert_eq!(
            drain(&mut s)[0],
            Action::Send(ClientFrame::Username(name.into())),
            "the attempt goes out so the server restarts its timer"
        );
        s.handle_frame(ServerFrame::UsernameInvalid);
        assert_eq!(
            drain(&mut s),
            [
                Action::Status(reason.into()),
                Action::Prompt(Prompt::Username)
            ]
        );
    }
}

/// A participant that has sent `name` and waits for the verdict.
fn name_sent(name: &str) -> Session {
    let mut s = Session::new(Role::Participant, SERVER);
    s.handle_frame(ServerFrame::Accepted);
    s.handle_input(line(name));
    drain(&mut s);
    s
}

#[test]
fn the_servers_reason_for_a_refusal_is_shown_as_the_clients_remark() {
    for (name, reason, verdict) in [
        (
            "a1ice",
            name_too_similar("alice"),
            ServerFrame::UsernameTaken,
        ),
        (
            "anonymous",
            name_reserved(ANONYMOUS),
            ServerFrame::UsernameTaken,
        ),
        (
            ">bob:",
            invalid_username(UsernameError::LinePrefix('>')),
            ServerFrame::UsernameInvalid,
        ),
        (
            "fine",
            invalid_username(UsernameError::Colon('\u{2236}')),
            ServerFrame::UsernameInvalid,
        ),
    ] {
        let mut s = name_sent(name);
        let text = reason.text().unwrap_or_default().to_owned();
        s.handle_frame(reason);
        assert_eq!(drain(&mut s), [], "the reason waits for the verdict");
        s.handle_frame(verdict);
        assert_eq!(
            drain(&mut s),
            [Action::Status(text), Action::Prompt(Prompt::Username)],
            "{name:?}"
        );
        // The reason was for that attempt only.
        s.handle_input(line("alice"));
        drain(&mut s);
        s.handle_frame(ServerFrame::UsernameTaken);
        assert_eq!(
            drain(&mut s),
            [
                Action::Status(NAME_IN_USE.into()),
                Action::Prompt(Prompt::Username)
            ]
        );
    }
}

#[test]
fn a_reason_is_escaped_like_any_text_from_the_server() {
    let mut s = name_sent("x");
    s.handle_frame(name_too_similar("al\u{202e}ice"));
    s.handle_frame(ServerFrame::UsernameTaken);
    assert_eq!(
        drain(&mut s)[0],
        Action::Status(
            "Username refused: too similar to al\\u{202e}ice, who is in the room".into()
        )
    );
}

#[test]
fn a_notice_that_is_no_reason_is_shown_as_a_room_line_while_naming() {
    let mut s = name_sent("x");
    s.handle_frame(joined("bob"));
    assert_eq!(drain(&mut s), [shown(joined("bob"))]);
}

#[test]
fn the_roster_is_shown_in_words_without_the_viewer() {
    let mut s = participant_named("bob");
    s.handle_frame(ServerFrame::Roster {
        participants: vec!["alice".into(), "bob".into()],
        observers: 3,
    });
    assert_eq!(
        drain(&mut s),
        [Action::Show("In the room: alice and 3 observers".into())]
    );
    let mut o = accepted(Session::new(Role::Observer, SERVER));
    o.handle_frame(ServerFrame::Roster {
        participants: vec![],
        observers: 1,
    });
    assert_eq!(
        drain(&mut o),
        [Action::Show("Nobody else is in the room".into())]
    );
}

#[test]
fn who_typed_as_the_whole_line_asks_and_anything_else_is_chat() {
    let mut s = participant_named("bob");
    s.handle_input(line(WHO_COMMAND));
    assert_eq!(drain(&mut s), [Action::Send(ClientFrame::Who)]);
    for chat in ["/who ", " /who", "/WHO", "/who alice", "/whois"] {
        s.handle_input(line(chat));
        assert_eq!(
            drain(&mut s),
            [Action::Send(ClientFrame::Chat(chat.into()))],
            "{chat:?}"
        );
    }
    let mut o = accepted(Session::new(Role::Observer, SERVER));
    o.handle_input(line(WHO_COMMAND));
    assert_eq!(drain(&mut o), [Action::Send(ClientFrame::Who)]);
    // At the name prompt it is not taken for a name.
    let mut naming = accepted(Session::new(Role::Participant, SERVER));
    naming.handle_input(line(WHO_COMMAND));
    assert!(matches!(&drain(&mut naming)[..], [Action::Status(_)]));
    assert!(naming.wants_input(), "still asked for a name");
}

#[test]
fn a_roster_nobody_asked_for_is_a_protocol_error() {
    let mut s = name_sent("bob");
    s.handle_frame(ServerFrame::Roster {
        participants: vec![],
        observers: 0,
    });
    assert_ends(
        &mut s,
        1,
        "Protocol error with the server at 127.0.0.1:8021: unexpected Roster from the server",
    );
}

#[test]
fn chat_lines_are_aligned_by_display_width() {
    let mut s = participant_named("bob");
    s.handle_frame(public_line("名前", "hi"));
    assert_eq!(drain(&mut s), [Action::Show(">       名前: hi".into())]);
}

#[test]
fn username_timeout_ends_with_status_three() {
    let mut s = Session::new(Role::Participant, SERVER);
    s.handle_frame(ServerFrame::Accepted);
    drain(&mut s);
    s.handle_frame(ServerFrame::UsernameTimeout);
    assert_ends(&mut s, 3, "Timed out choosing a username");
}

#[test]
fn chat_lines_are_sent_as_typed() {
    let mut s = participant_named("alice");
    s.handle_input(line("hello  there "));
    s.handle_input(line("@bob psst"));
    assert_eq!(
        drain(&mut s),
        [
            Action::Send(ClientFrame::Chat("hello  there ".into())),
            Action::Send(ClientFrame::Chat("@bob psst".into()))
        ]
    );
}

#[test]
fn empty_lines_are_not_sent() {
    let mut s = participant_named("alice");
    s.handle_input(line(""));
    s.handle_input(line("   "));
    assert_eq!(drain(&mut s), []);
}

#[test]
fn long_lines_are_refused_locally() {
    let mut s = participant_named("alice");
    s.handle_input(line(&"é".repeat(MAX_MESSAGE_CHARS)));
    assert!(matches!(
        &drain(&mut s)[..],
        [Action::Send(ClientFrame::Chat(_))]
    ));
    s.handle_input(line(&"x".repeat(MAX_MESSAGE_CHARS + 1)));
    assert_eq!(
        drain(&mut s),
        [Action::Status(
            "Line not sent: it has 1001 characters, the limit is 1000".into()
        )]
    );
    s.handle_input(Input::Oversized);
    assert_eq!(
        drain(&mut s),
        [Action::Status(
            "Line not sent: it is longer than 1000 characters".into()
        )]
    );
    assert!(s.wants_input(), "still chatting");
}

#[test]
fn exit_end_of_input_and_interrupt_leave_cleanly() {
    for input in [
        line("exit()"),
        line(" exit() "),
        Input::End,
        Input::Interrupt,
    ] {
        let mut s = participant_named("alice");
        s.handle_input(input.clone());
        let actions = drain(&mut s);
        assert!(
            matches!(&actions[..], [Action::End(Ending::Left)]),
            "{input:?}: {actions:?}"
        );
        assert_eq!(Ending::Left.exit_code(), 0);
    }
    // Also while choosing a name, and before being accepted.
    let mut s = Session::new(Role::Participant, SERVER);
    s.handle_frame(ServerFrame::Accepted);
    s.handle_input(line("exit()"));
    assert!(matches!(ending(&drain(&mut s)), Some(Ending::Left)));
    let mut s = Session::new(Role::Participant, SERVER);
    s.handle_input(Input::Interrupt);
    assert!(matches!(ending(&drain(&mut s)), Some(Ending::Left)));
}

#[test]
fn room_lines_are_shown_sanitised() {
    let mut s = participant_named("alice");
    s.handle_frame(public_line("bob", "\x1b[2Jhi\x07"));
    s.handle_frame(joined("bob"));
    assert_eq!(
        drain(&mut s),
        [
            shown(public_line("bob", "\\x1b[2Jhi\\x07")),
            shown(joined("bob"))
        ]
    );
}

#[test]
fn observer_watches_and_cannot_send() {
    let mut s = Session::new(Role::Observer, SERVER);
    drain(&mut s);
    s.handle_frame(ServerFrame::Accepted);
    let actions = drain(&mut s);
    assert!(matches!(
        &actions[..],
        [
            Action::Status(_),
            Action::Prompt(Prompt::Observing),
            Action::Send(ClientFrame::Who)
        ]
    ));
    s.handle_input(line("hello?"));
    assert_eq!(
        drain(&mut s),
        [Action::Status(
            "Observers cannot send messages; type exit() to leave".into()
        )]
    );
    s.handle_frame(public_line("alice", "hi"));
    assert_eq!(drain(&mut s), [shown(public_line("alice", "hi"))]);
    s.handle_input(line("exit()"));
    assert!(matches!(ending(&drain(&mut s)), Some(Ending::Left)));
}

#[test]
fn server_closing_or_erring_ends_with_status_one() {
    let mut s = participant_named("alice");
    s.handle_server_closed();
    assert_ends(
        &mut s,
        1,
        "The server at 127.0.0.1:8021 closed the connection",
    );

    let mut s = participant_named("alice");
    s.handle_frame(ServerFrame::ProtocolError("bad \x1b frame".into()));
    let actions = drain(&mut s);
    assert_eq!(
        ending(&actions).and_then(Ending::message).as_deref(),
        Some("Protocol error with the server at 127.0.0.1:8021: the server said: bad \\x1b frame")
    );
}

#[test]
fn out_of_place_frames_are_protocol_errors() {
    let mut s = participant_named("alice");
    s.handle_frame(ServerFrame::Accepted);
    let actions = drain(&mut s);
    assert_eq!(ending(&actions).map(Ending::exit_code), Some(1));
    let mut s = Session::new(Role::Participant, SERVER);
    s.handle_frame(ServerFrame::UsernameAccepted);
    assert_eq!(ending(&drain(&mut s)).map(Ending::exit_code), Some(1));
}

#[test]
fn after_leaving_room_lines_still_show_and_nothing_else_happens() {
    let mut s = participant_named("alice");
    s.handle_input(Input::End);
    drain(&mut s);
    s.handle_frame(left("bob"));
    s.handle_frame(ServerFrame::Accepted);
    s.handle_server_closed();
    s.handle_input(line("late"));
    assert_eq!(drain(&mut s), [shown(left("bob"))]);
}

fn scripted(role: Role) -> Session {
    let mut s = Session::with_input(role, SERVER, InputMode::Script);
    drain(&mut s);
    s
}

#[test]
fn script_that_never_got_a_name_ends_with_no_name() {
    // Input ran out while asked for a name, after a refusal, or while a
    // name was being judged; or the script said exit() first.
    let mut cases: Vec<(Session, Input)> = Vec::new();
    let mut naming = scripted(Role::Participant);
    naming.handle_frame(ServerFrame::Accepted);
    cases.push((naming, Input::End));
    let mut refused = scripted(Role::Participant);
    refused.handle_frame(ServerFrame::Accepted);
    refused.handle_input(line("alice"));
    refused.handle_frame(ServerFrame::UsernameTaken);
    cases.push((refused, line("exit()")));
    let mut judged = scripted(Role::Participant);
    judged.handle_frame(ServerFrame::Accepted);
    judged.handle_input(line("alice"));
    cases.push((judged, Input::End));
    for (mut s, input) in cases {
        drain(&mut s);
        s.handle_input(input);
        let actions = drain(&mut s);
        assert_eq!(ending(&actions), Some(&Ending::NoName));
        assert_eq!(Ending::NoName.exit_code(), 4);
        assert_eq!(
            Ending::NoName.message().as_deref(),
            Some("Left before any username was accepted")
        );
    }
}

#[test]
fn script_that_joined_or_was_interrupted_leaves_cleanly() {
    let mut named = scripted(Role::Participant);
    named.handle_frame(ServerFrame::Accepted);
    named.handle_input(line("alice"));
    named.handle_frame(ServerFrame::UsernameAccepted);
    drain(&mut named);
    named.handle_input(Input::End);
    assert_eq!(ending(&drain(&mut named)), Some(&Ending::Left));

    // A signal is the user's decision, named or not.
    let naming = accepted(scripted(Role::Participant));
    assert_eq!(ending_after(naming, Input::Interrupt), Some(Ending::Left));
}

#[test]
fn terminal_user_may_leave_before_naming() {
    let naming = accepted(Session::new(Role::Participant, SERVER));
    assert_eq!(ending_after(naming, Input::End), Some(Ending::Left));
}

/// `session` once the server has said `Accepted`, what that asked done.
fn accepted(mut session: Session) -> Session {
    session.handle_frame(ServerFrame::Accepted);
    drain(&mut session);
    session
}

/// How `session` ends on `input`, if it does.
fn ending_after(mut session: Session, input: Input) -> Option<Ending> {
    session.handle_input(input);
    ending(&drain(&mut session)).cloned()
}

#[test]
fn scripted_observer_is_told_how_it_stops() {
    let mut s = scripted(Role::Observer);
    s.handle_frame(ServerFrame::Accepted);
    assert_eq!(
        drain(&mut s),
        [
            Action::Status(
                "Observing the room until the server closes or Ctrl-C/SIGTERM/SIGHUP".into()
            ),
            Action::Prompt(Prompt::Observing),
            Action::Send(ClientFrame::Who)
        ]
    );
}

#[test]
fn unreadable_first_bytes_mean_not_a_logosnet_server() {
    let mut s = Session::new(Role::Participant, SERVER);
    drain(&mut s);
    assert!(!s.has_answer());
    s.handle_unreadable("frame length 1397966893 exceeds the maximum of 65536");
    assert_ends(
        &mut s,
        1,
        "127.0.0.1:8021 is not a LogosNet server (protocol v1)",
    );
}

#[test]
fn a_tls_record_first_means_the_port_speaks_tls() {
    let mut s = Session::new(Role::Observer, SERVER);
    drain(&mut s);
    s.handle_tls_record();
    assert_ends(
        &mut s,
        1,
        "127.0.0.1:8021 speaks TLS: add --tls (or --tls-ca FILE for a private CA)",
    );
    // Later, the same bytes are only out of place.
    let mut s = participant_named("alice");
    s.handle_tls_record();
    let actions = drain(&mut s);
    assert_eq!(
        ending(&actions).and_then(Ending::message).as_deref(),
        Some(
            "Protocol error with the server at 127.0.0.1:8021: \
             a TLS record inside the frame stream"
        )
    );
}

#[test]
fn unreadable_bytes_after_an_answer_are_a_protocol_error() {
    let mut s = participant_named("alice");
    assert!(s.has_answer());
    s.handle_unreadable("protocol violation: undecodable payload: bad varint");
    let actions = drain(&mut s);
    assert_eq!(
        ending(&actions).and_then(Ending::message).as_deref(),
        Some(
            "Protocol error with the server at 127.0.0.1:8021: \
             protocol violation: undecodable payload: bad varint"
        )
    );
}

#[test]
fn the_username_prompt_states_the_protocol_limit() {
    assert!(
        USERNAME_PROMPT.contains(&format!("max {MAX_USERNAME_CHARS} chars")),
        "{USERNAME_PROMPT:?}"
    );
}
