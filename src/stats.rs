//! The persister's own counters, gauges and histograms, shared by every
//! thread (lock-free on the hot path) and rendered by the health endpoint.
//! Labels are bounded: topic kinds, rejection kinds and write outcomes — never
//! tenants or databases.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Which stream a consumer reads; a bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TopicKind {
    /// `[kafka_metrics]`.
    Metrics,
    /// `[kafka_alarm_history]`.
    AlarmTransitions,
    /// `[kafka_events]`.
    Events,
}

impl TopicKind {
    /// Stable label value.
    pub fn label(self) -> &'static str {
        match self {
            TopicKind::Metrics => "metrics",
            TopicKind::AlarmTransitions => "alarm_transitions",
            TopicKind::Events => "events",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
    /// The kind a WAL record was appended as (`kind as u8`).
    pub fn from_record_kind(kind: u8) -> Option<TopicKind> {
        TopicKind::ALL.into_iter().find(|k| *k as u8 == kind)
    }
    /// All kinds, for rendering.
    pub const ALL: [TopicKind; 3] = [
        TopicKind::Metrics,
        TopicKind::AlarmTransitions,
        TopicKind::Events,
    ];
}

/// A fixed-bucket latency histogram in seconds (Prometheus semantics: cumulative on render).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// Bucket bounds for latencies from sub-millisecond fsyncs to multi-second HTTP writes.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Histogram {
    /// A histogram with the given upper bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        if let Some(i) = self.bounds.iter().position(|b| seconds <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }
    /// Records the time elapsed since `start`.
    pub fn observe_since(&self, start: Instant) {
        self.observe(start.elapsed().as_secs_f64());
    }
    /// `(upper bound, cumulative count)` per bucket, then the total count and sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut acc = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                acc += c.load(Relaxed);
                (*b, acc)
            })
            .collect();
        (
            buckets,
            self.count.load(Relaxed),
            self.sum_micros.load(Relaxed) as f64 / 1e6,
        )
    }
}

/// Outcome of one InfluxDB write request; a bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WriteOutcome {
    /// 204.
    Success,
    /// 400 with some lines rejected; the rest stored.
    Partial,
    /// Connection error, timeout, 5xx, auth failure: retried.
    Retriable,
}

impl WriteOutcome {
    /// Stable label value.
    pub fn label(self) -> &'static str {
        match self {
            WriteOutcome::Success => "success",
            WriteOutcome::Partial => "partial",
            WriteOutcome::Retriable => "retriable_error",
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Everything the persister counts about itself.
pub struct Stats {
    /// Process start, for uptime.
    pub started: Instant,
    consumed: [AtomicU64; 3],
    rejected: Mutex<BTreeMap<(TopicKind, &'static str), u64>>,
    /// Consumer lag per topic kind (sum over assigned partitions), from librdkafka statistics.
    pub consumer_lag: [AtomicI64; 3],
    /// Partitions currently assigned to this process, per topic kind.
    pub assigned_partitions: [AtomicI64; 3],
    /// Unix ms of the last poll that reached the broker, per topic kind (0 = never).
    pub last_poll_ms: [AtomicI64; 3],
    /// Whether a broker of each topic kind's consumers is up (librdkafka statistics).
    pub kafka_connected: [std::sync::atomic::AtomicBool; 3],
    /// What keeps each topic kind from being consumed, for `/healthcheck`
    /// (a missing topic, refused credentials), if anything.
    kafka_error: [Mutex<Option<String>>; 3],
    /// Offsets Kafka deleted (retention) before they were read, per topic kind.
    pub offsets_skipped: [AtomicU64; 3],
    /// Whether consumers are paused for WAL back-pressure (count of paused consumers).
    pub paused_consumers: AtomicI64,
    /// Points InfluxDB stored.
    pub points_written: AtomicU64,
    /// Points InfluxDB refused (unparsable, type conflict).
    pub points_rejected: AtomicU64,
    /// Points InfluxDB dropped as older than the retention policy.
    pub points_beyond_retention: AtomicU64,
    write_requests: [AtomicU64; 3],
    /// InfluxDB write latency.
    pub write_latency: Histogram,
    /// Write retries after a retriable failure.
    pub write_retries: AtomicU64,
    /// Unix ms of the last successful InfluxDB write (0 = never).
    pub last_write_ok_ms: AtomicI64,
    /// Unix ms when the current run of InfluxDB failures began (0 = not failing).
    pub influx_failing_since_ms: AtomicI64,
    /// Unix ms when pings of an idle InfluxDB began to fail (0 = not failing).
    pub influx_ping_failing_since_ms: AtomicI64,
    /// Consecutive failed write attempts.
    pub influx_consecutive_failures: AtomicU64,
    /// Databases created by the persister.
    pub databases_created: AtomicU64,
    /// WAL appends (flush points) and their latency (append + fsync).
    pub wal_appends: AtomicU64,
    /// WAL append latency.
    pub wal_append_latency: Histogram,
    /// Points (lines) appended to the WAL.
    pub wal_points_appended: AtomicU64,
    /// WAL records replayed at start-up.
    pub wal_replayed_records: AtomicU64,
    /// WAL records writers read back from disk: replayed ones, and those
    /// appended while the in-memory hand-off was full.
    pub wal_records_read_back: AtomicU64,
    /// Times a consumer waited for the writers rather than read further
    /// ahead of a healthy InfluxDB.
    pub consumer_waits_for_writers: AtomicU64,
    /// Entries written to the dead-letter file (or only counted when so configured).
    pub dead_letters: AtomicU64,
    /// Kafka offset commits that failed (harmless: the WAL holds the truth).
    pub commit_failures: AtomicU64,
    /// The events sink (Elasticsearch).
    pub events: EventsStats,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Fresh counters.
    pub fn new() -> Self {
        Stats {
            started: Instant::now(),
            consumed: Default::default(),
            rejected: Mutex::new(BTreeMap::new()),
            consumer_lag: Default::default(),
            assigned_partitions: Default::default(),
            last_poll_ms: Default::default(),
            kafka_connected: Default::default(),
            kafka_error: Default::default(),
            offsets_skipped: Default::default(),
            paused_consumers: AtomicI64::new(0),
            points_written: AtomicU64::new(0),
            points_rejected: AtomicU64::new(0),
            points_beyond_retention: AtomicU64::new(0),
            write_requests: Default::default(),
            write_latency: Histogram::new(LATENCY_BUCKETS),
            write_retries: AtomicU64::new(0),
            last_write_ok_ms: AtomicI64::new(0),
            influx_failing_since_ms: AtomicI64::new(0),
            influx_ping_failing_since_ms: AtomicI64::new(0),
            influx_consecutive_failures: AtomicU64::new(0),
            databases_created: AtomicU64::new(0),
            wal_appends: AtomicU64::new(0),
            wal_append_latency: Histogram::new(LATENCY_BUCKETS),
            wal_points_appended: AtomicU64::new(0),
            wal_replayed_records: AtomicU64::new(0),
            wal_records_read_back: AtomicU64::new(0),
            consumer_waits_for_writers: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            events: EventsStats::default(),
        }
    }

    /// Counts `n` messages read from Kafka.
    pub fn consumed(&self, topic: TopicKind, n: u64) {
        self.consumed[topic.index()].fetch_add(n, Relaxed);
    }
    /// Messages read so far for `topic`.
    pub fn consumed_total(&self, topic: TopicKind) -> u64 {
        self.consumed[topic.index()].load(Relaxed)
    }
    /// Counts one message rejected before InfluxDB (undecodable, bad value…).
    pub fn rejected(&self, topic: TopicKind, reason: &'static str) {
        if let Ok(mut m) = self.rejected.lock() {
            *m.entry((topic, reason)).or_insert(0) += 1;
        }
    }
    /// `(topic, reason) → count` of rejected messages.
    pub fn rejected_snapshot(&self) -> BTreeMap<(TopicKind, &'static str), u64> {
        self.rejected.lock().map(|m| m.clone()).unwrap_or_default()
    }
    /// Counts one InfluxDB write request.
    pub fn write_request(&self, outcome: WriteOutcome) {
        record_request(
            outcome,
            &self.write_requests,
            &self.last_write_ok_ms,
            &self.influx_failing_since_ms,
            &self.influx_consecutive_failures,
        );
    }
    /// Whether the last InfluxDB write attempt failed (and none succeeded since).
    pub fn influx_failing(&self) -> bool {
        self.influx_consecutive_failures.load(Relaxed) > 0
    }
    /// Write requests so far with `outcome`.
    pub fn write_requests(&self, outcome: WriteOutcome) -> u64 {
        self.write_requests[outcome as usize].load(Relaxed)
    }
    /// Sets (or clears) what keeps `topic` from being consumed.
    pub fn set_kafka_error(&self, topic: TopicKind, error: Option<String>) {
        if let Ok(mut e) = self.kafka_error[topic.index()].lock() {
            *e = error;
        }
    }
    /// What keeps `topic` from being consumed, if anything.
    pub fn kafka_error(&self, topic: TopicKind) -> Option<String> {
        self.kafka_error[topic.index()]
            .lock()
            .ok()
            .and_then(|e| e.clone())
    }
    /// Notes a successful poll of `topic`.
    pub fn polled(&self, topic: TopicKind) {
        self.last_poll_ms[topic.index()].store(now_ms(), Relaxed);
    }
    /// Current Unix time in ms (the clock the `*_ms` fields use).
    pub fn now_ms() -> i64 {
        now_ms()
    }
    /// Index of a topic kind in the per-topic arrays.
    pub fn topic_index(topic: TopicKind) -> usize {
        topic.index()
    }
}

/// Counts a write request of a sink with `outcome`: a success notes the time
/// and ends a run of failures, a failure starts or extends one.
fn record_request(
    outcome: WriteOutcome,
    requests: &[AtomicU64; 3],
    last_ok_ms: &AtomicI64,
    failing_since_ms: &AtomicI64,
    consecutive_failures: &AtomicU64,
) {
    requests[outcome as usize].fetch_add(1, Relaxed);
    match outcome {
        WriteOutcome::Success | WriteOutcome::Partial => {
            last_ok_ms.store(now_ms(), Relaxed);
            failing_since_ms.store(0, Relaxed);
            consecutive_failures.store(0, Relaxed);
        }
        WriteOutcome::Retriable => {
            let _ = failing_since_ms.compare_exchange(0, now_ms(), Relaxed, Relaxed);
            consecutive_failures.fetch_add(1, Relaxed);
        }
    }
}

/// What the events sink counts: documents Elasticsearch stored or refused,
/// `_bulk` requests by outcome and latency, and whether it is failing.
pub struct EventsStats {
    /// Documents stored.
    pub documents_indexed: AtomicU64,
    /// Documents refused for good (dead-lettered).
    pub documents_rejected: AtomicU64,
    bulk_requests: [AtomicU64; 3],
    /// `_bulk` latency.
    pub bulk_latency: Histogram,
    /// `_bulk` attempts repeated after a retriable failure.
    pub bulk_retries: AtomicU64,
    /// Unix ms of the last `_bulk` request answered per item (0 = never).
    pub last_write_ok_ms: AtomicI64,
    /// Unix ms when the current run of failures began (0 = not failing).
    pub failing_since_ms: AtomicI64,
    /// Unix ms when pings of an idle Elasticsearch began to fail (0 = not failing).
    pub ping_failing_since_ms: AtomicI64,
    /// Consecutive failed `_bulk` attempts.
    pub consecutive_failures: AtomicU64,
}

impl Default for EventsStats {
    fn default() -> Self {
        EventsStats {
            documents_indexed: AtomicU64::new(0),
            documents_rejected: AtomicU64::new(0),
            bulk_requests: Default::default(),
            bulk_latency: Histogram::new(LATENCY_BUCKETS),
            bulk_retries: AtomicU64::new(0),
            last_write_ok_ms: AtomicI64::new(0),
            failing_since_ms: AtomicI64::new(0),
            ping_failing_since_ms: AtomicI64::new(0),
            consecutive_failures: AtomicU64::new(0),
        }
    }
}

impl EventsStats {
    /// Counts one `_bulk` request: `Success` when every item was stored,
    /// `Partial` when the answer refused or deferred some, `Retriable` when
    /// the request failed as a whole.
    pub fn bulk_request(&self, outcome: WriteOutcome) {
        record_request(
            outcome,
            &self.bulk_requests,
            &self.last_write_ok_ms,
            &self.failing_since_ms,
            &self.consecutive_failures,
        );
    }
    /// `_bulk` requests so far with `outcome`.
    pub fn bulk_requests(&self, outcome: WriteOutcome) -> u64 {
        self.bulk_requests[outcome as usize].load(Relaxed)
    }
    /// Whether the last `_bulk` request failed (and none succeeded since).
    pub fn failing(&self) -> bool {
        self.consecutive_failures.load(Relaxed) > 0
    }
}
