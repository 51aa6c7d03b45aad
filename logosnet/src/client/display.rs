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
//! This module owns that mapping and nothing else: it does no I/O.

use std::borrow::Cow;
use std::fmt::Write as _;

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
}
