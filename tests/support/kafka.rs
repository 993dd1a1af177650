//! A real Kafka wire-protocol broker for tests: librdkafka's mock cluster on
//! loopback, with helpers to create topics, produce and consume.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DefaultProducerContext, Producer, ThreadedProducer,
};

/// An in-process mock Kafka cluster reachable over TCP.
pub struct Kafka {
    /// The cluster; use it for fault injection (`broker_down`, `request_errors`, …).
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl Kafka {
    /// Starts a mock cluster with `brokers` brokers and the given `(topic, partitions)`.
    pub fn start(brokers: i32, topics: &[(&str, i32)]) -> Kafka {
        let cluster = MockCluster::new(brokers).expect("start librdkafka mock cluster");
        Self::with_cluster(cluster, topics)
    }

    /// Like [`Kafka::start`], but a group's first rebalance waits only
    /// `delay` instead of the mock's 3 s `group.initial.rebalance.delay.ms`.
    /// Members whose session timeout is shorter than that delay time out
    /// while waiting in it and never get an assignment, so tests with short
    /// sessions (fast hand-over after a SIGKILL) need this. The cluster is
    /// owned by a client that lives until the test process exits: rdkafka
    /// exposes the setting only through the raw handle of such a client.
    pub fn start_with_rebalance_delay(
        brokers: i32,
        topics: &[(&str, i32)],
        delay: Duration,
    ) -> Kafka {
        let owner: &'static BaseProducer = Box::leak(Box::new(
            ClientConfig::new()
                .set("test.mock.num.brokers", brokers.to_string())
                .create()
                .expect("create the client owning a mock cluster"),
        ));
        let raw =
            unsafe { rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr()) };
        assert!(!raw.is_null(), "the client has no mock cluster");
        unsafe {
            rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(
                raw,
                delay.as_millis() as i32,
            )
        };
        let cluster = owner.client().mock_cluster().expect("mock cluster handle");
        Self::with_cluster(cluster, topics)
    }

    fn with_cluster(
        cluster: MockCluster<'static, DefaultProducerContext>,
        topics: &[(&str, i32)],
    ) -> Kafka {
        for (t, p) in topics {
            cluster
                .create_topic(t, *p, 1)
                .unwrap_or_else(|e| panic!("create mock topic {t}: {e}"));
        }
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("message.timeout.ms", "60000")
            .create()
            .expect("create test producer");
        Kafka { cluster, producer }
    }

    /// `host:port` list for `bootstrap.servers` / `[kafka_*] uri`.
    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Produces one message (to `partition` when given, else keyed round robin) without waiting.
    pub fn produce(&self, topic: &str, partition: Option<i32>, payload: &[u8]) {
        let mut rec: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(payload);
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        let mut rec = rec;
        loop {
            match self.producer.send(rec) {
                Ok(()) => return,
                Err((e, back)) => {
                    if let rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ) = e
                    {
                        std::thread::sleep(Duration::from_millis(5));
                        rec = back;
                    } else {
                        panic!("produce to {topic}: {e}");
                    }
                }
            }
        }
    }

    /// Waits until every produced message is acknowledged by the broker.
    pub fn flush(&self) {
        self.producer
            .flush(Duration::from_secs(60))
            .expect("flush test producer");
        assert_eq!(
            self.producer.in_flight_count(),
            0,
            "messages still in flight after flush"
        );
    }

    /// A plain consumer in `group` subscribed to `topic`, reading from the earliest offset.
    pub fn consumer(&self, group: &str, topic: &str) -> BaseConsumer {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("create test consumer");
        c.subscribe(&[topic]).expect("subscribe test consumer");
        c
    }

    /// Committed offset of `group` for `topic`/`partition` (None when nothing committed).
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", group)
            .create()
            .expect("create offset-reading consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let got = c
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("read committed offsets");
        got.elements().first().and_then(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some(o),
            _ => None,
        })
    }
}

/// Consumes until `n` messages were read from `c` or `timeout` passes; returns the payloads.
pub fn consume_n(c: &BaseConsumer, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(m.payload().unwrap_or_default().to_vec());
        }
    }
    out
}
