//! The librdkafka configuration of a consumer: the group, the client id,
//! commits left to the flush point, fetch and prefetch sizes measured for
//! throughput and memory, static membership and the group protocol, then the
//! operator's `[kafka_client]` properties; and `check-config`'s check that
//! librdkafka accepts it.

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

use crate::config::{Config, GroupProtocol, KafkaTopicSection};

/// Builds the librdkafka configuration of a consumer of `section`.
pub fn client_config(config: &Config, section: &KafkaTopicSection, member: usize) -> ClientConfig {
    let mut c = ClientConfig::new();
    let client_id = match &section.consumer_id {
        Some(id) if !id.is_empty() => format!("{}-{}", section.client_id, id),
        _ => section.client_id.clone(),
    };
    // The legacy client's fetch sizes (32 KiB by default) would starve
    // librdkafka, whose own default is 1 MiB per partition: they may only raise it.
    let partition_fetch = section
        .max_buffer_size
        .max(section.fetch_size_bytes)
        .max(section.buffer_size.unwrap_or(0))
        .max(1 << 20);
    // librdkafka wants fetch.max.bytes ≥ max.partition.fetch.bytes.
    let fetch_max = partition_fetch.max(8 << 20);
    c.set("bootstrap.servers", section.uri.join(","))
        .set("group.id", &section.group_id)
        .set("client.id", format!("{client_id}-{member}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("max.partition.fetch.bytes", partition_fetch.to_string())
        .set("statistics.interval.ms", "2000")
        // A broker holds an empty fetch this long: bounds the latency at low load.
        .set("fetch.wait.max.ms", "100")
        // librdkafka prefetches up to 64 MiB per consumer by default, plus
        // ~200 bytes of bookkeeping per message. 8 MiB (~30 000 metrics)
        // keeps the pipeline fed (refilled every 10 ms, below) and the
        // process small: measured peak RSS 89/101/121 MiB at 4/8/16 MiB.
        .set("queued.max.messages.kbytes", "8192")
        // Once that prefetch queue is full, librdkafka postpones the next
        // fetch by this much (default 1 s): with a backlog the consumer
        // drained the queue in a fraction of that and then sat idle, which
        // capped a consumer at ~75 000 msg/s. 10 ms keeps it fed.
        .set("fetch.queue.backoff.ms", "10")
        // A fetch response may carry this much (default 50 MiB) on top of
        // the prefetch queue: the largest transient allocation of the process.
        .set("fetch.max.bytes", fetch_max.to_string())
        .set("log_level", "4");
    if let Some(id) = section.group_instance_id(member) {
        c.set("group.instance.id", id);
    }
    c.set("group.protocol", section.protocol().as_str());
    if section.protocol() == GroupProtocol::Classic {
        // A rebalance moves only the partitions that must move; the other
        // members keep consuming theirs throughout (the consumer protocol
        // always works this way, its assignor on the brokers).
        c.set("partition.assignment.strategy", "cooperative-sticky");
        if let Some(ms) = section.session_timeout_ms {
            c.set("session.timeout.ms", ms.to_string());
            // librdkafka's default heartbeat (3 s) is for its default
            // session (45 s): a shorter session heartbeats more often, ten
            // times a session, so that a member of a loaded machine is
            // not taken for dead, and a rebalance reaches the others soon.
            c.set(
                "heartbeat.interval.ms",
                (ms / 10).clamp(1, 3000).to_string(),
            );
        }
    }
    // Operators' raw librdkafka properties win: TLS, SASL, tuning.
    for (k, v) in &config.kafka_client.properties {
        c.set(k, v.expose());
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// Checks that librdkafka accepts the consumer configuration of every
/// enabled topic (`[kafka_client]` included) by building it, without
/// creating a client or connecting anywhere. Its error texts may quote
/// property values: print them masked (`secrets::mask`).
pub fn check_client_config(config: &Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    for section in [&config.kafka_metrics, &config.kafka_alarm_history] {
        if section.enabled {
            client_config(config, section, 0)
                .create_native_config()
                .with_context(|| {
                    format!(
                        "librdkafka refuses the consumer configuration of [{}] with [kafka_client]",
                        section.section
                    )
                })?;
        }
    }
    Ok(())
}
