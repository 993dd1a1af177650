//! `[kafka_client]`: raw librdkafka properties passed to every consumer.
//! Which of them are secrets (masked everywhere), which are refused
//! because the delivery invariant depends on the persister setting them,
//! and what the sample and README say about the section.

use std::collections::BTreeMap;
use std::fmt;

use super::Secret;

/// `[kafka_client]`: librdkafka properties passed through verbatim.
#[derive(Clone, PartialEq, Default)]
pub struct KafkaClientSection {
    /// Property name → value, in name order.
    pub properties: BTreeMap<String, Secret>,
}

/// librdkafka properties the persister sets itself, with why; refused in
/// `[kafka_client]`: the delivery invariant depends on them (offsets are
/// committed only after the WAL fsync, by the persister, for the group it
/// names), or they are the persister's own options per topic section (the
/// group membership: instance id, protocol, session timeout).
const MANAGED_PROPERTIES: [(&str, &str); 9] = [
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
        "static group membership is the persister's to manage: set group_instance_name in [kafka] or a topic section (default: the host name; empty: off)",
    ),
    (
        "group.protocol",
        "the group protocol is set per topic by group_protocol in [kafka] or a topic section (classic or consumer)",
    ),
    (
        "session.timeout.ms",
        "the session timeout is set per topic by session_timeout_ms in [kafka] or a topic section (with group_protocol = consumer it is the group's, set on the brokers)",
    ),
];

impl KafkaClientSection {
    /// The sample's comment under `[kafka_client]`, before the list of
    /// refused properties and the examples.
    pub(crate) const HELP: &'static str =
        "librdkafka properties passed to the Kafka consumers as they are (TLS,\n\
         SASL, tuning); see librdkafka's CONFIGURATION.md. Values of secret\n\
         properties (passwords, keys, tokens) are never logged or printed.\n\
         New consumer groups start at the earliest offset: set\n\
         auto.offset.reset = latest here to skip what is already in the topics.";

    // Used by docs.rs (test-only), which writes the sample and README.
    #[cfg_attr(not(test), allow(dead_code))]
    /// Properties the sample shows, commented out.
    pub(crate) const EXAMPLES: [&'static str; 5] = [
        "security.protocol = SASL_SSL",
        "sasl.mechanisms = SCRAM-SHA-512",
        "sasl.username = monasca",
        "sasl.password = secret",
        "ssl.ca.location = /etc/ssl/certs/kafka-ca.pem",
    ];

    // Used by docs.rs (test-only), which writes the sample and README.
    #[cfg_attr(not(test), allow(dead_code))]
    /// The names of the properties refused here, in a stable order.
    pub(crate) fn refused() -> impl Iterator<Item = &'static str> {
        MANAGED_PROPERTIES.iter().map(|(name, _)| *name)
    }

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

    /// The properties as `check-config` prints them, secrets as `****`.
    pub(crate) fn rendered(&self) -> impl Iterator<Item = (&str, String)> {
        self.properties.iter().map(|(name, value)| {
            let text = if Self::is_secret(name) {
                value.to_string()
            } else {
                value.expose().to_string()
            };
            (name.as_str(), text)
        })
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
