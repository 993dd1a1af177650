//! The HTTP endpoint on `[health] bind`: `/healthcheck` (JSON status of
//! Kafka, InfluxDB, Elasticsearch when events are consumed, and the WAL;
//! 200 or 503) and `/metrics` (Prometheus text exposition of [`Stats`]).
//! Served by [`crate::http`] on its own thread.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::http::{HttpServer, Limits, Response};
use crate::influx::InfluxWriter;
use crate::pipeline::disk_space::DiskSpace;
use crate::pipeline::event_sink::EventsSink;
use crate::stats::{Histogram, Stats, TopicKind, WriteOutcome};

/// What the endpoint reads of the running pipeline (and the sinks its
/// prober pings). Built once by `Pipeline::health`.
#[derive(Clone)]
pub struct HealthHandle {
    /// Counters.
    pub stats: Arc<Stats>,
    /// The WAL's size, pending and quarantined records.
    pub wal: Arc<wal::Wal>,
    /// Room on the disks of the WAL and the dead letters.
    pub disk_space: Arc<DiskSpace>,
    /// InfluxDB, pinged while no write succeeded lately.
    pub influx: Arc<InfluxWriter>,
    /// Elasticsearch, when events are consumed.
    pub events: Option<Arc<EventsSink>>,
}

/// Settings the endpoint needs besides the pipeline's state.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// InfluxDB failing longer than this makes the service unhealthy.
    pub influxdb_unhealthy_after: Duration,
    /// Elasticsearch failing longer than this makes the service unhealthy
    /// (when events are consumed).
    pub elasticsearch_unhealthy_after: Duration,
    /// Topics consumed (for per-topic Kafka status).
    pub topics: Vec<(TopicKind, String)>,
    /// WAL limit in bytes.
    pub wal_max_bytes: u64,
}

impl HealthSettings {
    /// The settings `config` implies.
    pub fn from_config(config: &crate::config::Config) -> Self {
        HealthSettings {
            influxdb_unhealthy_after: Duration::from_secs(
                config.health.influxdb_unhealthy_after_seconds,
            ),
            elasticsearch_unhealthy_after: Duration::from_secs(
                config.health.elasticsearch_unhealthy_after_seconds,
            ),
            topics: [
                (&config.kafka_metrics, TopicKind::Metrics),
                (&config.kafka_alarm_history, TopicKind::AlarmTransitions),
                (&config.kafka_events, TopicKind::Events),
            ]
            .into_iter()
            .filter(|(s, _)| s.enabled)
            .map(|(s, k)| (k, s.topic.clone()))
            .collect(),
            wal_max_bytes: config.wal.max_size_mb * 1024 * 1024,
        }
    }
}

/// How often the prober pings InfluxDB when no write succeeded lately.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// A running health server.
pub struct HealthServer {
    server: Option<HttpServer>,
    probe_stop: Option<crossbeam_channel::Sender<()>>,
    probe: Option<std::thread::JoinHandle<()>>,
}

impl HealthServer {
    /// Binds `bind` and serves until dropped.
    pub fn start(
        bind: std::net::SocketAddr,
        pipeline: HealthHandle,
        settings: HealthSettings,
    ) -> anyhow::Result<HealthServer> {
        let probe_pipeline = pipeline.clone();
        let handler = Box::new(move |path: &str| match path {
            "/healthcheck" => {
                let (ok, body) = healthcheck(&pipeline, &settings);
                Response {
                    status: if ok { 200 } else { 503 },
                    content_type: "application/json",
                    body,
                }
            }
            "/metrics" => Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: render_metrics(&pipeline, &settings),
            },
            _ => Response::text(404, "not found: try /healthcheck or /metrics\n"),
        });
        let limits = Limits {
            max_connections: connection_budget(),
            ..Limits::default()
        };
        let server = HttpServer::start(bind, "health", limits, handler)
            .with_context(|| format!("binding the health endpoint to {bind} ([health] bind)"))?;
        let (probe_stop, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let probe = std::thread::Builder::new()
            .name("influxdb-probe".into())
            .spawn(move || probe_influxdb(&probe_pipeline, &stop_rx))
            .context("spawning the InfluxDB probe thread")?;
        log::info!("health endpoint on http://{bind}/healthcheck and /metrics");
        Ok(HealthServer {
            server: Some(server),
            probe_stop: Some(probe_stop),
            probe: Some(probe),
        })
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.server.take();
        self.probe_stop.take();
        if let Some(t) = self.probe.take() {
            let _ = t.join();
        }
    }
}

/// How many connections the endpoint may hold open: 64, or a quarter of the
/// file descriptors this process has left when fewer (the WAL, Kafka and
/// InfluxDB need the rest), and at least 4.
fn connection_budget() -> usize {
    const MOST: usize = 64;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    match limit {
        Some(limit) => {
            let left = usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_sub(open);
            (left / 4).clamp(4, MOST)
        }
        None => MOST,
    }
}

/// While no write has succeeded recently (an idle stream, or writes
/// failing), pings InfluxDB (and Elasticsearch, when events are consumed)
/// so the health check sees an outage even when there is nothing to write.
fn probe_influxdb(pipeline: &HealthHandle, stop: &crossbeam_channel::Receiver<()>) {
    let stats = &pipeline.stats;
    while crate::retry::sleep_unless_stopped(PROBE_INTERVAL, stop) {
        probe(
            &stats.last_write_ok_ms,
            &stats.influx_ping_failing_since_ms,
            || pipeline.influx.client().ping().is_ok(),
        );
        if let Some(events) = &pipeline.events {
            probe(
                &stats.events.last_write_ok_ms,
                &stats.events.ping_failing_since_ms,
                || events.writer.client().ping().is_ok(),
            );
        }
    }
}

/// One look at a sink: pings it unless a write succeeded within the probe
/// interval, and notes when pings began to fail.
fn probe(
    last_ok_ms: &std::sync::atomic::AtomicI64,
    ping_failing_since_ms: &std::sync::atomic::AtomicI64,
    ping: impl FnOnce() -> bool,
) {
    let last_ok = last_ok_ms.load(Relaxed);
    if (last_ok > 0 && Stats::now_ms() - last_ok < PROBE_INTERVAL.as_millis() as i64) || ping() {
        ping_failing_since_ms.store(0, Relaxed);
    } else {
        let _ = ping_failing_since_ms.compare_exchange(0, Stats::now_ms(), Relaxed, Relaxed);
    }
}

/// `(ok, JSON)` of a sink: failing for longer than `unhealthy_after`
/// (writes failing, or pings failing while idle) is not ok.
fn sink_status(
    last_ok_ms: i64,
    failing_since_ms: i64,
    ping_failing_since_ms: i64,
    consecutive_failures: u64,
    unhealthy_after: Duration,
) -> (bool, serde_json::Value) {
    // The older of the two failure starts.
    let failing_since = [failing_since_ms, ping_failing_since_ms]
        .into_iter()
        .filter(|t| *t > 0)
        .min()
        .unwrap_or(0);
    let failing_for = age_seconds(failing_since);
    let ok = failing_for.is_none_or(|s| s < unhealthy_after.as_secs_f64());
    (
        ok,
        serde_json::json!({
            "ok": ok,
            "seconds_since_last_write": age_seconds(last_ok_ms),
            "consecutive_failures": consecutive_failures,
            "failing_for_seconds": failing_for,
        }),
    )
}

fn age_seconds(ms: i64) -> Option<f64> {
    (ms > 0).then(|| (Stats::now_ms() - ms) as f64 / 1000.0)
}

/// A `/metrics` family with a sample per topic: name, type, help, and the
/// value for a topic kind.
type PerTopic<'a> = (&'a str, &'a str, &'a str, &'a dyn Fn(TopicKind) -> String);

/// `(healthy, JSON body)`.
fn healthcheck(pipeline: &HealthHandle, settings: &HealthSettings) -> (bool, String) {
    let stats = &pipeline.stats;
    let mut kafka_ok = true;
    let mut topics = serde_json::Map::new();
    for (kind, topic) in &settings.topics {
        let i = Stats::topic_index(*kind);
        let connected = stats.kafka_connected[i].load(Relaxed);
        kafka_ok &= connected;
        topics.insert(
            topic.clone(),
            serde_json::json!({
                "connected": connected,
                "assigned_partitions": stats.assigned_partitions[i].load(Relaxed),
                "seconds_since_last_poll": age_seconds(stats.last_poll_ms[i].load(Relaxed)),
                "consumer_lag": stats.consumer_lag[i].load(Relaxed),
                "offsets_skipped": stats.offsets_skipped[i].load(Relaxed),
                "error": stats.kafka_error(*kind),
                "group": stats.group_members(*kind).iter().map(|m| serde_json::json!({
                    "instance_id": m.instance_id,
                    "protocol": m.protocol,
                    "state": m.state,
                    "join_state": m.join_state,
                    "assigned_partitions": m.assigned_partitions,
                })).collect::<Vec<_>>(),
                "rebalances": stats.rebalances(*kind),
            }),
        );
    }
    let (influx_ok, influxdb) = sink_status(
        stats.last_write_ok_ms.load(Relaxed),
        stats.influx_failing_since_ms.load(Relaxed),
        stats.influx_ping_failing_since_ms.load(Relaxed),
        stats.influx_consecutive_failures.load(Relaxed),
        settings.influxdb_unhealthy_after,
    );
    let events = pipeline.events.as_ref().map(|_| {
        let e = &stats.events;
        sink_status(
            e.last_write_ok_ms.load(Relaxed),
            e.failing_since_ms.load(Relaxed),
            e.ping_failing_since_ms.load(Relaxed),
            e.consecutive_failures.load(Relaxed),
            settings.elasticsearch_unhealthy_after,
        )
    });
    let elasticsearch_ok = events.as_ref().is_none_or(|(ok, _)| *ok);
    let wal_bytes = pipeline.wal.pending_bytes();
    let disk_full = pipeline.disk_space.full_reason();
    let wal_ok = !pipeline.wal.over_limit() && disk_full.is_none();
    let healthy = kafka_ok && influx_ok && elasticsearch_ok && wal_ok;
    let mut body = serde_json::json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "kafka": { "ok": kafka_ok, "topics": topics },
        "influxdb": influxdb,
        "wal": {
            "ok": wal_ok,
            "pending_records": pipeline.wal.pending_records(),
            "pending_bytes": wal_bytes,
            "max_bytes": settings.wal_max_bytes,
            "quarantined_records": pipeline.wal.quarantined(),
            "disk_full": disk_full,
        },
    });
    if let (Some((_, elasticsearch)), Some(map)) = (events, body.as_object_mut()) {
        map.insert("elasticsearch".to_string(), elasticsearch);
    }
    (
        healthy,
        crate::secrets::mask(&format!("{body:#}\n")).into_owned(),
    )
}

/// Resident set size of this process in bytes, from /proc (0 where unavailable).
pub fn resident_memory_bytes() -> u64 {
    let page = rustix::param::page_size() as u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * page)
        .unwrap_or(0)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    family(out, name, "histogram", help);
    let (buckets, count, sum) = h.snapshot();
    for (le, c) in buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {c}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
    );
}

/// The Prometheus text exposition of everything counted.
pub fn render_metrics(pipeline: &HealthHandle, settings: &HealthSettings) -> String {
    let s = &pipeline.stats;
    let mut o = String::with_capacity(8192);
    let p = "monasca_persister";
    family(
        &mut o,
        &format!("{p}_messages_consumed_total"),
        "counter",
        "Messages read from Kafka, by topic kind.",
    );
    for k in TopicKind::ALL {
        let _ = writeln!(
            o,
            "{p}_messages_consumed_total{{topic=\"{}\"}} {}",
            k.label(),
            s.consumed_total(k)
        );
    }
    family(
        &mut o,
        &format!("{p}_messages_rejected_total"),
        "counter",
        "Messages that could not become a line (dead-lettered), by topic kind and reason.",
    );
    for ((k, reason), n) in s.rejected_snapshot() {
        let _ = writeln!(
            o,
            "{p}_messages_rejected_total{{topic=\"{}\",reason=\"{reason}\"}} {n}",
            k.label()
        );
    }
    let counters: [(&str, &str, u64); 11] = [
        (
            "points_written_total",
            "Points InfluxDB stored.",
            s.points_written.load(Relaxed),
        ),
        (
            "points_rejected_total",
            "Points InfluxDB refused (dead-lettered unless ignore_parse_point_error).",
            s.points_rejected.load(Relaxed),
        ),
        (
            "points_beyond_retention_total",
            "Points InfluxDB dropped as older than the retention policy.",
            s.points_beyond_retention.load(Relaxed),
        ),
        (
            "write_retries_total",
            "InfluxDB write attempts retried after a retriable failure.",
            s.write_retries.load(Relaxed),
        ),
        (
            "databases_created_total",
            "InfluxDB databases created by the persister.",
            s.databases_created.load(Relaxed),
        ),
        (
            "wal_appends_total",
            "Flush points appended to the WAL.",
            s.wal_appends.load(Relaxed),
        ),
        (
            "wal_points_appended_total",
            "Points appended to the WAL.",
            s.wal_points_appended.load(Relaxed),
        ),
        (
            "dead_letters_total",
            "Entries written to (or counted for) the dead-letter file.",
            s.dead_letters.load(Relaxed),
        ),
        (
            "wal_records_read_back_total",
            "WAL records writers read back from disk (start-up replay, or appended while the in-memory hand-off was full).",
            s.wal_records_read_back.load(Relaxed),
        ),
        (
            "consumer_waits_for_writers_total",
            "Times a consumer waited for the writers instead of reading further ahead of a healthy InfluxDB.",
            s.consumer_waits_for_writers.load(Relaxed),
        ),
        (
            "offset_commit_failures_total",
            "Kafka offset commits that failed (harmless: the WAL holds the offsets).",
            s.commit_failures.load(Relaxed),
        ),
    ];
    for (name, help, v) in counters {
        family(&mut o, &format!("{p}_{name}"), "counter", help);
        let _ = writeln!(o, "{p}_{name} {v}");
    }
    family(
        &mut o,
        &format!("{p}_write_requests_total"),
        "counter",
        "InfluxDB write requests, by outcome.",
    );
    for outcome in [
        WriteOutcome::Success,
        WriteOutcome::Partial,
        WriteOutcome::Retriable,
    ] {
        let _ = writeln!(
            o,
            "{p}_write_requests_total{{outcome=\"{}\"}} {}",
            outcome.label(),
            s.write_requests(outcome)
        );
    }
    histogram(
        &mut o,
        &format!("{p}_write_duration_seconds"),
        "InfluxDB write request latency.",
        &s.write_latency,
    );
    histogram(
        &mut o,
        &format!("{p}_wal_append_duration_seconds"),
        "WAL append latency including fsync.",
        &s.wal_append_latency,
    );
    let gauges: [(&str, &str, f64); 8] = [
        (
            "wal_pending_records",
            "Records in the WAL not yet written to InfluxDB.",
            pipeline.wal.pending_records() as f64,
        ),
        (
            "wal_pending_bytes",
            "Bytes in the WAL not yet written to InfluxDB.",
            pipeline.wal.pending_bytes() as f64,
        ),
        (
            "wal_max_bytes",
            "WAL size above which consumption pauses ([wal] max_size_mb).",
            settings.wal_max_bytes as f64,
        ),
        (
            "wal_quarantined_records",
            "WAL records reported durable and later found missing or unreadable (damage; bytes kept in the WAL's quarantine/).",
            pipeline.wal.quarantined() as f64,
        ),
        (
            "wal_replayed_records",
            "WAL records replayed at start-up.",
            s.wal_replayed_records.load(Relaxed) as f64,
        ),
        (
            "consumers_paused",
            "Consumers paused by WAL back-pressure or a full disk.",
            s.paused_consumers.load(Relaxed) as f64,
        ),
        (
            "wal_disk_full",
            "1 while the WAL's disk has too little room to append (consumption paused), else 0.",
            f64::from(u8::from(pipeline.disk_space.is_full())),
        ),
        (
            "last_write_success_timestamp_seconds",
            "Unix time of the last InfluxDB write that was accepted (0: none yet).",
            s.last_write_ok_ms.load(Relaxed) as f64 / 1000.0,
        ),
    ];
    for (name, help, v) in gauges {
        family(&mut o, &format!("{p}_{name}"), "gauge", help);
        let _ = writeln!(o, "{p}_{name} {v}");
    }
    if pipeline.events.is_some() {
        render_events_metrics(&mut o, &s.events);
    }
    let per_topic: [PerTopic; 5] = [
        (
            "consumer_lag",
            "gauge",
            "Messages behind the partition end, summed over assigned partitions (librdkafka statistics).",
            &|k| s.consumer_lag[Stats::topic_index(k)].load(Relaxed).to_string(),
        ),
        (
            "offsets_skipped_total",
            "counter",
            "Offsets Kafka deleted (retention) before they were read; consumption resumed at the earliest offset.",
            &|k| s.offsets_skipped[Stats::topic_index(k)].load(Relaxed).to_string(),
        ),
        (
            "assigned_partitions",
            "gauge",
            "Kafka partitions assigned to this process.",
            &|k| s.assigned_partitions[Stats::topic_index(k)].load(Relaxed).to_string(),
        ),
        (
            "rebalances_total",
            "counter",
            "Consumer group rebalances that moved partitions to or from this process.",
            &|k| s.rebalances(k).to_string(),
        ),
        (
            "partitions_unowned_seconds_total",
            "counter",
            "Seconds consumers waited in their group holding no partition (from start-up or from losing their last one), counted when partitions arrive.",
            &|k| s.unowned_seconds(k).to_string(),
        ),
    ];
    for (name, kind, help, value) in per_topic {
        family(&mut o, &format!("{p}_{name}"), kind, help);
        for (k, _) in &settings.topics {
            let _ = writeln!(o, "{p}_{name}{{topic=\"{}\"}} {}", k.label(), value(*k));
        }
    }
    family(
        &mut o,
        &format!("{p}_uptime_seconds"),
        "gauge",
        "Seconds since the process started.",
    );
    let _ = writeln!(
        o,
        "{p}_uptime_seconds {}",
        s.started.elapsed().as_secs_f64()
    );
    family(
        &mut o,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    let _ = writeln!(
        o,
        "process_resident_memory_bytes {}",
        resident_memory_bytes()
    );
    o
}

/// The events sink's families (`monasca_persister_events_*`).
fn render_events_metrics(o: &mut String, e: &crate::stats::EventsStats) {
    let p = "monasca_persister_events";
    let counters: [(&str, &str, u64); 3] = [
        (
            "documents_indexed_total",
            "Event documents Elasticsearch stored.",
            e.documents_indexed.load(Relaxed),
        ),
        (
            "documents_rejected_total",
            "Event documents Elasticsearch refused for good (dead-lettered).",
            e.documents_rejected.load(Relaxed),
        ),
        (
            "bulk_retries_total",
            "_bulk attempts repeated after documents failed for now.",
            e.bulk_retries.load(Relaxed),
        ),
    ];
    for (name, help, v) in counters {
        family(o, &format!("{p}_{name}"), "counter", help);
        let _ = writeln!(o, "{p}_{name} {v}");
    }
    family(
        o,
        &format!("{p}_bulk_requests_total"),
        "counter",
        "_bulk requests to Elasticsearch, by outcome.",
    );
    for outcome in [
        WriteOutcome::Success,
        WriteOutcome::Partial,
        WriteOutcome::Retriable,
    ] {
        let _ = writeln!(
            o,
            "{p}_bulk_requests_total{{outcome=\"{}\"}} {}",
            outcome.label(),
            e.bulk_requests(outcome)
        );
    }
    histogram(
        o,
        &format!("{p}_bulk_duration_seconds"),
        "Elasticsearch _bulk request latency.",
        &e.bulk_latency,
    );
    family(
        o,
        &format!("{p}_last_write_success_timestamp_seconds"),
        "gauge",
        "Unix time of the last _bulk request Elasticsearch answered per document (0: none yet).",
    );
    let _ = writeln!(
        o,
        "{p}_last_write_success_timestamp_seconds {}",
        e.last_write_ok_ms.load(Relaxed) as f64 / 1000.0
    );
}

#[cfg(test)]
mod tests {
    fn vm_rss_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/self/status");
        kb * 1024
    }

    /// The RSS gauge agrees with the kernel's own figure in kB, whatever
    /// the page size (`/proc/self/statm` counts pages).
    #[test]
    fn resident_memory_matches_the_kernels_vm_rss() {
        // The first reads fault in the code and buffers they use.
        let _ = (vm_rss_bytes(), super::resident_memory_bytes());
        let reads: Vec<(u64, u64, u64)> = (0..10)
            .map(|_| {
                let before = vm_rss_bytes();
                let ours = super::resident_memory_bytes();
                (before, ours, vm_rss_bytes())
            })
            .collect();
        assert!(
            reads
                .iter()
                .any(|&(before, ours, after)| ours >= before.min(after) && ours <= before.max(after)),
            "the RSS gauge never lay between two readings of VmRSS (before, gauge, after): {reads:?}"
        );
    }
}
