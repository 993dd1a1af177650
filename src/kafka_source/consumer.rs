//! A consumer thread: one member of a topic's consumer group. It connects
//! (again, while its static instance id is held), then polls Kafka, hands
//! each message to the transform (`message.rs`) and its batch to the flush
//! point when the batch is full or `[wal] commit_interval_ms` passed, waits
//! while the writers are far behind, applies back-pressure, and at a stop
//! makes everything read durable, commits and leaves the group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use super::back_pressure::{BackPressure, WalRoom};
use super::client_config::client_config;
use super::context::PersisterContext;
use super::fetch_queue::{FetchQueueSlot, Fetched, QueuedConsumer};
use super::kafka_errors::KafkaErrors;
use super::kafka_log::KafkaLog;
use super::membership::{leave_group, Ended, HeldInstanceId, Membership};
use super::message::MessageHandler;
use super::positions::Positions;
use crate::config::{Config, KafkaTopicSection};
use crate::pipeline::batch::PendingBatch;
use crate::pipeline::control::{Control, Failure};
use crate::pipeline::flush_point::{CommitMode, FlushPoint, PipelineStore};
use crate::pipeline::line_buffers::LineBuffers;
use crate::stats::{Stats, TopicKind};
use crate::transform::Transformer;

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

/// What a consumer thread holds of the pipeline, built once per consumer
/// thread at start-up (`Pipeline::start`): where its batches become
/// durable, what its messages become lines with, and where it counts.
#[derive(Clone)]
pub struct ConsumerHandle {
    /// What its topic carries.
    pub kind: TopicKind,
    /// Its flush point's store: room on the disks, dead letters, the WAL
    /// (also read for back-pressure and the offsets to resume from), and
    /// the hand-off queue of its records' sink (also waited on while the
    /// writers are far behind).
    pub store: PipelineStore,
    /// Back-pressure ends when the WAL is down to this many bytes.
    pub wal_low_water_bytes: u64,
    /// Points (documents for events) per WAL record.
    pub record_size: usize,
    /// Messages to lines.
    pub transformer: Transformer,
    /// `[elasticsearch] index_name`, for events.
    pub index_name: String,
    /// Buffers for its batches, given back by the writers.
    pub line_buffers: Arc<LineBuffers>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Run state: stopping, fatal errors, the run's failure.
    pub control: Arc<Control>,
}

impl ConsumerHandle {
    /// Whether the sink of its records failed its last write.
    fn sink_failing(&self) -> bool {
        match self.kind {
            TopicKind::Events => self.stats.events.failing(),
            _ => self.stats.influx_failing(),
        }
    }
}

/// What a consumer thread needs to connect (again).
struct Connect {
    config: Config,
    section: KafkaTopicSection,
    member: usize,
    handle: ConsumerHandle,
}

impl Connect {
    /// Creates the client, subscribes and makes its fetch queue.
    fn open(&self) -> anyhow::Result<QueuedConsumer<PersisterContext>> {
        use anyhow::Context as _;
        let (section, handle) = (&self.section, &self.handle);
        let kind = handle.kind;
        let context = PersisterContext {
            topic: section.topic.clone(),
            kind,
            member: self.member,
            wal: handle.store.wal.clone(),
            stats: handle.stats.clone(),
            control: handle.control.clone(),
            flush_point: FlushPoint::new(
                &section.topic,
                kind,
                handle.store.clone(),
                handle.stats.clone(),
                PendingBatch::new(handle.record_size, handle.line_buffers.clone()),
            ),
            back_pressure: BackPressure::default(),
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
    member: usize,
    handle: ConsumerHandle,
) -> anyhow::Result<ConsumerThread> {
    use anyhow::Context as _;
    let connect = Connect {
        config: config.clone(),
        section: section.clone(),
        member,
        handle,
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
            let mut held = HeldInstanceId::default();
            loop {
                let handle = &connect.handle;
                let reason = match run(opened, handle, batch_size, interval, &mut flushed) {
                    Ended::Stopped => return,
                    Ended::InstanceIdHeld(reason) => reason,
                };
                let membership = Membership::of(&connect.section, member);
                if !held.wait(
                    &membership,
                    &connect.section.topic,
                    &reason,
                    &handle.control,
                ) {
                    return;
                }
                opened = match connect.open() {
                    Ok(o) => o,
                    Err(e) => {
                        handle.control.fail(Failure {
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

/// Consumes until a stop (final flush point, commit, leave the group) or
/// until its static instance id turns out to be held.
fn run(
    owned: QueuedConsumer<PersisterContext>,
    handle: &ConsumerHandle,
    batch_size: usize,
    interval: Duration,
    flushed: &mut Option<crossbeam_channel::Sender<()>>,
) -> Ended {
    let kind = handle.kind;
    let (consumer, queue) = (owned.consumer(), owned.queue());
    let ctx = consumer.context().clone();
    let mut fetched = Vec::with_capacity(DRAIN_MAX);
    let mut rewind: Vec<(i32, i64)> = Vec::new();
    let mut scratch = Vec::with_capacity(1024);
    let messages = MessageHandler {
        topic: &ctx.topic,
        kind,
        transformer: &handle.transformer,
        index_name: &handle.index_name,
        stats: &handle.stats,
    };
    let mut positions = Positions::default();
    let mut gaps: Vec<(i32, i64, i64)> = Vec::new();
    let idle_timeout = interval.min(Duration::from_millis(100));
    let mut idle = false;
    let mut last_recommit = Instant::now();
    let wal_room = WalRoom {
        wal: &handle.store.wal,
        low_water_bytes: handle.wal_low_water_bytes,
        disk_space: &handle.store.disk_space,
    };
    while !handle.control.stopping() {
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
                    messages.handle(
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
                    ctx.errors.report(&e, "", &handle.stats);
                }
            }
        }
        // While InfluxDB keeps up, Kafka holds the backlog: reading further
        // ahead would only send records through the disk and back. Failing
        // writes end the wait, so an outage still fills the WAL.
        let handoff = &handle.store.handoff;
        let hold = handoff.ahead_of_writers() && !handle.sink_failing() && {
            handle
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
                            messages.handle(&mut batch, partition, offset, payload, &mut scratch);
                            consumed += 1;
                        }
                        Fetched::Error {
                            partition,
                            offset,
                            error,
                        } => {
                            ctx.errors.report(&error, "", &handle.stats);
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
            handle.stats.consumed(kind, consumed);
        }
        handle.stats.polled(kind);
        if due {
            ctx.flush(consumer, Some(CommitMode::Async));
        } else if last_recommit.elapsed() >= Duration::from_secs(1) {
            last_recommit = Instant::now();
            ctx.flush_point.recommit(consumer);
        }
        ctx.back_pressure
            .apply(consumer, &ctx.topic, &wal_room, &handle.stats);
    }
    // Final flush point with a synchronous commit, then leave the group
    // (dropping the consumer closes it) so the partitions move at once.
    let hard = handle.control.fatal_error().is_some();
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
