//! The `Wal` handle: open and recover, append batches atomically, replay
//! pending records, acknowledge them, look up offsets, and give disk space
//! back by moving pending data into a fresh generation.

use crate::codec::{self, AckBits, Commit};
use crate::dir::{self, DirLock};
use crate::error::WalError;
use crate::flush::FlushCoordinator;
use crate::index::{Counters, FrameIndex, FrameMeta};
use crate::record::{Record, RecordId, RecordIds, RecordRef};
use crate::store::{Generation, COMMIT_KEY};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

/// Pending data of at most this size is copied to a fresh generation
/// automatically; above it, a rotation would stall appends for too long.
const AUTO_RECLAIM_MAX_PENDING: u64 = 32 << 20;

/// How a WAL is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Memory sled may use to cache pages (sled's own default, 1 GiB, is far
    /// too much for a persister).
    pub cache_capacity_bytes: u64,
    /// Back-pressure limit: [`Wal::over_limit`] is true above this many
    /// pending bytes. Appends are never refused because of it.
    pub max_size_bytes: u64,
    /// Make every append durable (fdatasync) before it returns.
    pub fsync: bool,
    /// Once the log file exceeds this size and the pending data is less than
    /// a quarter of it (and at most 32 MiB), an `ack` moves the pending data
    /// into a fresh generation and deletes the old one.
    pub reclaim_threshold_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            cache_capacity_bytes: 32 << 20,
            max_size_bytes: 1 << 30,
            fsync: true,
            reclaim_threshold_bytes: 64 << 20,
        }
    }
}

/// Append-side state, changed only under the append lock.
#[derive(Debug)]
struct AppendState {
    next_id: u64,
    /// Appends inserted so far: what the flush coordinator counts, since an
    /// append of offsets only needs a sync too but takes no record id.
    appended: u64,
    offsets: BTreeMap<String, i64>,
}

/// An append's frames, encoded before any lock is taken so that concurrent
/// appenders compress in parallel.
struct EncodedBatch {
    /// All frames, back to back.
    bytes: Vec<u8>,
    /// Per frame: its records (positions in the append) and its bytes.
    frames: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// The buffers' owner, returned to the pool after the append.
    encoder: codec::FrameEncoder,
}

/// A durable local log of opaque records plus named offsets.
///
/// Shareable between threads (`&Wal` is `Sync`): appends, acks and readers
/// may run concurrently.
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    generation: RwLock<Generation>,
    appends: Mutex<AppendState>,
    index: Mutex<FrameIndex>,
    counters: Counters,
    flush: FlushCoordinator,
    encoders: codec::EncoderPool,
    /// Records below this id are visible to readers: their append returned
    /// (and so, with fsync, is durable).
    visible_through: AtomicU64,
    appends_done: AtomicU64,
    // Last: released after sled has closed its files.
    _lock: DirLock,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("pending_records", &self.pending_records())
            .field("pending_bytes", &self.pending_bytes())
            .finish()
    }
}

/// Extra point reads per frame during the recovery scan. sled 0.34's LRU
/// records accesses in 256 shards and processes (evicts) a shard only after
/// 64 accesses to it; a sequential scan touches each leaf once, so without
/// these reads up to ~16 000 leaves stay resident whatever the cache size
/// (measured: +105 MB RSS to open 140 MB of pending frames; +1 MB with 4).
const RECOVERY_TOUCHES: usize = 4;

/// What recovery found in a generation.
struct Recovered {
    next_id: u64,
    offsets: BTreeMap<String, i64>,
    index: FrameIndex,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Wal {
    /// Opens the WAL in `dir`, creating it when the directory is missing or
    /// empty, and recovers it: drops the records of an append a crash
    /// interrupted, quarantines undecodable frames, rebuilds the counters.
    ///
    /// Refuses a directory holding anything but a WAL, and one another
    /// process (or another `Wal` in this process) has open.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<Wal, WalError> {
        let existed = dir.exists();
        dir::check_is_wal_or_empty(dir)?;
        std::fs::create_dir_all(dir).map_err(|cause| WalError::Io {
            path: dir.to_path_buf(),
            action: "creating the WAL directory".into(),
            cause,
        })?;
        if !existed {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                dir::sync_dir(parent)?;
            }
        }
        let lock = DirLock::acquire(dir)?;
        let number = match dir::read_marker(dir)? {
            Some(n) => n,
            None => {
                // Marker first: a crash before the database exists leaves a
                // WAL that simply opens empty.
                dir::write_marker(dir, 1)?;
                1
            }
        };
        dir::remove_other_generations(dir, number)?;
        let generation = Generation::open(
            dir::generation_dir(dir, number),
            number,
            opts.cache_capacity_bytes,
        )?;
        let counters = Counters::default();
        let recovered = recover(&generation, &counters)?;
        log::info!(
            "WAL {} opened: generation {}, {} pending records ({} bytes), {} quarantined, next id {}",
            dir.display(),
            number,
            counters.pending_records.load(Ordering::Relaxed),
            counters.pending_bytes.load(Ordering::Relaxed),
            counters.quarantined.load(Ordering::Relaxed),
            recovered.next_id,
        );
        Ok(Wal {
            dir: dir.to_path_buf(),
            opts,
            generation: RwLock::new(generation),
            appends: Mutex::new(AppendState {
                next_id: recovered.next_id,
                appended: 0,
                offsets: recovered.offsets,
            }),
            index: Mutex::new(recovered.index),
            counters,
            flush: FlushCoordinator::new(),
            encoders: codec::EncoderPool::default(),
            visible_through: AtomicU64::new(recovered.next_id),
            appends_done: AtomicU64::new(0),
            _lock: lock,
        })
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.opts
    }

    fn generation(&self) -> RwLockReadGuard<'_, Generation> {
        self.generation.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `records` and sets `offsets` (name → next offset) in one atomic
    /// step: after a crash either all of it is there or none of it. With
    /// `fsync` it is durable when this returns; concurrent appends share
    /// syncs. Returns the ids given to the records, in order. An append with
    /// no records stores only the offsets.
    pub fn append(
        &self,
        records: &[RecordRef<'_>],
        offsets: &[(&str, i64)],
    ) -> Result<RecordIds, WalError> {
        for (index, r) in records.iter().enumerate() {
            let bytes = r.encoded_size_bound();
            if bytes > codec::MAX_RECORD_BYTES {
                return Err(WalError::RecordTooLarge {
                    path: self.dir.clone(),
                    index,
                    database: r.database.to_string(),
                    bytes,
                    limit: codec::MAX_RECORD_BYTES,
                });
            }
        }
        if records.is_empty() && offsets.is_empty() {
            let next = lock(&self.appends).next_id;
            return Ok(RecordIds::new(next, next));
        }
        let batch = self.encode(records)?;
        let commit_offsets: Vec<(String, i64)> =
            offsets.iter().map(|(n, o)| (n.to_string(), *o)).collect();

        let generation = self.generation();
        let (start, end, seq) = {
            let mut state = lock(&self.appends);
            let start = state.next_id;
            let end = start + records.len() as u64;
            // Ids are spent even if the inserts fail, so frames a failed
            // append may have left behind never share keys with later ones.
            state.next_id = end;
            let result =
                self.insert_batch(&generation, &mut state, &batch, end, start, commit_offsets);
            if let Err(e) = result {
                self.forget_frames(&generation, &batch, start);
                return Err(e);
            }
            state.appended += 1;
            self.flush.inserted(state.appended);
            (start, end, state.appended)
        };
        self.recycle(batch);
        if self.opts.fsync {
            self.flush.wait_durable(seq, || generation.sync())?;
        }
        self.visible_through.fetch_max(end, Ordering::AcqRel);
        self.appends_done.fetch_add(1, Ordering::Relaxed);
        Ok(RecordIds::new(start, end))
    }

    fn encode(&self, records: &[RecordRef<'_>]) -> Result<EncodedBatch, WalError> {
        let bounds = codec::frame_bounds(records);
        let mut encoder = self.encoders.get();
        let mut bytes = std::mem::take(&mut encoder.frames);
        bytes.clear();
        let mut frames = Vec::with_capacity(bounds.len());
        for range in bounds {
            let start = bytes.len();
            encoder
                .encode(&records[range.clone()], &mut bytes)
                .map_err(|cause| WalError::Encode {
                    path: self.dir.clone(),
                    what: format!("records {}..{} of an append", range.start, range.end),
                    cause,
                })?;
            frames.push((range, start..bytes.len()));
        }
        Ok(EncodedBatch {
            bytes,
            frames,
            encoder,
        })
    }

    /// Returns an append's encoding buffers to the pool.
    fn recycle(&self, batch: EncodedBatch) {
        let EncodedBatch {
            bytes, mut encoder, ..
        } = batch;
        encoder.frames = bytes;
        self.encoders.put(encoder);
    }

    /// Inserts the frames, then the commit record, then the offsets, in this
    /// order in sled's log (see [`Commit`]). Runs under the append lock, so
    /// the log holds appends one after the other.
    fn insert_batch(
        &self,
        generation: &Generation,
        state: &mut AppendState,
        batch: &EncodedBatch,
        end: u64,
        start: u64,
        offsets: Vec<(String, i64)>,
    ) -> Result<(), WalError> {
        for (records, bytes) in &batch.frames {
            let first = start + records.start as u64;
            let count = records.len() as u32;
            let value = &batch.bytes[bytes.clone()];
            // Index first: a reader that finds the frame in sled must find
            // its entry; readers skip it until the append is visible.
            lock(&self.index).insert(
                first,
                FrameMeta::new(count, value.len() as u32),
                &self.counters,
            );
            generation
                .frames
                .insert(codec::frame_key(first, count), value)
                .map_err(generation.storage_err(format!(
                    "storing records {first}..{} of the append {start}..{end}",
                    first + count as u64
                )))?;
        }
        let commit = Commit {
            next_id: end,
            offsets,
        };
        let bytes = codec::encode_commit(&commit).map_err(|cause| WalError::Encode {
            path: self.dir.clone(),
            what: format!("the commit record of the append {start}..{end}"),
            cause,
        })?;
        generation
            .meta
            .insert(COMMIT_KEY, bytes)
            .map_err(generation.storage_err(format!(
                "storing the commit record of the append {start}..{end}"
            )))?;
        for (name, offset) in commit.offsets {
            generation
                .offsets
                .insert(name.as_bytes(), &codec::encode_offset(offset))
                .map_err(generation.storage_err(format!(
                    "storing offset {name}={offset} of the append {start}..{end}"
                )))?;
            state.offsets.insert(name, offset);
        }
        Ok(())
    }

    /// Best-effort undo of a failed append, so its records are not replayed
    /// in this run; a crash instead drops them at the next open anyway.
    fn forget_frames(&self, generation: &Generation, batch: &EncodedBatch, start: u64) {
        let mut index = lock(&self.index);
        for (records, _) in &batch.frames {
            let first = start + records.start as u64;
            index.remove(first, &self.counters);
            let _ = generation
                .frames
                .remove(codec::frame_key(first, records.len() as u32));
        }
    }

    /// Pending records with ids above `after` (all when `None`), in append
    /// order. Records whose append has not returned yet are not shown; the
    /// iterator reads lazily, so records appended while it runs may appear.
    pub fn pending_from(&self, after: Option<RecordId>) -> Pending<'_> {
        Pending {
            wal: self,
            next_id: after.map_or(0, |a| a.0.saturating_add(1)),
            buf: VecDeque::new(),
            done: false,
        }
    }

    /// Reads frames from `*next_id` on into `buf` until it holds something.
    /// Returns false at the end of the visible records.
    fn fill(
        &self,
        next_id: &mut u64,
        buf: &mut VecDeque<(RecordId, Record)>,
    ) -> Result<bool, WalError> {
        let generation = self.generation();
        let visible = self.visible_through.load(Ordering::Acquire);
        if *next_id >= visible {
            return Ok(false);
        }
        let start = match lock(&self.index).find(*next_id) {
            Some((first, _)) => first,
            None => *next_id,
        };
        for item in generation.frames.range(codec::frame_key(start, 0)..) {
            let (key, value) = item.map_err(
                generation.storage_err(format!("reading pending records from id {next_id}")),
            )?;
            let Some((first, count)) = codec::parse_frame_key(&key) else {
                continue;
            };
            // See RECOVERY_TOUCHES: keeps sled's cache bounded when a large
            // backlog is replayed.
            for _ in 0..RECOVERY_TOUCHES - 1 {
                generation.frames.get(&key).map_err(
                    generation.storage_err(format!("reading pending records from id {next_id}")),
                )?;
            }
            if first >= visible {
                return Ok(!buf.is_empty());
            }
            let end = first + count as u64;
            if end <= *next_id {
                continue;
            }
            let records = match codec::decode_frame(&value, count) {
                Ok(records) => records,
                Err(reason) => {
                    self.quarantine_frame(&generation, &key, &value, &reason)?;
                    *next_id = end.min(visible);
                    continue;
                }
            };
            {
                let index = lock(&self.index);
                // No entry: every record of it was acknowledged meanwhile.
                if let Some(meta) = index.get(first) {
                    for (i, record) in records.into_iter().enumerate() {
                        let id = first + i as u64;
                        if id >= *next_id && id < visible && meta.is_pending(i as u32) {
                            buf.push_back((RecordId(id), record));
                        }
                    }
                }
            }
            *next_id = end.min(visible);
            if !buf.is_empty() {
                return Ok(true);
            }
        }
        Ok(!buf.is_empty())
    }

    /// Moves a frame that fails to decode into the quarantine tree.
    fn quarantine_frame(
        &self,
        generation: &Generation,
        key: &[u8],
        value: &[u8],
        reason: &str,
    ) -> Result<(), WalError> {
        let (first, count) = codec::parse_frame_key(key).unwrap_or((0, 0));
        log::error!(
            "WAL {}: records {first}..{} fail to decode ({reason}); moved {} bytes to quarantine",
            self.dir.display(),
            first + count as u64,
            value.len()
        );
        let mut index = lock(&self.index);
        index.remove(first, &self.counters);
        let action = format!("quarantining records {first}..{}", first + count as u64);
        generation
            .quarantine
            .insert(key, value)
            .map_err(generation.storage_err(action.clone()))?;
        generation.remove_frame(key, action)?;
        self.counters
            .quarantined
            .fetch_add(count as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Marks records as written: they are never returned again, also after
    /// a restart. Not synced: an acknowledgement lost in a crash only makes
    /// the record be written again, which InfluxDB absorbs. Unknown or
    /// already acknowledged ids are ignored.
    pub fn ack(&self, ids: &[RecordId]) -> Result<(), WalError> {
        if ids.is_empty() {
            return Ok(());
        }
        {
            let generation = self.generation();
            let mut index = lock(&self.index);
            let outcome = index.ack(ids, &self.counters);
            // Written under the index lock, so two acks of one frame reach
            // sled in the order their bitmaps were made.
            for (first, count, bits) in &outcome.updated {
                generation
                    .acks
                    .insert(codec::frame_key(*first, *count), bits.encode())
                    .map_err(generation.storage_err(format!(
                        "storing acknowledgements of records {first}..{}",
                        first + *count as u64
                    )))?;
            }
            for (first, count) in &outcome.freed {
                let key = codec::frame_key(*first, *count);
                let action = format!(
                    "removing acknowledged records {first}..{}",
                    first + *count as u64
                );
                generation.remove_frame(key, action)?;
            }
        }
        self.maybe_reclaim()
    }

    /// The stored next offset for `name`.
    pub fn offset(&self, name: &str) -> Result<Option<i64>, WalError> {
        Ok(lock(&self.appends).offsets.get(name).copied())
    }

    /// Every stored offset.
    pub fn offsets(&self) -> Result<BTreeMap<String, i64>, WalError> {
        Ok(lock(&self.appends).offsets.clone())
    }

    /// Records appended and not yet acknowledged.
    pub fn pending_records(&self) -> u64 {
        self.counters.pending_records.load(Ordering::Relaxed)
    }

    /// Stored bytes of the frames that still hold a pending record (a frame
    /// groups ~6 KiB of consecutive records of one append; it is freed when
    /// its last record is acknowledged).
    pub fn pending_bytes(&self) -> u64 {
        self.counters.pending_bytes.load(Ordering::Relaxed)
    }

    /// Records moved to quarantine because they failed to decode.
    pub fn quarantined(&self) -> u64 {
        self.counters.quarantined.load(Ordering::Relaxed)
    }

    /// True while pending bytes exceed `max_size_bytes`: the caller should
    /// stop feeding the WAL until writers drain it.
    pub fn over_limit(&self) -> bool {
        self.pending_bytes() > self.opts.max_size_bytes
    }

    /// Appends that returned successfully since open.
    pub fn appends(&self) -> u64 {
        self.appends_done.load(Ordering::Relaxed)
    }

    /// Syncs (sled flush + fdatasync) done since open; with concurrent
    /// appenders this stays below [`Wal::appends`] (group commit).
    pub fn syncs(&self) -> u64 {
        self.flush.syncs()
    }

    /// Makes everything appended so far durable, for use with `fsync` off
    /// (e.g. at shutdown).
    pub fn sync(&self) -> Result<(), WalError> {
        let generation = self.generation();
        let appended = lock(&self.appends).appended;
        self.flush.wait_durable(appended, || generation.sync())
    }

    /// Bytes the WAL directory takes on disk (allocated blocks).
    pub fn disk_usage_bytes(&self) -> Result<u64, WalError> {
        disk_usage(&self.dir)
    }

    fn maybe_reclaim(&self) -> Result<(), WalError> {
        let log_bytes = self.generation().log_bytes();
        let pending = self.pending_bytes();
        if log_bytes > self.opts.reclaim_threshold_bytes
            && pending.saturating_mul(4) < log_bytes
            && pending <= AUTO_RECLAIM_MAX_PENDING
        {
            self.reclaim_space()?;
        }
        Ok(())
    }

    /// Gives disk space back now: copies the pending records, offsets and
    /// quarantine into a fresh sled database, switches the marker to it and
    /// deletes the old one. sled 0.34 reuses freed segments but rarely
    /// shrinks its file, so this is how usage comes back down after a
    /// backlog. Appends and acks wait while it runs (time ∝ pending data).
    pub fn reclaim_space(&self) -> Result<(), WalError> {
        let mut generation = self.generation.write().unwrap_or_else(|e| e.into_inner());
        let before = generation.log_bytes();
        let number = generation.number + 1;
        let path = dir::generation_dir(&self.dir, number);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|cause| WalError::Io {
                path: path.clone(),
                action: "removing a leftover generation directory".into(),
                cause,
            })?;
        }
        let fresh = Generation::open(path, number, self.opts.cache_capacity_bytes)?;
        let next_id = lock(&self.appends).next_id;
        let copy = |from: &sled::Tree, to: &sled::Tree, what: &str| -> Result<(), WalError> {
            for item in from.iter() {
                let (k, v) = item.map_err(generation.storage_err(format!(
                    "reading {what} to move them to generation {number}"
                )))?;
                to.insert(k, v).map_err(fresh.storage_err(format!(
                    "copying {what} from generation {}",
                    generation.number
                )))?;
            }
            Ok(())
        };
        copy(&generation.frames, &fresh.frames, "pending records")?;
        copy(&generation.acks, &fresh.acks, "acknowledgements")?;
        copy(&generation.offsets, &fresh.offsets, "offsets")?;
        copy(
            &generation.quarantine,
            &fresh.quarantine,
            "quarantined records",
        )?;
        let commit = codec::encode_commit(&Commit {
            next_id,
            offsets: Vec::new(),
        })
        .map_err(|cause| WalError::Encode {
            path: self.dir.clone(),
            what: "the commit record of a new generation".into(),
            cause,
        })?;
        fresh
            .meta
            .insert(COMMIT_KEY, commit)
            .map_err(fresh.storage_err("storing the commit record"))?;
        fresh.sync()?;
        dir::write_marker(&self.dir, number)?;
        let old = std::mem::replace(&mut *generation, fresh);
        drop(generation);
        let old_path = old.path.clone();
        drop(old);
        if let Err(e) = std::fs::remove_dir_all(&old_path) {
            // Harmless: open removes generations the marker does not name.
            log::warn!(
                "WAL {}: could not remove old generation {}: {e}",
                self.dir.display(),
                old_path.display()
            );
        }
        log::info!(
            "WAL {}: moved {} pending records ({} bytes) to generation {number}; log file was {before} bytes",
            self.dir.display(),
            self.pending_records(),
            self.pending_bytes(),
        );
        Ok(())
    }
}

/// Iterator over pending records, see [`Wal::pending_from`].
pub struct Pending<'a> {
    wal: &'a Wal,
    next_id: u64,
    buf: VecDeque<(RecordId, Record)>,
    done: bool,
}

impl Iterator for Pending<'_> {
    type Item = Result<(RecordId, Record), WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.buf.pop_front() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            match self.wal.fill(&mut self.next_id, &mut self.buf) {
                Ok(true) => {}
                Ok(false) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Rebuilds the in-memory state from a generation, repairing what a crash
/// or corruption left: see the module docs of `codec` for the rules.
fn recover(generation: &Generation, counters: &Counters) -> Result<Recovered, WalError> {
    // Frames enter the index uncounted; `counters` is filled at the end,
    // once acknowledgements are known.
    let path = generation.path.display().to_string();
    let err = |action: &str| generation.storage_err(format!("recovering: {action}"));

    // None: no append ever completed. Some(None): unreadable, so every
    // frame present counts as committed (losing none beats dropping some).
    let commit: Option<Option<Commit>> = match generation
        .meta
        .get(COMMIT_KEY)
        .map_err(err("reading the commit record"))?
    {
        None => None,
        Some(bytes) => match codec::decode_commit(&bytes) {
            Ok(c) => Some(Some(c)),
            Err(reason) => {
                log::error!("WAL {path}: commit record is corrupt ({reason}); keeping every stored record and moving it to quarantine");
                generation
                    .quarantine
                    .insert(COMMIT_KEY, bytes)
                    .map_err(err("quarantining the commit record"))?;
                generation
                    .meta
                    .remove(COMMIT_KEY)
                    .map_err(err("quarantining the commit record"))?;
                Some(None)
            }
        },
    };
    let committed_through = match &commit {
        None => Some(0),
        Some(Some(c)) => Some(c.next_id),
        Some(None) => None,
    };

    let mut offsets = BTreeMap::new();
    for item in generation.offsets.iter() {
        let (k, v) = item.map_err(err("reading offsets"))?;
        match (std::str::from_utf8(&k), codec::decode_offset(&v)) {
            (Ok(name), Some(offset)) => {
                offsets.insert(name.to_string(), offset);
            }
            _ => {
                log::error!(
                    "WAL {path}: dropping a corrupt offset entry (key {:?})",
                    String::from_utf8_lossy(&k)
                );
                generation
                    .offsets
                    .remove(&k)
                    .map_err(err("removing a corrupt offset"))?;
            }
        }
    }
    // The commit record holds the newest offsets of the last append; the
    // per-name entries written after it may not have survived.
    if let Some(Some(c)) = &commit {
        for (name, offset) in &c.offsets {
            if offsets.get(name) != Some(offset) {
                generation
                    .offsets
                    .insert(name.as_bytes(), &codec::encode_offset(*offset))
                    .map_err(err("repairing an offset"))?;
                offsets.insert(name.clone(), *offset);
            }
        }
    }

    let mut index = FrameIndex::default();
    let mut max_end = committed_through.unwrap_or(0);
    let mut dropped = 0u64;
    let move_to_quarantine = |key: &[u8], value: sled::IVec| -> Result<(), WalError> {
        generation
            .quarantine
            .insert(key, value)
            .map_err(err("quarantining a frame"))?;
        generation
            .frames
            .remove(key)
            .map_err(err("quarantining a frame"))?;
        Ok(())
    };
    for item in generation.frames.iter() {
        let (key, value) = item.map_err(err("reading records"))?;
        let Some((first, count)) = codec::parse_frame_key(&key) else {
            log::error!(
                "WAL {path}: a stored frame has a malformed key {key:?}; moving it to quarantine"
            );
            move_to_quarantine(&key, value)?;
            continue;
        };
        let end = first + count as u64;
        if committed_through.is_some_and(|c| end > c) {
            // Written by an append that never returned: never promised.
            dropped += count as u64;
            generation
                .frames
                .remove(&key)
                .map_err(err("dropping records of an unfinished append"))?;
            continue;
        }
        for _ in 0..RECOVERY_TOUCHES {
            generation
                .frames
                .get(&key)
                .map_err(err("reading records"))?;
        }
        match codec::decode_frame(&value, count) {
            Ok(_) => {
                index.insert(
                    first,
                    FrameMeta::new(count, value.len() as u32),
                    &Counters::default(),
                );
                max_end = max_end.max(end);
            }
            Err(reason) => {
                log::error!(
                    "WAL {path}: records {first}..{end} fail to decode ({reason}); moved {} bytes to quarantine",
                    value.len()
                );
                move_to_quarantine(&key, value)?;
            }
        }
    }
    if dropped > 0 {
        log::warn!("WAL {path}: dropped {dropped} records of an append that a crash interrupted (it never reported success)");
    }

    for item in generation.acks.iter() {
        let (key, value) = item.map_err(err("reading acknowledgements"))?;
        let parsed = codec::parse_frame_key(&key);
        let meta =
            parsed.and_then(|(first, count)| index.get_mut(first).filter(|m| m.count == count));
        let Some(meta) = meta else {
            generation
                .acks
                .remove(&key)
                .map_err(err("removing stale acknowledgements"))?;
            continue;
        };
        let Some(bits) = AckBits::decode(&value, meta.count) else {
            log::warn!("WAL {path}: a corrupt acknowledgement bitmap was dropped; its records will be written again");
            generation
                .acks
                .remove(&key)
                .map_err(err("removing corrupt acknowledgements"))?;
            continue;
        };
        meta.live = meta.count - bits.count_set(meta.count);
        meta.acked = Some(bits);
    }
    // Drop frames a crash left fully acknowledged but not yet removed, then
    // count what is pending.
    let full: Vec<(u64, u32)> = index
        .iter()
        .filter(|(_, m)| m.live == 0)
        .map(|(first, m)| (first, m.count))
        .collect();
    for (first, count) in full {
        index.remove(first, &Counters::default());
        let key = codec::frame_key(first, count);
        generation
            .frames
            .remove(key)
            .map_err(err("removing acknowledged records"))?;
        generation
            .acks
            .remove(key)
            .map_err(err("removing acknowledged records"))?;
    }
    for (_, meta) in index.iter() {
        counters.add_frame(meta);
    }

    let mut quarantined = 0u64;
    for key in generation.quarantine.iter().keys() {
        let key = key.map_err(err("reading the quarantine"))?;
        if let Some((first, count)) = codec::parse_frame_key(&key) {
            quarantined += count as u64;
            max_end = max_end.max(first + count as u64);
        }
    }
    counters.quarantined.store(quarantined, Ordering::Relaxed);

    Ok(Recovered {
        next_id: max_end,
        offsets,
        index,
    })
}

fn disk_usage(path: &Path) -> Result<u64, WalError> {
    use std::os::unix::fs::MetadataExt;
    let io = |cause| WalError::Io {
        path: path.to_path_buf(),
        action: "measuring disk usage".into(),
        cause,
    };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io)? {
            let entry = entry.map_err(io)?;
            match disk_usage(&entry.path()) {
                Ok(n) => total += n,
                // sled creates and removes files while we walk.
                Err(WalError::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(total)
}
