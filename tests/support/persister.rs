//! Building a persister configuration around a test's influxd and Kafka
//! (real or mock), and Monasca messages with known content.

use std::path::Path;

use monasca_persister::config::Config;

use super::influxd::Influxd;
use super::kafka::TestKafka;

/// Topic names used by the tests.
pub const METRICS: &str = "metrics";
/// Alarm transitions topic.
pub const ALARMS: &str = "alarm-state-transitions";

/// A configuration pointing at `kafka` (its security settings in
/// `[kafka_client]`) and `influx`, with WAL and dead letters under `dir`.
pub fn config(kafka: &impl TestKafka, influx: &Influxd, dir: &Path) -> Config {
    let mut c = Config::default();
    for s in [&mut c.kafka_metrics, &mut c.kafka_alarm_history] {
        s.uri = vec![kafka.bootstrap()];
    }
    c.kafka_metrics.batch_size = 5000;
    c.influxdb.port = influx.port;
    c.influxdb.ip_address = "127.0.0.1".into();
    c.wal.path = dir.join("wal");
    c.wal.dead_letter_path = dir.join("dead-letter.jsonl");
    c.wal.commit_interval_ms = 50;
    c.wal.drain_timeout_seconds = 10;
    c.health.enabled = false;
    kafka_client_for_tests(&mut c, kafka);
    c.influxdb.retry_max_ms = 1000;
    c
}

/// `[kafka_client]` for a test: `kafka`'s security settings and faster
/// group membership changes than the production defaults.
pub fn kafka_client_for_tests(c: &mut Config, kafka: &impl TestKafka) {
    for (k, v) in [
        ("heartbeat.interval.ms", "300"),
        ("session.timeout.ms", "6000"),
    ] {
        c.kafka_client
            .properties
            .insert(k.to_string(), monasca_persister::config::Secret::new(v));
    }
    for (k, v) in kafka.client_properties() {
        c.kafka_client
            .properties
            .insert(k, monasca_persister::config::Secret::new(v));
    }
}

/// The configuration of a persister run as a child process (see
/// `super::binary`): the usual one with the metrics topic only, a health
/// endpoint on a free port (progress is read from /metrics), fast retries,
/// and a short session timeout so that a killed member's partitions move on
/// quickly.
pub fn binary_config(kafka: &impl TestKafka, influx: &Influxd, dir: &Path) -> Config {
    let mut c = config(kafka, influx, dir);
    c.kafka_alarm_history.enabled = false;
    c.health.enabled = true;
    c.health.bind = std::net::SocketAddr::from(([127, 0, 0, 1], super::free_port()));
    c.influxdb.retry_initial_ms = 50;
    c.influxdb.retry_max_ms = 500;
    c.wal.commit_interval_ms = 50;
    c.wal.drain_timeout_seconds = 20;
    c.kafka_client.properties.insert(
        "session.timeout.ms".into(),
        monasca_persister::config::Secret::new("2000"),
    );
    c
}

/// A test's own metrics and alarm transitions topics on a shared cluster,
/// each read in a consumer group of its own (`<topic>-group`).
pub struct Topics {
    /// The metrics topic.
    pub metrics: String,
    /// The alarm transitions topic.
    pub alarms: String,
}

impl Topics {
    /// Creates both topics on `kafka` with names no other test of this process uses.
    pub fn create(
        kafka: &impl TestKafka,
        metrics_partitions: i32,
        alarm_partitions: i32,
    ) -> Topics {
        let topics = Topics {
            metrics: super::real_kafka::unique_name("metrics"),
            alarms: super::real_kafka::unique_name("alarm-state-transitions"),
        };
        kafka.create_topic(&topics.metrics, metrics_partitions);
        kafka.create_topic(&topics.alarms, alarm_partitions);
        topics
    }

    /// The group of the metrics topic.
    pub fn metrics_group(&self) -> String {
        format!("{}-group", self.metrics)
    }

    /// `c` reading these topics.
    pub fn apply(&self, mut c: Config) -> Config {
        c.kafka_metrics.topic = self.metrics.clone();
        c.kafka_metrics.group_id = self.metrics_group();
        c.kafka_alarm_history.topic = self.alarms.clone();
        c.kafka_alarm_history.group_id = format!("{}-group", self.alarms);
        c
    }
}

/// A metric message with a unique timestamp `ts` (ms).
pub fn metric(name: &str, tenant: &str, host: &str, ts: i64, value: f64) -> String {
    format!(
        r#"{{"metric": {{"name": "{name}", "dimensions": {{"hostname": "{host}", "service": "monitoring"}}, "timestamp": {ts}, "value": {value}, "value_meta": null}}, "meta": {{"region": "RegionOne", "tenantId": "{tenant}"}}, "creation_time": 1554725988}}"#
    )
}

/// A metric message whose value_meta carries `noise` (makes lines bigger and hard to compress).
pub fn metric_with_meta(tenant: &str, host: &str, ts: i64, noise: &str) -> String {
    format!(
        r#"{{"metric": {{"name": "disk.io", "dimensions": {{"hostname": "{host}"}}, "timestamp": {ts}, "value": 1.5, "value_meta": {{"noise": "{noise}"}}}}, "meta": {{"region": "RegionOne", "tenantId": "{tenant}"}}, "creation_time": 1554725988}}"#
    )
}

/// An alarm transition message with a unique timestamp `ts` (ms).
pub fn alarm(alarm_id: &str, tenant: &str, ts: i64) -> String {
    format!(
        r#"{{"alarm-transitioned": {{"alarmId": "{alarm_id}", "metrics": [{{"id": null, "name": "cpu.idle_perc", "dimensions": {{"hostname": "devstack"}}}}], "newState": "ALARM", "oldState": "OK", "link": null, "lifecycleState": null, "stateChangeReason": "threshold exceeded", "tenantId": "{tenant}", "timestamp": {ts}, "subAlarms": []}}}}"#
    )
}

/// Base timestamp for generated points: recent, so default retention keeps them.
pub fn base_ts() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    now - 3_600_000
}

/// Points stored in `measurement` of `db`, counting field `field` (0 while the database does not exist).
pub fn count_field(influx: &Influxd, db: &str, measurement: &str, field: &str) -> u64 {
    let q = format!("SELECT count(\"{field}\") FROM \"{measurement}\"");
    let v = influx.query(Some(db), &q);
    if let Some(err) = v["results"][0]["error"].as_str() {
        assert!(
            err.contains("database not found"),
            "query {q:?} on {db}: {err}"
        );
        return 0;
    }
    v["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}
