//! The in-memory map of stored frames: which record ids each frame holds,
//! where it is (segment, offset, length, CRC), which of its records are
//! acknowledged, and the live counters derived from it, in total and per
//! segment. Rebuilt from the log at open; afterwards every counter read is
//! O(1).

use crate::codec::AckBits;
use crate::record::RecordId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a frame is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub segment: u64,
    /// Offset of the frame's bytes in the segment.
    pub at: u64,
    /// CRC-32 of the frame.
    pub crc: u32,
}

/// What the WAL knows about one stored frame.
#[derive(Debug, Clone)]
pub(crate) struct FrameMeta {
    /// Records in the frame (ids `first..first + count`).
    pub count: u32,
    /// Size of the stored frame.
    pub bytes: u32,
    /// Records not yet acknowledged.
    pub live: u32,
    /// Acknowledged records; `None` while none is.
    pub acked: Option<AckBits>,
    pub location: Location,
}

impl FrameMeta {
    pub(crate) fn new(count: u32, bytes: u32, location: Location) -> FrameMeta {
        FrameMeta {
            count,
            bytes,
            live: count,
            acked: None,
            location,
        }
    }

    /// Applies an acknowledgement bitmap (acknowledgements only add).
    pub(crate) fn set_acked(&mut self, bits: &AckBits) {
        for i in 0..self.count {
            if bits.is_set(i) {
                self.ack_one(i);
            }
        }
    }

    /// Acknowledges record `i` of the frame; false when it already was.
    pub(crate) fn ack_one(&mut self, i: u32) -> bool {
        let count = self.count;
        let bits = self.acked.get_or_insert_with(|| AckBits::new(count));
        let newly = bits.set(i);
        if newly {
            self.live -= 1;
        }
        newly
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

/// Live frames of one segment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentLive {
    pub frames: u64,
    pub bytes: u64,
}

/// Frames by first record id.
#[derive(Debug, Default)]
pub(crate) struct FrameIndex {
    frames: BTreeMap<u64, FrameMeta>,
    segments: BTreeMap<u64, SegmentLive>,
}

impl FrameIndex {
    pub(crate) fn insert(&mut self, first: u64, meta: FrameMeta, counters: &Counters) {
        counters.add_frame(&meta);
        self.count_in(&meta);
        if let Some(old) = self.frames.insert(first, meta) {
            counters.remove_frame(&old);
            self.count_out(&old);
        }
    }

    fn count_in(&mut self, meta: &FrameMeta) {
        let s = self.segments.entry(meta.location.segment).or_default();
        s.frames += 1;
        s.bytes += meta.bytes as u64;
    }

    fn count_out(&mut self, meta: &FrameMeta) {
        if let Some(s) = self.segments.get_mut(&meta.location.segment) {
            s.frames -= 1;
            s.bytes -= meta.bytes as u64;
            if s.frames == 0 {
                self.segments.remove(&meta.location.segment);
            }
        }
    }

    /// Live frames and their bytes in segment `number`.
    pub(crate) fn segment_live(&self, number: u64) -> SegmentLive {
        self.segments.get(&number).copied().unwrap_or_default()
    }

    /// Frames stored in segment `number`, by first id.
    pub(crate) fn in_segment(&self, number: u64) -> Vec<(u64, FrameMeta)> {
        if self.segment_live(number).frames == 0 {
            return Vec::new();
        }
        self.frames
            .iter()
            .filter(|(_, m)| m.location.segment == number)
            .map(|(first, m)| (*first, m.clone()))
            .collect()
    }

    /// Records frame `first` as stored at `location` now.
    pub(crate) fn relocate(&mut self, first: u64, location: Location) {
        let Some(mut meta) = self.frames.remove(&first) else {
            return;
        };
        self.count_out(&meta);
        meta.location = location;
        self.count_in(&meta);
        self.frames.insert(first, meta);
    }

    /// Every frame, by first id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &FrameMeta)> {
        self.frames.iter().map(|(first, meta)| (*first, meta))
    }

    pub(crate) fn get(&self, first: u64) -> Option<&FrameMeta> {
        self.frames.get(&first)
    }

    /// The frame holding record `id`, else the first frame after it.
    pub(crate) fn at_or_after(&self, id: u64) -> Option<(u64, &FrameMeta)> {
        match self.find(id) {
            Some(found) => Some(found),
            None => self.frames.range(id..).next().map(|(f, m)| (*f, m)),
        }
    }

    /// The frame holding record `id`, as (first id, meta).
    pub(crate) fn find(&self, id: u64) -> Option<(u64, &FrameMeta)> {
        let (&first, meta) = self.frames.range(..=id).next_back()?;
        (id < first + meta.count as u64).then_some((first, meta))
    }

    pub(crate) fn remove(&mut self, first: u64, counters: &Counters) -> Option<FrameMeta> {
        let meta = self.frames.remove(&first)?;
        counters.remove_frame(&meta);
        self.count_out(&meta);
        Some(meta)
    }

    /// Marks `ids` acknowledged and drops frames whose records are all
    /// acknowledged. Ids that are not pending (acknowledged before,
    /// quarantined, never assigned) are ignored: acknowledging is
    /// idempotent. Returns how many records were newly acknowledged.
    pub(crate) fn ack(&mut self, ids: &[RecordId], counters: &Counters) -> u64 {
        let mut touched = Vec::new();
        let mut acked_records = 0u64;
        for id in ids {
            let Some((first, _)) = self.find(id.0) else {
                continue;
            };
            let Some(meta) = self.frames.get_mut(&first) else {
                continue;
            };
            if meta.ack_one((id.0 - first) as u32) {
                acked_records += 1;
                if meta.live == 0 {
                    touched.push(first);
                }
            }
        }
        counters
            .pending_records
            .fetch_sub(acked_records, Ordering::Relaxed);
        for first in touched {
            // live is already 0, so only the bytes leave the counters.
            self.remove(first, counters);
        }
        acked_records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64) -> Location {
        Location {
            segment,
            at: 0,
            crc: 0,
        }
    }

    #[test]
    fn ack_updates_counters_and_frees_full_frames() {
        let counters = Counters::default();
        let mut index = FrameIndex::default();
        index.insert(0, FrameMeta::new(3, 100, at(1)), &counters);
        index.insert(3, FrameMeta::new(2, 50, at(2)), &counters);
        assert_eq!(counters.pending_records.load(Ordering::Relaxed), 5);
        assert_eq!(counters.pending_bytes.load(Ordering::Relaxed), 150);
        assert_eq!(index.find(4).map(|f| f.0), Some(3));
        assert!(index.find(5).is_none());
        assert_eq!(
            index.segment_live(2),
            SegmentLive {
                frames: 1,
                bytes: 50
            }
        );

        let ids = [1, 3, 4, 4, 99].map(RecordId);
        assert_eq!(index.ack(&ids, &counters), 3);
        assert_eq!(index.segment_live(2), SegmentLive::default());
        assert_eq!(counters.pending_records.load(Ordering::Relaxed), 2);
        assert_eq!(counters.pending_bytes.load(Ordering::Relaxed), 100);
        assert!(index
            .get(0)
            .is_some_and(|m| m.is_pending(0) && !m.is_pending(1)));

        assert_eq!(index.ack(&[RecordId(1)], &counters), 0);
        index.relocate(0, at(5));
        assert_eq!(index.segment_live(1), SegmentLive::default());
        assert_eq!(
            index.segment_live(5),
            SegmentLive {
                frames: 1,
                bytes: 100
            }
        );
        assert_eq!(index.in_segment(5).len(), 1);
        assert_eq!(index.ack(&[RecordId(0), RecordId(2)], &counters), 2);
        assert_eq!(counters.pending_records.load(Ordering::Relaxed), 0);
        assert_eq!(counters.pending_bytes.load(Ordering::Relaxed), 0);
        assert_eq!(index.segment_live(5), SegmentLive::default());
    }
}
