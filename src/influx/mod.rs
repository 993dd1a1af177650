//! The InfluxDB 1.x sink: the chunked batch writer and database creation
//! on first use, over the InfluxDB client (crates/influx, `monasca-influx`:
//! the HTTP client, what its answers mean, retention policies), whose
//! modules are re-exported here under the names the daemon's modules use.

pub use monasca_influx::{client, response, schema};
pub mod databases;
pub mod writer;

pub use client::{InfluxClient, InfluxError, SetupError};
pub use response::WriteResponse;
pub use schema::{DatabaseCreation, RetentionPolicy, RetentionPolicyInfo};
pub use writer::{InfluxWriter, RejectedLine, RetryNeeded, WriteReport, WriterOptions};
