//! The migration behind `monasca-persister migrate-db-per-tenant`
//! (`monasca-migrate`): copies an existing single InfluxDB database
//! into one database per tenant (`<database_name>_<tenant>`), so that
//! `db_per_tenant` can be switched on without losing history. A
//! re-implementation of the reference's
//! `tools/influxdb/db-per-tenant/migrate-to-db-per-tenant.py`, with the
//! same options, state files and chunked `SELECT … INTO` copy, plus names
//! quoted properly, `--dry-run`, `--state-dir`, `--verify` and a progress
//! bar. User documentation: `docs/migration.md`.
//!
//! Files: `options` (the command-line options), `settings` (the options
//! parsed and checked), `plan` (what would be done, read-only),
//! `targets` (creating target databases), `copy` (one measurement, chunk by
//! chunk), `verify` (count comparison), `influxql` (statements and
//! answers), `state` (the three state files), `progress` (the bar),
//! `report` (the summary), `run` (one run). The subcommand itself (the
//! configuration files, logging, stop signals, exit codes) is the daemon's
//! `src/migrate_command.rs`, which shares them with the other commands.

pub mod copy;
pub mod error;
pub mod influxql;
pub mod options;
pub mod plan;
pub mod progress;
pub mod report;
pub mod run;
pub mod settings;
pub mod state;
pub mod targets;
pub mod verify;

pub use error::{MigrateError, TenantError};
pub use options::MigrateOptions;
pub use plan::Plan;
pub use progress::Progress;
pub use report::Report;
pub use run::migrate;
pub use settings::{Settings, SkipPattern, TenantRetention, TimeUnit};
pub use state::StateFiles;
