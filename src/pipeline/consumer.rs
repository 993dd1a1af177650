//! A consumer thread: one member of a topic's consumer group. It polls Kafka,
//! turns each message into a line (or a dead letter), and at every flush point
//! makes the batch durable before committing its offsets. Rebalances flush and
//! commit before partitions are given up, and resume assigned partitions from
//! the WAL's offsets when those are ahead of Kafka's (exactly once into the WAL).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::ClientContext;

use super::batch::{PendingBatch, RejectedMessage};
use super::event_sink::EVENTS_RECORD_DATABASE;
use super::fetch_queue::{self, FetchQueue, FetchQueueSlot, Fetched};
use super::kafka_errors::{self, KafkaErrors, Problem};
use super::kafka_log::{self, KafkaLog};
use super::positions::{deleted_before_read, Positions};
use super::Shared;
use crate::config::{Config, KafkaTopicSection};
use crate::dead_letter::{Content, DeadLetter, KafkaSource};
use crate::elasticsearch::document::{self, EventSource};
use crate::stats::TopicKind;
use crate::transform::{Rejection, Target};

/// The WAL offset name of a partition: `topic/partition`.
pub fn offset_name(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// Builds the librdkafka configuration of a consumer of `section`.
pub fn client_config(config: &Config, section: &KafkaTopicSection, member: usize) -> ClientConfig {
    let mut c = ClientConfig::new();
    let client_id = match &section.consumer_id {
        Some(id) if !id.is_empty() => format!("{}-{}", section.client_id, id),
        _ => section.client_id.clone(),
    };
    // The legacy client's fetch sizes (32 KiB by default) would starve
    // librdkafka, whose own default is 1 MiB per partition: they may only raise it.
    let partition_fetch = section
        .max_buffer_size
        .max(section.fetch_size_bytes)
        .max(section.buffer_size.unwrap_or(0))
        .max(1 << 20);
    // librdkafka wants fetch.max.bytes ≥ max.partition.fetch.bytes.
    let fetch_max = partition_fetch.max(8 << 20);
    c.set("bootstrap.servers", section.uri.join(","))
        .set("group.id", &section.group_id)
        .set("client.id", format!("{client_id}-{member}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("max.partition.fetch.bytes", partition_fetch.to_string())
        .set("statistics.interval.ms", "2000")
        // A broker holds an empty fetch this long: bounds the latency at low load.
        .set("fetch.wait.max.ms", "100")
        // librdkafka prefetches up to 64 MiB per consumer by default, plus
        // ~200 bytes of bookkeeping per message. 8 MiB (~30 000 metrics)
        // keeps the pipeline fed (refilled every 10 ms, below) and the
        // process small: measured peak RSS 89/101/121 MiB at 4/8/16 MiB.
        .set("queued.max.messages.kbytes", "8192")
        // Once that prefetch queue is full, librdkafka postpones the next
        // fetch by this much (default 1 s): with a backlog the consumer
        // drained the queue in a fraction of that and then sat idle, which
        // capped a consumer at ~75 000 msg/s. 10 ms keeps it fed.
        .set("fetch.queue.backoff.ms", "10")
        // A fetch response may carry this much (default 50 MiB) on top of
        // the prefetch queue: the largest transient allocation of the process.
        .set("fetch.max.bytes", fetch_max.to_string())
        .set("log_level", "4");
    // Operators' raw librdkafka properties win: TLS, SASL, tuning.
    for (k, v) in &config.kafka_client.properties {
        c.set(k, v.expose());
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// Checks that librdkafka accepts the consumer configuration of every
/// enabled topic (`[kafka_client]` included) by building it, without
/// creating a client or connecting anywhere. Its error texts may quote
/// property values: print them masked (`secrets::mask`).
pub fn check_client_config(config: &Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    for section in [&config.kafka_metrics, &config.kafka_alarm_history] {
        if section.enabled {
            client_config(config, section, 0)
                .create_native_config()
                .with_context(|| {
                    format!(
                        "librdkafka refuses the consumer configuration of [{}] with [kafka_client]",
                        section.section
                    )
                })?;
        }
    }
    Ok(())
}

/// The per-consumer state reachable from librdkafka callbacks (rebalance,
/// statistics, commits), which run on the consumer's own thread inside `poll`.
pub struct PersisterContext {
    topic: String,
    kind: TopicKind,
    shared: Arc<Shared>,
    batch: Mutex<PendingBatch>,
    /// Partition → next offset durable in the WAL (or dead letters): what Kafka should have committed.
    durable: Mutex<BTreeMap<i32, i64>>,
    /// An offset commit failed; commit `durable` again soon.
    commit_failed: AtomicBool,
    /// Partitions paused (WAL back-pressure or a full disk).
    paused: Mutex<bool>,
    /// The WAL went over its limit and is not yet back below its low-water mark.
    wal_over_limit: AtomicBool,
    /// Leaving the group for good: partitions offered now are declined.
    closing: AtomicBool,
    /// Where assigned partitions deliver their messages.
    fetch_queue: FetchQueueSlot,
    /// Connection failures, logged first, summarised, then the recovery.
    kafka_log: KafkaLog,
    /// Start offsets of newly assigned partitions (-1: unknown or revoked),
    /// for the run loop's [`Positions`].
    starts: Mutex<Vec<(i32, i64)>>,
    /// A missing topic and refused credentials: the log and `/healthcheck`.
    errors: KafkaErrors,
}

impl ClientContext for PersisterContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if kafka_log::is_connection_failure(facility) {
            self.kafka_log.failed(message);
        } else {
            kafka_log::forward(level, facility, message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal)) {
            log::error!("librdkafka: {error}: {reason}");
        } else if kafka_errors::classify(&error) == Problem::Other {
            self.kafka_log.failed(&format!("{error}: {reason}"));
        } else {
            // A missing topic, refused credentials: said as such, and kept
            // for /healthcheck.
            self.errors.report(&error, reason, &self.shared.stats);
        }
    }

    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .get(&self.topic)
            .map(|t| {
                t.partitions
                    .values()
                    .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
                    .map(|p| p.consumer_lag)
                    .sum()
            })
            .unwrap_or(0);
        let i = crate::stats::Stats::topic_index(self.kind);
        self.shared.stats.consumer_lag[i].store(lag, std::sync::atomic::Ordering::Relaxed);
        // Bootstrap entries have node id -1; a real broker in state UP means connected.
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        self.shared.stats.kafka_connected[i].store(up, std::sync::atomic::Ordering::Relaxed);
        if up {
            self.errors.connected(&self.shared.stats);
        }
        if up
            && statistics
                .brokers
                .values()
                .all(|b| b.nodeid < 0 || b.state == "UP")
        {
            self.kafka_log.connected();
        }
    }
}

/// Answers an assignment with `tpl`, incrementally under the cooperative
/// protocol (which adds to what is held) and outright under the eager one.
fn take_partitions(
    consumer: &BaseConsumer<PersisterContext>,
    tpl: &TopicPartitionList,
) -> rdkafka::error::KafkaResult<()> {
    if matches!(
        consumer.rebalance_protocol(),
        rdkafka::consumer::RebalanceProtocol::Cooperative
    ) {
        consumer.incremental_assign(tpl)
    } else {
        consumer.assign(tpl)
    }
}

impl ConsumerContext for PersisterContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
                if self.closing.load(Ordering::Relaxed) =>
            {
                // Taking partitions now would start offset queries and
                // fetches that the close then races (see `leave_group`).
                // The group must still be answered: with nothing.
                if let Err(e) = take_partitions(consumer, &TopicPartitionList::new()) {
                    log::warn!("declining partitions of {} while closing: {e}", self.topic);
                }
                log::info!(
                    "declined {} partition(s) of {}: this consumer is closing",
                    tpl.count(),
                    self.topic
                );
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.resume_from_wal(consumer, tpl);
                self.route_to_fetch_queue(tpl);
                if let Err(e) = take_partitions(consumer, tpl) {
                    log::error!("assigning partitions of {}: {e}", self.topic);
                }
                // While paused (back-pressure, full disk), new partitions
                // start paused too; the resume covers the whole assignment.
                if self.paused.lock().is_ok_and(|p| *p) {
                    if let Err(e) = consumer.pause(tpl) {
                        log::warn!("pausing new partitions of {}: {e}", self.topic);
                    }
                }
                self.count_assignment(consumer);
                self.errors.assigned(tpl.count(), &self.shared.stats);
                log::info!(
                    "assigned {} partition(s) of {}: {}",
                    tpl.count(),
                    self.topic,
                    partition_list(tpl)
                );
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                log::info!(
                    "revoking {} partition(s) of {}: flushing first",
                    tpl.count(),
                    self.topic
                );
                let lost = consumer.assignment_lost();
                self.flush(consumer, if lost { None } else { Some(CommitMode::Sync) });
                if let Ok(mut durable) = self.durable.lock() {
                    for e in tpl.elements_for_topic(&self.topic) {
                        durable.remove(&e.partition());
                    }
                }
                if let Ok(mut starts) = self.starts.lock() {
                    starts.extend(
                        tpl.elements_for_topic(&self.topic)
                            .iter()
                            .map(|e| (e.partition(), -1)),
                    );
                }
                let result = if matches!(
                    consumer.rebalance_protocol(),
                    rdkafka::consumer::RebalanceProtocol::Cooperative
                ) {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    log::error!("unassigning partitions of {}: {e}", self.topic);
                }
                self.count_assignment(consumer);
            }
            other => {
                log::error!("rebalance error on {}: {:?}", self.topic, other);
                self.flush(consumer, None);
                let _ = consumer.unassign();
                self.count_assignment(consumer);
            }
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            // Harmless for correctness: the WAL holds the offsets and wins on
            // reassignment; the run loop commits them again shortly.
            self.commit_failed.store(true, Ordering::Relaxed);
            self.shared
                .stats
                .commit_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::debug!(
                "offset commit for {} ({}) failed: {e}",
                self.topic,
                partition_list(offsets)
            );
        }
    }
}

fn partition_list(tpl: &TopicPartitionList) -> String {
    let mut parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => format!("{}@{o}", e.partition()),
            _ => e.partition().to_string(),
        })
        .collect();
    parts.sort();
    parts.join(",")
}

impl PersisterContext {
    fn count_assignment(&self, consumer: &BaseConsumer<Self>) {
        let n = consumer.assignment().map(|a| a.count()).unwrap_or(0) as i64;
        self.shared.stats.assigned_partitions[crate::stats::Stats::topic_index(self.kind)]
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// See [`fetch_queue::rewind_after_error`]; failing that while the
    /// partition is still assigned is fatal.
    fn rewind_after_error(&self, consumer: &BaseConsumer<Self>, partition: i32, offset: i64) {
        let Err(e) = fetch_queue::rewind_after_error(consumer, &self.topic, partition, offset)
        else {
            return;
        };
        let assigned = consumer
            .assignment()
            .map(|a| a.find_partition(&self.topic, partition).is_some())
            .unwrap_or(true);
        if assigned {
            // A pause now would restart the partition one message too far
            // on: stop instead; a restart resumes from the committed offsets.
            self.shared.control.fatal(format!(
                "{}/{partition}: cannot seek back to offset {offset} after a consume error: {e}",
                self.topic
            ));
        }
    }

    /// A message of `partition` came at `offset` where `expected` was due:
    /// warns about and counts the offsets between that Kafka deleted before
    /// they were read (see [`deleted_before_read`]).
    fn check_skipped(
        &self,
        consumer: &BaseConsumer<Self>,
        partition: i32,
        expected: i64,
        offset: i64,
    ) {
        // The log start librdkafka saw in the fetch that brought the
        // message; asked of the broker when it has none.
        let log_start = match fetch_queue::cached_log_start(consumer, &self.topic, partition) {
            Some(low) => low,
            None => match consumer.fetch_watermarks(&self.topic, partition, Duration::from_secs(5))
            {
                Ok((low, _)) => low,
                Err(e) => {
                    log::warn!(
                        "{}/{partition}: offsets {expected}..{offset} were skipped and the log start cannot be read ({e}): messages may have been deleted before they were read",
                        self.topic
                    );
                    return;
                }
            },
        };
        let deleted = deleted_before_read(expected, offset, log_start);
        if deleted > 0 {
            self.shared.stats.offsets_skipped[crate::stats::Stats::topic_index(self.kind)]
                .fetch_add(deleted as u64, Ordering::Relaxed);
            log::warn!(
                "{}/{partition}: {deleted} offset(s) skipped: the messages at offsets {expected}..{} were deleted by Kafka (retention) before they were read; resumed at the earliest offset, {offset}",
                self.topic,
                expected + deleted - 1
            );
        }
    }

    /// Forwards newly assigned partitions to the fetch queue, before they
    /// are assigned. A partition that cannot be routed keeps delivering
    /// through the consumer queue, which the run loop polls too.
    fn route_to_fetch_queue(&self, tpl: &TopicPartitionList) {
        let Some(queue) = self.fetch_queue.get() else {
            return;
        };
        for e in tpl.elements_for_topic(&self.topic) {
            if !queue.route(&self.topic, e.partition()) {
                log::warn!(
                    "{}/{}: cannot route to the batch fetch queue; consuming it one message at a time",
                    self.topic,
                    e.partition()
                );
            }
        }
    }

    /// Sets each newly assigned partition's start offset to the WAL's stored
    /// next offset when that is ahead of the group's committed offset, and
    /// notes where each partition starts (see [`Positions`]).
    fn resume_from_wal(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let committed = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(c) => Some(c),
            Err(e) => {
                log::warn!("reading committed offsets of {}: {e}; resuming from the WAL's offsets where it has them", self.topic);
                None
            }
        };
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        for p in partitions {
            let stored = match self.shared.wal.offset(&offset_name(&self.topic, p)) {
                Ok(o) => o,
                Err(err) => {
                    self.shared.control.fatal(format!(
                        "reading the WAL offset of {}/{p}: {err}",
                        self.topic
                    ));
                    None
                }
            };
            let kafka = committed
                .as_ref()
                .and_then(|c| c.find_partition(&self.topic, p))
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            // Where the partition's next message is expected: a message
            // beyond it may mean the data was deleted before it was read.
            if let Ok(mut starts) = self.starts.lock() {
                starts.push((p, stored.max(kafka).unwrap_or(-1)));
            }
            let Some(stored) = stored else { continue };
            if kafka.is_none_or(|k| stored > k) {
                log::info!(
                    "{}/{p}: resuming at WAL offset {stored} (Kafka committed {kafka:?})",
                    self.topic
                );
                // Repair the group's committed offset too, so that another
                // member taking this partition later does not re-read it.
                if let Ok(mut durable) = self.durable.lock() {
                    durable.insert(p, stored);
                }
                self.commit_failed.store(true, Ordering::Relaxed);
                if let Err(err) = tpl.set_partition_offset(&self.topic, p, Offset::Offset(stored)) {
                    log::error!(
                        "{}/{p}: cannot set start offset {stored}: {err}",
                        self.topic
                    );
                }
            }
        }
    }

    /// The flush point: dead letters durable, lines + offsets durable in one
    /// WAL append, records handed to writers, then offsets committed.
    /// `commit` None skips the commit (assignment lost, or shutting down hard).
    fn flush(&self, consumer: &BaseConsumer<Self>, commit: Option<CommitMode>) {
        // The guard must be gone before the early return: advancing past
        // unread records locks the buffer again.
        let taken = match self.batch.lock() {
            // On a full disk the batch waits (`apply_back_pressure` pauses
            // the partitions meanwhile) and the flush is tried again.
            Ok(b) if !b.is_empty() && !self.shared.disk_space.has_room(b.bytes()) => return,
            Ok(mut b) if !b.is_empty() => Some(b.take()),
            _ => None,
        };
        let Some(taken) = taken else {
            if let Some(mode) = commit {
                self.advance_past_unread_records(consumer);
                self.commit_durable(consumer, mode);
            }
            return;
        };
        let shared = &self.shared;
        if !taken.dead_letters.is_empty() {
            if let Err(e) = self.write_dead_letters(&taken.dead_letters) {
                shared.control.fatal(format!(
                    "writing {} dead letter(s) of {} to {}: {e}",
                    taken.dead_letters.len(),
                    self.topic,
                    shared.dead_letters.path().display()
                ));
                return;
            }
        }
        let names: Vec<(String, i64)> = taken
            .next_offsets
            .iter()
            .map(|(p, o)| (offset_name(&self.topic, *p), *o))
            .collect();
        let offsets: Vec<(&str, i64)> = names.iter().map(|(n, o)| (n.as_str(), *o)).collect();
        let records: Vec<wal::RecordRef<'_>> = taken
            .records
            .iter()
            .map(|(db, lines, points)| wal::RecordRef {
                database: db,
                kind: self.kind as u8,
                points: *points,
                payload: lines,
            })
            .collect();
        let started = Instant::now();
        let ids = match shared.wal.append(&records, &offsets) {
            Ok(ids) => ids,
            Err(e) => {
                shared.control.fatal(format!(
                    "appending {} record(s) from {} to the WAL: {e}",
                    records.len(),
                    self.topic
                ));
                return;
            }
        };
        shared.stats.wal_append_latency.observe_since(started);
        shared
            .stats
            .wal_appends
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let points: u64 = taken.records.iter().map(|r| r.2 as u64).sum();
        shared
            .stats
            .wal_points_appended
            .fetch_add(points, std::sync::atomic::Ordering::Relaxed);
        drop(records);
        let handoff = shared.handoff_for(self.kind);
        for (id, (db, lines, points)) in ids.iter().zip(taken.records) {
            handoff.offer(id, db, points, lines);
        }
        if let Ok(mut durable) = self.durable.lock() {
            durable.extend(taken.next_offsets.iter().map(|(p, o)| (*p, *o)));
        }
        if let Some(mode) = commit {
            self.advance_past_unread_records(consumer);
            self.commit_durable(consumer, mode);
        }
    }

    /// Raises each assigned partition's durable offset to the consumer's
    /// position when that is further on and nothing read is waiting in the
    /// buffer. The offsets between hold records librdkafka consumes without
    /// handing them over: transaction markers and aborted messages (the
    /// default `isolation.level = read_committed`). Without this the group's
    /// offsets would stop short of a partition that ends with a marker, and
    /// its lag never reach zero. Only while nothing fatal happened: a batch
    /// whose append failed is gone from the buffer without being durable.
    /// Returns whether an offset moved.
    fn advance_past_unread_records(&self, consumer: &BaseConsumer<Self>) -> bool {
        // After a fatal error a batch may have been taken and not made
        // durable (a failed append): the position proves nothing then.
        if self.shared.control.fatal_error().is_some() {
            return false;
        }
        if !self.batch.lock().is_ok_and(|b| b.is_empty()) {
            return false;
        }
        let Ok(positions) = consumer.position() else {
            return false;
        };
        let Ok(mut durable) = self.durable.lock() else {
            return false;
        };
        let mut moved = false;
        for e in positions.elements_for_topic(&self.topic) {
            if let Offset::Offset(position) = e.offset() {
                let slot = durable.entry(e.partition()).or_insert(-1);
                if position > *slot {
                    *slot = position;
                    moved = true;
                }
            }
        }
        moved
    }

    /// Commits every offset that is durable locally. Cheap (one entry per
    /// partition), and it repairs any earlier commit that failed.
    fn commit_durable(&self, consumer: &BaseConsumer<Self>, mode: CommitMode) {
        let mut tpl = TopicPartitionList::new();
        if let Ok(durable) = self.durable.lock() {
            for (p, o) in durable.iter() {
                let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o));
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = consumer.commit(&tpl, mode) {
            self.commit_failed.store(true, Ordering::Relaxed);
            self.shared
                .stats
                .commit_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::debug!(
                "committing offsets of {} ({}): {e}",
                self.topic,
                partition_list(&tpl)
            );
        }
    }

    /// Appends the rejected messages to the dead-letter file and fsyncs it.
    fn write_dead_letters(
        &self,
        rejected: &[RejectedMessage],
    ) -> Result<(), crate::dead_letter::DeadLetterError> {
        let store = &self.shared.dead_letters;
        for r in rejected {
            store.record(&DeadLetter {
                kind: r.kind,
                reason: &r.reason,
                source: Some(KafkaSource {
                    topic: &self.topic,
                    partition: r.partition,
                    offset: r.offset,
                }),
                database: None,
                content: Content::Message(&r.payload),
            })?;
            self.shared
                .stats
                .dead_letters
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        store.sync()
    }

    /// Handles one message: a line into the batch, or a dead letter.
    fn handle(
        &self,
        batch: &mut PendingBatch,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
        scratch: &mut Vec<u8>,
    ) {
        let shared = &self.shared;
        let transformer = &shared.transformer;
        let payload = payload.unwrap_or(&[]);
        let result = match self.kind {
            // Every metric goes to the one database: encode it in place.
            TopicKind::Metrics if !transformer.db_per_tenant() => {
                let lines =
                    batch.shared_lines(|| transformer.database(&Target::Shared).into_owned());
                transformer
                    .metric(payload, lines)
                    .map(|_| batch.shared_line_added())
            }
            TopicKind::Events => {
                scratch.clear();
                let index_name = shared.events.as_ref().map_or("", |e| e.index_name.as_str());
                let source = EventSource {
                    topic: &self.topic,
                    partition,
                    offset,
                };
                let today = chrono::Local::now().date_naive();
                document::encode(index_name, source, payload, today, scratch).map(|()| {
                    batch.push_line(&Target::Shared, scratch, || {
                        EVENTS_RECORD_DATABASE.to_string()
                    })
                })
            }
            TopicKind::Metrics | TopicKind::AlarmTransitions => {
                scratch.clear();
                let target = match self.kind {
                    TopicKind::AlarmTransitions => transformer.alarm_transition(payload, scratch),
                    _ => transformer.metric(payload, scratch),
                };
                target.map(|target| {
                    batch.push_line(&target, scratch, || {
                        transformer.database(&target).into_owned()
                    })
                })
            }
        };
        if let Err(rejection) = result {
            shared.stats.rejected(self.kind, rejection.kind());
            self.log_rejection(partition, offset, &rejection);
            batch.dead_letters.push(RejectedMessage {
                partition,
                offset,
                kind: rejection.kind(),
                reason: rejection.to_string(),
                payload: payload.to_vec(),
            });
        }
        batch.advance(partition, offset);
    }

    fn log_rejection(&self, partition: i32, offset: i64, rejection: &Rejection) {
        // One WARN per rejection kind per minute; the rest are counted.
        static LAST: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());
        let Ok(mut last) = LAST.lock() else { return };
        let kind = rejection.kind();
        let now = Instant::now();
        match last.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, t)) if now.duration_since(*t) < Duration::from_secs(60) => return,
            Some((_, t)) => *t = now,
            None => last.push((kind, now)),
        }
        log::warn!("rejected message {}/{partition}@{offset}: {rejection} (more of this kind are counted, not logged, for a minute)", self.topic);
    }

    /// Pauses the assignment while the WAL is over its limit (until it is
    /// below 80 % of it) or its disk has no room; resumes when neither holds.
    fn apply_back_pressure(&self, consumer: &BaseConsumer<Self>) {
        let Ok(mut paused) = self.paused.lock() else {
            return;
        };
        let shared = &self.shared;
        let wal = &shared.wal;
        let over_limit = if self.wal_over_limit.load(Ordering::Relaxed) {
            wal.pending_bytes() > shared.wal_low_water_bytes
        } else {
            wal.over_limit()
        };
        self.wal_over_limit.store(over_limit, Ordering::Relaxed);
        let disk_full = shared.disk_space.is_full();
        let pause = over_limit || disk_full;
        if pause == *paused {
            return;
        }
        let Ok(a) = consumer.assignment() else { return };
        let done = if pause {
            consumer.pause(&a)
        } else {
            consumer.resume(&a)
        };
        if done.is_err() {
            return;
        }
        *paused = pause;
        let gauge = &shared.stats.paused_consumers;
        if !pause {
            gauge.fetch_sub(1, Ordering::Relaxed);
            log::info!(
                "WAL at {} bytes with room on its disk: resuming {} partition(s) of {}",
                wal.pending_bytes(),
                a.count(),
                self.topic
            );
            return;
        }
        gauge.fetch_add(1, Ordering::Relaxed);
        if disk_full {
            log::warn!("no room on the WAL's disk: pausing {} partition(s) of {} (the group membership is kept) until space is freed", a.count(), self.topic);
        } else {
            log::warn!("WAL holds {} bytes, over its limit: pausing {} partition(s) of {} until InfluxDB catches up", wal.pending_bytes(), a.count(), self.topic);
        }
    }
}

/// A running consumer thread.
pub struct ConsumerThread {
    /// `kafka_metrics#0`.
    pub name: String,
    handle: std::thread::JoinHandle<()>,
    /// Disconnected once the final flush point is durable (or the thread died).
    flushed: crossbeam_channel::Receiver<()>,
}

impl ConsumerThread {
    /// Waits until everything the thread read is durable in the WAL (its
    /// final flush point after a stop), at most until `deadline`; false
    /// when that passed. Local disk work only: it does not wait for Kafka.
    pub fn wait_flushed(&self, deadline: Instant) -> bool {
        !matches!(
            self.flushed.recv_deadline(deadline),
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
        )
    }

    /// True once the thread returned (offsets committed, group left).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the thread to finish its final flush and leave the group.
    pub fn join(self) {
        if self.handle.join().is_err() {
            log::error!("consumer thread {} panicked", self.name);
        }
    }
}

/// Starts consumer `member` of `section` (its topic and group).
pub fn spawn(
    config: &Config,
    section: &KafkaTopicSection,
    kind: TopicKind,
    member: usize,
    shared: Arc<Shared>,
) -> anyhow::Result<ConsumerThread> {
    use anyhow::Context as _;
    let context = PersisterContext {
        topic: section.topic.clone(),
        kind,
        shared: shared.clone(),
        batch: Mutex::new(PendingBatch::new(
            shared.record_size(kind),
            shared.line_buffers.clone(),
        )),
        durable: Mutex::new(BTreeMap::new()),
        commit_failed: AtomicBool::new(false),
        paused: Mutex::new(false),
        wal_over_limit: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        fetch_queue: FetchQueueSlot::default(),
        kafka_log: KafkaLog::new(&section.topic),
        starts: Mutex::new(Vec::new()),
        errors: KafkaErrors::new(&section.topic, kind),
    };
    let consumer: BaseConsumer<PersisterContext> = client_config(config, section, member)
        .create_with_context(context)
        .with_context(|| {
            format!(
                "creating Kafka consumer for [{}] topic {} (brokers {})",
                section.section,
                section.topic,
                section.uri.join(",")
            )
        })?;
    consumer.subscribe(&[&section.topic]).with_context(|| {
        format!(
            "subscribing to topic {} in group {}",
            section.topic, section.group_id
        )
    })?;
    let queue = FetchQueue::new(consumer.client().native_ptr()).with_context(|| {
        format!(
            "creating the fetch queue of the consumer of topic {}",
            section.topic
        )
    })?;
    let name = format!("{}#{member}", section.section);
    let batch_size = section.batch_size.max(1);
    let interval = Duration::from_millis(
        config
            .wal
            .commit_interval_ms
            .min(section.max_wait_time_seconds.saturating_mul(1000))
            .max(1),
    );
    let (flushed_tx, flushed) = crossbeam_channel::bounded(0);
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            run(
                consumer, queue, kind, batch_size, interval, shared, flushed_tx,
            )
        })
        .context("spawning a consumer thread")?;
    Ok(ConsumerThread {
        name,
        handle,
        flushed,
    })
}

/// Most messages handled between two looks at timers, rebalances and back-pressure.
const DRAIN_MAX: usize = 1024;

fn run(
    consumer: BaseConsumer<PersisterContext>,
    queue: FetchQueue,
    kind: TopicKind,
    batch_size: usize,
    interval: Duration,
    shared: Arc<Shared>,
    flushed: crossbeam_channel::Sender<()>,
) {
    let ctx = consumer.context().clone();
    // The queue must be gone before the consumer is dropped, also when this
    // thread unwinds: the guard (dropped before `consumer`) empties the slot.
    ctx.fetch_queue.set(queue);
    let _slot_guard = EmptySlotOnDrop(&ctx.fetch_queue);
    let queue = ctx.fetch_queue.get();
    let mut fetched = Vec::with_capacity(DRAIN_MAX);
    let mut rewind: Vec<(i32, i64)> = Vec::new();
    let mut scratch = Vec::with_capacity(1024);
    let mut positions = Positions::default();
    let mut gaps: Vec<(i32, i64, i64)> = Vec::new();
    let idle_timeout = interval.min(Duration::from_millis(100));
    let mut idle = false;
    let mut last_recommit = Instant::now();
    while !shared.control.stopping() {
        let mut consumed = 0u64;
        // Rebalances, errors and commit results arrive here, and so do the
        // messages of a partition that could not be routed to the queue.
        let polled = consumer.poll(Duration::ZERO);
        if let Ok(mut starts) = ctx.starts.lock() {
            for (partition, offset) in starts.drain(..) {
                positions.expect(partition, offset);
            }
        }
        match polled {
            None => {}
            Some(Ok(msg)) => {
                if let Some(expected) = positions.advance(msg.partition(), msg.offset()) {
                    gaps.push((msg.partition(), expected, msg.offset()));
                }
                if let Ok(mut batch) = ctx.batch.lock() {
                    ctx.handle(
                        &mut batch,
                        msg.partition(),
                        msg.offset(),
                        msg.payload(),
                        &mut scratch,
                    );
                }
                consumed += 1;
            }
            Some(Err(e)) => ctx.errors.report(&e, "", &shared.stats),
        }
        // While InfluxDB keeps up, Kafka holds the backlog: reading further
        // ahead would only send records through the disk and back. Failing
        // writes end the wait, so an outage still fills the WAL.
        let handoff = shared.handoff_for(kind);
        let hold = handoff.ahead_of_writers() && !shared.sink_failing(kind) && {
            shared
                .stats
                .consumer_waits_for_writers
                .fetch_add(1, Ordering::Relaxed);
            !handoff.wait_for_writers(idle_timeout)
        };
        let due = match ctx.batch.lock() {
            Ok(mut batch) => {
                if let Some(queue) = queue.as_ref().filter(|_| !hold) {
                    // Wait for messages only when there was nothing to do.
                    let wait = if idle && consumed == 0 {
                        idle_timeout
                    } else {
                        Duration::ZERO
                    };
                    let room = batch_size.saturating_sub(batch.points).clamp(1, DRAIN_MAX);
                    queue.drain(wait, room, &mut fetched, |m| match m {
                        Fetched::Message {
                            partition,
                            offset,
                            payload,
                        } => {
                            if let Some(expected) = positions.advance(partition, offset) {
                                gaps.push((partition, expected, offset));
                            }
                            ctx.handle(&mut batch, partition, offset, payload, &mut scratch);
                            consumed += 1;
                        }
                        Fetched::Error {
                            partition,
                            offset,
                            error,
                        } => {
                            ctx.errors.report(&error, "", &shared.stats);
                            if let Some(p) = partition.filter(|_| offset >= 0) {
                                rewind.push((p, offset));
                            }
                        }
                    });
                }
                batch.flush_due(batch_size, interval)
            }
            Err(_) => false,
        };
        for (partition, offset) in rewind.drain(..) {
            ctx.rewind_after_error(&consumer, partition, offset);
            positions.expect(partition, offset);
        }
        for (partition, expected, offset) in gaps.drain(..) {
            ctx.check_skipped(&consumer, partition, expected, offset);
        }
        idle = consumed == 0;
        if consumed > 0 {
            shared.stats.consumed(kind, consumed);
        }
        shared.stats.polled(kind);
        if due {
            ctx.flush(&consumer, Some(CommitMode::Async));
        } else if last_recommit.elapsed() >= Duration::from_secs(1) {
            last_recommit = Instant::now();
            let moved = ctx.advance_past_unread_records(&consumer);
            if ctx.commit_failed.swap(false, Ordering::Relaxed) || moved {
                ctx.commit_durable(&consumer, CommitMode::Async);
            }
        }
        ctx.apply_back_pressure(&consumer);
    }
    // Final flush point with a synchronous commit, then leave the group
    // (dropping the consumer closes it) so the partitions move at once.
    let hard = shared.control.fatal_error().is_some();
    ctx.flush(&consumer, None);
    if ctx.batch.lock().is_ok_and(|b| !b.is_empty()) {
        log::warn!("the messages of {} read since the last flush point are not in the WAL (no room on its disk): their offsets are not committed, they are read again at the next start", ctx.topic);
    }
    // Everything read is durable now. What follows needs the group
    // coordinator and can take up to the session timeout when Kafka is
    // unreachable, so shutdown stops waiting for it at the drain deadline.
    drop(flushed);
    if !hard {
        ctx.commit_durable(&consumer, CommitMode::Sync);
    }
    leave_group(&consumer, &ctx);
    drop(queue);
    drop(ctx.fetch_queue.take());
    drop(consumer);
    log::info!("consumer of {} stopped", ctx.topic);
}

/// Longest a stopping consumer waits for the group to take its partitions
/// back before it closes anyway (the close itself then revokes them).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Leaves the group and waits until nothing is assigned, so that the close
/// (when the consumer is dropped) finds no assignment in progress:
/// librdkafka 2.5 and later can abort the process in
/// `rd_kafka_cgrp_terminated` when a close meets a rebalance
/// (confluentinc/librdkafka#4792, open at 2.12.1; seen here when two
/// members stop one after the other). Unsubscribing and serving the revoke
/// first, as its maintainers suggest, closes with nothing to stop.
fn leave_group(consumer: &BaseConsumer<PersisterContext>, ctx: &PersisterContext) {
    ctx.closing.store(true, Ordering::Relaxed);
    consumer.unsubscribe();
    let deadline = Instant::now() + LEAVE_TIMEOUT;
    loop {
        // Serves the revoke (flush, synchronous commit, unassign). A message
        // polled now is neither in the WAL nor committed: the partition's
        // next owner reads it again.
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(50)) {
            log::debug!("leaving the group of {}: {e}", ctx.topic);
        }
        let assigned = consumer.assignment().map_or(0, |a| a.count());
        if assigned == 0 {
            return;
        }
        if Instant::now() >= deadline {
            log::warn!(
                "leaving the group of {}: {assigned} partition(s) still assigned after {LEAVE_TIMEOUT:?}; closing anyway",
                ctx.topic
            );
            return;
        }
    }
}

/// Empties a consumer's fetch-queue slot when dropped.
struct EmptySlotOnDrop<'a>(&'a FetchQueueSlot);

impl Drop for EmptySlotOnDrop<'_> {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}
