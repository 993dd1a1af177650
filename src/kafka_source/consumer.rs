//! A consumer thread: one member of a topic's consumer group. It polls Kafka,
//! turns each message into a line (or a dead letter), and at every flush point
//! makes the batch durable before committing its offsets. Rebalances flush and
//! commit before partitions are given up, and resume assigned partitions from
//! the WAL's offsets when those are ahead of Kafka's (exactly once into the WAL).
//! Its [`Membership`] (a static instance id or none, the classic or the
//! consumer group protocol) decides what a stop does with the partitions and
//! what another member holding its instance id means.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::ClientContext;

use super::fetch_queue::{self, FetchQueueSlot, Fetched, QueuedConsumer};
use super::kafka_errors::{self, KafkaErrors, Problem};
use super::kafka_log::{self, KafkaLog};
use super::positions::{deleted_before_read, Positions};
use crate::config::{Config, GroupProtocol, KafkaTopicSection};
use crate::elasticsearch::document::{self, EventSource};
use crate::pipeline::batch::{PendingBatch, RejectedMessage};
use crate::pipeline::control::EXIT_INSTANCE_NAME_IN_USE;
use crate::pipeline::event_sink::EVENTS_RECORD_DATABASE;
use crate::pipeline::flush_point::{
    offset_name, CommitMode, FlushPoint, OffsetCommitter, PipelineStore,
};
use crate::pipeline::{Failure, Shared};
use crate::stats::{GroupMember, TopicKind};
use crate::transform::{Rejection, Target};

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
    if let Some(id) = section.group_instance_id(member) {
        c.set("group.instance.id", id);
    }
    c.set("group.protocol", section.protocol().as_str());
    if section.protocol() == GroupProtocol::Classic {
        // A rebalance moves only the partitions that must move; the other
        // members keep consuming theirs throughout (the consumer protocol
        // always works this way, its assignor on the brokers).
        c.set("partition.assignment.strategy", "cooperative-sticky");
        if let Some(ms) = section.session_timeout_ms {
            c.set("session.timeout.ms", ms.to_string());
            // librdkafka's default heartbeat (3 s) is for its default
            // session (45 s): a shorter session heartbeats more often, ten
            // times a session, so that a member of a loaded machine is
            // not taken for dead, and a rebalance reaches the others soon.
            c.set(
                "heartbeat.interval.ms",
                (ms / 10).clamp(1, 3000).to_string(),
            );
        }
    }
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
    /// Which consumer thread of the topic.
    member: usize,
    shared: Arc<Shared>,
    /// The buffer and the offsets made durable: what Kafka should have committed.
    flush_point: FlushPoint<PipelineStore>,
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
    /// The consumer's identity in its group.
    membership: Membership,
    /// librdkafka reported an error: the run loop checks whether the client
    /// had a fatal one (it is unusable then).
    check_fatal: AtomicBool,
    /// Partitions were assigned to this client at least once.
    assigned_once: AtomicBool,
    /// Since when this consumer holds no partition (from its start, or
    /// since it lost its last one); `None` while it holds some.
    unowned_since: Mutex<Option<Instant>>,
}

/// A consumer's identity in its topic's group: which group, which static
/// instance id (KIP-345) if any, which protocol.
///
/// What a stop does with the partitions follows from it: every stop
/// unsubscribes first (`leave_group`). Under the classic protocol that is a
/// LeaveGroup, naming the instance of a static member: its partitions move
/// to the other members at once, and a restart joins again (a cooperative
/// rebalance; closing a static member without it, to keep the partitions
/// for the restart, was measured to hang the close until the drain
/// deadline whenever a rebalance was under way). Under the consumer
/// protocol librdkafka's leave of a static member keeps its partitions
/// until its session times out (member epoch -2), for the restart.
#[derive(Debug, Clone)]
pub struct Membership {
    /// The section's `group_id`.
    pub group: String,
    /// `group.instance.id`, with static membership.
    pub instance_id: Option<String>,
    /// `group_instance_name`, for messages.
    pub instance_name: String,
    /// The group protocol.
    pub protocol: GroupProtocol,
}

impl Membership {
    /// The membership of consumer thread `member` of `section`.
    pub fn of(section: &KafkaTopicSection, member: usize) -> Membership {
        Membership {
            group: section.group_id.clone(),
            instance_id: section.group_instance_id(member),
            instance_name: section.instance_name(),
            protocol: section.protocol(),
        }
    }

    /// The failure when another consumer holds this one's instance id.
    fn duplicate_instance(&self, topic: &str, reason: &str) -> Failure {
        let message = format!(
            "consuming {topic}: another consumer of group {} uses the static instance id {} ({reason}): two persisters run with group_instance_name = {}; give each its own group_instance_name in [kafka] (default: the host name; empty turns static membership off)",
            self.group,
            self.instance_id.as_deref().unwrap_or("-"),
            self.instance_name,
        );
        Failure {
            message,
            exit_status: EXIT_INSTANCE_NAME_IN_USE,
        }
    }
}

/// How a consumer client's run ended.
enum Ended {
    /// Stopped (a stop signal or a fatal error): nothing more to do.
    Stopped,
    /// Its static instance id is still held by a member that has not left
    /// (consumer protocol): a killed previous run of this persister whose
    /// session has not expired yet, or another persister with the same
    /// instance name. Nothing was assigned: connect again later.
    InstanceIdHeld(String),
}

impl ClientContext for PersisterContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if kafka_log::is_connection_failure(facility) {
            self.kafka_log.failed(message);
        } else if facility == "FATAL" {
            // The run loop stops the process with what it means (`fatal_error`).
            log::debug!("librdkafka: {facility} {message}");
        } else {
            kafka_log::forward(level, facility, message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Any error may be librdkafka's fatal one (reported with its
        // underlying code): the run loop asks the client.
        self.check_fatal.store(true, Ordering::Relaxed);
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::FencedInstanceId | RDKafkaErrorCode::UnreleasedInstanceId)
        ) {
            // Always fatal: the run loop says what it means.
            log::debug!("librdkafka: {error}: {reason}");
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
        if let Some(cgrp) = &statistics.cgrp {
            self.shared.stats.set_group_member(
                self.kind,
                self.member,
                GroupMember {
                    instance_id: self.membership.instance_id.clone(),
                    protocol: self.membership.protocol.as_str(),
                    state: cgrp.state.clone(),
                    join_state: cgrp.join_state.clone(),
                    assigned_partitions: i64::from(cgrp.assignment_size),
                },
            );
        }
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
                self.note_rebalance(consumer, tpl.count());
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
                let revoked: Vec<i32> = tpl
                    .elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                if let Err(e) = self.flush_point.revoke(consumer, &revoked, lost) {
                    self.shared.control.fatal(e.to_string());
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
                self.note_rebalance(consumer, tpl.count());
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
            self.flush_point.async_commit_failed();
            log::debug!(
                "offset commit for {} ({}) failed: {e}",
                self.topic,
                partition_list(offsets)
            );
        }
    }
}

/// The flush point's view of the consumer: commits and positions of its topic.
impl OffsetCommitter for BaseConsumer<PersisterContext> {
    type Error = KafkaError;

    fn commit_offsets(
        &self,
        topic: &str,
        offsets: &[(i32, i64)],
        mode: CommitMode,
    ) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*o));
        }
        let mode = match mode {
            CommitMode::Sync => rdkafka::consumer::CommitMode::Sync,
            CommitMode::Async => rdkafka::consumer::CommitMode::Async,
        };
        self.commit(&tpl, mode)
    }

    fn positions(&self, topic: &str) -> Option<Vec<(i32, i64)>> {
        let positions = self.position().ok()?;
        let known = positions
            .elements_for_topic(topic)
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(position) => Some((e.partition(), position)),
                _ => None,
            })
            .collect();
        Some(known)
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
    /// Counts a rebalance that moved `moved` partitions to or from this
    /// consumer, and the time it held none (see `unowned_since`).
    fn note_rebalance(&self, consumer: &BaseConsumer<Self>, moved: usize) {
        if moved == 0 {
            return;
        }
        let stats = &self.shared.stats;
        stats.rebalance(self.kind);
        let held = consumer.assignment().map_or(0, |a| a.count());
        let Ok(mut since) = self.unowned_since.lock() else {
            return;
        };
        match (*since, held) {
            (Some(t), 1..) => {
                stats.unowned(self.kind, t.elapsed());
                *since = None;
                self.assigned_once.store(true, Ordering::Relaxed);
            }
            (None, 0) => *since = Some(Instant::now()),
            _ => {}
        }
    }

    /// After librdkafka reported a fatal error: what it means. Another
    /// member holding this consumer's static instance id ends the run (to
    /// connect again while that may be a killed previous run, see
    /// [`Ended::InstanceIdHeld`]); anything else ends the process, said
    /// with its cause, after an orderly stop: the WAL is sound, and what it
    /// holds reaches InfluxDB before the exit (a fenced persister that left
    /// records behind would deliver them only when it runs again).
    fn fatal_error(&self, consumer: &BaseConsumer<Self>) -> Option<Ended> {
        let (code, reason) = consumer.client().fatal_error()?;
        let control = &self.shared.control;
        match code {
            RDKafkaErrorCode::UnreleasedInstanceId
                if !self.assigned_once.load(Ordering::Relaxed) =>
            {
                return Some(Ended::InstanceIdHeld(reason));
            }
            RDKafkaErrorCode::FencedInstanceId | RDKafkaErrorCode::UnreleasedInstanceId => {
                control.fail(self.membership.duplicate_instance(&self.topic, &reason));
            }
            _ => control.fail(Failure {
                message: format!(
                    "the Kafka consumer of topic {} in group {} failed for good: {reason}",
                    self.topic, self.membership.group
                ),
                exit_status: 1,
            }),
        }
        Some(Ended::Stopped)
    }

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
        self.fetch_queue.with(|queue| {
            for e in tpl.elements_for_topic(&self.topic) {
                if !queue.route(&self.topic, e.partition()) {
                    log::warn!(
                        "{}/{}: cannot route to the batch fetch queue; consuming it one message at a time",
                        self.topic,
                        e.partition()
                    );
                }
            }
        });
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
                self.flush_point.repair_commit(p, stored);
                if let Err(err) = tpl.set_partition_offset(&self.topic, p, Offset::Offset(stored)) {
                    log::error!(
                        "{}/{p}: cannot set start offset {stored}: {err}",
                        self.topic
                    );
                }
            }
        }
    }

    /// The flush point (see [`FlushPoint::flush`]); a failure is fatal.
    fn flush(&self, consumer: &BaseConsumer<Self>, commit: Option<CommitMode>) {
        if let Err(e) = self.flush_point.flush(consumer, commit) {
            self.shared.control.fatal(e.to_string());
        }
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

/// Longest a consumer keeps connecting again while its static instance id
/// is held by a member that has not left (consumer protocol): above the
/// brokers' longest session timeout by default
/// (`group.consumer.max.session.timeout.ms`, 60 s), after which the holder
/// can only be another running persister.
const INSTANCE_ID_PATIENCE: Duration = Duration::from_secs(75);

/// Pause between two attempts to join with a held instance id.
const INSTANCE_ID_RETRY: Duration = Duration::from_secs(1);

/// What a consumer thread needs to connect (again).
struct Connect {
    config: Config,
    section: KafkaTopicSection,
    kind: TopicKind,
    member: usize,
    shared: Arc<Shared>,
}

impl Connect {
    /// Creates the client, subscribes and makes its fetch queue.
    fn open(&self) -> anyhow::Result<QueuedConsumer<PersisterContext>> {
        use anyhow::Context as _;
        let (section, shared, kind) = (&self.section, &self.shared, self.kind);
        let context = PersisterContext {
            topic: section.topic.clone(),
            kind,
            member: self.member,
            shared: shared.clone(),
            flush_point: FlushPoint::new(
                &section.topic,
                kind,
                PipelineStore::new(shared.clone(), kind),
                shared.stats.clone(),
                PendingBatch::new(shared.record_size(kind), shared.line_buffers.clone()),
            ),
            paused: Mutex::new(false),
            wal_over_limit: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            fetch_queue: FetchQueueSlot::default(),
            kafka_log: KafkaLog::new(&section.topic),
            starts: Mutex::new(Vec::new()),
            errors: KafkaErrors::new(&section.topic, kind),
            membership: Membership::of(section, self.member),
            check_fatal: AtomicBool::new(false),
            assigned_once: AtomicBool::new(false),
            unowned_since: Mutex::new(Some(Instant::now())),
        };
        let consumer: BaseConsumer<PersisterContext> =
            client_config(&self.config, section, self.member)
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
        let consumer = QueuedConsumer::new(consumer).with_context(|| {
            format!(
                "creating the fetch queue of the consumer of topic {}",
                section.topic
            )
        })?;
        consumer.consumer().context().fetch_queue.link(&consumer);
        Ok(consumer)
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
    let connect = Connect {
        config: config.clone(),
        section: section.clone(),
        kind,
        member,
        shared: shared.clone(),
    };
    let opened = connect.open()?;
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
            let mut flushed = Some(flushed_tx);
            let mut opened = opened;
            let mut held_since: Option<Instant> = None;
            loop {
                let reason = match run(
                    opened,
                    kind,
                    batch_size,
                    interval,
                    shared.clone(),
                    &mut flushed,
                ) {
                    Ended::Stopped => return,
                    Ended::InstanceIdHeld(reason) => reason,
                };
                let membership = Membership::of(&connect.section, member);
                let since = *held_since.get_or_insert_with(|| {
                    log::warn!(
                        "consuming {}: the static instance id {} is still held in group {} ({reason}): by this persister's previous run if it was killed (until its session times out on the brokers), or by another persister with the same group_instance_name; joining again every {INSTANCE_ID_RETRY:?} for up to {INSTANCE_ID_PATIENCE:?}",
                        connect.section.topic,
                        membership.instance_id.as_deref().unwrap_or("-"),
                        membership.group
                    );
                    Instant::now()
                });
                if since.elapsed() >= INSTANCE_ID_PATIENCE {
                    let mut failure =
                        membership.duplicate_instance(&connect.section.topic, &reason);
                    failure.message += &format!(" (refused for {INSTANCE_ID_PATIENCE:?})");
                    shared.control.fail(failure);
                    return;
                }
                let retry_at = Instant::now() + INSTANCE_ID_RETRY;
                while Instant::now() < retry_at {
                    if shared.control.stopping() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                opened = match connect.open() {
                    Ok(o) => o,
                    Err(e) => {
                        shared.control.fail(Failure {
                            message: format!("{e:#}"),
                            exit_status: 1,
                        });
                        return;
                    }
                };
            }
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
    owned: QueuedConsumer<PersisterContext>,
    kind: TopicKind,
    batch_size: usize,
    interval: Duration,
    shared: Arc<Shared>,
    flushed: &mut Option<crossbeam_channel::Sender<()>>,
) -> Ended {
    let (consumer, queue) = (owned.consumer(), owned.queue());
    let ctx = consumer.context().clone();
    let mut fetched = Vec::with_capacity(DRAIN_MAX);
    let mut rewind: Vec<(i32, i64)> = Vec::new();
    let mut scratch = Vec::with_capacity(1024);
    let mut positions = Positions::default();
    let mut gaps: Vec<(i32, i64, i64)> = Vec::new();
    let idle_timeout = interval.min(Duration::from_millis(100));
    let mut idle = false;
    let mut last_recommit = Instant::now();
    while !shared.control.stopping() {
        if ctx.check_fatal.swap(false, Ordering::Relaxed) {
            if let Some(Ended::InstanceIdHeld(reason)) = ctx.fatal_error(consumer) {
                // The queue first, then the consumer (see `QueuedConsumer`).
                drop(owned);
                return Ended::InstanceIdHeld(reason);
            }
        }
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
                if let Ok(mut batch) = ctx.flush_point.batch() {
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
            Some(Err(e)) => {
                ctx.check_fatal.store(true, Ordering::Relaxed);
                if !matches!(e, KafkaError::MessageConsumptionFatal(_)) {
                    ctx.errors.report(&e, "", &shared.stats);
                }
            }
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
        let due = match ctx.flush_point.batch() {
            Ok(mut batch) => {
                if !hold {
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
            ctx.rewind_after_error(consumer, partition, offset);
            positions.expect(partition, offset);
        }
        for (partition, expected, offset) in gaps.drain(..) {
            ctx.check_skipped(consumer, partition, expected, offset);
        }
        idle = consumed == 0;
        if consumed > 0 {
            shared.stats.consumed(kind, consumed);
        }
        shared.stats.polled(kind);
        if due {
            ctx.flush(consumer, Some(CommitMode::Async));
        } else if last_recommit.elapsed() >= Duration::from_secs(1) {
            last_recommit = Instant::now();
            ctx.flush_point.recommit(consumer);
        }
        ctx.apply_back_pressure(consumer);
    }
    // Final flush point with a synchronous commit, then leave the group
    // (dropping the consumer closes it) so the partitions move at once.
    let hard = shared.control.fatal_error().is_some();
    ctx.flush(consumer, None);
    if ctx.flush_point.batch().is_ok_and(|b| !b.is_empty()) {
        log::warn!("the messages of {} read since the last flush point are not in the WAL (no room on its disk): their offsets are not committed, they are read again at the next start", ctx.topic);
    }
    // Everything read is durable now. What follows needs the group
    // coordinator and can take up to the session timeout when Kafka is
    // unreachable, so shutdown stops waiting for it at the drain deadline.
    drop(flushed.take());
    if !hard {
        ctx.flush_point.commit_durable(consumer, CommitMode::Sync);
    }
    leave_group(consumer, &ctx);
    // The queue first, then the consumer (see `QueuedConsumer`).
    drop(owned);
    log::info!("consumer of {} stopped", ctx.topic);
    Ended::Stopped
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
