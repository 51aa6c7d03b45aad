//! The model's username rule, written from docs/PROTOCOL.md §7 and sharing
//! no code with `logosnet::username`: which requests are names, the form a
//! name is shown in, when two names clash and which kind of clash it is.
//!
//! The rule is [`judge`] (is it a name, and if not, which clause refuses
//! it first) and [`clash`] (do two names clash, as the same name up to case
//! or only by look); [`is_reserved`] is a clash with `Anonymous`. It leans
//! only on Unicode data crates: NFC and General_Category=Mark from
//! `unicode-normalization`, the UTS #39 skeleton from `unicode-security`
//! (the protocol's stated implementation of "looks alike"; both at the
//! version §7 names), the control and format categories from
//! `unicode-general-category`'s table rather than the library's
//! hand-written one, and default case folding from ICU4X's
//! `icu_casemap` rather than the `caseless` crate the library folds with:
//! two implementations of `CaseFolding.txt`, held at the same Unicode
//! version (16.0, the one §7 names), check each other.
//! Default_Ignorable_Code_Point is taken as "the skeleton drops it", which
//! UTS #39 defines it to be.

use std::sync::OnceLock;

use icu_casemap::CaseMapper;
use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_security::skeleton;

/// The longest request judged at all, in bytes (§7 clause 3: refused
/// before it is normalized).
const MAX_REQUEST_BYTES: usize = 120;

/// The most characters a name has after NFC (§7 clause 3).
const MAX_NAME_CHARS: usize = 10;

/// The name shown for a participant who leaves before naming (§7 clause
/// 10).
pub(crate) const ANONYMOUS: &str = "Anonymous";

/// Visible-category characters whose glyph is empty (§7 clause 6).
const BLANK_GLYPHS: [char; 3] = ['\u{2800}', '\u{16FE4}', '\u{1D159}'];

/// What a name may not start with: a private line's `@` (§7 clause 8).
const ADDRESS: char = '@';
/// Nor the marks a chat line starts with.
const LINE_MARKS: [char; 2] = ['>', '%'];
/// Nor contain what ends the sender's name in a chat line.
const NAME_END: char = ':';

/// A valid name: as shown, and what it is compared by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    /// NFC, otherwise as typed.
    pub(crate) display: String,
    /// Case-folded, then NFC: the same name up to case has the same.
    folded: String,
    /// The comparison keys, the first to be tried first (§7 clause 9):
    /// the skeleton of the folded name, then the skeleton of the folded
    /// skeleton.
    pub(crate) keys: [String; 2],
}

/// Why a request is not a name: the clause it breaks, and the character
/// at fault where there is one (as it stands after NFC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No characters.
    Empty,
    /// Over 120 bytes as sent, or over 10 characters after NFC.
    TooLong,
    /// Whitespace of any kind.
    Whitespace(char),
    /// A control, format, default-ignorable or blank character.
    Invisible(char),
    /// It starts with a combining mark.
    LeadingMark,
    /// It starts with `@` or a look-alike.
    LeadingAt(char),
    /// It starts with `>` or `%` or a look-alike.
    LeadingLineMark(char),
    /// It contains `:` or a look-alike.
    Colon(char),
}

/// How two valid names clash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clash {
    /// Equal after case folding and NFC: the same name.
    Same,
    /// Different names that share a comparison key.
    LookAlike,
}

/// The rule: is `requested` a name, and which? When it breaks several
/// clauses, the refusal is the first of them in the order §7 states for
/// such a request: the request's bytes, then its characters from the
/// first (whitespace or invisible, whichever comes first), emptiness, the
/// character count, a leading mark, a leading `@`, a leading `>` or `%`,
/// then the first colon.
pub(crate) fn judge(requested: &str) -> Result<Name, Refusal> {
    if requested.len() > MAX_REQUEST_BYTES {
        return Err(Refusal::TooLong);
    }
    let display: String = requested.nfc().collect();
    let chars: Vec<char> = display.chars().collect();
    let unseen = chars.iter().find_map(|&c| {
        if c.is_whitespace() {
            Some(Refusal::Whitespace(c))
        } else if shows_as_nothing(c) {
            Some(Refusal::Invisible(c))
        } else {
            None
        }
    });
    if let Some(refusal) = unseen {
        return Err(refusal);
    }
    let Some(&first) = chars.first() else {
        return Err(Refusal::Empty);
    };
    if chars.len() > MAX_NAME_CHARS {
        return Err(Refusal::TooLong);
    }
    if is_combining_mark(first) {
        return Err(Refusal::LeadingMark);
    }
    if passes_for(first, &[ADDRESS]) {
        return Err(Refusal::LeadingAt(first));
    }
    if passes_for(first, &LINE_MARKS) {
        return Err(Refusal::LeadingLineMark(first));
    }
    if let Some(&colon) = chars.iter().find(|&&c| passes_for(c, &[NAME_END])) {
        return Err(Refusal::Colon(colon));
    }
    let folded: String = fold(&display).nfc().collect();
    let by_look: String = skeleton(&display).collect();
    let keys = [
        skeleton(&folded).collect(),
        skeleton(&fold(&by_look)).collect(),
    ];
    Ok(Name {
        display,
        folded,
        keys,
    })
}

/// Whether (and how) `requested` clashes with `held`: any key of one is a
/// key of the other; the same name when they fold alike.
pub(crate) fn clash(requested: &Name, held: &Name) -> Option<Clash> {
    if requested.folded == held.folded {
        return Some(Clash::Same);
    }
    let shared = requested.keys.iter().any(|key| held.keys.contains(key));
    shared.then_some(Clash::LookAlike)
}

/// Whether the name clashes, either way, with `Anonymous` (§7 clause 10).
pub(crate) fn is_reserved(name: &Name) -> bool {
    static RESERVED: OnceLock<Name> = OnceLock::new();
    let reserved = RESERVED.get_or_init(|| judge(ANONYMOUS).expect("Anonymous is a valid name"));
    clash(name, reserved).is_some()
}

/// Unicode default case folding, full mappings (`CaseFolding.txt`
/// statuses C and F).
fn fold(text: &str) -> String {
    CaseMapper::new().fold_string(text).into_owned()
}

/// Whether `c` is one of `marks` or draws as one: its skeleton is a
/// mark's (§7 clause 8).
fn passes_for(c: char, marks: &[char]) -> bool {
    let shape = |c: char| skeleton(&c.to_string()).collect::<String>();
    marks
        .iter()
        .any(|&mark| c == mark || shape(c) == shape(mark))
}

/// Control (Cc), format (Cf), default-ignorable or blank (§7 clauses 5
/// and 6).
fn shows_as_nothing(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Control | GeneralCategory::Format
    ) || skeleton(&c.to_string()).next().is_none()
        || BLANK_GLYPHS.contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        judge(text).unwrap_or_else(|why| panic!("{text:?} should be valid: {why:?}"))
    }

    fn clash_of(a: &str, b: &str) -> Option<Clash> {
        clash(&name(a), &name(b))
    }

    /// The examples of §7 clause 9, one by one, both ways round.
    #[test]
    fn names_clash_as_the_protocol_document_says() {
        assert_eq!(name("jose\u{301}").display, "jos\u{e9}");
        for (a, b) in [
            ("jos\u{e9}", "jose\u{301}"),
            ("Alice", "alice"),
            ("ALICE", "alice"),
            (
                "\u{3a3}\u{3bf}\u{3c6}\u{3af}\u{3b1}",
                "\u{3c3}\u{3bf}\u{3c6}\u{3af}\u{3b1}",
            ),
            ("stra\u{df}e", "STRASSE"),
        ] {
            assert_eq!(clash_of(a, b), Some(Clash::Same), "{a:?} {b:?}");
            assert_eq!(clash_of(b, a), Some(Clash::Same), "{b:?} {a:?}");
        }
        for (a, b) in [
            ("\u{430}lice", "alice"),
            ("\u{430}li\u{441}\u{435}", "alice"),
            ("\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}", "alice"),
            ("\u{1d41b}\u{1d428}\u{1d41b}", "bob"),
            ("a1ice", "alice"),
            ("al1ce", "alIce"),
            ("b0b", "bob"),
            ("rnodern", "modern"),
            ("Ian", "lan"),
            ("\u{392}\u{39f}\u{392}", "bob"),
        ] {
            assert_eq!(clash_of(a, b), Some(Clash::LookAlike), "{a:?} {b:?}");
            assert_eq!(clash_of(b, a), Some(Clash::LookAlike), "{b:?} {a:?}");
        }
        for (a, b) in [
            ("ian", "lan"),
            ("vv", "w"),
            ("cl", "d"),
            ("al\u{ed}ce", "alice"),
        ] {
            assert_eq!(clash_of(a, b), None, "{a:?} {b:?}");
        }
        // `Ian` is `ian` by its first key and `lan` by its second: the
        // order a typed name is looked up in.
        assert_eq!(name("Ian").keys[0], name("ian").keys[0]);
        assert_eq!(name("Ian").keys[1], name("lan").keys[0]);
    }

    /// Clause 10's list, and a near miss.
    #[test]
    fn anonymous_is_reserved_in_any_case_and_look_alike() {
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
            assert!(is_reserved(&name(reserved)), "{reserved:?}");
        }
        assert!(!is_reserved(&name("Anonymou")));
    }

    /// Clauses 3–8, each with the character it names.
    #[test]
    fn each_clause_refuses_with_its_character() {
        for (requested, refusal) in [
            ("", Refusal::Empty),
            ("elevenchars", Refusal::TooLong),
            (&"x".repeat(121), Refusal::TooLong),
            ("a b", Refusal::Whitespace(' ')),
            ("a\u{3000}b", Refusal::Whitespace('\u{3000}')),
            ("a\0b", Refusal::Invisible('\0')),
            ("\u{1b}[2J", Refusal::Invisible('\u{1b}')),
            ("a\u{9b}", Refusal::Invisible('\u{9b}')),
            ("\u{202e}evil", Refusal::Invisible('\u{202e}')),
            ("alice\u{fe0f}", Refusal::Invisible('\u{fe0f}')),
            ("\u{3164}", Refusal::Invisible('\u{3164}')),
            ("\u{2800}", Refusal::Invisible('\u{2800}')),
            ("a\u{115f}", Refusal::Invisible('\u{115f}')),
            (&"\u{301}".repeat(10), Refusal::LeadingMark),
            ("@bob", Refusal::LeadingAt('@')),
            ("\u{ff20}bob", Refusal::LeadingAt('\u{ff20}')),
            (">bob:", Refusal::LeadingLineMark('>')),
            ("\u{ff1e}bob", Refusal::LeadingLineMark('\u{ff1e}')),
            ("%x", Refusal::LeadingLineMark('%')),
            ("a:b", Refusal::Colon(':')),
            ("a\u{2236}b", Refusal::Colon('\u{2236}')),
            ("a\u{2d0}b", Refusal::Colon('\u{2d0}')),
            ("a\u{903}b", Refusal::Colon('\u{903}')),
            ("\u{ff1a}", Refusal::Colon('\u{ff1a}')),
        ] {
            assert_eq!(judge(requested), Err(refusal), "{requested:?}");
        }
        for valid in [
            "a@b",
            "bob>",
            "50%",
            "a\u{301}\u{302}\u{303}",
            "名前",
            "ten_chars_",
        ] {
            name(valid);
        }
        assert_eq!(name("a\u{301}\u{302}\u{303}").display.chars().count(), 3);
    }

    /// Where a request breaks several clauses, the first in §7's order.
    #[test]
    fn the_first_clause_broken_is_the_one_named() {
        for (requested, refusal) in [
            ("elevenchars ", Refusal::Whitespace(' ')),
            ("a\0 b", Refusal::Invisible('\0')),
            ("a \0b", Refusal::Whitespace(' ')),
            ("\u{301}@:", Refusal::LeadingMark),
            ("@>:", Refusal::LeadingAt('@')),
            ("%a:", Refusal::LeadingLineMark('%')),
            ("@elevenchar", Refusal::TooLong),
        ] {
            assert_eq!(judge(requested), Err(refusal), "{requested:?}");
        }
    }

    /// The folding is Unicode 16.0's, the version §7 names: a letter
    /// given a case pair only in 17.0 (Beria Erfe, U+16EA0) folds to
    /// itself, while one paired long before does not.
    #[test]
    fn case_folding_is_the_unicode_version_the_protocol_names() {
        assert_eq!(fold("\u{16ea0}"), "\u{16ea0}");
        assert_eq!(fold("\u{10400}"), "\u{10428}");
        assert_eq!(fold("\u{1e9e}"), "ss");
    }
}
