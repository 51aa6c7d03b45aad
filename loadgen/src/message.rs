//! The chat lines loadgen sends and how it reads them back: no I/O.
//!
//! A line carries its own identity and its *scheduled* send time, so any
//! recipient can tell who sent it, which of that sender's messages it is, and
//! how late it arrived, without asking anyone:
//!
//! ```text
//! public:  <seq>:<scheduled µs>:<filler>
//! private: @<target> <seq>:<scheduled µs>:<filler>
//! ```
//!
//! The filler pads the line to the requested number of characters with a
//! pattern that depends on the sender and the sequence number, so a receiver
//! rebuilds the exact expected bytes from the fields it parsed and detects any
//! altered, truncated or misattributed byte. The server prefixes what it
//! delivers ([`protocol::public_line`] and [`protocol::private_line`]: the
//! mark, the sender right-aligned in [`SENDER_COLUMNS`], `": "`);
//! [`parse_delivery`] takes that prefix apart with [`protocol::parse_line`],
//! so the layout is the protocol module's, not restated here.
//!
//! Participant names are `<prefix><index>` so that a receiver maps a name back
//! to a sender index by parsing, not by a table lookup.

use std::fmt::Write as _;

use logosnet::protocol::{self, CHAT_PREFIX_CHARS, MAX_MESSAGE_CHARS, PRIVATE_PREFIX};

/// Bytes before the line in a message delivered from one of loadgen's
/// participants: the protocol's [`CHAT_PREFIX_CHARS`], one byte each, since
/// loadgen's names are ASCII and both marks are one byte (a test checks
/// both).
pub const DELIVERY_PREFIX_BYTES: usize = CHAT_PREFIX_CHARS;

/// [`PRIVATE_PREFIX`] as the byte it is in a received line (it is ASCII;
/// the build fails if the protocol ever says otherwise).
const PRIVATE_PREFIX_BYTE: u8 = ascii(PRIVATE_PREFIX);

/// `c` as one byte, for a protocol character compared in place.
const fn ascii(c: char) -> u8 {
    assert!(c.is_ascii(), "a protocol mark loadgen compares as a byte");
    c as u8
}

/// Filler alphabet; its length is coprime with nothing in particular, it only
/// has to make neighbouring messages differ.
const PATTERN: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The longest line loadgen writes, in characters: the protocol's
/// [`MAX_MESSAGE_CHARS`] (what `--size` is validated against).
pub const MAX_LINE_CHARS: usize = MAX_MESSAGE_CHARS;

/// [`PATTERN`] repeated to cover any filler from any starting offset, so a
/// filler is written and checked as one slice (a `memcmp`), not byte by byte
/// with a division each: the byte loop was a fifth of loadgen's receive CPU.
const FILLERS: [u8; MAX_LINE_CHARS + PATTERN.len()] = {
    let mut out = [0; MAX_LINE_CHARS + PATTERN.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = PATTERN[i % PATTERN.len()];
        i += 1;
    }
    out
};

/// The `len` filler bytes that start at pattern offset `start` (`len` at
/// most [`MAX_LINE_CHARS`]).
fn filler(start: usize, len: usize) -> &'static [u8] {
    &FILLERS[start..start + len.min(MAX_LINE_CHARS)]
}

/// The name of participant `index`.
pub fn participant_name(prefix: &str, index: u16) -> String {
    format!("{prefix}{index}")
}

/// Maps a name back to a participant index (`None` if it is not one of ours).
pub fn participant_index(prefix: &str, name: &str, participants: usize) -> Option<u16> {
    index_of_name(prefix.as_bytes(), name.as_bytes(), participants)
}

/// [`participant_index`] on bytes, as they lie in a received frame.
fn index_of_name(prefix: &[u8], name: &[u8], participants: usize) -> Option<u16> {
    let digits = name.strip_prefix(prefix)?;
    let (index, rest) = read_number(digits)?;
    if !rest.is_empty() {
        return None;
    }
    let index = u16::try_from(index).ok()?;
    (usize::from(index) < participants).then_some(index)
}
/// Writes the line that `sender` sends as its message `seq`, scheduled at
/// `scheduled_us`, into `out` (cleared first; reuse it to avoid allocating).
/// The line is `size` characters long, or longer if its header needs more.
pub fn write_line(
    out: &mut String,
    target: Option<&str>,
    sender: u16,
    seq: u32,
    scheduled_us: u64,
    size: usize,
) {
    out.clear();
    if let Some(target) = target {
        out.push(PRIVATE_PREFIX);
        out.push_str(target);
        out.push(' ');
    }
    // Writing to a String cannot fail.
    let _ = write!(out, "{seq}:{scheduled_us}:");
    let fill = filler(filler_offset(sender, seq), size.saturating_sub(out.len()));
    // The pattern is ASCII, so every byte is a char.
    out.extend(fill.iter().map(|&b| char::from(b)));
}

fn filler_offset(sender: u16, seq: u32) -> usize {
    (usize::from(sender) * 7 + seq as usize) % PATTERN.len()
}

/// What a delivered `Message` says, once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The sender's participant index.
    pub sender: u16,
    /// Delivered as private ([`protocol::PRIVATE_MARK`]) rather than public
    /// ([`PUBLIC_MARK`]).
    pub private: bool,
    /// The sender's sequence number.
    pub seq: u32,
    /// When the sender was scheduled to send it, µs since the run's epoch.
    pub scheduled_us: u64,
}

/// Why a delivered message is not one of ours, intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbled {
    /// The server's prefix is not a chat line's ([`protocol::parse_line`]
    /// refuses it, or it is not [`DELIVERY_PREFIX_BYTES`] long: a sender
    /// name that is not ASCII).
    Prefix,
    /// The sender is not one of our participants.
    Sender,
    /// A private message not addressed to this receiver.
    Target,
    /// The header fields do not parse.
    Header,
    /// The bytes differ from what the sender sent (length or content).
    Body,
}

/// Parses a delivered message text for `me` (a participant name, or `None` for
/// an observer) and checks that it is byte for byte what the sender sent.
///
/// It works on bytes, straight from the read buffer, and allocates nothing:
/// the prefix (14 bytes) is checked as UTF-8 and handed to
/// [`protocol::parse_line`]; the line after it is compared byte by byte. A
/// text it accepts is ASCII throughout (every byte is compared with a mark,
/// a name, a digit or the filler), so it needs no UTF-8 check of the whole;
/// a text it rejects may not be UTF-8 at all, which the caller tells apart
/// with a strict decode.
pub fn parse_delivery(
    text: &[u8],
    prefix: &str,
    participants: usize,
    me: Option<&str>,
    size: usize,
) -> Result<Delivery, Garbled> {
    let (head, line) = text
        .split_at_checked(DELIVERY_PREFIX_BYTES)
        .ok_or(Garbled::Prefix)?;
    let chat = std::str::from_utf8(head)
        .ok()
        .and_then(protocol::parse_line)
        // The whole head is the prefix: the line starts right after it.
        .filter(|chat| chat.text.is_empty())
        .ok_or(Garbled::Prefix)?;
    let sender = index_of_name(prefix.as_bytes(), chat.sender.as_bytes(), participants)
        .ok_or(Garbled::Sender)?;
    let private = chat.private;
    let mut rest = line;
    if private {
        let target = me.ok_or(Garbled::Target)?.as_bytes();
        rest = rest
            .strip_prefix(&[PRIVATE_PREFIX_BYTE])
            .and_then(|r| r.strip_prefix(target))
            .and_then(|r| r.strip_prefix(b" "))
            .ok_or(Garbled::Target)?;
    }
    let (seq, rest) = take_number(rest).ok_or(Garbled::Header)?;
    let seq = u32::try_from(seq).map_err(|_| Garbled::Header)?;
    let (scheduled_us, fill) = take_number(rest).ok_or(Garbled::Header)?;
    let header_len = line.len() - fill.len();
    let expected = size.saturating_sub(header_len);
    if fill.len() != expected || fill != filler(filler_offset(sender, seq), expected) {
        return Err(Garbled::Body);
    }
    Ok(Delivery {
        sender,
        private,
        seq,
        scheduled_us,
    })
}

/// Reads a decimal number as `write!` writes it (no sign, no leading zero,
/// at most what a `u64` holds) followed by `':'`; returns it and what
/// follows the colon.
fn take_number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (value, rest) = read_number(bytes)?;
    Some((value, rest.strip_prefix(b":")?))
}

/// Reads the decimal number at the start of `bytes` as `write!` writes it
/// (no sign, no leading zero, at most what a `u64` holds); returns it and
/// the bytes after its last digit.
fn read_number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    /// Any number of this many digits fits a `u64` without a check.
    const UNCHECKED_DIGITS: usize = 19;
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && bytes[0] == b'0') {
        return None;
    }
    let (number, rest) = bytes.split_at(digits);
    let value = if digits <= UNCHECKED_DIGITS {
        number
            .iter()
            .fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'))
    } else {
        number.iter().try_fold(0u64, |n, &b| {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        })?
    };
    Some((value, rest))
}
#[cfg(test)]
mod tests {
    use super::*;

    use logosnet::protocol::{ServerFrame, private_line, public_line};

    /// The text of `frame`, a delivered chat line.
    fn text(frame: ServerFrame) -> String {
        match frame {
            ServerFrame::Message(text) => text,
            other => panic!("not a chat line: {other:?}"),
        }
    }

    /// `line` from `sender` as the server delivers it, public or private.
    fn delivered(private: bool, sender: &str, line: &str) -> String {
        text(if private {
            private_line(sender, line)
        } else {
            public_line(sender, line)
        })
    }

    #[test]
    fn the_prefix_is_as_long_as_the_protocol_writes_it() {
        for private in [false, true] {
            let text = delivered(private, "lg1", "");
            assert_eq!(text.len(), DELIVERY_PREFIX_BYTES, "{text:?}");
        }
    }

    #[test]
    fn a_stranger_whose_name_is_not_ascii_is_not_taken_apart_in_place() {
        let text = delivered(false, "zoë", "0:1:");
        assert_eq!(
            parse_delivery(text.as_bytes(), "lg", 10, None, 4),
            Err(Garbled::Prefix)
        );
        let text = delivered(false, "zoe", "0:1:");
        assert_eq!(
            parse_delivery(text.as_bytes(), "lg", 10, None, 4),
            Err(Garbled::Sender)
        );
    }

    #[test]
    fn public_line_round_trips() {
        let mut line = String::new();
        write_line(&mut line, None, 3, 17, 123_456, 64);
        assert_eq!(line.len(), 64);
        assert!(line.starts_with("17:123456:"));
        let text = delivered(false, "lg3", &line);
        assert_eq!(
            parse_delivery(text.as_bytes(), "lg", 10, None, 64),
            Ok(Delivery {
                sender: 3,
                private: false,
                seq: 17,
                scheduled_us: 123_456
            })
        );
    }

    #[test]
    fn private_line_round_trips_only_for_its_target() {
        let mut line = String::new();
        write_line(&mut line, Some("lg7"), 2, 0, 5, 40);
        assert!(line.starts_with("@lg7 0:5:"));
        let text = delivered(true, "lg2", &line);
        let got = parse_delivery(text.as_bytes(), "lg", 10, Some("lg7"), 40).unwrap();
        assert!(got.private);
        assert_eq!(got.sender, 2);
        assert_eq!(
            parse_delivery(text.as_bytes(), "lg", 10, Some("lg8"), 40),
            Err(Garbled::Target)
        );
        assert_eq!(
            parse_delivery(text.as_bytes(), "lg", 10, None, 40),
            Err(Garbled::Target)
        );
    }

    #[test]
    fn header_longer_than_size_is_kept_whole() {
        let mut line = String::new();
        write_line(&mut line, None, 0, 123, 456_789, 4);
        assert_eq!(line, "123:456789:");
        let text = delivered(false, "lg0", &line);
        assert!(parse_delivery(text.as_bytes(), "lg", 1, None, 4).is_ok());
    }

    #[test]
    fn any_altered_byte_is_detected() {
        let mut line = String::new();
        write_line(&mut line, None, 1, 9, 1000, 48);
        let good = delivered(false, "lg1", &line);
        assert!(parse_delivery(good.as_bytes(), "lg", 2, None, 48).is_ok());
        for i in 0..good.len() {
            let mut bad = good.clone().into_bytes();
            bad[i] = if bad[i] == b'#' { b'$' } else { b'#' };
            let bad = String::from_utf8(bad).unwrap();
            // Changing the scheduled time alone still parses; every other
            // byte is part of the identity or the filler.
            let got = parse_delivery(bad.as_bytes(), "lg", 2, None, 48);
            assert!(got.is_err(), "byte {i} changed unnoticed: {bad:?}");
        }
        assert_eq!(
            parse_delivery(&good.as_bytes()[..good.len() - 1], "lg", 2, None, 48),
            Err(Garbled::Body)
        );
    }

    #[test]
    fn filler_is_the_pattern_from_the_senders_offset() {
        let mut line = String::new();
        for (sender, seq) in [(0, 0), (3, 17), (254, 4_000_000)] {
            write_line(&mut line, None, sender, seq, 1, MAX_LINE_CHARS);
            let body = line.split(':').nth(2).unwrap();
            let start = filler_offset(sender, seq);
            for (i, b) in body.bytes().enumerate() {
                assert_eq!(b, PATTERN[(start + i) % PATTERN.len()], "byte {i}");
            }
            assert_eq!(line.len(), MAX_LINE_CHARS);
        }
    }

    #[test]
    fn non_ascii_or_invalid_utf8_is_never_accepted() {
        let mut line = String::new();
        write_line(&mut line, None, 1, 9, 1000, 48);
        let good = delivered(false, "lg1", &line).into_bytes();
        for i in 0..good.len() {
            for bad_byte in [0x80, 0xc3, 0xff] {
                let mut bad = good.clone();
                bad[i] = bad_byte;
                assert!(parse_delivery(&bad, "lg", 2, None, 48).is_err(), "byte {i}");
            }
        }
    }

    #[test]
    fn numbers_are_read_as_written() {
        assert_eq!(take_number(b"0:x"), Some((0, &b"x"[..])));
        assert_eq!(take_number(b"123:"), Some((123, &b""[..])));
        assert_eq!(
            take_number(b"18446744073709551615:"),
            Some((u64::MAX, &b""[..]))
        );
        for bad in [
            &b"18446744073709551616:"[..],
            b"01:",
            b":",
            b"12",
            b"-1:",
            b"+1:",
        ] {
            assert_eq!(take_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_map_back_to_indices() {
        assert_eq!(participant_index("lg", "lg254", 255), Some(254));
        assert_eq!(participant_index("lg", "lg255", 255), None);
        assert_eq!(participant_index("lg", "lg01", 255), None);
        assert_eq!(participant_index("lg", "xx1", 255), None);
        assert_eq!(participant_index("lg", "lg", 255), None);
        assert_eq!(participant_index("lg", "lg1x", 255), None);
        assert_eq!(participant_index("lg", "lg65537", 255), None);
    }
}
