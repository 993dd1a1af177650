//! The librdkafka side of a consumer: the context its callbacks (rebalance,
//! errors, logs, statistics, commit results) reach on the consumer's own
//! thread inside `poll`. A rebalance flushes and commits (the flush point's
//! revoke) before partitions are given up, and resumes assigned partitions
//! from the WAL's offsets when those are ahead of Kafka's (exactly once into
//! the WAL); errors and logs go to the operator once, statistics to `stats`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::ClientContext;

use super::back_pressure::BackPressure;
use super::fetch_queue::{self, FetchQueueSlot};
use super::kafka_errors::{self, KafkaErrors, Problem};
use super::kafka_log::{self, KafkaLog};
use super::membership::{Ended, Membership};
use super::positions::deleted_before_read;
use crate::pipeline::control::Control;
use crate::pipeline::flush_point::{offset_name, CommitMode, FlushPoint, PipelineStore};
use crate::stats::{GroupMember, Stats, TopicKind};

/// The per-consumer state reachable from librdkafka callbacks (rebalance,
/// statistics, commits), which run on the consumer's own thread inside `poll`.
pub struct PersisterContext {
    pub(super) topic: String,
    pub(super) kind: TopicKind,
    /// Which consumer thread of the topic.
    pub(super) member: usize,
    /// The WAL, for the offsets assigned partitions resume from.
    pub(super) wal: Arc<wal::Wal>,
    /// Counters.
    pub(super) stats: Arc<Stats>,
    /// Run state: a failed revoke or seek is fatal.
    pub(super) control: Arc<Control>,
    /// The buffer and the offsets made durable: what Kafka should have committed.
    pub(super) flush_point: FlushPoint<PipelineStore>,
    /// Paused while the WAL is over its limit or its disk full.
    pub(super) back_pressure: BackPressure,
    /// Leaving the group for good: partitions offered now are declined.
    pub(super) closing: AtomicBool,
    /// Where assigned partitions deliver their messages.
    pub(super) fetch_queue: FetchQueueSlot,
    /// Connection failures, logged first, summarised, then the recovery.
    pub(super) kafka_log: KafkaLog,
    /// Start offsets of newly assigned partitions (-1: unknown or revoked),
    /// for the run loop's [`Positions`](super::positions::Positions).
    pub(super) starts: Mutex<Vec<(i32, i64)>>,
    /// A missing topic and refused credentials: the log and `/healthcheck`.
    pub(super) errors: KafkaErrors,
    /// The consumer's identity in its group.
    pub(super) membership: Membership,
    /// librdkafka reported an error: the run loop checks whether the client
    /// had a fatal one (it is unusable then).
    pub(super) check_fatal: AtomicBool,
    /// Partitions were assigned to this client at least once.
    pub(super) assigned_once: AtomicBool,
    /// Since when this consumer holds no partition (from its start, or
    /// since it lost its last one); `None` while it holds some.
    pub(super) unowned_since: Mutex<Option<Instant>>,
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
            self.errors.report(&error, reason, &self.stats);
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
        self.stats.consumer_lag[i].store(lag, std::sync::atomic::Ordering::Relaxed);
        // Bootstrap entries have node id -1; a real broker in state UP means connected.
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        self.stats.kafka_connected[i].store(up, std::sync::atomic::Ordering::Relaxed);
        if let Some(cgrp) = &statistics.cgrp {
            self.stats.set_group_member(
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
            self.errors.connected(&self.stats);
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
                if self.back_pressure.is_paused() {
                    if let Err(e) = consumer.pause(tpl) {
                        log::warn!("pausing new partitions of {}: {e}", self.topic);
                    }
                }
                self.count_assignment(consumer);
                self.note_rebalance(consumer, tpl.count());
                self.errors.assigned(tpl.count(), &self.stats);
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
                    self.control.fatal(e.to_string());
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
        let stats = &self.stats;
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

    /// After librdkafka reported a fatal error: what it means (see
    /// [`Membership::fatal_error`]).
    pub(super) fn fatal_error(&self, consumer: &BaseConsumer<Self>) -> Option<Ended> {
        let (code, reason) = consumer.client().fatal_error()?;
        Some(self.membership.fatal_error(
            &self.topic,
            code,
            reason,
            self.assigned_once.load(Ordering::Relaxed),
            &self.control,
        ))
    }

    fn count_assignment(&self, consumer: &BaseConsumer<Self>) {
        let n = consumer.assignment().map(|a| a.count()).unwrap_or(0) as i64;
        self.stats.assigned_partitions[crate::stats::Stats::topic_index(self.kind)]
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// See [`fetch_queue::rewind_after_error`]; failing that while the
    /// partition is still assigned is fatal.
    pub(super) fn rewind_after_error(
        &self,
        consumer: &BaseConsumer<Self>,
        partition: i32,
        offset: i64,
    ) {
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
            self.control.fatal(format!(
                "{}/{partition}: cannot seek back to offset {offset} after a consume error: {e}",
                self.topic
            ));
        }
    }

    /// A message of `partition` came at `offset` where `expected` was due:
    /// warns about and counts the offsets between that Kafka deleted before
    /// they were read (see [`deleted_before_read`]).
    pub(super) fn check_skipped(
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
            self.stats.offsets_skipped[crate::stats::Stats::topic_index(self.kind)]
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
    /// notes where each partition starts (see [`Positions`](super::positions::Positions)).
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
            let stored = match self.wal.offset(&offset_name(&self.topic, p)) {
                Ok(o) => o,
                Err(err) => {
                    self.control.fatal(format!(
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
    pub(super) fn flush(&self, consumer: &BaseConsumer<Self>, commit: Option<CommitMode>) {
        if let Err(e) = self.flush_point.flush(consumer, commit) {
            self.control.fatal(e.to_string());
        }
    }
}
