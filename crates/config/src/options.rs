//! The option table: every section and option of the configuration file,
//! with its type and bounds, default, help and rules, declared once. The
//! section structs the rest of the program reads are declared here by the
//! same rows, and loading (`load.rs`), `check-config` (`render.rs`), the
//! secrets to mask, the sample `etc/monasca-persister.conf` and README's
//! table (`docs.rs`) all follow this file. ARCHITECTURE.md says how to add
//! an option.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::fmt;

use super::schema::{
    boolean, host, host_ports, ignored, int, name, options_section, path, port, secret,
    socket_addr, string, Check, Part, SectionSpec,
};
use super::value;
use super::{Config, KafkaClientSection, Secret};

/// The topic sections, in the order of their per-topic defaults.
pub(crate) const TOPIC_SECTIONS: [&str; 3] =
    ["kafka_metrics", "kafka_alarm_history", "kafka_events"];

/// Upper bound for sizes librdkafka takes as a C `int`.
const KAFKA_INT_MAX: u64 = i32::MAX as u64;

/// What the sniffing options of `[elasticsearch]` are warned about with.
const NOT_SNIFFED: &str = " is ignored: nodes are not sniffed; the persister sends to the hosts listed (list every node, or a load balancer)";

options_section! {
    /// `[DEFAULT]`: logging.
    pub struct DefaultSection {
        /// Log at DEBUG instead of INFO.
        debug: bool = boolean().default("false"),
        /// Log to this file (appended to, created if missing; reopened on SIGHUP for
        /// logrotate). Relative to log_dir when that is set. Unset: log to stderr.
        log_file: Option<PathBuf> = path(),
        /// Directory of log_file. The Debian package creates
        /// /var/log/monasca/persister for this, writable by the monasca user.
        log_dir: Option<PathBuf> = path(),
        /// When logging to a file, also log to stderr.
        use_stderr: bool = boolean().default("false"),
    }
    accepted {
        /// Accepted for compatibility and ignored (with a warning): logging is set
        /// only by the four options above.
        log_config_append = ignored().check(Check::WarnWhenSet(
            " is ignored: logging is set by debug, log_file, log_dir and use_stderr",
        )),
    }
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

options_section! {
    /// One Kafka topic's consumer settings (`[kafka_metrics]`,
    /// `[kafka_alarm_history]`, `[kafka_events]`), each `kafka_common` option
    /// defaulting to `[kafka]`, then to the table's default.
    pub struct KafkaTopicSection {
        /// Consume this topic and store its messages.
        enabled: bool = boolean().per_topic(["true", "true", "false"]),
        /// Kafka bootstrap brokers, comma separated host:port.
        uri: Vec<String> = host_ports().default("127.0.0.1:9092"),
        /// Consumer group, shared by all persisters. A new group starts at the
        /// earliest offset (auto.offset.reset = earliest), so nothing in the topic is
        /// skipped.
        group_id: String = name().per_topic(["1_metrics", "1_alarm-state-transitions", "1_events"]),
        /// Topic to consume.
        topic: String = name().per_topic(["metrics", "alarm-state-transitions", "monevents"]),
        /// Messages buffered before they are written to the WAL together (each flush
        /// is one fsync: raise it for many messages per second).
        batch_size: usize = int(1, 1_000_000).per_topic(["20000", "1", "1"]),
        /// Appended to client_id in the client id the consumers report to the
        /// brokers (<client_id>-<consumer_id>-<thread>).
        consumer_id: Option<String> = string().kafka_common(),
        /// Kafka client id reported to the brokers.
        client_id: String = name().default("monasca-persister").kafka_common(),
        /// A batch is written to the local WAL at the latest after this many seconds.
        max_wait_time_seconds: u64 = int(1, 86_400).default("30").kafka_common(),
        /// Kafka fetch size, in bytes.
        fetch_size_bytes: u64 = int(1, KAFKA_INT_MAX).default("4096").kafka_common(),
        /// Kafka fetch buffer size, in bytes. Unset: fetch_size_bytes.
        buffer_size: Option<u64> = int(1, KAFKA_INT_MAX).kafka_common(),
        /// Largest Kafka fetch buffer, in bytes.
        max_buffer_size: u64 = int(1, KAFKA_INT_MAX).default("32768").kafka_common(),
        /// Consumer threads per topic.
        num_processors: usize = int(1, 64).default("1").kafka_common(),
        /// Static group membership (KIP-345): each consumer thread joins its group
        /// as <group_instance_name>-<topic>-<thread>, so a persister that crashed
        /// takes its partitions back at once when it restarts, without waiting for
        /// its session to end. A static member that crashed keeps its partitions,
        /// unread, until it is back or its session times out. Every persister of a
        /// group needs its own name: a second one with the same name stops the
        /// first (classic protocol) or waits for it (consumer protocol), then exits
        /// with status 3. Empty: static membership off.
        group_instance_name: String = string()
            .default(value::HOST_NAME)
            .kafka_common()
            .ours()
            .check(Check::Custom(value::group_instance_name)),
        /// Kafka's consumer group protocol: classic (cooperative-sticky assignment: a
        /// rebalance moves only the partitions that must move) or consumer (KIP-848,
        /// brokers 4.0 and later: the brokers assign the partitions).
        group_protocol: String = name()
            .default("classic")
            .kafka_common()
            .ours()
            .check(Check::Custom(|text| GroupProtocol::of(text).map(|_| None))),
        /// Classic protocol: milliseconds the group waits for a member that stopped
        /// heartbeating before its partitions move (it heartbeats every tenth of that,
        /// at most every 3 s). Unset: librdkafka's 45000. With group_protocol =
        /// consumer the brokers set it (group.consumer.session.timeout.ms) and this
        /// must stay unset.
        session_timeout_ms: Option<u64> = int(1, 3_600_000).kafka_common().ours(),
        /// Accepted for compatibility, ignored (no ZooKeeper is used).
        zookeeper_path: Option<String> = string().unused(),
    }
    accepted {
        /// Accepted for compatibility; true is ignored with a warning (librdkafka is
        /// the only Kafka client).
        legacy_kafka_client_enabled = boolean().default("false").kafka_common().check(
            Check::WarnWhenTrue(" = true is ignored: librdkafka is the only Kafka client"),
        ),
    }
    extra {
        /// Section name, for messages (`kafka_metrics`).
        section: &'static str = "",
    }
}

/// Kafka's consumer group protocol (`group_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// `classic`: members join and sync, one of them computes the
    /// assignment (cooperative-sticky).
    Classic,
    /// `consumer`: KIP-848, the brokers (4.0 and later) assign partitions
    /// and members reconcile through heartbeats.
    Consumer,
}

impl GroupProtocol {
    /// The protocol `group_protocol` names, in any case.
    pub fn of(text: &str) -> Result<GroupProtocol, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "classic" => Ok(GroupProtocol::Classic),
            "consumer" => Ok(GroupProtocol::Consumer),
            _ => Err("not a group protocol (classic or consumer)".to_string()),
        }
    }

    /// The value of `group_protocol` and of librdkafka's `group.protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

impl fmt::Display for GroupProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host name as a static-membership instance name: characters Kafka
/// refuses in a `group.instance.id` become `-`.
pub fn host_instance_name() -> String {
    let uname = rustix::system::uname();
    let name: String = uname
        .nodename()
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "monasca-persister".to_string()
    } else {
        name
    }
}

impl KafkaTopicSection {
    /// The group protocol (`group_protocol`, checked when loaded; the
    /// classic one for any other text).
    pub fn protocol(&self) -> GroupProtocol {
        GroupProtocol::of(&self.group_protocol).unwrap_or(GroupProtocol::Classic)
    }

    /// The instance name of static group membership: `group_instance_name`,
    /// the host name when that is `<host name>` (its default); empty when
    /// static membership is off.
    pub fn instance_name(&self) -> String {
        if self.group_instance_name == value::HOST_NAME {
            host_instance_name()
        } else {
            self.group_instance_name.trim().to_string()
        }
    }

    /// The static group member id of consumer thread `member`
    /// (`<instance name>-<topic>-<member>`); `None` with static
    /// membership off (an empty `group_instance_name`).
    pub fn group_instance_id(&self, member: usize) -> Option<String> {
        let name = self.instance_name();
        (!name.is_empty()).then(|| format!("{name}-{}-{member}", self.topic))
    }

    /// The table's defaults for a topic section (before `[kafka]` and the
    /// section override them); `[kafka_events]`'s for any other name.
    pub fn defaults(section: &'static str) -> Self {
        let topic = TOPIC_SECTIONS
            .iter()
            .position(|s| *s == section)
            .unwrap_or(TOPIC_SECTIONS.len() - 1);
        KafkaTopicSection {
            section,
            ..Self::table_defaults(topic)
        }
    }
}

options_section! {
    /// `[zookeeper]`: accepted for compatibility, unused.
    pub struct ZookeeperSection {
        /// ZooKeeper hosts, comma separated host:port.
        uri: Vec<String> = host_ports().default("127.0.0.1:2181").unused(),
    }
    accepted {
        /// Unused.
        partition_interval_recheck_seconds = ignored().default("15"),
    }
}

options_section! {
    /// `[influxdb]` options: the reference's, then ours.
    pub struct InfluxSection {
        /// Database the points are written to (created when missing).
        database_name: String = name().default("mon"),
        /// One database per tenant, named <database_name>_<tenant id>.
        db_per_tenant: bool = boolean().default("false"),
        /// Retention policy, in hours, of databases this persister creates (named
        /// <hours>h and made the default). 0: InfluxDB's default (keep forever).
        default_retention_hours: u32 = int(0, u32::MAX as u64).default("0"),
        /// Points per HTTP write request.
        batch_size: usize = int(1, 1_000_000).default("10000"),
        /// InfluxDB host name or IP address.
        ip_address: String = host().default("127.0.0.1"),
        /// InfluxDB HTTP port.
        port: u16 = port().default("8086"),
        /// Use https.
        ssl: bool = boolean().default("false"),
        /// With ssl: verify the server certificate.
        verify_ssl: bool = boolean().default("false"),
        /// With verify_ssl: PEM file of the CA that signed the server certificate
        /// (unset: the system's trusted CAs).
        ca_file: Option<PathBuf> = path().ours(),
        /// InfluxDB user.
        user: String = string().default("mon_persister"),
        /// Password of user (never logged or printed).
        password: Secret = secret(),
        /// API token instead of user/password, sent as "Authorization: Token ..."
        /// (InfluxDB 2.x/3.x v1-compatible API; never logged or printed).
        token: Secret = secret().ours(),
        /// Timeout of one HTTP request, in seconds.
        timeout_seconds: u64 = int(1, 3_600).default("30").ours(),
        /// First wait before retrying a failed write, in milliseconds; doubles on
        /// each failure.
        retry_initial_ms: u64 = int(1, 3_600_000).default("100").ours(),
        /// Longest wait between retries, in milliseconds.
        retry_max_ms: u64 = int(1, 86_400_000).default("30000").ours().not_below("retry_initial_ms"),
    }
}

options_section! {
    /// `[repositories]`: the reference's drivers (InfluxDB only) and one of
    /// its options.
    pub struct RepositoriesSection {
        /// Metrics driver (reference value, kept for compatibility).
        metrics_driver: String = string()
            .default("monasca_persister.repositories.influxdb.metrics_repository:MetricInfluxdbRepository")
            .check(Check::Custom(influxdb_driver)),
        /// Alarm state history driver (reference value, kept for compatibility).
        alarm_state_history_driver: String = string()
            .default("monasca_persister.repositories.influxdb.alarm_state_history_repository:AlarmStateHistInfluxdbRepository")
            .check(Check::Custom(influxdb_driver)),
        /// Events driver (reference value, kept for compatibility): events go to
        /// [elasticsearch] whatever it says.
        events_driver: String = string()
            .default("monasca_persister.repositories.elasticsearch.events_repository:ElasticSearchEventsRepository")
            .check(Check::Custom(elasticsearch_driver)),
        /// Points InfluxDB refuses to parse are only counted, not written to the
        /// dead-letter file.
        ignore_parse_point_error: bool = boolean().default("false"),
    }
}

/// A metrics or alarm driver: InfluxDB, or warned about; another store refused.
fn influxdb_driver(text: &str) -> Result<Option<String>, String> {
    let driver = text.to_ascii_lowercase();
    for store in ["cassandra", "elasticsearch"] {
        if driver.contains(store) {
            return Err(format!(
                "{store} is not supported: this persister writes to InfluxDB only \
                 (use monasca_persister.repositories.influxdb.*)"
            ));
        }
    }
    Ok((!driver.contains("influxdb"))
        .then(|| format!(" = {text:?} is not an InfluxDB driver; InfluxDB is used regardless")))
}

/// The events driver: Elasticsearch, or warned about.
fn elasticsearch_driver(text: &str) -> Result<Option<String>, String> {
    Ok((!text.to_ascii_lowercase().contains("elasticsearch")).then(|| {
        format!(" = {text:?} is not an Elasticsearch driver; events go to [elasticsearch] regardless")
    }))
}

options_section! {
    /// `[elasticsearch]` options: the reference's (sniffing accepted, with a
    /// warning when asked for), then ours (TLS, authentication, bulk size,
    /// timeouts and retries, as in `[influxdb]`).
    pub struct ElasticsearchSection {
        /// Prefix of the index names.
        index_name: String = name().default("events"),
        /// Nodes, comma separated host:port; requests go to the first that answers.
        hosts: Vec<String> = host_ports().default("localhost:9200"),
        /// Accepted for compatibility; the persister does not sniff nodes (list every
        /// node, or a load balancer, in hosts). true is warned about.
        sniff_on_start: bool = boolean().default("false").unused().check(Check::WarnWhenTrue(NOT_SNIFFED)),
        /// Accepted for compatibility, like sniff_on_start.
        sniff_on_connection_fail: bool = boolean().default("false").unused().check(Check::WarnWhenTrue(NOT_SNIFFED)),
        /// Accepted for compatibility, like sniff_on_start (seconds).
        sniffer_timeout: Option<u64> = int(0, u32::MAX as u64).unused().check(Check::WarnWhenSet(NOT_SNIFFED)),
        /// Connection failures retried at once on the next host before the backoff
        /// below (a document is never given up: it stays in the WAL until stored).
        max_retries: u32 = int(1, 1_000).default("3"),
        /// Documents per _bulk request.
        batch_size: usize = int(1, 100_000).default("500").ours(),
        /// Use https.
        ssl: bool = boolean().default("false").ours(),
        /// With ssl: verify the server certificate.
        verify_ssl: bool = boolean().default("false").ours(),
        /// With verify_ssl: PEM file of the CA that signed the server certificate
        /// (unset: the bundled public roots).
        ca_file: Option<PathBuf> = path().ours(),
        /// User for HTTP basic authentication (none when empty).
        user: String = string().ours(),
        /// Password of user (never logged or printed).
        password: Secret = secret().ours(),
        /// API key instead of user/password, sent as "Authorization: ApiKey ..."
        /// (the base64 "encoded" value Elasticsearch returns; never logged or printed).
        api_key: Secret = secret().ours(),
        /// Timeout of one HTTP request, in seconds.
        timeout_seconds: u64 = int(1, 3_600).default("30").ours(),
        /// First wait before retrying a failed write, in milliseconds; doubles on
        /// each failure.
        retry_initial_ms: u64 = int(1, 3_600_000).default("100").ours(),
        /// Longest wait between retries, in milliseconds.
        retry_max_ms: u64 = int(1, 86_400_000).default("30000").ours().not_below("retry_initial_ms"),
    }
}

options_section! {
    /// `[wal]` options (ours).
    pub struct WalSection {
        /// Directory of the WAL (the Debian package creates /var/lib/monasca-persister,
        /// owned by the monasca user the service runs as).
        path: PathBuf = path().default("/var/lib/monasca-persister/wal"),
        /// Above this size (MB) consumption pauses until InfluxDB catches up.
        max_size_mb: u64 = int(1, 16 * 1024 * 1024).default("1024"),
        /// Longest a message waits in memory before it is written to the WAL (ms).
        commit_interval_ms: u64 = int(1, 60_000).default("100"),
        /// fsync every WAL write (turning it off risks losing messages on power loss).
        fsync: bool = boolean().default("true"),
        /// Threads writing from the WAL to InfluxDB.
        writer_threads: usize = int(1, 64).default("2"),
        /// On SIGTERM, how long to keep writing the WAL to InfluxDB before exiting
        /// (seconds; what is left stays in the WAL for the next start).
        drain_timeout_seconds: u64 = int(0, 86_400).default("60"),
        /// Messages that cannot be stored, one JSON object per line with the reason.
        dead_letter_path: PathBuf = path().default("/var/lib/monasca-persister/dead-letter.jsonl"),
        /// Rotate the dead-letter file above this size (MB).
        dead_letter_max_size_mb: u64 = int(1, 1024 * 1024).default("100"),
        /// Rotated dead-letter files kept.
        dead_letter_max_files: usize = int(0, 1_000).default("5"),
        /// Accepted for compatibility and ignored: the WAL keeps no cache of its own
        /// (it was the page cache of the sled database earlier versions used).
        cache_size_mb: u64 = int(1, 64 * 1024).default("32").unused(),
    }
}

options_section! {
    /// `[health]` options (ours).
    pub struct HealthSection {
        /// Serve /healthcheck and /metrics (Prometheus) over HTTP.
        enabled: bool = boolean().default("true"),
        /// Address to listen on, IP:port.
        bind: SocketAddr = socket_addr().default("127.0.0.1:8091"),
        /// /healthcheck reports InfluxDB unhealthy after writes failed this long (s).
        influxdb_unhealthy_after_seconds: u64 = int(1, 86_400).default("60"),
        /// Likewise for Elasticsearch (only when events are consumed).
        elasticsearch_unhealthy_after_seconds: u64 = int(1, 86_400).default("60"),
    }
}

/// A topic section of [`SECTIONS`].
const fn topic_section(
    topic: usize,
    help: &'static str,
    values: fn(&Config) -> &dyn super::schema::Section,
    values_mut: fn(&mut Config) -> &mut dyn super::schema::Section,
) -> SectionSpec {
    SectionSpec {
        name: TOPIC_SECTIONS[topic],
        help,
        options: KafkaTopicSection::OPTIONS,
        part: Part::Topic,
        topic,
        ours: false,
        values: Some(values),
        values_mut: Some(values_mut),
    }
}

/// Every section, in the order of the sample (`check-config` leaves out
/// `[kafka]`, folded into the topic sections).
pub(crate) const SECTIONS: &[SectionSpec] = &[
    SectionSpec {
        name: "DEFAULT",
        help: "",
        options: DefaultSection::OPTIONS,
        part: Part::All,
        topic: 0,
        ours: false,
        values: Some(|c| &c.default),
        values_mut: Some(|c| &mut c.default),
    },
    SectionSpec {
        name: "kafka",
        help: "Defaults for [kafka_metrics], [kafka_alarm_history] and [kafka_events]:\n\
               each option here can also be set in those sections, which then wins.",
        options: KafkaTopicSection::OPTIONS,
        part: Part::Kafka,
        topic: 0,
        ours: false,
        values: None,
        values_mut: None,
    },
    topic_section(
        0,
        "Metrics topic. Any [kafka] option may be set here too.",
        |c| &c.kafka_metrics,
        |c| &mut c.kafka_metrics,
    ),
    topic_section(
        1,
        "Alarm state transitions topic. Any [kafka] option may be set here too.",
        |c| &c.kafka_alarm_history,
        |c| &mut c.kafka_alarm_history,
    ),
    topic_section(
        2,
        "Events topic: Monasca events, stored in Elasticsearch or OpenSearch (see\n\
         [elasticsearch]). Any [kafka] option may be set here too.",
        |c| &c.kafka_events,
        |c| &mut c.kafka_events,
    ),
    SectionSpec {
        name: "zookeeper",
        help: "Accepted for compatibility, unused: consumer groups live in Kafka.",
        options: ZookeeperSection::OPTIONS,
        part: Part::All,
        topic: 0,
        ours: false,
        values: Some(|c| &c.zookeeper),
        values_mut: Some(|c| &mut c.zookeeper),
    },
    SectionSpec {
        name: "influxdb",
        help: "",
        options: InfluxSection::OPTIONS,
        part: Part::All,
        topic: 0,
        ours: false,
        values: Some(|c| &c.influxdb),
        values_mut: Some(|c| &mut c.influxdb),
    },
    SectionSpec {
        name: "repositories",
        help: "Metrics and alarm transitions go to InfluxDB, events to Elasticsearch: a\n\
               Cassandra or Elasticsearch metrics or alarm driver is refused at start-up.",
        options: RepositoriesSection::OPTIONS,
        part: Part::All,
        topic: 0,
        ours: false,
        values: Some(|c| &c.repositories),
        values_mut: Some(|c| &mut c.repositories),
    },
    SectionSpec {
        name: "elasticsearch",
        help: "Where events go (with [kafka_events] enabled = true): Elasticsearch 7/8 or\n\
               OpenSearch 1/2, through the _bulk API. Each event becomes the reference's\n\
               document in the index <index_name>-<project id>-<YYYY-MM-DD>.",
        options: ElasticsearchSection::OPTIONS,
        part: Part::All,
        topic: 0,
        ours: false,
        values: Some(|c| &c.elasticsearch),
        values_mut: Some(|c| &mut c.elasticsearch),
    },
    SectionSpec {
        name: "wal",
        help: "The local write-ahead log: what was read from Kafka is kept here until\n\
               InfluxDB has stored it.",
        options: WalSection::OPTIONS,
        part: Part::All,
        topic: 0,
        ours: true,
        values: Some(|c| &c.wal),
        values_mut: Some(|c| &mut c.wal),
    },
    SectionSpec {
        name: "health",
        help: "",
        options: HealthSection::OPTIONS,
        part: Part::All,
        topic: 0,
        ours: true,
        values: Some(|c| &c.health),
        values_mut: Some(|c| &mut c.health),
    },
    SectionSpec {
        name: "kafka_client",
        help: KafkaClientSection::HELP,
        options: &[],
        part: Part::Passthrough,
        topic: 0,
        ours: true,
        values: None,
        values_mut: None,
    },
];

/// The section named `name`.
pub(crate) fn section(name: &str) -> Option<&'static SectionSpec> {
    SECTIONS.iter().find(|s| s.name == name)
}

/// Whether `section` is one of the topic sections.
pub(crate) fn is_topic(section: &str) -> bool {
    TOPIC_SECTIONS.contains(&section)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Kind;

    /// Every default of the table types into its field (else `Config::default`
    /// panics) and `check-config` prints it as the table writes it.
    #[test]
    fn every_default_reads_and_prints_back() {
        let config = Config::default();
        let effective = config.effective();
        let mut checked = 0;
        for section in SECTIONS {
            let Some(printed) = effective.iter().find(|s| s.name == section.name) else {
                continue;
            };
            for option in section.options() {
                if let Some(o) = printed.options.iter().find(|o| o.name == option.name) {
                    assert_eq!(
                        o.value,
                        section.default_text(option),
                        "[{}] {}",
                        section.name,
                        option.name
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 80, "only {checked} options printed");
    }

    /// A value of its kind, other than the default where the kind allows.
    fn example(kind: Kind) -> Option<String> {
        let text = match kind {
            Kind::Bool => "true",
            Kind::Int { min, max } => return Some(max.min(min.max(1) + 1).to_string()),
            Kind::Port => "1",
            Kind::Host => "example.net",
            Kind::HostPorts => "example.net:1",
            Kind::SocketAddr => "127.0.0.2:1",
            Kind::Path => "/x",
            Kind::Str | Kind::Name | Kind::Secret => "x",
            Kind::Ignored => return None,
        };
        Some(text.to_string())
    }

    /// Each row's kind fits its field: a value a user may write is stored
    /// (never an "option table error"), and the field then holds it.
    #[test]
    fn every_kind_fits_its_field() {
        let mut config = Config::default();
        for section in SECTIONS {
            let Some(values_mut) = section.values_mut else {
                continue;
            };
            for option in section.options() {
                let Some(text) = example(option.spec.kind) else {
                    continue;
                };
                let Some(field) = values_mut(&mut config).field_mut(option.name) else {
                    continue;
                };
                let here = format!("[{}] {} = {text}", section.name, option.name);
                let parsed = option
                    .spec
                    .kind
                    .parse(&text, "")
                    .unwrap_or_else(|e| panic!("{here}: {e}"));
                field
                    .assign(parsed, option.spec.kind)
                    .unwrap_or_else(|e| panic!("{here}: {e}"));
                let shown = field.render();
                let expected = if option.spec.kind == Kind::Secret {
                    "****"
                } else {
                    text.as_str()
                };
                assert_eq!(shown, expected, "{here}");
            }
        }
    }
}
