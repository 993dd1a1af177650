//! The InfluxDB sink against a real influxd: database creation and
//! retention policies, db-per-tenant, refused lines into the dead-letter
//! file, retention drops, outages, authentication, chunking and 413 splits.

mod support;

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use monasca_persister::config::{InfluxSection, Secret};
use monasca_persister::dead_letter::{
    DeadLetter, DeadLetterConfig, DeadLetterStore, KIND_INFLUXDB_REJECTED,
};
use monasca_persister::influx::{
    InfluxClient, InfluxError, InfluxWriter, WriteReport, WriterOptions,
};
use monasca_persister::retry::Retry;
use support::influxd::{HttpOptions, Influxd, InfluxdOptions};
use support::wait_for;

// ---------------------------------------------------------------- helpers

static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps every log record of the test binary, so tests can look for (and
/// rule out) log lines.
struct CapturingLogger;

impl log::Log for CapturingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {} {}", record.level(), record.target(), record.args());
        CAPTURED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_logger(&CapturingLogger).expect("install the capturing logger");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

fn logs() -> Vec<String> {
    CAPTURED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn section(influx: &Influxd) -> InfluxSection {
    InfluxSection {
        ip_address: "127.0.0.1".into(),
        port: influx.port,
        timeout_seconds: 10,
        ..InfluxSection::default()
    }
}

fn writer_with(influx: &Influxd, batch_size: usize, retention_hours: u32) -> InfluxWriter {
    writer_with_config(&InfluxSection {
        batch_size,
        default_retention_hours: retention_hours,
        ..section(influx)
    })
}

fn writer_with_config(config: &InfluxSection) -> InfluxWriter {
    capture_logs();
    InfluxWriter::from_config(config).expect("writer")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `n` metric lines like the transform produces, one series per host.
fn metric_lines(measurement: &str, n: usize, base_ms: i64) -> String {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!(
            "{measurement},_region=RegionOne,_tenant_id=abc,hostname=host{} value={}.5,value_meta=\"{{}}\" {}\n",
            i % 50,
            i,
            base_ms + i as i64
        ));
    }
    out
}

fn retention_policies(influx: &Influxd, db: &str) -> Vec<(String, String, bool)> {
    let q = format!("SHOW RETENTION POLICIES ON \"{db}\"");
    influx
        .rows(db, &q)
        .into_iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_string(),
                r[1].as_str().unwrap_or_default().to_string(),
                r.last().and_then(|v| v.as_bool()).unwrap_or(false),
            )
        })
        .collect()
}

/// Every column of `SHOW RETENTION POLICIES`, in name order.
fn policy_rows(influx: &Influxd, db: &str) -> Vec<Vec<serde_json::Value>> {
    let mut rows = influx.rows(db, &format!("SHOW RETENTION POLICIES ON \"{db}\""));
    rows.sort_by_key(|r| r[0].to_string());
    rows
}

fn assert_complete(report: &WriteReport) {
    if let Some(retry) = &report.retry {
        panic!("write not complete: {} (report {report:?})", retry.error);
    }
}

fn rejected_texts(report: &WriteReport) -> Vec<(String, String)> {
    report
        .rejected
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(&r.line).into_owned(),
                r.reason.clone(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- databases

#[test]
fn writes_to_an_existing_database_without_touching_its_policies() {
    let influx = Influxd::start();
    influx.query(None, "CREATE DATABASE mon");
    let writer = writer_with(&influx, 10_000, 24);
    let lines = metric_lines("cpu.idle_perc", 500, now_ms());
    let report = writer.write_batch("mon", lines.as_bytes(), 500);
    assert_complete(&report);
    assert_eq!(
        (
            report.points_stored,
            report.requests,
            report.database_created
        ),
        (500, 1, false)
    );
    assert_eq!(influx.count("mon", "cpu.idle_perc"), 500);
    assert_eq!(
        retention_policies(&influx, "mon"),
        [("autogen".to_string(), "0s".to_string(), true)],
        "a database we did not create must keep its policies"
    );
}

#[test]
fn creates_a_missing_database_without_a_retention_policy() {
    let influx = Influxd::start();
    let writer = writer_with(&influx, 10_000, 0);
    let lines = metric_lines("mem.free_mb", 10, now_ms());
    let report = writer.write_batch("fresh", lines.as_bytes(), 10);
    assert_complete(&report);
    assert!(report.database_created);
    assert_eq!(report.points_stored, 10);
    assert!(influx.databases().contains(&"fresh".to_string()));
    assert_eq!(
        retention_policies(&influx, "fresh"),
        [("autogen".to_string(), "0s".to_string(), true)]
    );
    assert_eq!(influx.count("fresh", "mem.free_mb"), 10);
}

#[test]
fn creates_a_missing_database_with_the_default_retention_policy() {
    let influx = Influxd::start();
    let writer = writer_with(&influx, 10_000, 24);
    let lines = metric_lines("mem.free_mb", 10, now_ms());
    let report = writer.write_batch("with_rp", lines.as_bytes(), 10);
    assert_complete(&report);
    assert!(report.database_created);
    assert_eq!(
        retention_policies(&influx, "with_rp"),
        [
            ("24h".to_string(), "24h0m0s".to_string(), true),
            ("autogen".to_string(), "0s".to_string(), false)
        ]
    );
    // The same policies, durations, shard durations and replication as
    // the reference's database, made by its two statements (as its
    // InfluxDB client sends them).
    influx.query(None, "CREATE DATABASE \"reference\"");
    influx.query(
        None,
        "CREATE RETENTION POLICY \"24h\" ON \"reference\" DURATION 24h REPLICATION 1 SHARD DURATION 0s DEFAULT",
    );
    assert_eq!(
        policy_rows(&influx, "with_rp"),
        policy_rows(&influx, "reference")
    );
    assert_eq!(influx.count("with_rp", "mem.free_mb"), 10);
    let again = writer.write_batch("with_rp", lines.as_bytes(), 10);
    assert!(!again.database_created && again.requests == 1, "{again:?}");
}

#[test]
fn db_per_tenant_lands_in_three_databases() {
    let influx = Influxd::start();
    let writer = writer_with(&influx, 10_000, 0);
    let t = now_ms();
    for (i, tenant) in ["t1", "t2", "t3"].iter().enumerate() {
        let lines = metric_lines("cpu.user_perc", 10 * (i + 1), t)
            .replace("_tenant_id=abc", &format!("_tenant_id={tenant}"));
        let report = writer.write_batch(&format!("mon_{tenant}"), lines.as_bytes(), 10 * (i + 1));
        assert_complete(&report);
        assert!(report.database_created);
    }
    let mut dbs = influx.databases();
    dbs.retain(|d| d.starts_with("mon"));
    dbs.sort();
    assert_eq!(dbs, ["mon_t1", "mon_t2", "mon_t3"]);
    for (i, tenant) in ["t1", "t2", "t3"].iter().enumerate() {
        let db = format!("mon_{tenant}");
        assert_eq!(influx.count(&db, "cpu.user_perc"), 10 * (i as u64 + 1));
        let tags = influx.rows(
            &db,
            "SHOW TAG VALUES FROM \"cpu.user_perc\" WITH KEY = \"_tenant_id\"",
        );
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0][1].as_str(), Some(*tenant));
    }
}

#[test]
fn writers_racing_on_a_new_database_create_it_once() {
    let influx = Influxd::start();
    let writer = Arc::new(writer_with(&influx, 10_000, 12));
    let t = now_ms();
    let reports: Vec<WriteReport> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let writer = &writer;
                s.spawn(move || {
                    let lines = metric_lines(&format!("m{i}"), 100, t);
                    writer.write_batch("mon_race", lines.as_bytes(), 100)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    for r in &reports {
        assert_complete(r);
        assert_eq!(r.points_stored, 100);
    }
    assert_eq!(
        reports.iter().filter(|r| r.database_created).count(),
        1,
        "{reports:?}"
    );
    for i in 0..4 {
        assert_eq!(influx.count("mon_race", &format!("m{i}")), 100);
    }
    assert_eq!(
        retention_policies(&influx, "mon_race"),
        [
            ("12h".to_string(), "12h0m0s".to_string(), true),
            ("autogen".to_string(), "0s".to_string(), false)
        ]
    );
}

#[test]
fn a_database_influxdb_refuses_to_create_dead_letters_the_batch() {
    let influx = Influxd::start();
    let writer = writer_with(&influx, 10_000, 0);
    let lines = metric_lines("cpu", 3, now_ms());
    let report = writer.write_batch("bad/name", lines.as_bytes(), 3);
    assert_complete(&report);
    assert_eq!(report.points_stored, 0);
    assert_eq!(report.rejected.len(), 3);
    for (line, reason) in rejected_texts(&report) {
        assert!(line.starts_with("cpu,"), "{line}");
        assert!(
            reason.contains("database cannot be created") && reason.contains("invalid name"),
            "{reason}"
        );
    }
}

// ---------------------------------------------------------------- refused lines

#[test]
fn refused_lines_go_to_the_dead_letter_file_and_the_rest_is_stored() {
    let influx = Influxd::start();
    influx.query(None, "CREATE DATABASE mon");
    let t = now_ms();
    // Field types are per shard: establish `value` as a float in the shard
    // the batch goes to.
    let (status, body) = influx.write_lines("mon", &format!("cpu,hostname=h value=1 {}", t - 1000));
    assert_eq!(status, 204, "{body}");
    let writer = writer_with(&influx, 10_000, 0);
    let mut batch = metric_lines("cpu", 40, t);
    batch.insert_str(
        0,
        &format!("cpu,hostname=conflict value=\"a string\" {t}\n"),
    );
    batch.push_str("bad line here\n");
    batch.push_str(&format!(
        "cpu,hostname=conflict2 value=\"again\" {}\n",
        t + 1
    ));
    batch.push_str("mem value= 5\n");
    batch.push_str(&metric_lines("mem", 10, t));
    let good = 50;
    let report = writer.write_batch("mon", batch.as_bytes(), good + 4);
    assert_complete(&report);
    assert_eq!(report.points_stored, good, "{report:?}");
    let mut refused = rejected_texts(&report);
    refused.sort();
    let conflict = "field type conflict: input field \"value\" on measurement \"cpu\" is type string, already exists as type float";
    assert_eq!(
        refused,
        [
            (
                "bad line here".to_string(),
                "unable to parse: invalid field format".to_string()
            ),
            (
                format!("cpu,hostname=conflict value=\"a string\" {t}"),
                conflict.to_string()
            ),
            (
                format!("cpu,hostname=conflict2 value=\"again\" {}", t + 1),
                conflict.to_string()
            ),
            (
                "mem value= 5".to_string(),
                "unable to parse: missing field value".to_string()
            ),
        ]
    );
    assert_eq!(
        influx.count("mon", "cpu"),
        41,
        "the first point plus 40 good ones"
    );
    assert_eq!(influx.count("mon", "mem"), 10);

    let dir = tempfile::tempdir().expect("tempdir");
    let store = DeadLetterStore::open(DeadLetterConfig {
        path: dir.path().join("dl/dead-letter.jsonl"),
        max_bytes: 0,
        max_files: 1,
        keep_rejected_lines: true,
    })
    .expect("store");
    for r in &report.rejected {
        store
            .record(&DeadLetter::rejected_line("mon", &r.line, &r.reason))
            .expect("dead-letter");
    }
    store.sync().expect("sync");
    let text = std::fs::read_to_string(store.path()).expect("read dead letters");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(records.len(), 4);
    for (record, (line, reason)) in records.iter().zip(rejected_texts(&report)) {
        assert_eq!(record["line"].as_str(), Some(line.as_str()));
        assert_eq!(record["reason"].as_str(), Some(reason.as_str()));
        assert_eq!(record["database"], "mon");
        assert_eq!(record["kind"], KIND_INFLUXDB_REJECTED);
    }
}

#[test]
fn unparsable_lines_alone_are_named_by_influxdb_without_extra_requests() {
    let influx = Influxd::start();
    influx.query(None, "CREATE DATABASE mon");
    let writer = writer_with(&influx, 10_000, 0);
    let mut batch = metric_lines("disk", 30, now_ms());
    batch.push_str("  bad line here\n");
    batch.push_str("cp\u{fffd}u x\n");
    let report = writer.write_batch("mon", batch.as_bytes(), 32);
    assert_complete(&report);
    assert_eq!(
        (report.points_stored, report.rejected.len(), report.requests),
        (30, 2, 1)
    );
    assert_eq!(report.rejected[0].line, b"bad line here");
    assert_eq!(influx.count("mon", "disk"), 30);
}

#[test]
fn ignore_parse_point_error_counts_refused_lines_without_keeping_them() {
    let influx = Influxd::start();
    influx.query(None, "CREATE DATABASE mon");
    let writer = writer_with(&influx, 10_000, 0);
    let mut batch = metric_lines("disk", 5, now_ms());
    batch.push_str("bad line here\n");
    let report = writer.write_batch("mon", batch.as_bytes(), 6);
    assert_eq!(report.rejected.len(), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DeadLetterStore::open(DeadLetterConfig {
        path: dir.path().join("dead-letter.jsonl"),
        max_bytes: 0,
        max_files: 1,
        keep_rejected_lines: false,
    })
    .expect("store");
    for r in &report.rejected {
        store
            .record(&DeadLetter::rejected_line("mon", &r.line, &r.reason))
            .expect("dead-letter");
    }
    store.sync().expect("sync");
    assert_eq!(std::fs::metadata(store.path()).expect("stat").len(), 0);
    let counts = store.counts();
    assert_eq!((counts.total, counts.discarded), (1, 1));
    assert!(logs()
        .iter()
        .any(|l| l.contains("not kept (ignore_parse_point_error = true)")
            && l.contains("bad line here")));
}

#[test]
fn past_the_split_budget_unexplained_lines_are_all_dead_lettered() {
    let influx = Influxd::start();
    influx.query(None, "CREATE DATABASE mon");
    let t = now_ms();
    influx.write_lines("mon", &format!("cpu value=1 {}", t - 1000));
    let client = InfluxClient::new(&section(&influx)).expect("client");
    let writer = InfluxWriter::new(
        client,
        WriterOptions {
            batch_size: 10_000,
            default_retention_hours: 0,
            split_budget: 2,
        },
    );
    let mut batch = String::new();
    for i in 0..64 {
        if i == 5 || i == 40 {
            batch.push_str(&format!("cpu,hostname=x{i} value=\"s\" {}\n", t + i));
        } else {
            batch.push_str(&format!("cpu,hostname=x{i} value=1 {}\n", t + i));
        }
    }
    let report = writer.write_batch("mon", batch.as_bytes(), 64);
    assert_complete(&report);
    assert_eq!(report.requests, 3, "one write and one split");
    assert_eq!(
        report.points_stored + report.rejected.len(),
        64,
        "every line accounted for"
    );
    let texts = rejected_texts(&report);
    assert!(
        texts.iter().any(|(l, _)| l.contains("hostname=x5 "))
            && texts.iter().any(|(l, _)| l.contains("hostname=x40 "))
    );
    assert!(
        texts.iter().all(|(_, r)| r.contains("may be stored")),
        "{texts:?}"
    );
    assert_eq!(
        influx.count("mon", "cpu"),
        63,
        "the 62 good points were stored anyway"
    );
}

#[test]
fn points_beyond_retention_are_counted_and_the_batch_completes() {
    let influx = Influxd::start();
    let writer = writer_with(&influx, 10_000, 1);
    let t = now_ms();
    let mut batch = metric_lines("net.in_bytes_sec", 7, 1000); // 1970
    batch.push_str(&metric_lines("net.in_bytes_sec", 5, t));
    let report = writer.write_batch("ret", batch.as_bytes(), 12);
    assert_complete(&report);
    assert!(report.database_created);
    assert_eq!(
        (
            report.beyond_retention,
            report.points_stored,
            report.rejected.len()
        ),
        (7, 5, 0)
    );
    assert_eq!(influx.count("ret", "net.in_bytes_sec"), 5);
}

// ---------------------------------------------------------------- outages

#[test]
fn influxd_stopped_means_retriable_and_nothing_acknowledged_until_it_is_back() {
    let mut influx = Influxd::start();
    let writer = writer_with(&influx, 100, 0);
    let t = now_ms();
    writer.write_batch("down", metric_lines("warmup", 1, t).as_bytes(), 1);
    influx.stop(false);
    let batch = metric_lines("cpu.wait_perc", 250, t);
    let report = writer.write_batch("down", batch.as_bytes(), 250);
    let retry = report.retry.as_ref().expect("must ask for a retry");
    assert!(retry.error.is_retriable(), "{}", retry.error);
    assert!(
        matches!(retry.error, InfluxError::Transport { .. }),
        "{:?}",
        retry.error
    );
    assert_eq!((retry.offset, retry.point, retry.chunk), (0, 0, 0));
    assert_eq!(
        (
            report.points_stored,
            report.rejected.len(),
            report.beyond_retention
        ),
        (0, 0, 0)
    );
    let text = retry.error.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", influx.port)) && text.contains("\"down\""),
        "{text}"
    );

    influx.restart();
    let report = writer.write_batch("down", batch.as_bytes(), 250);
    assert_complete(&report);
    assert_eq!((report.points_stored, report.requests), (250, 3));
    assert_eq!(influx.count("down", "cpu.wait_perc"), 250);
}

#[test]
fn write_batch_retrying_rides_out_a_restart() {
    let mut influx = Influxd::start();
    let writer = Arc::new(writer_with(&influx, 10_000, 0));
    influx.query(None, "CREATE DATABASE outage");
    influx.stop(true);
    let batch = metric_lines("load.avg_1_min", 300, now_ms());
    let (_keep_running, stop) = crossbeam_channel::bounded::<()>(1);
    let worker = {
        let (writer, batch) = (Arc::clone(&writer), batch.clone());
        std::thread::spawn(move || {
            let mut retry = Retry::new(
                "InfluxDB writer (outage test)",
                Duration::from_millis(20),
                Duration::from_millis(200),
            );
            writer.write_batch_retrying("outage", batch.as_bytes(), 300, &mut retry, &stop)
        })
    };
    wait_for(
        "the first failure to be logged",
        Duration::from_secs(30),
        || {
            logs()
                .iter()
                .any(|l| {
                    l.starts_with("WARN") && l.contains("outage test) failed, keeping the data")
                })
                .then_some(())
        },
    );
    influx.restart();
    let report = worker.join().expect("writer thread");
    assert_complete(&report);
    assert_eq!(report.points_stored, 300);
    assert_eq!(influx.count("outage", "load.avg_1_min"), 300);
    let lines = logs();
    let mine: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("(outage test)"))
        .collect();
    assert!(
        mine.iter()
            .any(|l| l.starts_with("INFO") && l.contains("recovered after")),
        "{mine:?}"
    );
    assert!(
        mine.len() <= 4,
        "one line per retry instead of a summary: {mine:?}"
    );
}

#[test]
fn shutdown_interrupts_the_backoff_and_keeps_the_batch() {
    let mut influx = Influxd::start();
    let writer = Arc::new(writer_with(&influx, 10_000, 0));
    influx.stop(true);
    let (stop_tx, stop) = crossbeam_channel::bounded::<()>(1);
    let worker = {
        let writer = Arc::clone(&writer);
        std::thread::spawn(move || {
            let mut retry = Retry::new(
                "InfluxDB writer (shutdown test)",
                Duration::from_secs(30),
                Duration::from_secs(30),
            );
            let batch = metric_lines("x", 10, 1000);
            writer.write_batch_retrying("mon", batch.as_bytes(), 10, &mut retry, &stop)
        })
    };
    wait_for(
        "the first failure to be logged",
        Duration::from_secs(30),
        || {
            logs()
                .iter()
                .any(|l| l.contains("(shutdown test) failed"))
                .then_some(())
        },
    );
    let asked = Instant::now();
    drop(stop_tx);
    let report = worker.join().expect("writer thread");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "shutdown waited out the backoff"
    );
    assert!(report.retry.is_some() && report.points_stored == 0);
}

#[test]
fn an_unresponsive_server_times_out_as_retriable() {
    capture_logs();
    // Accepted by the kernel, never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let config = InfluxSection {
        ip_address: "127.0.0.1".into(),
        port,
        timeout_seconds: 1,
        ..InfluxSection::default()
    };
    let writer = InfluxWriter::from_config(&config).expect("writer");
    let started = Instant::now();
    let report = writer.write_batch("mon", b"cpu value=1 1000\n", 1);
    let retry = report.retry.expect("must ask for a retry");
    assert!(
        matches!(retry.error, InfluxError::Timeout { seconds: 1, .. }),
        "{:?}",
        retry.error
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

// ---------------------------------------------------------------- authentication

#[test]
fn a_wrong_password_is_a_retriable_auth_error_logged_without_the_password() {
    let influx = Influxd::start_with(InfluxdOptions { auth: true });
    capture_logs();
    let password = "wr0ng-Passw0rd-7f3a";
    let config = InfluxSection {
        user: "admin".into(),
        password: Secret::new(password),
        ..section(&influx)
    };
    let writer = InfluxWriter::from_config(&config).expect("writer");
    let batch = metric_lines("cpu", 5, now_ms());
    let report = writer.write_batch("secure", batch.as_bytes(), 5);
    let retry = report.retry.as_ref().expect("must ask for a retry");
    assert!(
        retry.error.is_auth() && retry.error.is_retriable(),
        "{:?}",
        retry.error
    );
    assert_eq!(report.points_stored, 0);
    let text = retry.error.to_string();
    assert!(
        text.contains("authentication failed (HTTP 401)") && text.contains("authorization failed"),
        "{text}"
    );
    let mut policy = Retry::new(
        "InfluxDB writer (auth test)",
        Duration::from_millis(1),
        Duration::from_millis(1),
    );
    policy.failed(&retry.error);

    let lines = logs();
    let warned = lines
        .iter()
        .find(|l| l.starts_with("WARN") && l.contains("(auth test) failed"));
    let warned = warned.unwrap_or_else(|| panic!("no WARN line for the auth failure in {lines:?}"));
    assert!(
        warned.contains("authentication failed (HTTP 401)")
            && warned.contains("check [influxdb] user, password"),
        "{warned}"
    );
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"))
    };
    for line in &lines {
        assert!(
            !line.contains(password) && !line.contains(&encoded),
            "secret in a log line: {line}"
        );
    }
    assert!(!format!("{:?}", retry.error).contains(password));

    let good = InfluxSection {
        user: "admin".into(),
        password: Secret::new("admin-secret"),
        ..section(&influx)
    };
    let report = InfluxWriter::from_config(&good)
        .expect("writer")
        .write_batch("secure", batch.as_bytes(), 5);
    assert_complete(&report);
    assert!(report.database_created);
    assert_eq!(influx.count("secure", "cpu"), 5);
}

// ---------------------------------------------------------------- chunking

#[test]
fn batches_are_written_in_chunks_of_batch_size() {
    let influx = Influxd::start();
    influx.query(None, "CREATE DATABASE mon");
    let writer = writer_with(&influx, 1000, 0);
    let t = now_ms();
    let mut batch = metric_lines("cpu", 2400, t);
    // A string value holding a newline is one point, wherever it falls.
    for i in 0..100 {
        batch.push_str(&format!(
            "alarm_state_history,tenant_id=abc reason=\"line one\nline two {i}\" {}\n",
            t + i
        ));
    }
    let report = writer.write_batch("mon", batch.as_bytes(), 2500);
    assert_complete(&report);
    assert_eq!((report.points_stored, report.requests), (2500, 3));
    assert_eq!(influx.count("mon", "cpu"), 2400);
    let rows = influx.rows("mon", "SELECT count(reason) FROM alarm_state_history");
    assert_eq!(rows[0][1].as_u64(), Some(100));
}

#[test]
fn a_request_above_max_body_size_is_split_in_halves() {
    let influx = Influxd::start_with_http(
        InfluxdOptions::default(),
        HttpOptions {
            max_body_size: 4096,
            ..HttpOptions::default()
        },
    );
    influx.query(None, "CREATE DATABASE mon");
    let writer = writer_with(&influx, 10_000, 0);
    let t = now_ms();
    let mut batch = metric_lines("cpu", 150, t);
    let huge = format!("big,hostname=h value_meta=\"{}\" {t}\n", "x".repeat(5000));
    batch.push_str(&huge);
    batch.push_str(&metric_lines("mem", 150, t));
    assert!(batch.len() > 4 * 4096);
    let report = writer.write_batch("mon", batch.as_bytes(), 301);
    assert_complete(&report);
    assert_eq!(report.points_stored, 300, "{report:?}");
    assert!(report.requests > 4, "{}", report.requests);
    assert_eq!(report.rejected.len(), 1);
    assert!(
        report.rejected[0].reason.starts_with("request too large"),
        "{}",
        report.rejected[0].reason
    );
    assert_eq!(report.rejected[0].line, huge.trim_end().as_bytes());
    assert_eq!(influx.count("mon", "cpu") + influx.count("mon", "mem"), 300);
}

#[test]
fn ping_reports_the_server_version() {
    let influx = Influxd::start();
    let client = InfluxClient::new(&section(&influx)).expect("client");
    let version = client.ping().expect("ping");
    assert!(version.starts_with("1."), "{version}");
}

// ---------------------------------------------------------------- TLS

fn https_influxd() -> Influxd {
    Influxd::start_with_http(
        InfluxdOptions::default(),
        HttpOptions {
            tls: true,
            ..HttpOptions::default()
        },
    )
}

#[test]
fn https_without_verification_accepts_any_certificate_and_warns() {
    let influx = https_influxd();
    let config = InfluxSection {
        ssl: true,
        verify_ssl: false,
        ..section(&influx)
    };
    let writer = writer_with_config(&config);
    assert!(writer.client().url().starts_with("https://"));
    let report = writer.write_batch("tls", metric_lines("cpu", 5, now_ms()).as_bytes(), 5);
    assert_complete(&report);
    assert_eq!(influx.count("tls", "cpu"), 5);
    assert!(logs()
        .iter()
        .any(|l| l.starts_with("WARN") && l.contains("verify_ssl = false")));
}

#[test]
fn https_with_verification_trusts_ca_file_and_nothing_else() {
    let influx = https_influxd();
    let trusted = InfluxSection {
        ssl: true,
        verify_ssl: true,
        ca_file: Some(influx.ca_file()),
        ..section(&influx)
    };
    let report = writer_with_config(&trusted).write_batch(
        "tls",
        metric_lines("cpu", 5, now_ms()).as_bytes(),
        5,
    );
    assert_complete(&report);
    assert_eq!(influx.count("tls", "cpu"), 5);

    let untrusted = InfluxSection {
        ssl: true,
        verify_ssl: true,
        ca_file: None,
        ..section(&influx)
    };
    let report = writer_with_config(&untrusted).write_batch(
        "tls",
        metric_lines("mem", 5, now_ms()).as_bytes(),
        5,
    );
    let retry = report
        .retry
        .expect("an unknown issuer must not be accepted");
    assert!(
        matches!(retry.error, InfluxError::Transport { .. }),
        "{:?}",
        retry.error
    );
    assert!(
        retry
            .error
            .to_string()
            .to_lowercase()
            .contains("certificate"),
        "{}",
        retry.error
    );
    assert_eq!(influx.count("tls", "mem"), 0);
}

#[test]
fn plain_http_against_https_is_retriable_and_refuses_no_line() {
    let influx = https_influxd();
    let writer = writer_with_config(&InfluxSection {
        ssl: false,
        ..section(&influx)
    });
    let report = writer.write_batch("tls", metric_lines("cpu", 5, now_ms()).as_bytes(), 5);
    let retry = report.retry.as_ref().expect("must ask for a retry");
    assert!(
        matches!(retry.error, InfluxError::NotInfluxDb { status: 400, .. }),
        "{:?}",
        retry.error
    );
    assert!(
        retry
            .error
            .to_string()
            .contains("check [influxdb] ip_address, port and ssl"),
        "{}",
        retry.error
    );
    assert!(
        report.rejected.is_empty() && report.points_stored == 0,
        "{report:?}"
    );
    assert_eq!(report.requests, 1);
}
