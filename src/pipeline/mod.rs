//! The persister's main job: start-up (open the WAL, start writers on what it
//! holds, then the Kafka source's consumers, each thread given a handle with
//! only the parts it uses), steady state, and the two-phase shutdown
//! (consumers flush, commit and leave; writers drain the WAL until empty or a
//! deadline).

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
use crate::health::HealthHandle;
use crate::influx::InfluxWriter;
use crate::kafka_source::{self, ConsumerHandle, ConsumerThread};
use crate::retry::Retry;
use crate::stats::{Stats, TopicKind};
use crate::transform::Transformer;
pub use control::{Control, Failure};
use disk_space::DiskSpace;
use event_sink::EventsSink;
use flush_point::PipelineStore;
use handoff::{HandoffQueue, SinkQueues};
use line_buffers::LineBuffers;
use replay::Replay;
use writer_pool::{Sink, WriterHandle};

/// How long shutdown still waits for writers told to give up at the drain
/// deadline: one may be inside an HTTP request to a hung InfluxDB (up to
/// `[influxdb] timeout_seconds`). Its records are not acknowledged, so they
/// stay in the WAL; waiting longer would only push the exit past the stop
/// timeout of the service manager.
const WRITERS_GIVE_UP_GRACE: Duration = Duration::from_secs(2);

/// How long the stop after a fatal error may take (leaving the Kafka
/// groups): the process must exit within seconds.
const FATAL_STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// The pipeline's parts, each made once at start-up. No thread holds them
/// all: consumers, writers and the health endpoint get handles with only
/// the parts they use ([`ConsumerHandle`], [`WriterHandle`],
/// [`HealthHandle`]), made here.
struct Parts {
    /// The durable log.
    wal: Arc<wal::Wal>,
    /// Back-pressure ends when the WAL is down to this many bytes.
    wal_low_water_bytes: u64,
    /// Rejected messages and lines.
    dead_letters: Arc<DeadLetterStore>,
    /// Room on the disks of the WAL and the dead letters.
    disk_space: Arc<DiskSpace>,
    /// Records on their way to writers, one queue per sink.
    queues: SinkQueues,
    /// The backlog found in the WAL at start-up.
    replay: Arc<Replay>,
    /// Messages to lines.
    transformer: Transformer,
    /// The InfluxDB sink.
    influx: Arc<InfluxWriter>,
    /// Points per InfluxDB write.
    influx_batch_size: usize,
    /// The events sink, when `[kafka_events] enabled = true`.
    events: Option<Arc<EventsSink>>,
    /// Written records' buffers, for consumers to fill again.
    line_buffers: Arc<LineBuffers>,
    /// Counters.
    stats: Arc<Stats>,
    /// Run state.
    control: Arc<Control>,
}

impl Parts {
    /// What a consumer of records of `kind` holds.
    fn consumer(&self, config: &Config, kind: TopicKind) -> ConsumerHandle {
        let (record_size, index_name) = match (kind, &self.events) {
            (TopicKind::Events, Some(events)) => {
                (events.batch_size(), config.elasticsearch.index_name.clone())
            }
            _ => (self.influx_batch_size, String::new()),
        };
        ConsumerHandle {
            kind,
            store: PipelineStore {
                disk_space: self.disk_space.clone(),
                dead_letters: self.dead_letters.clone(),
                wal: self.wal.clone(),
                handoff: self.queues.for_kind(kind).clone(),
                control: self.control.clone(),
            },
            wal_low_water_bytes: self.wal_low_water_bytes,
            record_size,
            transformer: self.transformer.clone(),
            index_name,
            line_buffers: self.line_buffers.clone(),
            stats: self.stats.clone(),
            control: self.control.clone(),
        }
    }

    /// What a writer to InfluxDB holds.
    fn influx_writer(&self, config: &Config) -> WriterHandle {
        self.writer(
            Sink::Influx {
                writer: self.influx.clone(),
                batch_size: self.influx_batch_size,
            },
            self.queues.influx.clone(),
            Retry::from_config(
                format!("writing to InfluxDB at {}", self.influx.client().url()),
                &config.influxdb,
            ),
        )
    }

    /// What the events writer holds, when events are consumed.
    fn events_writer(&self) -> Option<WriterHandle> {
        let (events, queue) = (self.events.as_ref()?, self.queues.events.as_ref()?);
        Some(self.writer(
            Sink::Events(events.clone()),
            queue.clone(),
            events.retry_policy(),
        ))
    }

    fn writer(&self, sink: Sink, handoff: Arc<HandoffQueue>, retry: Retry) -> WriterHandle {
        WriterHandle {
            sink,
            handoff,
            retry,
            wal: self.wal.clone(),
            replay: self.replay.clone(),
            dead_letters: self.dead_letters.clone(),
            line_buffers: self.line_buffers.clone(),
            stats: self.stats.clone(),
            control: self.control.clone(),
        }
    }

    /// What the health endpoint reads.
    fn health(&self) -> HealthHandle {
        HealthHandle {
            stats: self.stats.clone(),
            wal: self.wal.clone(),
            disk_space: self.disk_space.clone(),
            influx: self.influx.clone(),
            events: self.events.clone(),
        }
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
    /// The durable log: flushed, and what it holds counted, at shutdown.
    wal: Arc<wal::Wal>,
    /// Synced at shutdown.
    dead_letters: Arc<DeadLetterStore>,
    /// What start-up replayed, for the summary.
    replay: Arc<Replay>,
    stats: Arc<Stats>,
    control: Arc<Control>,
    /// What the health endpoint reads.
    health: HealthHandle,
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
        let parts = Parts {
            wal_low_water_bytes: config.wal.max_size_mb * 1024 * 1024 * 8 / 10,
            wal: Arc::new(wal),
            dead_letters: Arc::new(dead_letters),
            disk_space: Arc::new(DiskSpace::new(
                &config.wal.path,
                &config.wal.dead_letter_path,
            )),
            queues: SinkQueues::new(events.is_some()),
            replay: Arc::default(),
            transformer: Transformer::new(
                config.influxdb.database_name.clone(),
                config.influxdb.db_per_tenant,
            ),
            influx: Arc::new(influx),
            influx_batch_size: config.influxdb.batch_size.max(1),
            events: events.map(Arc::new),
            line_buffers: Arc::default(),
            stats: stats.clone(),
            control,
        };

        let replayed = parts.replay.queue_backlog(&parts.wal, &parts.queues)?;
        stats
            .wal_replayed_records
            .store(replayed, std::sync::atomic::Ordering::Relaxed);

        let mut writers = Vec::new();
        for n in 0..config.wal.writer_threads.max(1) {
            writers.push(writer_pool::spawn(n, parts.influx_writer(config))?);
        }
        if let Some(handle) = parts.events_writer() {
            writers.push(writer_pool::spawn(0, handle)?);
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
            if parts.control.stopping() {
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
                    member,
                    parts.consumer(config, kind),
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
            health: parts.health(),
            wal: parts.wal,
            dead_letters: parts.dead_letters,
            replay: parts.replay,
            stats: parts.stats,
            control: parts.control,
            consumers,
            writers,
            drain_timeout: Duration::from_secs(config.wal.drain_timeout_seconds),
        })
    }

    /// What the health endpoint reads.
    pub fn health(&self) -> HealthHandle {
        self.health.clone()
    }

    /// The WAL (for the run's exit and tests).
    pub fn wal(&self) -> &Arc<wal::Wal> {
        &self.wal
    }

    /// Stops consuming (flush, commit, leave the group), then lets the writers
    /// drain the WAL until it is empty or the drain timeout passes. Leaving
    /// the group runs alongside the drain and is given up at the same deadline
    /// (it waits for the session timeout when Kafka is unreachable).
    pub fn shutdown(self) -> Summary {
        use std::sync::atomic::Ordering::Relaxed;
        let started = Instant::now();
        let written_before_stop = self.stats.points_written.load(Relaxed);
        self.control.stop();
        // After a fatal error the writers have given up already: what is
        // left is leaving the Kafka groups, for a few seconds at most.
        let drain_timeout = if self.control.fatal_error().is_some() {
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
            self.wal.pending_records(),
            self.drain_timeout.as_secs()
        );
        self.control.start_drain();
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
                        self.wal.pending_records()
                    );
                    self.control.stop_writers();
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
        if let Err(e) = self.dead_letters.sync() {
            log::error!("syncing the dead-letter file at shutdown: {e}");
        }
        if let Err(e) = self.wal.sync() {
            log::error!("flushing the WAL at shutdown: {e}");
        }
        let stats = &self.stats;
        let points_written = stats.points_written.load(Relaxed);
        Summary {
            replayed_records: self.replay.records(),
            points_written,
            points_drained: points_written.saturating_sub(written_before_stop),
            records_left: self.wal.pending_records(),
            dead_letters: stats.dead_letters.load(Relaxed),
        }
    }
}
