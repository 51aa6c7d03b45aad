//! Wire protocol v1: the frame types, the limits and every text.
//!
//! This module owns what a frame *is*: the two message enums, the length
//! limits, and the exact byte layout of one frame (a `u32` big-endian length,
//! then that many bytes of postcard). It also owns the spec's numbers (how
//! many of each role, how long a line or a name) and, in [`text`], every
//! text the server sends. It does no I/O; reassembling frames from a byte
//! stream is [`crate::codec`]'s job. The variant order of both enums is the
//! wire format: never reorder or insert, only append. The presence frames
//! ([`ClientFrame::Who`], [`ServerFrame::Roster`]) were appended that way:
//! every frame that existed before them keeps its bytes, and a server sends
//! `Roster` only to a client that asked with `Who`, so a client that knows
//! neither never receives a variant it cannot decode.

use serde::{Deserialize, Serialize};

pub mod text;

pub use text::{
    CHAT_PREFIX_CHARS, ChatLine, PRIVATE_MARK, PRIVATE_PREFIX, PUBLIC_MARK, Presence,
    SENDER_COLUMNS, WARNING_HEAD, already_named, choose_a_username_first,
    closed_to_make_room_before_hello, closed_to_make_room_before_naming, first_frame_must_be_hello,
    hello_again, invalid_username, is_blank, is_name_refusal, is_warning, joined, left,
    name_reserved, name_too_similar, no_hello_within, no_such_user, observers_only_read,
    parse_line, parse_presence, private_line, private_needs_a_name, private_needs_a_space,
    public_line, server_busy, shutdown_notice, too_far_behind, too_long_warning,
    too_many_connections_from, too_many_names, too_many_new_connections_from, who_before_a_name,
};

/// Most participants at once, from the spec.
pub const MAX_PARTICIPANTS: usize = 255;

/// Most observers at once, from the spec.
pub const MAX_OBSERVERS: usize = 255;

/// Longest chat line delivered, in characters (Unicode scalar values), from
/// the spec.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// Most characters (Unicode scalar values, after NFC) a username may have,
/// from the spec. The name rule itself is [`crate::username`].
pub const MAX_USERNAME_CHARS: usize = 10;

/// Longest username request, in bytes, that is normalized at all: ten
/// characters of at most 4 UTF-8 bytes each, times 3 because NFC never more
/// than triples a string's length. A longer request cannot become a valid
/// name.
pub const MAX_REQUESTED_BYTES: usize = MAX_USERNAME_CHARS * 4 * 3;

/// Bytes in a frame header: the payload length as a big-endian `u32`.
pub const HEADER_BYTES: usize = 4;

/// Largest payload a frame may carry (the spec's 1..=65536). A 1000-character
/// chat line is at most 4000 bytes of UTF-8, so this leaves ample room while
/// bounding what a peer can make a reader buffer.
pub const MAX_FRAME_BYTES: usize = 65_536;

/// Bytes a varint takes for `value` written as it must be: the fewest
/// that hold it (see [`crate::codec::decode_payload`]: a longer, padded
/// varint is a violation). Seven bits a byte: `varint_len(127) == 1`,
/// `varint_len(128) == 2`.
pub const fn varint_len(value: usize) -> usize {
    let mut len = 1;
    let mut rest = value >> 7;
    while rest > 0 {
        len += 1;
        rest >>= 7;
    }
    len
}

/// Bytes an enum's variant index takes: one, since both message enums and
/// [`Role`] have far fewer than 128 variants (appending past 127 would
/// need this to grow).
pub const MAX_VARIANT_BYTES: usize = 1;

/// The longest payload that can decode as a `Hello`: two variant indexes
/// (the message's and the role's), one byte each.
pub const MAX_HELLO_PAYLOAD: usize = 2 * MAX_VARIANT_BYTES;

/// The longest `Username` payload the name rule reads at all: a variant
/// index, the length of [`MAX_REQUESTED_BYTES`] and that much text (ten
/// 4-byte characters, with room for them to arrive decomposed, before
/// NFC). 122 bytes; a longer request cannot be a valid name.
pub const MAX_USERNAME_PAYLOAD: usize =
    MAX_VARIANT_BYTES + varint_len(MAX_REQUESTED_BYTES) + MAX_REQUESTED_BYTES;

/// The longest `Roster` payload the server sends: a variant index, the
/// list's length, [`MAX_PARTICIPANTS`] names of [`MAX_USERNAME_CHARS`]
/// four-byte characters each with its length, and the observer count.
/// 10,460 bytes: far under [`MAX_FRAME_BYTES`], so a full room's roster is
/// always one frame.
pub const MAX_ROSTER_PAYLOAD: usize = MAX_VARIANT_BYTES
    + varint_len(MAX_PARTICIPANTS)
    + MAX_PARTICIPANTS * (varint_len(4 * MAX_USERNAME_CHARS) + 4 * MAX_USERNAME_CHARS)
    + varint_len(MAX_OBSERVERS);

const _: () = assert!(MAX_ROSTER_PAYLOAD <= MAX_FRAME_BYTES);

/// The longest `Chat` payload that can be delivered: a variant index, the
/// length of [`MAX_MESSAGE_CHARS`] characters of 4 bytes each, and those
/// bytes. 4,003 bytes; a longer line is refused whatever it says.
pub const MAX_CHAT_PAYLOAD: usize =
    MAX_VARIANT_BYTES + varint_len(4 * MAX_MESSAGE_CHARS) + 4 * MAX_MESSAGE_CHARS;

/// Which kind of connection a `Hello` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Chooses a username, then reads and sends chat lines (wire index 0).
    Participant,
    /// Reads the room and sends nothing else (wire index 1).
    Observer,
}

/// A message from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The first frame of every connection (index 0).
    Hello(Role),
    /// A participant's username attempt, until one is accepted (index 1).
    Username(String),
    /// An active participant's chat line; `@name text` is private (index 2).
    Chat(String),
    /// A member asks who is in the room; answered with
    /// [`ServerFrame::Roster`], to the asker only (index 3).
    Who,
}

/// A message from the server to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The `Hello` is admitted; a slot of that role is held (index 0).
    Accepted,
    /// That role already has its maximum; the server closes next (index 1).
    Full,
    /// The participant's name is accepted and it is now active (index 2).
    UsernameAccepted,
    /// The name is held by an active participant; timer restarted (index 3).
    UsernameTaken,
    /// The name breaks the username rules; timer restarted (index 4).
    UsernameInvalid,
    /// No name was accepted in time; the server closes next (index 5).
    UsernameTimeout,
    /// A line to show as it is: joins, leaves, warnings (index 6).
    Notice(String),
    /// A chat line to show as it is, already prefixed (index 7).
    Message(String),
    /// Why the server is closing this connection (index 8).
    ProtocolError(String),
    /// Who is in the room, the answer to [`ClientFrame::Who`] (index 9).
    Roster {
        /// The active participants' names as shown, in the order they
        /// joined (the asker's own included, if it is one).
        participants: Vec<String>,
        /// How many observers are in the room (the asker included, if it
        /// is one).
        observers: u32,
    },
}

impl ServerFrame {
    /// The variant's name as docs/PROTOCOL.md writes it, for messages
    /// about a frame that came out of place.
    pub fn name(&self) -> &'static str {
        match self {
            ServerFrame::Accepted => "Accepted",
            ServerFrame::Full => "Full",
            ServerFrame::UsernameAccepted => "UsernameAccepted",
            ServerFrame::UsernameTaken => "UsernameTaken",
            ServerFrame::UsernameInvalid => "UsernameInvalid",
            ServerFrame::UsernameTimeout => "UsernameTimeout",
            ServerFrame::Notice(_) => "Notice",
            ServerFrame::Message(_) => "Message",
            ServerFrame::ProtocolError(_) => "ProtocolError",
            ServerFrame::Roster { .. } => "Roster",
        }
    }
}

/// Why a frame could not be read: each one is a protocol violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announced an empty payload.
    #[error("frame length 0 is not allowed (must be 1..={MAX_FRAME_BYTES})")]
    Empty,
    /// The header announced more than [`MAX_FRAME_BYTES`].
    #[error("frame length {0} exceeds the maximum of {MAX_FRAME_BYTES}")]
    TooLong(u32),
    /// The payload is not exactly one postcard value of the expected type.
    #[error("undecodable payload: {0}")]
    Undecodable(&'static str),
    /// The header announced more than the connection may send in its
    /// current state (see [`crate::codec::FrameLimit`]).
    #[error("frame length {len} exceeds the limit of {limit} bytes {when}")]
    OverLimit {
        /// The length announced.
        len: u32,
        /// The longest payload allowed now.
        limit: usize,
        /// The state, as the reason says it: "before Hello".
        when: &'static str,
    },
    /// A frame was begun and not finished within the frame deadline (time
    /// the server spent not reading it does not count).
    #[error("frame not finished within {} s", .0.as_secs_f64())]
    Unfinished(std::time::Duration),
}

impl FrameError {
    /// The reason sent to the peer in [`ServerFrame::ProtocolError`].
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

/// Checks a header's announced length and returns it as a `usize`.
pub fn check_length(len: u32) -> Result<usize, FrameError> {
    match len {
        0 => Err(FrameError::Empty),
        n if n as usize > MAX_FRAME_BYTES => Err(FrameError::TooLong(n)),
        n => Ok(n as usize),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::decode_payload;

    /// The frame's bytes; every frame these tests encode fits.
    fn encode<T: Serialize>(message: &T) -> Bytes {
        crate::codec::encode(message).expect("a frame within the limit")
    }

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn spec_example_bytes() {
        assert_eq!(
            hex(&encode(&ClientFrame::Hello(Role::Participant))),
            "00 00 00 02 00 00"
        );
        assert_eq!(
            hex(&encode(&ClientFrame::Hello(Role::Observer))),
            "00 00 00 02 00 01"
        );
        assert_eq!(
            hex(&encode(&ClientFrame::Username("bob".into()))),
            "00 00 00 05 01 03 62 6f 62"
        );
        assert_eq!(hex(&encode(&ServerFrame::Accepted)), "00 00 00 01 00");
        assert_eq!(hex(&encode(&ServerFrame::Full)), "00 00 00 01 01");
    }

    /// The frames section 5 of docs/PROTOCOL.md shows byte by byte, as it
    /// names them.
    fn documented_examples() -> Vec<(&'static str, Bytes)> {
        let roster = |participants: &[&str], observers| ServerFrame::Roster {
            participants: participants.iter().map(|&p| p.to_owned()).collect(),
            observers,
        };
        vec![
            (
                "Hello(Participant)",
                encode(&ClientFrame::Hello(Role::Participant)),
            ),
            (
                "Hello(Observer)",
                encode(&ClientFrame::Hello(Role::Observer)),
            ),
            (
                "Username(\"bob\")",
                encode(&ClientFrame::Username("bob".into())),
            ),
            ("Chat(\"hi\")", encode(&ClientFrame::Chat("hi".into()))),
            (
                "Chat(\"@bob hi\")",
                encode(&ClientFrame::Chat("@bob hi".into())),
            ),
            ("Who", encode(&ClientFrame::Who)),
            ("Accepted", encode(&ServerFrame::Accepted)),
            ("Full", encode(&ServerFrame::Full)),
            ("UsernameAccepted", encode(&ServerFrame::UsernameAccepted)),
            ("UsernameTaken", encode(&ServerFrame::UsernameTaken)),
            ("UsernameInvalid", encode(&ServerFrame::UsernameInvalid)),
            ("UsernameTimeout", encode(&ServerFrame::UsernameTimeout)),
            (
                "Message(\">      alice: hi\")",
                encode(&ServerFrame::Message(">      alice: hi".into())),
            ),
            (
                "Roster { participants: [\"alice\", \"bob\"], observers: 3 }",
                encode(&roster(&["alice", "bob"], 3)),
            ),
            (
                "Roster { participants: [], observers: 1 }",
                encode(&roster(&[], 1)),
            ),
        ]
    }

    /// Each example's row in section 5 of docs/PROTOCOL.md is
    /// `` | `message` | `header` `payload` | ``: the bytes the document gives
    /// are the bytes the codec writes.
    #[test]
    fn the_protocol_documents_byte_examples_are_the_encoded_bytes() {
        let document = include_str!("../../docs/PROTOCOL.md");
        for (message, bytes) in documented_examples() {
            let row = format!(
                "| `{message}` | `{}` `{}` |",
                hex(&bytes[..HEADER_BYTES]),
                hex(&bytes[HEADER_BYTES..])
            );
            assert!(
                document.lines().any(|line| line == row),
                "docs/PROTOCOL.md has no row {row}"
            );
        }
    }

    #[test]
    fn every_client_variant_has_its_index() {
        let frames = [
            ClientFrame::Hello(Role::Participant),
            ClientFrame::Username(String::new()),
            ClientFrame::Chat(String::new()),
            ClientFrame::Who,
        ];
        for (index, frame) in frames.iter().enumerate() {
            let bytes = encode(frame);
            assert_eq!(bytes[HEADER_BYTES] as usize, index, "{frame:?}");
            let back: ClientFrame = decode_payload(&bytes[HEADER_BYTES..]).unwrap();
            assert_eq!(&back, frame);
        }
    }

    #[test]
    fn a_full_rooms_roster_fits_the_bound_it_is_said_to_fit() {
        let worst = ServerFrame::Roster {
            participants: vec!["\u{1F980}".repeat(MAX_USERNAME_CHARS); MAX_PARTICIPANTS],
            observers: MAX_OBSERVERS as u32,
        };
        let bytes = encode(&worst);
        assert_eq!(
            bytes.len() - HEADER_BYTES,
            MAX_ROSTER_PAYLOAD,
            "the bound is exact"
        );
        let back: ServerFrame = decode_payload(&bytes[HEADER_BYTES..]).unwrap();
        assert_eq!(back, worst);
    }

    #[test]
    fn every_server_variant_has_its_index() {
        let frames = [
            ServerFrame::Accepted,
            ServerFrame::Full,
            ServerFrame::UsernameAccepted,
            ServerFrame::UsernameTaken,
            ServerFrame::UsernameInvalid,
            ServerFrame::UsernameTimeout,
            ServerFrame::Notice(String::new()),
            ServerFrame::Message(String::new()),
            ServerFrame::ProtocolError(String::new()),
            ServerFrame::Roster {
                participants: vec!["alice".into()],
                observers: 2,
            },
        ];
        for (index, frame) in frames.iter().enumerate() {
            let bytes = encode(frame);
            assert_eq!(bytes[HEADER_BYTES] as usize, index, "{frame:?}");
            let back: ServerFrame = decode_payload(&bytes[HEADER_BYTES..]).unwrap();
            assert_eq!(&back, frame);
            // Its name is the variant's own.
            let debug = format!("{frame:?}");
            let variant = debug.split(['(', ' ']).next().unwrap_or_default();
            assert_eq!(frame.name(), variant);
        }
    }

    #[test]
    fn chat_with_long_string_uses_multibyte_varint() {
        let line = "x".repeat(200);
        let bytes = encode(&ClientFrame::Chat(line.clone()));
        // 200 = 0xc8 → varint c8 01.
        assert_eq!(&bytes[..7], &[0, 0, 0, 203, 2, 0xc8, 0x01]);
        let back: ClientFrame = decode_payload(&bytes[HEADER_BYTES..]).unwrap();
        assert_eq!(back, ClientFrame::Chat(line));
    }

    #[test]
    fn lengths_outside_the_limits_are_violations() {
        assert_eq!(check_length(0), Err(FrameError::Empty));
        assert_eq!(check_length(1), Ok(1));
        assert_eq!(check_length(65_536), Ok(65_536));
        assert_eq!(check_length(65_537), Err(FrameError::TooLong(65_537)));
        assert_eq!(check_length(u32::MAX), Err(FrameError::TooLong(u32::MAX)));
    }

    #[test]
    fn undecodable_payloads_are_violations() {
        let cases: &[(&[u8], &str)] = &[
            (&[4], "unknown message or role variant"),
            (&[0, 2], "unknown message or role variant"),
            (&[0], "message ends early"),
            (&[0, 0, 0], "trailing bytes after the message"),
            (&[1, 2, 0xff, 0xfe], "invalid UTF-8 in a string"),
            (&[1, 5, b'a'], "message ends early"),
            (
                &[
                    2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                "bad varint",
            ),
            (&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], "bad varint"),
        ];
        for (payload, why) in cases {
            let got = decode_payload::<ClientFrame>(payload);
            assert_eq!(got, Err(FrameError::Undecodable(why)), "{payload:?}");
        }
    }

    #[test]
    fn varint_len_counts_seven_bits_a_byte() {
        for (value, len) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (4000, 2),
            (16_383, 2),
            (16_384, 3),
            (usize::MAX, 10),
        ] {
            assert_eq!(varint_len(value), len, "{value}");
        }
    }

    #[test]
    fn the_payload_limits_are_the_longest_payloads_that_decode() {
        // Hello: two one-byte indexes.
        let hello = encode(&ClientFrame::Hello(Role::Observer));
        assert_eq!(hello.len() - HEADER_BYTES, MAX_HELLO_PAYLOAD);

        // Username: the longest request the name rule reads.
        let name = "\u{1F980}".repeat(MAX_REQUESTED_BYTES / 4);
        let username = encode(&ClientFrame::Username(name.clone()));
        assert_eq!(username.len() - HEADER_BYTES, MAX_USERNAME_PAYLOAD);
        assert_eq!(
            decode_payload::<ClientFrame>(&username[HEADER_BYTES..]),
            Ok(ClientFrame::Username(name))
        );

        // Chat: the longest deliverable line.
        let line = "\u{1F980}".repeat(MAX_MESSAGE_CHARS);
        let chat = encode(&ClientFrame::Chat(line.clone()));
        assert_eq!(chat.len() - HEADER_BYTES, MAX_CHAT_PAYLOAD);
        assert_eq!(
            decode_payload::<ClientFrame>(&chat[HEADER_BYTES..]),
            Ok(ClientFrame::Chat(line))
        );
        assert_eq!(
            (MAX_HELLO_PAYLOAD, MAX_USERNAME_PAYLOAD, MAX_CHAT_PAYLOAD),
            (2, 122, 4003)
        );
    }

    /// `value` as a postcard varint padded to exactly `width` bytes.
    fn padded_varint(value: u64, width: usize) -> Vec<u8> {
        (0..width)
            .map(|i| {
                let bits = value.checked_shr(7 * i as u32).unwrap_or(0) as u8 & 0x7f;
                if i + 1 < width { bits | 0x80 } else { bits }
            })
            .collect()
    }

    /// The decision, one way: a varint longer than it needs to be is a
    /// violation wherever it stands (the message's index, the role's, a
    /// string's length), whatever value it pads; the issue's own bytes
    /// `80 00 00` (a `Hello` with its index padded) among them.
    #[test]
    fn overlong_varints_are_violations() {
        let overlong = FrameError::Undecodable("overlong varint");
        // PROTOCOL.md's examples first: a padded `Hello` index, a padded
        // role, and `Chat("hi")` with its length padded.
        let mut cases: Vec<Vec<u8>> = vec![
            vec![0x80, 0x00, 0x00],
            vec![0x00, 0x81, 0x00],
            vec![0x02, 0x82, 0x00, b'h', b'i'],
        ];
        for width in 2..=5 {
            let mut hello = padded_varint(0, width);
            hello.push(0);
            cases.push(hello);
            let mut chat = padded_varint(2, width);
            chat.extend(padded_varint(2, width));
            chat.extend(b"hi");
            cases.push(chat);
            let mut name = vec![1];
            name.extend(padded_varint(3, width));
            name.extend(b"bob");
            cases.push(name);
        }
        // A 200-byte line's length padded from two bytes to three.
        let mut long = vec![2];
        long.extend(padded_varint(200, 3));
        long.extend([b'x'; 200]);
        cases.push(long);
        for payload in &cases {
            assert_eq!(
                decode_payload::<ClientFrame>(payload),
                Err(overlong.clone()),
                "{payload:02x?}"
            );
        }
        // The server's frames are held to the same rule.
        assert_eq!(
            decode_payload::<ServerFrame>(&[0x86, 0x00, 0x02, b'h', b'i']),
            Err(overlong)
        );
    }

    /// And the other way: every varint as short as it can be decodes,
    /// including the multi-byte lengths at each width's edges, and it is
    /// exactly what the encoder writes.
    #[test]
    fn minimal_varints_decode_at_every_width() {
        for len in [0, 1, 127, 128, 200, 4000, 16_383, 16_384, 60_000] {
            let line = "x".repeat(len);
            let mut payload = vec![2];
            payload.extend(padded_varint(len as u64, varint_len(len)));
            payload.extend(line.as_bytes());
            assert_eq!(
                decode_payload::<ClientFrame>(&payload),
                Ok(ClientFrame::Chat(line.clone())),
                "{len}"
            );
            assert_eq!(
                &encode(&ClientFrame::Chat(line))[HEADER_BYTES..],
                &payload[..],
                "{len}"
            );
        }
        assert_eq!(
            decode_payload::<ClientFrame>(&[0, 1]),
            Ok(ClientFrame::Hello(Role::Observer))
        );
    }

    #[test]
    fn embedded_nul_is_valid_utf8_and_decodes() {
        let payload = [2, 3, b'a', 0, b'b'];
        let got: ClientFrame = decode_payload(&payload).unwrap();
        assert_eq!(got, ClientFrame::Chat("a\0b".into()));
    }
}
