//! The Unicode character classes of the reference's Python (3.11, Unicode
//! 14.0.0): which characters `repr()` prints as they are, which ones
//! `float()` and `int()` strip as whitespace, and which digits of other
//! scripts they read. The tables are generated (`pyunicode_tables.rs`,
//! from `tests/reference/unicode_tables.py`); Rust's own `char` methods
//! follow a newer Unicode and other definitions.

use std::borrow::Cow;

#[path = "pyunicode_tables.rs"]
mod tables;

/// Python's `str.isprintable()` for one character: false for control,
/// format, surrogate, private-use, unassigned, separator and space
/// characters other than the ASCII space.
pub(crate) fn is_printable(c: char) -> bool {
    let code = u32::from(c);
    if code < 0x80 {
        return (0x20..0x7f).contains(&code);
    }
    is_printable_unit(code)
}

/// [`is_printable`] for any code point, lone surrogates included (never
/// printable).
pub(crate) fn is_printable_unit(code: u32) -> bool {
    if code < 0x80 {
        return (0x20..0x7f).contains(&code);
    }
    tables::NOT_PRINTABLE
        .binary_search_by(|&(first, last)| {
            if last < code {
                std::cmp::Ordering::Less
            } else if first > code {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

/// Python's `str.isspace()`.
pub(crate) fn is_space(c: char) -> bool {
    tables::SPACES.binary_search(&u32::from(c)).is_ok()
}

/// The value of a decimal digit of any script (`unicodedata.decimal`).
pub(crate) fn decimal_value(c: char) -> Option<u8> {
    let code = u32::from(c);
    if c.is_ascii_digit() {
        return Some((code - u32::from(b'0')) as u8);
    }
    let zero = match tables::DIGIT_ZEROS.binary_search(&code) {
        Ok(i) => tables::DIGIT_ZEROS[i],
        Err(0) => return None,
        Err(i) => tables::DIGIT_ZEROS[i - 1],
    };
    (code - zero < 10).then(|| (code - zero) as u8)
}

/// The ASCII text Python's `float()` and `int()` parse for `text`
/// (`_PyUnicode_TransformDecimalAndSpaceToASCII`, then `Py_ISSPACE`
/// stripped from both ends): ASCII is kept as it is, other whitespace
/// becomes a space and other decimal digits their ASCII digit; `None` when
/// another non-ASCII character is left, which no number can contain.
/// (So `"\u{3000}5"` reads as 5, but `"\u{1c}5"` does not: the ASCII
/// separators are spaces to `str.isspace()`, not to `Py_ISSPACE`.)
pub(crate) fn number_text(text: &str) -> Option<Cow<'_, str>> {
    let ascii = if text.is_ascii() {
        Cow::Borrowed(text)
    } else {
        let mapped = text
            .chars()
            .map(|c| match c {
                c if u32::from(c) < 0x7f => Some(c),
                c if is_space(c) => Some(' '),
                c => decimal_value(c).map(|d| char::from(b'0' + d)),
            })
            .collect::<Option<String>>()?;
        Cow::Owned(mapped)
    };
    let is_py_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r');
    Some(match ascii {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim_matches(is_py_space)),
        Cow::Owned(text) => Cow::Owned(text.trim_matches(is_py_space).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_follows_python() {
        // Expected values are Python 3.11's str.isprintable().
        for c in [
            ' ',
            'a',
            '~',
            'é',
            '名',
            '😀',
            '\u{301}',
            '€',
            'İ',
            '\u{10ffff}',
        ] {
            assert_eq!(is_printable(c), c != '\u{10ffff}', "{c:?}");
        }
        for c in [
            '\0', '\n', '\u{7f}', '\u{85}', '\u{a0}', '\u{ad}', '\u{378}', '\u{200b}', '\u{2028}',
            '\u{3000}', '\u{feff}', '\u{e000}', '\u{ffff}',
        ] {
            assert!(!is_printable(c), "{c:?}");
        }
        assert!(!is_printable_unit(0xd800));
    }

    #[test]
    fn spaces_and_digits_follow_python() {
        for c in [
            '\t', '\u{b}', '\u{1c}', '\u{1f}', ' ', '\u{85}', '\u{a0}', '\u{2003}', '\u{3000}',
        ] {
            assert!(is_space(c), "{c:?}");
        }
        for c in ['\u{200b}', '\u{feff}', 'a', '\0'] {
            assert!(!is_space(c), "{c:?}");
        }
        assert_eq!(decimal_value('7'), Some(7));
        assert_eq!(decimal_value('١'), Some(1));
        assert_eq!(decimal_value('１'), Some(1));
        assert_eq!(decimal_value('𝟗'), Some(9));
        assert_eq!(decimal_value('²'), None);
        assert_eq!(decimal_value('a'), None);
        assert_eq!(number_text(" ١٢٣.٥\u{3000}").as_deref(), Some("123.5"));
        assert_eq!(
            number_text("\u{1c}12\u{1f}").as_deref(),
            Some("\u{1c}12\u{1f}")
        );
        assert_eq!(number_text("\u{b}3\u{c}").as_deref(), Some("3"));
        assert_eq!(number_text("1\u{2003}2").as_deref(), Some("1 2"));
        assert_eq!(number_text("1€"), None);
    }
}
