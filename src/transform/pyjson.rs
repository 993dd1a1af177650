//! Re-serialises JSON text exactly as the reference's
//! `json.dumps(json.loads(text), ensure_ascii=False)` would: `", "` and
//! `": "` separators, keys in input order (a repeated key keeps its first
//! position and its last value, like a Python dict), non-ASCII kept, Python's
//! string escapes, integers as written, floats in `repr()` form.
//!
//! It works directly on the raw text serde_json has already validated, so
//! integers of any size keep their digits and the common small object needs
//! no tree of its own.

use std::borrow::Cow;
use std::collections::HashMap;

use smallvec::SmallVec;
use thiserror::Error;

use super::pynum::FloatRepr;

/// Deepest nesting re-serialised (serde_json's own default limit); deeper
/// input is refused rather than risking the stack.
pub(crate) const MAX_DEPTH: usize = 128;

/// Objects with more keys than this find repeated keys through a hash map
/// instead of pairwise comparison.
const PAIRWISE_KEY_LIMIT: usize = 32;

/// Where re-serialised JSON goes.
pub(crate) trait JsonSink {
    /// Appends a piece of JSON text.
    fn push(&mut self, text: &str);
}

impl JsonSink for String {
    fn push(&mut self, text: &str) {
        self.push_str(text);
    }
}

/// Why JSON text could not be re-serialised.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum JsonError {
    /// Python would hold a lone surrogate that cannot be written as UTF-8.
    #[error("a string holds the unpaired UTF-16 surrogate \\u{0:04x}")]
    LoneSurrogate(u16),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Not JSON (cannot happen after serde_json validated it).
    #[error("invalid JSON at byte {0}")]
    Invalid(usize),
}

/// True when Python's `not json.loads(text)` holds: `null`, `false`, zero,
/// `""`, `[]`, `{}`.
pub(crate) fn is_falsy(raw: &str) -> bool {
    let inner_is = |close: u8| {
        raw.as_bytes()[1..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            == Some(&close)
    };
    match raw.as_bytes().first() {
        None | Some(b'n') | Some(b'f') => true,
        Some(b't') => false,
        Some(b'"') => raw == "\"\"",
        Some(b'[') => inner_is(b']'),
        Some(b'{') => inner_is(b'}'),
        Some(_) => raw.parse::<f64>().is_ok_and(|x| x == 0.0),
    }
}

/// Writes `raw` (one JSON value) to `sink` in Python's style, renaming object
/// keys found in `renames` (`(from, to)`) at any depth.
pub(crate) fn write(
    raw: &str,
    renames: &[(&str, &str)],
    sink: &mut impl JsonSink,
) -> Result<(), JsonError> {
    let mut cursor = Cursor { text: raw, pos: 0 };
    write_value(&mut cursor, 0, renames, sink)?;
    cursor.skip_whitespace();
    if cursor.pos != raw.len() {
        return Err(JsonError::Invalid(cursor.pos));
    }
    Ok(())
}

struct Cursor<'t> {
    text: &'t str,
    pos: usize,
}

impl<'t> Cursor<'t> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while self
            .peek()
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonError> {
        self.skip_whitespace();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(JsonError::Invalid(self.pos))
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<&'static str, JsonError> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(word)
        } else {
            Err(JsonError::Invalid(self.pos))
        }
    }

    /// The raw content of the string starting at the cursor, escapes intact.
    fn string(&mut self) -> Result<&'t str, JsonError> {
        self.expect(b'"')?;
        let start = self.pos;
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(&self.text[start..self.pos - 1]);
                }
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
        Err(JsonError::Invalid(start))
    }

    fn number(&mut self) -> Result<&'t str, JsonError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(JsonError::Invalid(start));
        }
        Ok(&self.text[start..self.pos])
    }

    /// Steps over one value and returns its raw text.
    fn skip_value(&mut self, depth: usize) -> Result<&'t str, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.skip_whitespace();
        let start = self.pos;
        match self.peek() {
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                self.skip_whitespace();
                if self.peek() == Some(close) {
                    self.pos += 1;
                } else {
                    loop {
                        if open == b'{' {
                            self.string()?;
                            self.expect(b':')?;
                        }
                        self.skip_value(depth + 1)?;
                        self.skip_whitespace();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b) if b == close => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(JsonError::Invalid(self.pos)),
                        }
                    }
                }
            }
            Some(b'"') => {
                self.string()?;
            }
            Some(b't') => {
                self.literal("true")?;
            }
            Some(b'f') => {
                self.literal("false")?;
            }
            Some(b'n') => {
                self.literal("null")?;
            }
            _ => {
                self.number()?;
            }
        }
        Ok(&self.text[start..self.pos])
    }
}

fn write_value(
    cursor: &mut Cursor<'_>,
    depth: usize,
    renames: &[(&str, &str)],
    sink: &mut impl JsonSink,
) -> Result<(), JsonError> {
    if depth > MAX_DEPTH {
        return Err(JsonError::TooDeep);
    }
    cursor.skip_whitespace();
    match cursor.peek() {
        Some(b'{') => write_object(cursor, depth, renames, sink),
        Some(b'[') => {
            cursor.pos += 1;
            sink.push("[");
            cursor.skip_whitespace();
            if cursor.peek() == Some(b']') {
                cursor.pos += 1;
            } else {
                loop {
                    write_value(cursor, depth + 1, renames, sink)?;
                    cursor.skip_whitespace();
                    match cursor.peek() {
                        Some(b',') => {
                            cursor.pos += 1;
                            sink.push(", ");
                        }
                        Some(b']') => {
                            cursor.pos += 1;
                            break;
                        }
                        _ => return Err(JsonError::Invalid(cursor.pos)),
                    }
                }
            }
            sink.push("]");
            Ok(())
        }
        Some(b'"') => {
            let content = cursor.string()?;
            write_string(content, sink)
        }
        Some(b't') => cursor.literal("true").map(|w| sink.push(w)),
        Some(b'f') => cursor.literal("false").map(|w| sink.push(w)),
        Some(b'n') => cursor.literal("null").map(|w| sink.push(w)),
        _ => {
            let start = cursor.pos;
            let number = cursor.number()?;
            write_number(number, sink).ok_or(JsonError::Invalid(start))
        }
    }
}

fn write_object(
    cursor: &mut Cursor<'_>,
    depth: usize,
    renames: &[(&str, &str)],
    sink: &mut impl JsonSink,
) -> Result<(), JsonError> {
    cursor.pos += 1; // '{'
    let mut entries: SmallVec<[(&str, &str); 8]> = SmallVec::new();
    cursor.skip_whitespace();
    if cursor.peek() == Some(b'}') {
        cursor.pos += 1;
    } else {
        loop {
            let key = cursor.string()?;
            cursor.expect(b':')?;
            let value = cursor.skip_value(depth + 1)?;
            entries.push((key, value));
            cursor.skip_whitespace();
            match cursor.peek() {
                Some(b',') => cursor.pos += 1,
                Some(b'}') => {
                    cursor.pos += 1;
                    break;
                }
                _ => return Err(JsonError::Invalid(cursor.pos)),
            }
        }
    }

    sink.push("{");
    let mut first = true;
    let mut emit = |key: &str, value: &str, sink: &mut _| -> Result<(), JsonError> {
        if !first {
            JsonSink::push(sink, ", ");
        }
        first = false;
        write_key(key, renames, sink)?;
        JsonSink::push(sink, ": ");
        write_value(
            &mut Cursor {
                text: value,
                pos: 0,
            },
            depth + 1,
            renames,
            sink,
        )
    };
    if entries.len() <= PAIRWISE_KEY_LIMIT {
        for (i, &(key, _)) in entries.iter().enumerate() {
            let mut repeated_earlier = false;
            for &(earlier, _) in &entries[..i] {
                if same_key(earlier, key)? {
                    repeated_earlier = true;
                    break;
                }
            }
            if repeated_earlier {
                continue;
            }
            let mut value = entries[i].1;
            for &(later, later_value) in &entries[i + 1..] {
                if same_key(later, key)? {
                    value = later_value;
                }
            }
            emit(key, value, sink)?;
        }
    } else {
        let mut last_value: HashMap<Cow<'_, str>, &str> = HashMap::with_capacity(entries.len());
        for &(key, value) in &entries {
            last_value.insert(decode_key(key)?, value);
        }
        for &(key, _) in &entries {
            if let Some(value) = last_value.remove(&decode_key(key)?) {
                emit(key, value, sink)?;
            }
        }
    }
    sink.push("}");
    Ok(())
}

/// Whether two raw (still escaped) keys name the same Python string.
fn same_key(a: &str, b: &str) -> Result<bool, JsonError> {
    if !a.contains('\\') && !b.contains('\\') {
        return Ok(a == b);
    }
    Ok(decode_key(a)? == decode_key(b)?)
}

fn decode_key(raw: &str) -> Result<Cow<'_, str>, JsonError> {
    if !raw.contains('\\') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut decoded = String::with_capacity(raw.len());
    for_each_char(raw, |piece| decoded.push_str(piece))?;
    Ok(Cow::Owned(decoded))
}

fn write_key(
    raw: &str,
    renames: &[(&str, &str)],
    sink: &mut impl JsonSink,
) -> Result<(), JsonError> {
    if !renames.is_empty() {
        let decoded = decode_key(raw)?;
        if let Some(&(_, to)) = renames.iter().find(|&&(from, _)| from == decoded) {
            sink.push("\"");
            sink.push(to);
            sink.push("\"");
            return Ok(());
        }
    }
    write_string(raw, sink)
}

/// Writes a JSON string (raw content, escapes intact) as Python's
/// `ensure_ascii=False` encoder would.
fn write_string(raw: &str, sink: &mut impl JsonSink) -> Result<(), JsonError> {
    sink.push("\"");
    let mut escape_buf = [0u8; 6];
    let mut pending_start = 0;
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' && b >= 0x20 {
            i += 1;
            continue;
        }
        sink.push(&raw[pending_start..i]);
        if b < 0x20 {
            sink.push(python_escape(char::from(b), &mut escape_buf));
            i += 1;
        } else {
            let (c, len) = unescape_at(raw, i)?;
            sink.push(python_escape(c, &mut escape_buf));
            i += len;
        }
        pending_start = i;
    }
    sink.push(&raw[pending_start..]);
    sink.push("\"");
    Ok(())
}

/// Calls `f` with the decoded text of a raw JSON string, piece by piece.
fn for_each_char(raw: &str, mut f: impl FnMut(&str)) -> Result<(), JsonError> {
    let mut pending_start = 0;
    let mut i = 0;
    let bytes = raw.as_bytes();
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        f(&raw[pending_start..i]);
        let (c, len) = unescape_at(raw, i)?;
        f(c.encode_utf8(&mut [0; 4]));
        i += len;
        pending_start = i;
    }
    f(&raw[pending_start..]);
    Ok(())
}

/// Decodes the JSON escape starting at `raw[at]` (a backslash): the character
/// and the number of bytes it spans (a surrogate pair spans 12).
fn unescape_at(raw: &str, at: usize) -> Result<(char, usize), JsonError> {
    let bytes = raw.as_bytes();
    let simple = match bytes.get(at + 1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => {
            let unit = hex_unit(raw, at + 2).ok_or(JsonError::Invalid(at))?;
            if let Some(c) = char::from_u32(u32::from(unit)) {
                return Ok((c, 6));
            }
            if (0xD800..0xDC00).contains(&unit) && raw[at + 6..].starts_with("\\u") {
                if let Some(low) =
                    hex_unit(raw, at + 8).filter(|low| (0xDC00..0xE000).contains(low))
                {
                    let code =
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    return char::from_u32(code)
                        .map(|c| (c, 12))
                        .ok_or(JsonError::Invalid(at));
                }
            }
            return Err(JsonError::LoneSurrogate(unit));
        }
        _ => return Err(JsonError::Invalid(at)),
    };
    Ok((simple, 2))
}

fn hex_unit(raw: &str, at: usize) -> Option<u16> {
    raw.get(at..at + 4)
        .and_then(|hex| u16::from_str_radix(hex, 16).ok())
}

/// One character as Python's `json.dumps(..., ensure_ascii=False)` writes it.
fn python_escape(c: char, buf: &mut [u8; 6]) -> &str {
    let short: &'static str = match c {
        '"' => "\\\"",
        '\\' => "\\\\",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\u{8}' => "\\b",
        '\u{c}' => "\\f",
        c if (c as u32) < 0x20 => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let code = c as usize;
            *buf = [b'\\', b'u', b'0', b'0', HEX[code >> 4], HEX[code & 0xf]];
            return std::str::from_utf8(&buf[..]).unwrap_or("?");
        }
        c => return c.encode_utf8(&mut buf[..]),
    };
    short
}

/// Python writes integers as parsed (only `-0` changes) and floats by `repr`.
fn write_number(text: &str, sink: &mut impl JsonSink) -> Option<()> {
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        let x: f64 = text.parse().ok()?;
        sink.push(FloatRepr::new(x).as_str());
    } else if text == "-0" {
        sink.push("0");
    } else {
        sink.push(text);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dumps(raw: &str) -> Result<String, JsonError> {
        let mut out = String::new();
        write(raw, &[], &mut out).map(|()| out)
    }

    #[test]
    fn matches_python_json_dumps() {
        // Expected strings come from Python 3:
        // json.dumps(json.loads(raw), ensure_ascii=False)
        let cases: &[(&str, &str)] = &[
            (r#"{"status":"ok"}"#, r#"{"status": "ok"}"#),
            (r#"{"nested": {"a": [1,2,3], "b": null, "c": true, "d": false}}"#, r#"{"nested": {"a": [1, 2, 3], "b": null, "c": true, "d": false}}"#),
            (r#"{"текст":"значение","e":"\u00e9\ud83d\ude00"}"#, r#"{"текст": "значение", "e": "é😀"}"#),
            (r#"{"c":"\u0001\u001f\b\f\n\r\t\/\"\\\u007f"}"#, "{\"c\": \"\\u0001\\u001f\\b\\f\\n\\r\\t/\\\"\\\\\u{7f}\"}"),
            (r#"[1.0, 1e16, 1E-5, -0, -0.0, 0.1, 12345678901234567890123, 1e400, -1e400, 2.50]"#, "[1.0, 1e+16, 1e-05, 0, -0.0, 0.1, 12345678901234567890123, Infinity, -Infinity, 2.5]"),
            (r#"{"a":1,"b":2,"a":3}"#, r#"{"a": 3, "b": 2}"#),
            (r#"{"a":1,"\u0061":2}"#, r#"{"a": 2}"#),
            (" { } ", "{}"),
            ("[ ]", "[]"),
            ("\"x\"", "\"x\""),
            ("\"\u{2028}\"", "\"\u{2028}\""),
        ];
        for &(raw, want) in cases {
            assert_eq!(dumps(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn many_repeated_keys_keep_first_position_and_last_value() {
        let raw = format!(
            "{{{}}}",
            (0..100)
                .map(|i| format!("\"k{}\": {i}", i % 40))
                .collect::<Vec<_>>()
                .join(",")
        );
        let want = format!(
            "{{{}}}",
            (0..40)
                .map(|k| format!("\"k{k}\": {}", if k < 20 { k + 80 } else { k + 40 }))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(dumps(&raw), Ok(want));
    }

    #[test]
    fn renames_keys_at_any_depth() {
        let renames = [
            ("subAlarmState", "sub_alarm_state"),
            ("currentValues", "current_values"),
        ];
        let mut out = String::new();
        let raw = r#"[{"subAlarmState":"OK","x":{"currentValues":[1.5]},"v":"subAlarmState"}]"#;
        assert_eq!(write(raw, &renames, &mut out), Ok(()));
        assert_eq!(
            out,
            r#"[{"sub_alarm_state": "OK", "x": {"current_values": [1.5]}, "v": "subAlarmState"}]"#
        );
    }

    #[test]
    fn refuses_lone_surrogates_and_deep_nesting() {
        assert_eq!(
            dumps(r#"{"a":"\ud800"}"#),
            Err(JsonError::LoneSurrogate(0xd800))
        );
        assert_eq!(
            dumps(r#"["\udc00x"]"#),
            Err(JsonError::LoneSurrogate(0xdc00))
        );
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
        assert_eq!(dumps(&deep), Err(JsonError::TooDeep));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(dumps(&ok).is_ok());
    }

    #[test]
    fn falsy_values_follow_python_truthiness() {
        for raw in [
            "null", "false", "0", "-0", "0.0", "0e5", "\"\"", "[]", "[ ]", "{}", "{ \n}",
        ] {
            assert!(is_falsy(raw), "{raw}");
        }
        for raw in ["true", "1", "0.1", "\"x\"", "[0]", "{\"a\":null}", "\" \""] {
            assert!(!is_falsy(raw), "{raw}");
        }
    }
}
