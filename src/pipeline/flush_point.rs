//! The flush point of one consumer: what it read since the last one made
//! durable as one unit — dead letters fsynced, then lines and offsets in one
//! WAL append — and only then the offsets committed to the group. It knows
//! nothing of librdkafka: the consumer adapts to [`OffsetCommitter`] (commit
//! these offsets, read the positions), and [`DurableStore`] is the dead
//! letters, the WAL and the writers' hand-off.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LockResult, Mutex, MutexGuard};
use std::time::Instant;

use super::batch::{PendingBatch, RejectedMessage};
use super::control::Control;
use super::disk_space::DiskSpace;
use super::handoff::HandoffQueue;
use crate::dead_letter::{Content, DeadLetter, DeadLetterError, DeadLetterStore, KafkaSource};
use crate::stats::{Stats, TopicKind};

/// The WAL offset name of a partition: `topic/partition`.
pub fn offset_name(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// How a commit is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// Wait for the group coordinator's answer.
    Sync,
    /// Send it; the answer comes later (a failure through
    /// [`FlushPoint::async_commit_failed`]).
    Async,
}

/// The consumer group side of a flush point.
pub trait OffsetCommitter {
    /// Why a commit failed.
    type Error: std::fmt::Display;

    /// Commits `offsets` (partition, next offset to read) of `topic`.
    fn commit_offsets(
        &self,
        topic: &str,
        offsets: &[(i32, i64)],
        mode: CommitMode,
    ) -> Result<(), Self::Error>;

    /// The consumer's position (next offset it hands over) in each assigned
    /// partition of `topic` that has one; `None` when it cannot be read.
    fn positions(&self, topic: &str) -> Option<Vec<(i32, i64)>>;
}

/// Where a flush point makes a batch durable and hands it on.
pub trait DurableStore {
    /// Whether the disks have room for `bytes` more.
    fn has_room(&self, bytes: u64) -> bool;
    /// Appends a dead letter (durable after [`DurableStore::sync_dead_letters`]).
    fn record_dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), DeadLetterError>;
    /// Makes the dead letters recorded so far durable.
    fn sync_dead_letters(&self) -> Result<(), DeadLetterError>;
    /// The dead-letter file, for error messages.
    fn dead_letter_path(&self) -> &Path;
    /// Stores `records` and `offsets` in one durable, atomic WAL append.
    fn append(
        &self,
        records: &[wal::RecordRef<'_>],
        offsets: &[(&str, i64)],
    ) -> Result<wal::RecordIds, wal::WalError>;
    /// Hands a durable record to the writers.
    fn hand_off(&self, id: wal::RecordId, database: String, points: u32, lines: Vec<u8>);
    /// Whether the process met a fatal error (a batch may have been taken
    /// and not made durable).
    fn fatal_error_occurred(&self) -> bool;
}

/// A flush point that could not make its batch durable: the batch is gone
/// from the buffer and nothing was committed; the process must stop.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// Writing or syncing the dead letters failed: nothing was appended.
    #[error("writing {count} dead letter(s) of {topic} to {}: {cause}", .path.display())]
    DeadLetters {
        /// Dead letters in the batch.
        count: usize,
        /// The consumer's topic.
        topic: String,
        /// The dead-letter file.
        path: std::path::PathBuf,
        /// Why.
        cause: DeadLetterError,
    },
    /// The WAL append failed.
    #[error("appending {records} record(s) from {topic} to the WAL: {cause}")]
    Append {
        /// Records in the batch.
        records: usize,
        /// The consumer's topic.
        topic: String,
        /// Why.
        cause: wal::WalError,
    },
}

/// One consumer's buffer and the offsets it made durable.
pub struct FlushPoint<S> {
    topic: String,
    kind: TopicKind,
    store: S,
    stats: Arc<Stats>,
    batch: Mutex<PendingBatch>,
    /// Partition → next offset durable in the WAL (or dead letters): what Kafka should have committed.
    durable: Mutex<BTreeMap<i32, i64>>,
    /// An offset commit failed; commit `durable` again soon.
    commit_failed: AtomicBool,
    /// A batch was taken and not made durable.
    failed: AtomicBool,
}

impl<S: DurableStore> FlushPoint<S> {
    /// The flush point of a consumer of `topic` (records of `kind`)
    /// buffering into `batch`.
    pub fn new(
        topic: &str,
        kind: TopicKind,
        store: S,
        stats: Arc<Stats>,
        batch: PendingBatch,
    ) -> Self {
        FlushPoint {
            topic: topic.to_string(),
            kind,
            store,
            stats,
            batch: Mutex::new(batch),
            durable: Mutex::new(BTreeMap::new()),
            commit_failed: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        }
    }

    /// The buffer since the last flush point, for the consumer to fill.
    pub fn batch(&self) -> LockResult<MutexGuard<'_, PendingBatch>> {
        self.batch.lock()
    }

    /// The flush point: dead letters durable, lines + offsets durable in one
    /// WAL append, records handed to writers, then offsets committed.
    /// `commit` None skips the commit (assignment lost, or shutting down).
    /// On a full disk the batch stays (and nothing is committed) for the
    /// next try; an error means the batch is lost and nothing was committed.
    pub fn flush(
        &self,
        kafka: &impl OffsetCommitter,
        commit: Option<CommitMode>,
    ) -> Result<(), FlushError> {
        // The guard must be gone before the early return: advancing past
        // unread records locks the buffer again.
        let taken = match self.batch.lock() {
            // On a full disk the batch waits (the consumer pauses its
            // partitions meanwhile) and the flush is tried again.
            Ok(b) if !b.is_empty() && !self.store.has_room(b.bytes()) => return Ok(()),
            Ok(mut b) if !b.is_empty() => Some(b.take()),
            _ => None,
        };
        let Some(taken) = taken else {
            if let Some(mode) = commit {
                self.advance_past_unread_records(kafka);
                self.commit_durable(kafka, mode);
            }
            return Ok(());
        };
        if !taken.dead_letters.is_empty() {
            if let Err(cause) = self.write_dead_letters(&taken.dead_letters) {
                self.failed.store(true, Ordering::Relaxed);
                return Err(FlushError::DeadLetters {
                    count: taken.dead_letters.len(),
                    topic: self.topic.clone(),
                    path: self.store.dead_letter_path().to_path_buf(),
                    cause,
                });
            }
        }
        let names: Vec<(String, i64)> = taken
            .next_offsets
            .iter()
            .map(|(p, o)| (offset_name(&self.topic, *p), *o))
            .collect();
        let offsets: Vec<(&str, i64)> = names.iter().map(|(n, o)| (n.as_str(), *o)).collect();
        let records: Vec<wal::RecordRef<'_>> = taken
            .records
            .iter()
            .map(|(db, lines, points)| wal::RecordRef {
                database: db,
                kind: self.kind as u8,
                points: *points,
                payload: lines,
            })
            .collect();
        let started = Instant::now();
        let ids = match self.store.append(&records, &offsets) {
            Ok(ids) => ids,
            Err(cause) => {
                self.failed.store(true, Ordering::Relaxed);
                return Err(FlushError::Append {
                    records: records.len(),
                    topic: self.topic.clone(),
                    cause,
                });
            }
        };
        let stats = &self.stats;
        stats.wal_append_latency.observe_since(started);
        stats.wal_appends.fetch_add(1, Ordering::Relaxed);
        let points: u64 = taken.records.iter().map(|r| r.2 as u64).sum();
        stats
            .wal_points_appended
            .fetch_add(points, Ordering::Relaxed);
        drop(records);
        for (id, (db, lines, points)) in ids.iter().zip(taken.records) {
            self.store.hand_off(id, db, points, lines);
        }
        if let Ok(mut durable) = self.durable.lock() {
            durable.extend(taken.next_offsets.iter().map(|(p, o)| (*p, *o)));
        }
        if let Some(mode) = commit {
            self.advance_past_unread_records(kafka);
            self.commit_durable(kafka, mode);
        }
        Ok(())
    }

    /// Partitions are being revoked: the flush point, committed
    /// synchronously unless the assignment was `lost` (then not at all),
    /// after which the revoked partitions' durable offsets are forgotten
    /// (also when the flush failed or waits for room), so later commits
    /// leave them to their next owner.
    pub fn revoke(
        &self,
        kafka: &impl OffsetCommitter,
        partitions: &[i32],
        lost: bool,
    ) -> Result<(), FlushError> {
        let flushed = self.flush(kafka, if lost { None } else { Some(CommitMode::Sync) });
        if let Ok(mut durable) = self.durable.lock() {
            for p in partitions {
                durable.remove(p);
            }
        }
        flushed
    }

    /// `partition` resumes at `offset`, durable in the WAL and ahead of the
    /// group's committed offset: commit it soon, so that another member
    /// taking the partition later does not read it again.
    pub fn repair_commit(&self, partition: i32, offset: i64) {
        if let Ok(mut durable) = self.durable.lock() {
            durable.insert(partition, offset);
        }
        self.commit_failed.store(true, Ordering::Relaxed);
    }

    /// An asynchronous commit failed: harmless for correctness (the WAL
    /// holds the offsets and wins on reassignment); counted, and the durable
    /// offsets are committed again by [`FlushPoint::recommit`].
    pub fn async_commit_failed(&self) {
        self.commit_failed.store(true, Ordering::Relaxed);
        self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Between flush points: commits the durable offsets again if a commit
    /// failed since the last time, or if they moved past unread records.
    pub fn recommit(&self, kafka: &impl OffsetCommitter) {
        let moved = self.advance_past_unread_records(kafka);
        if self.commit_failed.swap(false, Ordering::Relaxed) || moved {
            self.commit_durable(kafka, CommitMode::Async);
        }
    }

    /// Raises each assigned partition's durable offset to the consumer's
    /// position when that is further on and nothing read is waiting in the
    /// buffer. The offsets between hold records librdkafka consumes without
    /// handing them over: transaction markers and aborted messages (the
    /// default `isolation.level = read_committed`). Without this the group's
    /// offsets would stop short of a partition that ends with a marker, and
    /// its lag never reach zero. Only while nothing fatal happened: a batch
    /// whose append failed is gone from the buffer without being durable.
    /// Returns whether an offset moved.
    fn advance_past_unread_records(&self, kafka: &impl OffsetCommitter) -> bool {
        // After a fatal error a batch may have been taken and not made
        // durable (a failed append): the position proves nothing then.
        if self.failed.load(Ordering::Relaxed) || self.store.fatal_error_occurred() {
            return false;
        }
        if !self.batch.lock().is_ok_and(|b| b.is_empty()) {
            return false;
        }
        let Some(positions) = kafka.positions(&self.topic) else {
            return false;
        };
        let Ok(mut durable) = self.durable.lock() else {
            return false;
        };
        let mut moved = false;
        for (partition, position) in positions {
            let slot = durable.entry(partition).or_insert(-1);
            if position > *slot {
                *slot = position;
                moved = true;
            }
        }
        moved
    }

    /// Commits every offset that is durable locally. Cheap (one entry per
    /// partition), and it repairs any earlier commit that failed.
    pub fn commit_durable(&self, kafka: &impl OffsetCommitter, mode: CommitMode) {
        let offsets: Vec<(i32, i64)> = match self.durable.lock() {
            Ok(durable) => durable.iter().map(|(p, o)| (*p, *o)).collect(),
            Err(_) => Vec::new(),
        };
        if offsets.is_empty() {
            return;
        }
        if let Err(e) = kafka.commit_offsets(&self.topic, &offsets, mode) {
            self.commit_failed.store(true, Ordering::Relaxed);
            self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
            let mut list: Vec<String> = offsets.iter().map(|(p, o)| format!("{p}@{o}")).collect();
            list.sort();
            log::debug!(
                "committing offsets of {} ({}): {e}",
                self.topic,
                list.join(",")
            );
        }
    }

    /// Appends the rejected messages to the dead-letter file and fsyncs it.
    fn write_dead_letters(&self, rejected: &[RejectedMessage]) -> Result<(), DeadLetterError> {
        for r in rejected {
            self.store.record_dead_letter(&DeadLetter {
                kind: r.kind,
                reason: &r.reason,
                source: Some(KafkaSource {
                    topic: &self.topic,
                    partition: r.partition,
                    offset: r.offset,
                }),
                database: None,
                content: Content::Message(&r.payload),
            })?;
            self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
        }
        self.store.sync_dead_letters()
    }
}

/// The pipeline's dead letters, WAL and hand-off queue of a consumer's
/// records (by their kind): what the flush point of a consumer holds of
/// the pipeline.
#[derive(Clone)]
pub struct PipelineStore {
    /// Room on the disks of the WAL and the dead letters.
    pub disk_space: Arc<DiskSpace>,
    /// Rejected messages.
    pub dead_letters: Arc<DeadLetterStore>,
    /// The durable log.
    pub wal: Arc<wal::Wal>,
    /// The hand-off queue of the sink of the consumer's records.
    pub handoff: Arc<HandoffQueue>,
    /// Whether a fatal error stopped the run.
    pub control: Arc<Control>,
}

impl DurableStore for PipelineStore {
    fn has_room(&self, bytes: u64) -> bool {
        self.disk_space.has_room(bytes)
    }

    fn record_dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), DeadLetterError> {
        self.dead_letters.record(letter).map(drop)
    }

    fn sync_dead_letters(&self) -> Result<(), DeadLetterError> {
        self.dead_letters.sync()
    }

    fn dead_letter_path(&self) -> &Path {
        self.dead_letters.path()
    }

    fn append(
        &self,
        records: &[wal::RecordRef<'_>],
        offsets: &[(&str, i64)],
    ) -> Result<wal::RecordIds, wal::WalError> {
        self.wal.append(records, offsets)
    }

    fn hand_off(&self, id: wal::RecordId, database: String, points: u32, lines: Vec<u8>) {
        self.handoff.offer(id, database, points, lines);
    }

    fn fatal_error_occurred(&self) -> bool {
        self.control.fatal_error().is_some()
    }
}

#[cfg(test)]
mod tests {
    //! The delivery invariant attacked with a real WAL and a real
    //! dead-letter file on a temporary directory, failures injected in
    //! front of them, and a consumer group that checks, at each commit, what
    //! the WAL and the dead-letter file hold at that moment.

    use super::*;
    use crate::dead_letter::{DeadLetterConfig, DeadLetterStore};
    use crate::transform::Target;

    const TOPIC: &str = "metrics";

    /// What happened, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Event {
        DeadLettersSynced,
        Appended(Vec<(String, i64)>),
        HandedOff(u64),
        Committed(Vec<(i32, i64)>, CommitMode),
    }

    /// The real WAL and dead-letter file, with failures on demand.
    struct TestStore {
        wal: wal::Wal,
        dead_letters: DeadLetterStore,
        room: AtomicBool,
        fail_dead_letters: AtomicBool,
        fail_append: AtomicBool,
        fatal: AtomicBool,
        /// The messages (partition, offset) dead-lettered, buffered or on disk.
        recorded: Mutex<Vec<(i32, i64)>>,
        events: Mutex<Vec<Event>>,
        /// The dead letters in the file on disk when each append began.
        dead_letters_at_append: Mutex<Vec<Vec<(i32, i64)>>>,
        _dir: tempfile::TempDir,
    }

    impl TestStore {
        fn new() -> Arc<TestStore> {
            let dir = tempfile::tempdir().expect("temporary directory");
            let wal = wal::Wal::open(&dir.path().join("wal"), wal::WalOptions::default())
                .expect("open the WAL");
            let dead_letters = DeadLetterStore::open(DeadLetterConfig {
                path: dir.path().join("dead-letters.jsonl"),
                max_bytes: 0,
                max_files: 1,
                keep_rejected_lines: true,
            })
            .expect("open the dead-letter file");
            Arc::new(TestStore {
                wal,
                dead_letters,
                room: AtomicBool::new(true),
                fail_dead_letters: AtomicBool::new(false),
                fail_append: AtomicBool::new(false),
                fatal: AtomicBool::new(false),
                recorded: Default::default(),
                events: Mutex::new(Vec::new()),
                dead_letters_at_append: Mutex::new(Vec::new()),
                _dir: dir,
            })
        }

        fn event(&self, event: Event) {
            self.events.lock().expect("events").push(event);
        }

        fn events(&self) -> Vec<Event> {
            self.events.lock().expect("events").clone()
        }

        /// The WAL's stored next offset of `partition`.
        fn wal_offset(&self, partition: i32) -> Option<i64> {
            self.wal
                .offset(&offset_name(TOPIC, partition))
                .expect("read a WAL offset")
        }

        /// The messages (partition, offset) whose dead letters are in the
        /// file on disk (not in a buffer).
        fn dead_letters_on_disk(&self) -> Vec<(i32, i64)> {
            std::fs::read_to_string(self.dead_letters.path())
                .expect("read the dead-letter file")
                .lines()
                .map(|line| {
                    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                    let field = |name: &str| v[name].as_i64().expect("partition and offset");
                    (field("partition") as i32, field("offset"))
                })
                .collect()
        }

        fn io_error() -> std::io::Error {
            std::io::Error::other("injected failure")
        }
    }

    impl DurableStore for Arc<TestStore> {
        fn has_room(&self, _bytes: u64) -> bool {
            self.room.load(Ordering::Relaxed)
        }

        fn record_dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), DeadLetterError> {
            if let Some(source) = letter.source {
                self.recorded
                    .lock()
                    .expect("recorded")
                    .push((source.partition, source.offset));
            }
            self.dead_letters.record(letter).map(drop)
        }

        fn sync_dead_letters(&self) -> Result<(), DeadLetterError> {
            if self.fail_dead_letters.load(Ordering::Relaxed) {
                return Err(DeadLetterError::Io {
                    action: "syncing",
                    path: self.dead_letters.path().to_path_buf(),
                    cause: TestStore::io_error(),
                });
            }
            self.dead_letters.sync()?;
            self.event(Event::DeadLettersSynced);
            Ok(())
        }

        fn dead_letter_path(&self) -> &Path {
            self.dead_letters.path()
        }

        fn append(
            &self,
            records: &[wal::RecordRef<'_>],
            offsets: &[(&str, i64)],
        ) -> Result<wal::RecordIds, wal::WalError> {
            self.dead_letters_at_append
                .lock()
                .expect("observations")
                .push(self.dead_letters_on_disk());
            if self.fail_append.load(Ordering::Relaxed) {
                return Err(wal::WalError::Io {
                    path: "wal".into(),
                    action: "writing an entry".into(),
                    cause: TestStore::io_error(),
                });
            }
            let ids = self.wal.append(records, offsets)?;
            self.event(Event::Appended(
                offsets.iter().map(|(n, o)| (n.to_string(), *o)).collect(),
            ));
            Ok(ids)
        }

        fn hand_off(&self, id: wal::RecordId, _database: String, _points: u32, _lines: Vec<u8>) {
            self.event(Event::HandedOff(id.get()));
        }

        fn fatal_error_occurred(&self) -> bool {
            self.fatal.load(Ordering::Relaxed)
        }
    }

    /// What the WAL and the dead-letter file held when a commit was made.
    #[derive(Debug)]
    struct Seen {
        offsets: Vec<(i32, i64)>,
        wal_offsets: Vec<Option<i64>>,
        dead_letters_recorded: Vec<(i32, i64)>,
        dead_letters_on_disk: Vec<(i32, i64)>,
    }

    /// The consumer group: records commits (failing them on demand) and
    /// what was durable at that moment.
    struct TestGroup {
        store: Arc<TestStore>,
        fail: AtomicBool,
        positions: Mutex<Option<Vec<(i32, i64)>>>,
        seen: Mutex<Vec<Seen>>,
    }

    impl TestGroup {
        fn new(store: &Arc<TestStore>) -> TestGroup {
            TestGroup {
                store: store.clone(),
                fail: AtomicBool::new(false),
                positions: Mutex::new(None),
                seen: Mutex::new(Vec::new()),
            }
        }

        fn set_positions(&self, positions: &[(i32, i64)]) {
            *self.positions.lock().expect("positions") = Some(positions.to_vec());
        }

        /// The offsets of each successful commit.
        fn commits(&self) -> Vec<(Vec<(i32, i64)>, CommitMode)> {
            self.store
                .events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::Committed(offsets, mode) => Some((offsets, mode)),
                    _ => None,
                })
                .collect()
        }

        /// Asserts that every commit so far, failed ones included, named only
        /// offsets the WAL held at that moment, with every dead letter
        /// recorded so far on disk.
        fn assert_every_commit_was_durable(&self) {
            let seen = self.seen.lock().expect("seen");
            assert!(!seen.is_empty(), "nothing was committed");
            for s in seen.iter() {
                for ((partition, offset), stored) in s.offsets.iter().zip(&s.wal_offsets) {
                    assert!(
                        stored.is_some_and(|stored| stored >= *offset),
                        "committed {partition}@{offset} while the WAL held {stored:?}: {s:?}"
                    );
                }
                for letter in &s.dead_letters_recorded {
                    let covered = s
                        .offsets
                        .iter()
                        .any(|(p, o)| *p == letter.0 && *o > letter.1);
                    assert!(
                        !covered || s.dead_letters_on_disk.contains(letter),
                        "committed past the dead letter of {}@{} before it was on disk: {s:?}",
                        letter.0,
                        letter.1
                    );
                }
            }
        }
    }

    impl OffsetCommitter for TestGroup {
        type Error = String;

        fn commit_offsets(
            &self,
            topic: &str,
            offsets: &[(i32, i64)],
            mode: CommitMode,
        ) -> Result<(), String> {
            assert_eq!(topic, TOPIC);
            self.seen.lock().expect("seen").push(Seen {
                offsets: offsets.to_vec(),
                wal_offsets: offsets
                    .iter()
                    .map(|(p, _)| self.store.wal_offset(*p))
                    .collect(),
                dead_letters_recorded: self.store.recorded.lock().expect("recorded").clone(),
                dead_letters_on_disk: self.store.dead_letters_on_disk(),
            });
            if self.fail.load(Ordering::Relaxed) {
                return Err("injected commit failure".to_string());
            }
            self.store.event(Event::Committed(offsets.to_vec(), mode));
            Ok(())
        }

        fn positions(&self, topic: &str) -> Option<Vec<(i32, i64)>> {
            assert_eq!(topic, TOPIC);
            self.positions.lock().expect("positions").clone()
        }
    }

    type TestFlushPoint = FlushPoint<Arc<TestStore>>;

    /// A flush point on a fresh store, the group it commits to, its counters.
    fn setup() -> (Arc<TestStore>, TestGroup, TestFlushPoint, Arc<Stats>) {
        let store = TestStore::new();
        let group = TestGroup::new(&store);
        let stats = Arc::new(Stats::new());
        let batch = PendingBatch::new(1000, Default::default());
        let fp = FlushPoint::new(
            TOPIC,
            TopicKind::Metrics,
            store.clone(),
            stats.clone(),
            batch,
        );
        (store, group, fp, stats)
    }

    /// Reads the messages at `offsets` of `partition` as lines.
    fn read(fp: &TestFlushPoint, partition: i32, offsets: std::ops::Range<i64>) {
        let mut batch = fp.batch().expect("batch");
        for offset in offsets {
            let line = format!("cpu,partition={partition} value={offset}\n");
            batch.push_line(&Target::Shared, line.as_bytes(), || "mon".to_string());
            batch.advance(partition, offset);
        }
    }

    /// Reads the message at `offset` of `partition` as a rejected one.
    fn reject(fp: &TestFlushPoint, partition: i32, offset: i64) {
        let mut batch = fp.batch().expect("batch");
        batch.dead_letters.push(RejectedMessage {
            partition,
            offset,
            kind: "invalid_json",
            reason: "not JSON".to_string(),
            payload: b"{".to_vec(),
        });
        batch.advance(partition, offset);
    }

    #[test]
    fn a_commit_never_precedes_the_durability_of_its_offsets() {
        let (store, group, fp, stats) = setup();
        for round in 0..3i64 {
            read(&fp, 0, round * 10..round * 10 + 10);
            read(&fp, 1, round * 5..round * 5 + 5);
            reject(&fp, 2, round);
            group.set_positions(&[(0, round * 10 + 10), (1, round * 5 + 5), (2, round + 1)]);
            fp.flush(&group, Some(CommitMode::Async)).expect("flush");
        }
        group.assert_every_commit_was_durable();
        assert_eq!(
            group.commits().last(),
            Some(&(vec![(0, 30), (1, 15), (2, 3)], CommitMode::Async))
        );
        let round: Vec<Event> = store.events().into_iter().take(4).collect();
        assert_eq!(
            round,
            vec![
                Event::DeadLettersSynced,
                Event::Appended(vec![
                    ("metrics/0".to_string(), 10),
                    ("metrics/1".to_string(), 5),
                    ("metrics/2".to_string(), 1),
                ]),
                Event::HandedOff(0),
                Event::Committed(vec![(0, 10), (1, 5), (2, 1)], CommitMode::Async),
            ],
            "one flush point, in order"
        );
        assert_eq!(stats.wal_appends.load(Ordering::Relaxed), 3);
        assert_eq!(stats.wal_points_appended.load(Ordering::Relaxed), 45);
        assert_eq!(stats.dead_letters.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn dead_letters_are_on_disk_before_the_wal_append() {
        let (store, group, fp, _) = setup();
        reject(&fp, 0, 0);
        read(&fp, 0, 1..3);
        reject(&fp, 1, 7);
        fp.flush(&group, Some(CommitMode::Sync)).expect("flush");
        assert_eq!(
            *store.dead_letters_at_append.lock().expect("observations"),
            vec![vec![(0, 0), (1, 7)]],
            "dead letters in the file when the WAL append began"
        );
        group.assert_every_commit_was_durable();
    }

    #[test]
    fn a_failed_dead_letter_sync_appends_nothing_and_commits_nothing_beyond_the_durable_offsets() {
        let (store, group, fp, _) = setup();
        read(&fp, 0, 0..5);
        fp.flush(&group, Some(CommitMode::Async)).expect("flush");
        read(&fp, 0, 5..10);
        reject(&fp, 0, 10);
        group.set_positions(&[(0, 11)]);
        store.fail_dead_letters.store(true, Ordering::Relaxed);
        let error = fp
            .flush(&group, Some(CommitMode::Async))
            .expect_err("the dead letters cannot be synced");
        assert_eq!(
            error.to_string(),
            format!(
                "writing 1 dead letter(s) of metrics to {}: syncing dead-letter file {}: injected failure",
                store.dead_letters.path().display(),
                store.dead_letters.path().display()
            )
        );
        assert_eq!(store.wal_offset(0), Some(5), "nothing appended");
        // The batch is gone, the positions prove nothing: the commits that
        // follow name only what is durable.
        fp.async_commit_failed();
        fp.recommit(&group);
        fp.flush(&group, Some(CommitMode::Sync))
            .expect("nothing to flush");
        assert_eq!(
            group.commits(),
            vec![
                (vec![(0, 5)], CommitMode::Async),
                (vec![(0, 5)], CommitMode::Async),
                (vec![(0, 5)], CommitMode::Sync),
            ]
        );
        group.assert_every_commit_was_durable();
    }

    #[test]
    fn a_failed_wal_append_commits_nothing_beyond_the_durable_offsets() {
        let (store, group, fp, _) = setup();
        read(&fp, 3, 0..4);
        fp.flush(&group, Some(CommitMode::Async)).expect("flush");
        read(&fp, 3, 4..9);
        group.set_positions(&[(3, 9)]);
        store.fail_append.store(true, Ordering::Relaxed);
        let error = fp
            .flush(&group, Some(CommitMode::Sync))
            .expect_err("the append fails");
        assert_eq!(
            error.to_string(),
            "appending 1 record(s) from metrics to the WAL: WAL wal: writing an entry: injected failure"
        );
        assert_eq!(group.commits(), vec![(vec![(3, 4)], CommitMode::Async)]);
        fp.async_commit_failed();
        fp.recommit(&group);
        assert_eq!(
            group.commits().last(),
            Some(&(vec![(3, 4)], CommitMode::Async)),
            "the commit after the failure names the durable offset, not the position"
        );
        group.assert_every_commit_was_durable();
    }

    #[test]
    fn a_failed_commit_is_retried_with_the_durable_offsets() {
        let (_, group, fp, stats) = setup();
        read(&fp, 0, 0..10);
        group.fail.store(true, Ordering::Relaxed);
        fp.flush(&group, Some(CommitMode::Async)).expect("flush");
        assert_eq!(stats.commit_failures.load(Ordering::Relaxed), 1);
        assert!(group.commits().is_empty());
        // More is read meanwhile, not yet durable; the consumer's position
        // is beyond the durable offsets.
        read(&fp, 0, 10..20);
        read(&fp, 1, 0..3);
        group.set_positions(&[(0, 20), (1, 3)]);
        group.fail.store(false, Ordering::Relaxed);
        fp.recommit(&group);
        assert_eq!(group.commits(), vec![(vec![(0, 10)], CommitMode::Async)]);
        // Without a failure, nothing is committed again.
        fp.recommit(&group);
        assert_eq!(group.commits().len(), 1);
        // A failure reported later (an asynchronous commit's answer) too.
        fp.async_commit_failed();
        assert_eq!(stats.commit_failures.load(Ordering::Relaxed), 2);
        fp.recommit(&group);
        assert_eq!(group.commits().len(), 2);
        assert_eq!(group.commits()[1], (vec![(0, 10)], CommitMode::Async));
        group.assert_every_commit_was_durable();
    }

    #[test]
    fn a_revoke_flushes_and_commits_synchronously_then_forgets_the_revoked_partitions() {
        let (store, group, fp, _) = setup();
        read(&fp, 0, 0..6);
        read(&fp, 1, 0..4);
        group.set_positions(&[(0, 6), (1, 4)]);
        fp.revoke(&group, &[0], false).expect("revoke");
        assert_eq!(
            group.commits(),
            vec![(vec![(0, 6), (1, 4)], CommitMode::Sync)]
        );
        assert_eq!(
            (store.wal_offset(0), store.wal_offset(1)),
            (Some(6), Some(4))
        );
        group.set_positions(&[(1, 4)]);
        fp.async_commit_failed();
        fp.recommit(&group);
        assert_eq!(
            group.commits().last(),
            Some(&(vec![(1, 4)], CommitMode::Async)),
            "the revoked partition is left to its next owner"
        );
        group.assert_every_commit_was_durable();
    }

    #[test]
    fn a_lost_assignment_is_made_durable_and_not_committed() {
        let (store, group, fp, _) = setup();
        read(&fp, 0, 0..6);
        read(&fp, 1, 0..4);
        fp.revoke(&group, &[0, 1], true).expect("revoke");
        assert_eq!(
            (store.wal_offset(0), store.wal_offset(1)),
            (Some(6), Some(4))
        );
        assert!(group.commits().is_empty());
        fp.commit_durable(&group, CommitMode::Sync);
        assert!(group.commits().is_empty(), "nothing left to commit");
        // A flush point without a commit (a hard stop) commits nothing either.
        read(&fp, 2, 0..1);
        fp.flush(&group, None).expect("flush");
        assert_eq!(store.wal_offset(2), Some(1));
        assert!(group.commits().is_empty());
    }

    #[test]
    fn a_full_disk_keeps_the_batch_and_commits_nothing() {
        let (store, group, fp, _) = setup();
        read(&fp, 0, 0..2);
        fp.flush(&group, Some(CommitMode::Async)).expect("flush");
        read(&fp, 0, 2..5);
        read(&fp, 1, 0..1);
        store.room.store(false, Ordering::Relaxed);
        fp.async_commit_failed();
        fp.flush(&group, Some(CommitMode::Async)).expect("waits");
        assert!(!fp.batch().expect("batch").is_empty(), "the batch stays");
        assert_eq!(store.wal_offset(0), Some(2));
        // A revoke on a full disk commits nothing and forgets the partition
        // (its messages stay in the batch and are flushed once there is room).
        fp.revoke(&group, &[1], false).expect("revoke");
        assert_eq!(group.commits(), vec![(vec![(0, 2)], CommitMode::Async)]);
        store.room.store(true, Ordering::Relaxed);
        group.set_positions(&[(0, 5)]);
        fp.flush(&group, Some(CommitMode::Async)).expect("flush");
        assert_eq!(
            (store.wal_offset(0), store.wal_offset(1)),
            (Some(5), Some(1))
        );
        assert_eq!(
            group.commits().last(),
            Some(&(vec![(0, 5), (1, 1)], CommitMode::Async))
        );
        group.assert_every_commit_was_durable();
    }

    #[test]
    fn offsets_move_past_unread_records_only_while_nothing_is_buffered() {
        let (store, group, fp, _) = setup();
        read(&fp, 0, 0..10);
        fp.flush(&group, Some(CommitMode::Async)).expect("flush");
        // Transaction markers at 10 and 11: the position is at 12.
        group.set_positions(&[(0, 12)]);
        read(&fp, 1, 0..1);
        fp.recommit(&group);
        assert_eq!(group.commits().len(), 1, "something is buffered");
        fp.flush(&group, Some(CommitMode::Async)).expect("flush");
        assert_eq!(
            group.commits().last(),
            Some(&(vec![(0, 12), (1, 1)], CommitMode::Async))
        );
        group.set_positions(&[(0, 14), (1, 1)]);
        fp.recommit(&group);
        assert_eq!(
            group.commits().last(),
            Some(&(vec![(0, 14), (1, 1)], CommitMode::Async))
        );
        // Not after a fatal error elsewhere: a batch may have been lost.
        store.fatal.store(true, Ordering::Relaxed);
        group.set_positions(&[(0, 20), (1, 1)]);
        fp.recommit(&group);
        assert_eq!(group.commits().len(), 3);
    }

    #[test]
    fn a_repaired_offset_is_committed_by_the_next_recommit() {
        let (store, group, fp, _) = setup();
        store
            .wal
            .append(&[], &[(offset_name(TOPIC, 4).as_str(), 40)])
            .expect("append offsets");
        fp.repair_commit(4, 40);
        fp.recommit(&group);
        assert_eq!(group.commits(), vec![(vec![(4, 40)], CommitMode::Async)]);
        group.assert_every_commit_was_durable();
    }
}
