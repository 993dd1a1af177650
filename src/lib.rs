//! The monasca-persister library: configuration, the Kafka source, the
//! Monasca message transform, the Kafka → WAL → InfluxDB pipeline and its
//! sinks (InfluxDB, Elasticsearch).
//! See ARCHITECTURE.md for the code map.

pub mod cli;
pub mod config;
pub mod dead_letter;
pub mod elasticsearch;
pub mod health;
pub mod http;
pub mod http_client;
pub mod influx;
pub mod kafka_source;
pub mod logging;
pub mod migrate;
pub mod pipeline;
pub mod retry;
pub mod run;
pub mod secrets;
pub mod signals;
pub mod stats;

/// The Monasca message transform (crates/transform), under the name the
/// daemon's modules use.
pub use monasca_transform as transform;
