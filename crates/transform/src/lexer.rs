//! The JSON lexical steps, one implementation of each rule, for the direct
//! metric path (`direct.rs`) and the Python-style writer (`pyjson.rs`): a
//! position in the payload, whitespace, literals, numbers, strings with
//! their escapes, whole values skipped — each validated as strictly as
//! serde_json would, and each answering `None` where the direct path must
//! give up and leave the message to serde (the writer reads text serde or
//! the direct path has already validated).

use super::simd::plain_string_masks;
use super::swar::{bytes_below, equal_bytes, word, HIGHS, ONES};

/// Deepest nesting [`Lexer::skip_value`] follows inside a skipped value
/// (one bit per level in a `u64`); deeper input goes to the serde path.
pub(super) const MAX_SKIP_DEPTH: u32 = 64;

/// Where the parts of a number [`Lexer::number`] read end.
#[derive(Clone, Copy)]
pub(super) struct NumberParts {
    /// End of the integer digits (a `.`, an `e`, or the end).
    pub(super) int_end: usize,
    /// End of the fraction digits; `int_end` without a fraction.
    pub(super) fraction_end: usize,
    /// Whether an exponent follows.
    pub(super) exponent: bool,
}

impl NumberParts {
    /// The parts of a number read at `start`, from their ends relative to it.
    #[inline(always)]
    pub(super) fn after(self, start: usize) -> NumberParts {
        NumberParts {
            int_end: start + self.int_end,
            fraction_end: start + self.fraction_end,
            exponent: self.exponent,
        }
    }
}

/// The JSON number `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` at the
/// start of `text`: its length, and where its parts end (from the start).
/// The one copy of the grammar, for the lexer and the direct path's cursor.
#[inline(always)]
pub(super) fn number_at(text: &[u8]) -> Option<(usize, NumberParts)> {
    let mut at = usize::from(text.first() == Some(&b'-'));
    let int = digit_count(text.get(at..)?);
    match text.get(at..at + int)? {
        // A digit right after a leading `0` is an error, not a new token.
        [] | [b'0', _, ..] => return None,
        _ => {}
    }
    at += int;
    let int_end = at;
    if text.get(at) == Some(&b'.') {
        at += 1;
        let fraction = digit_count(text.get(at..)?);
        if fraction == 0 {
            return None;
        }
        at += fraction;
    }
    let fraction_end = at;
    let exponent = matches!(text.get(at), Some(b'e' | b'E'));
    if exponent {
        at += 1;
        if matches!(text.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let digits = digit_count(text.get(at..)?);
        if digits == 0 {
            return None;
        }
        at += digits;
    }
    Some((
        at,
        NumberParts {
            int_end,
            fraction_end,
            exponent,
        },
    ))
}

/// How much JSON whitespace `text` starts with.
#[inline(always)]
pub(super) fn whitespace_len(text: &[u8]) -> usize {
    // Most calls find a token at once: one comparison rules out all
    // whitespace.
    text.iter()
        .position(|&b| b > b' ' || !matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
        .unwrap_or(text.len())
}

/// How many ASCII digits `text` starts with, counted eight at a time.
#[inline(always)]
pub(super) fn digit_count(text: &[u8]) -> usize {
    let mut len = 0;
    while let Some(chunk) = text.get(len..).and_then(|r| r.first_chunk::<8>()) {
        let others = non_digit_bytes(u64::from_le_bytes(*chunk));
        if others != 0 {
            return len + (others.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while text.get(len).is_some_and(u8::is_ascii_digit) {
        len += 1;
    }
    len
}

/// The containers open around a position in a skipped value: one bit per
/// level, set for an object.
pub(super) trait OpenContainers {
    /// Notes level `depth` (from 0) as an object or an array; `None` when
    /// it is deeper than this follows.
    fn open(&mut self, depth: usize, object: bool) -> Option<()>;
    /// Whether level `depth` is an object.
    fn is_object(&self, depth: usize) -> bool;
}

/// Up to [`MAX_SKIP_DEPTH`] levels, in a register.
impl OpenContainers for u64 {
    #[inline(always)]
    fn open(&mut self, depth: usize, object: bool) -> Option<()> {
        if depth >= MAX_SKIP_DEPTH as usize {
            return None;
        }
        let bit = 1 << depth;
        *self = if object { *self | bit } else { *self & !bit };
        Some(())
    }

    #[inline(always)]
    fn is_object(&self, depth: usize) -> bool {
        self >> depth & 1 == 1
    }
}

/// Any depth: 128 levels inline, more on the heap.
impl OpenContainers for smallvec::SmallVec<[u64; 2]> {
    fn open(&mut self, depth: usize, object: bool) -> Option<()> {
        if self.len() <= depth / 64 {
            self.push(0);
        }
        let word = self.get_mut(depth / 64)?;
        let bit = 1 << (depth % 64);
        *word = if object { *word | bit } else { *word & !bit };
        Some(())
    }

    fn is_object(&self, depth: usize) -> bool {
        self.get(depth / 64)
            .is_some_and(|word| word >> (depth % 64) & 1 == 1)
    }
}

/// A position in a payload.
pub(super) struct Lexer<'p> {
    pub(super) bytes: &'p [u8],
    pub(super) pos: usize,
}

impl<'p> Lexer<'p> {
    /// At the start of `bytes`.
    #[cfg(test)]
    pub(super) fn new(bytes: &'p [u8]) -> Lexer<'p> {
        Lexer { bytes, pos: 0 }
    }

    /// Skips one JSON value, validating it as serde_json's `ignore_value`
    /// does (and its strings as UTF-8), and returns where its text lies;
    /// `None` for anything else and for nesting deeper than
    /// [`MAX_SKIP_DEPTH`].
    #[inline]
    pub(super) fn skip_value(&mut self) -> Option<std::ops::Range<usize>> {
        self.skip_value_in(&mut 0u64)
    }

    /// [`Lexer::skip_value`] keeping the open containers in `open` (which
    /// sets the depth it follows).
    pub(super) fn skip_value_in(
        &mut self,
        open: &mut impl OpenContainers,
    ) -> Option<std::ops::Range<usize>> {
        let start = self.pos;
        let mut depth: usize = 0;
        loop {
            // At a value.
            match self.peek()? {
                bracket @ (b'{' | b'[') => {
                    let is_object = bracket == b'{';
                    open.open(depth, is_object)?;
                    self.pos += 1;
                    depth += 1;
                    self.skip_whitespace();
                    let close = if is_object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        depth -= 1;
                    } else {
                        if is_object {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                b'"' => self.skip_string()?,
                b'n' => self.literal(b"null")?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                _ => return None,
            }
            // After a value: close containers until one continues.
            loop {
                if depth == 0 {
                    return Some(start..self.pos);
                }
                self.skip_whitespace();
                let in_object = open.is_object(depth - 1);
                match self.next()? {
                    b',' => {
                        self.skip_whitespace();
                        if in_object {
                            self.member_key()?;
                        }
                        break;
                    }
                    b'}' if in_object => {}
                    b']' if !in_object => {}
                    _ => return None,
                }
                depth -= 1;
            }
        }
    }

    /// An object member's key and colon, leaving whitespace before the value.
    pub(super) fn member_key(&mut self) -> Option<()> {
        self.skip_string()?;
        self.skip_whitespace();
        self.eat(b':')?;
        self.skip_whitespace();
        Some(())
    }

    /// A string, escapes validated (any `\u` code unit: serde_json checks
    /// surrogates only in strings it decodes, not in values it skips), and
    /// its text checked as UTF-8 when it holds a non-ASCII byte.
    pub(super) fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        let start = self.pos;
        let mut non_ascii = false;
        loop {
            let at = find_plain_end(self.bytes, self.pos);
            match *self.bytes.get(at)? {
                b'"' => {
                    if non_ascii {
                        std::str::from_utf8(self.bytes.get(start..at)?).ok()?;
                    }
                    self.pos = at + 1;
                    return Some(());
                }
                b'\\' => {
                    self.pos = at + 1;
                    match self.next()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            self.hex4()?;
                        }
                        _ => return None,
                    }
                }
                0x80.. => {
                    non_ascii = true;
                    self.pos = find_string_special(self.bytes, at);
                }
                // A control character.
                _ => return None,
            }
        }
    }

    /// Four hex digits, as the code unit they spell.
    pub(super) fn hex4(&mut self) -> Option<u32> {
        let hex = self.bytes.get(self.pos..self.pos + 4)?;
        let mut unit = 0;
        for &digit in hex {
            unit = unit * 16 + char::from(digit).to_digit(16)?;
        }
        self.pos += 4;
        Some(unit)
    }

    /// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    pub(super) fn skip_number(&mut self) -> Option<()> {
        self.number().map(|_| ())
    }

    /// A JSON number (see [`Lexer::skip_number`]), and where its parts end.
    #[inline]
    pub(super) fn number(&mut self) -> Option<NumberParts> {
        let start = self.pos;
        let (len, parts) = number_at(self.bytes.get(start..)?)?;
        self.pos += len;
        Some(parts.after(start))
    }

    /// Exactly `word` (`null`, `true`, `false`).
    pub(super) fn literal(&mut self, word: &[u8]) -> Option<()> {
        if !self.bytes.get(self.pos..)?.starts_with(word) {
            return None;
        }
        self.pos += word.len();
        Some(())
    }

    #[inline]
    pub(super) fn skip_whitespace(&mut self) {
        self.pos += self.bytes.get(self.pos..).map_or(0, whitespace_len);
    }

    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    pub(super) fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    /// Exactly `byte`.
    #[inline]
    pub(super) fn eat(&mut self, byte: u8) -> Option<()> {
        if self.peek() != Some(byte) {
            return None;
        }
        self.pos += 1;
        Some(())
    }

    /// Whether the payload ends here (after trailing whitespace).
    #[cfg(test)]
    pub(super) fn at_end(&mut self) -> bool {
        self.skip_whitespace();
        self.pos == self.bytes.len()
    }
}

/// High bit set in each byte of `word` that is not an ASCII digit (and
/// maybe in bytes above one, through the carry: the lowest mark is exact).
#[inline(always)]
pub(super) fn non_digit_bytes(word: u64) -> u64 {
    // Digits become 0..=9, which stay below 0x80 after adding 0x76.
    let offset = word ^ (ONES * u64::from(b'0'));
    (offset | offset.wrapping_add(ONES * 0x76)) & HIGHS
}

/// Index of the first `"`, `\`, control character or non-ASCII byte at or
/// after `from` (`bytes.len()` if none), sixteen bytes at a time (see
/// `simd.rs`), then eight. Sixteen rather than eight only (callgrind,
/// `examples/transform_tiers.rs`, instructions per message): the load
/// generator's alarm transitions 59 644 → 59 400, its metrics 2 318 →
/// 2 232, the benchmark mix 3 753 → 3 629.
#[inline(always)]
pub(super) fn find_plain_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..).and_then(|rest| rest.first_chunk::<16>()) {
        let (ends, _) = plain_string_masks(chunk);
        if ends != 0 {
            return i + ends.trailing_zeros() as usize;
        }
        i += 16;
    }
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = word(chunk);
        let mask = (string_special_bytes(word) | word) & HIGHS;
        if mask != 0 {
            return i + (mask.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b) {
            return i;
        }
        i += 1;
    }
    i
}

/// Index of the first `"`, `\` or control character at or after `from`
/// (`bytes.len()` if none), eight bytes at a time.
pub(super) fn find_string_special(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mask = string_special_bytes(word(chunk)) & HIGHS;
        if mask != 0 {
            return i + (mask.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// High bit set (among other bits) in each byte of `word` that is `"`, `\`
/// or below 0x20. The borrow of the subtraction can also mark bytes above
/// a marked one, never below, so the lowest mark is exact.
#[inline(always)]
pub(super) fn string_special_bytes(word: u64) -> u64 {
    equal_bytes(word, b'"') | equal_bytes(word, b'\\') | bytes_below(word, 0x20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_specials_are_found_at_every_position() {
        for special in [b'"', b'\\', b'\0', b'\n', 0x1f] {
            for len in 0..20 {
                for at in 0..=len {
                    let mut bytes = vec![b'a'; len];
                    bytes.extend_from_slice(&[0xc3, 0xa9, b' ', 0x7f, 0x20]);
                    if at < len {
                        bytes[at] = special;
                    }
                    let want = if at < len { at } else { bytes.len() };
                    assert_eq!(
                        find_string_special(&bytes, 0),
                        want,
                        "{special} at {at}/{len}"
                    );
                }
            }
        }
    }

    #[test]
    fn skipped_values_are_validated_like_serde() {
        for (text, ok) in [
            (
                r#"{"x": [1, -2.5e+3, "\u00e9\"", true, false, null, {}]} "#,
                true,
            ),
            ("\"caf\u{e9}\"", true),
            (r#"{"x": 01}"#, false),
            (r#"{"x": 1.}"#, false),
            (r#"{"x": "\q"}"#, false),
            (r#"{"x": [1,]}"#, false),
            (r#"{"x" 1}"#, false),
            ("\"\u{1}\"", false),
        ] {
            let mut lexer = Lexer::new(text.as_bytes());
            let skipped = lexer.skip_value();
            assert_eq!(skipped.is_some() && lexer.at_end(), ok, "{text}");
        }
        let mut bad_utf8 = Lexer::new(b"\"\xc3(\"");
        assert_eq!(bad_utf8.skip_value(), None);
        let deep =
            "[".repeat(MAX_SKIP_DEPTH as usize + 1) + &"]".repeat(MAX_SKIP_DEPTH as usize + 1);
        assert_eq!(Lexer::new(deep.as_bytes()).skip_value(), None);
    }

    #[test]
    fn plain_ends_are_found_at_every_position() {
        for special in [b'"', b'\\', b'\0', b'\n', 0x1f, 0x80, 0xc3, 0xff] {
            for len in 0..40 {
                for at in 0..=len {
                    let mut bytes = vec![b'a'; len];
                    bytes.extend_from_slice(&[b' ', 0x7f, 0x20, b'"']);
                    if at < len {
                        bytes[at] = special;
                    }
                    let want = if at < len { at } else { len + 3 };
                    assert_eq!(find_plain_end(&bytes, 0), want, "{special} at {at}/{len}");
                }
            }
        }
    }

    #[test]
    fn digits_are_counted_to_the_first_other_byte() {
        for other in [b'.', b'e', b'/', b':', b' ', 0x80, 0xff, 0xfa] {
            for len in 0..20 {
                let mut bytes = b"12345678901234567890".to_vec();
                bytes.truncate(len);
                bytes.push(other);
                bytes.extend_from_slice(b"123");
                assert_eq!(digit_count(&bytes), len, "{other} after {len}");
            }
        }
    }
}
