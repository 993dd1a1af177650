//! Events to Elasticsearch, end to end against a real OpenSearch node
//! (`scripts/opensearch`, one per test process) and a real Apache Kafka
//! (`scripts/kafka`, one per test process), compared with what the Python
//! reference's own events repository would create for the same messages.
//! Each test has its own topic, consumer group and index prefix.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use monasca_persister::config::Config;
use monasca_persister::elasticsearch::document;
use monasca_persister::pipeline::{Control, Pipeline};
use monasca_persister::stats::Stats;
use serde_json::Value;

use support::binary::{wait_until, Persister};
use support::kafka::TestKafka;
use support::opensearch::OpenSearch;
use support::real_kafka::{unique_name, RealKafka};
use support::tcp_proxy::{Mode, TcpProxy};
use support::wait_for;

const LONG: Duration = Duration::from_secs(120);

/// Everything a test needs: its topic, group, index prefix and directory.
struct Setup {
    kafka: &'static RealKafka,
    node: &'static OpenSearch,
    topic: String,
    group: String,
    index_name: String,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(partitions: i32) -> Setup {
        support::init_test_logging();
        let node = OpenSearch::shared();
        let kafka = RealKafka::shared();
        let topic = unique_name("monevents");
        kafka.create_topic(&topic, partitions);
        Setup {
            kafka,
            node,
            group: unique_name("events-group"),
            index_name: unique_name("ev").to_lowercase(),
            topic,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Events only, to `hosts`.
    fn config(&self, hosts: &str) -> Config {
        let mut c = Config::default();
        c.kafka_metrics.enabled = false;
        c.kafka_alarm_history.enabled = false;
        let e = &mut c.kafka_events;
        e.enabled = true;
        e.uri = vec![self.kafka.bootstrap()];
        e.topic = self.topic.clone();
        e.group_id = self.group.clone();
        e.batch_size = 50;
        c.elasticsearch.hosts = vec![hosts.to_string()];
        c.elasticsearch.index_name = self.index_name.clone();
        c.elasticsearch.timeout_seconds = 30;
        c.elasticsearch.retry_initial_ms = 50;
        c.elasticsearch.retry_max_ms = 500;
        c.wal.path = self.dir.path().join("wal");
        c.wal.dead_letter_path = self.dir.path().join("dead-letter.jsonl");
        c.wal.commit_interval_ms = 50;
        c.wal.drain_timeout_seconds = 10;
        c.health.enabled = false;
        support::persister::kafka_client_for_tests(&mut c, self.kafka);
        c
    }

    fn pattern(&self) -> String {
        format!("{}-*", self.index_name)
    }

    fn produce(&self, messages: &[Vec<u8>], partition: Option<i32>) {
        for m in messages {
            self.kafka.produce(&self.topic, partition, m);
        }
        self.kafka.flush();
    }

    fn committed(&self, partitions: i32) -> i64 {
        self.kafka
            .committed_offsets(&self.group, &self.topic, partitions)
            .iter()
            .map(|o| o.unwrap_or(0))
            .sum()
    }

    fn dead_letters(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("dead-letter.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("dead letter JSON"))
            .collect()
    }
}

/// An event message as the Monasca events API publishes it.
fn event(project: &str, timestamp: &str, event_type: &str, payload: &str) -> Vec<u8> {
    format!(
        r#"{{"event": {{"event_type": "{event_type}", "timestamp": {timestamp}, "payload": {payload}, "dimensions": {{"service": "compute", "topic": "notification.sample", "hostname": "nova-compute:compute"}}}}, "meta": {{"project_id": "{project}", "user_id": "u1"}}}}"#
    )
    .into_bytes()
}

fn start_pipeline(config: &Config) -> Pipeline {
    Pipeline::start(config, Arc::new(Stats::new()), Arc::new(Control::new()))
        .expect("start the pipeline")
}

// ---------------------------------------------------------------------------
// The reference as an oracle

/// What the reference does with one event message.
#[derive(Debug, Clone, PartialEq)]
enum Reference {
    /// `es.create(index=..., body=...)`.
    Create { index: String, body: Value },
    /// `process_message` raised: logged and dropped.
    Dropped(String),
    /// `write_batch` raised: the reference stops.
    Fails(String),
}

/// Runs the reference's events repository on `requests` (`(kind, bytes)`,
/// kind `E` for a message, `T` for a timestamp) with `today`.
fn reference(index_name: &str, today: NaiveDate, requests: &[(char, &[u8])]) -> Vec<Value> {
    let args = [
        "--index-name".to_string(),
        index_name.to_string(),
        "--today".to_string(),
        today.format("%Y-%m-%d").to_string(),
    ];
    support::reference::run("events.py", &args, requests)
        .iter()
        .map(|answer| {
            serde_json::from_str(answer)
                .unwrap_or_else(|e| panic!("the reference's answer {answer:?}: {e}"))
        })
        .collect()
}

fn reference_events(index_name: &str, today: NaiveDate, messages: &[Vec<u8>]) -> Vec<Reference> {
    let requests: Vec<(char, &[u8])> = messages.iter().map(|m| ('E', m.as_slice())).collect();
    reference(index_name, today, &requests)
        .into_iter()
        .map(|a| {
            if let (Some(index), Some(body)) = (a["index"].as_str(), a["body"].as_str()) {
                Reference::Create {
                    index: index.to_string(),
                    body: serde_json::from_str(body).expect("the reference's body is JSON"),
                }
            } else if let Some(e) = a["error"].as_str() {
                Reference::Dropped(format!("{e}: {}", a["detail"]))
            } else {
                Reference::Fails(format!("{}: {}", a["write_error"], a["detail"]))
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------

/// Events of several projects and days, odd payloads and timestamps: the
/// index of every stored document and its source are those the reference
/// creates; what the reference drops (or fails on) is dead-lettered.
#[test]
fn events_of_several_projects_and_days_are_the_references_documents() {
    let s = Setup::new(3);
    let mut messages = Vec::new();
    let projects = ["de98fbff448f4f278a56e9929db70b03", "p-two", "third_project"];
    let days = ["2017-06-01", "2017-06-02", "2019-12-31"];
    for (i, project) in projects.iter().enumerate() {
        for (j, day) in days.iter().enumerate() {
            for k in 0..4 {
                let payload = format!(
                    r#"{{"instance_id": "i-{i}{j}{k}", "state": "building", "flavor": {{"vcpus": {k}, "memory_mb": 2048.5}}, "tags": ["a", "b"], "n": null}}"#
                );
                let ts = format!("\"{day} 09:15:{k:02}.494606\"");
                messages.push(event(
                    project,
                    &ts,
                    "compute.instance.create.start",
                    &payload,
                ));
            }
        }
    }
    // What Python's json and strptime make of odd input.
    let odd = [
        event(
            "p-two",
            "\"2016-02-29T23:59:59Z\"",
            "leap.day",
            r#"{"a": 1, "a": 2}"#,
        ),
        event(
            "p-two",
            "\"2017-02-31 00:00:00\"",
            "no.such.day",
            r#"{"big": 12345678901234567890123.0e-3, "digits": "123456789012345678901234567890"}"#,
        ),
        event(
            "p-two",
            "null",
            "no.timestamp",
            r#"{"x": 2.5E-3, "y": -0.0, "z": "é\u00e9\n"}"#,
        ),
        event("p-two", "\"\"", "empty.timestamp", "{}"),
        event(
            "third_project",
            "\"2017-06-05\"",
            "payload.string",
            r#""a string payload""#,
        ),
        event(
            "third_project",
            "\"2018-01-05 10:00\"",
            "unicode",
            r#"{"name": "ünïcödé ☃", "k\u0065y": {"list": [1, 2], "d": [true, false]}}"#,
        ),
    ];
    messages.extend(odd);
    // Dropped by the reference (missing field, not JSON) or failing it (a
    // number as timestamp): dead letters here.
    let bad = [
        br#"{"event": {"event_type": "x", "timestamp": "2017-06-01"}, "meta": {"project_id": "p"}}"#.to_vec(),
        b"{not json".to_vec(),
        event("p-two", "1496308511000", "numeric.timestamp", "{}"),
    ];
    messages.extend(bad);

    let today_before = chrono::Local::now().date_naive();
    let pipeline = start_pipeline(&s.config(s.node.host_port()));
    s.produce(&messages, None);
    let expected_reference = reference_events(&s.index_name, today_before, &messages);
    let stored = expected_reference
        .iter()
        .filter(|r| matches!(r, Reference::Create { .. }))
        .count() as u64;
    assert_eq!(stored, messages.len() as u64 - 3);
    wait_for("every event consumed and committed", LONG, || {
        (s.committed(3) == messages.len() as i64).then_some(())
    });
    wait_for("every document in OpenSearch", LONG, || {
        let refused: Vec<Value> = s
            .dead_letters()
            .into_iter()
            .filter(|l| l["kind"] == "elasticsearch_rejected")
            .collect();
        assert!(
            refused.is_empty(),
            "OpenSearch refused documents: {refused:#?}"
        );
        (s.node.count(&s.pattern()) >= stored).then_some(())
    });
    pipeline.shutdown();
    let today_after = chrono::Local::now().date_naive();

    let docs = s.node.documents(&s.pattern());
    let actual: Vec<(String, Value)> = docs.iter().map(|d| (d.0.clone(), d.3.clone())).collect();
    let compare = |reference: &[Reference]| {
        let mut expected: Vec<(String, Value)> = reference
            .iter()
            .filter_map(|r| match r {
                Reference::Create { index, body } => Some((index.clone(), body.clone())),
                _ => None,
            })
            .collect();
        let key = |d: &(String, Value)| (d.0.clone(), d.1.to_string());
        expected.sort_by_key(key);
        let mut actual = actual.clone();
        actual.sort_by_key(key);
        expected == actual
    };
    let same = compare(&expected_reference)
        || (today_after != today_before
            && compare(&reference_events(&s.index_name, today_after, &messages)));
    assert!(
        same,
        "OpenSearch holds other documents than the reference creates:\nreference: {expected_reference:#?}\nOpenSearch: {actual:#?}"
    );

    // Indices: one per project and day, as the reference names them.
    let indices = s.node.indices(&s.pattern());
    for project in projects {
        for day in days {
            let name = format!("{}-{project}-{day}", s.index_name);
            assert!(indices.contains(&name), "{name} missing from {indices:?}");
        }
    }
    // Ids: topic, partition, offset of the message; no duplicates.
    let mut ids: Vec<&str> = docs.iter().map(|d| d.1.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, stored);
    assert!(ids.iter().all(|id| document::source_of_id(id)
        .is_some_and(|src| src.topic == s.topic && (0..3).contains(&src.partition))));

    let letters = s.dead_letters();
    let kinds: BTreeMap<String, usize> = letters.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l["kind"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
        m
    });
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("bad_value".to_string(), 1),
            ("malformed".to_string(), 1),
            ("missing_field".to_string(), 1)
        ]),
        "{letters:#?}"
    );
    let missing = letters
        .iter()
        .find(|l| l["kind"] == "missing_field")
        .expect("missing_field letter");
    assert_eq!(missing["reason"], "missing field `event.payload`");
    assert_eq!(missing["topic"], s.topic.as_str());
}

/// The date part of index names, on timestamps of every JSON type and many
/// string shapes, is what the reference's `_normalize_timestamp` computes;
/// where the reference fails the event is refused.
#[test]
fn index_dates_are_the_references_for_any_timestamp() {
    let today = NaiveDate::from_ymd_opt(2031, 7, 4).expect("date");
    let mut raws: Vec<String> = [
        "null",
        "false",
        "true",
        "0",
        "0.0",
        "-0",
        "1",
        "1.5",
        "1496308511000",
        "\"\"",
        "[]",
        "{}",
        "[1,2,3]",
        "[1,2,3,4,5,6,7,8,9]",
        "[1,2,3,4,5,6,7,8,9,10]",
        "{\"a\":1}",
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10}",
        "{\"a\":1,\"a\":2,\"b\":3,\"c\":4,\"d\":5,\"e\":6,\"f\":7,\"g\":8,\"h\":9,\"i\":10}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let fragments = [
        "2017",
        "-",
        "06",
        "6",
        "01",
        "1",
        " 1",
        "31",
        "30",
        "29",
        "02",
        "2016",
        "0000",
        "0999",
        "13",
        "00",
        "T",
        " ",
        "٢٠١٧",
        "1٣",
        "\u{1D7CE}",
        "x",
        "é",
        "10:00:00",
        "Z",
        "-2",
    ];
    let mut rng = fastrand::Rng::with_seed(23);
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..rng.usize(1..7) {
            text.push_str(fragments[rng.usize(..fragments.len())]);
        }
        raws.push(serde_json::to_string(&text).expect("JSON string"));
    }
    for y in [1, 999, 2000, 2017, 2100, 9999] {
        for (m, d) in [(2, 28), (2, 29), (4, 31), (12, 31), (1, 1)] {
            raws.push(format!("\"{y:04}-{m:02}-{d:02} 00:00:00\""));
        }
    }
    let requests: Vec<(char, &[u8])> = raws.iter().map(|r| ('T', r.as_bytes())).collect();
    let answers = reference("events", today, &requests);
    for (raw, answer) in raws.iter().zip(answers) {
        let ours = document::index_date(raw, today);
        match answer["date"].as_str() {
            Some(date) => assert_eq!(ours.as_deref(), Ok(date), "timestamp {raw}"),
            None => assert!(
                ours.is_err(),
                "timestamp {raw}: the reference fails ({answer}), we gave {ours:?}"
            ),
        }
    }
}

/// Bad events (missing fields, not JSON, a mapping conflict, an index name
/// the server refuses) become dead letters with their reason; the events
/// after them are stored; every offset is committed.
#[test]
fn bad_events_are_dead_lettered_with_reasons_and_the_stream_goes_on() {
    let s = Setup::new(1);
    let ts = "\"2020-03-04 05:06:07\"";
    let messages = vec![
        event("p1", ts, "good.first", r#"{"x": {"y": 1}}"#),
        br#"{"event": {"event_type": "x", "timestamp": "2020-03-04", "payload": {}}, "meta": {"project_id": "p1"}}"#.to_vec(),
        b"\xff not even UTF-8".to_vec(),
        event("p1", ts, "mapping.conflict", r#"{"x": "a string where an object was"}"#),
        event("UpperCase", ts, "bad.index.name", "{}"),
        event("p1", ts, "good.last", r#"{"x": {"y": 2}}"#),
    ];
    let pipeline = start_pipeline(&s.config(s.node.host_port()));
    s.produce(&messages, Some(0));
    wait_for("every offset committed", LONG, || {
        (s.committed(1) == messages.len() as i64).then_some(())
    });
    wait_for("four dead letters", LONG, || {
        (s.dead_letters().len() == 4).then_some(())
    });
    wait_for("the good events stored", LONG, || {
        (s.node.count(&s.pattern()) == 2).then_some(())
    });
    pipeline.shutdown();
    let mut types: Vec<String> = s
        .node
        .documents(&s.pattern())
        .iter()
        .map(|d| d.3["event_type"].as_str().unwrap_or("").to_string())
        .collect();
    types.sort();
    assert_eq!(types, ["good.first", "good.last"]);
    let letters = s.dead_letters();
    let by_offset: BTreeMap<i64, &Value> = letters
        .iter()
        .map(|l| (l["offset"].as_i64().unwrap_or(-1), l))
        .collect();
    assert_eq!(
        by_offset.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "{letters:#?}"
    );
    assert_eq!(by_offset[&1]["kind"], "missing_field");
    assert_eq!(by_offset[&1]["reason"], "missing field `event.dimensions`");
    assert_eq!(by_offset[&2]["kind"], "malformed");
    assert!(by_offset[&2]["payload_base64"].is_string());
    for offset in [3, 4] {
        let l = by_offset[&offset];
        assert_eq!(l["kind"], "elasticsearch_rejected", "{l}");
        assert_eq!(l["topic"], s.topic.as_str());
        assert_eq!(l["partition"], 0);
        assert!(
            l["document"]
                .as_str()
                .is_some_and(|d| d.contains("\"project_id\"")),
            "{l}"
        );
    }
    let conflict = by_offset[&3]["reason"].as_str().unwrap_or("");
    assert!(
        conflict.starts_with("mapper_parsing_exception: "),
        "{conflict}"
    );
    assert_eq!(
        by_offset[&3]["index"],
        format!("{}-p1-2020-03-04", s.index_name).as_str()
    );
    let bad_name = by_offset[&4]["reason"].as_str().unwrap_or("");
    assert!(
        bad_name.starts_with("invalid_index_name_exception: "),
        "{bad_name}"
    );
}

/// Elasticsearch unreachable for a while: the events go into the WAL and
/// their offsets are committed, `/healthcheck` turns 503, and everything
/// arrives once it is back, once.
#[test]
fn an_outage_keeps_events_in_the_wal_and_everything_arrives_once_back() {
    let s = Setup::new(2);
    let proxy = TcpProxy::start(s.node.host_port().parse().expect("node address"));
    proxy.set(Mode::Refuse);
    let mut config = s.config(&proxy.addr().to_string());
    config.health.enabled = true;
    config.health.bind = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .expect("bind address");
    config.health.elasticsearch_unhealthy_after_seconds = 1;
    let persister = Persister::start(&config, s.dir.path(), "persister");
    let messages: Vec<Vec<u8>> = (0..300)
        .map(|i| {
            event(
                &format!("proj{}", i % 3),
                "\"2021-01-02 03:04:05\"",
                "outage",
                &format!(r#"{{"i": {i}}}"#),
            )
        })
        .collect();
    s.produce(&messages, None);
    wait_for(
        "offsets committed while Elasticsearch is down",
        LONG,
        || (s.committed(2) == 300).then_some(()),
    );
    let pending = persister
        .metric("monasca_persister_wal_pending_records")
        .unwrap_or(0.0);
    assert!(
        pending > 0.0,
        "the WAL holds the events{}",
        persister.tail()
    );
    // 503 for Elasticsearch (Kafka's part turns ok with librdkafka's first
    // statistics, which may come later).
    let health = wait_for(
        "the health check to report Elasticsearch down",
        LONG,
        || {
            let (status, body) = persister.get("/healthcheck")?;
            let health: Value = serde_json::from_str(&body).ok()?;
            (status == 503 && health["elasticsearch"]["ok"] == false).then_some(health)
        },
    );
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert!(
        health["elasticsearch"]["consecutive_failures"].as_u64() > Some(0),
        "{health}"
    );
    assert_eq!(s.node.count(&s.pattern()), 0);

    proxy.set(Mode::Pass);
    wait_for("every event in OpenSearch", LONG, || {
        (s.node.count(&s.pattern()) == 300).then_some(())
    });
    wait_for("the health check to recover", LONG, || {
        persister
            .get("/healthcheck")
            .filter(|(status, _)| *status == 200)
    });
    wait_for("the WAL drained", LONG, || {
        (persister.metric("monasca_persister_wal_pending_records") == Some(0.0)).then_some(())
    });
    assert_eq!(
        persister.metric("monasca_persister_events_documents_indexed_total"),
        Some(300.0)
    );
    assert!(persister
        .metric("monasca_persister_events_bulk_requests_total{outcome=\"retriable_error\"}")
        .is_some_and(|n| n > 0.0));
    assert_eq!(
        persister.metric("monasca_persister_messages_consumed_total{topic=\"events\"}"),
        Some(300.0)
    );
    let docs = s.node.documents(&s.pattern());
    assert_eq!(docs.len(), 300);
    let mut seen: Vec<i64> = docs
        .iter()
        .filter_map(|d| d.3["payload"]["i"].as_i64())
        .collect();
    seen.sort();
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
}

/// SIGKILL while Elasticsearch has stored documents whose answers never
/// came back: after the restart the WAL is written again under the same
/// ids, so the documents are overwritten (version 2 or more), never added
/// twice.
#[test]
fn sigkill_and_restart_create_no_duplicates() {
    let s = Setup::new(2);
    let proxy = TcpProxy::start(s.node.host_port().parse().expect("node address"));
    proxy.set(Mode::SwallowAnswers);
    let mut config = s.config(&proxy.addr().to_string());
    config.elasticsearch.timeout_seconds = 1;
    config.health.enabled = true;
    config.health.bind = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .expect("bind address");
    let mut first = Persister::start(&config, s.dir.path(), "first");
    let messages: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            event(
                &format!("proj{}", i % 4),
                "\"2022-05-06 07:08:09\"",
                "crash",
                &format!(r#"{{"i": {i}}}"#),
            )
        })
        .collect();
    s.produce(&messages, None);
    wait_until(
        "offsets committed",
        LONG,
        || first.tail(),
        || (s.committed(2) == 200).then_some(()),
    );
    // The writer sends its first job again and again: OpenSearch stores it
    // each time, the persister never hears so, the records stay in the WAL.
    let stored_before_kill = wait_until(
        "OpenSearch to store what it was sent",
        LONG,
        || format!("{} documents{}", s.node.count(&s.pattern()), first.tail()),
        || {
            let docs = s.node.documents(&s.pattern());
            docs.iter().any(|d| d.2 >= 2).then_some(docs)
        },
    );
    assert_eq!(
        first.metric("monasca_persister_events_documents_indexed_total"),
        Some(0.0),
        "no answer reached the persister{}",
        first.tail()
    );
    first.kill9();

    proxy.set(Mode::Pass);
    config.elasticsearch.timeout_seconds = 30;
    let second = Persister::start(&config, s.dir.path(), "second");
    wait_for("the WAL replayed into OpenSearch", LONG, || {
        (second.metric("monasca_persister_events_documents_indexed_total") == Some(200.0))
            .then_some(())
    });
    wait_for("the WAL drained", LONG, || {
        (second.metric("monasca_persister_wal_pending_records") == Some(0.0)).then_some(())
    });
    let docs = s.node.documents(&s.pattern());
    assert_eq!(docs.len(), 200, "no duplicates");
    let mut ids: Vec<&str> = docs.iter().map(|d| d.1.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    let mut seen: Vec<i64> = docs
        .iter()
        .filter_map(|d| d.3["payload"]["i"].as_i64())
        .collect();
    seen.sort();
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    // What OpenSearch had before the kill was written again after the
    // restart, under the same ids: overwritten, not added.
    for (index, id, version, _) in &stored_before_kill {
        let after = docs
            .iter()
            .find(|d| &d.0 == index && &d.1 == id)
            .unwrap_or_else(|| panic!("{index}/{id} vanished"));
        assert!(
            after.2 > *version,
            "{index}/{id} was not written again: version {}",
            after.2
        );
    }
}

/// A request the server refuses as a whole (here: one item whose action it
/// cannot read) is split until the culprit is alone: it is refused with the
/// server's reason, every other item is stored.
#[test]
fn a_request_refused_as_a_whole_is_split_until_the_culprit_is_alone() {
    support::init_test_logging();
    let node = OpenSearch::shared();
    let index_name = unique_name("split").to_lowercase();
    let mut config = Config::default();
    config.elasticsearch.hosts = vec![node.host_port().to_string()];
    let writer = monasca_persister::elasticsearch::EventsWriter::from_config(&config.elasticsearch)
        .expect("writer");
    let mut body = Vec::new();
    for i in 0..7 {
        let action = if i == 4 {
            r#"{"frobnicate":{"_index":"x","_id":"y"}}"#.to_string()
        } else {
            format!(r#"{{"index":{{"_index":"{index_name}-p-2020-01-01","_id":"d{i}"}}}}"#)
        };
        body.extend_from_slice(format!("{action}\n{{\"i\": {i}}}\n").as_bytes());
    }
    let stats = Stats::new();
    let report = writer.write(&mut body, &stats.events);
    assert!(body.is_empty(), "nothing left pending");
    assert_eq!(report.retry, None);
    assert_eq!(report.stored, 6);
    assert_eq!(report.refused.len(), 1);
    assert_eq!(report.refused[0].document, b"{\"i\": 4}");
    assert!(
        report.refused[0]
            .reason
            .starts_with("HTTP 400 for the whole request: illegal_argument_exception: Malformed action/metadata line"),
        "{:?}",
        report.refused[0]
    );
    assert_eq!(node.count(&format!("{index_name}-*")), 6);
}
