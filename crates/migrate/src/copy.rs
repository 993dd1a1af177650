//! Copying one measurement: for each of its tenants, chunk after chunk,
//! newest first, `SELECT * INTO` the tenant's database. A tenant whose copy
//! fails does not stop the others; the measurement then counts as failed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use crate::error::TenantError;
use crate::influxql::{self, Chunk};
use crate::plan::{MeasurementPlan, TargetPlan};
use crate::progress::Progress;
use crate::verify;
use monasca_influx::{InfluxClient, InfluxError};

/// What copying one measurement (or one tenant of it) did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Points written, as InfluxDB counted them.
    pub written: u64,
    /// Points InfluxDB dropped as older than the target's retention policy.
    pub dropped: u64,
    /// Chunks that dropped such points: InfluxDB then reports no written
    /// count, so their points are not in `written`.
    pub uncounted_chunks: u64,
}

impl Copied {
    fn add(&mut self, other: Copied) {
        self.written += other.written;
        self.dropped += other.dropped;
        self.uncounted_chunks += other.uncounted_chunks;
    }
}

/// What one chunk's `SELECT … INTO` did.
enum ChunkCopy {
    /// Wrote this many points.
    Written(u64),
    /// Wrote the points within the target's retention, an unknown number,
    /// and dropped this many older ones.
    DroppedBeyondRetention(u64),
}

/// The outcome of one measurement.
#[derive(Debug, Default)]
pub struct MeasurementOutcome {
    /// What was copied, failed tenants included.
    pub copied: Copied,
    /// Why tenants failed; empty when the measurement is done.
    pub errors: Vec<TenantError>,
    /// True when the last error means InfluxDB is out of reach: the run stops.
    pub stop: bool,
    /// True when a stop signal ended the copy between two chunks: the
    /// measurement is neither finished nor failed.
    pub interrupted: bool,
}

/// Where a measurement comes from and goes to.
pub struct Copier<'a> {
    /// The InfluxDB server.
    pub client: &'a InfluxClient,
    /// The source database.
    pub source: &'a str,
    /// Targets by tenant.
    pub targets: &'a BTreeMap<String, TargetPlan>,
    /// Tenants whose target database cannot be used, and why.
    pub unusable: &'a BTreeMap<String, String>,
    /// Compare counts after each tenant.
    pub verify: bool,
    /// The display.
    pub progress: &'a Progress,
    /// Set by a stop signal: the copy ends before the next chunk.
    pub interrupt: &'a AtomicBool,
}

impl Copier<'_> {
    /// Copies every tenant of `measurement`; `on_chunk` hears of each
    /// chunk's written count.
    pub fn copy_measurement(
        &self,
        measurement: &MeasurementPlan,
        on_chunk: &mut dyn FnMut(u64),
    ) -> MeasurementOutcome {
        let mut outcome = MeasurementOutcome::default();
        for tenant in &measurement.tenants {
            let Some(target) = self.targets.get(tenant) else {
                continue; // every tenant of a measurement to migrate has a target
            };
            if let Some(reason) = self.unusable.get(tenant) {
                self.progress.advance(u64::from(target.window.len()));
                outcome.errors.push(TenantError::Target {
                    tenant: tenant.clone(),
                    database: target.database.clone(),
                    reason: reason.clone(),
                });
                continue;
            }
            let (copied, result) = self.copy_tenant(&measurement.name, target, on_chunk);
            outcome.copied.add(copied);
            if self.interrupted() {
                outcome.interrupted = true;
                break;
            }
            if let Err(e) = result {
                log::error!("measurement {:?}: {e}", measurement.name);
                let stop = e.stops_the_run();
                outcome.errors.push(e);
                if stop {
                    outcome.stop = true;
                    break;
                }
            }
        }
        outcome
    }

    fn copy_tenant(
        &self,
        measurement: &str,
        target: &TargetPlan,
        on_chunk: &mut dyn FnMut(u64),
    ) -> (Copied, Result<(), TenantError>) {
        let mut copied = Copied::default();
        log::info!("  tenant {:?} into {:?}:", target.tenant, target.database);
        let started = match self.clock(target) {
            Ok(t) => t,
            Err(e) => return (copied, Err(e)),
        };
        let mut newest: Option<Chunk> = None;
        let mut oldest: Option<Chunk> = None;
        let mut chunks_left = u64::from(target.window.len());
        for chunk in target.window.chunks() {
            if self.interrupted() {
                return (copied, Ok(()));
            }
            let result = self.copy_chunk(measurement, target, &chunk);
            chunks_left -= 1;
            self.progress.advance(1);
            let written = match result {
                Ok(ChunkCopy::Written(n)) => n,
                Ok(ChunkCopy::DroppedBeyondRetention(dropped)) => {
                    copied.dropped += dropped;
                    copied.uncounted_chunks += 1;
                    0
                }
                Err(e) => {
                    // The tenant's remaining chunks will not run.
                    self.progress.advance(chunks_left);
                    return (copied, Err(e));
                }
            };
            copied.written += written;
            on_chunk(written);
            if written > 0 {
                log::info!(
                    "         migrated {written} entries from {} -> {} (cumulative {})",
                    chunk.lower,
                    chunk.upper,
                    copied.written
                );
                oldest = Some(chunk.clone());
                newest.get_or_insert(chunk);
            }
        }
        log::info!(
            "         finished migrating a total of {} entries{}",
            copied.written,
            match (&oldest, &newest) {
                (Some(o), Some(n)) => format!(" from {} -> {}", o.lower, n.upper),
                _ => String::new(),
            }
        );
        let result = match started {
            Some(started) => {
                verify::compare(self.client, self.source, measurement, target, started)
            }
            None => Ok(()),
        };
        (copied, result)
    }

    /// True once a stop signal asked the copy to end.
    pub fn interrupted(&self) -> bool {
        self.interrupt.load(Ordering::Relaxed)
    }

    /// One `SELECT … INTO`.
    fn copy_chunk(
        &self,
        measurement: &str,
        target: &TargetPlan,
        chunk: &Chunk,
    ) -> Result<ChunkCopy, TenantError> {
        let statement =
            influxql::copy_statement(&target.database, measurement, &target.tenant, chunk);
        log::debug!("{statement}");
        match self.client.query(Some(self.source), &statement) {
            Ok(answer) => influxql::written(&answer)
                .map(ChunkCopy::Written)
                .map_err(|cause| TenantError::ChunkAnswer {
                    tenant: target.tenant.clone(),
                    database: target.database.clone(),
                    chunk: chunk.to_string(),
                    cause,
                }),
            Err(cause) => {
                let dropped = match &cause {
                    InfluxError::Statement { message, .. } => {
                        influxql::dropped_beyond_retention(message)
                    }
                    _ => None,
                };
                match dropped {
                    // Points at the very edge of the retention period age
                    // past it between the query's now() and the write.
                    Some(dropped) => {
                        log::info!(
                            "         {dropped} points of chunk {chunk} were older than the retention policy of {:?} and dropped",
                            target.database
                        );
                        Ok(ChunkCopy::DroppedBeyondRetention(dropped))
                    }
                    None => Err(TenantError::Chunk {
                        tenant: target.tenant.clone(),
                        database: target.database.clone(),
                        chunk: chunk.to_string(),
                        cause: Box::new(cause),
                    }),
                }
            }
        }
    }

    /// The server's time before copying, when verifying.
    fn clock(&self, target: &TargetPlan) -> Result<Option<DateTime<Utc>>, TenantError> {
        if !self.verify {
            return Ok(None);
        }
        verify::server_clock(self.client)
            .map(Some)
            .map_err(|e| TenantError::Verify {
                tenant: target.tenant.clone(),
                database: target.database.clone(),
                reason: e.to_string(),
            })
    }
}
