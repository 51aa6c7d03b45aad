//! The client's side of the protocol as a state machine, with no I/O.
//!
//! [`Session`] is fed what happened — a frame from the server, a line or
//! end-of-input from the user, the server closing — and answers with
//! [`Action`]s for the driver: send this frame, show this line, change the
//! prompt, end. It owns every client rule: the username handshake, which
//! lines are sent, refused (over [`MAX_MESSAGE_CHARS`]) or skipped (empty),
//! what `exit()` means, and what an observer may do. It never touches a
//! socket or a terminal, so each rule is a plain unit test.
//!
//! Two rules depend on who is typing ([`InputMode`]). A person at a
//! terminal leaves with `exit()`, Ctrl-D or Ctrl-C at any point, status 0.
//! A script (pipe mode) that runs out of input, or says `exit()`, before
//! any of its names was accepted never joined the room, so its lines were
//! never sent: that ends with [`Ending::NoName`], a status of its own, not
//! a silent 0.
//!
//! The server's first bytes also say whether it speaks protocol v1 at all:
//! see [`Session::handle_unreadable`].

use std::collections::VecDeque;

use crate::protocol::{ClientFrame, Role, ServerFrame};
use crate::room::MAX_MESSAGE_CHARS;
use crate::username::{self, MAX_USERNAME_CHARS, UsernameError};

use super::display::sanitize;
use super::ending::Ending;

/// The line that leaves the chat, as the user types it.
pub const EXIT_COMMAND: &str = "exit()";

/// Text the user is asked for a name with.
pub const USERNAME_PROMPT: &str = "Enter username, max 10 chars: ";

/// Who is typing: a person at a terminal, or a script on standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    /// The terminal front end: `exit()`, Ctrl-D and Ctrl-C leave cleanly in
    /// every phase.
    Terminal,
    /// The pipe front end. A participant that leaves before a name was
    /// accepted ends with [`Ending::NoName`]; an observer reads no input.
    Script,
}

/// What the user gave the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One line, without its line ending.
    Line(String),
    /// A line too long to be a chat line (more than the client buffers);
    /// it was discarded as it was read.
    Oversized,
    /// A line that is not valid UTF-8 (only possible in pipe mode).
    NotUtf8,
    /// End of input: Ctrl-D in a terminal, end of the pipe or file.
    End,
    /// Ctrl-C.
    Interrupt,
}

/// What the user is being asked for, for front ends that show a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Nothing: waiting on the server.
    Waiting,
    /// [`USERNAME_PROMPT`].
    Username,
    /// `> <name>: `, the chat prompt.
    Chat(String),
    /// An observer's (empty) prompt: it may only type `exit()`.
    Observing,
}

impl Prompt {
    /// The prompt text shown before what the user types.
    pub fn text(&self) -> String {
        match self {
            Prompt::Waiting | Prompt::Observing => String::new(),
            Prompt::Username => USERNAME_PROMPT.to_owned(),
            Prompt::Chat(name) => format!("> {name}: "),
        }
    }
}

/// What the driver must do next.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Write this frame to the server.
    Send(ClientFrame),
    /// Show a line of the room (a `Notice` or `Message`), already sanitised.
    Show(String),
    /// Show the client's own remark on what just happened ("Username already
    /// in use", a refused line).
    Status(String),
    /// Change the prompt.
    Prompt(Prompt),
    /// Stop. For [`Ending::Left`] the driver closes the connection
    /// gracefully, so what was already sent is delivered.
    End(Ending),
}

/// Where the conversation with the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// `Hello` sent, waiting for `Accepted` or `Full`.
    Hello,
    /// Waiting for the user to type a name.
    Naming,
    /// `Username(sent)` sent, waiting for the verdict.
    NameSent { sent: String },
    /// In the room as `name`.
    Chatting { name: String },
    /// In the room, read-only.
    Observing,
    /// Done; only room lines are still shown (while closing).
    Ended,
}

/// The client protocol state machine. See the module docs.
#[derive(Debug)]
pub struct Session {
    role: Role,
    mode: InputMode,
    phase: Phase,
    actions: VecDeque<Action>,
    server: String,
    /// Whether a whole frame has come from the server yet.
    answered: bool,
}

impl Session {
    /// A session for `role` talking to the server at `server` (used only in
    /// messages), driven from a terminal. The first action is sending
    /// `Hello`.
    pub fn new(role: Role, server: impl Into<String>) -> Self {
        Self::with_input(role, server, InputMode::Terminal)
    }

    /// A session whose input comes as `mode` says.
    pub fn with_input(role: Role, server: impl Into<String>, mode: InputMode) -> Self {
        let mut session = Self {
            role,
            mode,
            phase: Phase::Hello,
            actions: VecDeque::new(),
            server: server.into(),
            answered: false,
        };
        session.push(Action::Prompt(Prompt::Waiting));
        session.push(Action::Send(ClientFrame::Hello(role)));
        session
    }

    /// The next thing the driver must do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether the session can use a line of input now. While it waits on
    /// the server (for `Accepted`, or for the verdict on a name) the next
    /// line must stay unread: it may be the next name or the first chat line.
    pub fn wants_input(&self) -> bool {
        matches!(
            self.phase,
            Phase::Naming | Phase::Chatting { .. } | Phase::Observing
        )
    }

    /// Whether the session has ended.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The server's address, as given to [`Session::new`].
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether the server has sent a whole frame yet. Until it has, the
    /// client is still connecting: nothing it sent can be lost by closing at
    /// once, and the connect timeout still runs.
    pub fn has_answer(&self) -> bool {
        self.answered
    }

    /// A frame arrived from the server.
    pub fn handle_frame(&mut self, frame: ServerFrame) {
        self.answered = true;
        match (frame, self.phase.clone()) {
            (ServerFrame::Notice(text) | ServerFrame::Message(text), _) => {
                self.push(Action::Show(sanitize(&text).into_owned()));
            }
            (_, Phase::Ended) => {}
            (ServerFrame::ProtocolError(reason), _) => {
                self.end(Ending::Protocol {
                    addr: self.server.clone(),
                    reason: format!("the server said: {}", sanitize(&reason)),
                });
            }
            (ServerFrame::Accepted, Phase::Hello) => match self.role {
                Role::Participant => self.ask_for_name(),
                Role::Observer => {
                    self.phase = Phase::Observing;
                    self.push(Action::Status(observing_banner(self.mode).into()));
                    self.push(Action::Prompt(Prompt::Observing));
                }
            },
            (ServerFrame::Full, Phase::Hello) => self.end(Ending::Full),
            (ServerFrame::UsernameAccepted, Phase::NameSent { sent }) => {
                let name = username::canonical_username(&sent).unwrap_or(sent);
                self.push(Action::Prompt(Prompt::Chat(sanitize(&name).into_owned())));
                self.phase = Phase::Chatting { name };
            }
            (ServerFrame::UsernameTaken, Phase::NameSent { .. }) => {
                self.push(Action::Status("Username already in use".into()));
                self.ask_for_name();
            }
            (ServerFrame::UsernameInvalid, Phase::NameSent { sent }) => {
                let reason = invalid_name_reason(&sent);
                self.push(Action::Status(reason));
                self.ask_for_name();
            }
            (ServerFrame::UsernameTimeout, Phase::Naming | Phase::NameSent { .. }) => {
                self.end(Ending::UsernameTimeout);
            }
            (unexpected, _) => {
                let reason = format!("unexpected {} from the server", frame_name(&unexpected));
                self.end(Ending::Protocol {
                    addr: self.server.clone(),
                    reason,
                });
            }
        }
    }

    /// The server's bytes could not be read as frames: a header out of
    /// range, an undecodable payload, or the end of the stream inside a
    /// frame (`reason` says which). Before the first whole frame this means
    /// the peer does not speak protocol v1 at all: a text protocol's banner
    /// (`SSH-2.0-…`, `HTTP/1.1 …`) starts with a printable byte, which
    /// alone makes the length header at least 0x2000_0000, far over
    /// [`MAX_FRAME_BYTES`](crate::protocol::MAX_FRAME_BYTES). That ends
    /// with [`Ending::NotLogosNet`]; later, with [`Ending::Protocol`].
    pub fn handle_unreadable(&mut self, reason: &str) {
        if self.phase == Phase::Ended {
            return;
        }
        let addr = self.server.clone();
        if self.answered {
            self.end(Ending::Protocol {
                addr,
                reason: reason.to_owned(),
            });
        } else {
            self.end(Ending::NotLogosNet { addr });
        }
    }

    /// The server's first bytes are a TLS record (its alert for a
    /// plaintext `Hello`): before any answer this ends with
    /// [`Ending::SpeaksTls`]; later it is unreadable like any other bytes
    /// out of place.
    pub fn handle_tls_record(&mut self) {
        if self.phase == Phase::Ended {
            return;
        }
        if self.answered {
            self.handle_unreadable("a TLS record inside the frame stream");
        } else {
            let addr = self.server.clone();
            self.end(Ending::SpeaksTls { addr });
        }
    }

    /// The user typed something, or input ended.
    pub fn handle_input(&mut self, input: Input) {
        let line = match input {
            Input::Interrupt => return self.end(Ending::Left),
            Input::End => return self.leave(),
            Input::Line(line) => line,
            Input::Oversized => {
                let status = match self.phase {
                    Phase::Naming => {
                        format!("Invalid username: max {MAX_USERNAME_CHARS} characters")
                    }
                    _ => format!("Line not sent: it is longer than {MAX_MESSAGE_CHARS} characters"),
                };
                return self.push(Action::Status(status));
            }
            Input::NotUtf8 => {
                return self.push(Action::Status(
                    "Line not sent: it is not valid UTF-8 text".into(),
                ));
            }
        };
        if line.trim() == EXIT_COMMAND && self.phase != Phase::Ended {
            return self.leave();
        }
        match &self.phase {
            Phase::Naming => {
                // The server is the authority on names; even a name the
                // client could refuse goes out, so the server restarts its
                // timer and gives the verdict.
                self.push(Action::Send(ClientFrame::Username(line.clone())));
                self.push(Action::Prompt(Prompt::Waiting));
                self.phase = Phase::NameSent { sent: line };
            }
            Phase::Chatting { .. } => {
                let chars = line.chars().count();
                if line.trim().is_empty() {
                    // Nothing to say.
                } else if chars > MAX_MESSAGE_CHARS {
                    self.push(Action::Status(format!(
                        "Line not sent: it has {chars} characters, the limit is {MAX_MESSAGE_CHARS}"
                    )));
                } else {
                    self.push(Action::Send(ClientFrame::Chat(line)));
                }
            }
            Phase::Observing => {
                if !line.trim().is_empty() {
                    self.push(Action::Status(
                        "Observers cannot send messages; type exit() to leave".into(),
                    ));
                }
            }
            // Input is not asked for in these phases; a driver that passes
            // some anyway loses nothing it could have sent.
            Phase::Hello | Phase::NameSent { .. } | Phase::Ended => {}
        }
    }

    /// The server closed the connection cleanly (between frames).
    pub fn handle_server_closed(&mut self) {
        if self.phase != Phase::Ended {
            self.end(Ending::ServerClosed {
                addr: self.server.clone(),
            });
        }
    }

    /// `exit()` or the end of input: leaving, which for a script that never
    /// got a name accepted is a failure of its own.
    fn leave(&mut self) {
        let unnamed = matches!(
            self.phase,
            Phase::Hello | Phase::Naming | Phase::NameSent { .. }
        );
        if self.mode == InputMode::Script && self.role == Role::Participant && unnamed {
            self.end(Ending::NoName);
        } else {
            self.end(Ending::Left);
        }
    }

    fn ask_for_name(&mut self) {
        self.phase = Phase::Naming;
        self.push(Action::Prompt(Prompt::Username));
    }

    fn end(&mut self, ending: Ending) {
        self.phase = Phase::Ended;
        self.push(Action::End(ending));
    }

    fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }
}

/// What an observer is told once it is in the room: how to leave.
fn observing_banner(mode: InputMode) -> &'static str {
    match mode {
        InputMode::Terminal => "Observing the room; type exit() or press Ctrl-D to leave",
        InputMode::Script => "Observing the room until the server closes or Ctrl-C/SIGTERM/SIGHUP",
    }
}

/// One line saying why the server refused `sent` as a name.
fn invalid_name_reason(sent: &str) -> String {
    let why = match username::canonical_username(sent) {
        Err(UsernameError::Empty) => "it is empty",
        Err(UsernameError::TooLong) => "max 10 characters",
        Err(UsernameError::Whitespace) => "no spaces or other whitespace",
        Err(UsernameError::Invisible) => "no control or invisible characters",
        Err(UsernameError::LeadingMark) => "it cannot start with a combining mark",
        // The server's rule and ours disagree: give the whole rule.
        Ok(_) => "max 10 characters, no whitespace or control characters",
    };
    format!("Invalid username: {why}")
}

fn frame_name(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Accepted => "Accepted",
        ServerFrame::Full => "Full",
        ServerFrame::UsernameAccepted => "UsernameAccepted",
        ServerFrame::UsernameTaken => "UsernameTaken",
        ServerFrame::UsernameInvalid => "UsernameInvalid",
        ServerFrame::UsernameTimeout => "UsernameTimeout",
        ServerFrame::Notice(_) => "Notice",
        ServerFrame::Message(_) => "Message",
        ServerFrame::ProtocolError(_) => "ProtocolError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "127.0.0.1:8021";

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
            [Action::Prompt(Prompt::Chat("Michael".into()))]
        );
        assert_eq!(Prompt::Chat("Michael".into()).text(), "> Michael: ");
        assert!(s.wants_input());
    }

    #[test]
    fn full_ends_with_status_two() {
        let mut s = Session::new(Role::Observer, SERVER);
        s.handle_frame(ServerFrame::Full);
        let actions = drain(&mut s);
        let end = ending(&actions).unwrap();
        assert_eq!(end.exit_code(), 2);
        assert_eq!(
            end.message().as_deref(),
            Some("Server is full, try again later")
        );
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
    fn invalid_name_gets_a_one_line_reason_and_is_still_sent() {
        let cases = [
            ("", "Invalid username: it is empty"),
            ("abcdefghijk", "Invalid username: max 10 characters"),
            ("a b", "Invalid username: no spaces or other whitespace"),
            (
                "a\u{202e}b",
                "Invalid username: no control or invisible characters",
            ),
            (
                "fine",
                "Invalid username: max 10 characters, no whitespace or control characters",
            ),
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

    #[test]
    fn username_timeout_ends_with_status_three() {
        let mut s = Session::new(Role::Participant, SERVER);
        s.handle_frame(ServerFrame::Accepted);
        drain(&mut s);
        s.handle_frame(ServerFrame::UsernameTimeout);
        let actions = drain(&mut s);
        let end = ending(&actions).unwrap();
        assert_eq!(end.exit_code(), 3);
        assert_eq!(
            end.message().as_deref(),
            Some("Timed out choosing a username")
        );
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
        s.handle_frame(ServerFrame::Message(">        bob: \x1b[2Jhi\x07".into()));
        s.handle_frame(ServerFrame::Notice("User bob has joined".into()));
        assert_eq!(
            drain(&mut s),
            [
                Action::Show(">        bob: \\x1b[2Jhi\\x07".into()),
                Action::Show("User bob has joined".into())
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
            [Action::Status(_), Action::Prompt(Prompt::Observing)]
        ));
        s.handle_input(line("hello?"));
        assert_eq!(
            drain(&mut s),
            [Action::Status(
                "Observers cannot send messages; type exit() to leave".into()
            )]
        );
        s.handle_frame(ServerFrame::Message(">      alice: hi".into()));
        assert_eq!(drain(&mut s), [Action::Show(">      alice: hi".into())]);
        s.handle_input(line("exit()"));
        assert!(matches!(ending(&drain(&mut s)), Some(Ending::Left)));
    }

    #[test]
    fn server_closing_or_erring_ends_with_status_one() {
        let mut s = participant_named("alice");
        s.handle_server_closed();
        let actions = drain(&mut s);
        let end = ending(&actions).unwrap();
        assert_eq!(end.exit_code(), 1);
        assert_eq!(
            end.message().as_deref(),
            Some("The server at 127.0.0.1:8021 closed the connection")
        );

        let mut s = participant_named("alice");
        s.handle_frame(ServerFrame::ProtocolError("bad \x1b frame".into()));
        let actions = drain(&mut s);
        assert_eq!(
            ending(&actions).and_then(Ending::message).as_deref(),
            Some(
                "Protocol error with the server at 127.0.0.1:8021: the server said: bad \\x1b frame"
            )
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
        s.handle_frame(ServerFrame::Notice("User bob has left".into()));
        s.handle_frame(ServerFrame::Accepted);
        s.handle_server_closed();
        s.handle_input(line("late"));
        assert_eq!(drain(&mut s), [Action::Show("User bob has left".into())]);
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
            let end = ending(&actions).unwrap();
            assert_eq!(end, &Ending::NoName);
            assert_eq!(end.exit_code(), 4);
            assert_eq!(
                end.message().as_deref(),
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
        let mut naming = scripted(Role::Participant);
        naming.handle_frame(ServerFrame::Accepted);
        drain(&mut naming);
        naming.handle_input(Input::Interrupt);
        assert_eq!(ending(&drain(&mut naming)), Some(&Ending::Left));
    }

    #[test]
    fn terminal_user_may_leave_before_naming() {
        let mut s = Session::new(Role::Participant, SERVER);
        s.handle_frame(ServerFrame::Accepted);
        drain(&mut s);
        s.handle_input(Input::End);
        assert_eq!(ending(&drain(&mut s)), Some(&Ending::Left));
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
                Action::Prompt(Prompt::Observing)
            ]
        );
    }

    #[test]
    fn unreadable_first_bytes_mean_not_a_logosnet_server() {
        let mut s = Session::new(Role::Participant, SERVER);
        drain(&mut s);
        assert!(!s.has_answer());
        s.handle_unreadable("frame length 1397966893 exceeds the maximum of 65536");
        let actions = drain(&mut s);
        let end = ending(&actions).unwrap();
        assert_eq!(end.exit_code(), 1);
        assert_eq!(
            end.message().as_deref(),
            Some("127.0.0.1:8021 is not a LogosNet server (protocol v1)")
        );
    }

    #[test]
    fn a_tls_record_first_means_the_port_speaks_tls() {
        let mut s = Session::new(Role::Observer, SERVER);
        drain(&mut s);
        s.handle_tls_record();
        let actions = drain(&mut s);
        let end = ending(&actions).unwrap();
        assert_eq!(end.exit_code(), 1);
        assert_eq!(
            end.message().as_deref(),
            Some("127.0.0.1:8021 speaks TLS: add --tls (or --tls-ca FILE for a private CA)")
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
}
