//! Text from outside (device names, push labels, registration fields)
//! that ends up on a terminal or a page. Control characters are refused
//! where such text enters the system, and escaped wherever stored text is
//! printed, so `Portal\x1b[2J…` cannot repaint an officer's prompt.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` could change how a terminal or page shows what follows,
/// or hide in it: C0 and C1 controls, DEL, the Unicode bidirectional
/// overrides, isolates and marks (which reorder text on screen), the line
/// and paragraph separators, and the invisible zero-width space, word
/// joiner and byte-order mark (a name holding one looks like another).
/// The zero-width joiner and non-joiner stay: scripts and emoji need them.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{200B}'
                | '\u{2060}'
                | '\u{FEFF}'
        )
}

/// The first character of `s` that [`is_unsafe`], if any.
pub fn first_unsafe(s: &str) -> Option<char> {
    s.chars().find(|&c| is_unsafe(c))
}

/// `s` with every character that [`is_unsafe`] written as `\u{..}`, for
/// printing stored text on a terminal. Borrows when there is none.
pub fn printable(s: &str) -> Cow<'_, str> {
    if first_unsafe(s).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_overrides_are_shown_escaped() {
        assert_eq!(
            printable("Portal\x1b[2J\rApproved: type 42"),
            "Portal\\u{1b}[2J\\u{d}Approved: type 42"
        );
        assert_eq!(
            printable("a\u{202E}b\u{9b}c\u{7f}"),
            "a\\u{202e}b\\u{9b}c\\u{7f}"
        );
        assert!(matches!(printable("Zoë's Pixel 8"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_first_unsafe_character_is_named() {
        assert_eq!(first_unsafe("ok"), None);
        assert_eq!(first_unsafe("a\tb\x1b"), Some('\t'));
        assert_eq!(first_unsafe("x\u{2067}"), Some('\u{2067}'));
        for hidden in ['\u{200F}', '\u{061C}', '\u{2028}', '\u{200B}', '\u{FEFF}'] {
            assert_eq!(first_unsafe(&format!("help{hidden}1")), Some(hidden));
        }
        assert_eq!(
            first_unsafe("👩\u{200D}💻 phone"),
            None,
            "emoji keep their joiner"
        );
    }
}
