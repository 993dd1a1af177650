//! `--create-topics`: the load's topics created on a real Kafka before it is
//! produced (brokers normally refuse to create topics on first use), with a
//! given partition count; a topic that already exists is left as it is.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

/// Why the topics could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// No admin client.
    #[error("cannot create a Kafka admin client for {brokers}: {source}")]
    Client {
        /// The bootstrap brokers.
        brokers: String,
        /// librdkafka's reason.
        source: rdkafka::error::KafkaError,
    },
    /// The request failed as a whole.
    #[error("creating topics on {brokers}: {source}")]
    Request {
        /// The bootstrap brokers.
        brokers: String,
        /// librdkafka's reason.
        source: rdkafka::error::KafkaError,
    },
    /// The broker refused one topic.
    #[error("creating topic {topic} with {partitions} partition(s) and replication factor {replication}: {code}")]
    Refused {
        /// The topic.
        topic: String,
        /// Partitions asked for.
        partitions: i32,
        /// Replication factor asked for.
        replication: i32,
        /// The broker's answer.
        code: RDKafkaErrorCode,
    },
}

/// Creates `topics` with `partitions` partitions and `replication` replicas
/// on `brokers` (with the producer's `properties`: TLS, SASL) unless they
/// exist; returns the topics it created.
pub fn create_topics(
    brokers: &str,
    properties: &[(String, String)],
    topics: &[&str],
    partitions: i32,
    replication: i32,
) -> Result<Vec<String>, TopicError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (k, v) in properties {
        config.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|source| TopicError::Client {
            brokers: brokers.to_string(),
            source,
        })?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
    let results =
        futures_executor::block_on(admin.create_topics(&new, &opts)).map_err(|source| {
            TopicError::Request {
                brokers: brokers.to_string(),
                source,
            }
        })?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(topic) => created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(TopicError::Refused {
                    topic,
                    partitions,
                    replication,
                    code,
                })
            }
        }
    }
    Ok(created)
}
