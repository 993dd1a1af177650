//! The Kafka source: consumer threads, one per member of a topic's consumer
//! group, reading Monasca messages from Kafka and handing each one to the
//! transform and its batch to the flush point (`pipeline::flush_point`),
//! which makes it durable in the WAL before the offsets are committed here.

pub mod consumer;
pub mod fetch_queue;
mod kafka_errors;
mod kafka_log;
mod positions;

pub use consumer::{check_client_config, client_config, spawn, ConsumerThread};
