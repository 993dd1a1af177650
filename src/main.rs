//! The `monasca-persister` binary: parses the command line and hands over
//! to [`monasca_persister::cli::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    monasca_persister::cli::run(monasca_persister::cli::Cli::parse())
}
