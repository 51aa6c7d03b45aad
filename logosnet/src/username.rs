//! The username rule: what a valid name is, the form it is shown in and the
//! key it is compared by.
//!
//! A name is taken in Unicode Normalization Form C (so "é" typed as one code
//! point and as "e" + combining acute are the same name), then must be 1 to
//! [`MAX_USERNAME_CHARS`] Unicode scalar values, must not begin with a
//! combining mark, and must contain no character that shows as nothing or
//! as blank space: no whitespace, no control characters (C0, DEL, C1), no
//! format characters (general category Cf: bidirectional overrides and
//! isolates, zero-width joiners, soft hyphen, BOM, tag characters), no
//! Default_Ignorable_Code_Point (variation selectors, Hangul fillers,
//! combining grapheme joiner, Mongolian free variation selectors, …) and no
//! visible-category character whose glyph is empty (U+2800 BRAILLE PATTERN
//! BLANK and the few like it in [`BLANK_GLYPHS`]). A name made only of such
//! characters is therefore refused too.
//!
//! A name must also not pass for part of a room line: it may not start
//! with `@` (a private message names its target after `@`, so such a name
//! could never be written to), nor with `>` or `%` (the marks that start
//! every chat line), nor contain `:` (which ends the sender's name in a
//! chat line). Look-alikes count: a character whose UTS #39 prototype is
//! one of these (full-width `＞`, `＠`, `：`, the ratio sign `∶`, the
//! Devanagari visarga `ः`, …) is refused in its place too.
//!
//! Valid names are compared case-insensitively and by look: each name has
//! two comparison keys ([`NameKey`]), and two names clash when any key of
//! one equals any key of the other. The first key is the UTS #39
//! confusable skeleton (computed by the `unicode-security` crate from the
//! Unicode confusables table) of the name after Unicode default case
//! folding (the `caseless` crate): `Alice`, `ALICE` and `alice` share it,
//! and so do Cyrillic `аlice` and full-width `ａｌｉｃｅ`. The second is the
//! skeleton of the case-folded skeleton: it keeps the look-alikes that only
//! exist across case, which folding first would lose (capital `I` looks like
//! `l`, so `Ian` clashes with `lan`; Greek capitals `ΒΟΒ` look like `BOB`,
//! so they clash with `bob`). No single key can do both: `Ian` is `ian` by
//! case and `lan` by look, yet `ian` and `lan` are different names. Within
//! a clash, the names are the *same name* when they are equal after case
//! folding ([`Clash::Same`]), and only *look alike* otherwise
//! ([`Clash::LookAlike`]): the room says "already in use" for the first and
//! "too similar to …" for the second. [`ANONYMOUS`], the name the room shows
//! for a participant who leaves before naming, is reserved in any case and
//! any look-alike.
//!
//! The work per attempt is bounded: a request over [`MAX_REQUESTED_BYTES`]
//! is refused before it is normalized, and the skeleton is computed only
//! for a name already known to be at most [`MAX_USERNAME_CHARS`] characters.
//! Nothing here runs per chat line.

use std::fmt;
use std::ops::Deref;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_security::skeleton;

use crate::protocol::{MAX_REQUESTED_BYTES, MAX_USERNAME_CHARS, PRIVATE_MARK, PUBLIC_MARK};

/// The name the room shows for a participant that leaves before choosing
/// one (`User Anonymous has left`). No one may take it, in any case or any
/// look-alike spelling, so that notice always means what it says.
pub const ANONYMOUS: &str = "Anonymous";

/// Characters outside whitespace, Cf and Default_Ignorable_Code_Point whose
/// glyph is empty, so that they render as blank space. U+2800 is the one
/// character that the UTS #39 confusables table (`confusables.txt`) maps to
/// a space; U+1D159 and U+16FE4 are drawn blank by design (a null notehead
/// and a filler, per their code charts). Hangul fillers are not listed: they
/// are Default_Ignorable_Code_Point.
pub const BLANK_GLYPHS: &[char] = &[
    '\u{2800}',  // BRAILLE PATTERN BLANK
    '\u{16FE4}', // KHITAN SMALL SCRIPT FILLER
    '\u{1D159}', // MUSICAL SYMBOL NULL NOTEHEAD
];

/// The character a chat line puts after the sender's name: no name may
/// contain it (or a look-alike), so no name can end early on screen.
pub const NAME_END: char = ':';

/// The character that starts a private line as typed
/// ([`crate::protocol::PRIVATE_PREFIX`]): a name starting with it could
/// never be addressed.
const ADDRESS_MARK: char = crate::protocol::PRIVATE_PREFIX;

/// Why a username was refused. Its `Display` is the reason as a person
/// reads it after "Invalid username: " (the refusal notice the room sends,
/// [`crate::protocol::text::invalid_username`]); where one character broke
/// the rule it is named, with its code point when it may not show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// No characters at all.
    #[error("it is empty")]
    Empty,
    /// More than [`MAX_USERNAME_CHARS`] characters.
    #[error("max {MAX_USERNAME_CHARS} characters")]
    TooLong,
    /// Contains a space, tab or other whitespace (the first one).
    #[error("no spaces or other whitespace{}", code_point_unless_space(*.0))]
    Whitespace(char),
    /// Contains a control, format, default-ignorable or blank character:
    /// one that shows as nothing or as empty space (the first one).
    #[error("no control or invisible characters (U+{:04X})", *.0 as u32)]
    Invisible(char),
    /// Starts with a combining mark, which would attach to the text before it.
    #[error("it cannot start with a combining mark")]
    LeadingMark,
    /// Starts with `@` or a look-alike: `@name text` could never reach it.
    #[error("it cannot start with {0} (a private message to it could not be written)")]
    StartsWithAt(char),
    /// Starts with `>` or `%` or a look-alike: the marks that start a line
    /// from the room.
    #[error("it cannot start with {0} (lines from the room start with > or %)")]
    LinePrefix(char),
    /// Contains `:` or a look-alike, which ends the sender's name in a line
    /// from the room.
    #[error("it cannot contain {0} (a line from the room puts : after the sender's name)")]
    Colon(char),
}

/// ` (U+3000)` for whitespace other than the plain space, which needs no
/// code point to be recognised.
fn code_point_unless_space(c: char) -> String {
    if c == ' ' {
        String::new()
    } else {
        format!(" (U+{:04X})", c as u32)
    }
}

/// One of the keys a name is compared by (see [`Username::keys`]): a UTS
/// #39 skeleton. Names clash when any key of one equals any key of the
/// other. Only [`Username::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NameKey(String);

/// How a requested name clashes with a name already in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clash {
    /// The same name, up to case (and normalization): `Alice` for `alice`.
    Same,
    /// A different name that looks like it: `a1ice` for `alice`.
    LookAlike,
}

/// A valid username: the form it is shown in (NFC, as typed otherwise) and
/// what it is compared by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    /// The name as shown: NFC, otherwise as typed.
    display: String,
    /// The name up to case: the display form case-folded, then NFC.
    folded: String,
    /// What it is compared by (see [`Username::keys`]).
    keys: [NameKey; 2],
}

impl Username {
    /// Checks a requested name against the rule (see the module docs) and
    /// computes its comparison keys.
    pub fn parse(requested: &str) -> Result<Self, UsernameError> {
        if requested.len() > MAX_REQUESTED_BYTES {
            return Err(UsernameError::TooLong);
        }
        let display: String = requested.nfc().collect();
        let mut chars = 0;
        for c in display.chars() {
            chars += 1;
            if c.is_whitespace() {
                return Err(UsernameError::Whitespace(c));
            }
            if is_invisible(c) {
                return Err(UsernameError::Invisible(c));
            }
        }
        let first = match display.chars().next() {
            None => return Err(UsernameError::Empty),
            Some(_) if chars > MAX_USERNAME_CHARS => return Err(UsernameError::TooLong),
            Some(first) if is_combining_mark(first) => return Err(UsernameError::LeadingMark),
            Some(first) => first,
        };
        if looks_like_one_of(first, &[ADDRESS_MARK]) {
            return Err(UsernameError::StartsWithAt(first));
        }
        if looks_like_one_of(first, &[PUBLIC_MARK, PRIVATE_MARK]) {
            return Err(UsernameError::LinePrefix(first));
        }
        if let Some(colon) = display.chars().find(|&c| looks_like_one_of(c, &[NAME_END])) {
            return Err(UsernameError::Colon(colon));
        }
        let folded: String = caseless::default_case_fold_str(&display).nfc().collect();
        let by_look: String = skeleton(&display).collect();
        let keys = [
            NameKey(skeleton(&folded).collect()),
            NameKey(skeleton(&caseless::default_case_fold_str(&by_look)).collect()),
        ];
        Ok(Self {
            display,
            folded,
            keys,
        })
    }

    /// The name as it is shown: NFC.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The keys it is compared by: the skeleton of the case-folded name
    /// (same name in another case, and look-alikes in lower case), then the
    /// skeleton of its case-folded skeleton (look-alikes across case:
    /// capital `I` and `l`, Greek and Latin capitals). The first is the one
    /// to try first when a typed name is looked up: a name that is the same
    /// up to case wins over one that only looks alike.
    pub fn keys(&self) -> &[NameKey; 2] {
        &self.keys
    }

    /// How `self`, requested, clashes with `other`, in use; `None` if they
    /// may both be in the room.
    pub fn clash(&self, other: &Username) -> Option<Clash> {
        if self.folded == other.folded {
            Some(Clash::Same)
        } else if self.keys.iter().any(|key| other.keys.contains(key)) {
            Some(Clash::LookAlike)
        } else {
            None
        }
    }

    /// Whether this is [`ANONYMOUS`] in some case or look-alike spelling.
    pub fn is_reserved(&self) -> bool {
        static RESERVED: LazyLock<Option<Username>> =
            LazyLock::new(|| Username::parse(ANONYMOUS).ok());
        RESERVED
            .as_ref()
            .is_some_and(|reserved| self.clash(reserved).is_some())
    }

    /// The display form, owned.
    pub fn into_string(self) -> String {
        self.display
    }
}

impl Deref for Username {
    type Target = str;

    fn deref(&self) -> &str {
        &self.display
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// Checks a requested name and returns its display (NFC) form. See
/// [`Username::parse`] for the keys it is compared by.
pub fn canonical_username(requested: &str) -> Result<String, UsernameError> {
    Username::parse(requested).map(Username::into_string)
}

/// What one character looks like: its UTS #39 skeleton (itself when the
/// confusables table does not map it; empty for a default-ignorable one).
/// The table maps even some ASCII: `%` becomes `°/₀`.
fn looks_like(c: char) -> String {
    let mut buf = [0; 4];
    skeleton(c.encode_utf8(&mut buf)).collect()
}

/// Whether `c` is one of `marks` or looks exactly like one.
fn looks_like_one_of(c: char, marks: &[char]) -> bool {
    marks.contains(&c) || {
        let shape = looks_like(c);
        marks.iter().any(|&mark| shape == looks_like(mark))
    }
}

/// Whether `c` shows as nothing or as blank space (whitespace aside).
fn is_invisible(c: char) -> bool {
    c.is_control() || is_format_char(c) || is_default_ignorable(c) || BLANK_GLYPHS.contains(&c)
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

/// The derived property Default_Ignorable_Code_Point, transcribed from
/// `DerivedCoreProperties.txt` of Unicode 18.0.0, the version the
/// `unicode-security` tables are generated from. These are the characters a renderer
/// draws as nothing when it has no glyph for them: variation selectors,
/// Hangul fillers, the combining grapheme joiner, zero-width and bidi
/// controls, tags. `unicode-security` keeps the same table privately (its
/// skeleton drops these characters); the test
/// `default_ignorable_table_matches_the_skeleton` checks the two agree on
/// every scalar value. The client's display uses it too, to show such
/// characters escaped.
pub(crate) fn is_default_ignorable(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(name: &str) -> Username {
        Username::parse(name).unwrap_or_else(|e| panic!("{name:?} should be valid: {e}"))
    }

    #[test]
    fn plain_names_are_accepted_as_they_are() {
        for name in ["a", "alice", "Bob_42", "ten_chars_", "Ωμέγα", "名前", "🦀"] {
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
        assert_eq!(
            canonical_username("a b"),
            Err(UsernameError::Whitespace(' '))
        );
        assert_eq!(
            canonical_username("a\tb"),
            Err(UsernameError::Whitespace('\t'))
        );
        assert_eq!(
            canonical_username("a\u{3000}b"),
            Err(UsernameError::Whitespace('\u{3000}'))
        );
        assert_eq!(
            canonical_username("a\0b"),
            Err(UsernameError::Invisible('\0'))
        );
        assert_eq!(
            canonical_username("\u{1b}[2J"),
            Err(UsernameError::Invisible('\u{1b}'))
        );
        assert_eq!(
            canonical_username("a\u{85}"),
            Err(UsernameError::Whitespace('\u{85}'))
        );
        assert_eq!(
            canonical_username("a\u{9b}"),
            Err(UsernameError::Invisible('\u{9b}'))
        );
    }

    #[test]
    fn bidi_overrides_and_zero_width_characters_are_refused() {
        for (name, c) in [
            ("\u{202e}evil", '\u{202e}'),
            ("a\u{200b}b", '\u{200b}'),
            ("a\u{200d}b", '\u{200d}'),
            ("\u{2066}x", '\u{2066}'),
            ("\u{feff}x", '\u{feff}'),
        ] {
            assert_eq!(
                canonical_username(name),
                Err(UsernameError::Invisible(c)),
                "{name:?}"
            );
        }
    }

    /// Every character that draws as nothing or as blank space, each with
    /// what it is.
    const INVISIBLE_OR_BLANK: &[(char, &str)] = &[
        ('\u{FE0F}', "variation selector-16"),
        ('\u{FE00}', "variation selector-1"),
        ('\u{E0100}', "variation selector-17"),
        ('\u{034F}', "combining grapheme joiner"),
        ('\u{180B}', "Mongolian free variation selector one"),
        ('\u{180F}', "Mongolian free variation selector four"),
        ('\u{3164}', "Hangul filler"),
        ('\u{115F}', "Hangul choseong filler"),
        ('\u{1160}', "Hangul jungseong filler"),
        ('\u{FFA0}', "halfwidth Hangul filler"),
        ('\u{200B}', "zero-width space"),
        ('\u{2060}', "word joiner"),
        ('\u{2065}', "unassigned default-ignorable"),
        ('\u{17B4}', "Khmer vowel inherent aq"),
        ('\u{E0001}', "language tag"),
        ('\u{E0041}', "tag latin capital A"),
        ('\u{E0FFF}', "last reserved default-ignorable"),
        ('\u{00AD}', "soft hyphen"),
        ('\u{2800}', "Braille pattern blank"),
        ('\u{16FE4}', "Khitan small script filler"),
        ('\u{1D159}', "musical symbol null notehead"),
    ];

    #[test]
    fn invisible_and_blank_characters_are_refused_anywhere_and_alone() {
        for &(c, what) in INVISIBLE_OR_BLANK {
            for name in [
                c.to_string(),
                format!("alice{c}"),
                format!("al{c}ice"),
                format!("{c}alice"),
                c.to_string().repeat(MAX_USERNAME_CHARS),
            ] {
                assert_eq!(
                    Username::parse(&name),
                    Err(UsernameError::Invisible(c)),
                    "{what} (U+{:04X}) in {name:?}",
                    c as u32
                );
            }
        }
    }

    #[test]
    fn default_ignorable_table_matches_the_skeleton() {
        // UTS #39 defines the skeleton to drop exactly the
        // Default_Ignorable_Code_Point characters, and no confusable
        // prototype is empty: so a character's skeleton is empty exactly
        // when it is default-ignorable. This checks our table against the
        // copy inside `unicode-security`, over every scalar value.
        let mut members = 0;
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let mut buf = [0; 4];
            let dropped = skeleton(c.encode_utf8(&mut buf)).next().is_none();
            assert_eq!(is_default_ignorable(c), dropped, "U+{:04X}", c as u32);
            members += usize::from(dropped);
        }
        // 4,174 code points in Unicode 18.0.0.
        assert_eq!(members, 4174);
    }

    #[test]
    fn every_character_the_confusables_table_draws_as_a_space_is_refused() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let mut buf = [0; 4];
            let skel: String = skeleton(c.encode_utf8(&mut buf)).collect();
            if !skel.is_empty() && skel.chars().all(char::is_whitespace) {
                assert!(
                    Username::parse(&format!("a{c}b")).is_err(),
                    "U+{:04X} looks like {skel:?}",
                    c as u32
                );
            }
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
        let composed = Username::parse("jos\u{e9}").unwrap();
        let decomposed = Username::parse("jose\u{301}").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(decomposed.as_str(), "jos\u{e9}");
        assert_eq!(composed.clash(&decomposed), Some(Clash::Same));
    }

    /// Pairs of valid names and how the second clashes with the first.
    const COMPARISONS: &[(&str, &str, Option<Clash>, &str)] = &[
        (
            "jos\u{e9}",
            "jose\u{301}",
            Some(Clash::Same),
            "NFC and NFD twins",
        ),
        (
            "\u{c5}sa",
            "A\u{30a}sa",
            Some(Clash::Same),
            "NFC and NFD twins",
        ),
        ("alice", "Alice", Some(Clash::Same), "case"),
        ("alice", "ALICE", Some(Clash::Same), "case"),
        ("bob", "Bob", Some(Clash::Same), "case"),
        (
            "\u{3a3}\u{3bf}\u{3c6}\u{3af}\u{3b1}",
            "\u{3c3}\u{3bf}\u{3c6}\u{3af}\u{3b1}",
            Some(Clash::Same),
            "Greek capital and small sigma",
        ),
        (
            "stra\u{df}e",
            "STRASSE",
            Some(Clash::Same),
            "sharp s folds to ss",
        ),
        (
            "stra\u{df}e",
            "strasse",
            Some(Clash::Same),
            "sharp s folds to ss",
        ),
        ("alice", "\u{430}lice", Some(Clash::LookAlike), "Cyrillic a"),
        (
            "alice",
            "\u{430}li\u{441}\u{435}",
            Some(Clash::LookAlike),
            "Cyrillic a, c, e",
        ),
        (
            "paypal",
            "\u{440}\u{430}\u{443}pal",
            Some(Clash::LookAlike),
            "Cyrillic r, a, u",
        ),
        (
            "ALICE",
            "\u{410}LICE",
            Some(Clash::LookAlike),
            "Cyrillic capital A",
        ),
        (
            "alice",
            "\u{410}LICE",
            Some(Clash::LookAlike),
            "Cyrillic capital A, other case",
        ),
        (
            "BOB",
            "\u{392}\u{39f}\u{392}",
            Some(Clash::LookAlike),
            "Greek capitals",
        ),
        (
            "bob",
            "\u{392}\u{39f}\u{392}",
            Some(Clash::LookAlike),
            "Greek capitals, other case",
        ),
        (
            "alice",
            "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
            Some(Clash::LookAlike),
            "full-width",
        ),
        (
            "Bob",
            "\u{ff22}\u{ff4f}\u{ff42}",
            Some(Clash::LookAlike),
            "full-width",
        ),
        (
            "bob",
            "\u{1d41b}\u{1d428}\u{1d41b}",
            Some(Clash::LookAlike),
            "mathematical bold",
        ),
        ("alice", "a1ice", Some(Clash::LookAlike), "digit one for l"),
        (
            "al1ce",
            "alIce",
            Some(Clash::LookAlike),
            "digit one and capital I",
        ),
        (
            "lan",
            "Ian",
            Some(Clash::LookAlike),
            "capital I and small l",
        ),
        (
            "b0b",
            "bOb",
            Some(Clash::LookAlike),
            "digit zero and capital O",
        ),
        (
            "b0b",
            "bob",
            Some(Clash::LookAlike),
            "digit zero and small o",
        ),
        ("modern", "rnodern", Some(Clash::LookAlike), "m and rn"),
        ("ian", "lan", None, "small i and small l"),
        ("alice", "alice2", None, "different names"),
        ("alice", "allce", None, "i and l"),
        ("alice", "al\u{ed}ce", None, "a visible accent"),
        ("w", "vv", None, "not in the confusables table"),
        ("d", "cl", None, "not in the confusables table"),
        ("\u{5409}", "\u{540d}", None, "distinct ideographs"),
    ];

    #[test]
    fn names_clash_by_case_and_by_look_and_say_which() {
        for &(a, b, clash, what) in COMPARISONS {
            assert_eq!(name(b).clash(&name(a)), clash, "{what}: {b:?} beside {a:?}");
            // The relation is symmetric.
            assert_eq!(name(a).clash(&name(b)), clash, "{what}: {a:?} beside {b:?}");
        }
    }

    #[test]
    fn look_alikes_keep_their_own_display_form() {
        let fullwidth = Username::parse("\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}").unwrap();
        assert_eq!(
            fullwidth.as_str(),
            "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}"
        );
        assert_eq!(fullwidth.to_string(), fullwidth.as_str());
        assert_eq!(name("\u{430}lice").keys()[0], name("alice").keys()[0]);
        assert!(Username::parse("al\u{200b}ice").is_err());
    }

    #[test]
    fn anonymous_is_reserved_in_any_case_and_any_look_alike() {
        for name in [
            ANONYMOUS,
            "anonymous",
            "ANONYMOUS",
            "aNoNyMoUs",
            "\u{410}nonymous",
            "\u{410}n\u{43e}nym\u{43e}us",
            "\u{430}n\u{43e}nym\u{43e}us",
            "\u{391}\u{39d}\u{39f}\u{39d}\u{3a5}\u{39c}\u{39f}US",
            "\u{ff21}\u{ff2e}\u{ff2f}\u{ff2e}\u{ff39}\u{ff2d}\u{ff2f}\u{ff35}\u{ff33}",
            "\u{ff41}\u{ff4e}\u{ff4f}\u{ff4e}\u{ff59}\u{ff4d}\u{ff4f}\u{ff55}\u{ff53}",
            "anonyrnous",
        ] {
            assert!(Username::parse(name).unwrap().is_reserved(), "{name:?}");
        }
        for name in ["Anonymou", "Anonymous1", "anon", "alice", "nonymous"] {
            assert!(!Username::parse(name).unwrap().is_reserved(), "{name:?}");
        }
    }

    #[test]
    fn the_key_of_the_longest_valid_name_stays_small() {
        // U+FDFA has the longest prototype in the confusables table (18
        // characters); ten of them are the worst a valid name can do.
        let worst = Username::parse(&"\u{fdfa}".repeat(MAX_USERNAME_CHARS)).unwrap();
        for key in worst.keys() {
            assert!(key.0.chars().count() <= 18 * MAX_USERNAME_CHARS);
        }
        // A longer request never reaches normalization or the skeleton.
        assert_eq!(
            Username::parse(&"\u{fdfa}".repeat(MAX_REQUESTED_BYTES)),
            Err(UsernameError::TooLong)
        );
    }

    #[test]
    fn names_that_pass_for_part_of_a_room_line_are_refused() {
        for (requested, refused) in [
            ("@bob", UsernameError::StartsWithAt('@')),
            ("\u{ff20}bob", UsernameError::StartsWithAt('\u{ff20}')),
            (">bob", UsernameError::LinePrefix('>')),
            (">bob:", UsernameError::LinePrefix('>')),
            ("%bob", UsernameError::LinePrefix('%')),
            ("\u{ff1e}bob", UsernameError::LinePrefix('\u{ff1e}')),
            ("\u{ff05}bob", UsernameError::LinePrefix('\u{ff05}')),
            ("bob:", UsernameError::Colon(':')),
            ("a:b", UsernameError::Colon(':')),
            ("bob\u{ff1a}", UsernameError::Colon('\u{ff1a}')),
            ("bob\u{2236}", UsernameError::Colon('\u{2236}')),
            ("bob\u{2d0}", UsernameError::Colon('\u{2d0}')),
            ("bob\u{903}", UsernameError::Colon('\u{903}')),
        ] {
            assert_eq!(Username::parse(requested), Err(refused), "{requested:?}");
        }
        // Only at the start do @, > and % refuse a name.
        for fine in ["a@b", "bob>", "50%", "b%b", "a>b"] {
            assert!(Username::parse(fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn every_look_alike_of_the_colon_is_refused_anywhere() {
        let mut colons = 0;
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            if looks_like_one_of(c, &[NAME_END]) && !c.is_control() {
                let requested = format!("a{c}b");
                if Username::parse(&requested).is_ok() {
                    panic!("U+{:04X} looks like a colon", c as u32);
                }
                colons += 1;
            }
        }
        // `:` itself and its look-alikes in Unicode 18's confusables table.
        assert!(colons > 10, "{colons}");
    }

    #[test]
    fn each_refusal_says_which_rule_and_character() {
        for (refused, says) in [
            (UsernameError::Empty, "it is empty"),
            (UsernameError::TooLong, "max 10 characters"),
            (
                UsernameError::Whitespace(' '),
                "no spaces or other whitespace",
            ),
            (
                UsernameError::Whitespace('\u{3000}'),
                "no spaces or other whitespace (U+3000)",
            ),
            (
                UsernameError::Invisible('\u{200b}'),
                "no control or invisible characters (U+200B)",
            ),
            (
                UsernameError::LeadingMark,
                "it cannot start with a combining mark",
            ),
            (
                UsernameError::StartsWithAt('@'),
                "it cannot start with @ (a private message to it could not be written)",
            ),
            (
                UsernameError::LinePrefix('>'),
                "it cannot start with > (lines from the room start with > or %)",
            ),
            (
                UsernameError::Colon(':'),
                "it cannot contain : (a line from the room puts : after the sender's name)",
            ),
        ] {
            assert_eq!(refused.to_string(), says);
        }
    }

    #[test]
    fn only_a_request_over_the_byte_limit_is_refused_unread() {
        // Exactly the limit is normalized and judged on its characters;
        // one byte more is refused as too long before anything else.
        let at_limit = format!("a b{}", "x".repeat(MAX_REQUESTED_BYTES - 3));
        assert_eq!(at_limit.len(), MAX_REQUESTED_BYTES);
        assert_eq!(
            Username::parse(&at_limit),
            Err(UsernameError::Whitespace(' '))
        );
        let over = format!("{at_limit}x");
        assert_eq!(Username::parse(&over), Err(UsernameError::TooLong));
        let far_over = "a b".repeat(MAX_REQUESTED_BYTES);
        assert_eq!(Username::parse(&far_over), Err(UsernameError::TooLong));
    }

    #[test]
    fn format_characters_that_are_not_default_ignorable_are_refused() {
        // Cf, but drawn by some fonts and not dropped by the skeleton: the
        // rule refuses every Cf character all the same.
        for c in [
            '\u{0600}',  // Arabic number sign
            '\u{06DD}',  // Arabic end of ayah
            '\u{070F}',  // Syriac abbreviation mark
            '\u{08E2}',  // Arabic disputed end of ayah
            '\u{FFF9}',  // interlinear annotation anchor
            '\u{110BD}', // Kaithi number sign
            '\u{13430}', // Egyptian hieroglyph vertical joiner
        ] {
            assert!(!is_default_ignorable(c), "U+{:04X}", c as u32);
            assert_eq!(
                Username::parse(&format!("al{c}ice")),
                Err(UsernameError::Invisible(c)),
                "U+{:04X}",
                c as u32
            );
        }
    }
}
