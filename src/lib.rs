//! The monasca-persister library: the daemon — the Kafka source, the
//! Kafka → WAL → InfluxDB (and Elasticsearch) pipeline, its sinks, health
//! endpoint, logging and command line. The configuration, the InfluxDB
//! client, the transform and the migration are crates of their own under
//! `crates/`, re-exported here under the names the daemon's modules use.
//! See ARCHITECTURE.md for the code map.

pub mod cli;
pub mod dead_letter;
pub mod elasticsearch;
pub mod health;
pub mod http;
pub mod influx;
pub mod kafka_source;
pub mod logging;
pub mod migrate_command;
pub mod pipeline;
pub mod retry;
pub mod run;
pub mod secrets;
pub mod signals;
pub mod stats;

/// The configuration (crates/config), under the name the daemon's modules
/// use.
pub use monasca_config as config;
/// The HTTP client set-up both sinks share (crates/http-client).
pub use monasca_http_client as http_client;
/// The migration behind `migrate-db-per-tenant` (crates/migrate); the
/// subcommand is `migrate_command`.
pub use monasca_migrate as migrate;
/// The Monasca message transform (crates/transform), under the name the
/// daemon's modules use.
pub use monasca_transform as transform;
