//! The direct metric path against the serde path it stands in for: on generated metric messages (any key
//! order, repeated keys, escapes, unicode, every JSON number shape, nulls,
//! wrong types, deep nesting), on plain messages with tricky tag text, and
//! on random byte mutations and truncations of them, `Transformer::metric`
//! and `Transformer::metric_via_serde` give the same line bytes or the same
//! `Rejection`. No influxd needed.

use std::cell::Cell;

use monasca_loadgen::{Generator, Limits, Timestamps, Workload};
use monasca_persister::transform::{metric_takes_direct_path, Transformer};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

/// Characters that stress the readers and the line builder: JSON and line
/// protocol syntax, control characters, non-ASCII of 2, 3 and 4 bytes.
const ALPHABET: &[char] = &[
    'a', 'b', 'Z', '0', '9', '_', '.', '-', ' ', ',', '=', '\\', '"', '\'', '#', '/', '{', '}',
    '[', ']', ':', '\n', '\r', '\t', '\0', '\u{1}', '\u{1f}', '\u{7f}', 'é', '名', '\u{2028}',
    '😀',
];

/// Number spellings of every JSON shape, plus a few that are not JSON.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "7",
    "-7",
    "42",
    "1554725987408",
    "9223372036854",
    "9223372036855",
    "-9223372036855",
    "9223372036854775807",
    "-9223372036854775809",
    "123456789012345678901234",
    "1.5",
    "7.50",
    "-0.0",
    "0.1",
    "1.37",
    "4.109999999999999",
    "1554725987408.105",
    "1e3",
    "1E+3",
    "-2.5e-3",
    "5E-1",
    "1e16",
    "1e400",
    "-1e400",
    "0.00001",
    "1.7976931348623157e308",
    "5e-324",
    "123456789012345678.0",
    "01",
    "1.",
    ".5",
    "+1",
    "1e",
    "-",
    "NaN",
    "Infinity",
];

#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Number(&'static str),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
    /// Text written as is (a lone-surrogate escape, nesting, odd spellings).
    Raw(String),
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::collection::vec(prop::sample::select(ALPHABET), 0..=max)
            .prop_map(|chars| chars.into_iter().collect()),
        12 => "[a-z_./ é名-]{1,12}",
        1 => prop::sample::select(&["time", "_region", "_tenant_id", "", "#x", "a\\ b"][..])
            .prop_map(String::from),
    ]
}

fn number() -> impl Strategy<Value = Json> {
    prop::sample::select(NUMBERS).prop_map(Json::Number)
}

fn raw_oddities() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Raw(r#""\ud800""#.into())),
        Just(Json::Raw(r#""\udc00x\ud83d\ude00""#.into())),
        Just(Json::Raw(r#""\u00e9\u0000\/\b\f\n\r\t""#.into())),
        Just(Json::Raw(r#""\x""#.into())),
        Just(Json::Raw(r#""\u12G4""#.into())),
        Just(Json::Raw("\"tab\tinside\"".into())),
        Just(Json::Raw("nul".into())),
        Just(Json::Raw("[1,]".into())),
        Just(Json::Raw("{\"a\":1,}".into())),
        (1usize..200).prop_map(|depth| Json::Raw(format!(
            "{}1{}",
            "[".repeat(depth),
            "]".repeat(depth)
        ))),
        (1usize..200).prop_map(|depth| Json::Raw(format!(
            "{}{}",
            "{\"k\": ".repeat(depth),
            "}".repeat(depth)
        ))),
    ]
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        number(),
        text(8).prop_map(Json::Str),
        raw_oddities(),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((text(6), inner), 0..4).prop_map(Json::Object),
        ]
    })
}

/// How strings are written: only the escapes JSON requires, every
/// character it may escape, or a mix.
#[derive(Debug, Clone, Copy)]
enum Escaping {
    Minimal,
    All,
    Short,
}

fn write_string(s: &str, escaping: Escaping, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match (c, escaping) {
            ('"', _) => out.push_str("\\\""),
            ('\\', _) => out.push_str("\\\\"),
            ('\n', Escaping::Short | Escaping::All) => out.push_str("\\n"),
            ('\t', Escaping::Short) => out.push_str("\\t"),
            ('/', Escaping::Short) => out.push_str("\\/"),
            (c, _) if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            (c, Escaping::All) if !c.is_ascii() || c == 'a' => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            (c, _) => out.push(c),
        }
    }
    out.push('"');
}

/// Serialisation style of one message.
#[derive(Debug, Clone)]
struct Style {
    escaping: Escaping,
    /// Whitespace written around every token.
    space: &'static str,
}

fn style() -> impl Strategy<Value = Style> {
    (
        prop_oneof![
            6 => Just(Escaping::Minimal),
            1 => Just(Escaping::All),
            1 => Just(Escaping::Short),
        ],
        prop_oneof![
            20 => prop::sample::select(&["", " ", "  ", "\n", "\t", "\r\n "][..]),
            1 => Just(" \u{b}"),
        ],
    )
        .prop_map(|(escaping, space)| Style { escaping, space })
}

fn write_json(value: &Json, style: &Style, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(n),
        Json::Str(s) => write_string(s, style.escaping, out),
        Json::Raw(raw) => out.push_str(raw),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    out.push_str(style.space);
                }
                write_json(item, style, out);
            }
            out.push(']');
        }
        Json::Object(entries) => {
            out.push('{');
            out.push_str(style.space);
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    out.push_str(style.space);
                }
                write_string(key, style.escaping, out);
                out.push(':');
                out.push_str(style.space);
                write_json(item, style, out);
            }
            out.push_str(style.space);
            out.push('}');
        }
    }
}

fn field(key: &str, value: impl Strategy<Value = Json>) -> impl Strategy<Value = (String, Json)> {
    let key = key.to_owned();
    value.prop_map(move |v| (key.clone(), v))
}

/// Mostly the right type, sometimes anything.
fn usually(good: impl Strategy<Value = Json>) -> impl Strategy<Value = Json> {
    prop_oneof![30 => good, 1 => Just(Json::Null), 1 => json_value()]
}

fn string_value(max: usize) -> impl Strategy<Value = Json> {
    text(max).prop_map(Json::Str)
}

fn dimensions() -> impl Strategy<Value = Json> {
    prop::collection::vec((text(10), string_value(12)), 0..7).prop_map(Json::Object)
}

fn value() -> impl Strategy<Value = Json> {
    prop_oneof![
        12 => prop::sample::select(&["0", "-7", "42", "1.5", "7.50", "-0.0", "0.1", "1.37", "4.109999999999999", "1e3", "-2.5e-3", "1e16", "0.00001", "123456789012345678.0"][..])
            .prop_map(Json::Number),
        2 => number(),
        1 => prop::sample::select(&[" 1_000.5 ", "nan", "-inf", "7", "abc", "1e3", ""][..])
            .prop_map(|s| Json::Str(s.into())),
        1 => any::<bool>().prop_map(Json::Bool),
    ]
}

fn timestamp() -> impl Strategy<Value = Json> {
    prop_oneof![
        12 => Just(Json::Number("1554725987408")),
        2 => number(),
        1 => prop::sample::select(&["1554725987408", " -12 ", "1_000", "1.5", "x"][..])
            .prop_map(|s| Json::Str(s.into())),
        1 => any::<bool>().prop_map(Json::Bool),
    ]
}

fn value_meta() -> impl Strategy<Value = Json> {
    prop_oneof![
        6 => Just(Json::Null),
        3 => prop::collection::vec((text(6), json_value()), 0..4).prop_map(Json::Object),
        1 => json_value(),
    ]
}

/// Members of an object: the given ones (each maybe repeated or left out),
/// a few unknown ones, shuffled.
fn members(
    known: Vec<BoxedStrategy<(String, Json)>>,
) -> impl Strategy<Value = Vec<(String, Json)>> {
    let known = known
        .into_iter()
        .map(|member| prop::collection::vec(member, 2).boxed())
        .collect::<Vec<_>>();
    let weights = prop::collection::vec(
        prop_oneof![1 => Just(0usize), 40 => Just(1), 2 => Just(2)],
        known.len(),
    );
    (
        known,
        weights,
        prop::collection::vec((text(6), json_value()), 0..2),
    )
        .prop_map(|(candidates, counts, unknown)| {
            let mut out: Vec<(String, Json)> = candidates
                .into_iter()
                .zip(counts)
                .flat_map(|(members, count)| members.into_iter().take(count))
                .collect();
            out.extend(unknown);
            out
        })
        .prop_shuffle()
}

fn metric_object() -> impl Strategy<Value = Json> {
    members(vec![
        field("name", usually(string_value(12))).boxed(),
        field("dimensions", usually(dimensions())).boxed(),
        field("timestamp", timestamp()).boxed(),
        field("value", value()).boxed(),
        field("value_meta", value_meta()).boxed(),
    ])
    .prop_map(Json::Object)
}

fn meta_object() -> impl Strategy<Value = Json> {
    members(vec![
        field("region", usually(string_value(10))).boxed(),
        field("tenantId", usually(string_value(34))).boxed(),
    ])
    .prop_map(Json::Object)
}

fn message() -> impl Strategy<Value = String> {
    let envelope = members(vec![
        field("metric", usually(metric_object())).boxed(),
        field("meta", usually(meta_object())).boxed(),
        field("creation_time", Just(Json::Number("1554725988"))).boxed(),
    ]);
    (envelope, style()).prop_map(|(members, style)| {
        let mut out = String::new();
        write_json(&Json::Object(members), &style, &mut out);
        out
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

const MUTATION_BYTES: &[u8] = &[
    b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'0', b'1', b'-', b'+', b'.', b'e',
    b'n', b'u', b't', b'a', b'/', 0x00, 0x0a, 0x1f, 0x7f, 0x80, 0xbf, 0xc3, 0xe5, 0xf0, 0xff,
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = || prop::sample::select(MUTATION_BYTES);
    prop_oneof![
        4 => (any::<usize>(), byte()).prop_map(|(at, b)| Mutation::Replace(at, b)),
        2 => (any::<usize>(), byte()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        2 => any::<usize>().prop_map(Mutation::Delete),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(message: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = message.as_bytes().to_vec();
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Replace(at, b) => {
                if let Some(slot) = bytes.get_mut(at % len) {
                    *slot = b;
                }
            }
            Mutation::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
            Mutation::Delete(at) => {
                if !bytes.is_empty() {
                    bytes.remove(at % len);
                }
            }
            Mutation::Truncate(at) => bytes.truncate(at % len),
        }
    }
    bytes
}

fn transformers() -> [Transformer; 2] {
    [false, true].map(|db_per_tenant| Transformer::new("mon", db_per_tenant))
}

/// Both decoders on one payload, appending after existing buffer content
/// (a rejection must leave it as it was).
fn same_result(transformers: &[Transformer], payload: &[u8]) -> Result<(), TestCaseError> {
    for t in transformers {
        let mut fast_out = b"previous line\n".to_vec();
        let mut serde_out = fast_out.clone();
        let fast = t.metric(payload, &mut fast_out);
        let serde = t.metric_via_serde(payload, &mut serde_out);
        // Compared as text: a NaN in `Rejection::NotFinite` is unequal to itself.
        prop_assert_eq!(
            format!("{fast:?}"),
            format!("{serde:?}"),
            "payload {:?}",
            String::from_utf8_lossy(payload)
        );
        prop_assert_eq!(
            String::from_utf8_lossy(&fast_out),
            String::from_utf8_lossy(&serde_out),
            "payload {:?}",
            String::from_utf8_lossy(payload)
        );
    }
    Ok(())
}

/// A runner that keeps the seed of every failure in
/// `proptest-regressions/transform_fast_path.txt` and tries those first.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/transform_fast_path.txt",
        ))),
        ..Config::default()
    })
}

#[test]
fn generated_messages_give_the_same_result_on_both_paths() {
    let transformers = transformers();
    let direct = Cell::new(0u32);
    let accepted = Cell::new(0u32);
    let cases = 4000;
    let mut runner = runner(cases);
    let result = runner.run(&message(), |m| {
        direct.set(direct.get() + u32::from(metric_takes_direct_path(m.as_bytes())));
        let ok = transformers[0]
            .metric(m.as_bytes(), &mut Vec::new())
            .is_ok();
        accepted.set(accepted.get() + u32::from(ok));
        same_result(&transformers, m.as_bytes())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (direct, accepted) = (direct.get(), accepted.get());
    println!("direct path {direct}/{cases}, accepted {accepted}/{cases}");
    // The generator must reach the direct path and lines, not just rejections.
    assert!(direct > cases / 40, "direct path taken {direct}/{cases}");
    assert!(accepted > cases / 10, "accepted {accepted}/{cases}");
}

#[test]
fn mutated_messages_give_the_same_result_on_both_paths() {
    let transformers = transformers();
    let strategy = (message(), prop::collection::vec(mutation(), 1..4));
    let result = runner(6000).run(&strategy, |(m, mutations)| {
        same_result(&transformers, &mutate(&m, &mutations))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn every_truncation_of_a_common_message_gives_the_same_result() {
    let transformers = transformers();
    let message = r#"{"metric": {"name": "disk.space_used_perc", "dimensions": {"hostname": "compute-007", "device": "sda1", "mount_point": "/var/lib/nova"}, "timestamp": 1554725987408, "value": 4.109999999999999, "value_meta": {"status": "ok", "detail": "disk \"sda\" at 93%", "n": [1, -2.5e-3, true, null, {}]}}, "meta": {"region": "RegionOne", "tenantId": "0123456789abcdef0123456789abcdef"}, "creation_time": 1554725988}"#;
    assert!(metric_takes_direct_path(message.as_bytes()));
    for end in 0..=message.len() {
        if let Err(e) = same_result(&transformers, &message.as_bytes()[..end]) {
            panic!("truncated at {end}: {e}");
        }
    }
}

#[test]
fn nesting_around_serde_limits_gives_the_same_result() {
    let transformers = transformers();
    for depth in [1, 63, 64, 65, 126, 127, 128, 129, 200] {
        for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
            let nested = format!("{}0{}", open.repeat(depth), close.repeat(depth));
            for message in [
                format!(
                    r#"{{"metric": {{"name": "m", "timestamp": 1, "value": 1, "value_meta": {nested}}}, "meta": {{"region": "r", "tenantId": "t"}}}}"#
                ),
                format!(
                    r#"{{"metric": {{"name": "m", "x": {nested}, "timestamp": 1, "value": 1}}, "meta": {{"region": "r", "tenantId": "t"}}, "y": {nested}}}"#
                ),
            ] {
                if let Err(e) = same_result(&transformers, message.as_bytes()) {
                    panic!("depth {depth}: {e}");
                }
            }
        }
    }
}

/// Tag text of the plain shape (no escapes) that stresses the direct
/// path: bytes tag text escapes, non-ASCII, lengths around its 8, 16 and
/// 32-byte words, names it treats specially and names sharing an
/// eight-byte prefix.
fn plain_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_./ ,=é名😀-]{0,40}",
        2 => "[a-z]{1,3}[ ,=]?[a-z]{0,20}",
        2 => prop::sample::select(&[
            "time", "_region", "_tenant_id", "_tenant_", "_tenant_a", "_tenant_z", "_regio",
            "_region2", "", "#x", "hostname", "hostname2", "hostnam", "hostnamf", "a", "b",
            "\u{7f}", "x y", "x,y", "x=y", " ", "service", "component",
        ][..])
            .prop_map(String::from),
    ]
}

/// `value` spellings around the direct path's short-decimal shortcut: up
/// to 19 significant digits, leading and trailing zeros, magnitudes around
/// 1e-4 and 1e16, exponents, `-0`, integers beyond 2^53 and 2^64, and the
/// shortest texts of random doubles as agents write them.
fn value_number() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::sample::select(NUMBERS).prop_map(String::from),
        3 => "-?(0|[1-9][0-9]{0,18})(\\.[0-9]{1,19})?([eE][+-]?[0-9]{1,3})?",
        3 => "-?(0|[1-9][0-9]{0,8}0{0,10})(\\.0{0,6}[0-9]{0,9}0{0,4})?",
        2 => any::<f64>().prop_map(|x| format!("{x}")),
        2 => (-1e20f64..1e20).prop_map(|x| format!("{x}")),
        2 => (-1.0f64..1.0).prop_map(|x| format!("{x}")),
        1 => (0u32..1_000_000, -8i32..20).prop_map(|(m, e)| format!("{}", f64::from(m) * 10f64.powi(e))),
        1 => any::<f64>().prop_map(|x| format!("{x:e}")),
    ]
}

/// A `value_meta` object of the flat shape the direct path writes itself
/// (plain keys and strings, integers, literals) and of shapes just off it:
/// floats, `-0`, escapes, nesting, repeated keys, many members, odd
/// spacing, long text.
fn flat_value_meta() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => "[a-z_]{0,6}",
        1 => plain_text(),
        1 => prop::sample::select(&["a", "b", "status", "a\\u0062", "a\\\"", "x\\n"][..])
            .prop_map(String::from),
    ];
    let value = prop_oneof![
        4 => plain_text().prop_map(|s| format!("\"{s}\"")),
        3 => prop::sample::select(NUMBERS).prop_map(String::from),
        2 => prop::sample::select(&[
            "true", "false", "null", "-0", "0", "200", "-17", "18446744073709551616",
            "[]", "{}", "[1]", "{\"n\": 1}", "\"\\u00e9\"", "\"a\\\\b\"", "\"\"",
            "1.0", "2.50", "-0.0", "1e2",
        ][..])
            .prop_map(String::from),
        1 => "[a-z ]{100,300}".prop_map(|s| format!("\"{s}\"")),
    ];
    (
        prop::collection::vec((key, value), 1..11),
        prop::sample::select(&["", " ", "\n  "][..]),
    )
        .prop_map(|(members, space)| {
            let members = members
                .iter()
                .map(|(k, v)| format!("{space}\"{k}\"{space}:{space}{v}{space}"))
                .collect::<Vec<_>>()
                .join(",");
            format!("{{{members}}}")
        })
}

fn plain_message() -> impl Strategy<Value = String> {
    (
        plain_text(),
        prop::collection::vec((plain_text(), plain_text()), 0..20),
        prop::sample::select(&[
            "1554725987408", "0", "-0", "7", "-12", "9223372036854", "9223372036855",
            "-9223372036854", "-9223372036855", "9999999999999", "10000000000000", "01",
            "1.0", "1e3", "123456789012345678", "1554725987408.105", "1554725987408.1052",
            "1554725987408.99999999", "-0.5", "-0.0", "9223372036854.5", "9223372036854.9999",
            "-9223372036854.5", "1.5e3", "1.",
        ][..]),
        value_number(),
        prop_oneof![
            1 => prop::sample::select(&[
                "null", "{}", "[]", "0", "false", "\"\"", "{\"a\": [1, 2.50, \"x y\"]}",
                "{ }", "[ ]", "0.0", "\"x\"", "true", "{\"é\": \"名\"}",
            ][..])
                .prop_map(String::from),
            2 => flat_value_meta(),
        ],
        (plain_text(), plain_text()),
        prop::sample::select(&["", " ", "  ", "\n"][..]),
    )
        .prop_map(|(name, dimensions, timestamp, value, value_meta, (region, tenant), space)| {
            let quoted = |s: &str| format!("\"{s}\"");
            let dimensions = dimensions
                .iter()
                .map(|(k, v)| format!("{}:{space}{}", quoted(k), quoted(v)))
                .collect::<Vec<_>>()
                .join(&format!(",{space}"));
            format!(
                "{space}{{\"metric\":{space}{{\"name\":{space}{},{space}\"dimensions\":{space}{{{dimensions}}},{space}\"timestamp\":{space}{timestamp},{space}\"value\":{space}{value},{space}\"value_meta\":{space}{value_meta}}},{space}\"meta\":{space}{{\"region\":{space}{},{space}\"tenantId\":{space}{}}},{space}\"creation_time\":{space}1554725988}}{space}",
                quoted(&name),
                quoted(&region),
                quoted(&tenant),
            )
        })
}

#[test]
fn plain_messages_give_the_same_result_on_both_paths() {
    let transformers = transformers();
    let direct = Cell::new(0u32);
    let cases = 4000;
    let result = runner(cases).run(&plain_message(), |m| {
        direct.set(direct.get() + u32::from(metric_takes_direct_path(m.as_bytes())));
        same_result(&transformers, m.as_bytes())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let direct = direct.get();
    println!("direct path {direct}/{cases}");
    // Most generated messages hold something the direct path leaves to the
    // full path (a name or key it refuses, an odd number, many dimensions).
    assert!(direct > cases / 20, "direct path taken {direct}/{cases}");
}

#[test]
fn mutated_plain_messages_give_the_same_result_on_both_paths() {
    let transformers = transformers();
    let strategy = (plain_message(), prop::collection::vec(mutation(), 1..3));
    let result = runner(4000).run(&strategy, |(m, mutations)| {
        same_result(&transformers, &mutate(&m, &mutations))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The direct path matches keys, separators and whitespace of the layout
/// Python's `json.dumps` writes (`"name": `, `, "`) by whole-word
/// comparisons: every one-byte change, insertion and deletion anywhere in
/// messages of that layout (the load generator's) must still give what
/// serde gives.
#[test]
fn every_one_byte_edit_of_generated_load_gives_the_same_result() {
    let transformers = transformers();
    let limits = Limits {
        metrics: Some(40),
        alarms: None,
    };
    let mut generator = Generator::new(
        Workload::default(),
        limits,
        Timestamps::sequence(1_554_725_987_408),
    )
    .unwrap();
    let messages: Vec<Vec<u8>> = std::iter::from_fn(|| generator.next_message())
        .map(|m| m.payload)
        .collect();
    // One without value_meta, one with, and the longest (most dimensions).
    let plain = messages.first();
    let with_meta = messages
        .iter()
        .find(|m| !m.windows(18).any(|w| w == b"\"value_meta\": null"));
    let longest = messages.iter().max_by_key(|m| m.len());
    let edits: Vec<u8> = MUTATION_BYTES.iter().copied().chain(*b"\t\r\"").collect();
    for message in [plain, with_meta, longest].into_iter().flatten() {
        assert!(metric_takes_direct_path(message));
        for at in 0..message.len() {
            let mut deleted = message.clone();
            deleted.remove(at);
            let mut payloads = vec![deleted];
            for &b in &edits {
                let mut replaced = message.clone();
                replaced[at] = b;
                let mut inserted = message.clone();
                inserted.insert(at, b);
                payloads.extend([replaced, inserted]);
            }
            for payload in payloads {
                if let Err(e) = same_result(&transformers, &payload) {
                    panic!("edit at {at}: {e}");
                }
            }
        }
    }
}

/// Timestamps with a fraction, as agents write `time.time() * 1000`: an
/// integer part over the whole range and beyond its edges, either sign
/// (`-0` too), then 1 to 20 fraction digits, among them runs of nines that
/// round up to the next integer in the float `json.loads` makes.
fn fractional_timestamp() -> impl Strategy<Value = String> {
    const EDGE: i64 = 9_223_372_036_854;
    let int_part = prop_oneof![
        3 => (-EDGE - 2..=EDGE + 2).prop_map(|n| n.to_string()),
        2 => prop::sample::select(
            &[0, 1, 9, 1_554_725_987_408, 9_007_199_254_740, EDGE - 1, EDGE, EDGE + 1][..]
        )
        .prop_flat_map(|n: i64| prop::sample::select(vec![n.to_string(), format!("-{n}")])),
        1 => "[1-9][0-9]{0,12}",
    ];
    let fraction = prop_oneof![
        3 => "[0-9]{1,20}",
        2 => "9{1,20}",
        1 => "9{1,8}[0-9]{0,4}",
        1 => "0{1,15}[0-9]?",
    ];
    (int_part, fraction).prop_map(|(int, fraction)| format!("{int}.{fraction}"))
}

/// A timestamp with a fraction goes the direct path whenever the full path
/// takes it (its `int()` within range), and both write the same line.
#[test]
fn fractional_timestamps_take_the_direct_path_and_give_the_same_line() {
    let transformers = transformers();
    let direct = Cell::new(0u32);
    let cases = 3000;
    let result = runner(cases).run(&fractional_timestamp(), |timestamp| {
        let payload = format!(
            r#"{{"metric": {{"name": "cpu.idle_perc", "dimensions": {{"hostname": "devstack"}}, "timestamp": {timestamp}, "value": 7.5, "value_meta": null}}, "meta": {{"region": "RegionOne", "tenantId": "t1"}}, "creation_time": 1554725988}}"#
        );
        let payload = payload.as_bytes();
        same_result(&transformers, payload)?;
        let accepted = transformers[0]
            .metric_via_serde(payload, &mut Vec::new())
            .is_ok();
        let taken = metric_takes_direct_path(payload);
        prop_assert_eq!(taken, accepted, "timestamp {}", timestamp);
        direct.set(direct.get() + u32::from(taken));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let direct = direct.get();
    println!("direct path {direct}/{cases}");
    assert!(direct > cases / 2, "direct path taken {direct}/{cases}");
}
