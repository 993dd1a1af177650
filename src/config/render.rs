//! The effective configuration as `[section]` / `option = value` text, secrets
//! masked: what `check-config` prints and the DEBUG start-up log shows. The
//! same listing tells the loader which options exist and their defaults.

use std::fmt;
use std::path::Path;

use super::{Config, KafkaClientSection, KafkaTopicSection};

/// One section of the effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveSection {
    /// Section name (`DEFAULT`, `influxdb`, ...).
    pub name: &'static str,
    /// Its options, in a stable order.
    pub options: Vec<EffectiveOption>,
}

/// One option with its value as text, secrets shown as `****`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveOption {
    /// Option name.
    pub name: String,
    /// Value as it would be written in the file (empty when unset).
    pub value: String,
}

struct Builder {
    options: Vec<EffectiveOption>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            options: Vec::new(),
        }
    }
    fn opt(mut self, name: &str, value: impl ToString) -> Self {
        self.options.push(EffectiveOption {
            name: name.to_string(),
            value: value.to_string(),
        });
        self
    }
    fn path(self, name: &str, value: &Path) -> Self {
        self.opt(name, value.display())
    }
    fn maybe<T: ToString>(self, name: &str, value: Option<T>) -> Self {
        let text = value.map(|v| v.to_string()).unwrap_or_default();
        self.opt(name, text)
    }
    fn section(self, name: &'static str) -> EffectiveSection {
        EffectiveSection {
            name,
            options: self.options,
        }
    }
}

fn topic(t: &KafkaTopicSection) -> EffectiveSection {
    Builder::new()
        .opt("enabled", t.enabled)
        .opt("uri", t.uri.join(","))
        .opt("group_id", &t.group_id)
        .opt("topic", &t.topic)
        .opt("batch_size", t.batch_size)
        .maybe("consumer_id", t.consumer_id.as_ref())
        .opt("client_id", &t.client_id)
        .opt("max_wait_time_seconds", t.max_wait_time_seconds)
        .opt("fetch_size_bytes", t.fetch_size_bytes)
        .maybe("buffer_size", t.buffer_size)
        .opt("max_buffer_size", t.max_buffer_size)
        .opt("num_processors", t.num_processors)
        .maybe("zookeeper_path", t.zookeeper_path.as_ref())
        .section(t.section)
}

fn kafka_client(k: &KafkaClientSection) -> EffectiveSection {
    let mut b = Builder::new();
    for (name, value) in &k.properties {
        b = if KafkaClientSection::is_secret(name) {
            b.opt(name, value)
        } else {
            b.opt(name, value.expose())
        };
    }
    b.section("kafka_client")
}

impl Config {
    /// Every section and option with its effective value, secrets masked.
    /// Topic sections show the values after `[kafka]` inheritance.
    pub fn effective(&self) -> Vec<EffectiveSection> {
        let d = &self.default;
        let i = &self.influxdb;
        let r = &self.repositories;
        let e = &self.elasticsearch;
        let w = &self.wal;
        let h = &self.health;
        vec![
            Builder::new()
                .opt("debug", d.debug)
                .maybe("log_file", d.log_file.as_ref().map(|p| p.display()))
                .maybe("log_dir", d.log_dir.as_ref().map(|p| p.display()))
                .opt("use_stderr", d.use_stderr)
                .section("DEFAULT"),
            topic(&self.kafka_metrics),
            topic(&self.kafka_alarm_history),
            topic(&self.kafka_events),
            Builder::new()
                .opt("uri", self.zookeeper.uri.join(","))
                .section("zookeeper"),
            Builder::new()
                .opt("database_name", &i.database_name)
                .opt("db_per_tenant", i.db_per_tenant)
                .opt("default_retention_hours", i.default_retention_hours)
                .opt("batch_size", i.batch_size)
                .opt("ip_address", &i.ip_address)
                .opt("port", i.port)
                .opt("ssl", i.ssl)
                .opt("verify_ssl", i.verify_ssl)
                .maybe("ca_file", i.ca_file.as_ref().map(|p| p.display()))
                .opt("user", &i.user)
                .opt("password", &i.password)
                .opt("token", &i.token)
                .opt("timeout_seconds", i.timeout_seconds)
                .opt("retry_initial_ms", i.retry_initial_ms)
                .opt("retry_max_ms", i.retry_max_ms)
                .section("influxdb"),
            Builder::new()
                .opt("metrics_driver", &r.metrics_driver)
                .opt("alarm_state_history_driver", &r.alarm_state_history_driver)
                .opt("events_driver", &r.events_driver)
                .opt("ignore_parse_point_error", r.ignore_parse_point_error)
                .section("repositories"),
            Builder::new()
                .opt("index_name", &e.index_name)
                .opt("hosts", e.hosts.join(","))
                .opt("sniff_on_start", e.sniff_on_start)
                .opt("sniff_on_connection_fail", e.sniff_on_connection_fail)
                .maybe("sniffer_timeout", e.sniffer_timeout)
                .opt("max_retries", e.max_retries)
                .opt("batch_size", e.batch_size)
                .opt("ssl", e.ssl)
                .opt("verify_ssl", e.verify_ssl)
                .maybe("ca_file", e.ca_file.as_ref().map(|p| p.display()))
                .opt("user", &e.user)
                .opt("password", &e.password)
                .opt("api_key", &e.api_key)
                .opt("timeout_seconds", e.timeout_seconds)
                .opt("retry_initial_ms", e.retry_initial_ms)
                .opt("retry_max_ms", e.retry_max_ms)
                .section("elasticsearch"),
            Builder::new()
                .path("path", &w.path)
                .opt("max_size_mb", w.max_size_mb)
                .opt("commit_interval_ms", w.commit_interval_ms)
                .opt("fsync", w.fsync)
                .opt("writer_threads", w.writer_threads)
                .opt("drain_timeout_seconds", w.drain_timeout_seconds)
                .path("dead_letter_path", &w.dead_letter_path)
                .opt("dead_letter_max_size_mb", w.dead_letter_max_size_mb)
                .opt("dead_letter_max_files", w.dead_letter_max_files)
                .opt("cache_size_mb", w.cache_size_mb)
                .section("wal"),
            Builder::new()
                .opt("enabled", h.enabled)
                .opt("bind", h.bind)
                .opt(
                    "influxdb_unhealthy_after_seconds",
                    h.influxdb_unhealthy_after_seconds,
                )
                .opt(
                    "elasticsearch_unhealthy_after_seconds",
                    h.elasticsearch_unhealthy_after_seconds,
                )
                .section("health"),
            kafka_client(&self.kafka_client),
        ]
    }
}

/// Prints the effective configuration as an INI file that would load back to
/// the same values (secrets masked), headed by the files it came from.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "# Effective configuration. Sources, in the order read (later ones win):"
        )?;
        if self.sources.is_empty() {
            writeln!(f, "#   (none: built-in defaults only)")?;
        }
        for source in &self.sources {
            writeln!(f, "#   {}", source.display())?;
        }
        writeln!(f, "# [kafka] is folded into the three kafka_* sections.")?;
        for section in self.effective() {
            writeln!(f)?;
            writeln!(f, "[{}]", section.name)?;
            for o in &section.options {
                if o.value.is_empty() {
                    writeln!(f, "{} =", o.name)?;
                } else {
                    // `$` is doubled and continuation lines indented so that
                    // the output reads back as the same values.
                    let value = o.value.replace('$', "$$").replace('\n', "\n    ");
                    writeln!(f, "{} = {}", o.name, value)?;
                }
            }
        }
        Ok(())
    }
}
