//! Start-up replay: everything the WAL holds from an earlier run (graceful
//! stop with records left, crash, power loss) is queued for the writers
//! before any consumer starts, so it is written first; one line says how
//! much there is and another when the writers have stored all of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context as _;
use wal::RecordId;

use super::handoff::SinkQueues;
use crate::stats::TopicKind;

/// The replayed backlog and how much of it the writers have acknowledged.
#[derive(Default)]
pub struct Replay {
    /// Records queued at start-up.
    records: AtomicU64,
    /// The newest replayed record id + 1 (0: nothing replayed): acks of ids
    /// below it belong to the backlog.
    end_id: AtomicU64,
    /// Backlog records acknowledged so far.
    acked: AtomicU64,
    started: Mutex<Option<Instant>>,
}

impl Replay {
    /// Queues every pending record of `wal` for the writers, on the queue
    /// of its sink; returns how many. Past the hand-off memory budget only
    /// ids travel and writers read the records back from disk when they get
    /// to them.
    pub fn queue_backlog(&self, wal: &wal::Wal, queues: &SinkQueues) -> anyhow::Result<u64> {
        let mut records = 0u64;
        let mut end_id = 0u64;
        let mut kept_events = 0u64;
        for item in wal.pending_from(None) {
            let (id, record) = item.with_context(|| {
                format!(
                    "reading pending records of the WAL at {}",
                    wal.dir().display()
                )
            })?;
            end_id = id.0 + 1;
            let kind = TopicKind::from_record_kind(record.kind);
            if kind == Some(TopicKind::Events) && queues.events.is_none() {
                kept_events += 1;
                continue;
            }
            queues.for_kind(kind.unwrap_or(TopicKind::Metrics)).offer(
                id,
                record.database,
                record.points,
                record.payload,
            );
            records += 1;
        }
        if kept_events > 0 {
            log::warn!(
                "the WAL holds {kept_events} record(s) of events, but [kafka_events] enabled = false: \
                 they stay in the WAL until events are enabled again"
            );
        }
        self.records.store(records, Ordering::Release);
        self.end_id.store(end_id, Ordering::Release);
        if let Ok(mut s) = self.started.lock() {
            *s = Some(Instant::now());
        }
        if records > 0 {
            log::info!(
                "replaying {records} WAL record(s) ({} bytes) left by the previous run in {} before consuming",
                wal.pending_bytes(),
                wal.dir().display()
            );
        } else {
            log::info!("WAL at {} is empty: nothing to replay", wal.dir().display());
        }
        Ok(records)
    }

    /// Records queued at start-up.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Acquire)
    }

    /// Notes that the writers stored `ids`; the ack that completes the
    /// backlog logs the closing line of the replay.
    pub fn acked(&self, ids: &[RecordId]) {
        let end = self.end_id.load(Ordering::Acquire);
        let ours = ids.iter().filter(|id| id.0 < end).count() as u64;
        if ours == 0 {
            return;
        }
        let total = self.records();
        let before = self.acked.fetch_add(ours, Ordering::AcqRel);
        if before < total && before + ours >= total {
            let secs = self
                .started
                .lock()
                .ok()
                .and_then(|s| *s)
                .map(|s| s.elapsed().as_secs_f64())
                .unwrap_or(0.0);
            log::info!("replay finished: {total} record(s) from the previous run written to InfluxDB in {secs:.1}s");
        }
    }
}
