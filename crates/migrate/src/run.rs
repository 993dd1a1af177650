//! One migration run from start to end: build the plan, save the
//! measurement list, prepare the target databases, copy each measurement
//! still to do and record it as finished or failed, and sum it all up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::copy::Copier;
use crate::error::MigrateError;
use crate::plan::{MeasurementStatus, Plan};
use crate::progress::Progress;
use crate::report::Report;
use crate::settings::Settings;
use crate::state::{StateFiles, FAILURE_FILE, SUCCESS_FILE};
use crate::targets;
use monasca_influx::InfluxClient;

/// What `--dry-run` shows: the plan, with nothing changed (not even the
/// state files).
pub fn plan(client: &InfluxClient, settings: &Settings) -> Result<Plan, MigrateError> {
    settings.validate()?;
    Plan::build(client, settings, &StateFiles::new(&settings.state_dir))
}

/// Migrates every measurement not done yet. A measurement that fails is
/// recorded and the others go on; only losing InfluxDB (connection,
/// credentials) or the state files stops the run. The source database is
/// only read. Once `interrupt` is set (a stop signal) the run ends before
/// the next chunk: the measurement being copied is recorded neither as
/// finished nor as failed, so the next run copies it again (a chunk copied
/// twice writes the same points).
pub fn migrate(
    client: &InfluxClient,
    settings: &Settings,
    progress: &Progress,
    interrupt: &AtomicBool,
) -> Result<Report, MigrateError> {
    settings.validate()?;
    let started = Instant::now();
    let state = StateFiles::new(&settings.state_dir);
    let mut plan = Plan::build(client, settings, &state)?;
    if !plan.measurements_cached {
        let names: Vec<String> = plan.measurements.iter().map(|m| m.name.clone()).collect();
        state.save_measurements(&names)?;
    }
    state.reset_failures()?;
    for pattern in &settings.skip {
        log::info!(
            "Metrics matching pattern {:?} will be skipped.",
            pattern.as_str()
        );
    }
    for (tenant, policy) in &settings.tenant_policies {
        log::info!(
            "Project {tenant:?} will be applied retention policy {:?} ({}h).",
            policy.name,
            policy.hours
        );
    }
    let prepared = targets::prepare(client, settings, &mut plan.targets)?;

    let mut report = Report {
        source: plan.source.clone(),
        measurements: plan.measurements.len(),
        databases: plan.targets.len() - prepared.unusable.len(),
        databases_created: prepared.created,
        verified: settings.verify,
        ..Report::default()
    };
    for m in &plan.measurements {
        match &m.status {
            MeasurementStatus::AlreadyDone => {
                report.already_done += 1;
                log::debug!("Skipping {:?} because it is already done.", m.name);
            }
            MeasurementStatus::Skipped(p) => {
                report.skipped += 1;
                log::debug!("Skipping {:?} because it matches {p:?}.", m.name);
            }
            MeasurementStatus::ToMigrate => {}
        }
    }

    let todo: Vec<_> = plan.to_migrate().collect();
    progress.begin(plan.chunk_count());
    let copier = Copier {
        client,
        source: &plan.source,
        targets: &plan.targets,
        unusable: &prepared.unusable,
        verify: settings.verify,
        progress,
        interrupt,
    };
    for (i, measurement) in todo.iter().enumerate() {
        if interrupt.load(Ordering::Relaxed) {
            report.not_reached = todo.len() - i;
            report.stopped = Some(interrupted_note(report.not_reached));
            report.interrupted = true;
            break;
        }
        log::info!(
            "Migrating {:?} ({}/{}, {} tenant(s))",
            measurement.name,
            i + 1,
            todo.len(),
            measurement.tenants.len()
        );
        let mut points = report.points_written;
        progress.measurement(i + 1, todo.len(), &measurement.name, points);
        let outcome = copier.copy_measurement(measurement, &mut |written| {
            points += written;
            progress.measurement(i + 1, todo.len(), &measurement.name, points);
        });
        report.points_written += outcome.copied.written;
        report.points_dropped += outcome.copied.dropped;
        report.uncounted_chunks += outcome.copied.uncounted_chunks;
        if outcome.interrupted {
            log::info!(
                "stopped while copying {:?}: it is copied again by the next run",
                measurement.name
            );
            report.not_reached = todo.len() - i;
            report.stopped = Some(interrupted_note(report.not_reached));
            report.interrupted = true;
            break;
        }
        if outcome.errors.is_empty() {
            state.record_success(&measurement.name)?;
            if measurement.tenants.is_empty() {
                report.without_tenants += 1;
                log::info!("  no _tenant_id values: nothing to copy");
            }
            report.migrated.push(measurement.name.clone());
        } else {
            let errors: Vec<String> = outcome.errors.iter().map(ToString::to_string).collect();
            let error = errors.join("; ");
            state.record_failure(&measurement.name, &error)?;
            report.failed.push((measurement.name.clone(), error));
        }
        log::info!(
            "{}/{} (done {} + skip {} + fail {})/{}",
            i + 1,
            todo.len(),
            report.already_done + report.migrated.len(),
            report.skipped,
            report.failed.len(),
            report.measurements
        );
        if outcome.stop {
            report.not_reached = todo.len() - i - 1;
            report.stopped = Some(format!(
                "InfluxDB at {} cannot be reached or refuses the credentials; \
                 {} measurement(s) not attempted",
                client.url(),
                report.not_reached
            ));
            break;
        }
    }
    progress.finish();
    report.elapsed = started.elapsed();
    log::info!(
        "migration finished: {} migrated, {} failed, {} points copied; state in {} and {}",
        report.migrated.len(),
        report.failed.len(),
        report.points_written,
        state.path(SUCCESS_FILE).display(),
        state.path(FAILURE_FILE).display()
    );
    Ok(report)
}

fn interrupted_note(not_reached: usize) -> String {
    format!(
        "interrupted by a stop signal; {not_reached} measurement(s) not finished \
         (the one being copied included), the state files are up to date"
    )
}
