//! The compatibility corpus (`tests/data/compat/*.jsonl` with the
//! reference's `*.expected`, see its README): every message must be stored
//! as the reference stores it — the same points in a real influxd, the same
//! tenant — or differ by a deliberate deviation whose reason holds (the
//! judge of the differential test, `tests/reference/judge.rs`), and the
//! corpus must hold a case of every deviation; every message the reference
//! drops must be a typed rejection of the matching kind.

mod support;

#[allow(dead_code)]
#[path = "reference/judge.rs"]
mod judge;
#[allow(dead_code)]
#[path = "reference/oracle.rs"]
mod oracle;

use std::collections::BTreeSet;
use std::path::Path;

use judge::{Case, Deviation, Verdict};
use monasca_persister::transform::{Rejection, Target, Transformer};
use oracle::{Kind, Outcome};
use support::influxd::Influxd;
use support::points::{parse_line, Field, Point};

/// One corpus message: where it is, and the judge's case.
struct Row {
    file: String,
    number: usize,
    case: Case,
}

fn corpus() -> Vec<Row> {
    let dir = support::compat_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.jsonl in {}", dir.display());
    files.iter().flat_map(|path| rows_of(path)).collect()
}

fn transformer(db_per_tenant: bool) -> Transformer {
    Transformer::new("mon", db_per_tenant)
}

fn rows_of(path: &Path) -> Vec<Row> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kind = if name.contains("alarm") {
        Kind::AlarmTransition
    } else {
        Kind::Metric
    };
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    let messages = read(path);
    let expected = String::from_utf8(read(&path.with_extension("expected")))
        .unwrap_or_else(|e| panic!("{name}: .expected is not UTF-8: {e}"));
    let messages: Vec<&[u8]> = messages
        .strip_suffix(b"\n")
        .unwrap_or(&messages)
        .split(|&b| b == b'\n')
        .collect();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(
        messages.len(),
        expected.len(),
        "{name}: line counts of .jsonl and .expected differ"
    );
    let (shared, per_tenant) = (transformer(false), transformer(true));
    messages
        .iter()
        .zip(expected)
        .enumerate()
        .map(|(i, (message, expected))| {
            let row: serde_json::Value = serde_json::from_str(expected)
                .unwrap_or_else(|e| panic!("{name}:{}: {e}: {expected:?}", i + 1));
            let text = |key: &str| row[key].as_str().map(str::to_string);
            let reference = match (text("line"), text("tenant"), text("error")) {
                (Some(line), Some(tenant), None) => Outcome::Line {
                    line: line.into_bytes(),
                    tenant: tenant.into_bytes(),
                    hashable: row["hashable"].as_bool() != Some(false),
                },
                (None, None, Some(error)) => match error.split_once(": ") {
                    Some(("UnicodeEncodeError", detail)) => Outcome::Unencodable(detail.into()),
                    Some((name, detail)) => Outcome::Error {
                        name: name.into(),
                        detail: detail.into(),
                    },
                    None => Outcome::Error {
                        name: error,
                        detail: String::new(),
                    },
                },
                _ => panic!(
                    "{name}:{}: neither a line and tenant nor an error: {row}",
                    i + 1
                ),
            };
            let lenient = text("lenient").map(|line| Outcome::Line {
                line: line.into_bytes(),
                tenant: text("lenient_tenant").unwrap_or_default().into_bytes(),
                hashable: true,
            });
            let run = |t: &Transformer, out: &mut Vec<u8>| match kind {
                Kind::Metric => t.metric(message, out),
                Kind::AlarmTransition => t.alarm_transition(message, out),
            };
            let mut line = Vec::new();
            let ours = run(&shared, &mut line).map(|target| {
                assert_eq!(target, Target::Shared, "{name}:{}", i + 1);
                assert_eq!(
                    line.pop(),
                    Some(b'\n'),
                    "{name}:{}: no final newline",
                    i + 1
                );
                line
            });
            let ours_tenant = judge::tenant_of(run(&per_tenant, &mut Vec::new()));
            Row {
                file: name.clone(),
                number: i + 1,
                case: Case {
                    kind,
                    payload: message.to_vec(),
                    reference,
                    lenient,
                    ours,
                    ours_tenant,
                },
            }
        })
        .collect()
}

#[test]
fn every_corpus_message_is_stored_as_the_reference_stores_it_or_differs_as_documented() {
    let rows = corpus();
    let influx = Influxd::start();
    let cases: Vec<Case> = rows.iter().map(|r| clone_case(&r.case)).collect();
    let verdicts = judge::judge(&cases, &influx);
    let mut unexplained = Vec::new();
    let mut deviations = BTreeSet::new();
    let mut same = 0;
    for (row, verdict) in rows.iter().zip(&verdicts) {
        match verdict {
            Verdict::Same => same += 1,
            Verdict::BothDrop => {}
            Verdict::Deviation(d) => {
                deviations.insert(*d);
            }
            Verdict::Unexplained(why) => unexplained.push(format!(
                "{}:{}: {why}\n  ours: {:?}",
                row.file,
                row.number,
                row.case
                    .ours
                    .as_ref()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
            )),
        }
    }
    assert!(unexplained.is_empty(), "{}", unexplained.join("\n"));
    assert!(same >= 40, "only {same} corpus messages stored alike");
    let every = [
        Deviation::NotFinite,
        Deviation::EmptyTag,
        Deviation::NewlineInSeriesKey,
        Deviation::TrailingBackslash,
        Deviation::LostName,
        Deviation::TimeDimension,
        Deviation::SeriesKeyTooLong,
        Deviation::TimestampOutOfRange,
        Deviation::BadTenant,
        Deviation::NullDimensions,
        Deviation::IntegerDigits,
        Deviation::Nesting,
    ];
    let missing: Vec<_> = every.iter().filter(|d| !deviations.contains(d)).collect();
    assert!(missing.is_empty(), "the corpus has no case of {missing:?}");
}

fn clone_case(case: &Case) -> Case {
    Case {
        kind: case.kind,
        payload: case.payload.clone(),
        reference: case.reference.clone(),
        lenient: case.lenient.clone(),
        ours: case.ours.clone(),
        ours_tenant: case.ours_tenant.clone(),
    }
}

/// Checks that a rejection is the typed counterpart of the reference's error.
fn rejection_matches(name: &str, detail: &str, rejection: &Rejection) -> bool {
    match name {
        "JSONDecodeError" | "UnicodeDecodeError" => matches!(rejection, Rejection::Malformed(_)),
        "KeyError" => matches!(rejection, Rejection::MissingField(path)
            if path.rsplit('.').next() == Some(detail.trim_matches('\''))),
        // A dict subscript of something else (`None['name']`, `5['x']`).
        "TypeError" => matches!(
            rejection,
            Rejection::Malformed(_) | Rejection::BadValue { .. } | Rejection::MissingField(_)
        ),
        "ValueError" | "OverflowError" | "RecursionError" => {
            matches!(
                rejection,
                Rejection::BadValue { .. } | Rejection::NotFinite { .. }
            )
        }
        _ => false,
    }
}

#[test]
fn messages_the_reference_drops_are_rejected_with_the_matching_kind() {
    let mut compared = 0;
    for row in corpus() {
        let (Outcome::Error { name, detail }, Err(rejection)) =
            (&row.case.reference, &row.case.ours)
        else {
            continue;
        };
        assert!(
            rejection_matches(name, detail, rejection),
            "{}:{}: reference says {name}: {detail}, we rejected with {rejection:?}",
            row.file,
            row.number
        );
        compared += 1;
    }
    assert!(compared >= 8, "only {compared} rejections compared");
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
