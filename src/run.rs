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
    let stop = control.clone();
    crate::signals::stop_with(move |signal| {
        log::info!("received {signal}: stopping consumers, then draining the WAL (send it again to exit at once)");
        stop.stop();
    });
    fatal_on_panic(control.clone());
    let pipeline = Pipeline::start(config, stats.clone(), control.clone())?;
    let _health = if config.health.enabled {
        let settings = HealthSettings::from_config(config);
        match HealthServer::start(config.health.bind, pipeline.health(), settings) {
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
    let wal = pipeline.wal().clone();
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
        Some(e) => {
            // After a storage error the WAL is left to the exit rather
            // than closed (everything durable already is; the next start
            // recovers).
            std::mem::forget(wal);
            anyhow::bail!("fatal: {e}")
        }
        None => match control.failure() {
            Some(failure) => Err(failure.into()),
            None => Ok(()),
        },
    }
}

/// A panic in any thread (a consumer, a writer, a library's) leaves the
/// pipeline without it: it is a fatal error, so the process stops and
/// exits non-zero within seconds (see [`Control::fatal`]) instead of
/// running on without, say, its consumers.
fn fatal_on_panic(control: Arc<Control>) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let thread = std::thread::current();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        control.fatal(format!(
            "thread {} panicked{at}: {what}",
            thread.name().unwrap_or("unnamed")
        ));
    }));
}
