//! The model's wording of every frame the room sends, typed from
//! docs/PROTOCOL.md (§5's violation table, §6's session and chat rules)
//! rather than called from `logosnet::protocol::text`: a change of
//! wording on either side shows as a difference.

use std::time::Duration;

use logosnet::protocol::{FrameError, ServerFrame};

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
