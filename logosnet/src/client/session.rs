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
//!
//! Presence: once in the room (a participant's name accepted, an
//! observer's `Accepted`) the session asks who is there (`Who`) and shows
//! the answer in words ([`roster_line`]); the line [`WHO_COMMAND`] asks
//! again. A refused name is explained with the reason the server sent
//! just before its verdict, or, from a server that sends none, with the
//! client's own reading of the name rule.

use std::collections::VecDeque;

use crate::protocol::{
    self, ClientFrame, MAX_MESSAGE_CHARS, MAX_USERNAME_CHARS, PUBLIC_MARK, Role, ServerFrame,
};
use crate::username;

use super::display::{Viewer, room_line, roster_line, sanitize};
use super::ending::Ending;

/// The line that leaves the chat, as the user types it.
pub const EXIT_COMMAND: &str = "exit()";

/// The line that asks who is in the room, exactly as typed (a line with
/// anything more, even a space, is sent as chat).
pub const WHO_COMMAND: &str = "/who";

/// What the client says for `UsernameTaken` when the server gave no other
/// reason: the name is another participant's, up to case.
pub const NAME_IN_USE: &str = "Username already in use";

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
            Prompt::Chat(name) => format!("{PUBLIC_MARK} {name}: "),
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
    /// `Username(sent)` sent, waiting for the verdict; `reason` is the
    /// server's notice saying why it refuses it, if one came first.
    NameSent {
        sent: String,
        reason: Option<String>,
    },
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
    /// Participant or observer.
    role: Role,
    /// A person at a terminal or a script.
    mode: InputMode,
    /// Where the conversation with the server is.
    phase: Phase,
    /// What the driver has yet to do, in order.
    actions: VecDeque<Action>,
    /// The server's address as the user gave it, for messages.
    server: String,
    /// Whether a whole frame has come from the server yet.
    answered: bool,
    /// Whether it got into the room (a name accepted, or an observer
    /// admitted).
    admitted: bool,
    /// A line to show on getting into the room (see
    /// [`Session::arriving_with`]).
    arrival: Option<String>,
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
            admitted: false,
            arrival: None,
        };
        session.push(Action::Prompt(Prompt::Waiting));
        session.push(Action::Send(ClientFrame::Hello(role)));
        session
    }

    /// The same session, showing `line` as a room line when it gets into
    /// the room, before the roster; for an observer in place of the banner
    /// that says how to stop it. A logger coming back after a loss says so
    /// this way.
    pub fn arriving_with(mut self, line: String) -> Self {
        self.arrival = Some(line);
        self
    }

    /// Whether the session got into the room: a participant's name was
    /// accepted, or an observer was admitted.
    pub fn was_admitted(&self) -> bool {
        self.admitted
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
            (ServerFrame::Notice(text), Phase::NameSent { sent, .. })
                if protocol::is_name_refusal(&text) =>
            {
                let reason = Some(sanitize(&text).into_owned());
                self.phase = Phase::NameSent { sent, reason };
            }
            (ServerFrame::Notice(text), _) => {
                self.push(Action::Show(sanitize(&text).into_owned()));
            }
            (ServerFrame::Message(text), _) => self.push(Action::Show(room_line(&text))),
            (
                ServerFrame::Roster {
                    participants,
                    observers,
                },
                Phase::Chatting { name },
            ) => {
                let viewer = Viewer::Participant(&name);
                let line = roster_line(&participants, observers, viewer);
                self.push(Action::Show(line));
            }
            (
                ServerFrame::Roster {
                    participants,
                    observers,
                },
                Phase::Observing,
            ) => {
                let line = roster_line(&participants, observers, Viewer::Observer);
                self.push(Action::Show(line));
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
                    self.admitted = true;
                    match self.arrival.take() {
                        Some(line) => self.push(Action::Show(line)),
                        None => self.push(Action::Status(observing_banner(self.mode).into())),
                    }
                    self.push(Action::Prompt(Prompt::Observing));
                    self.push(Action::Send(ClientFrame::Who));
                }
            },
            (ServerFrame::Full, Phase::Hello) => self.end(Ending::Full),
            (ServerFrame::UsernameAccepted, Phase::NameSent { sent, .. }) => {
                let name = username::canonical_username(&sent).unwrap_or(sent);
                self.push(Action::Prompt(Prompt::Chat(sanitize(&name).into_owned())));
                self.phase = Phase::Chatting { name };
                self.admitted = true;
                if let Some(line) = self.arrival.take() {
                    self.push(Action::Show(line));
                }
                self.push(Action::Send(ClientFrame::Who));
            }
            (ServerFrame::UsernameTaken, Phase::NameSent { reason, .. }) => {
                self.push(Action::Status(reason.unwrap_or_else(|| NAME_IN_USE.into())));
                self.ask_for_name();
            }
            (ServerFrame::UsernameInvalid, Phase::NameSent { sent, reason }) => {
                let reason = reason.unwrap_or_else(|| invalid_name_reason(&sent));
                self.push(Action::Status(reason));
                self.ask_for_name();
            }
            (ServerFrame::UsernameTimeout, Phase::Naming | Phase::NameSent { .. }) => {
                self.end(Ending::UsernameTimeout);
            }
            (unexpected, _) => {
                let reason = format!("unexpected {} from the server", unexpected.name());
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
        if line == WHO_COMMAND {
            return self.who();
        }
        match &self.phase {
            Phase::Naming => {
                // The server is the authority on names; even a name the
                // client could refuse goes out, so the server restarts its
                // timer and gives the verdict.
                self.push(Action::Send(ClientFrame::Username(line.clone())));
                self.push(Action::Prompt(Prompt::Waiting));
                self.phase = Phase::NameSent {
                    sent: line,
                    reason: None,
                };
            }
            Phase::Chatting { .. } => {
                let chars = line.chars().count();
                if protocol::is_blank(&line) {
                    // Nothing to say; the server would drop it too.
                } else if chars > MAX_MESSAGE_CHARS {
                    self.push(Action::Status(format!(
                        "Line not sent: it has {chars} characters, the limit is {MAX_MESSAGE_CHARS}"
                    )));
                } else {
                    self.push(Action::Send(ClientFrame::Chat(line)));
                }
            }
            Phase::Observing => {
                if !protocol::is_blank(&line) {
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

    /// [`WHO_COMMAND`]: asks the server, once in the room; before that there
    /// is nothing to ask, and the line is not taken for a name.
    fn who(&mut self) {
        match self.phase {
            Phase::Chatting { .. } | Phase::Observing => self.push(Action::Send(ClientFrame::Who)),
            Phase::Naming => self.push(Action::Status(
                "Choose a username first: /who works once you are in the room".into(),
            )),
            Phase::Hello | Phase::NameSent { .. } | Phase::Ended => {}
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

/// One line saying why the server refused `sent` as a name, for a server
/// that sent no reason of its own: the client's reading of the same rule
/// ([`username::UsernameError`]'s words, which are the server's too).
fn invalid_name_reason(sent: &str) -> String {
    let reason = protocol::invalid_username(match username::canonical_username(sent) {
        Err(broken) => broken,
        // The server's rule and ours disagree: say so rather than guess.
        Ok(_) => return "Invalid username: the server refused it".into(),
    });
    reason
        .text()
        .map(|text| sanitize(text).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
