//! `monasca-persister-load`: produces realistic Monasca metrics and alarm
//! state transitions to Kafka (see `monasca_loadgen`).

use std::process::ExitCode;

use clap::Parser;
use monasca_loadgen::cli::{run, LoadArgs};

fn main() -> ExitCode {
    match run(LoadArgs::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("monasca-persister-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}
