//! The delivery promises on a real Apache Kafka (`scripts/kafka`), with the
//! real `monasca-persister` binary and a real influxd: compressed and
//! transactional producers, a topic created after start-up, messages
//! deleted by retention before they were read, a broker killed and
//! restarted, a leader failing over among three brokers, SASL_SSL with
//! SCRAM, and the last 3.x release line.
//!
//! Most tests share one broker (their own topic and group); those that take
//! brokers down or need another kind of cluster start their own. Every
//! message has a unique timestamp, so InfluxDB's point count is the number
//! of distinct messages stored.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use monasca_persister::config::{Config, Secret};
use rdkafka::producer::Producer;

use support::binary::{wait_until, Persister};
use support::influxd::Influxd;
use support::kafka::{send, test_producer, TestKafka};
use support::load::Load;
use support::persister as p;
use support::real_kafka::{unique_name, KafkaOptions, RealKafka};

const LONG: Duration = Duration::from_secs(120);

/// The test configuration ([`p::binary_config`]) for the metrics of
/// `topic` on `kafka` (its security settings in `[kafka_client]`), in a
/// group of its own.
fn config(kafka: &impl TestKafka, topic: &str, influx: &Influxd, dir: &Path) -> Config {
    let mut c = p::binary_config(kafka, influx, dir);
    c.kafka_metrics.topic = topic.to_string();
    c.kafka_metrics.group_id = unique_name("delivery-group");
    c
}

/// Metric message `i` of a test: measurement `name`, partition `i % partitions`, timestamp `ts0 + i`.
fn message(name: &str, i: u64, partitions: i32, ts0: i64) -> (i32, String) {
    let partition = (i % partitions as u64) as i32;
    let body = p::metric(
        name,
        "t1",
        &format!("p{partition}"),
        ts0 + i as i64,
        i as f64,
    );
    (partition, body)
}

/// Produces messages `from..to` of `name` to `topic` and waits for the acks.
fn produce(
    kafka: &impl TestKafka,
    topic: &str,
    name: &str,
    range: std::ops::Range<u64>,
    partitions: i32,
    ts0: i64,
) {
    for i in range {
        let (partition, body) = message(name, i, partitions, ts0);
        kafka.produce(topic, Some(partition), body.as_bytes());
    }
    kafka.flush();
}

/// Points of `measurement` in the database `mon`.
fn stored(influx: &Influxd, measurement: &str) -> u64 {
    p::count_field(influx, "mon", measurement, "value")
}

/// Waits until `measurement` holds `n` points, and checks it holds no more.
fn wait_stored(a: &Persister, influx: &Influxd, measurement: &str, n: u64) {
    wait_until(
        &format!("{n} points of {measurement} in InfluxDB"),
        LONG,
        || a.tail(),
        || (stored(influx, measurement) >= n).then_some(()),
    );
    assert_eq!(stored(influx, measurement), n, "{}", a.tail());
}

fn stop(mut a: Persister) {
    a.signal(libc::SIGTERM);
    let (status, _) = a.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}{}", a.tail());
}

/// Messages of `name` to `topic` from a background thread at about `rate`
/// per second, until stopped.
fn load(kafka: &impl TestKafka, topic: &str, name: &str, partitions: i32, rate: u64) -> Load {
    let (name, ts0) = (name.to_string(), p::base_ts());
    Load::start(kafka, topic, u64::MAX, rate, move |i| {
        message(&name, i, partitions, ts0)
    })
}

/// A persister consuming `name` messages flowing into a new `topic` of
/// `kafka`; returns once it consumed some.
fn consuming(
    kafka: &RealKafka,
    topic: &str,
    name: &str,
    partitions: i32,
    influx: &Influxd,
    dir: &Path,
) -> (Persister, Load) {
    kafka.create_topic_with(topic, partitions, kafka.brokers().min(3), &[]);
    let a = Persister::start(&config(kafka, topic, influx, dir), dir, "persister");
    let load = load(kafka, topic, name, partitions, 4_000);
    wait_until(
        "consumption under way",
        LONG,
        || a.tail(),
        || (a.consumed() >= 5_000).then_some(()),
    );
    (a, load)
}

/// Waits until `a` consumed 5 000 more messages, stops `load` and waits
/// until every message it produced is stored.
fn consumption_goes_on_and_everything_arrives(
    a: Persister,
    load: Load,
    influx: &Influxd,
    name: &str,
) {
    let consumed = a.consumed();
    wait_until(
        "consumption going on",
        LONG,
        || a.tail(),
        || (a.consumed() >= consumed + 5_000).then_some(()),
    );
    let total = load.stop();
    wait_stored(&a, influx, name, total);
    stop(a);
}

// ---------------------------------------------------------------------------

#[test]
fn messages_of_gzip_snappy_lz4_and_zstd_producers_are_all_stored() {
    const PER_CODEC: u64 = 2_000;
    const PARTITIONS: i32 = 4;
    const CODECS: [&str; 4] = ["gzip", "snappy", "lz4", "zstd"];
    let kafka = RealKafka::shared();
    let topic = unique_name("compressed");
    kafka.create_topic(&topic, PARTITIONS);
    let influx = Influxd::start();
    let dir = tempfile::tempdir().unwrap();
    let ts0 = p::base_ts();
    for (c, codec) in CODECS.iter().enumerate() {
        let producer = test_producer(
            kafka
                .client_config()
                .set("compression.codec", *codec)
                .clone(),
        );
        let name = format!("compressed.{codec}");
        let from = c as u64 * PER_CODEC;
        for i in from..from + PER_CODEC {
            let (partition, body) = message(&name, i, PARTITIONS, ts0);
            send(&producer, &topic, Some(partition), body.as_bytes());
        }
        producer
            .flush(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("flush the {codec} producer: {e}"));
    }
    let a = Persister::start(
        &config(kafka, &topic, &influx, dir.path()),
        dir.path(),
        "persister",
    );
    for codec in CODECS {
        wait_stored(&a, &influx, &format!("compressed.{codec}"), PER_CODEC);
    }
    stop(a);
}

#[test]
fn only_committed_transactions_are_stored_and_their_markers_never_stall_the_consumer() {
    const PER_TRANSACTION: u64 = 500;
    const PARTITIONS: i32 = 2;
    let kafka = RealKafka::shared();
    let topic = unique_name("transactional");
    kafka.create_topic(&topic, PARTITIONS);
    let influx = Influxd::start();
    let dir = tempfile::tempdir().unwrap();
    let ts0 = p::base_ts();
    let producer = test_producer(
        kafka
            .client_config()
            .set("transactional.id", unique_name("delivery-transactions"))
            .set("transaction.timeout.ms", "120000")
            .clone(),
    );
    producer
        .init_transactions(LONG)
        .expect("initialise transactions");
    // Committed, aborted, committed, aborted: every partition ends with the
    // marker of an aborted transaction.
    let mut i = 0;
    for commit in [true, false, true, false] {
        producer.begin_transaction().expect("begin a transaction");
        let name = if commit {
            "txn.committed"
        } else {
            "txn.aborted"
        };
        for _ in 0..PER_TRANSACTION {
            let (partition, body) = message(name, i, PARTITIONS, ts0);
            send(&producer, &topic, Some(partition), body.as_bytes());
            i += 1;
        }
        if commit {
            producer.commit_transaction(LONG).expect("commit");
        } else {
            // In the log first, then aborted: the consumer must skip them.
            producer.flush(LONG).expect("flush the aborted transaction");
            producer.abort_transaction(LONG).expect("abort");
        }
    }
    let cfg = config(kafka, &topic, &influx, dir.path());
    let group = cfg.kafka_metrics.group_id.clone();
    let a = Persister::start(&cfg, dir.path(), "persister");
    wait_stored(&a, &influx, "txn.committed", 2 * PER_TRANSACTION);
    // The group's offsets reach the end of every partition, past the
    // transaction markers, and the reported lag is zero.
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| kafka.watermarks(&topic, p).1)
        .collect();
    wait_until(
        "committed offsets at the end of every partition",
        LONG,
        || format!("ends {ends:?}{}", a.tail()),
        || {
            let committed: Vec<i64> = kafka
                .committed_offsets(&group, &topic, PARTITIONS)
                .into_iter()
                .map(|o| o.unwrap_or(0))
                .collect();
            (committed == ends).then_some(())
        },
    );
    wait_until(
        "a consumer lag of 0",
        LONG,
        || a.tail(),
        || (a.metric("monasca_persister_consumer_lag{topic=\"metrics\"}")? == 0.0).then_some(()),
    );
    assert_eq!(stored(&influx, "txn.aborted"), 0, "{}", a.tail());
    // A message after the markers is read as usual.
    produce(kafka, &topic, "txn.after", i..i + 10, PARTITIONS, ts0);
    wait_stored(&a, &influx, "txn.after", 10);
    assert_eq!(stored(&influx, "txn.aborted"), 0, "{}", a.tail());
    stop(a);
}

#[test]
fn a_topic_missing_at_start_up_is_reported_once_and_consumed_once_created() {
    const TOTAL: u64 = 1_000;
    const PARTITIONS: i32 = 4;
    let kafka = RealKafka::shared();
    let topic = unique_name("created-later");
    let influx = Influxd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Persister::start(
        &config(kafka, &topic, &influx, dir.path()),
        dir.path(),
        "persister",
    );
    let line = a.wait_log(&format!("topic {topic} does not exist"), LONG);
    assert!(line.contains("WARN"), "{line}");
    // Still running and polling, however long the topic takes.
    wait_until(
        "a few more polls",
        LONG,
        || a.tail(),
        || {
            let (_, body) = a.get("/healthcheck")?;
            body.contains("seconds_since_last_poll").then_some(())
        },
    );
    assert!(a.running(), "{}", a.tail());
    kafka.create_topic(&topic, PARTITIONS);
    let created = Instant::now();
    produce(kafka, &topic, "late", 0..TOTAL, PARTITIONS, p::base_ts());
    wait_stored(&a, &influx, "late", TOTAL);
    eprintln!(
        "consumed {:?} after the topic was created",
        created.elapsed()
    );
    let said = a
        .log()
        .lines()
        .filter(|l| l.contains("does not exist"))
        .count();
    assert_eq!(said, 1, "said once{}", a.tail());
    a.wait_log(&format!("topic {topic} exists now"), Duration::ZERO);
    stop(a);
}

#[test]
fn offsets_deleted_by_retention_before_they_were_read_are_warned_about_and_counted() {
    const PARTITIONS: i32 = 2;
    const FIRST: u64 = 1_000;
    // Enough ~1 KiB messages to fill more than one 1 MiB segment per partition.
    const SECOND: u64 = 5_000;
    let kafka = RealKafka::shared();
    let topic = unique_name("retention");
    kafka.create_topic_with(&topic, PARTITIONS, 1, &[("segment.bytes", "1048576")]);
    let influx = Influxd::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(kafka, &topic, &influx, dir.path());
    let group = cfg.kafka_metrics.group_id.clone();
    let ts0 = p::base_ts();

    // Read and committed, then the persister stops.
    produce(kafka, &topic, "kept", 0..FIRST, PARTITIONS, ts0);
    let a = Persister::start(&cfg, dir.path(), "persister");
    wait_stored(&a, &influx, "kept", FIRST);
    stop(a);
    let committed: Vec<i64> = kafka
        .committed_offsets(&group, &topic, PARTITIONS)
        .into_iter()
        .map(|o| o.unwrap_or(0))
        .collect();

    // While it is down, more arrives and size-based retention deletes the
    // oldest segments (never the active one, so some messages are left).
    let noise = "x".repeat(900);
    for i in FIRST..FIRST + SECOND {
        let partition = (i % PARTITIONS as u64) as i32;
        let body = p::metric_with_meta("t1", &format!("p{partition}"), ts0 + i as i64, &noise);
        kafka.produce(&topic, Some(partition), body.as_bytes());
    }
    kafka.flush();
    let segment = ("segment.bytes", "1048576");
    kafka.alter_topic(&topic, &[segment, ("retention.bytes", "1048576")]);
    wait_until(
        "retention to delete what the group has not read",
        LONG,
        || kafka.logs(),
        || {
            (0..PARTITIONS)
                .all(|p| kafka.watermarks(&topic, p).0 > committed[p as usize])
                .then_some(())
        },
    );
    // Nothing more is deleted while the test reads what is left.
    kafka.alter_topic(&topic, &[segment, ("retention.bytes", "-1")]);
    wait_until(
        "the brokers to apply retention.bytes = -1",
        LONG,
        || kafka.logs(),
        || (kafka.topic_config(&topic, "retention.bytes").as_deref() == Some("-1")).then_some(()),
    );
    let starts: Vec<i64> = (0..PARTITIONS)
        .map(|p| kafka.watermarks(&topic, p).0)
        .collect();
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| kafka.watermarks(&topic, p).1)
        .collect();
    let left: i64 = starts.iter().zip(&ends).map(|(s, e)| e - s).sum();
    assert!(
        left > 0,
        "retention deleted everything: starts {starts:?}, ends {ends:?}"
    );
    let skipped: Vec<i64> = starts.iter().zip(&committed).map(|(s, c)| s - c).collect();

    let b = Persister::start(&cfg, dir.path(), "persister");
    wait_stored(&b, &influx, "disk.io", left as u64);
    for (partition, n) in skipped.iter().enumerate() {
        let line = b.wait_log(&format!("{topic}/{partition}: {n} offset(s) skipped"), LONG);
        assert!(line.contains("WARN"), "{line}");
    }
    let counted = b
        .metric("monasca_persister_offsets_skipped_total{topic=\"metrics\"}")
        .unwrap_or(-1.0);
    assert_eq!(counted as i64, skipped.iter().sum::<i64>(), "{}", b.tail());
    let (_, health) = b.get("/healthcheck").expect("healthcheck");
    let health: serde_json::Value = serde_json::from_str(&health).expect("health JSON");
    assert_eq!(
        health["kafka"]["topics"][&topic]["offsets_skipped"],
        skipped.iter().sum::<i64>(),
        "{health}"
    );
    assert_eq!(stored(&influx, "kept"), FIRST);
    stop(b);
}

#[test]
fn a_broker_killed_mid_stream_and_restarted_loses_nothing_and_health_reports_the_outage() {
    let kafka = RealKafka::start(1, &[]);
    let topic = unique_name("outage");
    let influx = Influxd::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, load) = consuming(&kafka, &topic, "outage", 8, &influx, dir.path());
    kafka.kill_broker(1);
    let body = wait_until(
        "an unhealthy /healthcheck",
        LONG,
        || format!("{}{}", a.tail(), kafka.logs()),
        || {
            let (status, body) = a.get("/healthcheck")?;
            (status == 503).then_some(body)
        },
    );
    let health: serde_json::Value = serde_json::from_str(&body).expect("health JSON");
    assert_eq!(health["kafka"]["ok"], false, "{body}");
    assert_eq!(
        health["kafka"]["topics"][&topic]["connected"], false,
        "{body}"
    );
    kafka.restart_broker(1);
    wait_until(
        "a healthy /healthcheck",
        LONG,
        || format!("{}{}", a.tail(), kafka.logs()),
        || (a.get("/healthcheck")?.0 == 200).then_some(()),
    );
    consumption_goes_on_and_everything_arrives(a, load, &influx, "outage");
}

#[test]
fn consumption_goes_on_from_new_leaders_when_a_busy_leader_dies() {
    let kafka = RealKafka::start(3, &[]);
    let topic = unique_name("failover");
    let influx = Influxd::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, load) = consuming(&kafka, &topic, "failover", 6, &influx, dir.path());
    // The leader of partition 0 leads others too: all of them move.
    let leaders = kafka.leaders(&topic);
    let victim = leaders[0];
    let led: Vec<usize> = (0..leaders.len())
        .filter(|&p| leaders[p] == victim)
        .collect();
    kafka.kill_broker(victim);
    wait_until(
        "new leaders for the dead broker's partitions",
        LONG,
        || kafka.logs(),
        || {
            let now = kafka.leaders(&topic);
            led.iter()
                .all(|&p| now.get(p).is_some_and(|&l| l >= 0 && l != victim))
                .then_some(())
        },
    );
    consumption_goes_on_and_everything_arrives(a, load, &influx, "failover");
}

#[test]
fn sasl_ssl_scram_through_kafka_client_works_and_a_wrong_password_is_a_clear_unhealthy_error() {
    const TOTAL: u64 = 2_000;
    const PARTITIONS: i32 = 2;
    let kafka = RealKafka::start_with(KafkaOptions {
        sasl: true,
        ..KafkaOptions::default()
    });
    let topic = unique_name("sasl");
    kafka.create_topic(&topic, PARTITIONS);
    let properties = kafka.client_properties();
    assert!(
        properties.contains(&("security.protocol".into(), "SASL_SSL".into()))
            && properties.contains(&("sasl.mechanism".into(), "SCRAM-SHA-512".into())),
        "{properties:?}"
    );
    let influx = Influxd::start();
    let dir = tempfile::tempdir().unwrap();
    produce(&kafka, &topic, "secure", 0..TOTAL, PARTITIONS, p::base_ts());
    // Everything about the security goes through [kafka_client] (p::config).
    let cfg = config(&kafka, &topic, &influx, dir.path());
    let a = Persister::start(&cfg, dir.path(), "persister");
    wait_stored(&a, &influx, "secure", TOTAL);
    stop(a);

    let wrong = tempfile::tempdir().unwrap();
    let mut bad = config(&kafka, &topic, &influx, wrong.path());
    bad.kafka_client
        .properties
        .insert("sasl.password".into(), Secret::new("not-the-password"));
    let mut b = Persister::start(&bad, wrong.path(), "persister");
    let line = b.wait_log("Kafka refused the connection", LONG);
    assert!(
        line.contains("ERROR") && line.contains("[kafka_client]") && line.contains("sasl.password"),
        "{line}"
    );
    assert!(
        !b.log().contains("not-the-password"),
        "the password was logged{}",
        b.tail()
    );
    let body = wait_until(
        "an unhealthy /healthcheck naming the authentication failure",
        LONG,
        || b.tail(),
        || {
            let (status, body) = b.get("/healthcheck")?;
            (status == 503 && body.contains("authentication failed")).then_some(body)
        },
    );
    assert!(!body.contains("not-the-password"), "{body}");
    assert!(b.running(), "a refused login is not fatal{}", b.tail());
    stop(b);
}

#[test]
fn metrics_and_alarm_transitions_reach_influxdb_through_kafka_3_9() {
    const METRICS: u64 = 3_000;
    const ALARMS: u64 = 200;
    let kafka = RealKafka::start_with(KafkaOptions {
        version: Some("3.9".into()),
        ..KafkaOptions::default()
    });
    let (metrics, alarms) = (unique_name("metrics"), unique_name("alarms"));
    kafka.create_topic(&metrics, 4);
    kafka.create_topic(&alarms, 1);
    let influx = Influxd::start();
    let dir = tempfile::tempdir().unwrap();
    let ts0 = p::base_ts();
    produce(&kafka, &metrics, "kafka3", 0..METRICS, 4, ts0);
    for i in 0..ALARMS {
        kafka.produce(
            &alarms,
            None,
            p::alarm(&format!("alarm-{i}"), "t1", ts0 + i as i64).as_bytes(),
        );
    }
    kafka.flush();
    let mut cfg = config(&kafka, &metrics, &influx, dir.path());
    cfg.kafka_alarm_history.enabled = true;
    cfg.kafka_alarm_history.topic = alarms.clone();
    cfg.kafka_alarm_history.group_id = unique_name("alarm-group");
    let a = Persister::start(&cfg, dir.path(), "persister");
    wait_stored(&a, &influx, "kafka3", METRICS);
    wait_until(
        "every alarm transition in InfluxDB",
        LONG,
        || a.tail(),
        || {
            (p::count_field(&influx, "mon", "alarm_state_history", "alarm_id") == ALARMS)
                .then_some(())
        },
    );
    stop(a);
}
