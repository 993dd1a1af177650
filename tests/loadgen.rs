//! The load generator: its messages have the Monasca shapes of the compat
//! corpus (`tests/data/compat/*.jsonl`: same keys, same JSON types), our own
//! decoder turns every one into exactly one distinct point, and the real
//! `monasca-persister-load --embedded-broker` binary serves what it produced
//! to a plain Kafka consumer and stops when its stdin closes.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use monasca_loadgen::{Generator, Limits, Message, MessageKind, Mix, Timestamps, Workload};
use monasca_persister::transform::{Target, Transformer};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

/// Objects whose keys are data (dimension names, value_meta content), not structure.
const FREE_FORM: &[&str] = &[
    "metric.dimensions",
    "metric.value_meta",
    "alarm-transitioned.metrics[].dimensions",
    "alarm-transitioned.subAlarms[].subAlarmExpression.dimensions",
];

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The structure of messages: the JSON types seen at each path, and the key
/// set of each structural object.
#[derive(Default, Debug)]
struct Shape {
    types: BTreeMap<String, BTreeSet<&'static str>>,
    keys: BTreeMap<String, BTreeSet<BTreeSet<String>>>,
}

impl Shape {
    fn add(&mut self, path: &str, v: &Value) {
        let mut t = type_name(v);
        // A whole-number float is written as an integer by some producers
        // (`"value": 0`): both are JSON numbers to every Monasca reader.
        if t == "integer" || t == "float" {
            t = "number";
        }
        self.types.entry(path.to_string()).or_default().insert(t);
        let free = FREE_FORM.contains(&path);
        match v {
            Value::Object(map) if !free => {
                self.keys
                    .entry(path.to_string())
                    .or_default()
                    .insert(map.keys().cloned().collect());
                for (k, child) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    self.add(&p, child);
                }
            }
            Value::Object(map) if path.ends_with("dimensions") => {
                for child in map.values() {
                    self.add(&format!("{path}.*"), child);
                }
            }
            Value::Array(items) => {
                for child in items {
                    self.add(&format!("{path}[]"), child);
                }
            }
            _ => {}
        }
    }

    /// Panics unless every type and key set of `self` occurs in `reference`.
    fn assert_within(&self, reference: &Shape, what: &str) {
        for (path, types) in &self.types {
            let allowed = reference.types.get(path).unwrap_or_else(|| {
                panic!("{what}: path {path:?} does not occur in the compat corpus")
            });
            for t in types {
                assert!(
                    allowed.contains(t) || (*t == "null" && allowed.contains("null")),
                    "{what}: {path} is {t}, the compat corpus has {allowed:?}"
                );
            }
        }
        for (path, sets) in &self.keys {
            let allowed = &reference.keys[path];
            for keys in sets {
                assert!(
                    allowed.contains(keys),
                    "{what}: keys of {path:?} are {keys:?}; compat has {allowed:?}"
                );
            }
        }
    }
}

/// The shape of the compat messages of one file that the reference stores
/// (rows that are not errors), and the key sets of its first, complete message.
fn compat_shape(file: &str) -> (Shape, Shape) {
    let dir = support::compat_dir();
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(name).display()))
    };
    let messages = read(&format!("{file}.jsonl"));
    let expected = read(&format!("{file}.expected"));
    let mut all = Shape::default();
    let mut first = Shape::default();
    for (i, (message, expected)) in messages.lines().zip(expected.lines()).enumerate() {
        let row: Value = serde_json::from_str(expected)
            .unwrap_or_else(|e| panic!("{file}.expected:{}: {e}", i + 1));
        if row.get("error").is_some() {
            continue;
        }
        // Messages serde_json cannot read (a lone surrogate in a member
        // Python drops, a byte-order mark) only narrow the shapes allowed.
        let Ok(v) = serde_json::from_str::<Value>(message) else {
            continue;
        };
        if i == 0 {
            first.add("", &v);
        }
        all.add("", &v);
    }
    assert!(!all.types.is_empty(), "{file}: no stored messages");
    (all, first)
}

fn generate(metrics: u64, alarms: u64, workload: Workload) -> Vec<Message> {
    let workload = Workload {
        mix: Mix::exact(alarms, metrics),
        ..workload
    };
    let limits = Limits {
        metrics: Some(metrics),
        alarms: Some(alarms),
    };
    let mut g = Generator::new(workload, limits, Timestamps::before_now(metrics + alarms))
        .expect("valid workload");
    std::iter::from_fn(|| g.next_message()).collect()
}

#[test]
fn messages_have_the_compat_corpus_shapes() {
    let (metric_ref, metric_first) = compat_shape("metrics");
    let (alarm_ref, alarm_first) = compat_shape("alarm_transitions");
    let messages = generate(
        5_000,
        500,
        Workload {
            value_meta_share: 0.3,
            metrics_per_host: 30,
            ..Workload::default()
        },
    );
    let (mut metrics, mut alarms) = (Shape::default(), Shape::default());
    for m in &messages {
        let v: Value = serde_json::from_slice(&m.payload)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&m.payload)));
        match m.kind {
            MessageKind::Metric => metrics.add("", &v),
            MessageKind::AlarmTransition => alarms.add("", &v),
        }
    }
    metrics.assert_within(&metric_ref, "metrics");
    alarms.assert_within(&alarm_ref, "alarm transitions");
    // Every structural object has exactly the keys of the corpus's first,
    // complete message: nothing missing, nothing extra.
    for (generated, first, what) in [
        (&metrics, &metric_first, "metrics"),
        (&alarms, &alarm_first, "alarm transitions"),
    ] {
        for (path, sets) in &generated.keys {
            let reference = first
                .keys
                .get(path)
                .unwrap_or_else(|| panic!("{what}: {path:?} is not in the first compat message"));
            assert_eq!(sets, reference, "{what}: key sets of {path:?}");
        }
        assert_eq!(
            generated.keys.keys().collect::<Vec<_>>(),
            first.keys.keys().collect::<Vec<_>>(),
            "{what}: the same structural objects as the compat message"
        );
    }
    // Both nullable fields occur in both forms.
    assert_eq!(
        metrics.types["metric.value_meta"],
        BTreeSet::from(["null", "object"]),
        "metric.value_meta"
    );
    for path in [
        "alarm-transitioned.link",
        "alarm-transitioned.lifecycleState",
    ] {
        assert_eq!(
            alarms.types[path],
            BTreeSet::from(["null", "string"]),
            "{path}"
        );
    }
}

#[test]
fn every_message_decodes_into_one_distinct_point() {
    let (metric_count, alarm_count) = (20_000u64, 700u64);
    let workload = Workload {
        hosts: 50,
        tenants: 5,
        metrics_per_host: 25,
        value_meta_share: 0.1,
        ..Workload::default()
    };
    let tenant_ids: HashSet<String> = workload.tenant_ids().into_iter().collect();
    let messages = generate(metric_count, alarm_count, workload.clone());
    assert_eq!(messages.len() as u64, metric_count + alarm_count);

    let transformer = Transformer::new("mon", true);
    let mut points = HashSet::new();
    let mut measurements = HashSet::new();
    let mut tenants_seen = HashSet::new();
    let (mut with_meta, mut alarms) = (0u64, 0u64);
    let mut line = Vec::new();
    for m in &messages {
        line.clear();
        let target = match m.kind {
            MessageKind::Metric => transformer.metric(&m.payload, &mut line),
            MessageKind::AlarmTransition => {
                alarms += 1;
                transformer.alarm_transition(&m.payload, &mut line)
            }
        }
        .unwrap_or_else(|e| {
            panic!(
                "our decoder rejects a generated message ({e}): {}",
                String::from_utf8_lossy(&m.payload)
            )
        });
        let Target::Tenant(tenant) = target else {
            panic!("db_per_tenant gives a tenant target");
        };
        assert!(
            tenant_ids.contains(tenant.as_ref()),
            "unknown tenant {tenant}"
        );
        tenants_seen.insert(tenant.into_owned());

        let text = String::from_utf8(line.clone()).expect("UTF-8 line");
        let text = text.strip_suffix('\n').expect("a line ends in a newline");
        assert!(!text.contains('\n'), "one line per message: {text}");
        let (series, rest) = text.split_once(' ').expect("series and fields");
        let (fields, timestamp) = rest.rsplit_once(' ').expect("fields and timestamp");
        let timestamp: i64 = timestamp.parse().expect("integer timestamp");
        assert_eq!(
            timestamp, m.timestamp_ms,
            "the line carries the message's timestamp"
        );
        let measurement = series.split(',').next().unwrap_or_default();
        measurements.insert(measurement.to_string());
        if m.kind == MessageKind::Metric {
            assert!(fields.starts_with("value="), "{text}");
            if !fields.ends_with("value_meta=\"{}\"") {
                with_meta += 1;
            }
        } else {
            assert_eq!(measurement, "alarm_state_history");
        }
        assert!(
            points.insert((series.to_string(), timestamp)),
            "two messages give the same point: {text}"
        );
    }
    assert_eq!(points.len() as u64, metric_count + alarm_count);
    assert_eq!(alarms, alarm_count);
    assert_eq!(with_meta, metric_count / 10, "value_meta share");
    assert_eq!(tenants_seen, tenant_ids, "every tenant has messages");
    let mut expected: HashSet<String> = workload
        .measurement_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    expected.insert("alarm_state_history".into());
    assert_eq!(measurements, expected);
}

/// Reads stdout lines of the load generator until one starts with `prefix`.
fn read_until(lines: &mut impl Iterator<Item = std::io::Result<String>>, prefix: &str) -> String {
    for line in lines.by_ref() {
        let line = line.expect("read the load generator's stdout");
        if line.starts_with(prefix) {
            return line;
        }
    }
    panic!("the load generator's stdout ended before a {prefix} line");
}

#[test]
fn the_binary_serves_what_it_produced_until_stdin_closes() {
    let (metric_count, alarm_count) = (6_000usize, 60usize);
    let mut child = Command::new(env!("CARGO_BIN_EXE_monasca-persister-load"))
        .args([
            "--embedded-broker",
            "--partitions",
            "4",
            "--count",
            &metric_count.to_string(),
            "--alarms",
            &alarm_count.to_string(),
            "--progress",
            "off",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start monasca-persister-load");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let broker = read_until(&mut lines, "BROKER ");
    let address = broker.trim_start_matches("BROKER ").trim().to_string();
    assert!(address.starts_with("127.0.0.1:"), "{broker}");
    let done = read_until(&mut lines, "DONE ");
    let total = metric_count + alarm_count;
    assert!(
        done.contains(&format!(
            " sent={total} acked={total} failed=0 undelivered=0"
        )),
        "{done}"
    );

    for (topic, count) in [
        ("metrics", metric_count),
        ("alarm-state-transitions", alarm_count),
    ] {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &address)
            .set("group.id", format!("loadgen-test-{topic}"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("create a consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let payloads = support::kafka::consume_n(&consumer, count, Duration::from_secs(60));
        assert_eq!(payloads.len(), count, "messages consumed from {topic}");
        let mut timestamps = HashSet::new();
        for p in &payloads {
            let v: Value = serde_json::from_slice(p).expect("JSON payload");
            let ts = if topic == "metrics" {
                &v["metric"]["timestamp"]
            } else {
                &v["alarm-transitioned"]["timestamp"]
            };
            assert!(timestamps.insert(ts.as_i64().expect("integer timestamp")));
        }
        // Nothing beyond what was produced.
        let more = support::kafka::consume_n(&consumer, 1, Duration::from_millis(500));
        assert!(more.is_empty(), "{topic}: more messages than produced");
    }

    // Still serving: closing stdin is what stops it.
    assert!(child.try_wait().expect("poll the child").is_none());
    drop(child.stdin.take());
    let status = support::wait_for(
        "the load generator to exit",
        Duration::from_secs(30),
        || child.try_wait().expect("poll the child"),
    );
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(stderr.contains("stdin closed"), "{stderr}");
}

#[test]
fn a_load_too_big_for_the_embedded_broker_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_monasca-persister-load"))
        .args(["--embedded-broker", "--partitions", "2", "--count", "100k"])
        .stdin(Stdio::null())
        .output()
        .expect("run monasca-persister-load");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("use at least"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("BROKER"),
        "refused before starting a broker"
    );
}
