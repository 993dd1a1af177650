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
//! This is the crate's only `unsafe` code: a thin wrapper of four librdkafka
//! calls with the ownership rules spelled out where they are used.

use std::ffi::CString;
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

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
    Error(KafkaError),
}

/// A librdkafka queue the assigned partitions are forwarded to.
///
/// It must be dropped before the consumer it was made from: the consumer
/// thread keeps it in a [`FetchQueueSlot`] and empties the slot before it
/// drops the consumer.
pub struct FetchQueue {
    queue: NonNull<rd::rd_kafka_queue_t>,
    client: NonNull<rd::rd_kafka_t>,
}

// SAFETY: librdkafka queues and handles are thread-safe; the pointers are
// only passed to librdkafka functions documented as callable from any thread.
unsafe impl Send for FetchQueue {}
// SAFETY: as above; no Rust-side state is shared through `&FetchQueue`.
unsafe impl Sync for FetchQueue {}

impl FetchQueue {
    /// A fresh queue on the librdkafka handle `client` (a consumer's
    /// `client().native_ptr()`), `None` if librdkafka cannot make one.
    pub fn new(client: *mut rd::rd_kafka_t) -> Option<FetchQueue> {
        let client = NonNull::new(client)?;
        // SAFETY: `client` is a live handle (the caller's consumer); the
        // returned queue is owned by us and destroyed in `Drop`.
        let queue = NonNull::new(unsafe { rd::rd_kafka_queue_new(client.as_ptr()) })?;
        Some(FetchQueue { queue, client })
    }

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
                    each(Fetched::Error(KafkaError::MessageConsumption(
                        RDKafkaErrorCode::from(m.err),
                    )));
                }
                rd::rd_kafka_message_destroy(message);
            }
        }
        n
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: we own the queue; the consumer (and its handle) is still
        // alive (see the type's documentation). Partitions still forwarding
        // here keep the queue's memory alive; librdkafka discards what they
        // send to it after this.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// Where a consumer keeps its fetch queue: reachable from the rebalance
/// callback (which routes newly assigned partitions) and emptied by the
/// consumer thread before the consumer is dropped.
#[derive(Default)]
pub struct FetchQueueSlot(std::sync::Mutex<Option<std::sync::Arc<FetchQueue>>>);

impl FetchQueueSlot {
    /// Puts the queue in the slot.
    pub fn set(&self, queue: FetchQueue) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(std::sync::Arc::new(queue));
        }
    }

    /// The queue, unless the consumer is shutting down.
    pub fn get(&self) -> Option<std::sync::Arc<FetchQueue>> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }

    /// Empties the slot and returns the queue for the caller to drop.
    pub fn take(&self) -> Option<std::sync::Arc<FetchQueue>> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}
