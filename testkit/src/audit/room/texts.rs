//! The model's wording of every frame the room sends, typed from
//! docs/PROTOCOL.md (§5's violation tables, §6's session and chat rules,
//! §7's refusal reasons) rather than called from
//! `logosnet::protocol::text`: a change of wording on either side shows as
//! a difference.

use std::time::Duration;

use logosnet::protocol::{FrameError, ServerFrame};

use super::names::Refusal;

/// Columns a sender's name is right-aligned in (§6, chat rules).
const SENDER_COLUMNS: usize = 10;

/// `User <name> has joined`.
pub(crate) fn joined(name: &str) -> ServerFrame {
    ServerFrame::Notice(format!("User {name} has joined"))
}

/// `User <name> has left`.
pub(crate) fn left(name: &str) -> ServerFrame {
    ServerFrame::Notice(format!("User {name} has left"))
}

/// `mark` + space + the sender right-aligned in ten columns (padded with
/// spaces to ten characters) + `": "` + the line as sent.
fn chat(mark: char, sender: &str, line: &str) -> ServerFrame {
    let pad = SENDER_COLUMNS.saturating_sub(sender.chars().count());
    ServerFrame::Message(format!("{mark} {}{sender}: {line}", " ".repeat(pad)))
}

/// A public line as every other member receives it: `>      alice: hi`.
pub(crate) fn public(sender: &str, line: &str) -> ServerFrame {
    chat('>', sender, line)
}

/// A private line as its target receives it: `%        bob: @alice psst`.
pub(crate) fn private(sender: &str, line: &str) -> ServerFrame {
    chat('%', sender, line)
}

/// A `Notice` with this text.
fn notice(text: &str) -> ServerFrame {
    ServerFrame::Notice(text.to_owned())
}

/// A private line to a name no one active has.
pub(crate) fn no_such_user(typed: &str) -> ServerFrame {
    ServerFrame::Notice(format!("Warning: user {typed} doesn't exist"))
}

/// A line over 1,000 characters, or a member's frame over its limit.
pub(crate) fn too_long() -> ServerFrame {
    notice("Warning: message not sent, it is longer than 1000 characters")
}

/// Anything an observer sends after its `Hello`.
pub(crate) fn observers_only_read() -> ServerFrame {
    notice("Warning: observers can only read")
}

/// `@name` with no space after it.
pub(crate) fn private_needs_a_space() -> ServerFrame {
    notice("Warning: a private message needs a space after the name: @name text")
}

/// `@` with no name after it: `@ hi`, or `@` alone.
pub(crate) fn private_needs_a_name() -> ServerFrame {
    notice("Warning: a private message needs a name after the @: @name text")
}

/// A `Who` before a name is accepted.
pub(crate) fn who_before_a_name() -> ServerFrame {
    notice("Warning: choose a username before asking who is here")
}

/// The notice before `UsernameInvalid`: which clause refused the name.
pub(crate) fn invalid_username(refusal: Refusal) -> ServerFrame {
    let code = |c: char| format!("U+{:04X}", u32::from(c));
    let why = match refusal {
        Refusal::Empty => "it is empty".to_owned(),
        Refusal::TooLong => "max 10 characters".to_owned(),
        Refusal::Whitespace(' ') => "no spaces or other whitespace".to_owned(),
        Refusal::Whitespace(c) => format!("no spaces or other whitespace ({})", code(c)),
        Refusal::Invisible(c) => format!("no control or invisible characters ({})", code(c)),
        Refusal::LeadingMark => "it cannot start with a combining mark".to_owned(),
        Refusal::LeadingAt(c) => {
            format!("it cannot start with {c} (a private message to it could not be written)")
        }
        Refusal::LeadingLineMark(c) => {
            format!("it cannot start with {c} (lines from the room start with > or %)")
        }
        Refusal::Colon(c) => {
            format!("it cannot contain {c} (a line from the room puts : after the sender's name)")
        }
    };
    ServerFrame::Notice(format!("Invalid username: {why}"))
}

/// The notice before `UsernameTaken` for a name that only looks like
/// `holder`, the active name as its owner typed it.
pub(crate) fn too_similar(holder: &str) -> ServerFrame {
    ServerFrame::Notice(format!(
        "Username refused: too similar to {holder}, who is in the room"
    ))
}

/// The notice before `UsernameTaken` for a name that clashes with
/// `Anonymous`.
pub(crate) fn reserved() -> ServerFrame {
    notice(
        "Username refused: Anonymous is reserved for participants who leave before choosing a name",
    )
}

/// A `Chat` before a name is accepted.
pub(crate) fn choose_a_username_first() -> ServerFrame {
    notice("Warning: choose a username before chatting")
}

/// A `Username` after one was accepted.
pub(crate) fn already_named() -> ServerFrame {
    notice("Warning: you already have a username")
}

/// A second `Hello`.
pub(crate) fn hello_again() -> ServerFrame {
    notice("Warning: Hello was already received")
}

/// Before the `UsernameTimeout` for one refused name too many.
pub(crate) fn too_many_names(max: u32) -> ServerFrame {
    ServerFrame::Notice(format!("Warning: more than {max} usernames refused"))
}

/// What everyone is told on shutdown.
pub(crate) fn shutting_down() -> ServerFrame {
    notice("Server is shutting down")
}

/// A `ProtocolError` with this reason.
fn protocol_error(reason: String) -> ServerFrame {
    ServerFrame::ProtocolError(reason)
}

/// A first frame other than `Hello`.
pub(crate) fn first_frame_must_be_hello() -> ServerFrame {
    protocol_error("the first frame must be Hello".to_owned())
}

/// No `Hello` within `timeout` (a whole number of seconds).
pub(crate) fn no_hello_within(timeout: Duration) -> ServerFrame {
    assert_eq!(timeout.subsec_nanos(), 0, "the model words whole seconds");
    protocol_error(format!("no Hello within {} s", timeout.as_secs()))
}

/// A payload with a varint longer than its value needs.
pub(crate) fn overlong_varint() -> ServerFrame {
    protocol_error("undecodable payload: overlong varint".to_owned())
}

/// The oldest connection before `Hello`, closed for a newcomer while
/// every socket was taken.
pub(crate) fn made_room_before_hello() -> ServerFrame {
    protocol_error(
        "server full: closed to make room for a new connection (no Hello yet)".to_owned(),
    )
}

/// The oldest participant without a name, closed the same way.
pub(crate) fn made_room_before_naming() -> ServerFrame {
    protocol_error(
        "server full: closed to make room for a new connection (no username yet)".to_owned(),
    )
}

/// A newcomer that found only members to make room.
pub(crate) fn server_busy() -> ServerFrame {
    protocol_error("server busy".to_owned())
}

/// A frame longer than the connection may send before it is a member.
pub(crate) fn over_limit(len: usize, limit: usize, when: &str) -> ServerFrame {
    protocol_error(format!(
        "frame length {len} exceeds the limit of {limit} bytes {when}"
    ))
}

/// The reason the room gives for a violation the framing layer reported.
pub(crate) fn violation(error: &FrameError) -> ServerFrame {
    protocol_error(match error {
        FrameError::Empty => "frame length 0 is not allowed (must be 1..=65536)".to_owned(),
        FrameError::TooLong(len) => format!("frame length {len} exceeds the maximum of 65536"),
        FrameError::Undecodable(why) => format!("undecodable payload: {why}"),
        FrameError::OverLimit { len, limit, when } => {
            format!("frame length {len} exceeds the limit of {limit} bytes {when}")
        }
        FrameError::Unfinished(after) => {
            assert_eq!(after.subsec_nanos(), 0, "the model words whole seconds");
            format!("frame not finished within {} s", after.as_secs())
        }
    })
}
