//! `monasca-persister` without a subcommand: run the pipeline until a stop
//! signal or a fatal error, then shut down in order and report.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::health::{HealthServer, HealthSettings};
use crate::pipeline::{Control, Pipeline};
use crate::stats::Stats;

/// Runs the persister. Returns Err for fatal conditions (the caller exits non-zero).
pub fn run(config: &Config) -> anyhow::Result<()> {
    let stats = Arc::new(Stats::new());
    let control = Arc::new(Control::new());
    crate::signals::install(control.clone())?;
    let pipeline = Pipeline::start(config, stats.clone(), control.clone())?;
    let _health = if config.health.enabled {
        let settings = HealthSettings::from_config(config);
        match HealthServer::start(config.health.bind, pipeline.shared().clone(), settings) {
            Ok(server) => Some(server),
            Err(e) => {
                // Persisting matters more than being observable: keep running.
                log::error!("{e:#}; continuing without the health endpoint");
                None
            }
        }
    } else {
        None
    };
    log::info!("monasca-persister {} running", env!("CARGO_PKG_VERSION"));
    while !control.stopping() {
        control.wait(Duration::from_secs(1));
    }
    let summary = pipeline.shutdown();
    log::info!(
        "stopped: {} point(s) drained after the stop signal, {} record(s) left in the WAL, {} dead letter(s); {} point(s) written this run, {} WAL record(s) replayed at start",
        summary.points_drained,
        summary.records_left,
        summary.dead_letters,
        summary.points_written,
        summary.replayed_records,
    );
    match control.fatal_error() {
        Some(e) => anyhow::bail!("fatal: {e}"),
        None => Ok(()),
    }
}
