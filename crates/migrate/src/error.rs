//! Why a migration cannot go on at all (as opposed to one measurement
//! failing, which is recorded and the rest continues), and why one
//! tenant's copy of a measurement failed.

use crate::influxql::AnswerError;
use crate::settings::SettingsError;
use crate::state::StateError;
use monasca_influx::InfluxError;

// Each cause is part of its message (the failure file holds messages), so
// it is not also chained as the error's `source`, which would print it twice.

/// The migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// InfluxDB did not answer as needed.
    #[error("{action}: {cause}")]
    Influx {
        /// What was being done.
        action: String,
        /// InfluxDB's error.
        cause: Box<InfluxError>,
    },
    /// InfluxDB answered something unexpected.
    #[error("{action}: {cause}")]
    Answer {
        /// What was being done.
        action: String,
        /// What was wrong.
        cause: AnswerError,
    },
    /// `[influxdb] database_name` does not exist.
    #[error(
        "the source database {database:?} ([influxdb] database_name) does not exist on the InfluxDB server"
    )]
    NoSource {
        /// Its name.
        database: String,
    },
    /// A state file cannot be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The options cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

impl MigrateError {
    /// An InfluxDB error while doing `action`.
    pub fn influx(action: String, source: InfluxError) -> MigrateError {
        MigrateError::Influx {
            action,
            cause: Box::new(source),
        }
    }

    /// An unexpected answer while doing `action`.
    pub fn answer(action: String, source: AnswerError) -> MigrateError {
        MigrateError::Answer {
            action,
            cause: source,
        }
    }
}

/// One tenant's part of a measurement could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The target database could not be created or inspected.
    #[error("tenant {tenant:?}: target database {database:?} is not usable: {reason}")]
    Target {
        /// The tenant.
        tenant: String,
        /// Its database.
        database: String,
        /// Why (the creation's error, shared by every measurement of the tenant).
        reason: String,
    },
    /// A chunk's `SELECT INTO` failed.
    #[error("tenant {tenant:?} into {database:?}, chunk {chunk}: {cause}")]
    Chunk {
        /// The tenant.
        tenant: String,
        /// Its database.
        database: String,
        /// The chunk, e.g. `(now()-3d .. now()-2d]`.
        chunk: String,
        /// InfluxDB's error.
        cause: Box<InfluxError>,
    },
    /// A chunk's `SELECT INTO` answer was unreadable.
    #[error("tenant {tenant:?} into {database:?}, chunk {chunk}: {cause}")]
    ChunkAnswer {
        /// The tenant.
        tenant: String,
        /// Its database.
        database: String,
        /// The chunk, e.g. `(now()-3d .. now()-2d]`.
        chunk: String,
        /// What was wrong.
        cause: AnswerError,
    },
    /// `--verify` found fewer points in the target than in the source.
    #[error("tenant {tenant:?} into {database:?}: verification failed: {detail}")]
    Mismatch {
        /// The tenant.
        tenant: String,
        /// Its database.
        database: String,
        /// The counts.
        detail: String,
    },
    /// `--verify` could not count.
    #[error("tenant {tenant:?} into {database:?}: cannot verify: {reason}")]
    Verify {
        /// The tenant.
        tenant: String,
        /// Its database.
        database: String,
        /// Why.
        reason: String,
    },
}

impl TenantError {
    /// True when InfluxDB cannot be reached or refuses our credentials:
    /// every further statement would fail the same way, so the run stops.
    pub fn stops_the_run(&self) -> bool {
        match self {
            TenantError::Chunk { cause, .. } => matches!(
                **cause,
                InfluxError::Transport { .. } | InfluxError::Auth { .. }
            ),
            _ => false,
        }
    }
}
