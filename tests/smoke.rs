//! Smoke tests of the test infrastructure itself: a real influxd and the
//! librdkafka mock cluster work as the other integration tests assume.

mod support;

use std::time::Duration;
use support::{influxd::Influxd, kafka::Kafka};

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

#[test]
fn mock_cluster_delivers_through_a_consumer_group() {
    let kafka = Kafka::start(1, &[("smoke", 4)]);
    for i in 0..100 {
        kafka.produce("smoke", Some(i % 4), format!("m{i}").as_bytes());
    }
    kafka.flush();
    let c = kafka.consumer("smoke-group", "smoke");
    let got = support::kafka::consume_n(&c, 100, Duration::from_secs(30));
    assert_eq!(got.len(), 100);
    let mut names: Vec<String> = got
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 100, "duplicates or missing messages");
}
