//! Every text the server puts on the wire, each defined once: the chat-line
//! prefixes, the join and leave notices, the shutdown notice, the warnings
//! and the `ProtocolError` reasons that are not framing errors (those are
//! [`FrameError`](super::FrameError)'s `Display`). The room, the server's
//! driver, the client, the simulations and the tests all call these, so
//! a change of wording is a change here and nowhere else.
//!
//! Each function returns the whole [`ServerFrame`], because which frame a
//! text travels in (a `Notice`, a `Message`, a `ProtocolError`) is part of
//! the convention; [`ServerFrame::text`] gives the text back. The one rule
//! about client text that both sides apply, [`is_blank`], is here too. No
//! I/O and no state: docs/PROTOCOL.md §6 describes the same texts.

use std::fmt::Display;
use std::time::Duration;

use super::{MAX_MESSAGE_CHARS, MAX_USERNAME_CHARS, ServerFrame};

/// The first character of a public chat line as delivered.
pub const PUBLIC_MARK: char = '>';

/// The first character of a private chat line as delivered.
pub const PRIVATE_MARK: char = '%';

/// What starts a private line as typed: `@name text`.
pub const PRIVATE_PREFIX: char = '@';

/// Columns the sender's name is right-aligned in: the longest name, so
/// that every line's text starts in the same column.
pub const SENDER_COLUMNS: usize = MAX_USERNAME_CHARS;

impl ServerFrame {
    /// The text a `Notice`, `Message` or `ProtocolError` carries; `None`
    /// for the frames without one.
    pub fn text(&self) -> Option<&str> {
        match self {
            ServerFrame::Notice(text)
            | ServerFrame::Message(text)
            | ServerFrame::ProtocolError(text) => Some(text),
            _ => None,
        }
    }
}

/// Whether a chat line says nothing: empty or only whitespace. Neither the
/// client nor the server sends such a line on; the server drops it without
/// a word, as the client does.
pub fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Characters before the text in every chat line: the mark, a space, the
/// sender's field of [`SENDER_COLUMNS`], `": "` (the spec's 14).
pub const CHAT_PREFIX_CHARS: usize = 2 + SENDER_COLUMNS + 2;

/// A line as delivered: the mark, the sender right-aligned in
/// [`SENDER_COLUMNS`], `": "`, the text as sent.
fn chat_line(mark: char, sender: &str, text: &str) -> String {
    format!("{mark} {sender:>SENDER_COLUMNS$}: {text}")
}

/// `sender`'s public `line`, as every other member receives it:
/// `Message(">      alice: hi")`.
pub fn public_line(sender: &str, line: &str) -> ServerFrame {
    ServerFrame::Message(chat_line(PUBLIC_MARK, sender, line))
}

/// `sender`'s private `line` (the whole `@name text` as typed), as its
/// target receives it: `Message("%        bob: @alice psst")`.
pub fn private_line(sender: &str, line: &str) -> ServerFrame {
    ServerFrame::Message(chat_line(PRIVATE_MARK, sender, line))
}

/// A chat line taken apart again: what [`public_line`] or [`private_line`]
/// put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatLine<'a> {
    /// Whether it was private (only its target received it).
    pub private: bool,
    /// The sender's name, without the alignment padding.
    pub sender: &'a str,
    /// The line as the sender typed it (with `@name ` for a private one).
    pub text: &'a str,
}

/// Parses the text of a `Message` frame; `None` if it is not one of the two
/// chat-line forms. For tools and tests that check deliveries (loadgen,
/// the simulations); a client shows the text as it is.
pub fn parse_line(message: &str) -> Option<ChatLine<'_>> {
    let mut chars = message.chars();
    let private = match chars.next()? {
        PUBLIC_MARK => false,
        PRIVATE_MARK => true,
        _ => return None,
    };
    let rest = chars.as_str().strip_prefix(' ')?;
    // A name is at most SENDER_COLUMNS characters, so the padded field is
    // exactly that wide; it is followed by ": ".
    let field_end = rest
        .char_indices()
        .nth(SENDER_COLUMNS)
        .map_or(rest.len(), |(at, _)| at);
    let (field, after) = rest.split_at(field_end);
    let text = after.strip_prefix(": ")?;
    let sender = field.trim_start_matches(' ');
    if sender.is_empty() || sender.contains(' ') {
        return None;
    }
    Some(ChatLine {
        private,
        sender,
        text,
    })
}

/// What the room, the newcomer included, is told when a participant's name
/// is accepted.
pub fn joined(name: &str) -> ServerFrame {
    ServerFrame::Notice(format!("{PRESENCE_HEAD}{name}{JOINED_TAIL}"))
}

/// What the room is told when a participant leaves, for any reason
/// ([`crate::username::ANONYMOUS`] for one that never had a name).
pub fn left(name: &str) -> ServerFrame {
    ServerFrame::Notice(format!("{PRESENCE_HEAD}{name}{LEFT_TAIL}"))
}

/// How a join or leave notice begins.
const PRESENCE_HEAD: &str = "User ";
/// How a join notice ends.
const JOINED_TAIL: &str = " has joined";
/// How a leave notice ends.
const LEFT_TAIL: &str = " has left";

/// A join or leave notice taken apart again: what [`joined`] or [`left`]
/// put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence<'a> {
    /// `name` joined the room.
    Joined(&'a str),
    /// `name` left it.
    Left(&'a str),
}

/// Parses the text of a `Notice`; `None` if it is not a join or leave
/// notice. For tools and tests that follow who is in the room.
pub fn parse_presence(notice: &str) -> Option<Presence<'_>> {
    let rest = notice.strip_prefix(PRESENCE_HEAD)?;
    let presence = match (rest.strip_suffix(JOINED_TAIL), rest.strip_suffix(LEFT_TAIL)) {
        (Some(name), _) => Presence::Joined(name),
        (None, Some(name)) => Presence::Left(name),
        (None, None) => return None,
    };
    // A name has no whitespace, so a warning that happens to end the same
    // way is not taken for a notice.
    match presence {
        Presence::Joined(name) | Presence::Left(name)
            if name.is_empty() || name.contains(char::is_whitespace) =>
        {
            None
        }
        presence => Some(presence),
    }
}

/// What every connection is told before the server closes it on shutdown.
pub fn shutdown_notice() -> ServerFrame {
    ServerFrame::Notice("Server is shutting down".to_owned())
}

/// How every warning notice begins: what tells a warning from other
/// notices (the server counts the warnings it sends; a client may show
/// them apart).
pub const WARNING_HEAD: &str = "Warning: ";

/// Whether `frame` is a warning: a `Notice` that begins [`WARNING_HEAD`].
pub fn is_warning(frame: &ServerFrame) -> bool {
    matches!(frame, ServerFrame::Notice(text) if text.starts_with(WARNING_HEAD))
}

/// The warning a member gets for a line longer than [`MAX_MESSAGE_CHARS`]
/// (or a frame too long to be one).
pub fn too_long_warning() -> ServerFrame {
    ServerFrame::Notice(format!(
        "Warning: message not sent, it is longer than {MAX_MESSAGE_CHARS} characters"
    ))
}

/// The warning an observer gets for anything it sends after its `Hello`.
pub fn observers_only_read() -> ServerFrame {
    ServerFrame::Notice("Warning: observers can only read".to_owned())
}

/// The warning for a `Chat` before a name is accepted.
pub fn choose_a_username_first() -> ServerFrame {
    ServerFrame::Notice("Warning: choose a username before chatting".to_owned())
}

/// The warning for a `Username` after one was accepted.
pub fn already_named() -> ServerFrame {
    ServerFrame::Notice("Warning: you already have a username".to_owned())
}

/// The warning for a second `Hello`.
pub fn hello_again() -> ServerFrame {
    ServerFrame::Notice("Warning: Hello was already received".to_owned())
}

/// The warning for `@name` with no space (and so no text) after it.
pub fn private_needs_a_space() -> ServerFrame {
    ServerFrame::Notice(
        "Warning: a private message needs a space after the name: @name text".to_owned(),
    )
}

/// The warning for `@` with no name after it (`@ hi`, or `@` alone).
pub fn private_needs_a_name() -> ServerFrame {
    ServerFrame::Notice(
        "Warning: a private message needs a name after the @: @name text".to_owned(),
    )
}

/// The warning for a private line to a name no active participant has (or
/// looks like), `typed` as the sender typed it.
pub fn no_such_user(typed: &str) -> ServerFrame {
    ServerFrame::Notice(format!("Warning: user {typed} doesn't exist"))
}

/// The notice before `UsernameTimeout` when more than `max` of a
/// participant's names were refused.
pub fn too_many_names(max: u32) -> ServerFrame {
    ServerFrame::Notice(format!("Warning: more than {max} usernames refused"))
}

/// How the notice that says why a name was refused with `UsernameInvalid`
/// begins.
const INVALID_NAME_HEAD: &str = "Invalid username: ";
/// How the notice that says why a name was refused with `UsernameTaken`
/// (other than for being in use) begins.
const REFUSED_NAME_HEAD: &str = "Username refused: ";

/// The notice sent just before `UsernameInvalid`: which rule the name
/// broke, e.g. `Invalid username: it cannot start with @ (…)`; `reason` is
/// the rule's own words ([`crate::username::UsernameError`]'s `Display`).
pub fn invalid_username(reason: impl Display) -> ServerFrame {
    ServerFrame::Notice(format!("{INVALID_NAME_HEAD}{reason}"))
}

/// The notice sent just before `UsernameTaken` when the name only looks
/// like `holder`'s, the active participant's name as shown (a name that is
/// the same up to case gets `UsernameTaken` alone).
pub fn name_too_similar(holder: &str) -> ServerFrame {
    ServerFrame::Notice(format!(
        "{REFUSED_NAME_HEAD}too similar to {holder}, who is in the room"
    ))
}

/// The notice sent just before `UsernameTaken` for a clash with
/// `reserved`, the name the room gives participants who leave unnamed
/// ([`crate::username::ANONYMOUS`]), in any case or look-alike.
pub fn name_reserved(reserved: &str) -> ServerFrame {
    ServerFrame::Notice(format!(
        "{REFUSED_NAME_HEAD}{reserved} is reserved for participants who leave before choosing a name"
    ))
}

/// Whether a `Notice` is one of the reasons for a refused name
/// ([`invalid_username`], [`name_too_similar`], [`name_reserved`]), which a
/// client shows as its own remark on the verdict that follows.
pub fn is_name_refusal(notice: &str) -> bool {
    notice.starts_with(INVALID_NAME_HEAD) || notice.starts_with(REFUSED_NAME_HEAD)
}

/// The warning for a `Who` before a name is accepted: only members (named
/// participants and observers) may ask.
pub fn who_before_a_name() -> ServerFrame {
    ServerFrame::Notice("Warning: choose a username before asking who is here".to_owned())
}

/// The reason for a first frame that is not `Hello`.
pub fn first_frame_must_be_hello() -> ServerFrame {
    ServerFrame::ProtocolError("the first frame must be Hello".to_owned())
}

/// The reason for a connection that sent no `Hello` within `timeout`.
pub fn no_hello_within(timeout: Duration) -> ServerFrame {
    ServerFrame::ProtocolError(format!("no Hello within {} s", timeout.as_secs_f64()))
}

/// The reason for a member dropped because it stopped reading.
pub fn too_far_behind() -> ServerFrame {
    ServerFrame::ProtocolError("too far behind".to_owned())
}

/// The reason for a socket past the server's connection limit.
pub fn server_busy() -> ServerFrame {
    ServerFrame::ProtocolError("server busy".to_owned())
}

/// The reason for a connection closed, before it said `Hello`, to make
/// room for a newer one while every socket was taken.
pub fn closed_to_make_room_before_hello() -> ServerFrame {
    ServerFrame::ProtocolError(
        "server full: closed to make room for a new connection (no Hello yet)".to_owned(),
    )
}

/// The reason for a participant closed, before it had a name, to make room
/// for a newer connection while every socket was taken.
pub fn closed_to_make_room_before_naming() -> ServerFrame {
    ServerFrame::ProtocolError(
        "server full: closed to make room for a new connection (no username yet)".to_owned(),
    )
}

/// The reason for a socket past its source's connection rate; `source` is
/// the address (or IPv6 /64) as the server counts it, and `retry_in` how
/// long until the rate admits one more, shown in whole seconds rounded up
/// (never "0 s": trying again at once would be refused again).
pub fn too_many_new_connections_from(source: impl Display, retry_in: Duration) -> ServerFrame {
    let whole = retry_in.as_secs() + u64::from(retry_in.subsec_nanos() > 0);
    ServerFrame::ProtocolError(format!(
        "too many new connections from {source}; try again in {} s",
        whole.max(1)
    ))
}

/// The reason for a socket past its source's connection limit; `source` is
/// the address (or IPv6 /64) as the server counts it.
pub fn too_many_connections_from(source: impl Display) -> ServerFrame {
    ServerFrame::ProtocolError(format!("too many connections from {source}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_warning_is_told_from_other_notices() {
        for warning in [
            too_long_warning(),
            observers_only_read(),
            choose_a_username_first(),
            already_named(),
            hello_again(),
            private_needs_a_space(),
            private_needs_a_name(),
            no_such_user("carol"),
            too_many_names(10),
            who_before_a_name(),
        ] {
            assert!(is_warning(&warning), "{warning:?}");
        }
        for other in [
            shutdown_notice(),
            joined("alice"),
            left("alice"),
            public_line("alice", "Warning: hi"),
            ServerFrame::ProtocolError("Warning: no".into()),
        ] {
            assert!(!is_warning(&other), "{other:?}");
        }
    }

    #[test]
    fn every_chat_line_has_the_prefix_length_it_is_said_to_have() {
        for frame in [public_line("alice", "hi"), private_line("bob", "@alice hi")] {
            let line = frame.text().unwrap_or_default();
            let text = parse_line(line).map(|l| l.text).unwrap_or_default();
            assert_eq!(
                line.chars().count() - text.chars().count(),
                CHAT_PREFIX_CHARS
            );
        }
        assert_eq!(CHAT_PREFIX_CHARS, 14);
    }

    fn text(frame: ServerFrame) -> String {
        frame.text().map(str::to_owned).unwrap_or_default()
    }

    /// The examples docs/PROTOCOL.md gives, letter for letter: the one
    /// place the wording is pinned rather than called.
    #[test]
    fn the_texts_are_the_ones_the_protocol_document_gives() {
        assert_eq!(text(public_line("alice", "hi")), ">      alice: hi");
        assert_eq!(
            text(private_line("bob", "@alice psst")),
            "%        bob: @alice psst"
        );
        assert_eq!(text(joined("bob")), "User bob has joined");
        assert_eq!(text(left("Anonymous")), "User Anonymous has left");
        assert_eq!(text(shutdown_notice()), "Server is shutting down");
        assert_eq!(
            text(too_long_warning()),
            "Warning: message not sent, it is longer than 1000 characters"
        );
        assert_eq!(
            text(too_many_names(10)),
            "Warning: more than 10 usernames refused"
        );
        assert_eq!(
            text(no_such_user("carol")),
            "Warning: user carol doesn't exist"
        );
        assert_eq!(
            text(no_hello_within(Duration::from_secs(60))),
            "no Hello within 60 s"
        );
        assert_eq!(
            text(no_hello_within(Duration::from_millis(500))),
            "no Hello within 0.5 s"
        );
        assert_eq!(
            too_many_connections_from("192.0.2.7"),
            ServerFrame::ProtocolError("too many connections from 192.0.2.7".into())
        );
        assert_eq!(
            text(too_many_new_connections_from(
                "192.0.2.7",
                Duration::from_millis(18_750)
            )),
            "too many new connections from 192.0.2.7; try again in 19 s"
        );
        assert_eq!(
            text(closed_to_make_room_before_hello()),
            "server full: closed to make room for a new connection (no Hello yet)"
        );
        assert_eq!(
            text(closed_to_make_room_before_naming()),
            "server full: closed to make room for a new connection (no username yet)"
        );
        assert_eq!(
            text(private_needs_a_name()),
            "Warning: a private message needs a name after the @: @name text"
        );
        assert_eq!(">      alice: ".chars().count(), 4 + SENDER_COLUMNS);
        assert_eq!(
            text(invalid_username(
                "it cannot start with @ (a private message to it could not be written)"
            )),
            "Invalid username: it cannot start with @ (a private message to it could not be written)"
        );
        assert_eq!(
            text(name_too_similar("alice")),
            "Username refused: too similar to alice, who is in the room"
        );
        assert_eq!(
            text(name_reserved("Anonymous")),
            "Username refused: Anonymous is reserved for participants who leave before choosing a name"
        );
    }

    #[test]
    fn refusal_reasons_are_recognised_and_nothing_else_is() {
        for reason in [
            invalid_username("it is empty"),
            invalid_username("it cannot contain :"),
            name_too_similar("alice"),
            name_reserved("Anonymous"),
        ] {
            assert!(is_name_refusal(&text(reason.clone())), "{reason:?}");
        }
        for other in [
            joined("bob"),
            too_many_names(10),
            choose_a_username_first(),
            who_before_a_name(),
            public_line("Username", "refused: x"),
        ] {
            assert!(!is_name_refusal(&text(other.clone())), "{other:?}");
        }
    }

    #[test]
    fn the_retry_time_is_whole_seconds_rounded_up_and_never_zero() {
        for (retry, shown) in [
            (Duration::ZERO, 1),
            (Duration::from_nanos(1), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(600), 600),
        ] {
            assert_eq!(
                text(too_many_new_connections_from("::/64", retry)),
                format!("too many new connections from ::/64; try again in {shown} s"),
                "{retry:?}"
            );
        }
    }

    #[test]
    fn parse_line_takes_apart_what_the_line_functions_make() {
        for sender in ["a", "alice", "ten_chars_", "zoë", "名前", "a:"] {
            for line in ["hi", "", "@bob psst", "  spaced  ", "x: y"] {
                let public = text(public_line(sender, line));
                assert_eq!(
                    parse_line(&public),
                    Some(ChatLine {
                        private: false,
                        sender,
                        text: line
                    }),
                    "{public:?}"
                );
                let private = text(private_line(sender, line));
                assert_eq!(
                    parse_line(&private),
                    Some(ChatLine {
                        private: true,
                        sender,
                        text: line
                    }),
                    "{private:?}"
                );
            }
        }
    }

    #[test]
    fn parse_line_refuses_what_is_not_a_chat_line() {
        for message in [
            "",
            ">",
            "> ",
            "User bob has joined",
            "#      alice: hi",
            ">alice: hi",
            ">            : hi",
            ">   al ice: hi",
            ">      alice- hi",
        ] {
            assert_eq!(parse_line(message), None, "{message:?}");
        }
    }

    #[test]
    fn parse_presence_takes_apart_joins_and_leaves_only() {
        for name in ["bob", "Anonymous", "zoë", "a"] {
            assert_eq!(
                parse_presence(&text(joined(name))),
                Some(Presence::Joined(name))
            );
            assert_eq!(
                parse_presence(&text(left(name))),
                Some(Presence::Left(name))
            );
        }
        for notice in [
            "",
            "User  has left",
            "User two words has left",
            "Server is shutting down",
            "User bob has gone",
            &text(no_such_user("bob")),
        ] {
            assert_eq!(parse_presence(notice), None, "{notice:?}");
        }
    }

    #[test]
    fn blank_means_empty_or_only_whitespace() {
        for blank in ["", " ", "\t", "  \u{3000} \u{a0}"] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for said in [".", " a ", "\u{200b}", "@bob "] {
            assert!(!is_blank(said), "{said:?}");
        }
    }

    #[test]
    fn only_notices_messages_and_errors_carry_text() {
        assert_eq!(ServerFrame::Accepted.text(), None);
        assert_eq!(ServerFrame::UsernameTimeout.text(), None);
        assert_eq!(server_busy().text(), Some("server busy"));
        assert_eq!(too_far_behind().text(), Some("too far behind"));
    }
}
