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
//! Valid names are compared by their UTS #39 confusable skeleton
//! ([`NameKey`]), computed by the `unicode-security` crate from the Unicode
//! confusables table: `alice`, Cyrillic `аlice` and full-width `ａｌｉｃｅ`
//! share one key, so only one of them can be active at a time. The skeleton
//! does not fold case (`Alice` and `alice` keep distinct keys) but it does
//! map look-alike letters across case and digits (`I`, `l` and `1` share a
//! key, as do `O` and `0`, and `rn` and `m`). [`ANONYMOUS`], the name the
//! room shows for a participant who leaves before naming, is reserved in
//! any case and any look-alike.
//!
//! The work per attempt is bounded: a request over [`MAX_REQUESTED_BYTES`]
//! is refused before it is normalized, and the skeleton is computed only
//! for a name already known to be at most [`MAX_USERNAME_CHARS`] characters.
//! Nothing here runs per chat line.

use std::fmt;
use std::ops::Deref;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_security::skeleton;

use crate::protocol::{MAX_REQUESTED_BYTES, MAX_USERNAME_CHARS};

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
    /// Contains a control, format, default-ignorable or blank character:
    /// one that shows as nothing or as empty space.
    #[error("username contains a control, invisible or blank character")]
    Invisible,
    /// Starts with a combining mark, which would attach to the text before it.
    #[error("username starts with a combining mark")]
    LeadingMark,
}

/// The key names are compared by: the UTS #39 skeleton of the NFC name.
/// Two names with the same key look alike, so at most one of them may be
/// active. Only [`Username::parse`] and [`lookup_key`] make one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NameKey(String);

/// A valid username: the form it is shown in (NFC, as typed otherwise) and
/// the key it is compared by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    /// The name as shown: NFC, otherwise as typed.
    display: String,
    /// What it is compared by (see [`NameKey`]).
    key: NameKey,
}

impl Username {
    /// Checks a requested name against the rule (see the module docs) and
    /// computes its comparison key.
    pub fn parse(requested: &str) -> Result<Self, UsernameError> {
        if requested.len() > MAX_REQUESTED_BYTES {
            return Err(UsernameError::TooLong);
        }
        let display: String = requested.nfc().collect();
        let mut chars = 0;
        for c in display.chars() {
            chars += 1;
            if c.is_whitespace() {
                return Err(UsernameError::Whitespace);
            }
            if is_invisible(c) {
                return Err(UsernameError::Invisible);
            }
        }
        match display.chars().next() {
            None => Err(UsernameError::Empty),
            Some(_) if chars > MAX_USERNAME_CHARS => Err(UsernameError::TooLong),
            Some(first) if is_combining_mark(first) => Err(UsernameError::LeadingMark),
            Some(_) => {
                let key = NameKey(skeleton(&display).collect());
                Ok(Self { display, key })
            }
        }
    }

    /// The name as it is shown: NFC.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The key it is compared by.
    pub fn key(&self) -> &NameKey {
        &self.key
    }

    /// Whether this is [`ANONYMOUS`] in some case or look-alike spelling.
    /// The key is lower-cased and skeletonized again so that case folds
    /// after look-alikes are mapped (Greek `ΑΝΟΝΥΜΟUS` becomes Latin
    /// `ANONYMOUS`, then `anonymous`).
    pub fn is_reserved(&self) -> bool {
        fold_case(&self.key.0) == fold_case(&skeleton(ANONYMOUS).collect::<String>())
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
/// [`Username::parse`] for the key it is compared by.
pub fn canonical_username(requested: &str) -> Result<String, UsernameError> {
    Username::parse(requested).map(Username::into_string)
}

/// The key of a name typed after `@`, for looking it up; `None` if no valid
/// username could be spelled that way. A look-alike spelling finds the one
/// active name it looks like.
pub fn lookup_key(typed: &str) -> Option<NameKey> {
    Username::parse(typed).ok().map(|name| name.key)
}

/// The skeleton of the lower-cased skeleton: equal for names that differ by
/// case as well as by look-alikes.
fn fold_case(key: &str) -> String {
    skeleton(&key.to_lowercase()).collect()
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

    fn key(name: &str) -> NameKey {
        Username::parse(name)
            .unwrap_or_else(|e| panic!("{name:?} should be valid: {e}"))
            .key
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
                    Err(UsernameError::Invisible),
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
        assert_eq!(lookup_key("jose\u{301}").as_ref(), Some(composed.key()));
    }

    /// Pairs of valid names and whether they must compare equal.
    const COMPARISONS: &[(&str, &str, bool, &str)] = &[
        ("jos\u{e9}", "jose\u{301}", true, "NFC and NFD twins"),
        ("\u{c5}sa", "A\u{30a}sa", true, "NFC and NFD twins"),
        ("alice", "\u{430}lice", true, "Cyrillic a"),
        ("alice", "\u{430}li\u{441}\u{435}", true, "Cyrillic a, c, e"),
        (
            "paypal",
            "\u{440}\u{430}\u{443}pal",
            true,
            "Cyrillic r, a, u",
        ),
        ("ALICE", "\u{410}LICE", true, "Cyrillic capital A"),
        ("BOB", "\u{392}\u{39f}\u{392}", true, "Greek capitals"),
        (
            "alice",
            "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
            true,
            "full-width",
        ),
        ("Bob", "\u{ff22}\u{ff4f}\u{ff42}", true, "full-width"),
        (
            "bob",
            "\u{1d41b}\u{1d428}\u{1d41b}",
            true,
            "mathematical bold",
        ),
        ("al1ce", "alIce", true, "digit one and capital I"),
        ("b0b", "bOb", true, "digit zero and capital O"),
        ("modern", "rnodern", true, "m and rn"),
        ("Alice", "alice", false, "case is kept"),
        ("bob", "Bob", false, "case is kept"),
        ("alice", "alice2", false, "different names"),
        ("alice", "allce", false, "i and l"),
        ("alice", "al\u{ed}ce", false, "a visible accent"),
        ("w", "vv", false, "not in the confusables table"),
        ("d", "cl", false, "not in the confusables table"),
        ("stra\u{df}e", "strasse", false, "sharp s is not ss"),
        ("\u{5409}", "\u{540d}", false, "distinct ideographs"),
    ];

    #[test]
    fn look_alikes_share_a_key_and_other_names_do_not() {
        for &(a, b, same, what) in COMPARISONS {
            assert_eq!(key(a) == key(b), same, "{what}: {a:?} vs {b:?}");
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
        assert_eq!(lookup_key("\u{430}lice"), lookup_key("alice"));
        assert_eq!(lookup_key("al\u{200b}ice"), None);
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
        assert!(worst.key().0.chars().count() <= 18 * MAX_USERNAME_CHARS);
        // A longer request never reaches normalization or the skeleton.
        assert_eq!(
            Username::parse(&"\u{fdfa}".repeat(MAX_REQUESTED_BYTES)),
            Err(UsernameError::TooLong)
        );
    }

    #[test]
    fn only_a_request_over_the_byte_limit_is_refused_unread() {
        // Exactly the limit is normalized and judged on its characters;
        // one byte more is refused as too long before anything else.
        let at_limit = format!("a b{}", "x".repeat(MAX_REQUESTED_BYTES - 3));
        assert_eq!(at_limit.len(), MAX_REQUESTED_BYTES);
        assert_eq!(Username::parse(&at_limit), Err(UsernameError::Whitespace));
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
                Err(UsernameError::Invisible),
                "U+{:04X}",
                c as u32
            );
        }
    }
}
