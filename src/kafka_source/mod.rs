//! The Kafka source: consumer threads, each one member of a topic's
//! consumer group, reading Monasca messages from Kafka, turning each into a
//! line of its batch (the transform) and handing the batch to the flush
//! point (`pipeline::flush_point`), which makes it durable in the WAL
//! before the offsets are committed to the group.

mod back_pressure;
mod client_config;
mod consumer;
mod context;
pub mod fetch_queue;
mod kafka_errors;
mod kafka_log;
mod membership;
mod message;
mod offset_committer;
mod positions;

pub use client_config::{check_client_config, client_config};
pub use consumer::{spawn, ConsumerHandle, ConsumerThread};
pub use membership::Membership;
