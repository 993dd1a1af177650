//! Property tests of the metric transform against a real influxd: arbitrary
//! names, dimensions, regions, values and value_meta objects (unicode,
//! quotes, backslashes, control characters, `=`, `,`, space) never panic,
//! always give lines influxd accepts, and are stored as the original strings
//! under the documented rules (`docs/line-protocol.md`):
//!
//! - measurement and tag text: newline and CR become a space, trailing
//!   backslashes are dropped, and InfluxDB 1.x stores every backslash
//!   doubled (it does not unescape `\\`); influxd also skips tabs and NULs
//!   at the start of a line, so leading ones vanish from measurement names;
//! - empty tag keys/values are omitted; dimensions named `time` and names
//!   that are empty, start with `#` or have a backslash right before a
//!   space, comma, `=` or `"` are rejected;
//! - value_meta is stored as Python's `json.dumps(..., ensure_ascii=False)`.

mod support;

use std::collections::BTreeMap;

use monasca_persister::transform::{Rejection, Transformer};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use support::influxd::Influxd;

/// Characters that stress escaping: separators, quotes, backslashes,
/// control characters, non-ASCII of 2, 3 and 4 bytes, and plain letters.
const ALPHABET: &[char] = &[
    'a', 'b', 'Z', '0', '9', '_', '.', '-', ' ', ',', '=', '\\', '"', '\'', '#', '/', '{', '}',
    '[', ':', '\n', '\r', '\t', '\0', '\u{1}', '\u{8}', '\u{c}', '\u{1f}', '\u{7f}', 'é', 'ü',
    'ｎ', '名', '\u{2028}', '\u{a0}', '😀',
];

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 0..=max)
        .prop_map(|chars| chars.into_iter().collect())
}

/// A JSON value for value_meta, with the raw spelling used in the message
/// (numbers keep alternative spellings) and repeated keys allowed.
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    /// (spelling in the message, Python's json.dumps output)
    Number(&'static str, &'static str),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

const NUMBERS: &[(&str, &str)] = &[
    ("0", "0"),
    ("-0", "0"),
    ("42", "42"),
    ("-7", "-7"),
    ("12345678901234567890123", "12345678901234567890123"),
    ("1.0", "1.0"),
    ("1e0", "1.0"),
    ("0.5", "0.5"),
    ("5E-1", "0.5"),
    ("-2.50", "-2.5"),
    ("1e16", "1e+16"),
    ("10000000000000000.0", "1e+16"),
    ("0.00001", "1e-05"),
    ("123456.789", "123456.789"),
    ("-0.0", "-0.0"),
    ("1e400", "Infinity"),
    ("0.1", "0.1"),
];

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        prop::sample::select(NUMBERS).prop_map(|(raw, py)| Json::Number(raw, py)),
        text(8).prop_map(Json::Str),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((text(6), inner), 0..4).prop_map(Json::Object),
        ]
    })
}

fn value_meta() -> impl Strategy<Value = Option<Json>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Json::Null)),
        6 => prop::collection::vec((text(6), json_value()), 0..5).prop_map(|o| Some(Json::Object(o))),
        1 => json_value().prop_map(Some),
    ]
}

/// A JSON string literal; with `escape_all`, every non-ASCII character and
/// `/` is written as a `\u` escape (surrogate pairs beyond the BMP), so the
/// decoder's unescaping path is exercised too.
fn json_string(s: &str, escape_all: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            '/' if escape_all => out.push_str("\\/"),
            c if escape_all && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_text(value: &Json, escape_all: bool) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(raw, _) => (*raw).into(),
        Json::Str(s) => json_string(s, escape_all),
        Json::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|v| json_text(v, escape_all))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Json::Object(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!(
                    "{}:{}",
                    json_string(k, escape_all),
                    json_text(v, escape_all)
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// Python's `json.dumps(value, ensure_ascii=False)` (simplejson 3.19),
/// written independently of the code under test; `None` where it raises
/// (an infinite float).
fn python_dumps(value: &Json) -> Option<String> {
    Some(match value {
        Json::Null => "null".into(),
        Json::Bool(true) => "true".into(),
        Json::Bool(false) => "false".into(),
        Json::Number(_, "Infinity") => return None,
        Json::Number(_, py) => (*py).into(),
        Json::Str(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Json::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(python_dumps)
                .collect::<Option<Vec<_>>>()?
                .join(", ")
        ),
        Json::Object(entries) => {
            // A dict keeps a repeated key at its first position, with its last value.
            let mut keys: Vec<&String> = Vec::new();
            let mut last: BTreeMap<&String, &Json> = BTreeMap::new();
            for (k, v) in entries {
                if !last.contains_key(k) {
                    keys.push(k);
                }
                last.insert(k, v);
            }
            let body: Vec<String> = keys
                .iter()
                .map(|k| {
                    Some(format!(
                        "{}: {}",
                        python_dumps(&Json::Str((*k).clone()))?,
                        python_dumps(last[k])?
                    ))
                })
                .collect::<Option<_>>()?;
            format!("{{{}}}", body.join(", "))
        }
    })
}

fn python_falsy(value: &Json) -> bool {
    match value {
        Json::Null | Json::Bool(false) => true,
        Json::Number(_, py) => matches!(*py, "0" | "-0.0"),
        Json::Str(s) => s.is_empty(),
        Json::Array(items) => items.is_empty(),
        Json::Object(entries) => entries.is_empty(),
        Json::Bool(true) => false,
    }
}

#[derive(Debug, Clone)]
struct MetricCase {
    name: String,
    region: String,
    dimensions: Vec<(String, String)>,
    value: f64,
    value_as_string: bool,
    value_meta: Option<Json>,
    escape_all: bool,
}

fn metric_case() -> impl Strategy<Value = MetricCase> {
    (
        text(10),
        prop_oneof![Just("RegionOne".to_string()), text(6)],
        prop::collection::vec((text(6), text(8)), 0..7),
        prop_oneof![
            prop::num::f64::NORMAL,
            prop::num::f64::SUBNORMAL,
            prop::num::f64::ZERO,
            -1e6..1e6f64
        ],
        any::<bool>(),
        value_meta(),
        any::<bool>(),
    )
        .prop_map(
            |(name, region, dimensions, value, value_as_string, value_meta, escape_all)| {
                MetricCase {
                    name,
                    region,
                    dimensions,
                    value,
                    value_as_string,
                    value_meta,
                    escape_all,
                }
            },
        )
}

impl MetricCase {
    fn message(&self, timestamp: i64) -> String {
        let e = self.escape_all;
        let dims: Vec<String> = self
            .dimensions
            .iter()
            .map(|(k, v)| format!("{}: {}", json_string(k, e), json_string(v, e)))
            .collect();
        // Rust's `{:?}` of an f64 round-trips, as Python's float() needs.
        let value = if self.value_as_string {
            format!("\" {:?} \"", self.value)
        } else {
            format!("{:?}", self.value)
        };
        let meta = self
            .value_meta
            .as_ref()
            .map_or_else(|| "null".to_string(), |m| json_text(m, e));
        format!(
            r#"{{"metric": {{"name": {}, "dimensions": {{{}}}, "timestamp": {timestamp}, "value": {value}, "value_meta": {meta}}}, "meta": {{"region": {}, "tenantId": "t1"}}, "creation_time": 1}}"#,
            json_string(&self.name, e),
            dims.join(", "),
            json_string(&self.region, e),
        )
    }
}

/// Measurement or tag text after our normalisation (None when nothing is
/// left): a newline becomes a space (a carriage return stays).
fn writable(text: &str) -> Option<String> {
    let text = text.replace('\n', " ");
    let text = text.trim_end_matches('\\');
    (!text.is_empty()).then(|| text.to_string())
}

/// What influxd stores for written tag text: every backslash doubled.
fn as_stored(text: &str) -> String {
    text.replace('\\', "\\\\")
}

/// The point influxd must hold for a case, or None when we must reject it.
#[derive(Debug, PartialEq)]
struct StoredPoint {
    measurement: String,
    tags: BTreeMap<String, String>,
    value: f64,
    value_meta: String,
}

fn expected_point(case: &MetricCase) -> Option<StoredPoint> {
    let name = writable(&case.name)?;
    let significant = name.trim_start_matches(['\t', '\0']);
    let lost_by_influxdb = ["\\ ", "\\,", "\\=", "\\\""]
        .iter()
        .any(|s| name.contains(s));
    if significant.is_empty() || significant.starts_with('#') || lost_by_influxdb {
        return None;
    }
    let mut tags = BTreeMap::new();
    for (k, v) in &case.dimensions {
        let key = writable(k);
        if key.as_deref() == Some("time") {
            return None;
        }
        // The last value of a name counts; an empty one removes the tag.
        match (key, writable(v)) {
            (Some(key), _) if key == "_region" || key == "_tenant_id" => {}
            (Some(key), Some(value)) => {
                tags.insert(as_stored(&key), as_stored(&value));
            }
            (Some(key), None) => {
                tags.remove(&as_stored(&key));
            }
            (None, _) => {}
        }
    }
    if let Some(region) = writable(&case.region) {
        tags.insert("_region".into(), as_stored(&region));
    }
    tags.insert("_tenant_id".into(), "t1".into());
    let value_meta = match &case.value_meta {
        Some(meta) if !python_falsy(meta) => python_dumps(meta)?,
        _ => "{}".into(),
    };
    Some(StoredPoint {
        measurement: as_stored(significant),
        tags,
        value: case.value,
        value_meta,
    })
}

/// Every point in `db` by timestamp (ms).
fn stored_points(influx: &Influxd, db: &str) -> BTreeMap<i64, StoredPoint> {
    let answer = influx.query(Some(db), "SELECT * FROM /.*/ GROUP BY *");
    assert!(answer["results"][0]["error"].is_null(), "{answer}");
    let mut points = BTreeMap::new();
    for series in answer["results"][0]["series"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let tags: BTreeMap<String, String> = series["tags"]
            .as_object()
            .map(|t| {
                t.iter()
                    .filter_map(|(k, v)| {
                        v.as_str()
                            .filter(|v| !v.is_empty())
                            .map(|v| (k.clone(), v.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let columns: Vec<String> = series["columns"]
            .as_array()
            .map(|c| {
                c.iter()
                    .map(|c| c.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let column = |row: &serde_json::Value, name: &str| {
            columns
                .iter()
                .position(|c| c == name)
                .map(|i| row[i].clone())
        };
        for row in series["values"].as_array().cloned().unwrap_or_default() {
            let point = StoredPoint {
                measurement: series["name"].as_str().unwrap_or_default().to_string(),
                tags: tags.clone(),
                value: column(&row, "value")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(f64::NAN),
                value_meta: column(&row, "value_meta")
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            };
            points.insert(row[0].as_i64().unwrap_or(i64::MIN), point);
        }
    }
    points
}

fn same_point(got: &StoredPoint, want: &StoredPoint) -> bool {
    // Reading influxd's JSON answer back may be off by an ULP or two
    // (serde_json's default float parsing is not exact for all inputs).
    let ulps = got.value.to_bits().abs_diff(want.value.to_bits());
    let close = got.value == want.value || (got.value.signum() == want.value.signum() && ulps <= 4);
    close
        && got.measurement == want.measurement
        && got.tags == want.tags
        && got.value_meta == want.value_meta
}

#[test]
fn arbitrary_metrics_are_accepted_by_influxd_and_round_trip() {
    let influx = Influxd::start();
    let transformer = Transformer::new("mon", false);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/transform_props_influxd.txt",
        ))),
        ..Config::default()
    });
    let batch_number = std::cell::Cell::new(0);
    let written = std::cell::Cell::new(0);
    let result = runner.run(&prop::collection::vec(metric_case(), 1..40), |cases| {
        batch_number.set(batch_number.get() + 1);
        let db = format!("props_{}", batch_number.get());
        let mut body = Vec::new();
        let mut expected = BTreeMap::new();
        for (i, case) in cases.iter().enumerate() {
            let timestamp = 1_554_725_987_000 + i as i64;
            let message = case.message(timestamp);
            let before = body.len();
            let result = transformer.metric(message.as_bytes(), &mut body);
            match (expected_point(case), result) {
                (Some(point), Ok(_)) => {
                    prop_assert!(body[before..].ends_with(b"\n"));
                    prop_assert_eq!(
                        body[before..].iter().filter(|&&b| b == b'\n').count(),
                        1,
                        "one line per message"
                    );
                    expected.insert(timestamp, point);
                }
                (None, Err(Rejection::BadValue { .. })) => prop_assert_eq!(body.len(), before),
                (want, got) => {
                    return Err(TestCaseError::fail(format!(
                        "{message}\nexpected {want:?}\ngot {got:?}"
                    )));
                }
            }
        }
        if expected.is_empty() {
            return Ok(());
        }
        influx.query(None, &format!("CREATE DATABASE {db}"));
        let body =
            String::from_utf8(body).map_err(|e| TestCaseError::fail(format!("not UTF-8: {e}")))?;
        let (status, answer) = influx.write_lines(&db, &body);
        prop_assert_eq!(
            status,
            204,
            "influxd refused the batch: {}\n{}",
            answer,
            body
        );
        let stored = stored_points(&influx, &db);
        prop_assert_eq!(
            stored.len(),
            expected.len(),
            "stored {:?}\nexpected {:?}\n{}",
            stored,
            expected,
            body
        );
        for (timestamp, want) in &expected {
            let got = stored.get(timestamp);
            prop_assert!(
                got.is_some_and(|got| same_point(got, want)),
                "at {}: stored {:?}, expected {:?}",
                timestamp,
                got,
                want
            );
        }
        written.set(written.get() + expected.len());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let written = written.get();
    assert!(
        written > 200,
        "only {written} points written: the generators reject too much"
    );
}

proptest! {
    #![proptest_config(Config {
        cases: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/transform_props.txt",
        ))),
        ..Config::default()
    })]

    /// Arbitrary bytes, and arbitrary edits of a valid message, never panic
    /// and never leave output behind on rejection.
    #[test]
    fn arbitrary_input_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        cut in 0usize..400,
        insert in prop::sample::select(vec!["", "null", "\"", "{", "}", "[1e999]", "\"\\ud800\"", ",", "\"x\":", "0", "-", "\\"]),
    ) {
        let transformer = Transformer::new("mon", true);
        let valid = r#"{"metric": {"name": "cpu", "dimensions": {"a": "b"}, "timestamp": 1, "value": 1, "value_meta": {"k": [1, {"x": null}]}}, "meta": {"region": "r", "tenantId": "t"}}"#;
        let cut = cut.min(valid.len());
        let mut edited = valid.as_bytes()[..cut].to_vec();
        edited.extend_from_slice(insert.as_bytes());
        edited.extend_from_slice(&valid.as_bytes()[cut..]);
        for payload in [&bytes, &edited] {
            let mut out = b"x".to_vec();
            if transformer.metric(payload, &mut out).is_err() {
                prop_assert_eq!(&out, b"x");
            }
            let mut out = Vec::new();
            if transformer.alarm_transition(payload, &mut out).is_err() {
                prop_assert!(out.is_empty());
            }
            let _ = transformer.event(payload);
        }
    }
}
