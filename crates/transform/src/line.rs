//! InfluxDB line-protocol text: escaping of measurement and tag text, string
//! field values, and the limits InfluxDB 1.x puts on a line.
//!
//! Escaping follows the reference: measurement, tag keys and tag values get
//! `\` → `\\`, and `\` before space, `,` and `=`; string fields get `\` →
//! `\\`, `"` → `\"` and a newline → `\n`. On top of that, text that InfluxDB
//! 1.x would misread is normalised first (see [`normalise_tag_text`]).

use std::borrow::Cow;

use super::swar::{bytes_below, equal_bytes, word, HIGHS};

/// What replaces a newline in measurement and tag text: it would end the
/// line in the middle of the series key. (A carriage return does not:
/// InfluxDB 1.x ends lines at `\n` only and stores a `\r` in a name, tag
/// key or tag value as it is, as the reference writes it.)
pub(crate) const LINE_BREAK_REPLACEMENT: char = ' ';

/// InfluxDB 1.x refuses a point whose series key plus `#!~#` plus a field
/// key is longer than this.
const MAX_STORAGE_KEY_LEN: usize = 65535;

/// Length of InfluxDB's separator between series key and field key.
const STORAGE_KEY_SEPARATOR_LEN: usize = 4;

/// The longest series key (measurement and tags as written in the line) for
/// which every field key up to `longest_field_key` bytes is accepted.
pub(crate) const fn max_series_key_len(longest_field_key: usize) -> usize {
    MAX_STORAGE_KEY_LEN - STORAGE_KEY_SEPARATOR_LEN - longest_field_key
}

/// Byte classes for tag text, looked up rather than compared so that a
/// whole string is classified in one branch-free pass.
const LINE_BREAK: u8 = 1;
const TAG_ESCAPED: u8 = 2;
pub(crate) const TAG_BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    table[b'\n' as usize] = LINE_BREAK;
    table[b'\\' as usize] = TAG_ESCAPED;
    table[b' ' as usize] = TAG_ESCAPED;
    table[b',' as usize] = TAG_ESCAPED;
    table[b'=' as usize] = TAG_ESCAPED;
    table
};

fn tag_byte_classes(text: &str) -> u8 {
    text.bytes()
        .fold(0, |classes, b| classes | TAG_BYTE_CLASS[usize::from(b)])
}

/// Makes measurement or tag text writable: newlines become
/// [`LINE_BREAK_REPLACEMENT`] and trailing backslashes are dropped
/// (see [`trim_trailing_backslashes`]). Needed where the text is compared
/// (tag keys, measurement checks); [`push_tag_text`] replaces line breaks
/// by itself.
pub(crate) fn normalise_tag_text(text: Cow<'_, str>) -> Cow<'_, str> {
    let text = if tag_byte_classes(&text) & LINE_BREAK != 0 {
        Cow::Owned(text.replace('\n', LINE_BREAK_REPLACEMENT.encode_utf8(&mut [0; 4])))
    } else {
        text
    };
    trim_trailing_backslashes(text)
}

/// Drops trailing backslashes: InfluxDB 1.x reads a backslash before the
/// following separator as escaping it, so no escaping can make text that
/// ends in `\` parse.
pub(crate) fn trim_trailing_backslashes(mut text: Cow<'_, str>) -> Cow<'_, str> {
    if text.ends_with('\\') {
        let kept = text.trim_end_matches('\\').len();
        match &mut text {
            Cow::Borrowed(s) => *s = &s[..kept],
            Cow::Owned(s) => s.truncate(kept),
        }
    }
    text
}

/// Appends measurement, tag key or tag value text (already trimmed of
/// trailing backslashes), escaped as the reference does (`escape_tag`), with
/// a newline written as an escaped [`LINE_BREAK_REPLACEMENT`].
pub(crate) fn push_tag_text(out: &mut Vec<u8>, text: &str) {
    push_tag_bytes(out, text.as_bytes());
}

/// [`push_tag_text`] on the bytes of UTF-8 text.
pub(crate) fn push_tag_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Almost all tag text needs no escape: settle that a word at a time and
    // copy it whole.
    if !may_need_tag_escape(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    escape_tag_bytes(bytes, |piece| out.extend_from_slice(piece));
}

/// Tag text escaped, as pieces handed to `push` in order: runs of bytes as
/// they are, and what replaces each byte that needs escaping.
pub(crate) fn escape_tag_bytes(bytes: &[u8], mut push: impl FnMut(&[u8])) {
    const _: () = assert!(LINE_BREAK_REPLACEMENT.is_ascii());
    const LINE_BREAK_ESCAPE: [u8; 2] = [b'\\', LINE_BREAK_REPLACEMENT as u8];
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let class = TAG_BYTE_CLASS[usize::from(b)];
        if class == 0 {
            continue;
        }
        push(&bytes[run_start..i]);
        if class == LINE_BREAK {
            push(&LINE_BREAK_ESCAPE);
            run_start = i + 1;
        } else {
            push(b"\\");
            run_start = i;
        }
    }
    push(&bytes[run_start..]);
}

/// Whether `bytes` may hold a byte [`push_tag_bytes`] escapes: exact for
/// "no", and "yes" also for other control characters (the escaping loop
/// then copies them as they are).
pub(super) fn may_need_tag_escape(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n < 4 {
        return bytes.iter().any(|&b| TAG_BYTE_CLASS[usize::from(b)] != 0);
    }
    if n <= 8 {
        // Two overlapping four-byte halves cover the text in one word.
        let low = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let high = u32::from_le_bytes([bytes[n - 4], bytes[n - 3], bytes[n - 2], bytes[n - 1]]);
        return tag_escape_bytes(u64::from(low) | u64::from(high) << 32) != 0;
    }
    let mut words = bytes.chunks_exact(8);
    let mut found = words
        .by_ref()
        .any(|chunk| tag_escape_bytes(word(chunk)) != 0);
    if !words.remainder().is_empty() {
        // The last eight bytes, overlapping the words already seen.
        found |= tag_escape_bytes(word(&bytes[n - 8..])) != 0;
    }
    found
}

/// High bit set in each byte of `word` that is below `!` (space, line
/// breaks, other control characters), `,`, `=` or `\`; exact for "none".
#[inline(always)]
fn tag_escape_bytes(word: u64) -> u64 {
    (bytes_below(word, 0x21)
        | equal_bytes(word, b',')
        | equal_bytes(word, b'=')
        | equal_bytes(word, b'\\'))
        & HIGHS
}

/// Appends `text` escaped for the inside of a string field (`escape_value`
/// without the quotes).
pub(crate) fn push_string_field_content(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// Appends a quoted string field value.
pub(crate) fn push_string_field(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    push_string_field_content(out, text);
    out.push(b'"');
}

/// A sink for re-serialised JSON that escapes it into a string field as it
/// is written, so the JSON never needs a buffer of its own.
pub(crate) struct StringFieldSink<'o>(pub &'o mut Vec<u8>);

impl crate::pyjson::JsonSink for StringFieldSink<'_> {
    fn push(&mut self, text: &str) {
        push_string_field_content(self.0, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(text: &str) -> String {
        let mut out = Vec::new();
        push_tag_text(&mut out, &normalise_tag_text(Cow::Borrowed(text)));
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn tag_text_is_escaped_like_the_reference() {
        assert_eq!(tag("devstack"), "devstack");
        assert_eq!(tag("a b,c=d"), "a\\ b\\,c\\=d");
        assert_eq!(tag("C:\\temp\\dir"), "C:\\\\temp\\\\dir");
        assert_eq!(tag("tab\there"), "tab\there");
        let mut out = Vec::new();
        push_tag_text(&mut out, "a\nb\r");
        assert_eq!(out, b"a\\ b\r");
    }

    #[test]
    fn the_word_check_agrees_with_the_byte_table() {
        for special in [b' ', b',', b'=', b'\\', b'\n'] {
            for len in 0..40 {
                for at in 0..=len {
                    let mut bytes = vec![b'a'; len];
                    if at < len {
                        bytes[at] = special;
                    }
                    let want = bytes.iter().any(|&b| TAG_BYTE_CLASS[usize::from(b)] != 0);
                    assert_eq!(may_need_tag_escape(&bytes), want, "{special} at {at}/{len}");
                }
            }
        }
        assert!(!may_need_tag_escape("é名😀\u{7f}-_.".as_bytes()));
    }

    #[test]
    fn line_breaks_and_trailing_backslashes_are_normalised() {
        assert_eq!(tag("line one\nline two\r"), "line\\ one\\ line\\ two\r");
        assert_eq!(tag("C:\\temp\\"), "C:\\\\temp");
        assert_eq!(tag("\\\\"), "");
        assert!(matches!(
            normalise_tag_text(Cow::Borrowed("plain")),
            Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn string_fields_escape_backslash_quote_and_newline() {
        let mut out = Vec::new();
        push_string_field(&mut out, "say \"hi\" \\ then\nnext\rline");
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "\"say \\\"hi\\\" \\\\ then\\nnext\rline\""
        );
    }
}
