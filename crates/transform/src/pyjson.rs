//! JSON text as the reference's Python sees it once `simplejson.loads`
//! (3.19) has decoded it: re-serialised as `json.dumps(value,
//! ensure_ascii=False)` writes it — `", "` and `": "` separators, keys in
//! input order (a repeated key keeps its first position and its last value,
//! like a Python dict), non-ASCII kept, Python's string escapes, integers as
//! written, floats in `repr()` form, an infinite float refused — and made
//! into text as `str(value)` does: a string is itself, anything else its
//! `repr()` (`None`, `True`, `1.5`, `inf`, `{'k': [1, 'x']}`).
//!
//! It works directly on the raw text serde_json (or the direct path) has
//! already validated, read by the lexer's steps (`lexer.rs`), so integers of any size keep their digits and the
//! common small object needs no tree of its own.

use std::borrow::Cow;
use std::collections::HashMap;

use smallvec::SmallVec;
use thiserror::Error;

use super::lexer::{whitespace_len, Lexer};
use super::pynum::FloatRepr;
use super::pyunicode;

/// Deepest nesting re-serialised or made into text; deeper input is
/// refused rather than risking the stack. The reference is limited by
/// Python's recursion limit, 1000 calls less the depth of its call stack
/// (about 990 levels in the differential test's driver, a little less in a
/// persister), so it never writes deeper values; the few levels between its
/// limit and ours are a documented difference (`docs/line-protocol.md`).
/// The stack this takes is tested (`deep_nesting_fits_a_small_stack`).
pub const MAX_DEPTH: usize = 1000;

/// Objects with more keys than this find repeated keys through a hash map
/// instead of pairwise comparison.
const PAIRWISE_KEY_LIMIT: usize = 32;

/// Where re-serialised JSON goes.
pub trait JsonSink {
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
pub enum JsonError {
    /// Python would hold a lone surrogate that cannot be written as UTF-8.
    #[error("a string holds the unpaired UTF-16 surrogate \\u{0:04x}")]
    LoneSurrogate(u16),
    /// A number Python reads as an infinite float, which simplejson 3.19
    /// refuses to write (`Out of range float values are not JSON compliant`).
    #[error("{0} is an infinite float, which the reference cannot serialise")]
    NotFinite(String),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Not JSON (cannot happen after serde_json validated it).
    #[error("invalid JSON at byte {0}")]
    Invalid(usize),
}

/// How values are written: as JSON (`json.dumps`, renaming keys found in
/// the list at any depth), or as Python's `repr()`.
#[derive(Clone, Copy)]
enum Style<'r> {
    Json(&'r [(&'r str, &'r str)]),
    Repr,
}

/// True when Python's `not json.loads(text)` holds: `null`, `false`, zero,
/// `""`, `[]`, `{}`.
pub fn is_falsy(raw: &str) -> bool {
    let inner_is = |close: u8| {
        let inner = &raw.as_bytes()[1..];
        inner.get(whitespace_len(inner)) == Some(&close)
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
pub fn write(
    raw: &str,
    renames: &[(&str, &str)],
    sink: &mut impl JsonSink,
) -> Result<(), JsonError> {
    write_whole(raw, Style::Json(renames), sink)
}

/// Python's `str()` of the value `raw` (one JSON value) decodes to: a
/// string's own text (borrowed when it has no escapes), anything else its
/// `repr()`. A string holding a lone surrogate is refused, as it cannot be
/// written as UTF-8 (inside a container `repr()` escapes it).
#[inline]
pub(crate) fn python_str(raw: &str) -> Result<Cow<'_, str>, JsonError> {
    // Mostly a string without escapes: its content as it is.
    let bytes = raw.as_bytes();
    if let [b'"', content @ .., b'"'] = bytes {
        if memchr::memchr(b'\\', content).is_none() {
            return Ok(Cow::Borrowed(&raw[1..raw.len() - 1]));
        }
    }
    python_str_of_any(raw)
}

#[cold]
fn python_str_of_any(raw: &str) -> Result<Cow<'_, str>, JsonError> {
    let raw = raw.trim_matches([' ', '\t', '\n', '\r']);
    if let Some(content) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        if !content.contains('\\') {
            return Ok(Cow::Borrowed(content));
        }
        let mut text = String::with_capacity(content.len());
        for_each_unit(content, |unit| match unit {
            Unit::Char(c) => {
                text.push(c);
                Ok(())
            }
            Unit::Lone(unit) => Err(JsonError::LoneSurrogate(unit)),
        })?;
        return Ok(Cow::Owned(text));
    }
    let mut text = String::new();
    write_whole(raw, Style::Repr, &mut text)?;
    Ok(Cow::Owned(text))
}

/// Writes the one JSON value of `raw` in `style`. Iterative, with the open
/// containers on a heap stack that grows only past a few levels: the depth
/// allowed ([`MAX_DEPTH`]) is far more than a thread's stack would take.
fn write_whole<'t>(
    raw: &'t str,
    style: Style<'_>,
    sink: &mut impl JsonSink,
) -> Result<(), JsonError> {
    /// An open container. An object's members stay inline (no allocation
    /// per object); the frames themselves are on the stack up to four.
    #[allow(clippy::large_enum_variant)]
    enum Frame<'t> {
        /// An array, whose elements the cursor reads in place.
        Array,
        /// An object: its members in the order they are written, the next
        /// one, and the cursor in the text around the object (after its
        /// `}`), which goes on once the members are written.
        Object {
            members: Members<'t>,
            next: usize,
            around: Cursor<'t>,
        },
    }
    let literal = |json: &'static str, repr: &'static str| match style {
        Style::Json(_) => json,
        Style::Repr => repr,
    };
    let mut stack: SmallVec<[Frame<'t>; 4]> = SmallVec::new();
    let mut cursor = Cursor { text: raw, pos: 0 };
    'value: loop {
        // Write the value at the cursor, or open its container.
        if stack.len() > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        cursor.skip_whitespace();
        match cursor.peek() {
            Some(b'[') => {
                cursor.pos += 1;
                sink.push("[");
                cursor.skip_whitespace();
                if cursor.peek() == Some(b']') {
                    cursor.pos += 1;
                    sink.push("]");
                } else {
                    stack.push(Frame::Array);
                    continue 'value;
                }
            }
            Some(b'{') => {
                sink.push("{");
                // The members are gathered in their frame, not moved into it.
                stack.push(Frame::Object {
                    members: SmallVec::new(),
                    next: 1,
                    around: cursor,
                });
                let Some(Frame::Object {
                    members, around, ..
                }) = stack.last_mut()
                else {
                    unreachable!("an object frame was just pushed")
                };
                around.members_into(members)?;
                match members.first() {
                    None => {
                        sink.push("}");
                        cursor = *around;
                        stack.pop();
                    }
                    Some(&(key, value)) => {
                        write_member_key(key, style, sink)?;
                        cursor = Cursor {
                            text: value,
                            pos: 0,
                        };
                        continue 'value;
                    }
                }
            }
            Some(b'"') => {
                let content = cursor.string()?;
                match style {
                    Style::Json(_) => write_string(content, sink)?,
                    Style::Repr => write_repr_string(content, sink)?,
                }
            }
            Some(b't') => {
                cursor.literal("true")?;
                sink.push(literal("true", "True"));
            }
            Some(b'f') => {
                cursor.literal("false")?;
                sink.push(literal("false", "False"));
            }
            Some(b'n') => {
                cursor.literal("null")?;
                sink.push(literal("null", "None"));
            }
            _ => {
                let number = cursor.number()?;
                write_number(number, style, sink)?;
            }
        }
        // A value is complete: go on in the innermost open container.
        loop {
            match stack.last_mut() {
                None => {
                    cursor.skip_whitespace();
                    if cursor.pos != raw.len() {
                        return Err(JsonError::Invalid(cursor.pos));
                    }
                    return Ok(());
                }
                Some(Frame::Array) => {
                    cursor.skip_whitespace();
                    match cursor.peek() {
                        Some(b',') => {
                            cursor.pos += 1;
                            sink.push(", ");
                            continue 'value;
                        }
                        Some(b']') => {
                            cursor.pos += 1;
                            sink.push("]");
                            stack.pop();
                        }
                        _ => return Err(JsonError::Invalid(cursor.pos)),
                    }
                }
                Some(Frame::Object {
                    members,
                    next,
                    around,
                }) => {
                    cursor.skip_whitespace();
                    if cursor.pos != cursor.text.len() {
                        return Err(JsonError::Invalid(cursor.pos));
                    }
                    if let Some(&(key, value)) = members.get(*next) {
                        *next += 1;
                        sink.push(", ");
                        write_member_key(key, style, sink)?;
                        cursor = Cursor {
                            text: value,
                            pos: 0,
                        };
                        continue 'value;
                    }
                    sink.push("}");
                    cursor = *around;
                    stack.pop();
                }
            }
        }
    }
}

/// An object's members as written: each key once, at its first position,
/// with its last value (raw key and raw value text).
type Members<'t> = SmallVec<[(&'t str, &'t str); 8]>;

fn write_member_key(
    key: &str,
    style: Style<'_>,
    sink: &mut impl JsonSink,
) -> Result<(), JsonError> {
    match style {
        Style::Json(renames) => write_key(key, renames, sink)?,
        Style::Repr => write_repr_string(key, sink)?,
    }
    sink.push(": ");
    Ok(())
}

/// A position in already validated JSON text, read with the lexer's
/// steps (`lexer.rs`): the same rules as the direct path reads by.
#[derive(Clone, Copy)]
struct Cursor<'t> {
    text: &'t str,
    pos: usize,
}

impl<'t> Cursor<'t> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        self.pos += self
            .text
            .as_bytes()
            .get(self.pos..)
            .map_or(0, whitespace_len);
    }

    /// Runs a step of the lexer from here; `Invalid` where it declines.
    fn lex<T>(&mut self, step: impl FnOnce(&mut Lexer<'t>) -> Option<T>) -> Result<T, JsonError> {
        let mut lexer = Lexer {
            bytes: self.text.as_bytes(),
            pos: self.pos,
        };
        let found = step(&mut lexer).ok_or(JsonError::Invalid(self.pos))?;
        self.pos = lexer.pos;
        Ok(found)
    }

    /// The text from `start` to here.
    fn since(&self, start: usize) -> Result<&'t str, JsonError> {
        self.text
            .get(start..self.pos)
            .ok_or(JsonError::Invalid(start))
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonError> {
        self.skip_whitespace();
        self.lex(|lexer| lexer.eat(byte))
    }

    fn literal(&mut self, word: &'static str) -> Result<(), JsonError> {
        self.lex(|lexer| lexer.literal(word.as_bytes()))
    }

    /// The raw content of the string starting at the cursor, escapes intact.
    fn string(&mut self) -> Result<&'t str, JsonError> {
        self.skip_whitespace();
        let start = self.pos;
        self.lex(Lexer::skip_string)?;
        let quoted = self.since(start)?;
        quoted
            .get(1..quoted.len() - 1)
            .ok_or(JsonError::Invalid(start))
    }

    fn number(&mut self) -> Result<&'t str, JsonError> {
        let start = self.pos;
        self.lex(Lexer::skip_number)?;
        self.since(start)
    }

    /// Steps over one value, nested to any depth (one that is too deep to
    /// write is refused when the writer gets there, as it gets there), and
    /// returns its raw text.
    fn skip_value(&mut self) -> Result<&'t str, JsonError> {
        self.skip_whitespace();
        let start = self.pos;
        self.lex(|lexer| lexer.skip_value_in(&mut SmallVec::<[u64; 2]>::new()))?;
        self.since(start)
    }

    /// Puts the members of the object at the cursor (which moves past it)
    /// in `members`, in the order Python's dict writes them: each key at its
    /// first position, with its last value.
    fn members_into(&mut self, members: &mut Members<'t>) -> Result<(), JsonError> {
        self.pos += 1; // '{'
        let mut entries: Members<'t> = SmallVec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.skip_value()?;
            entries.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(JsonError::Invalid(self.pos)),
            }
        }
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
                members.push((key, value));
            }
        } else {
            let mut last_value: HashMap<Cow<'_, [u8]>, &str> =
                HashMap::with_capacity(entries.len());
            for &(key, value) in &entries {
                last_value.insert(key_identity(key)?, value);
            }
            for &(key, _) in &entries {
                if let Some(value) = last_value.remove(&key_identity(key)?) {
                    members.push((key, value));
                }
            }
        }
        Ok(())
    }
}

/// Whether two raw (still escaped) keys name the same Python string.
fn same_key(a: &str, b: &str) -> Result<bool, JsonError> {
    if !a.contains('\\') && !b.contains('\\') {
        return Ok(a == b);
    }
    Ok(key_identity(a)? == key_identity(b)?)
}

/// A raw key's decoded text as bytes, for telling keys apart: UTF-8, with a
/// lone surrogate as the three bytes of its WTF-8 form (which no UTF-8
/// text holds, so it equals only itself).
fn key_identity(raw: &str) -> Result<Cow<'_, [u8]>, JsonError> {
    if !raw.contains('\\') {
        return Ok(Cow::Borrowed(raw.as_bytes()));
    }
    let mut decoded = Vec::with_capacity(raw.len());
    for_each_unit(raw, |unit| {
        match unit {
            Unit::Char(c) => decoded.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            Unit::Lone(unit) => decoded.extend_from_slice(&[
                0xe0 | (unit >> 12) as u8,
                0x80 | ((unit >> 6) & 0x3f) as u8,
                0x80 | (unit & 0x3f) as u8,
            ]),
        }
        Ok(())
    })?;
    Ok(Cow::Owned(decoded))
}

fn write_key(
    raw: &str,
    renames: &[(&str, &str)],
    sink: &mut impl JsonSink,
) -> Result<(), JsonError> {
    if !renames.is_empty() {
        let decoded = key_identity(raw)?;
        if let Some(&(_, to)) = renames
            .iter()
            .find(|&&(from, _)| from.as_bytes() == &*decoded)
        {
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
            let (unit, len) = unescape_at(raw, i)?;
            match unit {
                Unit::Char(c) => sink.push(python_escape(c, &mut escape_buf)),
                Unit::Lone(unit) => return Err(JsonError::LoneSurrogate(unit)),
            }
            i += len;
        }
        pending_start = i;
    }
    sink.push(&raw[pending_start..]);
    sink.push("\"");
    Ok(())
}

/// Writes a JSON string (raw content, escapes intact) as Python's `repr()`
/// of the decoded text: in single quotes, or double ones when the text
/// holds a single quote and no double quote; backslashes and the quote
/// escaped, `\t`, `\n`, `\r`, `\xhh` for other ASCII controls, and `\xhh`,
/// `\uhhhh` or `\Uhhhhhhhh` for non-printable non-ASCII (lone surrogates
/// included).
fn write_repr_string(raw: &str, sink: &mut impl JsonSink) -> Result<(), JsonError> {
    let (mut single, mut double) = (false, false);
    for_each_unit(raw, |unit| {
        single |= matches!(unit, Unit::Char('\''));
        double |= matches!(unit, Unit::Char('"'));
        Ok(())
    })?;
    let quote = if single && !double { '"' } else { '\'' };
    let mut buf = [0u8; 10];
    sink.push(quote.encode_utf8(&mut [0; 4]));
    for_each_unit(raw, |unit| {
        let code = match unit {
            Unit::Char(c) => {
                let printable = match c {
                    '\\' | '\t' | '\n' | '\r' => false,
                    c if c == quote => false,
                    c => pyunicode::is_printable(c),
                };
                if printable {
                    sink.push(c.encode_utf8(&mut [0; 4]));
                    return Ok(());
                }
                u32::from(c)
            }
            Unit::Lone(unit) => u32::from(unit),
        };
        let text: &str = match code {
            0x5c => "\\\\",
            0x09 => "\\t",
            0x0a => "\\n",
            0x0d => "\\r",
            0x27 => "\\'",
            0x22 => "\\\"",
            _ => hex_escape(code, &mut buf),
        };
        sink.push(text);
        Ok(())
    })?;
    sink.push(quote.encode_utf8(&mut [0; 4]));
    Ok(())
}

/// `\xhh`, `\uhhhh` or `\Uhhhhhhhh` (lower-case hex), as `repr()` escapes.
fn hex_escape(code: u32, buf: &mut [u8; 10]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let (letter, digits) = match code {
        0..=0xff => (b'x', 2),
        0x100..=0xffff => (b'u', 4),
        _ => (b'U', 8),
    };
    buf[0] = b'\\';
    buf[1] = letter;
    for i in 0..digits {
        buf[2 + i] = HEX[(code >> (4 * (digits - 1 - i)) & 0xf) as usize];
    }
    std::str::from_utf8(&buf[..2 + digits]).unwrap_or("?")
}

/// A decoded piece of a JSON string: a character, or a `\u` escape of a
/// UTF-16 surrogate without its partner (Python keeps those in a `str`).
#[derive(Clone, Copy)]
enum Unit {
    Char(char),
    Lone(u16),
}

/// Calls `f` with every decoded unit of a raw JSON string's content.
fn for_each_unit(
    raw: &str,
    mut f: impl FnMut(Unit) -> Result<(), JsonError>,
) -> Result<(), JsonError> {
    let mut i = 0;
    while i < raw.len() {
        if raw.as_bytes()[i] == b'\\' {
            let (unit, len) = unescape_at(raw, i)?;
            f(unit)?;
            i += len;
        } else {
            let c = raw[i..].chars().next().ok_or(JsonError::Invalid(i))?;
            f(Unit::Char(c))?;
            i += c.len_utf8();
        }
    }
    Ok(())
}

/// Decodes the JSON escape starting at `raw[at]` (a backslash): the unit
/// and the number of bytes it spans (a surrogate pair spans 12).
fn unescape_at(raw: &str, at: usize) -> Result<(Unit, usize), JsonError> {
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
                return Ok((Unit::Char(c), 6));
            }
            if (0xD800..0xDC00).contains(&unit) && raw[at + 6..].starts_with("\\u") {
                if let Some(low) =
                    hex_unit(raw, at + 8).filter(|low| (0xDC00..0xE000).contains(low))
                {
                    let code =
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    return char::from_u32(code)
                        .map(|c| (Unit::Char(c), 12))
                        .ok_or(JsonError::Invalid(at));
                }
            }
            return Ok((Unit::Lone(unit), 6));
        }
        _ => return Err(JsonError::Invalid(at)),
    };
    Ok((Unit::Char(simple), 2))
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

/// Python writes integers as parsed (only `-0` changes) and floats by
/// `repr`; an infinite float is refused by `json.dumps` and is `inf` or
/// `-inf` to `repr`.
fn write_number(text: &str, style: Style<'_>, sink: &mut impl JsonSink) -> Result<(), JsonError> {
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        let x: f64 = text.parse().map_err(|_| JsonError::Invalid(0))?;
        if x.is_finite() {
            sink.push(FloatRepr::new(x).as_str());
        } else {
            match style {
                Style::Json(_) => return Err(JsonError::NotFinite(text.to_string())),
                Style::Repr => sink.push(if x > 0.0 { "inf" } else { "-inf" }),
            }
        }
    } else if text == "-0" {
        sink.push("0");
    } else {
        sink.push(text);
    }
    Ok(())
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
        // Expected strings come from Python 3 with simplejson 3.19:
        // json.dumps(json.loads(raw), ensure_ascii=False)
        let cases: &[(&str, &str)] = &[
            (r#"{"status":"ok"}"#, r#"{"status": "ok"}"#),
            (
                r#"{"nested": {"a": [1,2,3], "b": null, "c": true, "d": false}}"#,
                r#"{"nested": {"a": [1, 2, 3], "b": null, "c": true, "d": false}}"#,
            ),
            (
                r#"{"текст":"значение","e":"\u00e9\ud83d\ude00"}"#,
                r#"{"текст": "значение", "e": "é😀"}"#,
            ),
            (
                r#"{"c":"\u0001\u001f\b\f\n\r\t\/\"\\\u007f"}"#,
                "{\"c\": \"\\u0001\\u001f\\b\\f\\n\\r\\t/\\\"\\\\\u{7f}\"}",
            ),
            (
                r#"[1.0, 1e16, 1E-5, -0, -0.0, 0.1, 12345678901234567890123, 1e-400, 2.50]"#,
                "[1.0, 1e+16, 1e-05, 0, -0.0, 0.1, 12345678901234567890123, 0.0, 2.5]",
            ),
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
    fn infinite_floats_are_refused_like_simplejson() {
        for raw in ["1e400", "[-1e400]", "{\"a\": {\"b\": 1E999}}"] {
            assert!(matches!(dumps(raw), Err(JsonError::NotFinite(_))), "{raw}");
        }
    }

    #[test]
    fn python_str_matches_python() {
        // Expected strings are Python 3.11's str(simplejson.loads(raw)).
        let cases: &[(&str, &str)] = &[
            ("null", "None"),
            ("true", "True"),
            ("false", "False"),
            ("0", "0"),
            ("-0", "0"),
            ("-0.0", "-0.0"),
            ("1e16", "1e+16"),
            ("1e400", "inf"),
            ("-1e400", "-inf"),
            ("12345678901234567890123", "12345678901234567890123"),
            (r#""plain""#, "plain"),
            (r#" "with \"quote\" and \\ back" "#, "with \"quote\" and \\ back"),
            (r#""tab\there\nnew\rcr""#, "tab\there\nnew\rcr"),
            ("[]", "[]"),
            ("{}", "{}"),
            (r#"[1, 2.50, "x", null, true, [false]]"#, "[1, 2.5, 'x', None, True, [False]]"),
            (r#"{"a": 1, "b": {"c": "d\u00e9"}, "a": 3}"#, "{'a': 3, 'b': {'c': 'dé'}}"),
            (r#"{"\ud800": 1, "\ud800": 2}"#, "{'\\ud800': 2}"),
            (
                r#"["plain", "it\u0027s", "say \"hi\"", "both \u0027 and \"", "back\\slash", "\u0000\u001f\u007f\u0085\u00a0\u00ad\u00e9\u200b\u2028\ud800\ud83d\ude00\ue000\uffff\udbff\udfff\u0378", "tab\there\nnew\rcr", 1e400, -1e400, -0.0, 1e-7, -0]"#,
                "['plain', \"it's\", 'say \"hi\"', 'both \\' and \"', 'back\\\\slash', '\\x00\\x1f\\x7f\\x85\\xa0\\xadé\\u200b\\u2028\\ud800😀\\ue000\\uffff\\U0010ffff\\u0378', 'tab\\there\\nnew\\rcr', inf, -inf, -0.0, 1e-07, 0]",
            ),
            (
                r#"{"k\u0027": {"x": [1, {"": null}]}, "\ud800": "v"}"#,
                "{\"k'\": {'x': [1, {'': None}]}, '\\ud800': 'v'}",
            ),
        ];
        for &(raw, want) in cases {
            assert_eq!(python_str(raw).as_deref(), Ok(want), "{raw}");
        }
        assert!(matches!(python_str("\"x\""), Ok(Cow::Borrowed("x"))));
        assert_eq!(
            python_str(r#""\udc00""#),
            Err(JsonError::LoneSurrogate(0xdc00))
        );
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

    /// Values nested to the limit take no more stack than flat ones (the
    /// writer keeps open containers on the heap): written here on a thread
    /// with half the default stack of a spawned thread, in a debug build.
    #[test]
    fn deep_nesting_fits_a_small_stack() {
        let half = MAX_DEPTH / 2;
        let deep = format!("{}1{}", "{\"k\": [".repeat(half), "]}".repeat(half));
        let written = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let mut line = Vec::new();
                let json = write(
                    &deep,
                    &[("k", "key")],
                    &mut super::super::line::StringFieldSink(&mut line),
                );
                let text = python_str(&deep).map(|t| t.len());
                (json, line.len(), text)
            })
            .map(|t| t.join());
        let Ok(Ok((json, len, text))) = written else {
            panic!("the thread failed: {written:?}");
        };
        assert_eq!(json, Ok(()));
        assert!(len > 4 * MAX_DEPTH, "{len}");
        assert!(text.as_ref().is_ok_and(|&n| n > 4 * MAX_DEPTH), "{text:?}");
        let deeper = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(dumps(&deeper), Err(JsonError::TooDeep));
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
