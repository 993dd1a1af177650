//! The fast path of metric decoding: one pass over the common shape of a
//! metric message, filling the same [`MetricEnvelope`] and [`DimensionList`]
//! as the serde path in `message.rs`.
//!
//! It answers only when it is sure: `Some` exactly where the serde path
//! would succeed with the same result. Anything it does not handle — a wrong
//! type, a repeated `meta` field, a `\u` escape of a lone surrogate, deep
//! nesting, and every kind of error — is `None`, and the serde path
//! decides, error messages included. So the scanner can stay small; what it
//! must get right is strict JSON for what it accepts (the values it skips
//! or keeps raw are validated as serde_json's `ignore_value` does).

use std::borrow::Cow;

use super::message::{DimensionList, Metric, MetricEnvelope, MetricMeta, Text};

/// Deepest nesting the scanner follows inside a skipped or raw value (one
/// bit per level in a `u64`); deeper input goes to the serde path.
const MAX_SKIP_DEPTH: u32 = 64;

/// Decodes a metric message (already checked to be UTF-8) like
/// `message::decode_metric`, or `None` when the serde path must decide.
/// On `None`, `dimensions` may hold partial results.
pub(crate) fn decode_metric<'p>(
    text: &'p str,
    dimensions: &mut DimensionList<'p>,
) -> Option<MetricEnvelope<'p>> {
    let mut scanner = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let envelope = scanner.envelope(dimensions)?;
    scanner.skip_whitespace();
    (scanner.pos == scanner.bytes.len()).then_some(envelope)
}

/// An object key: the index of one the caller named, or another string.
enum Key<'p> {
    Known(usize),
    Other(Cow<'p, str>),
}

struct Scanner<'p> {
    text: &'p str,
    bytes: &'p [u8],
    pos: usize,
}

impl<'p> Scanner<'p> {
    fn envelope(&mut self, dimensions: &mut DimensionList<'p>) -> Option<MetricEnvelope<'p>> {
        let mut envelope = MetricEnvelope::default();
        self.object(&["metric", "meta"], |s, key| {
            match key {
                Key::Known(0) => envelope.metric = s.metric(dimensions)?,
                Key::Known(1) => envelope.meta = s.meta()?,
                _ => {
                    s.skip_value()?;
                }
            }
            Some(())
        })?;
        Some(envelope)
    }

    fn metric(&mut self, dimensions: &mut DimensionList<'p>) -> Option<Option<Metric<'p>>> {
        if self.null() {
            return Some(None);
        }
        // A repeated `metric` object replaces the earlier one whole.
        dimensions.clear();
        let mut metric = Metric::default();
        let names = ["name", "dimensions", "timestamp", "value", "value_meta"];
        self.object(&names, |s, key| {
            match key {
                Key::Known(0) => metric.name = s.optional_text()?,
                Key::Known(1) => {
                    dimensions.clear();
                    s.dimensions(dimensions)?;
                }
                Key::Known(2) => metric.timestamp = Some(s.skip_value()?),
                Key::Known(3) => metric.value = Some(s.skip_value()?),
                Key::Known(4) => metric.value_meta = Some(s.skip_value()?),
                _ => {
                    s.skip_value()?;
                }
            }
            Some(())
        })?;
        Some(Some(metric))
    }

    fn dimensions(&mut self, dimensions: &mut DimensionList<'p>) -> Option<()> {
        if self.null() {
            return Some(());
        }
        self.object(&[], |s, key| {
            let Key::Other(key) = key else { return None };
            s.skip_whitespace();
            let value = s.string()?;
            dimensions.push((key, value));
            Some(())
        })
    }

    fn meta(&mut self) -> Option<Option<MetricMeta<'p>>> {
        if self.null() {
            return Some(None);
        }
        // The derived serde struct refuses a repeated field, even `null`.
        let mut region = None;
        let mut tenant_id = None;
        self.object(&["region", "tenantId"], |s, key| {
            match key {
                Key::Known(0) if region.is_none() => region = Some(s.optional_text()?),
                Key::Known(1) if tenant_id.is_none() => tenant_id = Some(s.optional_text()?),
                Key::Known(_) => return None,
                Key::Other(_) => {
                    s.skip_value()?;
                }
            }
            Some(())
        })?;
        Some(Some(MetricMeta {
            region: region.flatten(),
            tenant_id: tenant_id.flatten(),
        }))
    }

    /// A JSON object whose keys are matched against `names`; `field`
    /// consumes each value (whitespace before it not yet skipped).
    #[inline(always)]
    fn object<const N: usize>(
        &mut self,
        names: &[&'static str; N],
        mut field: impl FnMut(&mut Self, Key<'p>) -> Option<()>,
    ) -> Option<()> {
        self.skip_whitespace();
        self.eat(b'{')?;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(());
        }
        loop {
            let key = self.key(names)?;
            self.skip_whitespace();
            self.eat(b':')?;
            field(self, key)?;
            self.skip_whitespace();
            match self.next()? {
                b',' => self.skip_whitespace(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// An object key: one of `names` or another string.
    #[inline(always)]
    fn key<const N: usize>(&mut self, names: &[&'static str; N]) -> Option<Key<'p>> {
        // Known keys written without escapes are compared in place (a few
        // word compares each) rather than scanned for their end.
        if let Some(rest) = self.bytes.get(self.pos..) {
            for (i, name) in names.iter().enumerate() {
                let n = name.len();
                if rest.len() > n + 1
                    && rest[0] == b'"'
                    && &rest[1..n + 1] == name.as_bytes()
                    && rest[n + 1] == b'"'
                {
                    self.pos += n + 2;
                    return Some(Key::Known(i));
                }
            }
        }
        let key = self.string()?;
        Some(match names.iter().position(|name| *name == key) {
            Some(i) => Key::Known(i),
            None => Key::Other(key),
        })
    }

    /// `null` (consumed) or something else (left in place).
    fn null(&mut self) -> bool {
        self.skip_whitespace();
        let is_null = self
            .bytes
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(b"null"));
        if is_null {
            self.pos += 4;
        }
        is_null
    }

    /// `null` or a string, as serde reads an `Option<Text>`.
    fn optional_text(&mut self) -> Option<Option<Text<'p>>> {
        if self.null() {
            return Some(None);
        }
        Some(Some(Text(self.string()?)))
    }

    /// A string at the current position: borrowed unless it has escapes.
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'p, str>> {
        // Split so that the common case returns in registers: a `Cow`
        // returned through memory costs a store-forwarding stall per string.
        match self.plain_string() {
            Some(text) => Some(Cow::Borrowed(text)),
            None => self.escaped_string().map(Cow::Owned),
        }
    }

    /// A string without escapes at the current position; `None` (position
    /// unchanged) for anything else.
    fn plain_string(&mut self) -> Option<&'p str> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.pos + 1;
        let end = find_string_special(self.bytes, start);
        if self.bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.pos = end + 1;
        self.text.get(start..end)
    }

    /// A string with escapes (or not a string) at the current position.
    #[cold]
    #[inline(never)]
    fn escaped_string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let start = self.pos;
        let mut at = find_string_special(self.bytes, start);
        let mut out = String::from(self.text.get(start..at)?);
        loop {
            match self.bytes.get(at)? {
                b'"' => {
                    self.pos = at + 1;
                    return Some(out);
                }
                b'\\' => {
                    self.pos = at + 1;
                    out.push(self.escape()?);
                }
                // A control character.
                _ => return None,
            }
            let from = self.pos;
            at = find_string_special(self.bytes, from);
            out.push_str(self.text.get(from..at)?);
        }
    }

    /// The character of an escape after its backslash. serde_json refuses
    /// unpaired surrogates in a string it decodes; so does this (by
    /// deferring to it).
    fn escape(&mut self) -> Option<char> {
        Some(match self.next()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                if (0xD800..0xDC00).contains(&unit) {
                    self.literal(b"\\u")?;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                } else {
                    // None for a lone trailing surrogate.
                    char::from_u32(unit)?
                }
            }
            _ => return None,
        })
    }

    /// Four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Option<u32> {
        let hex = self.bytes.get(self.pos..self.pos + 4)?;
        let mut unit = 0;
        for &digit in hex {
            unit = unit * 16 + char::from(digit).to_digit(16)?;
        }
        self.pos += 4;
        Some(unit)
    }

    /// Skips one JSON value, validating it as serde_json's `ignore_value`
    /// does, and returns its text without surrounding whitespace.
    fn skip_value(&mut self) -> Option<&'p str> {
        self.skip_whitespace();
        let start = self.pos;
        // One bit per open container, set for objects.
        let mut objects: u64 = 0;
        let mut depth: u32 = 0;
        loop {
            // At a value.
            match self.peek()? {
                open @ (b'{' | b'[') => {
                    let is_object = open == b'{';
                    if depth == MAX_SKIP_DEPTH {
                        return None;
                    }
                    self.pos += 1;
                    objects = objects << 1 | u64::from(is_object);
                    depth += 1;
                    self.skip_whitespace();
                    let close = if is_object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        objects >>= 1;
                        depth -= 1;
                    } else {
                        if is_object {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.pos += 1;
                    self.skip_string_rest()?;
                }
                b'n' => self.literal(b"null")?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // After a value: close containers until one continues.
            loop {
                if depth == 0 {
                    return self.text.get(start..self.pos);
                }
                self.skip_whitespace();
                let in_object = objects & 1 == 1;
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
                objects >>= 1;
                depth -= 1;
            }
        }
    }

    /// An object member's key and colon, leaving whitespace before the value.
    fn member_key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.skip_string_rest()?;
        self.skip_whitespace();
        self.eat(b':')?;
        self.skip_whitespace();
        Some(())
    }

    /// The rest of a string after its opening quote, escapes validated.
    fn skip_string_rest(&mut self) -> Option<()> {
        loop {
            let at = find_string_special(self.bytes, self.pos);
            match self.bytes.get(at)? {
                b'"' => {
                    self.pos = at + 1;
                    return Some(());
                }
                b'\\' => {
                    self.pos = at + 1;
                    match self.next()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        // Any code unit: serde_json checks surrogates only in
                        // strings it decodes, not in values it skips.
                        b'u' => {
                            self.hex4()?;
                        }
                        _ => return None,
                    }
                }
                // A control character.
                _ => return None,
            }
        }
    }

    /// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.some_digits()?;
        }
        // A digit right after a leading `0` is an error, not a new token.
        if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if !self.bytes.get(self.pos..)?.starts_with(word) {
            return None;
        }
        self.pos += word.len();
        Some(())
    }

    fn skip_whitespace(&mut self) {
        while self
            .peek()
            .is_some_and(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        if self.peek() != Some(byte) {
            return None;
        }
        self.pos += 1;
        Some(())
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Index of the first `"`, `\` or control character at or after `from`
/// (`bytes.len()` if none), eight bytes at a time.
fn find_string_special(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let mask = special_bytes(u64::from_le_bytes(word));
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

/// High bit set in each byte of `word` that is `"`, `\` or below 0x20. The
/// borrow of the subtraction can also mark bytes above a marked one, never
/// below, so the lowest mark is exact.
fn special_bytes(word: u64) -> u64 {
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_quote = quote.wrapping_sub(ONES) & !quote;
    let zero_backslash = backslash.wrapping_sub(ONES) & !backslash;
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (zero_quote | zero_backslash | control) & HIGHS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_bytes_are_found_at_every_position() {
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

    fn decodes(text: &str) -> bool {
        decode_metric(text, &mut DimensionList::new()).is_some()
    }

    #[test]
    fn common_messages_take_the_fast_path() {
        assert!(decodes(
            r#"{"metric": {"name": "m", "dimensions": {"a": "b"}, "timestamp": 1, "value": 1.5, "value_meta": {"x": [1, "\"", {}]}}, "meta": {"region": "r", "tenantId": "t"}, "creation_time": 1}"#
        ));
        assert!(decodes(r#" {"metric":null,"meta":null} "#));
    }

    #[test]
    fn escapes_are_decoded_like_serde() {
        let mut dimensions = DimensionList::new();
        let text = r#"{"metric": {"name": "a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "dimensions": {"k\u0041": "v"}}}"#;
        let envelope = decode_metric(text, &mut dimensions);
        let name = envelope.and_then(|e| e.metric).and_then(|m| m.name);
        assert_eq!(
            name.map(|t| t.0.into_owned()).as_deref(),
            Some("a\"\\/\u{8}\u{c}\n\r\té😀")
        );
        assert_eq!(dimensions[0].0, "kA");
    }

    #[test]
    fn anything_unusual_is_left_to_serde() {
        for text in [
            r#"{"metric": {"name": "a\ud800b"}}"#,
            r#"{"metric": {"name": "a\udc00b"}}"#,
            r#"{"metric": {"name": "a\ud800\u0041"}}"#,
            r#"{"meta": {"region": "r", "region": "s"}}"#,
            r#"{"x": 01}"#,
            r#"{"x": 1.}"#,
            r#"{"x": "\q"}"#,
            r#"{"x": [1,]}"#,
            r#"{"x": {"a" 1}}"#,
            r#"{} x"#,
            "{\"x\": \"\u{1}\"}",
            r#"{"metric": {"dimensions": {"a": null}}}"#,
        ] {
            assert!(!decodes(text), "{text}");
        }
    }
}
