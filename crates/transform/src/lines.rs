//! Splits a line-protocol buffer into points exactly where InfluxDB 1.x
//! does, so that chunks, halves and rejected lines line up with what the
//! server sees.
//!
//! A plain split on `\n` is not enough: a string field value may contain a
//! raw newline inside its quotes, and InfluxDB keeps that inside one point.
//! This is a port of `scanLine` from influxdb 1.x `models/points.go`,
//! including its quirks, because agreeing with the server is what matters.

/// One point's line inside a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// Offset of the line's first byte (leading blanks included).
    pub start: usize,
    /// Offset just past the point's text (the terminating `\n` excluded).
    pub end: usize,
    /// Offset of the next line (just past the `\n`, or the buffer length).
    pub next: usize,
    /// Offset of the first non-blank byte: the text InfluxDB quotes in errors.
    pub text_start: usize,
}

impl Line {
    /// The point's text as InfluxDB echoes it in `unable to parse '…'`.
    pub fn text<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.text_start..self.end]
    }
}

/// The lines of `buf` that hold a point: blank lines and `#` comments, which
/// InfluxDB skips, are left out (their bytes stay inside the neighbouring
/// byte ranges, where InfluxDB skips them again).
pub fn split_lines(buf: &[u8]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let end = scan_line(buf, pos);
        let next = (end + 1).min(buf.len());
        let text_start = skip_blanks(buf, pos, end);
        if text_start < end && buf[text_start] != b'#' {
            lines.push(Line {
                start: pos,
                end,
                next,
                text_start,
            });
        }
        pos = end + 1;
    }
    lines
}

/// The byte range covering lines `lines[0] ..= lines[last]`, newline included.
pub fn span(lines: &[Line]) -> std::ops::Range<usize> {
    match (lines.first(), lines.last()) {
        (Some(first), Some(last)) => first.start..last.next,
        _ => 0..0,
    }
}

fn skip_blanks(buf: &[u8], mut i: usize, end: usize) -> usize {
    // influxdb's skipWhitespace also skips NUL bytes.
    while i < end && matches!(buf[i], b' ' | b'\t' | 0) {
        i += 1;
    }
    i
}

/// Offset of the `\n` ending the line that starts at `start` (or `buf.len()`).
///
/// The same decisions as influxdb's `scanLine` (kept below as the test
/// oracle), made faster: before the first unescaped space (measurement and
/// tags, most of a line's bytes) only `\\`, space and newline matter, so
/// `memchr3` skips to them.
fn scan_line(buf: &[u8], start: usize) -> usize {
    let mut i = start;
    while let Some(found) = memchr::memchr3(b'\\', b' ', b'\n', &buf[i..]) {
        i += found;
        match buf[i] {
            b'\\' if i + 2 < buf.len() => i += 2,
            b'\\' => i += 1,
            b'\n' => return i,
            _ => return scan_fields(buf, i),
        }
    }
    buf.len()
}

/// `scanLine` from the first unescaped space on (`fields = true`).
fn scan_fields(buf: &[u8], mut i: usize) -> usize {
    let mut quoted = false;
    // Counting '=' and ',' tells a field value's opening quote from a quote
    // inside a key, exactly as the server decides it.
    let mut equals = 0usize;
    let mut commas = 0usize;
    while i < buf.len() {
        let c = buf[i];
        if c == b'\\' && i + 2 < buf.len() {
            i += 2;
            continue;
        }
        if !quoted && c == b'=' {
            equals += 1;
        } else if !quoted && c == b',' {
            commas += 1;
        } else if c == b'"' && equals > commas {
            quoted = !quoted;
        } else if c == b'\n' && !quoted {
            break;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A literal port of influxdb 1.x `scanLine`, the oracle for `scan_line`.
    fn scan_line_as_influxdb(buf: &[u8], start: usize) -> usize {
        let mut i = start;
        let (mut quoted, mut fields) = (false, false);
        let (mut equals, mut commas) = (0usize, 0usize);
        while i < buf.len() {
            let c = buf[i];
            if c == b'\\' && i + 2 < buf.len() {
                i += 2;
                continue;
            }
            if c == b' ' {
                fields = true;
            }
            if fields {
                if !quoted && c == b'=' {
                    i += 1;
                    equals += 1;
                    continue;
                } else if !quoted && c == b',' {
                    i += 1;
                    commas += 1;
                    continue;
                } else if c == b'"' && equals > commas {
                    i += 1;
                    quoted = !quoted;
                    continue;
                }
            }
            if c == b'\n' && !quoted {
                break;
            }
            i += 1;
        }
        i
    }

    proptest! {
        // Short buffers reach the end-of-buffer cases (an escape in the last
        // two bytes) that long ones almost never do.
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn scan_line_agrees_with_influxdb(
            buf in proptest::collection::vec(prop::sample::select(b"ab =,\"\\\n\t#".to_vec()), 0..14),
            start in 0usize..14,
        ) {
            let start = start.min(buf.len());
            prop_assert_eq!(scan_line(&buf, start), scan_line_as_influxdb(&buf, start));
        }
    }

    fn texts(buf: &str) -> Vec<&str> {
        split_lines(buf.as_bytes())
            .iter()
            .map(|l| std::str::from_utf8(l.text(buf.as_bytes())).unwrap())
            .collect()
    }

    #[test]
    fn splits_on_newlines_and_skips_blank_and_comment_lines() {
        let buf = "a v=1 1\n\n  # comment\n  b v=2 2\nc v=3 3";
        assert_eq!(texts(buf), ["a v=1 1", "b v=2 2", "c v=3 3"]);
        let lines = split_lines(buf.as_bytes());
        assert_eq!(lines[0].start, 0);
        assert_eq!(lines[0].next, 8);
        assert_eq!(lines[1].start, 21);
        assert_eq!(lines[1].text_start, 23);
        assert_eq!(lines[2].next, buf.len());
    }

    #[test]
    fn a_newline_inside_a_quoted_field_value_stays_in_its_point() {
        let buf = "al,t=1 reason=\"a\nb\",x=\"c\" 1000\nal,t=1 reason=\"d\" 2000\n";
        assert_eq!(
            texts(buf),
            [
                "al,t=1 reason=\"a\nb\",x=\"c\" 1000",
                "al,t=1 reason=\"d\" 2000"
            ]
        );
    }

    #[test]
    fn quotes_in_measurement_or_tags_do_not_open_a_string() {
        let buf = "m\"x,t=\"y\" v=1 1\nn v=2 2\n";
        assert_eq!(texts(buf), ["m\"x,t=\"y\" v=1 1", "n v=2 2"]);
    }

    #[test]
    fn escaped_quote_inside_a_string_value_does_not_close_it() {
        let buf = "m v=\"a\\\"\nb\" 1\nn v=2 2\n";
        assert_eq!(texts(buf), ["m v=\"a\\\"\nb\" 1", "n v=2 2"]);
    }

    #[test]
    fn span_covers_whole_lines_with_their_newlines() {
        let buf = b"a v=1 1\nb v=2 2\nc v=3 3\n";
        let lines = split_lines(buf);
        assert_eq!(&buf[span(&lines[1..3])], b"b v=2 2\nc v=3 3\n");
        assert_eq!(span(&[]), 0..0);
    }
}
