//! The `monasca-persister` binary: installs the stop-signal handlers first
//! (see `signals`), then parses the command line and hands over to
//! [`monasca_persister::cli::run`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if let Err(e) = monasca_persister::signals::install() {
        eprintln!(
            "monasca-persister: error: cannot install the handlers of SIGTERM and SIGINT: {e}"
        );
        return ExitCode::FAILURE;
    }
    monasca_persister::cli::run(monasca_persister::cli::Cli::parse())
}
