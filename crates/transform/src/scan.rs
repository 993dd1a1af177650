//! The fast path of metric decoding: one pass over the common shape of a
//! metric message, filling the same [`MetricEnvelope`] and [`DimensionList`]
//! as the serde path in `message.rs`.
//!
//! It answers only when it is sure: `Some` exactly where the serde path
//! would succeed with the same result. Anything it does not handle — a
//! dimension value that is not a string, a `\u` escape of a lone surrogate
//! in a dimension, deep nesting, and every kind of error — is `None`, and
//! the serde path decides, error messages included. So the scanner can stay small; what it
//! must get right is strict JSON for what it accepts (the values it skips
//! or keeps raw are validated as serde_json's `ignore_value` does).

use std::borrow::Cow;

use super::lexer::{find_string_special, Lexer};
use super::message::{DimensionList, JsonKind, Metric, MetricEnvelope, MetricMeta, Object};

/// Decodes a metric message (already checked to be UTF-8) like
/// `message::decode_metric`, or `None` when the serde path must decide.
/// On `None`, `dimensions` may hold partial results.
pub(crate) fn decode_metric<'p>(
    text: &'p str,
    dimensions: &mut DimensionList<'p>,
) -> Option<MetricEnvelope<'p>> {
    let mut scanner = Scanner {
        text,
        lex: Lexer::new(text.as_bytes()),
    };
    let envelope = scanner.envelope(dimensions)?;
    scanner.lex.at_end().then_some(envelope)
}

/// An object key: the index of one the caller named, or another string.
enum Key<'p> {
    Known(usize),
    Other(Cow<'p, str>),
}

struct Scanner<'p> {
    /// The payload, as the text the lexer's positions index.
    text: &'p str,
    lex: Lexer<'p>,
}

impl<'p> Scanner<'p> {
    fn envelope(&mut self, dimensions: &mut DimensionList<'p>) -> Option<MetricEnvelope<'p>> {
        let mut envelope = MetricEnvelope::default();
        self.object(&["metric", "meta"], |s, key| {
            match key {
                Key::Known(0) => {
                    envelope.metric =
                        Some(s.metric(dimensions)?.map_or(Object::Null, Object::Value))
                }
                Key::Known(1) => {
                    envelope.meta = Some(s.meta()?.map_or(Object::Null, Object::Value))
                }
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
                Key::Known(0) => metric.name = Some(s.skip_value()?),
                Key::Known(1) => {
                    dimensions.clear();
                    metric.dimensions = Some(s.dimensions(dimensions)?);
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

    /// Dimensions of string values (anything else goes to serde), or `null`.
    fn dimensions(&mut self, dimensions: &mut DimensionList<'p>) -> Option<JsonKind> {
        if self.null() {
            return Some(JsonKind::Null);
        }
        self.object(&[], |s, key| {
            let Key::Other(key) = key else { return None };
            s.lex.skip_whitespace();
            let value = s.string()?;
            dimensions.push((key, value));
            Some(())
        })?;
        Some(JsonKind::Object)
    }

    fn meta(&mut self) -> Option<Option<MetricMeta<'p>>> {
        if self.null() {
            return Some(None);
        }
        // Any JSON value, the last of a repeated field, as the serde path.
        let mut meta = MetricMeta::default();
        self.object(&["region", "tenantId"], |s, key| {
            match key {
                Key::Known(0) => meta.region = Some(s.skip_value()?),
                Key::Known(_) => meta.tenant_id = Some(s.skip_value()?),
                Key::Other(_) => {
                    s.skip_value()?;
                }
            }
            Some(())
        })?;
        Some(Some(meta))
    }

    /// A JSON object whose keys are matched against `names`; `field`
    /// consumes each value (whitespace before it not yet skipped).
    #[inline(always)]
    fn object<const N: usize>(
        &mut self,
        names: &[&'static str; N],
        mut field: impl FnMut(&mut Self, Key<'p>) -> Option<()>,
    ) -> Option<()> {
        self.lex.skip_whitespace();
        self.lex.eat(b'{')?;
        self.lex.skip_whitespace();
        if self.lex.peek() == Some(b'}') {
            self.lex.pos += 1;
            return Some(());
        }
        loop {
            let key = self.key(names)?;
            self.lex.skip_whitespace();
            self.lex.eat(b':')?;
            field(self, key)?;
            self.lex.skip_whitespace();
            match self.lex.next()? {
                b',' => self.lex.skip_whitespace(),
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
        if let Some(rest) = self.lex.bytes.get(self.lex.pos..) {
            for (i, name) in names.iter().enumerate() {
                let n = name.len();
                if rest.len() > n + 1
                    && rest[0] == b'"'
                    && &rest[1..n + 1] == name.as_bytes()
                    && rest[n + 1] == b'"'
                {
                    self.lex.pos += n + 2;
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
        self.lex.skip_whitespace();
        let is_null = self
            .lex
            .bytes
            .get(self.lex.pos..)
            .is_some_and(|rest| rest.starts_with(b"null"));
        if is_null {
            self.lex.pos += 4;
        }
        is_null
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
        if self.lex.peek() != Some(b'"') {
            return None;
        }
        let start = self.lex.pos + 1;
        let end = find_string_special(self.lex.bytes, start);
        if self.lex.bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.lex.pos = end + 1;
        self.text.get(start..end)
    }

    /// A string with escapes (or not a string) at the current position.
    #[cold]
    #[inline(never)]
    fn escaped_string(&mut self) -> Option<String> {
        self.lex.eat(b'"')?;
        let start = self.lex.pos;
        let mut at = find_string_special(self.lex.bytes, start);
        let mut out = String::from(self.text.get(start..at)?);
        loop {
            match self.lex.bytes.get(at)? {
                b'"' => {
                    self.lex.pos = at + 1;
                    return Some(out);
                }
                b'\\' => {
                    self.lex.pos = at + 1;
                    out.push(self.escape()?);
                }
                // A control character.
                _ => return None,
            }
            let from = self.lex.pos;
            at = find_string_special(self.lex.bytes, from);
            out.push_str(self.text.get(from..at)?);
        }
    }

    /// The character of an escape after its backslash. serde_json refuses
    /// unpaired surrogates in a string it decodes; so does this (by
    /// deferring to it).
    fn escape(&mut self) -> Option<char> {
        Some(match self.lex.next()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.lex.hex4()?;
                if (0xD800..0xDC00).contains(&unit) {
                    self.lex.literal(b"\\u")?;
                    let low = self.lex.hex4()?;
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

    /// Skips one JSON value (see [`Lexer::skip_value`]) and returns its
    /// text without surrounding whitespace.
    fn skip_value(&mut self) -> Option<&'p str> {
        self.lex.skip_whitespace();
        let range = self.lex.skip_value()?;
        self.text.get(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let name = match envelope.and_then(|e| e.metric) {
            Some(Object::Value(metric)) => metric.name,
            _ => None,
        };
        assert_eq!(
            name,
            Some(r#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#),
            "names are kept raw"
        );
        assert_eq!(dimensions[0].0, "kA");
    }

    #[test]
    fn anything_unusual_is_left_to_serde() {
        for text in [
            r#"{"metric": {"dimensions": {"a\ud800b": "v"}}}"#,
            r#"{"metric": {"dimensions": {"k": "a\udc00b"}}}"#,
            r#"{"metric": {"dimensions": {"k": "a\ud800\u0041"}}}"#,
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
