//! The username rule: what a valid name is and the one form names are
//! compared and shown in.
//!
//! A name is taken in Unicode Normalization Form C (so "é" typed as one code
//! point and as "e" + combining acute are the same name), then must be 1 to
//! [`MAX_USERNAME_CHARS`] Unicode scalar values with no whitespace, no
//! control characters (C0, DEL, C1) and no invisible format characters
//! (general category Cf: bidirectional overrides and isolates, zero-width
//! joiners, soft hyphen, BOM, tag characters), and must not begin with a
//! combining mark. Those rules keep one user from looking like another or
//! reordering the text around their name in other users' terminals.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Most characters (Unicode scalar values, after NFC) a username may have,
/// from the spec.
pub const MAX_USERNAME_CHARS: usize = 10;

/// Why a username was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// No characters at all.
    #[error("username is empty")]
    Empty,
    /// More than [`MAX_USERNAME_CHARS`] characters.
    #[error("username is longer than {MAX_USERNAME_CHARS} characters")]
    TooLong,
    /// Contains a space, tab or other whitespace.
    #[error("username contains whitespace")]
    Whitespace,
    /// Contains a control or invisible format character.
    #[error("username contains a control or format character")]
    Invisible,
    /// Starts with a combining mark, which would attach to the text before it.
    #[error("username starts with a combining mark")]
    LeadingMark,
}

/// Checks a requested name and returns its canonical (NFC) form, the form in
/// which it is compared, stored and shown.
pub fn canonical_username(requested: &str) -> Result<String, UsernameError> {
    // Bound the work before normalizing: NFC never more than triples the
    // length, so a name this long in bytes cannot become short enough.
    if requested.len() > MAX_USERNAME_CHARS * 4 * 3 {
        return Err(UsernameError::TooLong);
    }
    let name: String = requested.nfc().collect();
    let mut chars = 0;
    for c in name.chars() {
        chars += 1;
        if c.is_whitespace() {
            return Err(UsernameError::Whitespace);
        }
        if c.is_control() || is_format_char(c) {
            return Err(UsernameError::Invisible);
        }
    }
    match name.chars().next() {
        None => Err(UsernameError::Empty),
        Some(_) if chars > MAX_USERNAME_CHARS => Err(UsernameError::TooLong),
        Some(first) if is_combining_mark(first) => Err(UsernameError::LeadingMark),
        Some(_) => Ok(name),
    }
}

/// The canonical form of a name typed after `@`, for looking it up; `None`
/// if no valid username could be spelled that way.
pub fn lookup_form(typed: &str) -> Option<String> {
    canonical_username(typed).ok()
}

/// Unicode general category Cf (format characters), Unicode 15.1.
fn is_format_char(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_accepted_as_they_are() {
        for name in ["a", "alice", "Bob_42", "ten_chars_", "Ωμέγα", "名前"] {
            assert_eq!(canonical_username(name).as_deref(), Ok(name));
        }
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(
            canonical_username("éééééééééé").map(|n| n.chars().count()),
            Ok(10)
        );
        assert_eq!(
            canonical_username("ééééééééééé"),
            Err(UsernameError::TooLong)
        );
        assert_eq!(
            canonical_username("elevenchars"),
            Err(UsernameError::TooLong)
        );
        assert_eq!(
            canonical_username(&"x".repeat(10_000)),
            Err(UsernameError::TooLong)
        );
    }

    #[test]
    fn empty_whitespace_and_control_are_refused() {
        assert_eq!(canonical_username(""), Err(UsernameError::Empty));
        assert_eq!(canonical_username("a b"), Err(UsernameError::Whitespace));
        assert_eq!(canonical_username("a\tb"), Err(UsernameError::Whitespace));
        assert_eq!(
            canonical_username("a\u{3000}b"),
            Err(UsernameError::Whitespace)
        );
        assert_eq!(canonical_username("a\0b"), Err(UsernameError::Invisible));
        assert_eq!(
            canonical_username("\u{1b}[2J"),
            Err(UsernameError::Invisible)
        );
        assert_eq!(
            canonical_username("a\u{85}"),
            Err(UsernameError::Whitespace)
        );
        assert_eq!(canonical_username("a\u{9b}"), Err(UsernameError::Invisible));
    }

    #[test]
    fn bidi_overrides_and_zero_width_characters_are_refused() {
        for name in [
            "\u{202e}evil",
            "a\u{200b}b",
            "a\u{200d}b",
            "\u{2066}x",
            "\u{feff}x",
        ] {
            assert_eq!(
                canonical_username(name),
                Err(UsernameError::Invisible),
                "{name:?}"
            );
        }
    }

    #[test]
    fn names_of_combining_marks_are_refused() {
        assert_eq!(
            canonical_username(&"\u{301}".repeat(10)),
            Err(UsernameError::LeadingMark)
        );
    }

    #[test]
    fn names_differing_only_by_normalization_are_the_same() {
        let composed = canonical_username("jos\u{e9}").unwrap();
        let decomposed = canonical_username("jose\u{301}").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(lookup_form("jose\u{301}").as_deref(), Some("jos\u{e9}"));
    }
}
