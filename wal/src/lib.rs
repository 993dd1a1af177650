//! A durable, crash-safe local write-ahead log on sled: opaque records plus
//! named offsets, appended atomically, replayed in order, removed once
//! acknowledged. It knows nothing of Kafka or InfluxDB.
//!
//! Guarantees (see `docs/wal.md` for the on-disk layout and sizing):
//! - an append of records and offsets is atomic: after a crash all of it or
//!   none of it is there, and offsets are never ahead of their records;
//! - with `fsync`, an append is durable when it returns (sled flush plus
//!   fdatasync), and concurrent appends share syncs;
//! - pending records replay in append order; acknowledged records never
//!   come back, also after a restart;
//! - a record that fails to decode is moved to a quarantine, counted and
//!   logged, and the WAL still opens;
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
mod error;
mod flush;
mod index;
mod record;
mod store;
mod wal;

pub use error::WalError;
pub use record::{Record, RecordId, RecordIds, RecordRef};
pub use wal::{Pending, Wal, WalOptions};
