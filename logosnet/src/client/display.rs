//! Making text from the network safe to print on a terminal.
//!
//! Everything another user or the server sends is shown through
//! [`sanitize`]. A terminal obeys control characters: ESC starts sequences
//! that move the cursor, clear the screen or retitle the window, BEL rings,
//! CR and backspace let a line overwrite itself, a newline lets one message
//! pose as two (a fake "User … has left"). So every C0 control but tab, DEL
//! and every C1 control is shown as a visible escape instead, and so are the
//! invisible characters that reorder or break displayed lines (bidirectional
//! embeddings, overrides and isolates; line and paragraph separators). This
//! module owns that mapping and nothing else: it does no I/O.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The text with every character a terminal would act on replaced by a
/// visible escape: C0 controls (except tab) and DEL as `\x1b`-style hex, C1
/// controls and the invisible layout characters as `\u{9b}`-style.
/// Everything else, including tab and all printable Unicode, is unchanged.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// Whether a character must not reach the terminal as it is.
fn needs_escape(c: char) -> bool {
    match c {
        '\t' => false,
        // C0, DEL and C1: exactly what `char::is_control` covers (Cc).
        c if c.is_control() => true,
        // Bidirectional embeddings/overrides, isolates and marks, and the
        // Unicode line/paragraph separators.
        '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => true,
        '\u{2028}' | '\u{2029}' => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = ">      alice: héllo wörld 👋 @bob";
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
        assert_eq!(
            sanitize("hi\nUser bob has left"),
            "hi\\x0aUser bob has left"
        );
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
    fn output_never_contains_a_control_character() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let shown = sanitize(&all);
        assert!(
            shown
                .chars()
                .all(|c| c == '\t' || !(c.is_control() || needs_escape(c))),
            "a control character survived"
        );
    }
}
