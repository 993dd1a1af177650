//! Smoke tests of the test infrastructure itself: a real influxd, a real
//! Apache Kafka (`scripts/kafka`) and the librdkafka mock cluster work as
//! the other integration tests assume.

mod support;

use std::time::Duration;
use support::influxd::Influxd;
use support::kafka::{Kafka, TestKafka};
use support::real_kafka::{unique_name, RealKafka};

#[test]
fn influxd_accepts_a_point_and_returns_it() {
    let influx = Influxd::start();
    influx.query(None, "CREATE DATABASE smoke");
    let (status, body) = influx.write_lines("smoke", "cpu,host=a value=1.5 1554725987408");
    assert_eq!(status, 204, "write failed: {body}");
    let rows = influx.rows("smoke", "SELECT value, host FROM cpu");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0].as_i64(), Some(1554725987408));
    assert_eq!(rows[0][1].as_f64(), Some(1.5));
    assert_eq!(rows[0][2].as_str(), Some("a"));
}

/// Produces 100 distinct messages over the 4 partitions of `topic` and reads
/// them back through a consumer group: each exactly once.
fn delivers_through_a_consumer_group(kafka: &impl TestKafka, topic: &str, group: &str) {
    for i in 0..100 {
        kafka.produce(topic, Some(i % 4), format!("m{i}").as_bytes());
    }
    kafka.flush();
    let c = kafka.consumer(group, topic);
    let got = support::kafka::consume_n(&c, 100, Duration::from_secs(60));
    assert_eq!(got.len(), 100);
    let mut names: Vec<String> = got
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 100, "duplicates or missing messages");
}

#[test]
fn mock_cluster_delivers_through_a_consumer_group() {
    let kafka = Kafka::start(1, &[("smoke", 4)]);
    delivers_through_a_consumer_group(&kafka, "smoke", "smoke-group");
}

#[test]
fn real_kafka_delivers_through_a_consumer_group() {
    let kafka = RealKafka::shared();
    let topic = unique_name("smoke");
    kafka.create_topic(&topic, 4);
    delivers_through_a_consumer_group(kafka, &topic, &unique_name("smoke-group"));
}
