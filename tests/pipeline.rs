//! The pipeline end to end, in process: Kafka, a real influxd, the real
//! WAL. Kafka → WAL → offset commit → writers → InfluxDB. The delivery
//! promises (every point of both topics in both database modes, two members
//! sharing a group and a rebalance under load entering each message into one
//! WAL once) run on a real Apache Kafka shared by the tests of this file;
//! the rest, quick checks and request-error injection, on the mock cluster.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use monasca_persister::config::{Config, GroupProtocol};
use monasca_persister::pipeline::{Control, Pipeline};
use monasca_persister::stats::Stats;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::influxd::Influxd;
use support::kafka::{Kafka, TestKafka};
use support::persister::{self as p, Topics, ALARMS, METRICS};
use support::real_kafka::RealKafka;
use support::wait_for;

const LONG: Duration = Duration::from_secs(180);

fn start(config: &monasca_persister::config::Config) -> (Pipeline, Arc<Stats>) {
    support::init_test_logging();
    let stats = Arc::new(Stats::new());
    let pipeline =
        Pipeline::start(config, stats.clone(), Arc::new(Control::new())).expect("start pipeline");
    (pipeline, stats)
}

/// Produces `n` metrics for `tenants` round robin over `partitions`; returns the per-tenant counts.
fn produce_metrics(
    kafka: &impl TestKafka,
    topic: &str,
    n: usize,
    partitions: i32,
    tenants: &[&str],
    ts0: i64,
) -> Vec<usize> {
    let mut per_tenant = vec![0; tenants.len()];
    for i in 0..n {
        let t = i % tenants.len();
        per_tenant[t] += 1;
        let msg = p::metric(
            "cpu.idle_perc",
            tenants[t],
            &format!("host{}", i % 50),
            ts0 + i as i64,
            (i % 100) as f64 + 0.5,
        );
        kafka.produce(topic, Some((i as i32) % partitions), msg.as_bytes());
    }
    per_tenant
}

fn committed_total(kafka: &impl TestKafka, group: &str, topic: &str, partitions: i32) -> i64 {
    kafka
        .committed_offsets(group, topic, partitions)
        .into_iter()
        .map(|o| o.unwrap_or(0))
        .sum()
}

fn end_to_end(db_per_tenant: bool, protocol: GroupProtocol) {
    let influx = Influxd::start();
    let kafka = RealKafka::shared();
    let topics = Topics::create(kafka, 16, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut config = p::with_protocol(
        topics.apply(p::config(kafka, &influx, dir.path())),
        protocol,
    );
    config.influxdb.db_per_tenant = db_per_tenant;
    let ts0 = p::base_ts();
    let tenants = ["alpha", "beta", "gamma"];
    let per_tenant = produce_metrics(kafka, &topics.metrics, 100_000, 16, &tenants, ts0);
    for i in 0..1000 {
        kafka.produce(
            &topics.alarms,
            Some(i % 2),
            p::alarm(&format!("alarm-{i}"), "alpha", ts0 + i as i64).as_bytes(),
        );
    }
    kafka.flush();
    let (pipeline, stats) = start(&config);

    if db_per_tenant {
        for (t, n) in tenants.iter().zip(&per_tenant) {
            let db = format!("mon_{t}");
            wait_for(&format!("{n} metrics in {db}"), LONG, || {
                (p::count_field(&influx, &db, "cpu.idle_perc", "value") == *n as u64).then_some(())
            });
        }
        wait_for("1000 alarm transitions in mon_alpha", LONG, || {
            (p::count_field(&influx, "mon_alpha", "alarm_state_history", "alarm_id") == 1000)
                .then_some(())
        });
        assert!(
            !influx.databases().contains(&"mon".to_string()),
            "db_per_tenant must not write the shared database"
        );
    } else {
        wait_for("100000 metrics in mon", LONG, || {
            (p::count_field(&influx, "mon", "cpu.idle_perc", "value") == 100_000).then_some(())
        });
        wait_for("1000 alarm transitions in mon", LONG, || {
            (p::count_field(&influx, "mon", "alarm_state_history", "alarm_id") == 1000)
                .then_some(())
        });
    }
    // Spot checks of content: message 4242 (tenant alpha or as round robin says).
    let i = 4242usize;
    let db = if db_per_tenant {
        format!("mon_{}", tenants[i % 3])
    } else {
        "mon".to_string()
    };
    let rows = influx.rows(&db, &format!("SELECT value, hostname, _tenant_id, _region, value_meta FROM \"cpu.idle_perc\" WHERE time = {}ms", ts0 + i as i64));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1].as_f64(), Some((i % 100) as f64 + 0.5));
    assert_eq!(
        rows[0][2].as_str(),
        Some(format!("host{}", i % 50).as_str())
    );
    assert_eq!(rows[0][3].as_str(), Some(tenants[i % 3]));
    assert_eq!(rows[0][4].as_str(), Some("RegionOne"));
    assert_eq!(rows[0][5].as_str(), Some("{}"));
    let alarm_db = if db_per_tenant { "mon_alpha" } else { "mon" };
    let rows = influx.rows(alarm_db, &format!("SELECT alarm_id, new_state, old_state, link, sub_alarms FROM alarm_state_history WHERE time = {}ms", ts0 + 17));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1].as_str(), Some("alarm-17"));
    assert_eq!(rows[0][2].as_str(), Some("ALARM"));
    assert_eq!(rows[0][5].as_str(), Some("[]"));

    wait_for("all offsets committed", LONG, || {
        (committed_total(kafka, &topics.metrics_group(), &topics.metrics, 16) == 100_000)
            .then_some(())
    });
    let summary = pipeline.shutdown();
    assert_eq!(summary.records_left, 0);
    assert_eq!(
        stats.consumed_total(monasca_persister::stats::TopicKind::Metrics),
        100_000
    );
    assert_eq!(stats.wal_points_appended.load(Relaxed), 101_000);
}

// Each group protocol runs one of the two database modes: the protocols
// share every line of the path but the group membership.

#[test]
fn end_to_end_shared_database() {
    end_to_end(false, GroupProtocol::Classic);
}

#[test]
fn end_to_end_database_per_tenant() {
    end_to_end(true, GroupProtocol::Consumer);
}

/// Two instances in one group over 8 partitions: the first (`config_a`)
/// takes them all, then the second joins; returns once both hold some.
fn start_two_sharing_8_partitions(
    config_a: &Config,
    config_b: &Config,
) -> ((Pipeline, Arc<Stats>), (Pipeline, Arc<Stats>)) {
    let (a, stats_a) = start(config_a);
    wait_for("first instance assigned all partitions", LONG, || {
        (stats_a.assigned_partitions[0].load(Relaxed) == 8).then_some(())
    });
    let (b, stats_b) = start(config_b);
    wait_for("the group split between both instances", LONG, || {
        let (na, nb) = (
            stats_a.assigned_partitions[0].load(Relaxed),
            stats_b.assigned_partitions[0].load(Relaxed),
        );
        (na > 0 && nb > 0 && na + nb == 8).then_some(())
    });
    ((a, stats_a), (b, stats_b))
}

#[test]
fn two_instances_share_partitions_and_append_each_message_once() {
    two_instances_share_partitions(GroupProtocol::Classic);
}

#[test]
fn two_instances_share_partitions_with_the_consumer_protocol() {
    two_instances_share_partitions(GroupProtocol::Consumer);
}

fn two_instances_share_partitions(protocol: GroupProtocol) {
    let influx = Influxd::start();
    let kafka = RealKafka::shared();
    let topics = Topics::create(kafka, 8, 1);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ts0 = p::base_ts();
    let config = |dir: &std::path::Path| {
        p::with_protocol(topics.apply(p::config(kafka, &influx, dir)), protocol)
    };
    let ((a, stats_a), (b, stats_b)) =
        start_two_sharing_8_partitions(&config(d1.path()), &config(d2.path()));
    produce_metrics(kafka, &topics.metrics, 40_000, 8, &["t1"], ts0);
    kafka.flush();
    wait_for("40000 metrics in mon", LONG, || {
        (p::count_field(&influx, "mon", "cpu.idle_perc", "value") == 40_000).then_some(())
    });
    wait_for("all offsets committed", LONG, || {
        (committed_total(kafka, &topics.metrics_group(), &topics.metrics, 8) == 40_000)
            .then_some(())
    });
    a.shutdown();
    b.shutdown();
    let (na, nb) = (
        stats_a.wal_points_appended.load(Relaxed),
        stats_b.wal_points_appended.load(Relaxed),
    );
    assert_eq!(
        na + nb,
        40_000,
        "each message must reach exactly one WAL exactly once ({na} + {nb})"
    );
    assert!(
        na > 0 && nb > 0,
        "both instances must have taken a share ({na}, {nb})"
    );
}

/// Two members of one group while messages flow: the second starts
/// mid-stream, then the first stops mid-stream. Each message enters one WAL
/// exactly once (the points both appended add up to what was produced) and
/// every one reaches InfluxDB.
#[test]
fn a_rebalance_under_load_enters_each_message_into_one_wal_once() {
    const PARTITIONS: i32 = 8;
    const RATE: u64 = 10_000;
    let influx = Influxd::start();
    let kafka = RealKafka::shared();
    let topics = Topics::create(kafka, PARTITIONS, 1);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ts0 = p::base_ts();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let produced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let load = {
        let (stop, produced, topic) = (stop.clone(), produced.clone(), topics.metrics.clone());
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut i = 0u64;
            while !stop.load(Relaxed) {
                let msg = p::metric("cpu.idle_perc", "t1", "host", ts0 + i as i64, 1.5);
                kafka.produce(&topic, Some((i % PARTITIONS as u64) as i32), msg.as_bytes());
                i += 1;
                produced.store(i, Relaxed);
                if i % 500 == 0 {
                    let due = Duration::from_secs_f64(i as f64 / RATE as f64);
                    if let Some(ahead) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(ahead);
                    }
                }
            }
            kafka.flush();
        })
    };
    let consumed = |s: &Stats| s.consumed_total(monasca_persister::stats::TopicKind::Metrics);
    let (a, stats_a) = start(&topics.apply(p::config(kafka, &influx, d1.path())));
    wait_for("the first member consuming", LONG, || {
        (consumed(&stats_a) >= 10_000).then_some(())
    });
    let (b, stats_b) = start(&topics.apply(p::config(kafka, &influx, d2.path())));
    wait_for("both members consuming", LONG, || {
        let (na, nb) = (
            stats_a.assigned_partitions[0].load(Relaxed),
            stats_b.assigned_partitions[0].load(Relaxed),
        );
        let b_read = consumed(&stats_b);
        (na > 0 && nb > 0 && na + nb == PARTITIONS as i64 && b_read >= 5_000).then_some(())
    });
    let a_before = consumed(&stats_a);
    wait_for(
        "the first member consuming after the rebalance",
        LONG,
        || (consumed(&stats_a) >= a_before + 5_000).then_some(()),
    );
    a.shutdown();
    let b_before = consumed(&stats_b);
    wait_for(
        "the second member taking every partition, still consuming",
        LONG,
        || {
            (stats_b.assigned_partitions[0].load(Relaxed) == PARTITIONS as i64
                && consumed(&stats_b) >= b_before + 10_000)
                .then_some(())
        },
    );
    stop.store(true, Relaxed);
    load.join().expect("the load thread");
    let total = produced.load(Relaxed);
    wait_for(&format!("{total} metrics in mon"), LONG, || {
        (p::count_field(&influx, "mon", "cpu.idle_perc", "value") == total).then_some(())
    });
    wait_for("all offsets committed", LONG, || {
        (committed_total(kafka, &topics.metrics_group(), &topics.metrics, PARTITIONS)
            == total as i64)
            .then_some(())
    });
    b.shutdown();
    let (na, nb) = (
        stats_a.wal_points_appended.load(Relaxed),
        stats_b.wal_points_appended.load(Relaxed),
    );
    assert_eq!(
        na + nb,
        total,
        "each message must enter one WAL exactly once ({na} + {nb} appended, {total} produced)"
    );
}

/// Stops both members of a group one right after the other, so that the
/// second is closing while the group hands it the first one's partitions:
/// librdkafka can abort the whole process when a close meets an assignment
/// in progress (see `leave_group` in src/kafka_source/membership.rs). An abort
/// ends this test binary with SIGABRT.
#[test]
fn members_stopping_during_a_rebalance_close_cleanly() {
    const ROUNDS: usize = 4;
    const PER_ROUND: usize = 2_000;
    let influx = Influxd::start();
    let kafka = Kafka::start(1, &[(METRICS, 8), (ALARMS, 1)]);
    let ts0 = p::base_ts();
    for round in 0..ROUNDS {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        produce_metrics(
            &kafka,
            METRICS,
            PER_ROUND,
            8,
            &["t1"],
            ts0 + (round * PER_ROUND) as i64,
        );
        kafka.flush();
        let ((a, _), (b, stats_b)) = start_two_sharing_8_partitions(
            &p::config(&kafka, &influx, d1.path()),
            &p::config(&kafka, &influx, d2.path()),
        );
        a.shutdown();
        b.shutdown();
        assert_eq!(
            stats_b.assigned_partitions[0].load(Relaxed),
            0,
            "round {round}: a stopped member still counts partitions as its own"
        );
    }
    // Whatever the stopped members read and committed, a last member finds
    // the rest where they left it.
    let d3 = tempfile::tempdir().unwrap();
    let (c, _stats_c) = start(&p::config(&kafka, &influx, d3.path()));
    wait_for("every round's metrics in mon", LONG, || {
        let want = (ROUNDS * PER_ROUND) as u64;
        (p::count_field(&influx, "mon", "cpu.idle_perc", "value") == want).then_some(())
    });
    c.shutdown();
}

#[test]
fn influxdb_outage_keeps_consuming_into_the_wal_then_delivers() {
    let mut influx = Influxd::start();
    let kafka = Kafka::start(1, &[(METRICS, 4), (ALARMS, 1)]);
    let dir = tempfile::tempdir().unwrap();
    let config = p::config(&kafka, &influx, dir.path());
    influx.stop(false);
    let (pipeline, stats) = start(&config);
    let ts0 = p::base_ts();
    produce_metrics(&kafka, METRICS, 10_000, 4, &["t1"], ts0);
    kafka.flush();
    // Offsets advance although InfluxDB is down: the WAL holds the data.
    wait_for("offsets committed during the outage", LONG, || {
        (committed_total(&kafka, "1_metrics", METRICS, 4) == 10_000).then_some(())
    });
    assert!(
        pipeline.wal().pending_records() > 0,
        "the WAL should hold the unwritten records"
    );
    wait_for("a failed write attempt", LONG, || {
        (stats.write_requests(monasca_persister::stats::WriteOutcome::Retriable) > 0).then_some(())
    });
    influx.restart();
    wait_for("10000 metrics after the outage", LONG, || {
        (p::count_field(&influx, "mon", "cpu.idle_perc", "value") == 10_000).then_some(())
    });
    wait_for("WAL empty", LONG, || {
        (pipeline.wal().pending_records() == 0).then_some(())
    });
    pipeline.shutdown();
}

#[test]
fn tiny_wal_limit_pauses_partitions_and_loses_nothing() {
    let mut influx = Influxd::start();
    let kafka = Kafka::start(1, &[(METRICS, 8), (ALARMS, 1)]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = p::config(&kafka, &influx, dir.path());
    config.wal.max_size_mb = 1;
    config.kafka_metrics.batch_size = 1000;
    influx.stop(false);
    let (pipeline, stats) = start(&config);
    let ts0 = p::base_ts();
    // ~8 MB of hard-to-compress lines: far over the 1 MB limit.
    let mut rng = fastrand::Rng::with_seed(7);
    let n = 40_000;
    for i in 0..n {
        let noise: String = (0..96).map(|_| rng.alphanumeric()).collect();
        kafka.produce(
            METRICS,
            Some(i % 8),
            p::metric_with_meta("t1", &format!("h{}", i % 10), ts0 + i as i64, &noise).as_bytes(),
        );
    }
    kafka.flush();
    wait_for("consumers paused by back-pressure", LONG, || {
        (stats.paused_consumers.load(Relaxed) > 0).then_some(())
    });
    // While paused, consumption stops short of the end.
    let consumed_while_paused = stats.consumed_total(monasca_persister::stats::TopicKind::Metrics);
    assert!(
        consumed_while_paused < n as u64,
        "back-pressure should stop consumption before the end ({consumed_while_paused})"
    );
    assert!(pipeline.wal().pending_bytes() > 1024 * 1024);
    influx.restart();
    wait_for("all metrics after resuming", LONG, || {
        (p::count_field(&influx, "mon", "disk.io", "value") == n as u64).then_some(())
    });
    wait_for("consumers resumed", LONG, || {
        (stats.paused_consumers.load(Relaxed) == 0).then_some(())
    });
    pipeline.shutdown();
}

#[test]
fn a_stalled_but_healthy_influxdb_leaves_the_backlog_in_kafka() {
    let influx = Influxd::start();
    let kafka = Kafka::start(1, &[(METRICS, 16), (ALARMS, 1)]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = p::config(&kafka, &influx, dir.path());
    // The stall must not turn into failed writes: those end the wait.
    config.influxdb.timeout_seconds = 600;
    let (pipeline, stats) = start(&config);
    wait_for("partitions assigned", LONG, || {
        (stats.assigned_partitions[0].load(Relaxed) == 16).then_some(())
    });
    influx.pause();
    let ts0 = p::base_ts();
    // ~24 MB of lines: more than the writers' whole in-memory hand-off.
    // Over 16 partitions, because the mock broker keeps only the last
    // 5 MiB of each: more per partition and it would drop unread messages.
    let noise = "n".repeat(200);
    let n = 70_000;
    for i in 0..n {
        kafka.produce(
            METRICS,
            Some(i % 16),
            p::metric_with_meta("t1", &format!("h{}", i % 10), ts0 + i as i64, &noise).as_bytes(),
        );
    }
    kafka.flush();
    wait_for("a consumer waiting for the stalled writers", LONG, || {
        (stats.consumer_waits_for_writers.load(Relaxed) > 0).then_some(())
    });
    let read = stats.consumed_total(monasca_persister::stats::TopicKind::Metrics);
    assert!(
        read < n as u64,
        "the consumer should stop reading ahead of stalled writers ({read} of {n})"
    );
    influx.resume();
    wait_for("all metrics once InfluxDB answers again", LONG, || {
        (p::count_field(&influx, "mon", "disk.io", "value") == n as u64).then_some(())
    });
    assert_eq!(
        stats.wal_records_read_back.load(Relaxed),
        0,
        "no record should have gone through the disk and back"
    );
    pipeline.shutdown();
}

#[test]
fn poison_messages_go_to_dead_letters_and_never_stall_the_stream() {
    let influx = Influxd::start();
    let kafka = Kafka::start(1, &[(METRICS, 2), (ALARMS, 1)]);
    let dir = tempfile::tempdir().unwrap();
    let config = p::config(&kafka, &influx, dir.path());
    let ts0 = p::base_ts();
    let poison: [&[u8]; 5] = [
        b"not json at all",
        b"{}",
        br#"{"metric": {"name": "x", "timestamp": 1, "value": 1}}"#,
        br#"{"metric": {"name": "cpu", "dimensions": {}, "timestamp": 1554725987408, "value": "abc"}, "meta": {"region": "r", "tenantId": "t1"}}"#,
        b"\xff\xfe binary",
    ];
    let mut good = 0;
    let mut bad = 0;
    for i in 0..2000 {
        if i % 100 == 7 {
            kafka.produce(
                METRICS,
                Some(i % 2),
                poison[(i / 100) as usize % poison.len()],
            );
            bad += 1;
        } else {
            kafka.produce(
                METRICS,
                Some(i % 2),
                p::metric("cpu.idle_perc", "t1", "h", ts0 + i as i64, 1.0).as_bytes(),
            );
            good += 1;
        }
    }
    kafka.flush();
    let (pipeline, stats) = start(&config);
    wait_for("good metrics written", LONG, || {
        (p::count_field(&influx, "mon", "cpu.idle_perc", "value") == good).then_some(())
    });
    wait_for("offsets past the poison", LONG, || {
        (committed_total(&kafka, "1_metrics", METRICS, 2) == 2000).then_some(())
    });
    pipeline.shutdown();
    let text =
        std::fs::read_to_string(dir.path().join("dead-letter.jsonl")).expect("dead-letter file");
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letter is JSON"))
        .collect();
    assert_eq!(entries.len(), bad, "{text}");
    for e in &entries {
        assert_eq!(e["topic"], METRICS);
        assert!(
            e["offset"].as_i64().is_some() && e["partition"].as_i64().is_some(),
            "{e}"
        );
        assert!(!e["reason"].as_str().unwrap_or("").is_empty(), "{e}");
    }
    let rejected: u64 = stats.rejected_snapshot().values().sum();
    assert_eq!(rejected, bad as u64);
}

#[test]
fn broker_faults_are_survived_without_loss() {
    let influx = Influxd::start();
    let kafka = Kafka::start(1, &[(METRICS, 4), (ALARMS, 1)]);
    let dir = tempfile::tempdir().unwrap();
    let config = p::config(&kafka, &influx, dir.path());
    let ts0 = p::base_ts();
    produce_metrics(&kafka, METRICS, 5_000, 4, &["t1"], ts0);
    kafka.flush();
    let errors = [
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
    ];
    kafka
        .cluster
        .request_errors(RDKafkaApiKey::OffsetCommit, &errors);
    kafka.cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let (pipeline, _stats) = start(&config);
    wait_for("first 5000 metrics", LONG, || {
        (p::count_field(&influx, "mon", "cpu.idle_perc", "value") == 5_000).then_some(())
    });
    kafka.cluster.broker_down(1).expect("broker down");
    // Produced while the broker is down: buffered by the test producer until it is back.
    produce_metrics(&kafka, METRICS, 5_000, 4, &["t1"], ts0 + 5_000);
    kafka.cluster.broker_up(1).expect("broker up");
    kafka.flush();
    wait_for("all 10000 metrics", LONG, || {
        (p::count_field(&influx, "mon", "cpu.idle_perc", "value") == 10_000).then_some(())
    });
    wait_for("all offsets committed", LONG, || {
        (committed_total(&kafka, "1_metrics", METRICS, 4) == 10_000).then_some(())
    });
    pipeline.shutdown();
}
