//! The InfluxDB 1.x client (`monasca-influx`) the daemon's sink and the
//! migration tool share: the HTTP client, what its answers mean, databases
//! and retention policies. The daemon re-exports these modules under
//! `monasca_persister::influx`, beside its chunked batch writer.

pub mod client;
pub mod response;
pub mod schema;

pub use client::{InfluxClient, InfluxError, SetupError};
pub use response::WriteResponse;
pub use schema::{DatabaseCreation, RetentionPolicy, RetentionPolicyInfo};
