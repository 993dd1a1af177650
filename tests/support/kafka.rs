//! The Kafka of the tests. [`TestKafka`] is what a suite needs of a cluster
//! (topics with N partitions, produce, consume, committed offsets, a broker
//! down and up again), so a suite can run on either implementation:
//! [`Kafka`], librdkafka's mock cluster on loopback (quick checks, request
//! error injection), or [`super::real_kafka::RealKafka`], a real Apache
//! Kafka started by `scripts/kafka` (every delivery promise).

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DefaultProducerContext, Producer, ThreadedProducer,
};

/// The producer every fixture produces with.
pub type TestProducer = ThreadedProducer<DefaultProducerContext>;

/// What the tests need of a Kafka cluster, whichever it is.
pub trait TestKafka {
    /// `host:port` list for `bootstrap.servers` / `[kafka_*] uri`.
    fn bootstrap(&self) -> String;

    /// librdkafka properties a client needs besides `bootstrap.servers`
    /// (TLS and SASL settings); what `[kafka_client]` must carry.
    fn client_properties(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Creates `topic` with `partitions` partitions and waits until it can be used.
    fn create_topic(&self, topic: &str, partitions: i32);

    /// The fixture's producer (acks from every in-sync replica).
    fn producer(&self) -> &TestProducer;

    /// Takes broker `id` (1-based) down: the mock stops answering, a real
    /// broker is killed with SIGKILL.
    fn broker_down(&self, id: i32);

    /// Brings broker `id` back and waits until it answers.
    fn broker_up(&self, id: i32);

    /// A client configuration that reaches the cluster.
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap());
        for (k, v) in self.client_properties() {
            c.set(k, v);
        }
        c
    }

    /// Produces one message (to `partition` when given, else keyed round robin) without waiting.
    fn produce(&self, topic: &str, partition: Option<i32>, payload: &[u8]) {
        send(self.producer(), topic, partition, payload);
    }

    /// Waits until every produced message is acknowledged by the broker.
    fn flush(&self) {
        let producer = self.producer();
        producer
            .flush(Duration::from_secs(60))
            .expect("flush test producer");
        assert_eq!(
            producer.in_flight_count(),
            0,
            "messages still in flight after flush"
        );
    }

    /// A plain consumer in `group` subscribed to `topic`, reading from the earliest offset.
    fn consumer(&self, group: &str, topic: &str) -> BaseConsumer {
        let c: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("create test consumer");
        c.subscribe(&[topic]).expect("subscribe test consumer");
        c
    }

    /// Committed offset of `group` for `topic`/`partition` (None when nothing committed).
    fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.committed_offsets(group, topic, partition + 1)[partition as usize]
    }

    /// Committed offsets of `group` for partitions `0..partitions` of `topic`
    /// (None where nothing is committed), read with one client.
    fn committed_offsets(&self, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let c: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .create()
            .expect("create offset-reading consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        // The group's coordinator may be moving or loading (a broker just
        // started or stopped): asked again until it answers.
        let got = super::wait_for(
            &format!("the committed offsets of {group} on {topic}"),
            Duration::from_secs(120),
            || match c.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
                Ok(got) => Some(got),
                Err(e) => {
                    eprintln!("reading committed offsets of {group} (retrying): {e}");
                    None
                }
            },
        );
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(rdkafka::Offset::Offset(o)) => Some(o),
                _ => None,
            })
            .collect()
    }
}

/// A producer for `config`, buffering generously.
pub fn test_producer(mut config: ClientConfig) -> TestProducer {
    config
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("create test producer")
}

/// Hands one message to `producer`, waiting while its queue is full.
pub fn send(producer: &TestProducer, topic: &str, partition: Option<i32>, payload: &[u8]) {
    let mut rec: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(payload);
    if let Some(p) = partition {
        rec = rec.partition(p);
    }
    loop {
        match producer.send(rec) {
            Ok(()) => return,
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                producer.poll(Duration::from_millis(5));
                rec = back;
            }
            Err((e, _)) => panic!("produce to {topic}: {e}"),
        }
    }
}

/// An in-process mock Kafka cluster reachable over TCP.
pub struct Kafka {
    /// The cluster; use it for fault injection (`broker_down`, `request_errors`, …).
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    producer: TestProducer,
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
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", cluster.bootstrap_servers());
        let kafka = Kafka {
            producer: test_producer(config),
            cluster,
        };
        for (t, p) in topics {
            kafka.create_topic(t, *p);
        }
        kafka
    }
}

impl TestKafka for Kafka {
    fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    fn create_topic(&self, topic: &str, partitions: i32) {
        self.cluster
            .create_topic(topic, partitions, 1)
            .unwrap_or_else(|e| panic!("create mock topic {topic}: {e}"));
    }

    fn producer(&self) -> &TestProducer {
        &self.producer
    }

    fn broker_down(&self, id: i32) {
        self.cluster.broker_down(id).expect("mock broker down");
    }

    fn broker_up(&self, id: i32) {
        self.cluster.broker_up(id).expect("mock broker up");
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
