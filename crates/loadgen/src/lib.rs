//! The load generator behind `monasca-persister-load`: realistic Monasca
//! metrics and alarm state transitions produced to any Kafka (or to an
//! embedded broker) at a given rate, with every delivery checked.
//!
//! Generating messages ([`generate`], from the [`catalog`]) is kept apart
//! from producing them ([`producer`], [`run`]), so that tests and benchmark
//! helpers can use the same messages without Kafka.

pub mod broker;
pub mod catalog;
pub mod cli;
pub mod generate;
pub mod pace;
pub mod producer;
pub mod progress;
pub mod run;
pub mod stop;
pub mod topics;

pub use generate::{Generator, Limits, Message, MessageKind, Mix, Timestamps, Workload};
