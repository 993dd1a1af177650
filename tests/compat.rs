//! The compatibility corpus (`tests/data/compat/*.jsonl` with the
//! reference's `*.expected`): every message must give the reference's point
//! (compared parsed, floats as numbers, string fields byte for byte) and the
//! reference's tenant, every error row a typed rejection; and a real influxd
//! must store identical points for our line and the reference's line.

mod support;

use std::borrow::Cow;
use std::path::Path;

use monasca_persister::config::InfluxSection;
use monasca_persister::transform::{Rejection, Target, Transformer};
use support::influxd::Influxd;
use support::points::{parse_line, Field, Point};

/// Which Transformer entry point a corpus file feeds.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Metric,
    AlarmTransition,
}

/// One corpus line and what the reference made of it.
struct Case {
    file: String,
    number: usize,
    kind: Kind,
    message: String,
    expected: Expected,
}

enum Expected {
    Line { line: String, tenant: String },
    Error(String),
}

fn corpus() -> Vec<Case> {
    let dir = support::compat_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.jsonl in {}", dir.display());
    files.iter().flat_map(|path| cases_of(path)).collect()
}

fn cases_of(path: &Path) -> Vec<Case> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kind = if name.contains("alarm") {
        Kind::AlarmTransition
    } else {
        Kind::Metric
    };
    let read = |p: &Path| {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    };
    let messages = read(path);
    let expected = read(&path.with_extension("expected"));
    let messages: Vec<&str> = messages.lines().collect();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(
        messages.len(),
        expected.len(),
        "{name}: line counts of .jsonl and .expected differ"
    );
    messages
        .iter()
        .zip(expected)
        .enumerate()
        .map(|(i, (message, expected))| {
            let row: serde_json::Value = serde_json::from_str(expected)
                .unwrap_or_else(|e| panic!("{name}:{}: {e}: {expected:?}", i + 1));
            let text = |key: &str| row[key].as_str().map(str::to_string);
            let expected = match (text("line"), text("tenant"), text("error")) {
                (Some(line), Some(tenant), None) => Expected::Line { line, tenant },
                (None, None, Some(error)) => Expected::Error(error),
                _ => panic!(
                    "{name}:{}: neither a line and tenant nor an error: {row}",
                    i + 1
                ),
            };
            Case {
                file: name.clone(),
                number: i + 1,
                kind,
                message: message.to_string(),
                expected,
            }
        })
        .collect()
}

fn transformer(db_per_tenant: bool) -> Transformer {
    Transformer::new(&InfluxSection {
        database_name: "mon".into(),
        db_per_tenant,
        ..InfluxSection::default()
    })
}

fn run<'p>(
    t: &Transformer,
    kind: Kind,
    message: &'p str,
    out: &mut Vec<u8>,
) -> Result<Target<'p>, Rejection> {
    match kind {
        Kind::Metric => t.metric(message.as_bytes(), out),
        Kind::AlarmTransition => t.alarm_transition(message.as_bytes(), out),
    }
}

/// Checks that a rejection is the typed counterpart of the reference's error.
fn assert_rejection_matches(case: &Case, python_error: &str, rejection: &Rejection) {
    let (exception, detail) = python_error.split_once(": ").unwrap_or((python_error, ""));
    let ok = match exception {
        "JSONDecodeError" => matches!(rejection, Rejection::Malformed(_)),
        "KeyError" => match rejection {
            Rejection::MissingField(path) => {
                path.rsplit('.').next() == Some(detail.trim_matches('\''))
            }
            _ => false,
        },
        "ValueError" | "TypeError" => matches!(rejection, Rejection::BadValue { .. }),
        _ => false,
    };
    assert!(
        ok,
        "{}:{}: reference says {python_error:?}, we rejected with {rejection:?}",
        case.file, case.number
    );
}

#[test]
fn corpus_lines_match_the_reference_point_for_point() {
    let cases = corpus();
    let shared = transformer(false);
    let per_tenant = transformer(true);
    let mut lines = 0;
    for case in &cases {
        let mut out = Vec::new();
        let result = run(&shared, case.kind, &case.message, &mut out);
        match (&case.expected, result) {
            (Expected::Line { line, tenant }, Ok(target)) => {
                assert_eq!(target, Target::Shared, "{}:{}", case.file, case.number);
                let ours = String::from_utf8(out)
                    .unwrap_or_else(|e| panic!("{}:{}: not UTF-8: {e}", case.file, case.number));
                let body = ours.strip_suffix('\n').unwrap_or_else(|| {
                    panic!(
                        "{}:{}: line must end in \\n: {ours:?}",
                        case.file, case.number
                    )
                });
                assert!(
                    !body.contains('\n'),
                    "{}:{}: more than one line: {ours:?}",
                    case.file,
                    case.number
                );
                let want = parse_line(line).unwrap_or_else(|e| {
                    panic!("{}:{}: reference line: {e}", case.file, case.number)
                });
                let got = parse_line(body)
                    .unwrap_or_else(|e| panic!("{}:{}: our line: {e}", case.file, case.number));
                assert_eq!(
                    got, want,
                    "{}:{}\n ours: {body}\n  ref: {line}",
                    case.file, case.number
                );

                let mut out = Vec::new();
                let target = run(&per_tenant, case.kind, &case.message, &mut out);
                assert_eq!(
                    target,
                    Ok(Target::Tenant(Cow::Borrowed(tenant.as_str()))),
                    "{}:{}",
                    case.file,
                    case.number
                );
                assert_eq!(
                    per_tenant.database(&Target::Tenant(tenant.into())),
                    format!("mon_{tenant}")
                );
                lines += 1;
            }
            (Expected::Error(python_error), Err(rejection)) => {
                assert!(
                    out.is_empty(),
                    "{}:{}: output left behind on rejection",
                    case.file,
                    case.number
                );
                assert_rejection_matches(case, python_error, &rejection);
            }
            (Expected::Line { line, .. }, Err(rejection)) => {
                panic!(
                    "{}:{}: reference writes {line:?}, we rejected: {rejection}",
                    case.file, case.number
                )
            }
            (Expected::Error(python_error), Ok(_)) => panic!(
                "{}:{}: reference fails with {python_error:?}, we wrote {:?}",
                case.file,
                case.number,
                String::from_utf8_lossy(&out)
            ),
        }
    }
    assert!(lines >= 30, "only {lines} corpus lines compared");
}

#[test]
fn line_parser_of_this_test_tells_points_apart() {
    let a = parse_line(r#"m,k=a\ b v=1.5,s="x\"y" 10"#);
    assert_eq!(
        a,
        Ok(Point {
            measurement: "m".into(),
            tags: vec![("k".into(), "a\\ b".into())],
            fields: vec![
                ("v".into(), Field::Float(1.5)),
                ("s".into(), Field::Str("x\\\"y".into()))
            ],
            timestamp: 10,
        })
    );
    assert_eq!(parse_line("m v=0.0 1"), parse_line("m v=0 1"));
    assert_ne!(parse_line("m v=1 1"), parse_line("m v=1 2"));
    assert_ne!(parse_line(r#"m s="a" 1"#), parse_line(r#"m s="b" 1"#));
    assert!(parse_line("m 1").is_err());
}

/// Everything influxd stores in `db`, as its JSON answer.
fn stored_points(influx: &Influxd, db: &str) -> serde_json::Value {
    let answer = influx.query(Some(db), "SELECT * FROM /.*/ GROUP BY *");
    assert!(
        answer["results"][0]["error"].is_null(),
        "query {db}: {answer}"
    );
    answer["results"][0]["series"].clone()
}

#[test]
fn influxd_stores_the_same_points_for_our_lines_and_the_reference_lines() {
    let influx = Influxd::start();
    let t = transformer(false);
    let mut compared = 0;
    for (i, case) in corpus().iter().enumerate() {
        let Expected::Line { line, .. } = &case.expected else {
            continue;
        };
        let mut out = Vec::new();
        run(&t, case.kind, &case.message, &mut out)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", case.file, case.number));
        let ours = String::from_utf8(out).unwrap_or_default();
        // Each case in its own pair of databases: many corpus points share a
        // series and timestamp and would overwrite each other.
        let (our_db, reference_db) = (format!("ours_{i}"), format!("reference_{i}"));
        for (db, body) in [(&our_db, ours.as_str()), (&reference_db, line.as_str())] {
            influx.query(None, &format!("CREATE DATABASE {db}"));
            let (status, answer) = influx.write_lines(db, body);
            assert_eq!(
                status, 204,
                "{}:{}: influxd refused {body:?} in {db}: {answer}",
                case.file, case.number
            );
        }
        let (got, want) = (
            stored_points(&influx, &our_db),
            stored_points(&influx, &reference_db),
        );
        assert!(
            want.as_array().is_some_and(|s| !s.is_empty()),
            "{}:{}: reference line stored nothing",
            case.file,
            case.number
        );
        assert_eq!(
            got, want,
            "{}:{}: influxd stored different points",
            case.file, case.number
        );
        compared += 1;
    }
    assert!(compared >= 30, "only {compared} corpus lines round-tripped");
}
