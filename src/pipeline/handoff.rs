//! The hand-over of WAL records from consumers to writers. Records travel in
//! memory while they fit a byte budget; beyond it only their WAL id travels
//! and the writer reads the record back from disk. So an InfluxDB outage
//! grows the WAL on disk, never the process's memory.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use wal::RecordId;

/// One WAL record on its way to a writer.
pub enum Handoff {
    /// The record itself.
    InMemory {
        /// Its WAL id (acked after InfluxDB stored it).
        id: RecordId,
        /// Target database.
        database: String,
        /// Points in `lines`.
        points: u32,
        /// Newline-terminated lines.
        lines: Vec<u8>,
    },
    /// Only the id: the writer reads the record from the WAL.
    OnDisk(RecordId),
}

/// The queue between consumers (and start-up replay) and writers.
pub struct HandoffQueue {
    tx: Sender<Handoff>,
    rx: Receiver<Handoff>,
    in_memory_bytes: AtomicU64,
    budget_bytes: u64,
}

impl HandoffQueue {
    /// A queue keeping at most `budget_bytes` of record payloads in memory.
    pub fn new(budget_bytes: u64) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        HandoffQueue {
            tx,
            rx,
            in_memory_bytes: AtomicU64::new(0),
            budget_bytes,
        }
    }

    /// Offers a freshly appended record: in memory when the budget allows, by id otherwise.
    pub fn offer(&self, id: RecordId, database: String, points: u32, lines: Vec<u8>) {
        let len = lines.len() as u64;
        let reserved = self
            .in_memory_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur + len <= self.budget_bytes).then_some(cur + len)
            })
            .is_ok();
        let item = if reserved {
            Handoff::InMemory {
                id,
                database,
                points,
                lines,
            }
        } else {
            Handoff::OnDisk(id)
        };
        // Both ends live in `self`, so the channel cannot be disconnected.
        let _ = self.tx.send(item);
    }

    /// Takes the next record, waiting up to `timeout`.
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Handoff> {
        match self.rx.recv_timeout(timeout) {
            Ok(h) => Some(self.released(h)),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Takes the next record if one is waiting.
    pub fn try_recv(&self) -> Option<Handoff> {
        match self.rx.try_recv() {
            Ok(h) => Some(self.released(h)),
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
        }
    }

    fn released(&self, h: Handoff) -> Handoff {
        if let Handoff::InMemory { lines, .. } = &h {
            self.in_memory_bytes
                .fetch_sub(lines.len() as u64, Ordering::AcqRel);
        }
        h
    }
}
