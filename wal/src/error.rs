//! Everything that can go wrong in the WAL, each variant naming what was
//! being done and with what (directory, record ids), so a log line alone is
//! enough to act on.

use std::path::PathBuf;

/// Errors of the WAL.
///
/// An underlying error is part of the message (a `cause` field, not
/// `source()`), so an `anyhow` chain printed with `{:#}` shows it once.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file-system operation on the WAL directory failed.
    #[error("WAL {path}: {action}: {cause}")]
    Io {
        /// File or directory the operation was on.
        path: PathBuf,
        /// What was being done.
        action: String,
        /// The OS error.
        cause: std::io::Error,
    },

    /// The directory exists and holds something other than a WAL.
    #[error("{path} is not a WAL directory ({reason}); refusing to use it — point [wal] path at an empty or missing directory")]
    NotAWal {
        /// The directory that was opened.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },

    /// Another process (or another handle in this one) has the WAL open.
    #[error("WAL {path} is locked by another running process{holder}; only one persister may use a WAL directory")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// ", pid N" when the lock file names its holder.
        holder: String,
    },

    /// The directory was written by an incompatible version.
    #[error("WAL {path}: {reason}")]
    Unsupported {
        /// The marker file.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },

    /// A record could not be encoded for storage.
    #[error("WAL {path}: encoding {what}: {cause}")]
    Encode {
        /// The WAL directory.
        path: PathBuf,
        /// What was being encoded, with record ids.
        what: String,
        /// The bincode error.
        cause: bincode::error::EncodeError,
    },

    /// A record is too large to store.
    #[error("WAL {path}: record {index} of the append (database {database:?}) is {bytes} bytes, above the limit of {limit} bytes")]
    RecordTooLarge {
        /// The WAL directory.
        path: PathBuf,
        /// Position of the record in the append call.
        index: usize,
        /// Its target database.
        database: String,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}
