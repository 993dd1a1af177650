//! The flush-point buffer of one consumer: lines per database, the next
//! offset of every partition they came from, and the dead letters of rejected
//! messages. It is made durable as one unit (dead letters fsynced, then one
//! atomic WAL append with the offsets) before any offset reaches Kafka.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Lines for one database.
#[derive(Default)]
pub struct DatabaseLines {
    /// Newline-terminated InfluxDB lines.
    pub lines: Vec<u8>,
    /// Number of lines (points) in `lines`.
    pub points: u32,
}

/// What a consumer has read since its last flush point.
#[derive(Default)]
pub struct PendingBatch {
    /// Database name → lines.
    pub databases: HashMap<String, DatabaseLines>,
    /// Partition → next offset to read (last buffered offset + 1).
    pub next_offsets: BTreeMap<i32, i64>,
    /// Rejected messages, written to the dead-letter file at the flush point.
    pub dead_letters: Vec<RejectedMessage>,
    /// Points buffered in `databases`.
    pub points: usize,
    /// When the oldest buffered message was read (None when empty).
    pub oldest: Option<Instant>,
}

impl PendingBatch {
    /// True when there is nothing to make durable.
    pub fn is_empty(&self) -> bool {
        self.next_offsets.is_empty() && self.dead_letters.is_empty() && self.points == 0
    }

    /// Notes that the message at `offset` of `partition` has been handled.
    pub fn advance(&mut self, partition: i32, offset: i64) {
        let next = self.next_offsets.entry(partition).or_insert(offset + 1);
        if *next < offset + 1 {
            *next = offset + 1;
        }
        if self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
    }

    /// The buffer for `database`, created on first use. The common path (a
    /// database seen before) does not allocate.
    pub fn lines_for(&mut self, database: &str) -> &mut DatabaseLines {
        if !self.databases.contains_key(database) {
            self.databases
                .insert(database.to_string(), DatabaseLines::default());
        }
        // Just inserted or already present.
        self.databases
            .get_mut(database)
            .expect("database buffer present")
    }

    /// Takes the buffered content, leaving an empty batch. Called at most a
    /// few times a second, so the fresh map per flush point costs nothing.
    pub fn take(&mut self) -> TakenBatch {
        let records = std::mem::take(&mut self.databases)
            .into_iter()
            .filter(|(_, b)| b.points > 0)
            .map(|(db, b)| (db, b.lines, b.points))
            .collect();
        self.points = 0;
        self.oldest = None;
        TakenBatch {
            records,
            next_offsets: std::mem::take(&mut self.next_offsets),
            dead_letters: std::mem::take(&mut self.dead_letters),
        }
    }
}

/// The content of a flush point, detached from the consumer's buffer.
pub struct TakenBatch {
    /// `(database, lines, points)`.
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
