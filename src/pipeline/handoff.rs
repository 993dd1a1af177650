//! The hand-over of WAL records from consumers to writers. Records travel in
//! memory while they fit a byte budget; beyond it only their WAL id travels
//! and the writer reads the record back from disk. So an InfluxDB outage
//! grows the WAL on disk, never the process's memory. While InfluxDB is
//! healthy, consumers wait for the writers instead of reading that far ahead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use wal::RecordId;

use crate::stats::TopicKind;

/// Bytes of record payload that may wait in memory for a writer (per
/// sink); the rest waits on disk.
const HANDOFF_MEMORY_BUDGET: u64 = 16 * 1024 * 1024;

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
    /// Signalled when `in_memory_bytes` falls below half the budget.
    room: Condvar,
    room_lock: Mutex<()>,
    /// Consumers in [`HandoffQueue::wait_for_writers`] now.
    waiting: AtomicU64,
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
            room: Condvar::new(),
            room_lock: Mutex::new(()),
            waiting: AtomicU64::new(0),
        }
    }

    /// Whether the records waiting in memory fill half the budget or more.
    /// Reading further ahead of writers that are keeping up buys nothing:
    /// the next records would only go through the disk (written, then read
    /// back and decompressed) where Kafka could have held them for free.
    pub fn ahead_of_writers(&self) -> bool {
        self.in_memory_bytes.load(Ordering::Acquire) >= self.half_budget()
    }

    /// Waits up to `timeout` for the records in memory to fall below half
    /// the budget; returns whether they did.
    pub fn wait_for_writers(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Ok(mut guard) = self.room_lock.lock() else {
            return !self.ahead_of_writers();
        };
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let mut room = true;
        while self.ahead_of_writers() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                room = false;
                break;
            }
            match self.room.wait_timeout(guard, left) {
                Ok((g, _)) => guard = g,
                Err(_) => {
                    room = !self.ahead_of_writers();
                    break;
                }
            }
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        room
    }

    /// Consumers waiting for the writers right now.
    #[cfg(test)]
    fn consumers_waiting(&self) -> u64 {
        self.waiting.load(Ordering::Acquire)
    }

    fn half_budget(&self) -> u64 {
        self.budget_bytes / 2
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
            let len = lines.len() as u64;
            let before = self.in_memory_bytes.fetch_sub(len, Ordering::AcqRel);
            let half = self.half_budget();
            if before >= half && before - len < half {
                // Under the lock, so a consumer between its check and its
                // wait cannot miss the signal.
                let _guard = self.room_lock.lock();
                self.room.notify_all();
            }
        }
        h
    }
}

/// The sinks' hand-off queues: InfluxDB's, and the events sink's when
/// events are consumed. Made once at start-up; consumers, writers and the
/// start-up replay each hold the one of their records.
pub struct SinkQueues {
    /// Metrics and alarm transitions, to InfluxDB.
    pub influx: Arc<HandoffQueue>,
    /// Events, to Elasticsearch (`[kafka_events] enabled = true`).
    pub events: Option<Arc<HandoffQueue>>,
}

impl SinkQueues {
    /// The queues of the sinks: events' only when `events` is true.
    pub fn new(events: bool) -> Self {
        SinkQueues {
            influx: Arc::new(HandoffQueue::new(HANDOFF_MEMORY_BUDGET)),
            events: events.then(|| Arc::new(HandoffQueue::new(HANDOFF_MEMORY_BUDGET))),
        }
    }

    /// The queue of the sink the records of `kind` go to.
    pub fn for_kind(&self, kind: TopicKind) -> &Arc<HandoffQueue> {
        match (kind, &self.events) {
            (TopicKind::Events, Some(events)) => events,
            _ => &self.influx,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn offer(q: &HandoffQueue, id: u64, len: usize) {
        q.offer(RecordId(id), "mon".to_string(), 1, vec![b'x'; len]);
    }

    #[test]
    fn records_past_the_budget_travel_by_id() {
        let q = HandoffQueue::new(100);
        offer(&q, 1, 60);
        offer(&q, 2, 60);
        assert!(matches!(q.try_recv(), Some(Handoff::InMemory { .. })));
        assert!(matches!(q.try_recv(), Some(Handoff::OnDisk(RecordId(2)))));
        assert!(q.try_recv().is_none());
    }

    #[test]
    fn consumers_are_ahead_from_half_the_budget_until_writers_take_it() {
        let q = HandoffQueue::new(100);
        offer(&q, 1, 30);
        assert!(!q.ahead_of_writers());
        offer(&q, 2, 30);
        assert!(q.ahead_of_writers());
        assert!(!q.wait_for_writers(Duration::from_millis(1)));
        assert!(q.try_recv().is_some());
        assert!(!q.ahead_of_writers());
        assert!(q.wait_for_writers(Duration::ZERO));
    }

    #[test]
    fn a_waiting_consumer_wakes_when_a_writer_takes_a_record() {
        let q = Arc::new(HandoffQueue::new(100));
        offer(&q, 1, 80);
        let writer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                // Take the record only once the consumer waits: it counts
                // itself under the lock the signal needs, so from here on
                // the signal cannot come before its wait.
                while q.consumers_waiting() == 0 {
                    std::thread::yield_now();
                }
                q.recv_timeout(Duration::from_secs(10)).is_some()
            })
        };
        // A missed wake-up would wait out the whole minute.
        let timeout = Duration::from_secs(60);
        let started = Instant::now();
        assert!(q.wait_for_writers(timeout));
        assert!(started.elapsed() < timeout / 2, "woken only by the timeout");
        assert!(writer.join().unwrap_or(false));
    }
}
