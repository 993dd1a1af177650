//! The monasca-persister library: configuration, the Monasca message
//! transform, the InfluxDB sink, and the Kafka → WAL → InfluxDB pipeline.
//! See ARCHITECTURE.md for the code map.

pub mod cli;
pub mod config;
pub mod logging;
pub mod transform;
