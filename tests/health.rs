//! The health endpoint against the real pipeline: `/healthcheck` follows
//! InfluxDB going away and coming back (with traffic and while idle), and
//! `/metrics` is valid Prometheus text whose counters match what was produced.

mod support;

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monasca_persister::health::{HealthServer, HealthSettings};
use monasca_persister::pipeline::{Control, Pipeline};
use monasca_persister::stats::Stats;
use support::influxd::Influxd;
use support::kafka::{Kafka, TestKafka};
use support::persister::{self as p, ALARMS, METRICS};
use support::wait_for;

const LONG: Duration = Duration::from_secs(120);

fn get(url: &str) -> (u16, String) {
    let mut resp = ureq::get(url)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let mut body = String::new();
    resp.body_mut()
        .as_reader()
        .read_to_string(&mut body)
        .expect("read response body");
    (resp.status().as_u16(), body)
}

fn scrape(base: &str) -> prometheus_parse::Scrape {
    let (status, body) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines)
        .unwrap_or_else(|e| panic!("/metrics is not valid Prometheus text: {e}\n{body}"))
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one sample of {name}{labels:?}, found {found:?}"
    );
    found[0]
}

#[test]
fn healthcheck_follows_influxdb_and_metrics_match_the_traffic() {
    support::init_test_logging();
    let mut influx = Influxd::start();
    let kafka = Kafka::start(1, &[(METRICS, 4), (ALARMS, 1)]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = p::config(&kafka, &influx, dir.path());
    config.health.influxdb_unhealthy_after_seconds = 1;
    let stats = Arc::new(Stats::new());
    let pipeline =
        Pipeline::start(&config, stats.clone(), Arc::new(Control::new())).expect("start pipeline");
    let bind: std::net::SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let _server = HealthServer::start(
        bind,
        pipeline.health(),
        HealthSettings::from_config(&config),
    )
    .expect("start health server");
    let base = format!("http://{bind}");

    let ts0 = p::base_ts();
    let unix_now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is past 1970")
            .as_secs_f64()
    };
    let before_writes = unix_now();
    let last_write = |s: &prometheus_parse::Scrape| {
        value(
            s,
            "monasca_persister_last_write_success_timestamp_seconds",
            &[],
        )
    };
    assert_eq!(last_write(&scrape(&base)), 0.0, "no write yet");
    for i in 0..1000 {
        kafka.produce(
            METRICS,
            Some(i % 4),
            p::metric("cpu.idle_perc", "t1", "h1", ts0 + i as i64, 1.0).as_bytes(),
        );
    }
    for i in 0..10 {
        kafka.produce(ALARMS, Some(0), p::alarm("a1", "t1", ts0 + i).as_bytes());
    }
    for poison in [&b"not json"[..], b"{}", b"[1,2]"] {
        kafka.produce(METRICS, Some(0), poison);
    }
    kafka.flush();
    wait_for("1000 metrics written", LONG, || {
        (p::count_field(&influx, "mon", "cpu.idle_perc", "value") == 1000).then_some(())
    });
    wait_for("10 alarms written", LONG, || {
        (p::count_field(&influx, "mon", "alarm_state_history", "alarm_id") == 10).then_some(())
    });
    let healthy = wait_for("healthy /healthcheck", LONG, || {
        let (status, body) = get(&format!("{base}/healthcheck"));
        (status == 200).then_some(body)
    });
    let json: serde_json::Value = serde_json::from_str(&healthy).expect("healthcheck is JSON");
    assert_eq!(json["status"], "ok");
    assert_eq!(
        json["kafka"]["topics"][METRICS]["assigned_partitions"], 4,
        "{json:#}"
    );
    assert_eq!(json["wal"]["ok"], true);

    wait_for("counters to settle", LONG, || {
        let s = scrape(&base);
        (value(&s, "monasca_persister_points_written_total", &[]) == 1010.0).then_some(())
    });
    let s = scrape(&base);
    assert_eq!(
        value(
            &s,
            "monasca_persister_messages_consumed_total",
            &[("topic", "metrics")]
        ),
        1003.0
    );
    assert_eq!(
        value(
            &s,
            "monasca_persister_messages_consumed_total",
            &[("topic", "alarm_transitions")]
        ),
        10.0
    );
    let rejected: f64 = s
        .samples
        .iter()
        .filter(|x| x.metric == "monasca_persister_messages_rejected_total")
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(rejected, 3.0);
    assert_eq!(value(&s, "monasca_persister_dead_letters_total", &[]), 3.0);
    assert_eq!(
        value(
            &s,
            "monasca_persister_write_requests_total",
            &[("outcome", "retriable_error")]
        ),
        0.0
    );
    assert!(value(&s, "process_resident_memory_bytes", &[]) > 0.0);
    let written_at = last_write(&s);
    assert!(
        before_writes - 0.001 <= written_at && written_at <= unix_now(),
        "last write at {written_at}, writes began after {before_writes}"
    );
    assert!(
        s.samples
            .iter()
            .any(|x| x.metric == "monasca_persister_write_duration_seconds"),
        "write latency histogram missing"
    );

    // InfluxDB goes away while metrics flow: unhealthy once writes fail for longer than the threshold.
    influx.stop(true);
    for i in 0..100 {
        kafka.produce(
            METRICS,
            Some(i % 4),
            p::metric("cpu.idle_perc", "t1", "h2", ts0 + 5000 + i as i64, 1.0).as_bytes(),
        );
    }
    kafka.flush();
    let body = wait_for("503 while InfluxDB is down", LONG, || {
        let (status, body) = get(&format!("{base}/healthcheck"));
        (status == 503).then_some(body)
    });
    let json: serde_json::Value = serde_json::from_str(&body).expect("healthcheck is JSON");
    assert_eq!(json["influxdb"]["ok"], false, "{json:#}");
    assert_eq!(json["status"], "unhealthy");

    influx.restart();
    wait_for("200 after InfluxDB is back", LONG, || {
        (get(&format!("{base}/healthcheck")).0 == 200).then_some(())
    });
    wait_for("the outage's metrics written", LONG, || {
        (p::count_field(&influx, "mon", "cpu.idle_perc", "value") == 1100).then_some(())
    });

    // Idle: no writes to fail, the probe notices the outage.
    influx.stop(true);
    wait_for(
        "503 while InfluxDB is down and the stream idle",
        LONG,
        || (get(&format!("{base}/healthcheck")).0 == 503).then_some(()),
    );
    influx.restart();
    wait_for("200 after InfluxDB is back again", LONG, || {
        (get(&format!("{base}/healthcheck")).0 == 200).then_some(())
    });
    pipeline.shutdown();
}
