//! Making text from the network safe and unambiguous to print.
//!
//! Everything another user or the server sends is shown through
//! [`sanitize`]. A terminal obeys control characters: ESC starts sequences
//! that move the cursor, clear the screen or retitle the window, BEL rings,
//! CR and backspace let a line overwrite itself, a newline lets one message
//! pose as two (a fake "User … has left"). Invisible characters deceive in
//! a quieter way: bidirectional overrides reorder what is shown, zero-width
//! spaces and other default-ignorable code points make two different texts
//! look identical. Each such character is shown as a visible escape
//! instead: `\x1b` for C0 controls and DEL, `\u{200b}` for the rest.
//!
//! **Why the backslash is escaped too (`\\`), rather than escapes being
//! drawn in a style text cannot produce (reverse video, say).** A style
//! exists only on a terminal: piped to a file or a log (the observer's main
//! use) it vanishes, and a user who typed the four characters `\x1b` would
//! again look exactly like one who sent ESC. Escaping the backslash makes
//! the shown text decode back to exactly what was received, in every front
//! end and every log, at the price of one doubled character in the rare
//! line that holds a backslash.
//!
//! **Joiners and variation selectors after a visible non-ASCII character
//! are kept.** They are default-ignorable, but there they are how text is
//! written: the zero-width joiner builds emoji sequences (👨‍👩‍👧), the
//! non-joiner is part of Persian spelling, variation selectors pick emoji
//! or text presentation (❤️). Anywhere else (at the start, after ASCII,
//! after another invisible) they are escaped like the rest.
//!
//! **Names are padded by the columns they take, not by characters.** The
//! server right-aligns a sender's name in a field of ten *characters*
//! ([`crate::protocol::public_line`]); a CJK or emoji name takes two
//! columns a character and a stacked-mark name fewer columns than
//! characters, so the text after it would start in another column.
//! [`room_line`] takes the line apart and aligns the name again by display
//! width (`unicode-width`, the East Asian Width and zero-width tables a
//! terminal uses). A name wider than the field (six or more wide
//! characters) cannot line up; it pushes its text right rather than being
//! cut, since a cut name could pass for another.
//!
//! **No row may pass for a line of its own.** A terminal wraps a long line
//! at its last column and goes on at column 0, so a line padded to the
//! terminal's width could put `>      alice: …` at the start of a row, where
//! it reads exactly like alice's line. [`wrap`] cuts lines into rows itself
//! and indents every row after the first, so only the first row of a line
//! ever starts at column 0.
//!
//! [`roster_line`] says who is in the room in words.
//!
//! This module owns those mappings and nothing else: it does no I/O.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_width::UnicodeWidthChar;

use crate::protocol::{self, PRIVATE_MARK, PUBLIC_MARK, SENDER_COLUMNS};
use crate::username::is_default_ignorable;

/// The text with every character a terminal would act on, every invisible
/// one and the backslash replaced by a visible escape: C0 controls (except
/// tab) and DEL as `\x1b`-style hex, C1 controls and invisible characters
/// as `\u{9b}`-style, the backslash as `\\`. Everything else, including tab
/// and all printable Unicode, is unchanged.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    let mut previous = None;
    let clean = text.chars().all(|c| {
        let keep = c != '\\' && !needs_escape(previous, c);
        previous = Some(c);
        keep
    });
    if clean {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut previous = None;
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if !needs_escape(previous, c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        previous = Some(c);
    }
    Cow::Owned(out)
}

/// Columns `text` takes on a terminal: two for a wide (CJK, emoji)
/// character, none for a combining mark or a zero-width one.
pub fn width(text: &str) -> usize {
    text.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// A `Message` as shown: sanitised, and if it is a chat line, the sender
/// right-aligned again in [`SENDER_COLUMNS`] *columns* (see the module
/// docs). Anything else is only sanitised.
pub fn room_line(message: &str) -> String {
    let Some(line) = protocol::parse_line(message) else {
        return sanitize(message).into_owned();
    };
    let mark = if line.private {
        PRIVATE_MARK
    } else {
        PUBLIC_MARK
    };
    let sender = sanitize(line.sender);
    let pad = SENDER_COLUMNS.saturating_sub(width(&sender));
    format!("{mark} {:pad$}{sender}: {}", "", sanitize(line.text))
}

/// Who the roster is shown to: the one name (or observer) left out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer<'a> {
    /// A participant named this (as the server shows it).
    Participant(&'a str),
    /// An observer.
    Observer,
}

/// A `Roster` in words, for `viewer`, who is left out: `In the room:
/// alice, bob and 3 observers`, participants in the order they joined,
/// names sanitised; `Nobody else is in the room` when there is no one
/// else.
pub fn roster_line(participants: &[String], observers: u32, viewer: Viewer<'_>) -> String {
    let mut others: Vec<String> = Vec::with_capacity(participants.len() + 1);
    let mut skipped_self = false;
    for name in participants {
        if !skipped_self && viewer == Viewer::Participant(name) {
            skipped_self = true;
            continue;
        }
        others.push(sanitize(name).into_owned());
    }
    let observers = match viewer {
        Viewer::Observer => observers.saturating_sub(1),
        Viewer::Participant(_) => observers,
    };
    match observers {
        0 => {}
        1 => others.push("1 observer".to_owned()),
        n => others.push(format!("{n} observers")),
    }
    match others.split_last() {
        None => "Nobody else is in the room".to_owned(),
        Some((only, [])) => format!("In the room: {only}"),
        Some((last, rest)) => format!("In the room: {} and {last}", rest.join(", ")),
    }
}

/// Columns between tab stops, as terminals set them.
const TAB_COLUMNS: usize = 8;

/// `line` (already sanitised) cut into rows of at most `columns` columns,
/// every row after the first indented by `indent` spaces, so that no row
/// but the first starts at column 0 (see the module docs). The indent is cut
/// to two columns on a terminal too narrow for it (less than twice as wide),
/// and to what leaves one column for text. A tab is expanded to spaces up
/// to the next tab stop of the line as written. A character that takes no
/// columns stays on the row of the character before it; a wide character
/// that does not fit at the end of a row starts the next.
pub fn wrap(line: &str, columns: usize, indent: usize) -> Vec<String> {
    let columns = columns.max(1);
    let indent = (if indent * 2 <= columns { indent } else { 2 }).min(columns - 1);
    let mut rows = Rows {
        done: Vec::new(),
        row: String::new(),
        used: 0,
        start: 0,
        columns,
        indent,
    };
    let mut written = 0;
    for c in line.chars() {
        if c == '\t' {
            let spaces = TAB_COLUMNS - written % TAB_COLUMNS;
            for _ in 0..spaces {
                rows.push(' ', 1);
            }
            written += spaces;
        } else {
            let w = c.width().unwrap_or(0);
            rows.push(c, w);
            written += w;
        }
    }
    rows.done.push(rows.row);
    rows.done
}

/// The rows [`wrap`] is filling.
struct Rows {
    /// Rows finished.
    done: Vec<String>,
    /// The row being filled.
    row: String,
    /// Columns it takes so far.
    used: usize,
    /// Where its text starts: 0 for the first row, the indent after.
    start: usize,
    /// Columns a row may take.
    columns: usize,
    /// Spaces before the text of every row after the first.
    indent: usize,
}

impl Rows {
    /// Adds a character `w` columns wide, starting a new row first if it
    /// does not fit (unless the row has no text yet: it goes there anyway).
    fn push(&mut self, c: char, w: usize) {
        if w > 0 && self.used + w > self.columns && self.used > self.start {
            self.done.push(std::mem::take(&mut self.row));
            self.row.push_str(&" ".repeat(self.indent));
            self.used = self.indent;
            self.start = self.indent;
        }
        self.row.push(c);
        self.used += w;
    }
}

/// Whether `c`, following `previous`, must not reach the terminal as it is.
fn needs_escape(previous: Option<char>, c: char) -> bool {
    match c {
        '\t' => false,
        // C0, DEL and C1: exactly what `char::is_control` covers (Cc).
        c if c.is_control() => true,
        // Bidirectional embeddings, overrides and isolates are
        // default-ignorable; the Unicode line and paragraph separators are
        // not, but break a line like a newline.
        '\u{2028}' | '\u{2029}' => true,
        c if is_default_ignorable(c) => {
            !(is_joiner_or_selector(c) && previous.is_some_and(is_visible_non_ascii))
        }
        _ => false,
    }
}

/// The zero-width joiner and non-joiner and the variation selectors: the
/// invisible characters that shape the character before them.
fn is_joiner_or_selector(c: char) -> bool {
    matches!(c, '\u{200c}' | '\u{200d}' | '\u{fe00}'..='\u{fe0f}' | '\u{e0100}'..='\u{e01ef}')
}

/// A character that is drawn and is not ASCII: what a joiner or selector
/// may follow.
fn is_visible_non_ascii(c: char) -> bool {
    !c.is_ascii() && !c.is_control() && !c.is_whitespace() && !is_default_ignorable(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let line = protocol::public_line("alice", "héllo wörld 👋 @bob");
        let text = line.text().unwrap_or_default();
        assert!(matches!(sanitize(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn tab_is_kept() {
        assert_eq!(sanitize("a\tb"), "a\tb");
    }

    #[test]
    fn escape_sequences_become_visible() {
        assert_eq!(sanitize("\x1b[2J\x1b[H"), "\\x1b[2J\\x1b[H");
        // Window title (OSC 0 … BEL).
        assert_eq!(sanitize("\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
    }

    #[test]
    fn overwriting_characters_become_visible() {
        assert_eq!(sanitize("fine\rEVIL"), "fine\\x0dEVIL");
        assert_eq!(sanitize("ab\x08\x08"), "ab\\x08\\x08");
        assert_eq!(sanitize("x\x7f"), "x\\x7f");
    }

    #[test]
    fn newline_cannot_fake_a_second_line() {
        let fake = protocol::left("bob");
        let fake = fake.text().unwrap_or_default();
        assert_eq!(sanitize(&format!("hi\n{fake}")), format!("hi\\x0a{fake}"));
    }

    #[test]
    fn every_c0_but_tab_and_del_are_escaped() {
        for byte in (0u8..0x20).chain([0x7f]) {
            let c = char::from(byte);
            let shown = sanitize(&c.to_string()).into_owned();
            if c == '\t' {
                assert_eq!(shown, "\t");
            } else {
                assert_eq!(shown, format!("\\x{byte:02x}"));
            }
        }
    }

    #[test]
    fn c1_controls_are_escaped() {
        // CSI (U+009B) is an escape sequence introducer on its own in some
        // terminals.
        assert_eq!(sanitize("\u{9b}31m"), "\\u{9b}31m");
        for code in 0x80u32..=0x9f {
            let c = char::from_u32(code).unwrap();
            assert_eq!(sanitize(&c.to_string()), format!("\\u{{{code:x}}}"));
        }
    }

    #[test]
    fn bidi_overrides_and_separators_are_escaped() {
        assert_eq!(sanitize("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(sanitize("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(sanitize("a\u{2028}b"), "a\\u{2028}b");
    }

    #[test]
    fn output_never_contains_a_control_or_lone_invisible_character() {
        let all: String = (0u32..0x11_0000)
            .filter_map(char::from_u32)
            .filter(|c| !c.is_ascii_alphanumeric())
            .collect();
        let shown = sanitize(&all);
        let mut previous = None;
        for c in shown.chars() {
            assert!(
                !needs_escape(previous, c),
                "{c:?} survived after {previous:?}"
            );
            previous = Some(c);
        }
    }

    #[test]
    fn backslash_is_escaped_so_typed_escapes_are_distinguishable() {
        assert_eq!(sanitize("a\\b"), "a\\\\b");
        // Typing the four characters \x1b is not sending ESC.
        assert_eq!(sanitize("\\x1b"), "\\\\x1b");
        assert_eq!(sanitize("\x1b"), "\\x1b");
        assert_ne!(sanitize("\\x1b"), sanitize("\x1b"));
    }

    /// Undoes [`sanitize`]: the proof that it loses nothing.
    fn unescape(shown: &str) -> String {
        let mut out = String::new();
        let mut rest = shown;
        while let Some(at) = rest.find('\\') {
            out.push_str(&rest[..at]);
            let escape = &rest[at + 1..];
            let (code, len) = if let Some(hex) = escape.strip_prefix('x') {
                (u32::from_str_radix(&hex[..2], 16).unwrap(), 3)
            } else if let Some(braced) = escape.strip_prefix("u{") {
                let end = braced.find('}').unwrap();
                (u32::from_str_radix(&braced[..end], 16).unwrap(), end + 3)
            } else {
                assert!(escape.starts_with('\\'), "stray backslash in {shown:?}");
                ('\\' as u32, 1)
            };
            out.push(char::from_u32(code).unwrap());
            rest = &escape[len..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn escaping_is_reversible() {
        for text in [
            "plain",
            "\\",
            "\\\\x41\x1b[31m\\u{9b}\u{9b}",
            "a\u{200b}b\u{feff}\u{2066}",
            "C:\\dir\\x00\0",
            "👨\u{200d}👩 x\u{200d}",
        ] {
            assert_eq!(unescape(&sanitize(text)), text, "{text:?}");
        }
    }

    #[test]
    fn zero_width_and_other_invisible_characters_are_escaped() {
        assert_eq!(sanitize("al\u{200b}ice"), "al\\u{200b}ice");
        assert_eq!(sanitize("\u{feff}hi"), "\\u{feff}hi");
        assert_eq!(sanitize("soft\u{ad}hyphen"), "soft\\u{ad}hyphen");
        assert_eq!(sanitize("\u{3164}"), "\\u{3164}");
        assert_eq!(sanitize("tag\u{e0041}"), "tag\\u{e0041}");
        assert_eq!(sanitize("word\u{2060}joiner"), "word\\u{2060}joiner");
    }

    #[test]
    fn joiners_and_selectors_that_shape_a_character_are_kept() {
        for text in ["👨\u{200d}👩\u{200d}👧", "❤\u{fe0f}", "می\u{200c}خواهم"] {
            assert!(matches!(sanitize(text), Cow::Borrowed(_)), "{text:?}");
        }
        // Where they shape nothing they are only hiding.
        assert_eq!(sanitize("\u{200d}x"), "\\u{200d}x");
        assert_eq!(sanitize("ab\u{200d}c"), "ab\\u{200d}c");
        assert_eq!(sanitize("é\u{200b}"), "é\\u{200b}");
        assert_eq!(
            sanitize("❤\u{200b}\u{fe0f}"),
            "❤\\u{200b}\\u{fe0f}",
            "a selector after an invisible character"
        );
    }

    #[test]
    fn names_are_aligned_by_the_columns_they_take() {
        for sender in [
            "alice",
            "名前",
            "🦀",
            "a\u{301}\u{302}\u{303}",
            "ten_chars_",
            "名前名前名",
        ] {
            let shown = room_line(
                protocol::public_line(sender, "hi")
                    .text()
                    .unwrap_or_default(),
            );
            let (prefix, text) = shown.split_once(": ").expect("a chat line");
            assert_eq!(text, "hi");
            assert_eq!(width(prefix), 2 + SENDER_COLUMNS, "{shown:?}");
            assert!(prefix.ends_with(sender), "{shown:?}");
        }
        // ASCII names are shown exactly as the server sent them.
        let line = protocol::private_line("bob", "@alice psst");
        assert_eq!(
            room_line(line.text().unwrap_or_default()),
            "%        bob: @alice psst"
        );
        // A name wider than the field pushes its text right, whole.
        let wide = "名前名前名前";
        let shown = room_line(protocol::public_line(wide, "hi").text().unwrap_or_default());
        assert_eq!(shown, format!("> {wide}: hi"));
    }

    #[test]
    fn room_lines_are_sanitised_whole_and_in_parts() {
        assert_eq!(room_line("> \u{1b}[2J"), "> \\x1b[2J");
        let line = protocol::public_line("evil", "\x1b]0;x\x07");
        assert_eq!(
            room_line(line.text().unwrap_or_default()),
            r">       evil: \x1b]0;x\x07"
        );
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    #[test]
    fn the_roster_in_words_leaves_out_the_viewer() {
        let room = names(&["alice", "bob", "carol"]);
        assert_eq!(
            roster_line(&room, 3, Viewer::Participant("carol")),
            "In the room: alice, bob and 3 observers"
        );
        assert_eq!(
            roster_line(&room, 1, Viewer::Participant("alice")),
            "In the room: bob, carol and 1 observer"
        );
        assert_eq!(
            roster_line(&room, 2, Viewer::Observer),
            "In the room: alice, bob, carol and 1 observer"
        );
        assert_eq!(
            roster_line(&names(&["alice"]), 1, Viewer::Observer),
            "In the room: alice"
        );
        assert_eq!(
            roster_line(&names(&["alice"]), 0, Viewer::Participant("alice")),
            "Nobody else is in the room"
        );
        assert_eq!(
            roster_line(&[], 1, Viewer::Observer),
            "Nobody else is in the room"
        );
        assert_eq!(
            roster_line(&[], 4, Viewer::Observer),
            "In the room: 3 observers"
        );
        assert_eq!(
            roster_line(&names(&["al\u{202e}ice"]), 1, Viewer::Observer),
            "In the room: al\\u{202e}ice"
        );
    }

    /// Rows as they sit on the screen: what [`wrap`] made, each checked to
    /// fit.
    fn rows(line: &str, columns: usize, indent: usize) -> Vec<String> {
        let rows = wrap(line, columns, indent);
        for row in &rows {
            assert!(width(row) <= columns.max(2), "{row:?} wider than {columns}");
        }
        rows
    }

    #[test]
    fn wrapped_rows_after_the_first_are_indented() {
        assert_eq!(rows("short", 80, 14), ["short"]);
        assert_eq!(
            rows("0123456789abcdefghij", 10, 2),
            ["0123456789", "  abcdefgh", "  ij"]
        );
        // Too narrow for the indent asked for: two columns.
        assert_eq!(rows("0123456789abc", 10, 14), ["0123456789", "  abc"]);
        // A wide character that does not fit starts the next row.
        assert_eq!(rows("abcdefghi名", 10, 2), ["abcdefghi", "  名"]);
        // A combining mark stays with its letter.
        assert_eq!(
            rows("abcdefghij\u{301}k", 10, 2),
            ["abcdefghij\u{301}", "  k"]
        );
        // Tabs become the spaces a terminal would show.
        assert_eq!(rows("a\tb", 80, 2), ["a       b"]);
    }

    #[test]
    fn a_line_padded_to_the_width_leaves_no_row_that_starts_like_a_room_line() {
        let fake = protocol::public_line("alice", "transfer the money");
        let fake = fake.text().unwrap_or_default();
        for columns in [40, 80, 100, 133] {
            // What bob types: enough to fill the row his own prefix starts.
            let padding = "x".repeat(columns - protocol::CHAT_PREFIX_CHARS);
            let line = protocol::public_line("bob", &format!("{padding}{fake}"));
            let shown = room_line(line.text().unwrap_or_default());
            let rows = rows(&shown, columns, protocol::CHAT_PREFIX_CHARS);
            assert!(rows.len() >= 2, "{rows:?}");
            for row in &rows[1..] {
                assert!(row.starts_with(' '), "{row:?} starts at column 0");
            }
            // Nothing is lost: the rows without their indents are the line.
            let text: String = rows[1..]
                .iter()
                .map(|r| &r[protocol::CHAT_PREFIX_CHARS.min(columns / 2)..])
                .collect();
            assert_eq!(format!("{}{text}", rows[0]), shown);
        }
    }
}
