//! A real Apache Kafka for tests, started by the project's `scripts/kafka`
//! (KRaft, combined controller+broker nodes on free ports, its own directory
//! per cluster). [`RealKafka::shared`] is one single-broker cluster per test
//! process, for tests that use their own topics and groups
//! ([`unique_name`]); [`RealKafka::start_with`] starts a private cluster for
//! a test that takes brokers down, needs three of them, SASL or another
//! Kafka version.
//!
//! A broker that cannot start fails the test with the script's message. The
//! cluster's directory (every node's `server.log`) is removed when the
//! fixture stops after a passing test and kept, with its path printed, after
//! a failing one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;

use super::kafka::{test_producer, TestKafka, TestProducer};

/// How long a fixture waits for the cluster to do something (create a topic,
/// elect a leader, start a broker); generous, for a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// Which cluster to start.
#[derive(Clone, Debug, Default)]
pub struct KafkaOptions {
    /// Nodes, each a controller and a broker (0 means 1).
    pub brokers: i32,
    /// Kafka release, e.g. "3.9.1"; `None` takes `MONASCA_TEST_KAFKA_VERSION`
    /// when set, else the default of `scripts/kafka`.
    pub version: Option<String>,
    /// A SASL_SSL (SCRAM-SHA-512) client listener; the fixture's clients use it.
    pub sasl: bool,
}

/// A running Apache Kafka cluster started by `scripts/kafka`.
pub struct RealKafka {
    dir: PathBuf,
    bootstrap: String,
    properties: Vec<(String, String)>,
    brokers: i32,
    producer: Option<TestProducer>,
    admin: Option<AdminClient<DefaultClientContext>>,
    /// A test using the cluster failed: keep its logs.
    failed: AtomicBool,
}

/// `scripts/kafka` of this repository.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka")
}

/// A topic or group name no other test of this process uses.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl RealKafka {
    /// Starts a cluster of `brokers` nodes with the given `(topic, partitions)`
    /// (replicated on up to three brokers), like the mock's `Kafka::start`.
    pub fn start(brokers: i32, topics: &[(&str, i32)]) -> RealKafka {
        let kafka = Self::start_with(KafkaOptions {
            brokers,
            ..KafkaOptions::default()
        });
        for (t, p) in topics {
            kafka.create_topic(t, *p);
        }
        kafka
    }

    /// Starts a cluster as `opts` says and waits until it answers.
    pub fn start_with(opts: KafkaOptions) -> RealKafka {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let brokers = opts.brokers.max(1);
        let dir = std::env::temp_dir().join(format!(
            "kafka-test-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        ));
        let mut cmd = Command::new(script());
        cmd.arg("start")
            .arg("--brokers")
            .arg(brokers.to_string())
            .arg("--dir")
            .arg(&dir)
            // Stopped by the script's watchdog if this process dies unwinding nothing.
            .arg("--owner")
            .arg(std::process::id().to_string());
        let version = opts
            .version
            .clone()
            .or_else(|| std::env::var("MONASCA_TEST_KAFKA_VERSION").ok());
        if let Some(v) = &version {
            cmd.arg("--version").arg(v);
        }
        if opts.sasl {
            cmd.arg("--sasl");
        }
        let out = cmd.output().unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (a clone of the repository has it)",
                script().display()
            )
        });
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            panic!(
                "scripts/kafka start failed ({}): a real Apache Kafka is needed (a JDK 17+ and Maven \
                 with Maven Central, which scripts/test installs); its output:\n{stderr}{stdout}\n\
                 logs kept in {}",
                out.status,
                dir.display()
            );
        }
        let mut lines = stdout.lines();
        let bootstrap = lines
            .next()
            .and_then(|l| l.strip_prefix("bootstrap="))
            .unwrap_or_else(|| panic!("scripts/kafka printed no bootstrap= line first:\n{stdout}"))
            .to_string();
        let properties = lines
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut kafka = RealKafka {
            dir,
            bootstrap,
            properties,
            brokers,
            producer: None,
            admin: None,
            failed: AtomicBool::new(false),
        };
        let mut producer = kafka.client_config();
        producer.set("acks", "all");
        kafka.producer = Some(test_producer(producer));
        kafka.admin = Some(
            kafka
                .client_config()
                .create()
                .expect("create the fixture's admin client"),
        );
        kafka
    }

    /// The single-broker cluster shared by the tests of this process, started
    /// at the first call and stopped when the process exits. A panic in the
    /// process (a failing test) keeps its logs and prints where they are.
    /// Tests sharing it use their own topics and groups ([`unique_name`])
    /// and never take its broker down.
    pub fn shared() -> &'static RealKafka {
        static SHARED: OnceLock<RealKafka> = OnceLock::new();
        static START: Mutex<()> = Mutex::new(());
        let _one_at_a_time = START.lock().unwrap_or_else(|e| e.into_inner());
        SHARED.get_or_init(|| {
            let kafka = RealKafka::start_with(KafkaOptions::default());
            extern "C" fn stop_shared_at_exit() {
                if let Some(k) = SHARED.get() {
                    k.stop();
                }
            }
            // SAFETY: registers a plain function to run at process exit.
            unsafe { libc::atexit(stop_shared_at_exit) };
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if let Some(k) = SHARED.get() {
                    k.keep_logs();
                    eprintln!("{}", k.logs());
                }
                previous(info);
            }));
            kafka
        })
    }

    /// The cluster's directory: `node-I/server.log` is node I's log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of nodes.
    pub fn brokers(&self) -> i32 {
        self.brokers
    }

    /// A note for assertion messages: where the brokers' logs are.
    pub fn logs(&self) -> String {
        format!("Kafka logs: {}/node-*/server.log", self.dir.display())
    }

    fn admin(&self) -> &AdminClient<DefaultClientContext> {
        self.admin.as_ref().expect("admin client")
    }

    /// Creates `topic` with `partitions` partitions, `replication` replicas
    /// and topic-level `config`, and waits until every partition has a leader.
    pub fn create_topic_with(
        &self,
        topic: &str,
        partitions: i32,
        replication: i32,
        config: &[(&str, &str)],
    ) {
        let mut new = NewTopic::new(
            topic,
            partitions,
            rdkafka::admin::TopicReplication::Fixed(replication),
        );
        for (k, v) in config {
            new = new.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(PATIENCE));
        let results = futures_executor::block_on(self.admin().create_topics([&new], &opts))
            .unwrap_or_else(|e| panic!("create topic {topic}: {e}; {}", self.logs()));
        for r in results {
            if let Err((name, code)) = r {
                panic!("create topic {name}: {code}; {}", self.logs());
            }
        }
        super::wait_for(
            &format!("topic {topic} with a leader for each of its {partitions} partitions"),
            PATIENCE,
            || {
                let leaders = self.leaders(topic);
                (leaders.len() == partitions as usize && leaders.iter().all(|&l| l >= 0))
                    .then_some(())
            },
        );
    }

    /// Sets topic-level configuration of `topic` (e.g. `retention.ms`).
    pub fn alter_topic(&self, topic: &str, config: &[(&str, &str)]) {
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
        for (k, v) in config {
            alter = alter.set(k, v);
        }
        let results =
            futures_executor::block_on(self.admin().alter_configs([&alter], &AdminOptions::new()))
                .unwrap_or_else(|e| panic!("alter topic {topic}: {e}; {}", self.logs()));
        for r in results {
            if let Err((_, code)) = r {
                panic!("alter topic {topic}: {code}; {}", self.logs());
            }
        }
    }

    /// The value of topic-level setting `key` of `topic` as the brokers report it.
    pub fn topic_config(&self, topic: &str, key: &str) -> Option<String> {
        let results = futures_executor::block_on(
            self.admin()
                .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()),
        )
        .unwrap_or_else(|e| panic!("describe topic {topic}: {e}; {}", self.logs()));
        results
            .into_iter()
            .filter_map(Result::ok)
            .find_map(|r| r.get(key).and_then(|e| e.value.clone()))
    }

    /// The leader of every partition of `topic` (-1 where none), by partition;
    /// empty while the topic is unknown.
    pub fn leaders(&self, topic: &str) -> Vec<i32> {
        let Ok(md) = self
            .producer()
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
        else {
            return Vec::new();
        };
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            return Vec::new();
        };
        if t.error().is_some() {
            return Vec::new();
        }
        let mut leaders = vec![-1; t.partitions().len()];
        for p in t.partitions() {
            if let Some(slot) = leaders.get_mut(p.id() as usize) {
                *slot = if p.error().is_some() { -1 } else { p.leader() };
            }
        }
        leaders
    }

    /// The earliest and the next offset of `topic`/`partition`.
    pub fn watermarks(&self, topic: &str, partition: i32) -> (i64, i64) {
        self.producer()
            .client()
            .fetch_watermarks(topic, partition, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("watermarks of {topic}/{partition}: {e}; {}", self.logs()))
    }

    /// Stops broker `id` with SIGTERM (a controlled shutdown) and waits for its exit.
    pub fn stop_broker(&self, id: i32) {
        self.node("stop-node", id);
    }

    /// Kills broker `id` with SIGKILL.
    pub fn kill_broker(&self, id: i32) {
        self.node("kill-node", id);
    }

    /// Starts broker `id` again on its data and ports and waits until it answers.
    pub fn restart_broker(&self, id: i32) {
        self.node("start-node", id);
    }

    fn node(&self, what: &str, id: i32) {
        let out = Command::new(script())
            .args([what, &id.to_string(), "--dir"])
            .arg(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("run scripts/kafka {what}: {e}"));
        assert!(
            out.status.success(),
            "scripts/kafka {what} {id} failed: {}{}; {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.logs()
        );
    }

    /// Marks the cluster's logs to be kept.
    pub fn keep_logs(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Stops every node; removes the directory unless a test failed.
    fn stop(&self) {
        if self.failed.load(Ordering::Relaxed) {
            for id in 1..=self.brokers {
                let _ = Command::new(script())
                    .args(["kill-node", &id.to_string(), "--dir"])
                    .arg(&self.dir)
                    .output();
            }
            eprintln!("a test failed: Kafka logs kept in {}", self.dir.display());
        } else {
            let _ = Command::new(script())
                .arg("stop")
                .arg("--dir")
                .arg(&self.dir)
                .output();
        }
    }
}

impl TestKafka for RealKafka {
    fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    fn client_properties(&self) -> Vec<(String, String)> {
        self.properties.clone()
    }

    fn create_topic(&self, topic: &str, partitions: i32) {
        self.create_topic_with(topic, partitions, self.brokers.min(3), &[]);
    }

    fn producer(&self) -> &TestProducer {
        self.producer.as_ref().expect("fixture producer")
    }

    fn broker_down(&self, id: i32) {
        self.kill_broker(id);
    }

    fn broker_up(&self, id: i32) {
        self.restart_broker(id);
    }
}

impl Drop for RealKafka {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.keep_logs();
        }
        // The clients first: they would keep reconnecting to stopped brokers.
        drop(self.admin.take());
        if let Some(p) = self.producer.take() {
            p.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
            drop(p);
        }
        self.stop();
    }
}

/// A consumer of `kafka` reading `topic`'s partitions from their beginning,
/// outside any group.
pub fn reader(kafka: &impl TestKafka, topic: &str, partitions: i32) -> BaseConsumer {
    let c: BaseConsumer = kafka
        .client_config()
        .set("group.id", unique_name("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("create a reader");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("add a partition to read");
    }
    c.assign(&tpl).expect("assign the reader's partitions");
    c
}

/// A test's share of the shared broker: a metrics topic of its own with
/// `partitions` partitions and a consumer group of its own.
pub struct Stream {
    /// The shared broker.
    pub kafka: &'static RealKafka,
    /// The topic.
    pub topic: String,
    /// The consumer group.
    pub group: String,
    /// Partitions of the topic.
    pub partitions: i32,
}

impl Stream {
    /// A fresh topic and group on [`RealKafka::shared`].
    pub fn new(partitions: i32) -> Stream {
        let kafka = RealKafka::shared();
        let topic = unique_name("test-metrics");
        kafka.create_topic(&topic, partitions);
        Stream {
            kafka,
            topic,
            group: unique_name("test-group"),
            partitions,
        }
    }

    /// Produces message `i` to partition `i % partitions`.
    pub fn produce(&self, i: i64, payload: &[u8]) {
        let partition = (i % i64::from(self.partitions)) as i32;
        self.kafka.produce(&self.topic, Some(partition), payload);
    }

    /// Messages the group committed, over all partitions.
    pub fn committed_total(&self) -> i64 {
        self.kafka
            .committed_offsets(&self.group, &self.topic, self.partitions)
            .into_iter()
            .map(|o| o.unwrap_or(0))
            .sum()
    }
}
