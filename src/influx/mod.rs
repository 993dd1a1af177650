//! The InfluxDB 1.x sink: the HTTP client, what its answers mean, database
//! creation on first use, retention policies, and the chunked batch
//! writer.

pub mod client;
pub mod databases;
pub mod response;
pub mod schema;
pub mod writer;

pub use client::{InfluxClient, InfluxError, SetupError};
pub use response::WriteResponse;
pub use schema::{DatabaseCreation, RetentionPolicy, RetentionPolicyInfo};
pub use writer::{InfluxWriter, RejectedLine, RetryNeeded, WriteReport, WriterOptions};
