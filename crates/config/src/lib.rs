//! The monasca-persister configuration (`monasca-config`): the effective
//! settings of every section, read from the oslo.config INI files of the
//! Python persister. Every option (name, type, bounds, default, help) is
//! declared once, in the table of `options.rs` (its building blocks are
//! `schema.rs`); reading oslo-style INI text is `ini_file.rs`, `$`
//! substitution `interpolate.rs`, value typing `value.rs`, assembling and
//! validating `load.rs`, printing `render.rs`, `[kafka_client]`
//! `kafka_client.rs`, and the sample configuration and README table made
//! from the table `docs.rs`. This file is the shape every other module
//! codes against. The daemon (`monasca_persister::config`) and the
//! migration tool (`monasca-migrate`) both read it.

use std::fmt;
use std::path::PathBuf;

#[cfg(test)]
mod docs;
mod ini_file;
mod interpolate;
mod kafka_client;
mod load;
mod options;
mod render;
mod schema;
mod value;

pub use kafka_client::KafkaClientSection;
pub use load::{load, load_str, BadValue, ConfigError, Loaded, Sources};
pub use options::{
    host_instance_name, DefaultSection, ElasticsearchSection, GroupProtocol, HealthSection,
    InfluxSection, KafkaTopicSection, RepositoriesSection, WalSection, ZookeeperSection,
};
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
    /// Every secret value configured: the options of the table that hold a
    /// secret (`[influxdb] password` and `token`, `[elasticsearch]
    /// password` and `api_key`) and the secret-looking `[kafka_client]`
    /// properties (empty ones left out).
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        let mut values = Vec::new();
        for section in options::SECTIONS {
            let Some(get) = section.values else { continue };
            for option in section.options() {
                if let Some(secret) = get(self).field(option.name).and_then(|v| v.as_secret()) {
                    if !secret.is_empty() {
                        values.push(secret.expose());
                    }
                }
            }
        }
        values.into_iter().chain(self.kafka_client.secret_values())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sources: Vec::new(),
            default: DefaultSection::default(),
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
