//! Group commit: appenders that need durability wait here, and one of them
//! at a time makes everything written so far durable with a single sync
//! that covers every waiter, instead of one fsync per append.

use crate::error::WalError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// Log entries are numbered 1, 2, 3… (their lsn) in the order they were
/// written (the log lock orders them); "durable through n" covers entries
/// 1..=n.
#[derive(Debug)]
struct State {
    /// Appends up to this number are durable.
    durable_through: u64,
    /// A thread is syncing right now.
    syncing: bool,
}

/// Coordinates syncs between concurrent appenders.
#[derive(Debug)]
pub(crate) struct FlushCoordinator {
    state: Mutex<State>,
    changed: Condvar,
    /// Entries up to this lsn have been written to the log.
    inserted_through: AtomicU64,
    syncs: AtomicU64,
}

impl FlushCoordinator {
    /// A coordinator for a log durable through entry `durable`.
    pub(crate) fn new(durable: u64) -> FlushCoordinator {
        FlushCoordinator {
            state: Mutex::new(State {
                durable_through: durable,
                syncing: false,
            }),
            changed: Condvar::new(),
            inserted_through: AtomicU64::new(durable),
            syncs: AtomicU64::new(0),
        }
    }

    /// Records that entry `n` is written. Called in lsn order (under the
    /// log lock), so the value only grows.
    pub(crate) fn inserted(&self, n: u64) {
        self.inserted_through.fetch_max(n, Ordering::Release);
    }

    /// Number of syncs done, to see how many appends shared one.
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Returns once entry `n` (and every one before it) is durable.
    /// `sync` makes all inserts made before it was called durable; it runs on
    /// one waiting thread at a time, and a sync that started after our
    /// insert covers it.
    pub(crate) fn wait_durable(
        &self,
        n: u64,
        sync: impl Fn() -> Result<(), WalError>,
    ) -> Result<(), WalError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if state.durable_through >= n {
                return Ok(());
            }
            if state.syncing {
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state.syncing = true;
            // Everything inserted up to now will be covered by this sync,
            // including appends of threads that are waiting behind us.
            let target = self.inserted_through.load(Ordering::Acquire);
            drop(state);
            let result = sync();
            self.syncs.fetch_add(1, Ordering::Relaxed);
            state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.syncing = false;
            if result.is_ok() {
                state.durable_through = state.durable_through.max(target);
            }
            self.changed.notify_all();
            // On error the other waiters try a sync of their own: the error
            // belongs to every append it covered, not only ours.
            result?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_sync_covers_everything_inserted_before_it() {
        let fc = FlushCoordinator::new(0);
        fc.inserted(10);
        fc.inserted(20);
        fc.wait_durable(10, || Ok(())).unwrap();
        assert_eq!(fc.syncs(), 1);
        fc.wait_durable(20, || panic!("already durable")).unwrap();
        assert_eq!(fc.syncs(), 1);
    }

    #[test]
    fn concurrent_waiters_share_syncs() {
        let fc = Arc::new(FlushCoordinator::new(0));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let fc = fc.clone();
                std::thread::spawn(move || {
                    for i in 0..50u64 {
                        let end = (i * 8 + t + 1) * 10;
                        fc.inserted(end);
                        fc.wait_durable(end, || {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(fc.syncs() < 400, "{} syncs for 400 appends", fc.syncs());
    }

    #[test]
    fn a_failed_sync_is_reported_and_not_counted_durable() {
        let fc = FlushCoordinator::new(0);
        fc.inserted(5);
        let err = fc.wait_durable(5, || {
            Err(WalError::Io {
                path: "x".into(),
                action: "test".into(),
                cause: std::io::Error::other("disk gone"),
            })
        });
        assert!(err.is_err());
        fc.wait_durable(5, || Ok(())).unwrap();
        assert_eq!(fc.syncs(), 2);
    }
}
