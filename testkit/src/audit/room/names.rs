//! The model's username rule, written from docs/PROTOCOL.md §7 and sharing
//! no code with `logosnet::username`: which requests are names, the form a
//! name is shown in, and when two names are the same.
//!
//! The rule is [`judge`], one function, so that a change of rule (case
//! folding, a reason carried in the refusal) is a change here. It leans
//! only on Unicode data crates: NFC and General_Category=Mark from
//! `unicode-normalization`, the UTS #39 skeleton from `unicode-security`
//! (the protocol's stated implementation of "looks alike"; both at Unicode
//! 18.0, the version §7 names), and the control and format categories from
//! `unicode-general-category`'s table rather than the library's
//! hand-written one. Default_Ignorable_Code_Point is taken as "the skeleton
//! drops it", which UTS #39 defines it to be.

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_security::skeleton;

/// The longest request judged at all, in bytes (§7 clause 3: refused
/// before it is normalized).
const MAX_REQUEST_BYTES: usize = 120;

/// The most characters a name has after NFC (§7 clause 3).
const MAX_NAME_CHARS: usize = 10;

/// The name shown for a participant who leaves before naming (§7 clause 9).
pub(crate) const ANONYMOUS: &str = "Anonymous";

/// Visible-category characters whose glyph is empty (§7 clause 6).
const BLANK_GLYPHS: [char; 3] = ['\u{2800}', '\u{16FE4}', '\u{1D159}'];

/// A valid name: as shown, and what it is compared by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    /// NFC, otherwise as typed.
    pub(crate) display: String,
    /// Two names are the same name when these are equal.
    pub(crate) key: String,
}

/// Why a request is not a name (the wire says only `UsernameInvalid`; the
/// reason is kept for the day it says more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No characters.
    Empty,
    /// Over 120 bytes as sent, or over 10 characters after NFC.
    TooLong,
    /// Whitespace of any kind.
    Whitespace,
    /// A control, format, default-ignorable or blank character.
    Invisible,
    /// It starts with a combining mark.
    LeadingMark,
}

/// The rule: is `requested` a name, and which? See the module docs.
pub(crate) fn judge(requested: &str) -> Result<Name, Refusal> {
    if requested.len() > MAX_REQUEST_BYTES {
        return Err(Refusal::TooLong);
    }
    let display: String = requested.nfc().collect();
    let chars: Vec<char> = display.chars().collect();
    if chars.is_empty() {
        return Err(Refusal::Empty);
    }
    if chars.iter().any(|c| c.is_whitespace()) {
        return Err(Refusal::Whitespace);
    }
    if chars.iter().any(|&c| shows_as_nothing(c)) {
        return Err(Refusal::Invisible);
    }
    if chars.len() > MAX_NAME_CHARS {
        return Err(Refusal::TooLong);
    }
    if is_combining_mark(chars[0]) {
        return Err(Refusal::LeadingMark);
    }
    let key = skeleton(&display).collect();
    Ok(Name { display, key })
}

/// Whether the name is `Anonymous` in some case or look-alike: its key,
/// lower-cased and skeletonized again, is that of `anonymous` (§7 clause
/// 9).
pub(crate) fn is_reserved(name: &Name) -> bool {
    let fold = |key: &str| skeleton(&key.to_lowercase()).collect::<String>();
    fold(&name.key) == fold(&skeleton("anonymous").collect::<String>())
}

/// Control (Cc), format (Cf), default-ignorable or blank (§7 clauses 5
/// and 6).
fn shows_as_nothing(c: char) -> bool {
    let mut buf = [0; 4];
    matches!(
        get_general_category(c),
        GeneralCategory::Control | GeneralCategory::Format
    ) || skeleton(c.encode_utf8(&mut buf)).next().is_none()
        || BLANK_GLYPHS.contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples §7 gives, one by one.
    #[test]
    fn the_protocol_documents_examples_hold() {
        let key = |name: &str| judge(name).expect("valid").key;
        assert_eq!(key("jos\u{e9}"), key("jose\u{301}"));
        assert_eq!(judge("jose\u{301}").expect("valid").display, "jos\u{e9}");
        for look_alike in [
            "\u{430}lice",
            "\u{430}li\u{441}\u{435}",
            "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
        ] {
            assert_eq!(key(look_alike), key("alice"), "{look_alike:?}");
        }
        assert_eq!(key("\u{1d41b}\u{1d428}\u{1d41b}"), key("bob"));
        assert_eq!(key("al1ce"), key("alIce"));
        assert_eq!(key("modern"), key("rnodern"));
        assert_ne!(key("Alice"), key("alice"));
        assert_ne!(key("stra\u{df}e"), key("strasse"));
        assert_ne!(key("vv"), key("w"));
        for reserved in [
            "Anonymous",
            "anonymous",
            "ANONYMOUS",
            "aNoNyMoUs",
            "\u{410}n\u{43e}nym\u{43e}us",
            "\u{391}\u{39d}\u{39f}\u{39d}\u{3a5}\u{39c}\u{39f}US",
            "\u{ff21}\u{ff2e}\u{ff2f}\u{ff2e}\u{ff39}\u{ff2d}\u{ff2f}\u{ff35}\u{ff33}",
            "anonyrnous",
        ] {
            assert!(
                is_reserved(&judge(reserved).expect("valid")),
                "{reserved:?}"
            );
        }
        assert!(!is_reserved(&judge("Anonymou").expect("valid")));
        assert_eq!(judge(""), Err(Refusal::Empty));
        assert_eq!(judge("elevenchars"), Err(Refusal::TooLong));
        assert_eq!(judge(&"x".repeat(121)), Err(Refusal::TooLong));
        assert_eq!(judge("a\u{3000}b"), Err(Refusal::Whitespace));
        for invisible in [
            "a\0b",
            "\u{1b}[2J",
            "a\u{9b}",
            "\u{202e}evil",
            "alice\u{fe0f}",
            "\u{3164}",
            "\u{2800}",
            "a\u{115f}",
        ] {
            assert_eq!(judge(invisible), Err(Refusal::Invisible), "{invisible:?}");
        }
        assert_eq!(judge(&"\u{301}".repeat(10)), Err(Refusal::LeadingMark));
        assert_eq!(
            judge("a\u{301}\u{302}\u{303}").map(|n| n.display.chars().count()),
            Ok(3)
        );
    }
}
