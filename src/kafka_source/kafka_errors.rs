//! What a consumer tells the operator about the errors Kafka reports. A
//! subscribed topic that does not exist is said once (WARN), kept in
//! `/healthcheck`, and said to exist once partitions of it are assigned;
//! credentials the brokers refuse are an ERROR naming the settings to check
//! (every 30 s while it lasts) and the reason in `/healthcheck`; anything
//! else is a WARN at most every 30 s. librdkafka retries all of them by
//! itself: none stops the persister.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::stats::{Stats, TopicKind};

/// Longest a repeated error stays out of the log.
const QUIET: Duration = Duration::from_secs(30);

/// What an error from Kafka means for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The subscribed topic does not exist (auto-creation is off, or not yet).
    MissingTopic,
    /// The brokers refused the SASL credentials or the TLS handshake failed.
    Authentication,
    /// Anything else (brokers down, timeouts, …).
    Other,
}

/// The kind of problem `e` is.
pub fn classify(e: &KafkaError) -> Problem {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            Problem::MissingTopic
        }
        Some(
            RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::SSL,
        ) => Problem::Authentication,
        _ => Problem::Other,
    }
}

/// One consumer's error reporting state.
pub struct KafkaErrors {
    topic: String,
    kind: TopicKind,
    missing: AtomicBool,
    last_auth: Mutex<Option<Instant>>,
    last_other: Mutex<Option<Instant>>,
}

impl KafkaErrors {
    /// Reporting for the consumer of `topic`.
    pub fn new(topic: &str, kind: TopicKind) -> KafkaErrors {
        KafkaErrors {
            topic: topic.to_string(),
            kind,
            missing: AtomicBool::new(false),
            last_auth: Mutex::new(None),
            last_other: Mutex::new(None),
        }
    }

    /// Reports `e` (with librdkafka's `reason`, when it gave one) as its kind asks.
    pub fn report(&self, e: &KafkaError, reason: &str, stats: &Stats) {
        let text = if reason.is_empty() {
            e.to_string()
        } else {
            format!("{e}: {reason}")
        };
        match classify(e) {
            Problem::MissingTopic => {
                if !self.missing.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "topic {} does not exist: waiting for it to be created (consuming starts once it is; brokers create topics only with auto.create.topics.enable)",
                        self.topic
                    );
                }
                stats.set_kafka_error(
                    self.kind,
                    Some(format!("topic {} does not exist", self.topic)),
                );
            }
            Problem::Authentication => {
                if due(&self.last_auth) {
                    log::error!(
                        "Kafka refused the connection for topic {}: {text}; check the credentials and TLS settings in [kafka_client] (sasl.username, sasl.password, sasl.mechanism, ssl.ca.location); librdkafka keeps retrying",
                        self.topic
                    );
                }
                stats.set_kafka_error(self.kind, Some(format!("authentication failed: {text}")));
            }
            Problem::Other => {
                if due(&self.last_other) {
                    log::warn!("polling {}: {text} (librdkafka keeps retrying)", self.topic);
                }
            }
        }
    }

    /// Partitions of the topic were assigned: it exists (again).
    pub fn assigned(&self, partitions: usize, stats: &Stats) {
        if partitions > 0 && self.missing.swap(false, Ordering::Relaxed) {
            log::info!(
                "topic {} exists now: consuming {partitions} partition(s)",
                self.topic
            );
            stats.set_kafka_error(self.kind, None);
        }
    }

    /// A broker accepted the connection: whatever refused it before is over.
    pub fn connected(&self, stats: &Stats) {
        if let Ok(mut last) = self.last_auth.lock() {
            if last.take().is_some() {
                log::info!(
                    "Kafka accepts the connection for topic {} again",
                    self.topic
                );
                stats.set_kafka_error(
                    self.kind,
                    self.missing
                        .load(Ordering::Relaxed)
                        .then(|| format!("topic {} does not exist", self.topic)),
                );
            }
        }
    }
}

/// True when the last log of this kind is older than [`QUIET`] (and notes now).
fn due(last: &Mutex<Option<Instant>>) -> bool {
    let Ok(mut last) = last.lock() else {
        return true;
    };
    if last.is_some_and(|t| t.elapsed() < QUIET) {
        return false;
    }
    *last = Some(Instant::now());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_code() {
        let missing = KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition);
        let auth = KafkaError::Global(RDKafkaErrorCode::Authentication);
        let down = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(classify(&missing), Problem::MissingTopic);
        assert_eq!(classify(&auth), Problem::Authentication);
        assert_eq!(classify(&down), Problem::Other);
    }

    #[test]
    fn a_missing_topic_is_in_the_health_state_until_assigned() {
        let stats = Stats::new();
        let errors = KafkaErrors::new("metrics", TopicKind::Metrics);
        let missing = KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition);
        errors.report(&missing, "", &stats);
        errors.report(&missing, "", &stats);
        assert_eq!(
            stats.kafka_error(TopicKind::Metrics).as_deref(),
            Some("topic metrics does not exist")
        );
        errors.assigned(0, &stats);
        assert!(stats.kafka_error(TopicKind::Metrics).is_some());
        errors.assigned(4, &stats);
        assert_eq!(stats.kafka_error(TopicKind::Metrics), None);
    }

    #[test]
    fn refused_credentials_are_in_the_health_state_until_connected() {
        let stats = Stats::new();
        let errors = KafkaErrors::new("metrics", TopicKind::Metrics);
        let auth = KafkaError::Global(RDKafkaErrorCode::Authentication);
        errors.report(
            &auth,
            "SASL authentication error: invalid credentials",
            &stats,
        );
        let error = stats.kafka_error(TopicKind::Metrics).unwrap_or_default();
        assert!(error.starts_with("authentication failed: "), "{error}");
        assert!(error.contains("invalid credentials"), "{error}");
        errors.connected(&stats);
        assert_eq!(stats.kafka_error(TopicKind::Metrics), None);
    }
}
