//! A Monasca event message → one `_bulk` item: the document the reference's
//! events repository (monasca-persister 9.0.0, `elasticsearch/events_repository.py`)
//! creates, in the index it creates it in, under an id of our own.
//!
//! The reference reads `event.event_type`, `event.timestamp`,
//! `event.payload`, `meta.project_id` and `event.dimensions` (in that
//! order; a missing one drops the message) and creates
//! `{project_id, @timestamp, event_type, payload, dimensions}` in the index
//! `<index_name>-<project_id>-<date>`, the date being the first ten
//! characters of the timestamp read with `strptime('%Y-%m-%d')`, or today's
//! (local) date when that fails. The values are re-serialised as Python's
//! `json.dumps(json.loads(...))` writes them (a repeated key keeps its last
//! value, integers keep all their digits), so the stored `_source` is the
//! reference's up to the escaping of non-ASCII characters.
//!
//! Ours: the date is fixed when the message is read, so a replay after
//! midnight goes to the same index; the item is an `index` action with the
//! id `<topic>:<partition>:<offset>:<hash of the message>`, so writing it
//! again (after a crash) overwrites the same document instead of adding a
//! second one, and a recreated topic whose offsets start again at 0 does not
//! overwrite older events with newer ones.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate};
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::transform::pyjson;
use crate::transform::pynum::FloatRepr;
use crate::transform::Rejection;

/// Where an event message was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSource<'a> {
    /// Kafka topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Digits Python 3.11's `int()` gives up on (its default
/// `sys.get_int_max_str_digits()`): `json.loads` raises for longer integers.
const PYTHON_INT_MAX_DIGITS: usize = 4300;

/// Appends the `_bulk` item of the event message `payload` (an action line
/// and a document line, each ending in `\n`) to `out`, or explains why the
/// reference would not store it. `out` is left as it was on rejection.
pub fn encode(
    index_name: &str,
    source: EventSource<'_>,
    payload: &[u8],
    today: NaiveDate,
    out: &mut Vec<u8>,
) -> Result<(), Rejection> {
    let text = std::str::from_utf8(payload)
        .map_err(|e| Rejection::Malformed(format!("not UTF-8: {e}")))?;
    let message = object(text, None)?;
    let event = object(member(&message, "event", "event")?.get(), Some("event"))?;
    let event_type = member(&event, "event_type", "event.event_type")?;
    let timestamp = member(&event, "timestamp", "event.timestamp")?;
    let event_payload = member(&event, "payload", "event.payload")?;
    let meta = object(member(&message, "meta", "meta")?.get(), Some("meta"))?;
    let project_id = member(&meta, "project_id", "meta.project_id")?;
    let dimensions = member(&event, "dimensions", "event.dimensions")?;

    let project = project_text(project_id.get())?;
    let date = index_date(timestamp.get(), today)?;
    let mut index = String::with_capacity(index_name.len() + project.len() + 12);
    let _ = write!(index, "{index_name}-{project}-{date}");

    let mut document = String::with_capacity(payload.len() + 64);
    document.push_str("{\"project_id\": ");
    python_json(project_id, "meta.project_id", &mut document)?;
    document.push_str(", \"@timestamp\": ");
    python_json(timestamp, "event.timestamp", &mut document)?;
    document.push_str(", \"event_type\": ");
    python_json(event_type, "event.event_type", &mut document)?;
    document.push_str(", \"payload\": ");
    python_json(event_payload, "event.payload", &mut document)?;
    document.push_str(", \"dimensions\": ");
    python_json(dimensions, "event.dimensions", &mut document)?;
    document.push('}');

    let id = document_id(source, payload);
    let action = serde_json::json!({ "index": { "_index": index, "_id": id } });
    out.extend_from_slice(action.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(document.as_bytes());
    out.push(b'\n');
    Ok(())
}

/// The members of a JSON object, a repeated key keeping its last value (as
/// Python's dict does).
type Members<'p> = HashMap<String, &'p RawValue>;

/// The members of the object `raw`, the value of `field` (`None`: the
/// whole message, which is malformed when it is no object).
fn object<'p>(raw: &'p str, field: Option<&'static str>) -> Result<Members<'p>, Rejection> {
    if let Some(field) = field.filter(|_| !raw.trim_start().starts_with('{')) {
        return Err(Rejection::BadValue {
            field,
            detail: format!("{} instead of an object", kind_name(raw)),
        });
    }
    serde_json::from_str(raw).map_err(|e| Rejection::Malformed(e.to_string()))
}

fn member<'p>(
    members: &Members<'p>,
    key: &str,
    field: &'static str,
) -> Result<&'p RawValue, Rejection> {
    members
        .get(key)
        .copied()
        .ok_or(Rejection::MissingField(field))
}

fn kind_name(raw: &str) -> &'static str {
    match raw.trim_start().as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

/// Writes a value as Python's `json.dumps(json.loads(raw))` would.
fn python_json(raw: &RawValue, field: &'static str, out: &mut String) -> Result<(), Rejection> {
    pyjson::write(raw.get(), &[], out).map_err(|e| Rejection::BadValue {
        field,
        detail: e.to_string(),
    })
}

/// `'%s' % project_id` for a string or a number; other JSON values
/// (`None`, `True`, lists, dicts) make index names Elasticsearch refuses,
/// or that only a Python `repr()` could spell, and are refused here.
fn project_text(raw: &str) -> Result<String, Rejection> {
    let bad = |detail: String| Rejection::BadValue {
        field: "meta.project_id",
        detail,
    };
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(raw).map_err(|e| bad(e.to_string())),
        Some(b'-' | b'0'..=b'9') if raw.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) => {
            let x: f64 = raw
                .parse()
                .map_err(|_| bad(format!("{raw} is not a number")))?;
            if !x.is_finite() {
                return Err(bad(format!("{raw} is not a finite number")));
            }
            Ok(FloatRepr::new(x).as_str().to_string())
        }
        Some(b'-' | b'0'..=b'9') => {
            if raw.trim_start_matches('-').len() > PYTHON_INT_MAX_DIGITS {
                return Err(bad(format!(
                    "an integer of more than {PYTHON_INT_MAX_DIGITS} digits"
                )));
            }
            Ok(if raw == "-0" { "0" } else { raw }.to_string())
        }
        _ => Err(bad(format!(
            "{} cannot name an index (a string or a number can)",
            kind_name(raw)
        ))),
    }
}

/// The date part of the index name for the event's raw `timestamp`, as the
/// reference's `_normalize_timestamp` computes it: the first ten characters
/// of a string read as `%Y-%m-%d`, else `today`. A timestamp the reference
/// cannot even measure (a non-zero number, `true`, a list or object of ten
/// or more members) makes it fail on the whole batch; it is refused here.
pub fn index_date(timestamp: &str, today: NaiveDate) -> Result<String, Rejection> {
    let unmeasurable = || Rejection::BadValue {
        field: "event.timestamp",
        detail: format!(
            "{} {timestamp}: the reference fails on it (it has no length to read a date from)",
            kind_name(timestamp)
        ),
    };
    let malformed = |e: serde_json::Error| Rejection::Malformed(e.to_string());
    if pyjson::is_falsy(timestamp) {
        return Ok(python_date_text(today));
    }
    let length = match timestamp.as_bytes().first() {
        Some(b'"') => {
            let text: String = serde_json::from_str(timestamp).map_err(malformed)?;
            return Ok(python_date(&text).unwrap_or_else(|| python_date_text(today)));
        }
        Some(b'[') => serde_json::from_str::<Vec<IgnoredAny>>(timestamp)
            .map_err(malformed)?
            .len(),
        Some(b'{') => serde_json::from_str::<HashMap<String, IgnoredAny>>(timestamp)
            .map_err(malformed)?
            .len(),
        _ => return Err(unmeasurable()),
    };
    if length < 10 {
        Ok(python_date_text(today))
    } else {
        Err(unmeasurable())
    }
}

/// `datetime.strptime(text[0:10], '%Y-%m-%d').strftime('%Y-%m-%d')` in
/// Python 3.11, `None` where that raises: the ten characters must be four
/// decimal digits of any script (`\d`), `-`, a month `01`-`12`, `-` and a
/// day `01`-`31` (also ` 1`-` 9`, or `1`/`2` followed by a digit of any
/// script), valid for the month; year 0 does not exist. The year is
/// written without padding, as glibc's `strftime` does.
pub fn python_date(text: &str) -> Option<String> {
    let mut chars = text.chars();
    let c: Vec<char> = chars.by_ref().take(10).collect();
    if c.len() < 10 {
        return None;
    }
    let mut year = 0u32;
    for &d in &c[0..4] {
        year = year * 10 + u32::from(decimal_value(d)?);
    }
    if c[4] != '-' || c[7] != '-' {
        return None;
    }
    let month = match (c[5], c[6]) {
        ('1', m @ '0'..='2') | ('0', m @ '1'..='9') => c[5].to_digit(10)? * 10 + m.to_digit(10)?,
        _ => return None,
    };
    let day = match (c[8], c[9]) {
        ('3', d @ ('0' | '1')) => 30 + d.to_digit(10)?,
        (t @ ('1' | '2'), d) => t.to_digit(10)? * 10 + u32::from(decimal_value(d)?),
        ('0' | ' ', d @ '1'..='9') => d.to_digit(10)?,
        _ => return None,
    };
    if year == 0 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    Some(python_date_text(date))
}

fn python_date_text(date: NaiveDate) -> String {
    format!("{}-{:02}-{:02}", date.year(), date.month(), date.day())
}

/// The code points of the digit zero of each script in Unicode 14.0.0 (the
/// tables of the reference's Python 3.11): every decimal digit (`\d`,
/// category Nd) is one of these plus 0-9.
const DIGIT_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The value of a decimal digit of any script (Python's `\d` and `int()`).
fn decimal_value(c: char) -> Option<u8> {
    let code = u32::from(c);
    let zero = match DIGIT_ZEROS.binary_search(&code) {
        Ok(i) => DIGIT_ZEROS[i],
        Err(0) => return None,
        Err(i) => DIGIT_ZEROS[i - 1],
    };
    u8::try_from(code - zero).ok().filter(|v| *v < 10)
}

/// `<topic>:<partition>:<offset>:<16 hex digits>`: the same for every
/// delivery of the same message, different for another message that a
/// recreated topic stores at the same offset.
pub fn document_id(source: EventSource<'_>, payload: &[u8]) -> String {
    format!(
        "{}:{}:{}:{:016x}",
        source.topic,
        source.partition,
        source.offset,
        fnv1a64(payload)
    )
}

/// Where the message of a document id (from [`document_id`]) was read.
pub fn source_of_id(id: &str) -> Option<EventSource<'_>> {
    let mut parts = id.rsplitn(4, ':');
    let _hash = parts.next()?;
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    let topic = parts.next()?;
    Some(EventSource {
        topic,
        partition,
        offset,
    })
}

/// FNV-1a, 64 bits: small, fixed forever (ids must not change between
/// versions of the persister), and good enough to tell two messages apart.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    const SOURCE: EventSource<'static> = EventSource {
        topic: "monevents",
        partition: 3,
        offset: 17,
    };

    fn item(payload: &str) -> Result<(serde_json::Value, String), Rejection> {
        let mut out = Vec::new();
        encode(
            "events",
            SOURCE,
            payload.as_bytes(),
            day(2030, 1, 2),
            &mut out,
        )?;
        let text = String::from_utf8(out).expect("UTF-8");
        let mut lines = text.lines();
        let action: serde_json::Value =
            serde_json::from_str(lines.next().expect("action")).expect("action JSON");
        let document = lines.next().expect("document").to_string();
        assert!(lines.next().is_none());
        Ok((action, document))
    }

    #[test]
    fn an_event_becomes_the_references_document_in_its_index() {
        let (action, document) = item(
            r#"{"event": {"event_type": "compute.instance.create.start", "timestamp": "2017-06-01 09:15:11.494606",
                "payload": {"a": 1, "big": 123456789012345678901234567890, "a": 2, "x": 1.0e100},
                "dimensions": {"service": "compute"}}, "meta": {"project_id": "de98fbff"}}"#,
        )
        .expect("stored");
        assert_eq!(action["index"]["_index"], "events-de98fbff-2017-06-01");
        let id = action["index"]["_id"].as_str().expect("id");
        assert!(id.starts_with("monevents:3:17:"), "{id}");
        assert_eq!(
            document,
            r#"{"project_id": "de98fbff", "@timestamp": "2017-06-01 09:15:11.494606", "event_type": "compute.instance.create.start", "payload": {"a": 2, "big": 123456789012345678901234567890, "x": 1e+100}, "dimensions": {"service": "compute"}}"#
        );
    }

    #[test]
    fn missing_fields_are_named_in_the_references_order() {
        let e = item(r#"{"event": {"timestamp": 1}, "meta": {}}"#).unwrap_err();
        assert_eq!(e, Rejection::MissingField("event.event_type"));
        let e =
            item(r#"{"event": {"event_type": "x", "timestamp": null, "payload": {}}, "meta": {}}"#)
                .unwrap_err();
        assert_eq!(e, Rejection::MissingField("meta.project_id"));
        let e = item(
            r#"{"event": {"event_type": "x", "timestamp": null, "payload": {}}, "meta": {"project_id": "p"}}"#,
        )
        .unwrap_err();
        assert_eq!(e, Rejection::MissingField("event.dimensions"));
        let e = item(r#"{"meta": {"project_id": "p"}}"#).unwrap_err();
        assert_eq!(e, Rejection::MissingField("event"));
        assert!(matches!(item("[1]"), Err(Rejection::Malformed(_))));
        assert!(matches!(item("{"), Err(Rejection::Malformed(_))));
        assert!(matches!(
            item(r#"{"event": "x", "meta": {}}"#),
            Err(Rejection::BadValue { field: "event", .. })
        ));
    }

    #[test]
    fn null_values_are_stored_as_the_reference_stores_them() {
        let (action, document) = item(
            r#"{"event": {"event_type": null, "timestamp": null, "payload": null, "dimensions": null}, "meta": {"project_id": 42}}"#,
        )
        .expect("stored");
        assert_eq!(action["index"]["_index"], "events-42-2030-01-02");
        assert_eq!(
            document,
            r#"{"project_id": 42, "@timestamp": null, "event_type": null, "payload": null, "dimensions": null}"#
        );
    }

    #[test]
    fn project_ids_name_indices_as_python_formats_them() {
        assert_eq!(project_text(r#""ab\u0063""#), Ok("abc".to_string()));
        assert_eq!(project_text("-0"), Ok("0".to_string()));
        assert_eq!(project_text("1e3"), Ok("1000.0".to_string()));
        assert!(project_text("null").is_err());
        assert!(project_text("[1]").is_err());
        assert!(project_text("1e999").is_err());
    }

    #[test]
    fn dates_follow_python_strptime() {
        let cases = [
            ("2017-08-07 11:22:43", Some("2017-08-07")),
            ("2017-02-31", None),
            ("2017-02-3", None),
            ("2016-02-29T00", Some("2016-02-29")),
            ("0999-01-05", Some("999-01-05")),
            ("0000-01-01", None),
            ("2017-02- 3", Some("2017-02-03")),
            ("2017-02-1\u{663}", Some("2017-02-13")),
            ("\u{662}\u{660}\u{661}\u{667}-06-01", Some("2017-06-01")),
            ("2017-\u{660}6-01", None),
            ("2017-1-3xx", None),
            ("2017-02-32", None),
            ("foo", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(python_date(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn timestamps_without_a_date_take_today_or_are_refused_like_the_reference_fails() {
        let today = day(2030, 1, 2);
        for raw in [
            "null",
            "false",
            "0",
            "0.0",
            "\"\"",
            "[]",
            "{}",
            "[1,2]",
            "\"foo\"",
            "{\"a\":1}",
        ] {
            assert_eq!(
                index_date(raw, today),
                Ok("2030-01-02".to_string()),
                "{raw}"
            );
        }
        for raw in ["1496308511000", "true", "[1,2,3,4,5,6,7,8,9,10]"] {
            assert!(
                matches!(index_date(raw, today), Err(Rejection::BadValue { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn ids_are_stable_and_lead_back_to_the_message() {
        let a = document_id(SOURCE, b"m1");
        assert_eq!(a, document_id(SOURCE, b"m1"));
        assert_ne!(a, document_id(SOURCE, b"m2"));
        let source = EventSource {
            topic: "mon:events-x",
            ..SOURCE
        };
        let id = document_id(source, b"m");
        assert_eq!(source_of_id(&id), Some(source));
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn every_unicode_digit_has_its_value() {
        assert_eq!(decimal_value('7'), Some(7));
        assert_eq!(decimal_value('\u{669}'), Some(9));
        assert_eq!(decimal_value('\u{1D7FF}'), Some(9));
        assert_eq!(decimal_value('a'), None);
        assert_eq!(decimal_value('\u{65F}'), None);
        assert_eq!(decimal_value('\u{66A}'), None);
    }
}
