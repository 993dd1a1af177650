//! The final summary of a migration run: what was copied, skipped and
//! failed, and what to do next.

use std::fmt::Write as _;
use std::time::Duration;

use crate::state::{StateFiles, FAILURE_FILE, SUCCESS_FILE};

/// The outcome of a migration run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The source database.
    pub source: String,
    /// Measurements in the source (or the measurement cache).
    pub measurements: usize,
    /// Listed in `migrate-success` before this run.
    pub already_done: usize,
    /// Left out by `--migrate-skip-regex`.
    pub skipped: usize,
    /// Copied completely by this run (recorded in `migrate-success`).
    pub migrated: Vec<String>,
    /// Among `migrated`: those with no `_tenant_id` value, nothing to copy.
    pub without_tenants: usize,
    /// Failed in this run, with why (recorded in `migrate-failure`).
    pub failed: Vec<(String, String)>,
    /// Not attempted because the run stopped early.
    pub not_reached: usize,
    /// Why the run stopped early.
    pub stopped: Option<String>,
    /// A stop signal ended the run.
    pub interrupted: bool,
    /// Target databases this run created.
    pub databases_created: usize,
    /// Target databases used (created or existing).
    pub databases: usize,
    /// Points written into the targets.
    pub points_written: u64,
    /// Points dropped as older than a target's retention policy.
    pub points_dropped: u64,
    /// Chunks whose written count InfluxDB did not report (they dropped points).
    pub uncounted_chunks: u64,
    /// `--verify` was on.
    pub verified: bool,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// True when every measurement attempted was migrated.
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty() && self.stopped.is_none()
    }

    /// The summary printed at the end.
    pub fn render(&self, state: &StateFiles) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Migration of database {:?} to one database per tenant {} after {:.1} s.",
            self.source,
            if self.succeeded() {
                "finished"
            } else {
                "finished with failures"
            },
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "Measurements: {} in all: {} migrated{}, {} failed, {} already done before, {} skipped by --migrate-skip-regex{}.",
            self.measurements,
            self.migrated.len(),
            if self.without_tenants > 0 {
                format!(" ({} without _tenant_id, nothing to copy)", self.without_tenants)
            } else {
                String::new()
            },
            self.failed.len(),
            self.already_done,
            self.skipped,
            if self.not_reached > 0 {
                format!(", {} not reached", self.not_reached)
            } else {
                String::new()
            },
        );
        let _ = writeln!(
            out,
            "Points copied: {} into {} target database(s) ({} created by this run){}.",
            self.points_written,
            self.databases,
            self.databases_created,
            if self.verified {
                "; counts verified"
            } else {
                ""
            }
        );
        if self.points_dropped > 0 {
            let _ = writeln!(
                out,
                "Points dropped as older than the target's retention policy: {} \
                 (the other points of those {} chunk(s) were copied but not counted above).",
                self.points_dropped, self.uncounted_chunks
            );
        }
        if let Some(why) = &self.stopped {
            let _ = writeln!(out, "Stopped early: {why}");
        }
        if !self.failed.is_empty() {
            let _ = writeln!(
                out,
                "Failed (also in {}):",
                state.path(FAILURE_FILE).display()
            );
            for (measurement, error) in &self.failed {
                let _ = writeln!(out, "  {measurement:?}: {error}");
            }
        }
        if !self.succeeded() {
            let _ = writeln!(
                out,
                "Run the same command again to retry: finished measurements (listed in {}) are skipped. \
                 If chunks time out or run out of memory, try a smaller --migrate-time-unit.",
                state.path(SUCCESS_FILE).display()
            );
        }
        out
    }
}
