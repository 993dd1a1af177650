//! Creating databases on first use, once, shared by every writer thread.
//!
//! A write answered `database not found` makes the writer create the
//! database (with the default retention policy, since it is new) and retry.
//! Several threads can hit the same missing database at once (a new tenant
//! under `db_per_tenant`); the first creates it, the others see that it was
//! created after their write failed and just retry, so the creation is
//! logged and reported once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::client::{InfluxClient, InfluxError};

/// The databases this process created, and when.
#[derive(Debug, Default)]
pub struct DatabaseRegistry {
    created: Mutex<HashMap<String, Instant>>,
}

/// How a missing database was dealt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    /// This call created it.
    Created,
    /// Another thread created it after the failed write was sent.
    AlreadyDone,
}

impl DatabaseRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // Every update is a single insert, so the map is consistent even
        // after a panic in another thread: a poisoned lock is still usable.
        self.created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// When this process last created `database`.
    pub fn created_at(&self, database: &str) -> Option<Instant> {
        self.lock().get(database).copied()
    }

    /// Creates `database` (see [`InfluxClient::create_database`]) unless
    /// another thread did so after `missing_since`, the moment the write that
    /// found it missing was sent. Creations are serialised: they are rare,
    /// and it lets the other threads see a creation instead of repeating it.
    pub fn create(
        &self,
        client: &InfluxClient,
        database: &str,
        retention_hours: u32,
        missing_since: Instant,
    ) -> Result<Creation, InfluxError> {
        let mut created = self.lock();
        if created.get(database).is_some_and(|&at| at >= missing_since) {
            return Ok(Creation::AlreadyDone);
        }
        match client.create_database(database, retention_hours) {
            Ok(()) => {
                created.insert(database.to_string(), Instant::now());
                log::info!(
                    "created InfluxDB database {database:?}{}",
                    if retention_hours > 0 {
                        format!(" with default retention policy \"{retention_hours}h\"")
                    } else {
                        String::new()
                    }
                );
                Ok(Creation::Created)
            }
            Err(e) => Err(e),
        }
    }
}
