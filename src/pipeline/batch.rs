//! The flush-point buffer of one consumer: lines per database, the next
//! offset of every partition they came from, and the dead letters of rejected
//! messages. It is made durable as one unit (dead letters fsynced, then one
//! atomic WAL append with the offsets) before any offset reaches Kafka.
//!
//! A database's lines are sealed into a record of their own every
//! `seal_at` points (the InfluxDB batch size), so writers send a record as
//! one request without scanning it for line ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use super::line_buffers::LineBuffers;
use crate::transform::Target;

/// Lines for one database.
#[derive(Default)]
pub struct DatabaseLines {
    /// Newline-terminated InfluxDB lines.
    pub lines: Vec<u8>,
    /// Number of lines (points) in `lines`.
    pub points: u32,
}

/// A database's open buffer.
struct OpenBuffer {
    database: String,
    buffer: DatabaseLines,
    /// Capacity to give the next buffer once this one is sealed: a database
    /// that fills whole records will fill the next one too.
    next_capacity: usize,
}

/// Most bytes preallocated for a database's next record.
const MAX_PREALLOCATED_BYTES: usize = 8 << 20;

/// The capacity to preallocate for a buffer like one that held `len` bytes:
/// a little more, so a slightly fuller period does not regrow it.
fn capacity_for(len: usize) -> usize {
    (len + len / 8).min(MAX_PREALLOCATED_BYTES)
}

/// What a consumer has read since its last flush point.
pub struct PendingBatch {
    /// Open buffers, one per database seen since the last flush point.
    open: Vec<OpenBuffer>,
    /// The shared database's slot in `open`.
    shared_slot: Option<usize>,
    /// Tenant → slot in `open` (`db_per_tenant`).
    tenant_slots: HashMap<String, usize>,
    /// Full records, in the order they filled up.
    sealed: Vec<(String, DatabaseLines)>,
    /// Database → capacity for its first buffer, for the databases that
    /// filled a record in the last flush period.
    capacity_hints: HashMap<String, usize>,
    /// Points per record.
    seal_at: u32,
    /// `(partition, next offset to read)`, in first-seen order.
    next_offsets: Vec<(i32, i64)>,
    /// Where the last partition seen sits in `next_offsets`: messages come
    /// in runs from one partition, so this is nearly always the one.
    last_partition_slot: usize,
    /// Rejected messages, written to the dead-letter file at the flush point.
    pub dead_letters: Vec<RejectedMessage>,
    /// Points buffered (open and sealed).
    pub points: usize,
    /// When the oldest buffered message was read (None when empty).
    pub oldest: Option<Instant>,
    /// Where new record buffers come from.
    buffers: Arc<LineBuffers>,
}

impl PendingBatch {
    /// An empty batch sealing a record every `seal_at` points of a
    /// database, into buffers taken from `buffers`.
    pub fn new(seal_at: usize, buffers: Arc<LineBuffers>) -> Self {
        PendingBatch {
            open: Vec::new(),
            shared_slot: None,
            tenant_slots: HashMap::new(),
            sealed: Vec::new(),
            capacity_hints: HashMap::new(),
            seal_at: u32::try_from(seal_at.max(1)).unwrap_or(u32::MAX),
            next_offsets: Vec::new(),
            last_partition_slot: 0,
            dead_letters: Vec::new(),
            points: 0,
            oldest: None,
            buffers,
        }
    }

    /// True when there is nothing to make durable.
    pub fn is_empty(&self) -> bool {
        self.next_offsets.is_empty() && self.dead_letters.is_empty() && self.points == 0
    }

    /// Whether this is a flush point: `batch_size` points buffered, the
    /// oldest message waited `interval`, or there are only dead letters.
    pub fn flush_due(&self, batch_size: usize, interval: std::time::Duration) -> bool {
        self.points >= batch_size
            || self.oldest.is_some_and(|t| t.elapsed() >= interval)
            || (!self.dead_letters.is_empty() && self.oldest.is_none())
    }

    /// Notes that the message at `offset` of `partition` has been handled.
    pub fn advance(&mut self, partition: i32, offset: i64) {
        let slot = match self.next_offsets.get(self.last_partition_slot) {
            Some((p, _)) if *p == partition => self.last_partition_slot,
            _ => match self.next_offsets.iter().position(|(p, _)| *p == partition) {
                Some(slot) => slot,
                None => {
                    self.next_offsets.push((partition, offset + 1));
                    self.next_offsets.len() - 1
                }
            },
        };
        self.last_partition_slot = slot;
        let next = &mut self.next_offsets[slot].1;
        *next = (*next).max(offset + 1);
        if self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
    }

    /// Appends one line (newline-terminated) for `target`, whose database
    /// name `database` gives, asked only the first time the target is seen
    /// since the last flush point.
    pub fn push_line(
        &mut self,
        target: &Target<'_>,
        line: &[u8],
        database: impl FnOnce() -> String,
    ) {
        let slot = self.slot(target, database);
        self.open[slot].buffer.lines.extend_from_slice(line);
        self.line_added(slot);
    }

    /// The open buffer of the shared database, for encoding a line straight
    /// into it (saving a copy per message when every line goes there);
    /// follow with [`PendingBatch::shared_line_added`] once a whole line was
    /// appended, and leave it as it was otherwise.
    pub fn shared_lines(&mut self, database: impl FnOnce() -> String) -> &mut Vec<u8> {
        let slot = self.slot(&Target::Shared, database);
        &mut self.open[slot].buffer.lines
    }

    /// Counts the line just appended to [`PendingBatch::shared_lines`].
    pub fn shared_line_added(&mut self) {
        if let Some(slot) = self.shared_slot {
            self.line_added(slot);
        }
    }

    /// The slot of `target`'s open buffer, opened if need be.
    fn slot(&mut self, target: &Target<'_>, database: impl FnOnce() -> String) -> usize {
        match target {
            Target::Shared => match self.shared_slot {
                Some(slot) => slot,
                None => {
                    let slot = self.open_buffer(database());
                    self.shared_slot = Some(slot);
                    slot
                }
            },
            Target::Tenant(tenant) => match self.tenant_slots.get(tenant.as_ref()) {
                Some(&slot) => slot,
                None => {
                    let slot = self.open_buffer(database());
                    self.tenant_slots.insert(tenant.to_string(), slot);
                    slot
                }
            },
        }
    }

    /// Counts a line appended to the buffer in `slot`, sealing the buffer
    /// into a record when it is full.
    fn line_added(&mut self, slot: usize) {
        let open = &mut self.open[slot];
        open.buffer.points += 1;
        self.points += 1;
        if open.buffer.points >= self.seal_at {
            let full = std::mem::replace(
                &mut open.buffer,
                DatabaseLines {
                    lines: self.buffers.take(open.next_capacity),
                    points: 0,
                },
            );
            open.next_capacity = capacity_for(full.lines.len());
            self.sealed.push((open.database.clone(), full));
        }
    }

    fn open_buffer(&mut self, database: String) -> usize {
        let capacity = self.capacity_hints.get(&database).copied().unwrap_or(0);
        self.open.push(OpenBuffer {
            database,
            buffer: DatabaseLines {
                lines: self.buffers.take(capacity),
                points: 0,
            },
            next_capacity: capacity,
        });
        self.open.len() - 1
    }

    /// Bytes of lines and rejected messages buffered: an upper bound of what
    /// the flush point writes (the WAL stores lines compressed).
    pub fn bytes(&self) -> u64 {
        let sealed: usize = self.sealed.iter().map(|(_, b)| b.lines.len()).sum();
        let open: usize = self.open.iter().map(|o| o.buffer.lines.len()).sum();
        let rejected: usize = self.dead_letters.iter().map(|d| d.payload.len()).sum();
        (sealed + open + rejected) as u64
    }

    /// Takes the buffered content, leaving an empty batch.
    pub fn take(&mut self) -> TakenBatch {
        let mut records: Vec<(String, Vec<u8>, u32)> = std::mem::take(&mut self.sealed)
            .into_iter()
            .map(|(db, b)| (db, b.lines, b.points))
            .collect();
        self.capacity_hints.clear();
        for open in std::mem::take(&mut self.open) {
            // A partial buffer predicts the next flush period's as well as a
            // full one does: sizing for it spares the regrowth copies.
            let hint = open
                .next_capacity
                .max(capacity_for(open.buffer.lines.len()));
            if hint > 0 {
                self.capacity_hints.insert(open.database.clone(), hint);
            }
            if open.buffer.points > 0 {
                records.push((open.database, open.buffer.lines, open.buffer.points));
            }
        }
        self.shared_slot = None;
        self.tenant_slots.clear();
        self.points = 0;
        self.oldest = None;
        self.last_partition_slot = 0;
        TakenBatch {
            records,
            next_offsets: std::mem::take(&mut self.next_offsets).into_iter().collect(),
            dead_letters: std::mem::take(&mut self.dead_letters),
        }
    }
}

/// The content of a flush point, detached from the consumer's buffer.
pub struct TakenBatch {
    /// `(database, lines, points)`: sealed records first, in the order they
    /// filled up, then each database's partial record.
    pub records: Vec<(String, Vec<u8>, u32)>,
    /// Partition → next offset.
    pub next_offsets: BTreeMap<i32, i64>,
    /// Rejected messages.
    pub dead_letters: Vec<RejectedMessage>,
}

/// A Kafka message that could not become a line, kept until the flush point.
pub struct RejectedMessage {
    /// Partition it came from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Bounded rejection kind (metrics label).
    pub kind: &'static str,
    /// Why, in words.
    pub reason: String,
    /// The raw message.
    pub payload: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn tenant(t: &str) -> Target<'_> {
        Target::Tenant(Cow::Borrowed(t))
    }

    #[test]
    fn records_are_sealed_every_seal_at_points_per_database() {
        let mut b = PendingBatch::new(2, Default::default());
        for (i, t) in ["a", "b", "a", "a", "b", "a", "c"].iter().enumerate() {
            b.push_line(&tenant(t), format!("{t}{i}\n").as_bytes(), || {
                format!("mon_{t}")
            });
            b.advance(i as i32 % 2, i as i64);
        }
        assert_eq!(b.points, 7);
        let taken = b.take();
        let records: Vec<(&str, &[u8], u32)> = taken
            .records
            .iter()
            .map(|(d, l, p)| (d.as_str(), l.as_slice(), *p))
            .collect();
        assert_eq!(
            records,
            vec![
                ("mon_a", &b"a0\na2\n"[..], 2),
                ("mon_b", &b"b1\nb4\n"[..], 2),
                ("mon_a", &b"a3\na5\n"[..], 2),
                ("mon_c", &b"c6\n"[..], 1),
            ]
        );
        assert_eq!(taken.next_offsets, BTreeMap::from([(0, 7), (1, 6)]));
        assert!(b.is_empty());
        assert!(b.oldest.is_none());
    }

    #[test]
    fn the_shared_database_is_named_once_and_offsets_only_move_forward() {
        let mut b = PendingBatch::new(100, Default::default());
        let mut named = 0;
        for offset in [5, 3, 9] {
            b.push_line(&Target::Shared, b"x\n", || {
                named += 1;
                "mon".to_string()
            });
            b.advance(4, offset);
        }
        b.advance(7, 1);
        let taken = b.take();
        assert_eq!(named, 1);
        assert_eq!(
            taken.records,
            vec![("mon".to_string(), b"x\nx\nx\n".to_vec(), 3)]
        );
        assert_eq!(taken.next_offsets, BTreeMap::from([(4, 10), (7, 2)]));
        // A fresh flush period names the database again.
        b.push_line(&Target::Shared, b"y\n", || "mon".to_string());
        assert_eq!(b.take().records.len(), 1);
    }

    #[test]
    fn a_database_starts_each_flush_period_sized_by_its_last_one() {
        let mut b = PendingBatch::new(1000, Default::default());
        for _ in 0..100 {
            b.push_line(&Target::Shared, b"0123456789\n", || "mon".to_string());
        }
        let first = b.take().records;
        assert_eq!(first[0].1.len(), 1100);
        let next = b.shared_lines(|| "mon".to_string());
        assert!(next.is_empty());
        assert!(next.capacity() >= 1100, "capacity {}", next.capacity());
    }

    #[test]
    fn lines_encoded_in_place_are_counted_and_sealed_like_pushed_ones() {
        let mut b = PendingBatch::new(2, Default::default());
        for line in ["p0\n", "p1\n", "p2\n"] {
            b.shared_lines(|| "mon".to_string())
                .extend_from_slice(line.as_bytes());
            b.shared_line_added();
        }
        b.push_line(&Target::Shared, b"q3\n", || unreachable!("named once"));
        assert_eq!(b.points, 4);
        assert_eq!(
            b.take().records,
            vec![
                ("mon".to_string(), b"p0\np1\n".to_vec(), 2),
                ("mon".to_string(), b"p2\nq3\n".to_vec(), 2),
            ]
        );
    }
}
