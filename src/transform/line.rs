//! InfluxDB line-protocol text: escaping of measurement and tag text, string
//! field values, and the limits InfluxDB 1.x puts on a line.
//!
//! Escaping follows the reference: measurement, tag keys and tag values get
//! `\` → `\\`, and `\` before space, `,` and `=`; string fields get `\` →
//! `\\`, `"` → `\"` and a newline → `\n`. On top of that, text that InfluxDB
//! 1.x would misread is normalised first (see [`normalise_tag_text`]).

use std::borrow::Cow;

/// What replaces a newline or carriage return in measurement and tag text:
/// either would end the line in the middle of the series key.
pub(crate) const LINE_BREAK_REPLACEMENT: char = ' ';

/// InfluxDB 1.x refuses a point whose series key plus `#!~#` plus a field
/// key is longer than this.
const MAX_STORAGE_KEY_LEN: usize = 65535;

/// Length of InfluxDB's separator between series key and field key.
const STORAGE_KEY_SEPARATOR_LEN: usize = 4;

/// The longest series key (measurement and tags as written in the line) for
/// which every field key up to `longest_field_key` bytes is accepted.
pub(crate) fn max_series_key_len(longest_field_key: usize) -> usize {
    MAX_STORAGE_KEY_LEN - STORAGE_KEY_SEPARATOR_LEN - longest_field_key
}

/// Byte classes for tag text, looked up rather than compared so that a
/// whole string is classified in one branch-free pass.
const LINE_BREAK: u8 = 1;
const TAG_ESCAPED: u8 = 2;
const TAG_BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    table[b'\n' as usize] = LINE_BREAK;
    table[b'\r' as usize] = LINE_BREAK;
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

/// Makes measurement or tag text writable: newlines and carriage returns
/// become [`LINE_BREAK_REPLACEMENT`] and trailing backslashes are dropped
/// (see [`trim_trailing_backslashes`]). Needed where the text is compared
/// (tag keys, measurement checks); [`push_tag_text`] replaces line breaks
/// by itself.
pub(crate) fn normalise_tag_text(text: Cow<'_, str>) -> Cow<'_, str> {
    let text = if tag_byte_classes(&text) & LINE_BREAK != 0 {
        Cow::Owned(text.replace(
            ['\n', '\r'],
            LINE_BREAK_REPLACEMENT.encode_utf8(&mut [0; 4]),
        ))
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
/// a newline or carriage return written as an escaped
/// [`LINE_BREAK_REPLACEMENT`].
pub(crate) fn push_tag_text(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if tag_byte_classes(text) == 0 {
        out.extend_from_slice(bytes);
        return;
    }
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let class = TAG_BYTE_CLASS[usize::from(b)];
        if class == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run_start..i]);
        out.push(b'\\');
        if class == LINE_BREAK {
            let mut replacement = [0; 4];
            out.extend_from_slice(
                LINE_BREAK_REPLACEMENT
                    .encode_utf8(&mut replacement)
                    .as_bytes(),
            );
            run_start = i + 1;
        } else {
            run_start = i;
        }
    }
    out.extend_from_slice(&bytes[run_start..]);
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

impl crate::transform::pyjson::JsonSink for StringFieldSink<'_> {
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
        assert_eq!(out, b"a\\ b\\ ");
    }

    #[test]
    fn line_breaks_and_trailing_backslashes_are_normalised() {
        assert_eq!(tag("line one\nline two\r"), "line\\ one\\ line\\ two\\ ");
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
