//! The embedded broker: librdkafka's mock cluster, a real Kafka
//! wire-protocol broker on loopback TCP, with the load run's topics created,
//! and the capacity rules it imposes.
//!
//! The mock keeps a partition's log within 5 MiB and 100 000 message sets
//! (batches) and silently drops the oldest batches beyond that, so a load
//! run checks it fits before producing and while producing.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use thiserror::Error;

/// Bytes a mock partition keeps before it drops its oldest batches.
pub const PARTITION_MAX_BYTES: u64 = 5 * 1024 * 1024;
/// Message sets (batches) a mock partition keeps.
pub const PARTITION_MAX_BATCHES: u64 = 100_000;
/// Bytes a record adds to its payload inside a batch (length, offset and
/// timestamp deltas, key and header counts), rounded up; plus a share of the
/// 61-byte batch header.
pub const RECORD_OVERHEAD_BYTES: u64 = 16;

/// The broker could not be started.
///
/// An underlying error is part of the message (a `cause` field, not
/// `source()`), so an `anyhow` chain printed with `{:#}` shows it once.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// librdkafka could not start the mock cluster.
    #[error("cannot start the embedded broker: {cause}")]
    Start {
        /// librdkafka's error.
        cause: rdkafka::error::KafkaError,
    },
    /// A topic could not be created.
    #[error("cannot create topic {topic} on the embedded broker: {cause}")]
    Topic {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        cause: rdkafka::error::KafkaError,
    },
}

/// A running embedded broker; stops when dropped.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Starts a one-broker mock cluster with each of `topics` created with
    /// `partitions` partitions.
    pub fn start(topics: &[&str], partitions: i32) -> Result<EmbeddedBroker, BrokerError> {
        let cluster = MockCluster::new(1).map_err(|cause| BrokerError::Start { cause })?;
        for topic in topics {
            cluster
                .create_topic(topic, partitions, 1)
                .map_err(|cause| BrokerError::Topic {
                    topic: topic.to_string(),
                    cause,
                })?;
        }
        Ok(EmbeddedBroker { cluster })
    }

    /// The bootstrap address, `127.0.0.1:port`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

/// What one partition of the embedded broker would hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLoad {
    /// Messages.
    pub messages: u64,
    /// Bytes, counting [`RECORD_OVERHEAD_BYTES`] per message.
    pub bytes: u64,
}

/// Why a load does not fit the embedded broker.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CapacityError {
    /// A partition would exceed the mock's byte limit and lose its oldest messages.
    #[error(
        "{topic}: about {bytes} bytes per partition, over the embedded broker's {PARTITION_MAX_BYTES} \
         (it would silently drop the oldest messages); use at least {needed} partitions"
    )]
    Bytes {
        /// The topic.
        topic: String,
        /// Bytes per partition.
        bytes: u64,
        /// Partitions that would be enough.
        needed: u64,
    },
}

impl PartitionLoad {
    /// The load of the fullest of `partitions` partitions when `messages`
    /// messages averaging `average_bytes` are spread round robin.
    pub fn spread(messages: u64, average_bytes: f64, partitions: u32) -> PartitionLoad {
        let per_partition = messages.div_ceil(u64::from(partitions.max(1)));
        PartitionLoad {
            messages: per_partition,
            bytes: (per_partition as f64 * (average_bytes + RECORD_OVERHEAD_BYTES as f64)).ceil()
                as u64,
        }
    }

    /// Refuses a load the mock would truncate. `partitions` is the current
    /// count, used to say how many would be enough.
    pub fn check(&self, topic: &str, partitions: u32) -> Result<(), CapacityError> {
        if self.bytes > PARTITION_MAX_BYTES {
            let total = self.bytes * u64::from(partitions.max(1));
            return Err(CapacityError::Bytes {
                topic: topic.to_string(),
                bytes: self.bytes,
                needed: total.div_ceil(PARTITION_MAX_BYTES),
            });
        }
        Ok(())
    }

    /// True when the partition holds more messages than the mock keeps
    /// batches: harmless when messages are batched (fast runs), lossy when
    /// each is its own batch (slow runs).
    pub fn may_exceed_batches(&self) -> bool {
        self.messages > PARTITION_MAX_BATCHES
    }

    /// Adds one message of `payload_bytes`.
    pub fn add(&mut self, payload_bytes: usize) {
        self.messages += 1;
        self.bytes += payload_bytes as u64 + RECORD_OVERHEAD_BYTES;
    }

    /// Nothing yet.
    pub fn empty() -> PartitionLoad {
        PartitionLoad {
            messages: 0,
            bytes: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_small_messages_fit_in_64_partitions_but_not_in_16() {
        let fits = PartitionLoad::spread(1_000_000, 260.0, 64);
        assert!(fits.check("metrics", 64).is_ok());
        let too_big = PartitionLoad::spread(1_000_000, 260.0, 16);
        let err = too_big.check("metrics", 16).unwrap_err();
        let CapacityError::Bytes { needed, .. } = err;
        assert!((53..=60).contains(&needed), "needed {needed}");
    }
}
