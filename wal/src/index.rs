//! The in-memory map of stored frames: which record ids each frame holds,
//! which of them are acknowledged, and the live counters derived from it.
//! Rebuilt from sled at open; afterwards every counter read is O(1).

use crate::codec::AckBits;
use crate::record::RecordId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the WAL knows about one stored frame.
#[derive(Debug, Clone)]
pub(crate) struct FrameMeta {
    /// Records in the frame (ids `first..first + count`).
    pub count: u32,
    /// Size of the stored frame value.
    pub bytes: u32,
    /// Records not yet acknowledged.
    pub live: u32,
    /// Acknowledged records; `None` while none is.
    pub acked: Option<AckBits>,
}

impl FrameMeta {
    pub(crate) fn new(count: u32, bytes: u32) -> FrameMeta {
        FrameMeta {
            count,
            bytes,
            live: count,
            acked: None,
        }
    }

    /// Whether record `i` of the frame is still pending.
    pub(crate) fn is_pending(&self, i: u32) -> bool {
        i < self.count && !self.acked.as_ref().is_some_and(|a| a.is_set(i))
    }
}

/// Live counters, readable without any lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub pending_records: AtomicU64,
    pub pending_bytes: AtomicU64,
    pub quarantined: AtomicU64,
}

impl Counters {
    pub(crate) fn add_frame(&self, meta: &FrameMeta) {
        self.pending_records
            .fetch_add(meta.live as u64, Ordering::Relaxed);
        self.pending_bytes
            .fetch_add(meta.bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn remove_frame(&self, meta: &FrameMeta) {
        self.pending_records
            .fetch_sub(meta.live as u64, Ordering::Relaxed);
        self.pending_bytes
            .fetch_sub(meta.bytes as u64, Ordering::Relaxed);
    }
}

/// The effect of acknowledging a set of ids, for the caller to persist.
#[derive(Debug, Default)]
pub(crate) struct AckOutcome {
    /// Frames that still hold pending records: their new bitmaps.
    pub updated: Vec<(u64, u32, AckBits)>,
    /// Frames whose last record was acknowledged: (first id, count).
    pub freed: Vec<(u64, u32)>,
}

/// Frames by first record id.
#[derive(Debug, Default)]
pub(crate) struct FrameIndex {
    frames: BTreeMap<u64, FrameMeta>,
}

impl FrameIndex {
    pub(crate) fn insert(&mut self, first: u64, meta: FrameMeta, counters: &Counters) {
        counters.add_frame(&meta);
        if let Some(old) = self.frames.insert(first, meta) {
            counters.remove_frame(&old);
        }
    }

    /// Every frame, by first id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &FrameMeta)> {
        self.frames.iter().map(|(first, meta)| (*first, meta))
    }

    pub(crate) fn get(&self, first: u64) -> Option<&FrameMeta> {
        self.frames.get(&first)
    }

    pub(crate) fn get_mut(&mut self, first: u64) -> Option<&mut FrameMeta> {
        self.frames.get_mut(&first)
    }

    /// The frame holding record `id`, as (first id, meta).
    pub(crate) fn find(&self, id: u64) -> Option<(u64, &FrameMeta)> {
        let (&first, meta) = self.frames.range(..=id).next_back()?;
        (id < first + meta.count as u64).then_some((first, meta))
    }

    pub(crate) fn remove(&mut self, first: u64, counters: &Counters) -> Option<FrameMeta> {
        let meta = self.frames.remove(&first)?;
        counters.remove_frame(&meta);
        Some(meta)
    }

    /// Marks `ids` acknowledged. Ids that are not pending (acknowledged
    /// before, quarantined, never assigned) are ignored: acknowledging is
    /// idempotent.
    pub(crate) fn ack(&mut self, ids: &[RecordId], counters: &Counters) -> AckOutcome {
        let mut touched: BTreeMap<u64, ()> = BTreeMap::new();
        let mut acked_records = 0u64;
        for id in ids {
            let Some((first, _)) = self.find(id.0) else {
                continue;
            };
            let Some(meta) = self.frames.get_mut(&first) else {
                continue;
            };
            let count = meta.count;
            let bits = meta.acked.get_or_insert_with(|| AckBits::new(count));
            if bits.set((id.0 - first) as u32) {
                meta.live -= 1;
                acked_records += 1;
                touched.insert(first, ());
            }
        }
        counters
            .pending_records
            .fetch_sub(acked_records, Ordering::Relaxed);
        let mut outcome = AckOutcome::default();
        for first in touched.into_keys() {
            let Some(meta) = self.frames.get(&first) else {
                continue;
            };
            if meta.live == 0 {
                let count = meta.count;
                // live is already 0, so only the bytes leave the counters.
                self.remove(first, counters);
                outcome.freed.push((first, count));
            } else if let Some(bits) = &meta.acked {
                outcome.updated.push((first, meta.count, bits.clone()));
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_updates_counters_and_frees_full_frames() {
        let counters = Counters::default();
        let mut index = FrameIndex::default();
        index.insert(0, FrameMeta::new(3, 100), &counters);
        index.insert(3, FrameMeta::new(2, 50), &counters);
        assert_eq!(counters.pending_records.load(Ordering::Relaxed), 5);
        assert_eq!(counters.pending_bytes.load(Ordering::Relaxed), 150);
        assert_eq!(index.find(4).map(|f| f.0), Some(3));
        assert!(index.find(5).is_none());

        let out = index.ack(
            &[
                RecordId(1),
                RecordId(3),
                RecordId(4),
                RecordId(4),
                RecordId(99),
            ],
            &counters,
        );
        assert_eq!(out.freed, vec![(3, 2)]);
        assert_eq!(out.updated.len(), 1);
        assert_eq!(counters.pending_records.load(Ordering::Relaxed), 2);
        assert_eq!(counters.pending_bytes.load(Ordering::Relaxed), 100);
        assert!(index
            .get(0)
            .is_some_and(|m| m.is_pending(0) && !m.is_pending(1)));

        let out = index.ack(&[RecordId(1)], &counters);
        assert!(out.freed.is_empty() && out.updated.is_empty());
        let out = index.ack(&[RecordId(0), RecordId(2)], &counters);
        assert_eq!(out.freed, vec![(0, 3)]);
        assert_eq!(counters.pending_records.load(Ordering::Relaxed), 0);
        assert_eq!(counters.pending_bytes.load(Ordering::Relaxed), 0);
    }
}
