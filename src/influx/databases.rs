//! Creating databases on first use, once, shared by every writer thread.
//!
//! A write answered `database not found` makes the writer create the
//! database (with the default retention policy, since it is new) and retry.
//! Several threads can hit the same missing database at once (a new tenant
//! under `db_per_tenant`); the first creates it, the others see that it was
//! created after their write failed and just retry. A creation that failed
//! half way (database made, policy not) stays pending, and is finished
//! before the next write to that database, so no point lands in a database
//! without its policy.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use super::client::{InfluxClient, InfluxError};

/// Databases this process created, and creations still to finish.
#[derive(Debug, Default)]
pub struct DatabaseRegistry {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    created: HashMap<String, Instant>,
    pending: HashSet<String>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent across a panic in another thread (every
        // update is a single insert or remove), so a poisoned lock is usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True when a creation of `database` failed half way and must be
    /// finished (with [`DatabaseRegistry::create`]) before writing to it.
    pub fn is_pending(&self, database: &str) -> bool {
        self.lock().pending.contains(database)
    }

    /// When this process last created `database`.
    pub fn created_at(&self, database: &str) -> Option<Instant> {
        self.lock().created.get(database).copied()
    }

    /// Creates `database` (see [`InfluxClient::create_database`]) unless
    /// another thread did so after `missing_since`, the moment the write that
    /// found it missing was sent. Creations are serialised: they are rare,
    /// and it keeps two threads from racing on the same policy.
    pub fn create(
        &self,
        client: &InfluxClient,
        database: &str,
        retention_hours: u32,
        missing_since: Instant,
    ) -> Result<Creation, InfluxError> {
        let mut state = self.lock();
        if !state.pending.contains(database)
            && state
                .created
                .get(database)
                .is_some_and(|&at| at >= missing_since)
        {
            return Ok(Creation::AlreadyDone);
        }
        state.pending.insert(database.to_string());
        match client.create_database(database, retention_hours) {
            Ok(()) => {
                state.pending.remove(database);
                state.created.insert(database.to_string(), Instant::now());
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
            Err(e) => {
                if !e.is_retriable() {
                    // It will never succeed; do not block later writes on it.
                    state.pending.remove(database);
                }
                Err(e)
            }
        }
    }
}
