//! The persister's main job: start-up (open the WAL, start writers on what it
//! holds, then consumers), steady state, and the two-phase shutdown (consumers
//! flush, commit and leave; writers drain the WAL until empty or a deadline).

pub(crate) mod batch;
pub mod control;
pub mod disk_space;
pub mod event_sink;
pub(crate) mod flush_point;
pub(crate) mod handoff;
pub(crate) mod line_buffers;
mod replay;
mod writer_pool;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::config::Config;
use crate::dead_letter::{DeadLetterConfig, DeadLetterStore};
use crate::influx::InfluxWriter;
use crate::kafka_source::{self, ConsumerThread};
use crate::retry::Retry;
use crate::stats::{Stats, TopicKind};
use crate::transform::Transformer;
pub use control::{Control, Failure};
use disk_space::DiskSpace;
use event_sink::EventsSink;
use handoff::HandoffQueue;
use line_buffers::LineBuffers;
use replay::Replay;

/// Bytes of record payload that may wait in memory for a writer; the rest waits on disk.
const HANDOFF_MEMORY_BUDGET: u64 = 16 * 1024 * 1024;

/// How long shutdown still waits for writers told to give up at the drain
/// deadline: one may be inside an HTTP request to a hung InfluxDB (up to
/// `[influxdb] timeout_seconds`). Its records are not acknowledged, so they
/// stay in the WAL; waiting longer would only push the exit past the stop
/// timeout of the service manager.
const WRITERS_GIVE_UP_GRACE: Duration = Duration::from_secs(2);

/// How long the stop after a fatal error may take (leaving the Kafka
/// groups): the process must exit within seconds.
const FATAL_STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything the pipeline threads share.
pub struct Shared {
    /// The durable log.
    pub wal: wal::Wal,
    /// Back-pressure ends when the WAL is down to this many bytes.
    pub wal_low_water_bytes: u64,
    /// Rejected messages and lines.
    pub dead_letters: DeadLetterStore,
    /// Room on the disks of the WAL and the dead letters.
    pub disk_space: DiskSpace,
    /// Records on their way to writers.
    handoff: HandoffQueue,
    /// The backlog found in the WAL at start-up.
    replay: Replay,
    /// Messages to lines.
    pub transformer: Transformer,
    /// The InfluxDB sink.
    pub influx: InfluxWriter,
    /// Points per InfluxDB write.
    pub influx_batch_size: usize,
    /// The events sink, when `[kafka_events] enabled = true`.
    pub events: Option<EventsSink>,
    /// Written records' buffers, for consumers to fill again.
    pub(crate) line_buffers: Arc<LineBuffers>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Run state.
    pub control: Arc<Control>,
    config: Config,
}

impl Shared {
    /// The hand-off queue of the sink the records of `kind` go to.
    pub(crate) fn handoff_for(&self, kind: TopicKind) -> &HandoffQueue {
        match (kind, &self.events) {
            (TopicKind::Events, Some(events)) => &events.handoff,
            _ => &self.handoff,
        }
    }

    /// Points (documents for events) per WAL record of `kind`.
    pub(crate) fn record_size(&self, kind: TopicKind) -> usize {
        match (kind, &self.events) {
            (TopicKind::Events, Some(events)) => events.batch_size(),
            _ => self.influx_batch_size,
        }
    }

    /// Whether the sink of `kind` failed its last write.
    pub(crate) fn sink_failing(&self, kind: TopicKind) -> bool {
        match kind {
            TopicKind::Events => self.stats.events.failing(),
            _ => self.stats.influx_failing(),
        }
    }

    /// A retry policy (backoff and failure log) for one writer thread.
    pub fn retry_policy(&self) -> Retry {
        Retry::from_config(
            format!("writing to InfluxDB at {}", self.influx.client().url()),
            &self.config.influxdb,
        )
    }
}

/// What a run did, for the closing log line.
#[derive(Debug, Default)]
pub struct Summary {
    /// WAL records replayed at start-up.
    pub replayed_records: u64,
    /// Points InfluxDB stored during this run.
    pub points_written: u64,
    /// Points InfluxDB stored after the stop was requested.
    pub points_drained: u64,
    /// Records still in the WAL at exit.
    pub records_left: u64,
    /// Dead letters written during this run.
    pub dead_letters: u64,
}

/// A started pipeline.
pub struct Pipeline {
    shared: Arc<Shared>,
    consumers: Vec<ConsumerThread>,
    writers: Vec<writer_pool::WriterThread>,
    drain_timeout: Duration,
}

impl Pipeline {
    /// Opens the WAL, starts the writers on its pending records, then the consumers.
    pub fn start(
        config: &Config,
        stats: Arc<Stats>,
        control: Arc<Control>,
    ) -> anyhow::Result<Pipeline> {
        let wal_opts = wal::WalOptions {
            cache_capacity_bytes: config.wal.cache_size_mb * 1024 * 1024,
            max_size_bytes: config.wal.max_size_mb * 1024 * 1024,
            fsync: config.wal.fsync,
            ..wal::WalOptions::default()
        };
        let wal =
            wal::Wal::open(&config.wal.path, wal_opts).context("opening the WAL ([wal] path)")?;
        // The error names the file and what was being done.
        let dead_letters = DeadLetterStore::open(DeadLetterConfig::from_config(
            &config.wal,
            &config.repositories,
        ))
        .context("[wal] dead_letter_path")?;
        let influx = InfluxWriter::from_config(&config.influxdb)
            .context("setting up the InfluxDB client")?;
        let events = if config.kafka_events.enabled {
            Some(EventsSink::from_config(config)?)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            wal_low_water_bytes: config.wal.max_size_mb * 1024 * 1024 * 8 / 10,
            wal,
            dead_letters,
            disk_space: DiskSpace::new(&config.wal.path, &config.wal.dead_letter_path),
            handoff: HandoffQueue::new(HANDOFF_MEMORY_BUDGET),
            replay: Replay::default(),
            transformer: Transformer::new(
                config.influxdb.database_name.clone(),
                config.influxdb.db_per_tenant,
            ),
            influx,
            influx_batch_size: config.influxdb.batch_size.max(1),
            events,
            line_buffers: Arc::default(),
            stats: stats.clone(),
            control,
            config: config.clone(),
        });

        let replayed = shared.replay.queue_backlog(&shared)?;
        stats
            .wal_replayed_records
            .store(replayed, std::sync::atomic::Ordering::Relaxed);

        let mut writers = Vec::new();
        for n in 0..config.wal.writer_threads.max(1) {
            writers.push(writer_pool::spawn(
                n,
                shared.clone(),
                writer_pool::Sink::Influx,
            )?);
        }
        if shared.events.is_some() {
            writers.push(writer_pool::spawn(
                0,
                shared.clone(),
                writer_pool::Sink::Events,
            )?);
        }

        let mut consumers = Vec::new();
        for (section, kind) in [
            (&config.kafka_metrics, TopicKind::Metrics),
            (&config.kafka_alarm_history, TopicKind::AlarmTransitions),
            (&config.kafka_events, TopicKind::Events),
        ] {
            if !section.enabled {
                continue;
            }
            if shared.control.stopping() {
                log::info!(
                    "stop requested during start-up: not consuming topic {}",
                    section.topic
                );
                continue;
            }
            for member in 0..section.num_processors.max(1) {
                consumers.push(kafka_source::spawn(
                    config,
                    section,
                    kind,
                    member,
                    shared.clone(),
                )?);
            }
            let name = section.instance_name();
            let membership = if name.is_empty() {
                "dynamic members".to_string()
            } else {
                format!("static members {name}-{}-<thread>", section.topic)
            };
            log::info!(
                "consuming topic {} in group {} from {} with {} thread(s): {membership}, {} protocol",
                section.topic,
                section.group_id,
                section.uri.join(","),
                section.num_processors.max(1),
                section.protocol()
            );
        }
        Ok(Pipeline {
            shared,
            consumers,
            writers,
            drain_timeout: Duration::from_secs(config.wal.drain_timeout_seconds),
        })
    }

    /// The shared state (for the health endpoint and tests).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops consuming (flush, commit, leave the group), then lets the writers
    /// drain the WAL until it is empty or the drain timeout passes. Leaving
    /// the group runs alongside the drain and is given up at the same deadline
    /// (it waits for the session timeout when Kafka is unreachable).
    pub fn shutdown(self) -> Summary {
        use std::sync::atomic::Ordering::Relaxed;
        let shared = self.shared;
        let started = Instant::now();
        let written_before_stop = shared.stats.points_written.load(Relaxed);
        shared.control.stop();
        // After a fatal error the writers have given up already: what is
        // left is leaving the Kafka groups, for a few seconds at most.
        let drain_timeout = if shared.control.fatal_error().is_some() {
            self.drain_timeout.min(FATAL_STOP_TIMEOUT)
        } else {
            self.drain_timeout
        };
        for c in &self.consumers {
            if !c.wait_flushed(started + drain_timeout) {
                log::warn!("consumer {} did not reach its final flush point in time; what it read since its last one is not committed and is read again at the next start", c.name);
            }
        }
        log::info!(
            "consumers stopped after {:.1}s; draining the WAL ({} record(s)) for up to {}s",
            started.elapsed().as_secs_f64(),
            shared.wal.pending_records(),
            self.drain_timeout.as_secs()
        );
        shared.control.start_drain();
        let deadline = Instant::now() + drain_timeout;
        let mut give_up_at = None;
        loop {
            let writers_left = self.writers.iter().filter(|w| !w.is_finished()).count();
            let consumers_left = self.consumers.iter().filter(|c| !c.is_finished()).count();
            if writers_left == 0 && consumers_left == 0 {
                break;
            }
            let now = Instant::now();
            if give_up_at.is_none() && now >= deadline {
                let mut grace = Duration::ZERO;
                if writers_left > 0 {
                    log::warn!(
                        "drain timeout ({}s) reached with {} record(s) in the WAL; they are written at the next start",
                        drain_timeout.as_secs(),
                        shared.wal.pending_records()
                    );
                    shared.control.stop_writers();
                    grace = WRITERS_GIVE_UP_GRACE;
                }
                give_up_at = Some(now + grace);
            }
            if give_up_at.is_some_and(|t| now >= t) {
                if writers_left > 0 {
                    log::warn!("{writers_left} writer(s) still inside a request to InfluxDB; exiting without them (their records stay in the WAL)");
                }
                if consumers_left > 0 {
                    log::warn!("{consumers_left} consumer(s) still committing offsets or leaving the Kafka group (is Kafka reachable?); exiting without them: the WAL holds everything read and its offsets, and other members get the partitions after the session timeout");
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for c in self.consumers {
            if c.is_finished() {
                c.join();
            }
        }
        for w in self.writers {
            if w.is_finished() {
                w.join();
            }
        }
        if let Err(e) = shared.dead_letters.sync() {
            log::error!("syncing the dead-letter file at shutdown: {e}");
        }
        if let Err(e) = shared.wal.sync() {
            log::error!("flushing the WAL at shutdown: {e}");
        }
        let stats = &shared.stats;
        let points_written = stats.points_written.load(Relaxed);
        Summary {
            replayed_records: shared.replay.records(),
            points_written,
            points_drained: points_written.saturating_sub(written_before_stop),
            records_left: shared.wal.pending_records(),
            dead_letters: stats.dead_letters.load(Relaxed),
        }
    }
}
