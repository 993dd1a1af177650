//! The consumer's message path: every assigned partition forwards what
//! librdkafka fetched to one queue of ours, which the consumer thread drains
//! hundreds of messages per call (`rd_kafka_consume_batch_queue`).
//!
//! Why not `BaseConsumer::poll`: per message it reads the clock three times,
//! allocates an event and an `Arc`, and takes the queue lock for each, which
//! measured about a quarter of the persister's CPU per message. Rebalances,
//! errors and commit callbacks still arrive through `BaseConsumer::poll` on
//! the consumer queue, which the thread keeps calling between drains.
//!
//! The crate's main `unsafe` code (see ARCHITECTURE.md): a thin wrapper of
//! seven librdkafka calls with the ownership rules spelled out where they
//! are used (the seventh reads the log start offset the last fetch
//! reported, which the rdkafka crate does not expose).

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::Offset;

/// One fetched message, valid for the duration of the callback.
pub enum Fetched<'m> {
    /// A message of `partition` at `offset`.
    Message {
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// Its value (`None` for a null value).
        payload: Option<&'m [u8]>,
    },
    /// A consume error librdkafka reports in the message stream.
    Error {
        /// The partition it is about, if any.
        partition: Option<i32>,
        /// The fetch offset it was reported at (may be a logical offset).
        offset: i64,
        /// What went wrong.
        error: KafkaError,
    },
}

/// A librdkafka queue the assigned partitions are forwarded to.
///
/// It must be destroyed before the consumer it was made from: it exists
/// only inside the [`QueuedConsumer`] that owns both, which drops it first.
pub struct FetchQueue {
    queue: NonNull<rd::rd_kafka_queue_t>,
    client: NonNull<rd::rd_kafka_t>,
}

// SAFETY: librdkafka queues and handles are thread-safe; the pointers are
// only passed to librdkafka functions documented as callable from any thread.
unsafe impl Send for FetchQueue {}
// SAFETY: as above; no Rust-side state is shared through `&FetchQueue`.
unsafe impl Sync for FetchQueue {}

/// A consumer and the fetch queue its assigned partitions forward to,
/// owned together so that the queue is destroyed before the consumer closes
/// (the fields drop in declaration order, also when the thread unwinds).
/// The consumer's callbacks reach the queue through a [`FetchQueueSlot`],
/// which keeps no queue alive.
pub struct QueuedConsumer<C: ConsumerContext + 'static> {
    /// Declared first: dropped first. The only strong reference that
    /// outlives a call into this module.
    queue: Arc<FetchQueue>,
    consumer: BaseConsumer<C>,
}

impl<C: ConsumerContext + 'static> QueuedConsumer<C> {
    /// `consumer` with a fresh fetch queue; `None` (the consumer closed) if
    /// librdkafka cannot make one.
    pub fn new(consumer: BaseConsumer<C>) -> Option<Self> {
        let client = NonNull::new(consumer.client().native_ptr())?;
        // SAFETY: `client` is the live handle of `consumer`, which the
        // returned value owns and drops after the queue; the queue is ours
        // and destroyed in `FetchQueue::drop`.
        let queue = NonNull::new(unsafe { rd::rd_kafka_queue_new(client.as_ptr()) })?;
        Some(QueuedConsumer {
            queue: Arc::new(FetchQueue { queue, client }),
            consumer,
        })
    }

    /// The consumer.
    pub fn consumer(&self) -> &BaseConsumer<C> {
        &self.consumer
    }

    /// Its fetch queue.
    pub fn queue(&self) -> &FetchQueue {
        &self.queue
    }
}

impl FetchQueue {
    /// Forwards `partition` of `topic` to this queue. Done before the
    /// partition is assigned, so that no message of it takes the consumer
    /// queue instead (which would let later offsets overtake earlier ones).
    /// librdkafka keeps an application-set forward across (re)assignments.
    pub fn route(&self, topic: &str, partition: i32) -> bool {
        let Ok(topic) = CString::new(topic) else {
            return false;
        };
        // SAFETY: the handle is live (see `FetchQueue`); the partition queue
        // handle is ours to destroy, which drops only the handle: the
        // forwarding stays with the partition.
        unsafe {
            let Some(partition_queue) = NonNull::new(rd::rd_kafka_queue_get_partition(
                self.client.as_ptr(),
                topic.as_ptr(),
                partition,
            )) else {
                return false;
            };
            rd::rd_kafka_queue_forward(partition_queue.as_ptr(), self.queue.as_ptr());
            rd::rd_kafka_queue_destroy(partition_queue.as_ptr());
        }
        true
    }

    /// Hands up to `max` messages to `each`, waiting up to `timeout` for the
    /// first one. Returns how many were handed over.
    ///
    /// Unlike the one-message poll, librdkafka's batch consume moves a
    /// partition's application position past the offset of an *error* too
    /// (`rd_kafka_q_serve_rkmessages`). A later pause restarts fetching
    /// there, which would skip the message at that offset: the caller must
    /// seek the partition back to an error's offset (see `Fetched::Error`).
    pub fn drain(
        &self,
        timeout: Duration,
        max: usize,
        buf: &mut Vec<*mut rd::rd_kafka_message_t>,
        mut each: impl FnMut(Fetched<'_>),
    ) -> usize {
        let max = max.max(1);
        buf.clear();
        buf.resize(max, std::ptr::null_mut());
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `buf` has room for `max` pointers; librdkafka fills the
        // first `n` with messages we own until `rd_kafka_message_destroy`.
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(self.queue.as_ptr(), timeout_ms, buf.as_mut_ptr(), max)
        };
        let n = usize::try_from(n).unwrap_or(0).min(max);
        for &message in &buf[..n] {
            // SAFETY: librdkafka returned `message` as a valid, owned message;
            // the payload slice does not outlive this iteration, and the
            // message is destroyed exactly once, right after.
            unsafe {
                let Some(m) = message.as_ref() else { continue };
                if m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    let payload = (!m.payload.is_null())
                        .then(|| std::slice::from_raw_parts(m.payload as *const u8, m.len));
                    each(Fetched::Message {
                        partition: m.partition,
                        offset: m.offset,
                        payload,
                    });
                } else {
                    each(Fetched::Error {
                        partition: (m.partition >= 0).then_some(m.partition),
                        offset: m.offset,
                        error: KafkaError::MessageConsumption(RDKafkaErrorCode::from(m.err)),
                    });
                }
                rd::rd_kafka_message_destroy(message);
            }
        }
        n
    }
}

/// The log start offset of `partition` of `topic` that the last fetch
/// response reported (no request to the broker), if librdkafka has one.
pub fn cached_log_start<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the handle is live for the borrow of `consumer`; librdkafka
    // only reads `topic` and writes the two offsets we own.
    let err = unsafe {
        rd::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && low >= 0).then_some(low)
}

/// Puts `partition` of `topic` back to `offset`, where a consume error was
/// reported (the next message to read), undoing the batch consume moving
/// its position one past (see [`FetchQueue::drain`]). Messages already
/// fetched beyond it are fetched again, not skipped.
pub fn rewind_after_error<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(), KafkaError> {
    consumer.seek(
        topic,
        partition,
        Offset::Offset(offset),
        Duration::from_secs(10),
    )
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: we own the queue; the consumer (and its handle) is still
        // alive (see `QueuedConsumer`). Partitions still forwarding
        // here keep the queue's memory alive; librdkafka discards what they
        // send to it after this.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// How a consumer's callbacks reach its fetch queue (the rebalance
/// callback routes newly assigned partitions to it) without keeping it
/// alive: once the [`QueuedConsumer`] drops the queue, before the consumer
/// closes, callbacks find none.
#[derive(Default)]
pub struct FetchQueueSlot(OnceLock<Weak<FetchQueue>>);

impl FetchQueueSlot {
    /// Links the slot to the queue of `owner` (whose consumer's context
    /// holds the slot); a slot is linked once.
    pub fn link<C: ConsumerContext + 'static>(&self, owner: &QueuedConsumer<C>) {
        let _ = self.0.set(Arc::downgrade(&owner.queue));
    }

    /// Calls `f` with the queue, unless there is none (not linked yet, or
    /// the consumer is closing). To be called on the consumer's own thread
    /// (its callbacks run there, inside `poll`), so that the queue cannot
    /// be dropped meanwhile.
    pub fn with<R>(&self, f: impl FnOnce(&FetchQueue) -> R) -> Option<R> {
        let queue = self.0.get()?.upgrade()?;
        Some(f(&queue))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use rdkafka::TopicPartitionList;

    const TOPIC: &str = "metrics";

    fn produce(producer: &BaseProducer, from: usize, to: usize) {
        for i in from..to {
            let payload = format!("m{i}");
            producer
                .send(
                    BaseRecord::<(), _>::to(TOPIC)
                        .partition(0)
                        .payload(&payload),
                )
                .expect("queue a message");
        }
        producer.flush(Duration::from_secs(10)).expect("deliver");
    }

    /// Drains until `until` says stop (or 30 s pass), collecting what came.
    fn drain_until(
        queue: &FetchQueue,
        consumer: &BaseConsumer,
        until: impl Fn(&[Result<i64, i64>]) -> bool,
    ) -> Vec<Result<i64, i64>> {
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !until(&seen) {
            assert!(
                std::time::Instant::now() < deadline,
                "drained only {seen:?}"
            );
            let _ = consumer.poll(Duration::ZERO);
            queue.drain(Duration::from_millis(50), 100, &mut buf, |m| match m {
                Fetched::Message { offset, .. } => seen.push(Ok(offset)),
                Fetched::Error { offset, .. } => seen.push(Err(offset)),
            });
        }
        seen
    }

    /// The slot reaches the queue while its owner lives, and nothing once
    /// the owner dropped it (before closing the consumer).
    #[test]
    fn the_slot_reaches_the_queue_only_while_its_owner_lives() {
        let slot = FetchQueueSlot::default();
        assert_eq!(slot.with(|_| ()), None, "not linked yet");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("group.id", "fetch-queue-slot-test")
            .create()
            .expect("consumer");
        let owned = QueuedConsumer::new(consumer).expect("queue");
        slot.link(&owned);
        assert_eq!(
            slot.with(|queue| std::ptr::eq(queue, owned.queue())),
            Some(true)
        );
        drop(owned);
        assert_eq!(slot.with(|_| ()), None, "the queue went with its owner");
    }

    /// Messages, then a consume error, then a pause and resume: with the
    /// rewind, reading resumes at the error's offset; without it librdkafka
    /// would resume one past it (checked too, so the test shows the hazard).
    #[test]
    fn a_consume_error_then_a_pause_skips_nothing_after_the_rewind() {
        for rewind in [true, false] {
            let cluster = MockCluster::new(1).expect("mock cluster");
            cluster.create_topic(TOPIC, 1, 1).expect("topic");
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", cluster.bootstrap_servers())
                .create()
                .expect("producer");
            produce(&producer, 0, 5);
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", cluster.bootstrap_servers())
                .set("group.id", "fetch-queue-test")
                .set("enable.auto.commit", "false")
                .set("fetch.error.backoff.ms", "2000")
                .create()
                .expect("consumer");
            let owned = QueuedConsumer::new(consumer).expect("queue");
            let (consumer, queue) = (owned.consumer(), owned.queue());
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
                .expect("tpl");
            assert!(queue.route(TOPIC, 0));
            consumer.assign(&tpl).expect("assign");
            let first = drain_until(queue, consumer, |s| s.len() >= 5);
            assert_eq!(first, (0..5).map(Ok).collect::<Vec<_>>());

            // The error comes before the next messages exist: a fetch the
            // broker holds open when they are produced would otherwise
            // answer with them, ahead of the injected error.
            cluster.request_errors(
                RDKafkaApiKey::Fetch,
                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN],
            );
            let error = drain_until(queue, consumer, |s| !s.is_empty());
            assert_eq!(
                error,
                vec![Err(5)],
                "the error names the next offset to read"
            );
            produce(&producer, 5, 10);
            if rewind {
                rewind_after_error(consumer, TOPIC, 0, 5).expect("rewind");
            }
            let assignment = consumer.assignment().expect("assignment");
            consumer.pause(&assignment).expect("pause");
            consumer.resume(&assignment).expect("resume");
            let after = drain_until(queue, consumer, |s| s.iter().any(|m| m == &Ok(9)));
            let expected_first = if rewind { 5 } else { 6 };
            assert_eq!(
                after.first(),
                Some(&Ok(expected_first)),
                "rewind={rewind}: read after the pause: {after:?}"
            );
            // `owned` goes after `assignment`, whose partitions hold
            // references that would keep the consumer's close waiting.
        }
    }
}
