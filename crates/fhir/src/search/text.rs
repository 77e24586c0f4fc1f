//! How strings are compared in search: FHIR string search ignores case and accents
//! (search.html#string), so stored and searched values are reduced to the same form.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower-case, without combining marks (accents), with runs of whitespace as one space and no
/// leading or trailing space: `"  Élodie\tMcDonald "` → `"elodie mcdonald"`.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The first string that sorts after every string starting with `prefix`, for a prefix search
/// as a range (`value >= prefix AND value < upper`), which both databases answer from a
/// plain b-tree index; `None` when no such bound exists (the prefix is all U+10FFFF).
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        // Skip the surrogate gap, which holds no chars.
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_accents_and_spaces() {
        assert_eq!(normalize("  Élodie\tMcDonald "), "elodie mcdonald");
        assert_eq!(normalize("Ångström"), "angstrom");
        assert_eq!(normalize("STRASSE"), "strasse");
        assert_eq!(normalize("ﬁne"), "fine", "compatibility forms fold");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn prefix_bounds() {
        assert_eq!(prefix_upper_bound("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
    }
}
