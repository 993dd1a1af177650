//! One load run: generated messages paced onto their topics and partitions
//! until the generator's limits, a deadline or a stop request, then every
//! delivery report awaited.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::broker::{PartitionLoad, PARTITION_MAX_BYTES};
use super::generate::{Generator, Message, MessageKind};
use super::pace::Pacer;
use super::producer::{Deliveries, LoadProducer, ProduceError};
use super::progress::Progress;

/// How long the end of a run waits for outstanding delivery reports.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest gap between progress updates at low rates.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Where the messages go.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Topic of metric envelopes.
    pub metrics_topic: String,
    /// Topic of alarm transitions.
    pub alarms_topic: String,
    /// When set, each topic's messages go round robin over partitions
    /// `0..n`; else librdkafka's partitioner picks.
    pub partitions: Option<u32>,
    /// Track bytes per partition and stop before the embedded broker would
    /// drop messages (needs `partitions`).
    pub guard_capacity: bool,
}

impl Destination {
    /// The topic of `kind`.
    pub fn topic(&self, kind: MessageKind) -> &str {
        match kind {
            MessageKind::Metric => &self.metrics_topic,
            MessageKind::AlarmTransition => &self.alarms_topic,
        }
    }
}

/// A run could not go on.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The producer refused a message.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// The next message would make the embedded broker drop old ones.
    #[error(
        "partition {partition} of {topic} is full ({PARTITION_MAX_BYTES} bytes, the embedded \
         broker's limit; older messages would be dropped): use more --partitions"
    )]
    PartitionFull {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Metric envelopes queued.
    pub metrics: u64,
    /// Alarm transitions queued.
    pub alarms: u64,
    /// Delivery reports at the end.
    pub deliveries: Deliveries,
    /// Messages still without a delivery report when the wait ended.
    pub undelivered: u64,
    /// From the first message queued to the last delivery report.
    pub elapsed: Duration,
    /// True when a stop request cut the run short.
    pub stopped: bool,
}

impl Outcome {
    /// Messages queued.
    pub fn sent(&self) -> u64 {
        self.metrics + self.alarms
    }

    /// True when every queued message was acknowledged.
    pub fn complete(&self) -> bool {
        self.deliveries.failed == 0 && self.undelivered == 0
    }
}

/// A run's settings.
pub struct LoadRun {
    /// The messages.
    pub generator: Generator,
    /// Their topics and partitions.
    pub destination: Destination,
    /// Their rate.
    pub pacer: Pacer,
    /// No message is queued after this.
    pub deadline: Option<Instant>,
}

impl LoadRun {
    /// Produces the run's messages with `producer`, calling `on_sent` with
    /// each one just after it was queued, and waits for their delivery.
    pub fn produce(
        &mut self,
        producer: &mut LoadProducer,
        stop: &AtomicBool,
        progress: &mut Progress,
        mut on_sent: impl FnMut(&Message),
    ) -> Result<Outcome, LoadError> {
        let partitions = self.destination.partitions.filter(|p| *p > 0);
        let mut next_partition = [0u32; 2];
        let slots = partitions.unwrap_or(0) as usize;
        let mut loads = [
            vec![PartitionLoad::empty(); slots],
            vec![PartitionLoad::empty(); slots],
        ];
        let start = Instant::now();
        let mut stopped = false;
        let mut k: u64 = 0;
        let mut shown = Instant::now();
        while self.generator.peek_kind().is_some() {
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if !self.pacer.wait_for(k, stop) {
                stopped = true;
                break;
            }
            let Some(message) = self.generator.next_message() else {
                break;
            };
            let topic_index = match message.kind {
                MessageKind::Metric => 0,
                MessageKind::AlarmTransition => 1,
            };
            let partition = partitions.map(|n| {
                let p = next_partition[topic_index];
                next_partition[topic_index] = (p + 1) % n;
                p
            });
            let topic = self.destination.topic(message.kind);
            if let (true, Some(p)) = (self.destination.guard_capacity, partition) {
                let load = &mut loads[topic_index][p as usize];
                load.add(message.payload.len());
                if load.bytes > PARTITION_MAX_BYTES {
                    return Err(LoadError::PartitionFull {
                        topic: topic.to_string(),
                        partition: p,
                    });
                }
            }
            producer.send(topic, partition.map(|p| p as i32), &message.payload)?;
            on_sent(&message);
            k += 1;
            if k % 512 == 0 || shown.elapsed() >= PROGRESS_EVERY {
                shown = Instant::now();
                progress.update(k, &producer.deliveries());
            }
        }
        if stop.load(Ordering::Relaxed) {
            stopped = true;
        }
        let flush_timeout = if stopped {
            Duration::from_secs(5)
        } else {
            FLUSH_TIMEOUT
        };
        producer.flush(flush_timeout, |d| progress.update(k, d));
        progress.update(k, &producer.deliveries());
        progress.finish();
        Ok(Outcome {
            metrics: self.generator.metrics(),
            alarms: self.generator.alarms(),
            deliveries: producer.deliveries(),
            undelivered: producer.in_flight(),
            elapsed: start.elapsed(),
            stopped,
        })
    }
}
