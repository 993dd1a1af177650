//! A durable, crash-safe local write-ahead log: opaque records plus named
//! offsets, appended atomically, replayed in order, removed once
//! acknowledged. It knows nothing of Kafka or InfluxDB. Underneath is an
//! append-only log of checksummed entries in segment files.
//!
//! Guarantees (see `docs/wal.md` for the on-disk layout, what failures it
//! survives and how that is tested):
//! - an append of records and offsets is atomic: after a crash or power
//!   loss all of it or none of it is there, and offsets are never ahead of
//!   their records;
//! - with `fsync`, an append is durable when it returns (fdatasync of the
//!   log; new files and deletions are followed by a directory fsync), and
//!   concurrent appends share syncs;
//! - pending records replay in append order; acknowledged records never
//!   come back, also after a restart;
//! - damage is never silent: records it had reported durable and finds
//!   missing or unreadable (at open, or when reading them) are counted
//!   (`quarantined()`), logged at ERROR, their bytes moved to a quarantine,
//!   and the WAL keeps going with every intact record;
//! - one process at a time: the directory is locked with flock(2).
//!
//! ```no_run
//! use wal::{RecordRef, Wal, WalOptions};
//! let wal = Wal::open(std::path::Path::new("/var/lib/persister/wal"), WalOptions::default())?;
//! let line = b"cpu,host=a value=1 1554725987408";
//! let ids = wal.append(
//!     &[RecordRef { database: "mon", kind: 0, points: 1, payload: line }],
//!     &[("metrics/3", 1200)],
//! )?;
//! for item in wal.pending_from(None) {
//!     let (id, record) = item?;
//!     // ... write record.payload to record.database, then:
//!     wal.ack(&[id])?;
//! }
//! # let _ = ids;
//! # Ok::<(), wal::WalError>(())
//! ```

mod codec;
mod dir;
mod entry;
mod error;
mod flush;
mod index;
mod mark;
mod record;
mod recovery;
mod segment;
mod wal;

pub use error::WalError;
pub use record::{Record, RecordId, RecordIds, RecordRef};
pub use wal::{Pending, Wal, WalOptions};
