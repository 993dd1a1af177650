//! Producing to Kafka with every delivery accounted for: each message is
//! counted as acknowledged or failed from librdkafka's delivery report, so a
//! load run can say exactly what reached the broker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use thiserror::Error;

/// Producer properties set unless the caller overrides them: batches large
/// enough for high rates, a queue deep enough not to stall the generator, and
/// a bounded delivery timeout so that a dead broker shows up as failures.
const DEFAULT_PROPERTIES: &[(&str, &str)] = &[
    ("linger.ms", "5"),
    ("batch.num.messages", "10000"),
    ("queue.buffering.max.messages", "500000"),
    ("queue.buffering.max.kbytes", "524288"),
    ("message.timeout.ms", "30000"),
    ("acks", "all"),
];

/// A producer that cannot be made, or a message that cannot be queued.
///
/// An underlying error is part of the message (a `cause` field, not
/// `source()`), so an `anyhow` chain printed with `{:#}` shows it once.
#[derive(Debug, Error)]
pub enum ProduceError {
    /// librdkafka refused the configuration.
    #[error("cannot create the Kafka producer: {cause}")]
    Create {
        /// librdkafka's error.
        cause: KafkaError,
    },
    /// librdkafka refused the message outright (not a full queue).
    #[error("cannot queue a message for {topic}: {cause}")]
    Queue {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        cause: KafkaError,
    },
}

/// Delivery counts so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Messages the broker acknowledged.
    pub acked: u64,
    /// Messages that failed (delivery timeout, broker refusal…).
    pub failed: u64,
    /// The first delivery error, to explain `failed`.
    pub first_error: Option<String>,
    /// The latest client-level error (connection refused, authentication…),
    /// which explains a run that makes no progress.
    pub client_error: Option<String>,
}

/// Counts delivery reports and keeps the errors worth showing.
#[derive(Default)]
pub struct DeliveryCounter {
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    client_error: Mutex<Option<String>>,
}

impl DeliveryCounter {
    fn snapshot(&self) -> Deliveries {
        let text = |m: &Mutex<Option<String>>| m.lock().ok().and_then(|g| g.clone());
        Deliveries {
            acked: self.acked.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            first_error: text(&self.first_error),
            client_error: text(&self.client_error),
        }
    }
}

/// The librdkafka context: delivery reports and client errors land here.
#[derive(Clone, Default)]
pub struct CountingContext(Arc<DeliveryCounter>);

impl ClientContext for CountingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Ok(mut last) = self.0.client_error.lock() {
            *last = Some(format!("{error}: {reason}"));
        }
    }
}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.0.first_error.lock() {
                    first.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }
}

/// A Kafka producer for load runs.
pub struct LoadProducer {
    producer: ThreadedProducer<CountingContext>,
    counter: Arc<DeliveryCounter>,
    sent: u64,
}

impl LoadProducer {
    /// A producer for `brokers` (`host:port,…`); `properties` (librdkafka
    /// names, e.g. TLS and SASL settings) override the defaults.
    pub fn new(brokers: &str, properties: &[(String, String)]) -> Result<Self, ProduceError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers);
        for (key, value) in DEFAULT_PROPERTIES {
            config.set(*key, *value);
        }
        for (key, value) in properties {
            config.set(key, value);
        }
        let context = CountingContext::default();
        let counter = Arc::clone(&context.0);
        let producer = config
            .create_with_context(context)
            .map_err(|cause| ProduceError::Create { cause })?;
        Ok(LoadProducer {
            producer,
            counter,
            sent: 0,
        })
    }

    /// Queues one message for `topic` (to `partition` when given, else
    /// librdkafka's partitioner picks). A full local queue is waited out,
    /// which is how a fast generator is held to the broker's pace.
    pub fn send(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        payload: &[u8],
    ) -> Result<(), ProduceError> {
        let mut record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    // The producer's own thread serves delivery reports;
                    // this only yields until the queue has room.
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((cause, _)) => {
                    return Err(ProduceError::Queue {
                        topic: topic.to_string(),
                        cause,
                    })
                }
            }
        }
    }

    /// Messages queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Delivery counts so far.
    pub fn deliveries(&self) -> Deliveries {
        self.counter.snapshot()
    }

    /// Messages queued but not yet reported delivered or failed.
    pub fn in_flight(&self) -> u64 {
        let d = self.deliveries();
        self.sent.saturating_sub(d.acked + d.failed)
    }

    /// Waits up to `timeout` for every queued message's delivery report,
    /// calling `tick` about every 200 ms; true when none is outstanding.
    pub fn flush(&self, timeout: Duration, mut tick: impl FnMut(&Deliveries)) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            // librdkafka's flush returns once its queue is empty; the counts
            // are updated by the delivery callbacks just before that.
            let _ = self.producer.flush(Duration::from_millis(200));
            tick(&self.deliveries());
            if self.in_flight() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }
}
