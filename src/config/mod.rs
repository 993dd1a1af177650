//! Typed configuration: the effective settings of every section, with the
//! reference defaults. Reading oslo-style INI files is `ini_file.rs`, `$`
//! substitution `interpolate.rs`, value typing `value.rs`, assembling and
//! validating `load.rs`, printing `render.rs`; this file is the shape every
//! other module codes against.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

mod ini_file;
mod interpolate;
mod load;
mod render;
mod value;

pub use load::{load, load_str, BadValue, ConfigError, Loaded, Sources};
pub use render::{EffectiveOption, EffectiveSection};

/// A value that must never reach a log, a Debug dump or check-config output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The cleartext, for the one place that must send it (an HTTP header, librdkafka).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no secret was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"****\""
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { "****" })
    }
}

/// The whole effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Files read, in order (later ones override earlier ones).
    pub sources: Vec<PathBuf>,
    /// `[DEFAULT]`: logging.
    pub default: DefaultSection,
    /// `[kafka_metrics]` with `[kafka]` defaults applied.
    pub kafka_metrics: KafkaTopicSection,
    /// `[kafka_alarm_history]` with `[kafka]` defaults applied.
    pub kafka_alarm_history: KafkaTopicSection,
    /// `[kafka_events]` with `[kafka]` defaults applied.
    pub kafka_events: KafkaTopicSection,
    /// `[zookeeper]`: accepted, unused.
    pub zookeeper: ZookeeperSection,
    /// `[influxdb]`.
    pub influxdb: InfluxSection,
    /// `[repositories]`.
    pub repositories: RepositoriesSection,
    /// `[elasticsearch]`: where events go.
    pub elasticsearch: ElasticsearchSection,
    /// `[wal]` (ours).
    pub wal: WalSection,
    /// `[health]` (ours).
    pub health: HealthSection,
    /// `[kafka_client]` (ours): raw librdkafka properties, passed through.
    pub kafka_client: KafkaClientSection,
}

impl Config {
    /// Every secret value configured: `[influxdb] password` and `token`,
    /// `[elasticsearch] password` and `api_key`,
    /// and the secret-looking `[kafka_client]` properties (empty ones left out).
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        [
            &self.influxdb.password,
            &self.influxdb.token,
            &self.elasticsearch.password,
            &self.elasticsearch.api_key,
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(Secret::expose)
        .chain(self.kafka_client.secret_values())
    }
}

/// `[DEFAULT]` options.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultSection {
    /// `debug` (false): log at DEBUG.
    pub debug: bool,
    /// `log_file`: log to this file (joined to `log_dir` when relative).
    pub log_file: Option<PathBuf>,
    /// `log_dir`.
    pub log_dir: Option<PathBuf>,
    /// `use_stderr`: also log to stderr when logging to a file.
    pub use_stderr: bool,
}

impl DefaultSection {
    /// The log file to write, `log_dir/log_file` when both are set.
    pub fn log_path(&self) -> Option<PathBuf> {
        let file = self.log_file.as_ref()?;
        Some(match &self.log_dir {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.clone(),
        })
    }
}

/// One Kafka topic's consumer settings (`[kafka_metrics]`, `[kafka_alarm_history]`,
/// `[kafka_events]`), each option defaulting to `[kafka]`, then to the reference default.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaTopicSection {
    /// Section name, for messages (`kafka_metrics`).
    pub section: &'static str,
    /// `enabled`.
    pub enabled: bool,
    /// `uri`: bootstrap brokers, `host:port` each.
    pub uri: Vec<String>,
    /// `group_id`: the consumer group shared by all persisters.
    pub group_id: String,
    /// `topic`.
    pub topic: String,
    /// `batch_size`: lines buffered before a flush point.
    pub batch_size: usize,
    /// `consumer_id`: librdkafka `group.instance.id` prefix when set.
    pub consumer_id: Option<String>,
    /// `client_id` (monasca-persister).
    pub client_id: String,
    /// `max_wait_time_seconds` (30): a flush point never comes later than this.
    pub max_wait_time_seconds: u64,
    /// `fetch_size_bytes` (4096): librdkafka `fetch.min.bytes`... see consumer.rs for the mapping.
    pub fetch_size_bytes: u64,
    /// `buffer_size`: optional.
    pub buffer_size: Option<u64>,
    /// `max_buffer_size` (32768).
    pub max_buffer_size: u64,
    /// `num_processors` (1): consumer threads for this topic.
    pub num_processors: usize,
    /// `zookeeper_path`: accepted, ignored.
    pub zookeeper_path: Option<String>,
}

/// `[zookeeper]`: accepted for compatibility, unused.
#[derive(Debug, Clone, PartialEq)]
pub struct ZookeeperSection {
    /// `uri` (127.0.0.1:2181).
    pub uri: Vec<String>,
}

impl Default for ZookeeperSection {
    fn default() -> Self {
        ZookeeperSection {
            uri: vec!["127.0.0.1:2181".to_string()],
        }
    }
}

/// `[influxdb]` options.
#[derive(Debug, Clone, PartialEq)]
pub struct InfluxSection {
    /// `database_name` (mon).
    pub database_name: String,
    /// `db_per_tenant` (false): database is `<database_name>_<tenant>`.
    pub db_per_tenant: bool,
    /// `default_retention_hours` (0): retention policy `<h>h` on databases we create.
    pub default_retention_hours: u32,
    /// `batch_size` (10000): points per HTTP write.
    pub batch_size: usize,
    /// `ip_address` (127.0.0.1).
    pub ip_address: String,
    /// `port` (8086).
    pub port: u16,
    /// `ssl` (false): https.
    pub ssl: bool,
    /// `verify_ssl` (false): verify the server certificate.
    pub verify_ssl: bool,
    /// `ca_file` (ours): PEM bundle of a private CA.
    pub ca_file: Option<PathBuf>,
    /// `user` (mon_persister).
    pub user: String,
    /// `password`.
    pub password: Secret,
    /// `token` (ours): `Authorization: Token …` for InfluxDB 2.x/3.x v1 APIs.
    pub token: Secret,
    /// `timeout_seconds` (ours, 30): per HTTP request.
    pub timeout_seconds: u64,
    /// `retry_initial_ms` (ours, 100): first backoff.
    pub retry_initial_ms: u64,
    /// `retry_max_ms` (ours, 30000): backoff cap.
    pub retry_max_ms: u64,
}

/// `[elasticsearch]` options: the reference's, then ours (TLS,
/// authentication, bulk size, timeouts and retries, as in `[influxdb]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ElasticsearchSection {
    /// `index_name` (events): indices are `<index_name>-<project id>-<date>`.
    pub index_name: String,
    /// `hosts` (localhost:9200): `host:port` of each node, tried in turn.
    pub hosts: Vec<String>,
    /// `sniff_on_start` (false): accepted; nodes are not sniffed.
    pub sniff_on_start: bool,
    /// `sniff_on_connection_fail` (false): accepted; nodes are not sniffed.
    pub sniff_on_connection_fail: bool,
    /// `sniffer_timeout` (unset): accepted; nodes are not sniffed.
    pub sniffer_timeout: Option<u64>,
    /// `max_retries` (3): connection failures retried at once on the next
    /// host before backing off.
    pub max_retries: u32,
    /// `batch_size` (ours, 500): documents per `_bulk` request.
    pub batch_size: usize,
    /// `ssl` (ours, false): https.
    pub ssl: bool,
    /// `verify_ssl` (ours, false): verify the server certificate.
    pub verify_ssl: bool,
    /// `ca_file` (ours): PEM bundle of a private CA.
    pub ca_file: Option<PathBuf>,
    /// `user` (ours, empty): HTTP basic authentication with `password`.
    pub user: String,
    /// `password` (ours).
    pub password: Secret,
    /// `api_key` (ours): sent as `Authorization: ApiKey …` instead.
    pub api_key: Secret,
    /// `timeout_seconds` (ours, 30): per HTTP request.
    pub timeout_seconds: u64,
    /// `retry_initial_ms` (ours, 100): first backoff.
    pub retry_initial_ms: u64,
    /// `retry_max_ms` (ours, 30000): backoff cap.
    pub retry_max_ms: u64,
}

impl Default for ElasticsearchSection {
    fn default() -> Self {
        ElasticsearchSection {
            index_name: "events".to_string(),
            hosts: vec!["localhost:9200".to_string()],
            sniff_on_start: false,
            sniff_on_connection_fail: false,
            sniffer_timeout: None,
            max_retries: 3,
            batch_size: 500,
            ssl: false,
            verify_ssl: false,
            ca_file: None,
            user: String::new(),
            password: Secret::default(),
            api_key: Secret::default(),
            timeout_seconds: 30,
            retry_initial_ms: 100,
            retry_max_ms: 30_000,
        }
    }
}

/// `[repositories]` options.
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoriesSection {
    /// `metrics_driver`.
    pub metrics_driver: String,
    /// `alarm_state_history_driver`.
    pub alarm_state_history_driver: String,
    /// `events_driver`.
    pub events_driver: String,
    /// `ignore_parse_point_error` (false): count rejected lines, do not dead-letter them.
    pub ignore_parse_point_error: bool,
}

/// `[wal]` options (ours).
#[derive(Debug, Clone, PartialEq)]
pub struct WalSection {
    /// `path` (/var/lib/monasca-persister/wal).
    pub path: PathBuf,
    /// `max_size_mb` (1024): back-pressure limit.
    pub max_size_mb: u64,
    /// `commit_interval_ms` (100): longest a line waits in a consumer buffer.
    pub commit_interval_ms: u64,
    /// `fsync` (true).
    pub fsync: bool,
    /// `writer_threads` (2).
    pub writer_threads: usize,
    /// `drain_timeout_seconds` (60): how long SIGTERM waits for InfluxDB.
    pub drain_timeout_seconds: u64,
    /// `dead_letter_path` (/var/lib/monasca-persister/dead-letter.jsonl).
    pub dead_letter_path: PathBuf,
    /// `dead_letter_max_size_mb` (100): rotate above this.
    pub dead_letter_max_size_mb: u64,
    /// `dead_letter_max_files` (5): rotated files kept.
    pub dead_letter_max_files: usize,
    /// `cache_size_mb` (32): accepted for compatibility, unused (the WAL
    /// keeps no cache of its own).
    pub cache_size_mb: u64,
}

/// `[health]` options (ours).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSection {
    /// `enabled` (true).
    pub enabled: bool,
    /// `bind` (127.0.0.1:8091).
    pub bind: SocketAddr,
    /// `influxdb_unhealthy_after_seconds` (60).
    pub influxdb_unhealthy_after_seconds: u64,
    /// `elasticsearch_unhealthy_after_seconds` (60).
    pub elasticsearch_unhealthy_after_seconds: u64,
}

/// `[kafka_client]`: librdkafka properties passed through verbatim.
#[derive(Clone, PartialEq, Default)]
pub struct KafkaClientSection {
    /// Property name → value, in name order.
    pub properties: BTreeMap<String, Secret>,
}

/// librdkafka properties the persister sets itself because the delivery
/// invariant depends on them (offsets are committed only after the WAL
/// fsync, by the persister, for the group it names), with why; refused in
/// `[kafka_client]`.
const MANAGED_PROPERTIES: [(&str, &str); 7] = [
    (
        "enable.auto.commit",
        "librdkafka would commit offsets in the background, before the messages are in the WAL; the persister commits them itself after the WAL fsync",
    ),
    (
        "auto.commit.enable",
        "(legacy alias of enable.auto.commit) librdkafka would commit offsets in the background, before the messages are in the WAL; the persister commits them itself after the WAL fsync",
    ),
    (
        "enable.auto.offset.store",
        "librdkafka would store offsets of messages not yet in the WAL for a commit; the persister stores and commits them itself after the WAL fsync",
    ),
    (
        "offset.store.method",
        "offsets would be kept elsewhere than in the consumer group; the persister commits them to the group after the WAL fsync",
    ),
    (
        "offset.store.path",
        "file-based offset storage is not used: the persister commits offsets to the consumer group after the WAL fsync",
    ),
    (
        "group.id",
        "the consumer group is set per topic by group_id in [kafka_metrics] and [kafka_alarm_history] (default from [kafka])",
    ),
    (
        "group.instance.id",
        "the consumer's identity in its group is the persister's to manage; remove it here",
    ),
];

impl KafkaClientSection {
    /// True for property names whose values are secrets (masked in output
    /// and in every error message): names with password, secret, key,
    /// token, credential or username in them, and the inline JAAS and
    /// OAUTHBEARER configurations (librdkafka's own sensitive properties
    /// all match).
    pub fn is_secret(name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        [
            "password",
            "secret",
            "key",
            "token",
            "credential",
            "username",
            "jaas",
            "oauthbearer.config",
            ".pem",
        ]
        .iter()
        .any(|word| n.contains(word))
    }

    /// Why a property cannot be set in `[kafka_client]`, for those the
    /// persister manages (see [`MANAGED_PROPERTIES`]); `None` for the rest.
    pub fn refusal(name: &str) -> Option<&'static str> {
        MANAGED_PROPERTIES
            .iter()
            .find(|(managed, _)| *managed == name)
            .map(|(_, why)| *why)
    }

    /// The values of the secret properties, for masking.
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.properties
            .iter()
            .filter(|(name, value)| Self::is_secret(name) && !value.is_empty())
            .map(|(_, value)| value.expose())
    }
}

impl fmt::Debug for KafkaClientSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.properties {
            if Self::is_secret(k) {
                m.entry(k, v);
            } else {
                m.entry(k, &v.expose());
            }
        }
        m.finish()
    }
}

impl KafkaTopicSection {
    /// Reference defaults for a topic section (before `[kafka]` and the section override them).
    pub fn defaults(section: &'static str) -> Self {
        let (enabled, group_id, topic, batch_size) = match section {
            "kafka_metrics" => (true, "1_metrics", "metrics", 20000),
            "kafka_alarm_history" => (
                true,
                "1_alarm-state-transitions",
                "alarm-state-transitions",
                1,
            ),
            _ => (false, "1_events", "monevents", 1),
        };
        KafkaTopicSection {
            section,
            enabled,
            uri: vec!["127.0.0.1:9092".to_string()],
            group_id: group_id.to_string(),
            topic: topic.to_string(),
            batch_size,
            consumer_id: None,
            client_id: "monasca-persister".to_string(),
            max_wait_time_seconds: 30,
            fetch_size_bytes: 4096,
            buffer_size: None,
            max_buffer_size: 32768,
            num_processors: 1,
            zookeeper_path: None,
        }
    }
}

impl Default for InfluxSection {
    fn default() -> Self {
        InfluxSection {
            database_name: "mon".to_string(),
            db_per_tenant: false,
            default_retention_hours: 0,
            batch_size: 10000,
            ip_address: "127.0.0.1".to_string(),
            port: 8086,
            ssl: false,
            verify_ssl: false,
            ca_file: None,
            user: "mon_persister".to_string(),
            password: Secret::default(),
            token: Secret::default(),
            timeout_seconds: 30,
            retry_initial_ms: 100,
            retry_max_ms: 30_000,
        }
    }
}

impl Default for RepositoriesSection {
    fn default() -> Self {
        RepositoriesSection {
            metrics_driver: "monasca_persister.repositories.influxdb.metrics_repository:MetricInfluxdbRepository".to_string(),
            alarm_state_history_driver:
                "monasca_persister.repositories.influxdb.alarm_state_history_repository:AlarmStateHistInfluxdbRepository"
                    .to_string(),
            events_driver: "monasca_persister.repositories.elasticsearch.events_repository:ElasticSearchEventsRepository"
                .to_string(),
            ignore_parse_point_error: false,
        }
    }
}

impl Default for WalSection {
    fn default() -> Self {
        WalSection {
            path: PathBuf::from("/var/lib/monasca-persister/wal"),
            max_size_mb: 1024,
            commit_interval_ms: 100,
            fsync: true,
            writer_threads: 2,
            drain_timeout_seconds: 60,
            dead_letter_path: PathBuf::from("/var/lib/monasca-persister/dead-letter.jsonl"),
            dead_letter_max_size_mb: 100,
            dead_letter_max_files: 5,
            cache_size_mb: 32,
        }
    }
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 8091)),
            influxdb_unhealthy_after_seconds: 60,
            elasticsearch_unhealthy_after_seconds: 60,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sources: Vec::new(),
            default: DefaultSection {
                debug: false,
                log_file: None,
                log_dir: None,
                use_stderr: false,
            },
            kafka_metrics: KafkaTopicSection::defaults("kafka_metrics"),
            kafka_alarm_history: KafkaTopicSection::defaults("kafka_alarm_history"),
            kafka_events: KafkaTopicSection::defaults("kafka_events"),
            zookeeper: ZookeeperSection::default(),
            influxdb: InfluxSection::default(),
            repositories: RepositoriesSection::default(),
            elasticsearch: ElasticsearchSection::default(),
            wal: WalSection::default(),
            health: HealthSection::default(),
            kafka_client: KafkaClientSection::default(),
        }
    }
}
