//! The measuring side of `scripts/bench` (see docs/operations-tools.md):
//!
//! - `watch`: waits until a persister (any implementation, by pid) has made
//!   N points queryable, then reports when it started consuming, when all
//!   points were queryable, its CPU time and its peak RSS.
//! - `ceiling`: posts the same N metric lines straight to InfluxDB (10 000
//!   points per request, 2 threads): what InfluxDB alone can take.
//! - `kafka-ceiling`: a bare consumer with the persister's librdkafka
//!   settings reads the same N messages and drops them: what the broker and
//!   librdkafka alone deliver.
//! - `latency`: produces at a low rate and measures, per message, the time
//!   from handing it to the Kafka producer to it being queryable.
//!
//! Each prints `key=value` lines on stdout for the script to combine.

mod ceiling;
mod influx;
mod kafka_ceiling;
mod latency;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Measurements for scripts/bench.
#[derive(Debug, Parser)]
#[command(name = "bench_e2e")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Wait for a running persister to make N points queryable.
    Watch(watch::WatchArgs),
    /// Post the same lines directly to InfluxDB.
    Ceiling(ceiling::CeilingArgs),
    /// Read the preloaded messages with a bare consumer.
    KafkaCeiling(kafka_ceiling::KafkaCeilingArgs),
    /// Produce at a low rate; report produce-to-queryable latency.
    Latency(latency::LatencyArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Watch(args) => watch::run(args),
        Command::Ceiling(args) => ceiling::run(args),
        Command::KafkaCeiling(args) => kafka_ceiling::run(args),
        Command::Latency(args) => latency::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_e2e: {e:#}");
            ExitCode::FAILURE
        }
    }
}
