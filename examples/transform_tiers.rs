//! Which JSON reader answers for each message, on the traffic the
//! benchmarks use and on the corpora the tests use: the numbers behind the
//! choice of readers in `crates/transform` (ARCHITECTURE.md, transform).
//!
//! ```text
//! cargo run --release --example transform_tiers          # the table
//! cargo run --release --example transform_tiers -- --dump > answers.txt
//! cargo run --release --example transform_tiers -- --run diff 20
//! ```
//!
//! The sources: `bench` (`benches/support/metric_mix.rs`, the mix
//! `cargo bench --bench transform` times), `loadgen` (the load generator's
//! default workload, 20 000 metrics and 200 alarm transitions), `agents`
//! (those metrics with the timestamps agents send, `time.time() * 1000`: a
//! Python float with one to four fraction digits), `diff` (the
//! 3 000 messages of `tests/reference_diff.rs`'s default seed), `compat`
//! (`tests/data/compat/*.jsonl`) and `fuzz` (the committed corpus under
//! `fuzz/corpus/`). Alarm transitions have one reader, serde's; a metric
//! is answered by `direct.rs`, or failing that serde
//! (`monasca_transform::metric_reader`).
//!
//! `--dump` writes every message's answer (line or rejection, in both
//! database modes) and, for each message that is JSON, `pyjson::write` of
//! it with and without key renames, to stdout: two builds whose dumps are
//! equal answer alike on all of it.
//!
//! `--run SOURCE [N [READER [serde]]]` transforms the source's messages N
//! times and prints nothing, for callgrind; READER (`direct`, `serde` or
//! `alarms`) keeps the metrics that reader answers, or the alarm
//! transitions, and `serde` sends the metrics to serde alone
//! (`Transformer::metric_via_serde`). Instructions per message:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*transform_tiers::run*' \
//!     target/release/examples/transform_tiers --run diff 10 direct
//! ```
//!
//! (`Collected` over N times the message count it prints.)

#[allow(dead_code)]
#[path = "../tests/reference/generator.rs"]
mod generator;
#[path = "../benches/support/loadgen_mix.rs"]
mod loadgen_mix;
#[path = "../benches/support/metric_mix.rs"]
mod metric_mix;
/// What `generator.rs` needs of `tests/reference/oracle.rs` (which runs the
/// Python reference).
mod oracle {
    /// Which topic a message is for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        Metric,
        AlarmTransition,
    }
}

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Write as _;
use std::path::Path;

use monasca_loadgen::MessageKind;
use monasca_persister::transform::{metric_reader, pyjson, MetricReader, Transformer};
use oracle::Kind;

/// The seed and message count of `tests/reference_diff.rs`'s CI run.
const DIFF_SEED: u64 = 20;
const DIFF_MESSAGES: usize = 3000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sources = [
        ("bench", bench()),
        ("loadgen", loadgen()),
        ("agents", agents()),
        ("diff", diff()),
        ("compat", compat()),
        ("fuzz", fuzz()),
    ];
    match args.first().map(String::as_str) {
        None => table(&sources),
        Some("--dump") => dump(&sources),
        Some("--run") => {
            let name = args
                .get(1)
                .expect("--run SOURCE [N [READER|alarms [serde]]]");
            let times: usize = args.get(2).map_or(1, |n| n.parse().expect("a count"));
            // A reader's metrics, or the alarm transitions.
            let only = args.get(3).map(|r| match r.as_str() {
                "direct" => Some(MetricReader::Direct),
                "serde" => Some(MetricReader::Serde),
                "alarms" => None,
                other => panic!("a reader (direct, serde) or alarms, not {other:?}"),
            });
            let via_serde = args.get(4).is_some_and(|a| a == "serde");
            let (_, messages) = sources
                .iter()
                .find(|(source, _)| source == name)
                .expect("a source: bench, loadgen, agents, diff, compat or fuzz");
            let messages: Messages = messages
                .iter()
                .filter(|(kind, payload)| match (only, kind) {
                    (None, _) => true,
                    (Some(Some(reader)), Kind::Metric) => metric_reader(payload) == reader,
                    (Some(None), Kind::AlarmTransition) => true,
                    (Some(_), _) => false,
                })
                .cloned()
                .collect();
            eprintln!("{} messages", messages.len());
            if !args.iter().any(|a| a == "--generate-only") {
                run(&messages, times, via_serde);
            }
        }
        Some(other) => panic!("unknown argument {other:?}"),
    }
}

/// Kafka message values of one source.
type Messages = Vec<(Kind, Vec<u8>)>;

fn bench() -> Messages {
    (0..metric_mix::MIX)
        .map(|i| (Kind::Metric, metric_mix::metric(i).into_bytes()))
        .collect()
}

fn loadgen() -> Messages {
    loadgen_mix::messages(20_000, Some(200))
        .into_iter()
        .map(|message| {
            let kind = match message.kind {
                MessageKind::Metric => Kind::Metric,
                MessageKind::AlarmTransition => Kind::AlarmTransition,
            };
            (kind, message.payload)
        })
        .collect()
}

/// The load generator's metrics with a fraction after each timestamp's
/// digits, as `repr(time.time() * 1000)` has (1 to 4 digits).
fn agents() -> Messages {
    const KEY: &[u8] = b"\"timestamp\": ";
    loadgen()
        .into_iter()
        .filter(|(kind, _)| *kind == Kind::Metric)
        .enumerate()
        .map(|(i, (kind, payload))| {
            let at = payload
                .windows(KEY.len())
                .position(|w| w == KEY)
                .expect("a timestamp")
                + KEY.len();
            let end = at
                + payload[at..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
            let digits = format!("{:04}", 1 + i * 7919 % 9999);
            let fraction = format!(".{}", &digits[..1 + i % 4]);
            let mut message = payload[..end].to_vec();
            message.extend_from_slice(fraction.as_bytes());
            message.extend_from_slice(&payload[end..]);
            (kind, message)
        })
        .collect()
}

fn diff() -> Messages {
    let mut generator = generator::Generator::new(DIFF_SEED);
    (0..DIFF_MESSAGES)
        .map(|_| {
            let generated = generator.message();
            (generated.kind, generated.payload)
        })
        .collect()
}

fn compat() -> Messages {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compat");
    [
        ("metrics.jsonl", Kind::Metric),
        ("alarm_transitions.jsonl", Kind::AlarmTransition),
    ]
    .into_iter()
    .flat_map(|(file, kind)| {
        let text = std::fs::read(dir.join(file)).expect("the compat corpus");
        text.split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| (kind, line.to_vec()))
            .collect::<Vec<_>>()
    })
    .collect()
}

fn fuzz() -> Messages {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    [
        ("transform_metric", Kind::Metric),
        ("transform_alarm", Kind::AlarmTransition),
    ]
    .into_iter()
    .flat_map(|(target, kind)| {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(target))
            .expect("the fuzz corpus")
            .map(|entry| entry.expect("a corpus file").path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(move |file| (kind, std::fs::read(file).expect("a corpus file")))
    })
    .collect()
}

fn table(sources: &[(&str, Messages)]) {
    println!("source   messages   metrics: direct   serde   alarms (serde)");
    for (name, messages) in sources {
        let mut readers: BTreeMap<MetricReader, usize> = BTreeMap::new();
        let mut alarms = 0;
        for (kind, payload) in messages {
            match kind {
                Kind::Metric => *readers.entry(metric_reader(payload)).or_default() += 1,
                Kind::AlarmTransition => alarms += 1,
            }
        }
        let metrics: usize = readers.values().sum();
        let share = |reader| {
            let n = readers.get(&reader).copied().unwrap_or(0);
            format!("{n} ({:.1} %)", 100.0 * n as f64 / metrics.max(1) as f64)
        };
        println!(
            "{name:8} {:8}   {metrics:7}: {}   {}   {alarms}",
            messages.len(),
            share(MetricReader::Direct),
            share(MetricReader::Serde),
        );
    }
}

fn dump(sources: &[(&str, Messages)]) {
    let transformers = [false, true].map(|db_per_tenant| Transformer::new("mon", db_per_tenant));
    let mut stdout = std::io::stdout().lock();
    for (name, messages) in sources {
        for (i, (kind, payload)) in messages.iter().enumerate() {
            for transformer in &transformers {
                let mut out = Vec::new();
                let answer = match kind {
                    Kind::Metric => transformer.metric(payload, &mut out),
                    Kind::AlarmTransition => transformer.alarm_transition(payload, &mut out),
                };
                writeln!(
                    stdout,
                    "{name} {i} {answer:?} {:?}",
                    String::from_utf8_lossy(&out)
                )
                .expect("stdout");
            }
            let Ok(raw) = serde_json::from_slice::<&serde_json::value::RawValue>(payload) else {
                continue;
            };
            for renames in [&[][..], &[("metrics", "m"), ("dimensions", "d")][..]] {
                let mut json = String::new();
                let written = pyjson::write(raw.get(), renames, &mut json);
                writeln!(stdout, "{name} {i} pyjson {written:?} {json:?}").expect("stdout");
            }
        }
    }
}

#[inline(never)]
fn run(messages: &Messages, times: usize, via_serde: bool) {
    let transformer = Transformer::new("mon", false);
    let mut out = Vec::with_capacity(1 << 21);
    for _ in 0..times {
        for (kind, payload) in messages {
            if out.len() > 1 << 20 {
                out.clear();
            }
            let answer = match kind {
                Kind::Metric if via_serde => {
                    transformer.metric_via_serde(black_box(payload), &mut out)
                }
                Kind::Metric => transformer.metric(black_box(payload), &mut out),
                Kind::AlarmTransition => transformer.alarm_transition(black_box(payload), &mut out),
            };
            let _ = black_box(answer);
        }
    }
    black_box(&out);
}
