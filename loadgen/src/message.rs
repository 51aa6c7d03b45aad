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
//! delivers (`"> "` or `"% "`, the sender right-aligned in 10 columns,
//! `": "`); [`parse_delivery`] checks that prefix too.
//!
//! Participant names are `<prefix><index>` so that a receiver maps a name back
//! to a sender index by parsing, not by a table lookup.

use std::fmt::Write as _;

/// The server's name column width (the spec's 10 characters).
pub const NAME_COLUMNS: usize = 10;

/// Bytes before the line in a delivered message: marker, space, name column,
/// colon, space — the spec's 14-character prefix.
pub const DELIVERY_PREFIX_BYTES: usize = 2 + NAME_COLUMNS + 2;

/// Filler alphabet; its length is coprime with nothing in particular, it only
/// has to make neighbouring messages differ.
const PATTERN: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The name of participant `index`.
pub fn participant_name(prefix: &str, index: u16) -> String {
    format!("{prefix}{index}")
}

/// Maps a name back to a participant index (`None` if it is not one of ours).
pub fn participant_index(prefix: &str, name: &str, participants: usize) -> Option<u16> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    let index: u16 = digits.parse().ok()?;
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
        out.push('@');
        out.push_str(target);
        out.push(' ');
    }
    // Writing to a String cannot fail.
    let _ = write!(out, "{seq}:{scheduled_us}:");
    let start = filler_offset(sender, seq);
    for i in 0..size.saturating_sub(out.len()) {
        out.push(char::from(PATTERN[(start + i) % PATTERN.len()]));
    }
}

fn filler_offset(sender: u16, seq: u32) -> usize {
    (usize::from(sender) * 7 + seq as usize) % PATTERN.len()
}

/// What a delivered `Message` says, once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The sender's participant index.
    pub sender: u16,
    /// Delivered as private (`"% "`) rather than public (`"> "`).
    pub private: bool,
    /// The sender's sequence number.
    pub seq: u32,
    /// When the sender was scheduled to send it, µs since the run's epoch.
    pub scheduled_us: u64,
}

/// Why a delivered message is not one of ours, intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbled {
    /// The server's prefix is not `"> "`/`"% "` + 10 columns + `": "`.
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
pub fn parse_delivery(
    text: &str,
    prefix: &str,
    participants: usize,
    me: Option<&str>,
    size: usize,
) -> Result<Delivery, Garbled> {
    let bytes = text.as_bytes();
    if bytes.len() < DELIVERY_PREFIX_BYTES || &bytes[12..14] != b": " || bytes[1] != b' ' {
        return Err(Garbled::Prefix);
    }
    let private = match bytes[0] {
        b'>' => false,
        b'%' => true,
        _ => return Err(Garbled::Prefix),
    };
    let column = text.get(2..12).ok_or(Garbled::Prefix)?;
    let name = column.trim_start_matches(' ');
    let sender = participant_index(prefix, name, participants).ok_or(Garbled::Sender)?;
    let line = &text[DELIVERY_PREFIX_BYTES..];
    let mut rest = line;
    if private {
        let addressed = rest.strip_prefix('@').ok_or(Garbled::Target)?;
        let (target, after) = addressed.split_once(' ').ok_or(Garbled::Target)?;
        if Some(target) != me {
            return Err(Garbled::Target);
        }
        rest = after;
    }
    let (seq, after) = rest.split_once(':').ok_or(Garbled::Header)?;
    let (scheduled, filler) = after.split_once(':').ok_or(Garbled::Header)?;
    let seq: u32 = parse_canonical(seq).ok_or(Garbled::Header)?;
    let scheduled_us: u64 = parse_canonical(scheduled).ok_or(Garbled::Header)?;
    let header_len = line.len() - filler.len();
    if filler.len() != size.saturating_sub(header_len) {
        return Err(Garbled::Body);
    }
    let start = filler_offset(sender, seq);
    let intact = filler
        .bytes()
        .enumerate()
        .all(|(i, b)| b == PATTERN[(start + i) % PATTERN.len()]);
    if !intact {
        return Err(Garbled::Body);
    }
    Ok(Delivery {
        sender,
        private,
        seq,
        scheduled_us,
    })
}

/// Parses decimal digits as written by `write!` (no sign, no leading zero).
fn parse_canonical<T: std::str::FromStr>(digits: &str) -> Option<T> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.len() == 1 || !digits.starts_with('0'));
    if canonical { digits.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(marker: char, sender: &str, line: &str) -> String {
        format!("{marker} {sender:>NAME_COLUMNS$}: {line}")
    }

    #[test]
    fn public_line_round_trips() {
        let mut line = String::new();
        write_line(&mut line, None, 3, 17, 123_456, 64);
        assert_eq!(line.len(), 64);
        assert!(line.starts_with("17:123456:"));
        let text = delivered('>', "lg3", &line);
        assert_eq!(
            parse_delivery(&text, "lg", 10, None, 64),
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
        let text = delivered('%', "lg2", &line);
        let got = parse_delivery(&text, "lg", 10, Some("lg7"), 40).unwrap();
        assert!(got.private);
        assert_eq!(got.sender, 2);
        assert_eq!(
            parse_delivery(&text, "lg", 10, Some("lg8"), 40),
            Err(Garbled::Target)
        );
        assert_eq!(
            parse_delivery(&text, "lg", 10, None, 40),
            Err(Garbled::Target)
        );
    }

    #[test]
    fn header_longer_than_size_is_kept_whole() {
        let mut line = String::new();
        write_line(&mut line, None, 0, 123, 456_789, 4);
        assert_eq!(line, "123:456789:");
        let text = delivered('>', "lg0", &line);
        assert!(parse_delivery(&text, "lg", 1, None, 4).is_ok());
    }

    #[test]
    fn any_altered_byte_is_detected() {
        let mut line = String::new();
        write_line(&mut line, None, 1, 9, 1000, 48);
        let good = delivered('>', "lg1", &line);
        assert!(parse_delivery(&good, "lg", 2, None, 48).is_ok());
        for i in 0..good.len() {
            let mut bad = good.clone().into_bytes();
            bad[i] = if bad[i] == b'#' { b'$' } else { b'#' };
            let bad = String::from_utf8(bad).unwrap();
            // Changing the scheduled time alone still parses; every other
            // byte is part of the identity or the filler.
            let got = parse_delivery(&bad, "lg", 2, None, 48);
            assert!(got.is_err(), "byte {i} changed unnoticed: {bad:?}");
        }
        assert_eq!(
            parse_delivery(&good[..good.len() - 1], "lg", 2, None, 48),
            Err(Garbled::Body)
        );
    }

    #[test]
    fn names_map_back_to_indices() {
        assert_eq!(participant_index("lg", "lg254", 255), Some(254));
        assert_eq!(participant_index("lg", "lg255", 255), None);
        assert_eq!(participant_index("lg", "lg01", 255), None);
        assert_eq!(participant_index("lg", "xx1", 255), None);
        assert_eq!(participant_index("lg", "lg", 255), None);
    }
}
