//! The monasca-persister library: configuration, the Monasca message
//! transform, the InfluxDB sink, and the Kafka → WAL → InfluxDB pipeline.
//! See ARCHITECTURE.md for the code map.

pub mod cli;
pub mod dead_letter;
pub mod elasticsearch;
pub mod health;
pub mod http;
pub mod influx;
pub mod logging;
pub mod migrate;
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
/// The Monasca message transform (crates/transform), under the name the
/// daemon's modules use.
pub use monasca_transform as transform;
