//! Line protocol split into points as InfluxDB 1.x splits it, for tests
//! that compare lines point for point: measurement and tags as escaped
//! text, string fields as escaped text, numbers as `f64` (so `0` and `0.0`
//! are the same point).

/// A line-protocol point, split as InfluxDB would: measurement and tags as
/// escaped text, fields with string values as escaped text and numbers as f64.
#[derive(Debug, PartialEq)]
pub struct Point {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, Field)>,
    pub timestamp: i64,
}

#[derive(Debug, PartialEq)]
pub enum Field {
    Str(String),
    Float(f64),
}

/// Splits `text` at the first unescaped byte in `stops`; returns the part
/// before it (escapes kept), the stop byte and the rest after it.
pub fn take_until<'a>(text: &'a str, stops: &[u8]) -> (&'a str, Option<u8>, &'a str) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if stops.contains(&bytes[i]) {
            return (&text[..i], Some(bytes[i]), &text[i + 1..]);
        }
        i += 1;
    }
    (text, None, "")
}

pub fn parse_line(line: &str) -> Result<Point, String> {
    let (measurement, mut stop, mut rest) = take_until(line, b", ");
    let mut tags = Vec::new();
    while stop == Some(b',') {
        let (key, eq, after) = take_until(rest, b"=");
        if eq != Some(b'=') {
            return Err(format!("tag without '=' in {line:?}"));
        }
        let (value, s, r) = take_until(after, b", ");
        tags.push((key.to_string(), value.to_string()));
        stop = s;
        rest = r;
    }
    if stop != Some(b' ') {
        return Err(format!("no field set in {line:?}"));
    }
    let mut fields = Vec::new();
    loop {
        let (key, eq, after) = take_until(rest, b"=");
        if eq != Some(b'=') {
            return Err(format!("field without '=' in {line:?}"));
        }
        let (value, next, r) = if let Some(quoted) = after.strip_prefix('"') {
            let (content, quote, r) = take_until(quoted, b"\"");
            if quote != Some(b'"') {
                return Err(format!("unterminated string field in {line:?}"));
            }
            let next = r.as_bytes().first().copied();
            (
                Field::Str(content.to_string()),
                next,
                r.get(1..).unwrap_or(""),
            )
        } else {
            let (number, next, r) = take_until(after, b", ");
            let x = number
                .trim_end_matches('i')
                .parse::<f64>()
                .map_err(|e| format!("field {number:?}: {e}"))?;
            (Field::Float(x), next, r)
        };
        fields.push((key.to_string(), value));
        rest = r;
        match next {
            Some(b',') => continue,
            Some(b' ') => break,
            _ => return Err(format!("no timestamp in {line:?}")),
        }
    }
    let timestamp = rest
        .parse::<i64>()
        .map_err(|e| format!("timestamp {rest:?}: {e}"))?;
    Ok(Point {
        measurement: measurement.to_string(),
        tags,
        fields,
        timestamp,
    })
}
