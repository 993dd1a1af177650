//! The `Wal` handle: open and recover, append batches atomically, replay
//! pending records, acknowledge them, look up offsets, and give disk space
//! back by deleting segments nothing pending is left in.

use crate::codec;
use crate::dir::{self, io, DirLock};
use crate::entry::{self, Body, FrameInfo};
use crate::error::WalError;
use crate::flush::FlushCoordinator;
use crate::index::{Counters, FrameIndex, FrameMeta, Location};
use crate::mark::MarkKeeper;
use crate::record::{Record, RecordId, RecordIds, RecordRef};
use crate::recovery::{self, SegmentState};
use crate::segment::{self, Segment};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// How a WAL is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// No longer used: the log keeps no cache of its own (reads go through
    /// the operating system's page cache). Kept so existing callers build.
    pub cache_capacity_bytes: u64,
    /// Back-pressure limit: [`Wal::over_limit`] is true above this many
    /// pending bytes. Appends are never refused because of it.
    pub max_size_bytes: u64,
    /// Make every append durable (fdatasync) before it returns.
    pub fsync: bool,
    /// Once the segments take more than this and the oldest one holds less
    /// than a quarter of pending data, its pending records are copied
    /// forward and it is deleted (segments with nothing pending are deleted
    /// as soon as they are the oldest, whatever this says).
    pub reclaim_threshold_bytes: u64,
    /// A new segment file is started once the current one is this large.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            cache_capacity_bytes: 32 << 20,
            max_size_bytes: 1 << 30,
            fsync: true,
            reclaim_threshold_bytes: 64 << 20,
            segment_bytes: 16 << 20,
        }
    }
}

/// The write side of the log, behind the log lock: entries are written one
/// after the other at the tail of the newest ("active") segment.
#[derive(Debug)]
struct Log {
    active: Arc<Segment>,
    tail: u64,
    /// The active segment's length: zeros past `tail` (see [`PREALLOC`]).
    prealloc_end: u64,
    next_lsn: u64,
    next_id: u64,
    offsets: BTreeMap<String, i64>,
    segments: BTreeMap<u64, SegmentState>,
    /// (lsn, next id) after the last entry written.
    written: (u64, u64),
    /// Set when a failed write could not be undone: the tail may hold
    /// garbage, so nothing more is appended until the WAL is reopened.
    broken: Option<String>,
}

/// Space the active segment is extended by, with zeros, ahead of appends
/// smaller than this. Appends then overwrite blocks that exist instead of
/// growing the file, and an fdatasync of a file whose size and blocks did
/// not change writes the data only: measured on a virtio disk with 18 KB
/// appends, 2 075 syncs/s growing the file, 5 099 overwriting zeros.
const PREALLOC: u64 = 1 << 20;

/// Zeros to extend segments with.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

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
    log: Mutex<Log>,
    /// Every live segment, for readers.
    readers: RwLock<BTreeMap<u64, Arc<Segment>>>,
    index: Mutex<FrameIndex>,
    counters: Counters,
    flush: FlushCoordinator,
    mark: MarkKeeper,
    encoders: codec::EncoderPool,
    /// Records below this id are visible to readers: their append returned
    /// (and so, with fsync, is durable).
    visible_through: AtomicU64,
    appends_done: AtomicU64,
    /// One space reclaim at a time.
    reclaiming: Mutex<()>,
    // Last: released after the files are closed.
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sorted, merged ranges (end exclusive) of `ids`.
fn ranges(ids: impl Iterator<Item = u64>) -> Vec<(u64, u64)> {
    recovery::merged(ids.map(|id| (id, id + 1)).collect())
}

impl Log {
    /// Writes entry `body` (its frames' bytes in `data`, back to back) at
    /// the tail, starting a new segment first when it would not fit.
    /// Returns its lsn, and the segment and offset of its data.
    fn write(
        &mut self,
        dir: &Path,
        opts: &WalOptions,
        readers: &RwLock<BTreeMap<u64, Arc<Segment>>>,
        body: &Body,
        data: &[&[u8]],
    ) -> Result<(u64, u64, u64), WalError> {
        if let Some(reason) = &self.broken {
            return Err(WalError::Io {
                path: self.active.path.clone(),
                action: format!(
                    "appending after an earlier write failed ({reason}); reopen the WAL"
                ),
                cause: std::io::Error::other("the end of the log is unknown"),
            });
        }
        let lsn = self.next_lsn;
        let encoded = entry::encode(lsn, body);
        if self.tail > segment::EMPTY_LEN && self.tail + encoded.len() > opts.segment_bytes {
            self.roll(dir, readers)?;
        }
        let at = self.tail;
        let end = at + encoded.len();
        if end > self.prealloc_end && encoded.len() < PREALLOC {
            self.preallocate(end, opts)?;
        }
        let data_at = at + encoded.head.len() as u64;
        let mut result = self.active.write(&encoded.head, at);
        let mut pos = data_at;
        for piece in data {
            if result.is_err() {
                break;
            }
            result = self.active.write(piece, pos);
            pos += piece.len() as u64;
        }
        if let Err(e) = result {
            // Leave no partial entry behind: the next one is written here.
            match self.active.file.set_len(at) {
                Ok(()) => self.prealloc_end = at,
                Err(undo) => {
                    self.broken = Some(format!("{e}; truncating it back also failed: {undo}"))
                }
            }
            return Err(e);
        }
        self.tail = pos;
        self.prealloc_end = self.prealloc_end.max(pos);
        self.next_lsn += 1;
        if let Some(s) = self.segments.get_mut(&self.active.number) {
            s.len = pos;
        }
        self.written = (lsn, self.next_id);
        Ok((lsn, self.active.number, data_at))
    }

    /// Extends the active segment with zeros up to the next [`PREALLOC`]
    /// boundary past `end` (within the segment size when `end` is).
    fn preallocate(&mut self, end: u64, opts: &WalOptions) -> Result<(), WalError> {
        let target = end
            .div_ceil(PREALLOC)
            .saturating_mul(PREALLOC)
            .min(opts.segment_bytes.max(end));
        let mut at = self.prealloc_end;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64);
            self.active.write(&ZEROS[..n as usize], at)?;
            at += n;
        }
        self.prealloc_end = target;
        Ok(())
    }

    /// Cuts the zeros past the last entry off the active segment, so that a
    /// segment that is not the newest ends with its last entry.
    fn trim(&mut self) -> Result<(), WalError> {
        if self.prealloc_end > self.tail {
            self.active.file.set_len(self.tail).map_err(io(
                &self.active.path,
                format!("cutting a segment to its {} bytes of entries", self.tail),
            ))?;
            self.prealloc_end = self.tail;
        }
        Ok(())
    }

    /// Starts the next segment. The current one is trimmed and synced
    /// first, so a sync of the active segment covers every entry written
    /// before it.
    fn roll(
        &mut self,
        dir: &Path,
        readers: &RwLock<BTreeMap<u64, Arc<Segment>>>,
    ) -> Result<(), WalError> {
        self.trim()?;
        self.active.sync()?;
        let header = entry::SegmentHeader {
            number: self.active.number + 1,
            first_lsn: self.next_lsn,
            first_id: self.next_id,
        };
        let seg = Arc::new(Segment::create(dir, header)?);
        readers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(header.number, seg.clone());
        self.segments.insert(
            header.number,
            SegmentState {
                header,
                len: segment::EMPTY_LEN,
            },
        );
        self.active = seg;
        self.tail = segment::EMPTY_LEN;
        self.prealloc_end = segment::EMPTY_LEN;
        Ok(())
    }
}

impl Wal {
    /// Opens the WAL in `dir`, creating it when the directory is missing or
    /// empty, and recovers it: drops what an interrupted append left at the
    /// end of the log, reports and quarantines damage (an ERROR line, the
    /// count in [`Wal::quarantined`]) and keeps every intact record.
    ///
    /// Refuses a directory holding anything but a WAL, and one another
    /// process (or another `Wal` in this process) has open.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<Wal, WalError> {
        let existed = dir.exists();
        dir::check_is_wal_or_empty(dir)?;
        std::fs::create_dir_all(dir).map_err(io(dir, "creating the WAL directory"))?;
        if !existed {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                dir::sync_dir(parent)?;
            }
        }
        let lock = DirLock::acquire(dir)?;
        if !dir::read_marker(dir)? {
            // Marker first: a crash before anything else exists leaves a
            // WAL that simply opens empty.
            dir::write_marker(dir)?;
        }
        let counters = Counters::default();
        let rec = recovery::recover(dir, &counters)?;
        counters
            .quarantined
            .store(rec.lost_total, Ordering::Relaxed);
        let mut readers = BTreeMap::new();
        for &number in rec.segments.keys() {
            readers.insert(number, Arc::new(Segment::open(dir, number)?));
        }
        let (&active_number, active_state) =
            rec.segments
                .iter()
                .next_back()
                .ok_or_else(|| WalError::Io {
                    path: dir.to_path_buf(),
                    action: "opening the log".into(),
                    cause: std::io::Error::other("recovery left no segment"),
                })?;
        let tail = active_state.len;
        let active = readers
            .get(&active_number)
            .cloned()
            .ok_or_else(|| WalError::Io {
                path: segment::path(dir, active_number),
                action: "opening the active segment".into(),
                cause: std::io::Error::other("not open"),
            })?;
        log::info!(
            "WAL {} opened: {} segment(s), {} pending records ({} bytes), {} lost to damage so far, next id {}",
            dir.display(),
            rec.segments.len(),
            counters.pending_records.load(Ordering::Relaxed),
            counters.pending_bytes.load(Ordering::Relaxed),
            rec.lost_total,
            rec.next_id,
        );
        Ok(Wal {
            dir: dir.to_path_buf(),
            log: Mutex::new(Log {
                active,
                tail,
                prealloc_end: tail,
                next_lsn: rec.next_lsn,
                next_id: rec.next_id,
                offsets: rec.offsets,
                segments: rec.segments,
                written: (rec.next_lsn - 1, rec.next_id),
                broken: None,
            }),
            readers: RwLock::new(readers),
            index: Mutex::new(rec.index),
            counters,
            flush: FlushCoordinator::new(rec.next_lsn - 1),
            mark: MarkKeeper::start(rec.mark),
            encoders: codec::EncoderPool::default(),
            visible_through: AtomicU64::new(rec.next_id),
            appends_done: AtomicU64::new(0),
            reclaiming: Mutex::new(()),
            opts,
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
            let next = lock(&self.log).next_id;
            return Ok(RecordIds::new(next, next));
        }
        let batch = self.encode(records)?;
        let crcs: Vec<u32> = batch
            .frames
            .iter()
            .map(|(_, bytes)| entry::frame_crc(&batch.bytes[bytes.clone()]))
            .collect();
        let (start, end, lsn) = {
            let mut log = lock(&self.log);
            let start = log.next_id;
            let end = start + records.len() as u64;
            let mut frames = Vec::with_capacity(batch.frames.len());
            for ((recs, bytes), crc) in batch.frames.iter().zip(crcs) {
                frames.push(FrameInfo {
                    first: start + recs.start as u64,
                    count: recs.len() as u32,
                    len: bytes.len() as u32,
                    crc,
                    acked: None,
                });
            }
            let body = Body::Append {
                first_id: start,
                offsets: offsets.iter().map(|(n, o)| (n.to_string(), *o)).collect(),
                frames,
            };
            log.next_id = end;
            let written = log.write(&self.dir, &self.opts, &self.readers, &body, &[&batch.bytes]);
            let (lsn, segment, data_at) = match written {
                Ok(w) => w,
                Err(e) => {
                    log.next_id = start;
                    drop(log);
                    self.recycle(batch);
                    return Err(e);
                }
            };
            for (name, offset) in offsets {
                log.offsets.insert(name.to_string(), *offset);
            }
            let mut index = lock(&self.index);
            let mut at = data_at;
            for f in body.frames() {
                let location = Location {
                    segment,
                    at,
                    crc: f.crc,
                };
                index.insert(
                    f.first,
                    FrameMeta::new(f.count, f.len, location),
                    &self.counters,
                );
                at += f.len as u64;
            }
            drop(index);
            self.flush.inserted(lsn);
            (start, end, lsn)
        };
        self.recycle(batch);
        if self.opts.fsync {
            self.flush.wait_durable(lsn, || self.sync_log())?;
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

    /// Makes every entry written so far durable: the active segment is
    /// synced (older ones were synced when the next one was started), then
    /// the high-water mark is told.
    fn sync_log(&self) -> Result<(), WalError> {
        let (active, (lsn, id)) = {
            let log = lock(&self.log);
            (log.active.clone(), log.written)
        };
        active.sync()?;
        self.mark.durable(lsn, id);
        Ok(())
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
        let visible = self.visible_through.load(Ordering::Acquire);
        let mut retried = false;
        while *next_id < visible {
            let Some((first, meta)) = lock(&self.index)
                .at_or_after(*next_id)
                .map(|(f, m)| (f, m.clone()))
            else {
                break;
            };
            if first >= visible {
                break;
            }
            let end = first + meta.count as u64;
            let Some(segment) = self
                .readers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&meta.location.segment)
                .cloned()
            else {
                // Moved forward and its segment deleted meanwhile: look
                // it up again.
                if retried {
                    return Err(WalError::Io {
                        path: segment::path(&self.dir, meta.location.segment),
                        action: format!("reading records {first}..{end}"),
                        cause: std::io::Error::other("their segment is gone"),
                    });
                }
                retried = true;
                continue;
            };
            retried = false;
            let bytes = segment.read(meta.location.at, meta.bytes as usize)?;
            let decoded = if entry::frame_crc(&bytes) != meta.location.crc {
                Err("its checksum does not match".to_string())
            } else {
                codec::decode_frame(&bytes, meta.count)
            };
            let records = match decoded {
                Ok(r) => r,
                Err(reason) => {
                    self.quarantine_frame(first, &meta, &bytes, &reason)?;
                    *next_id = end;
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

    /// A frame that fails its checksum or does not decode when read: its
    /// pending records are lost. Copies its bytes to the quarantine, logs
    /// it, counts them and writes them off in the log (so the next open
    /// does not count them again).
    fn quarantine_frame(
        &self,
        first: u64,
        meta: &FrameMeta,
        bytes: &[u8],
        reason: &str,
    ) -> Result<(), WalError> {
        let end = first + meta.count as u64;
        let qdir = self.dir.join("quarantine");
        let path = qdir.join(format!(
            "seg{}-at{}-records{first}-{end}.bin",
            meta.location.segment, meta.location.at
        ));
        let saved = std::fs::create_dir_all(&qdir)
            .and_then(|_| std::fs::write(&path, bytes))
            .map(|_| format!("copied to {}", path.display()))
            .unwrap_or_else(|e| format!("could not be copied to {}: {e}", path.display()));
        let mut log = lock(&self.log);
        let mut index = lock(&self.index);
        let Some(meta) = index.remove(first, &self.counters) else {
            return Ok(());
        };
        let lost: Vec<(u64, u64)> = ranges(
            (0..meta.count)
                .filter(|i| meta.is_pending(*i))
                .map(|i| first + i as u64),
        );
        let n: u64 = lost.iter().map(|(a, b)| b - a).sum();
        drop(index);
        self.counters.quarantined.fetch_add(n, Ordering::Relaxed);
        log::error!(
            "WAL {}: records {first}..{end} are damaged ({reason}) in segment {} at offset {}: {n} pending record(s) lost; the {} bytes were {saved}",
            self.dir.display(),
            meta.location.segment,
            meta.location.at,
            bytes.len()
        );
        let (lsn, _, _) = log.write(
            &self.dir,
            &self.opts,
            &self.readers,
            &Body::Lost { ranges: lost },
            &[],
        )?;
        self.flush.inserted(lsn);
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
            let mut log = lock(&self.log);
            let newly = lock(&self.index).ack(ids, &self.counters);
            if newly == 0 {
                return Ok(());
            }
            let body = Body::Ack {
                ranges: ranges(ids.iter().map(|id| id.0)),
            };
            let (lsn, _, _) = log.write(&self.dir, &self.opts, &self.readers, &body, &[])?;
            self.flush.inserted(lsn);
        }
        self.maybe_reclaim()
    }

    /// The stored next offset for `name`.
    pub fn offset(&self, name: &str) -> Result<Option<i64>, WalError> {
        Ok(lock(&self.log).offsets.get(name).copied())
    }

    /// Every stored offset.
    pub fn offsets(&self) -> Result<BTreeMap<String, i64>, WalError> {
        Ok(lock(&self.log).offsets.clone())
    }

    /// Records appended and not yet acknowledged.
    pub fn pending_records(&self) -> u64 {
        self.counters.pending_records.load(Ordering::Relaxed)
    }

    /// Stored bytes of the frames that still hold a pending record (a frame
    /// groups ~32 KiB of consecutive records of one append; it is freed when
    /// its last record is acknowledged).
    pub fn pending_bytes(&self) -> u64 {
        self.counters.pending_bytes.load(Ordering::Relaxed)
    }

    /// Records the WAL had reported durable and then found missing or
    /// unreadable (at open, or when reading them), over the WAL's life;
    /// their bytes, when any were left, are in `<dir>/quarantine/`.
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

    /// Syncs (fdatasync of the log) done since open; with concurrent
    /// appenders this stays below [`Wal::appends`] (group commit).
    pub fn syncs(&self) -> u64 {
        self.flush.syncs()
    }

    /// Makes everything appended so far durable, for use with `fsync` off
    /// (e.g. at shutdown).
    pub fn sync(&self) -> Result<(), WalError> {
        let lsn = lock(&self.log).written.0;
        self.flush.wait_durable(lsn, || self.sync_log())
    }

    /// Bytes the WAL directory takes on disk (allocated blocks).
    pub fn disk_usage_bytes(&self) -> Result<u64, WalError> {
        disk_usage(&self.dir)
    }

    /// Deletes the oldest segments once nothing in them is pending, and
    /// moves the pending records of a sparse oldest segment forward when
    /// the segments take more than the reclaim threshold.
    fn maybe_reclaim(&self) -> Result<(), WalError> {
        let Ok(_one) = self.reclaiming.try_lock() else {
            return Ok(());
        };
        loop {
            let (retire, carry) = {
                let log = lock(&self.log);
                let index = lock(&self.index);
                let total: u64 = log.segments.values().map(|s| s.len).sum();
                let mut retire = Vec::new();
                let mut carry = false;
                for (&number, state) in &log.segments {
                    if number == log.active.number {
                        break;
                    }
                    let live = index.segment_live(number);
                    if live.frames == 0 {
                        retire.push(number);
                        continue;
                    }
                    if retire.is_empty()
                        && total > self.opts.reclaim_threshold_bytes
                        && live.bytes.saturating_mul(4) < state.len
                    {
                        retire.push(number);
                        carry = true;
                    }
                    break;
                }
                (retire, carry)
            };
            if retire.is_empty() {
                return Ok(());
            }
            self.retire(&retire, carry)?;
        }
    }

    /// Deletes segments `numbers` (the oldest ones): first a checkpoint is
    /// written and synced with every offset and, when `carry`, a copy of
    /// their pending frames; then the high-water mark moves its floor past
    /// them; then the files are deleted and the directory synced.
    fn retire(&self, numbers: &[u64], carry: bool) -> Result<(), WalError> {
        let (lsn, floor, moved) = {
            let mut log = lock(&self.log);
            let index = lock(&self.index);
            let mut frames: Vec<(u64, FrameMeta)> = Vec::new();
            if carry {
                for n in numbers {
                    frames.extend(index.in_segment(*n));
                }
            }
            drop(index);
            let readers = self.readers.read().unwrap_or_else(|e| e.into_inner());
            let mut data = Vec::with_capacity(frames.len());
            for (_, meta) in &frames {
                let seg = readers
                    .get(&meta.location.segment)
                    .ok_or_else(|| WalError::Io {
                        path: segment::path(&self.dir, meta.location.segment),
                        action: "moving pending records forward".into(),
                        cause: std::io::Error::other("segment not open"),
                    })?;
                data.push(seg.read(meta.location.at, meta.bytes as usize)?);
            }
            drop(readers);
            let body = Body::Checkpoint {
                lost_total: self.quarantined(),
                offsets: log.offsets.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                frames: frames
                    .iter()
                    .map(|(first, m)| FrameInfo {
                        first: *first,
                        count: m.count,
                        len: m.bytes,
                        crc: m.location.crc,
                        acked: m.acked.clone(),
                    })
                    .collect(),
            };
            let pieces: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
            let (lsn, segment, data_at) =
                log.write(&self.dir, &self.opts, &self.readers, &body, &pieces)?;
            let mut at = data_at;
            let mut moved = Vec::with_capacity(frames.len());
            for (first, m) in &frames {
                moved.push((
                    *first,
                    Location {
                        segment,
                        at,
                        crc: m.location.crc,
                    },
                ));
                at += m.bytes as u64;
            }
            let mut index = lock(&self.index);
            for (first, location) in &moved {
                index.relocate(*first, *location);
            }
            drop(index);
            self.flush.inserted(lsn);
            let floor = log
                .segments
                .iter()
                .find(|(n, _)| !numbers.contains(n))
                .map(|(_, s)| s.header)
                .ok_or_else(|| WalError::Io {
                    path: self.dir.clone(),
                    action: "deleting segments".into(),
                    cause: std::io::Error::other("no segment would remain"),
                })?;
            (lsn, floor, moved.len())
        };
        self.flush.wait_durable(lsn, || self.sync_log())?;
        self.mark.write_now(|m| {
            m.floor_segment = floor.number;
            m.floor_lsn = floor.first_lsn;
            m.floor_id = floor.first_id;
        })?;
        {
            let mut log = lock(&self.log);
            let mut readers = self.readers.write().unwrap_or_else(|e| e.into_inner());
            for n in numbers {
                log.segments.remove(n);
                readers.remove(n);
            }
        }
        for n in numbers {
            let path = segment::path(&self.dir, *n);
            std::fs::remove_file(&path).map_err(io(&path, "deleting a segment"))?;
        }
        dir::sync_dir(&self.dir)?;
        if moved > 0 {
            log::info!(
                "WAL {}: moved {moved} frame(s) of pending records forward and deleted {} segment(s)",
                self.dir.display(),
                numbers.len()
            );
        }
        Ok(())
    }

    /// Gives disk space back now: starts a new segment, copies every
    /// pending record into it and deletes every older segment. Appends and
    /// acks wait while the copy is written (time ∝ pending data).
    pub fn reclaim_space(&self) -> Result<(), WalError> {
        let _one = lock(&self.reclaiming);
        let old: Vec<u64> = {
            let mut log = lock(&self.log);
            if log.tail > segment::EMPTY_LEN {
                log.roll(&self.dir, &self.readers)?;
            }
            let active = log.active.number;
            log.segments
                .keys()
                .copied()
                .filter(|n| *n != active)
                .collect()
        };
        if old.is_empty() {
            return Ok(());
        }
        self.retire(&old, true)?;
        log::info!(
            "WAL {}: reclaimed space: {} pending records ({} bytes) kept in one segment",
            self.dir.display(),
            self.pending_records(),
            self.pending_bytes(),
        );
        Ok(())
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // A clean close leaves everything durable (acknowledgements too),
        // and no zeros past the last entry.
        if let Err(e) = lock(&self.log).trim() {
            log::error!("WAL {}: at close: {e}", self.dir.display());
        }
        if let Err(e) = self.sync() {
            log::error!("WAL {}: syncing at close: {e}", self.dir.display());
        }
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

fn disk_usage(path: &Path) -> Result<u64, WalError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(io(path, "measuring disk usage"))?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io(path, "measuring disk usage"))? {
            let entry = entry.map_err(io(path, "measuring disk usage"))?;
            match disk_usage(&entry.path()) {
                Ok(n) => total += n,
                // Segments are created and deleted while we walk.
                Err(WalError::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(total)
}
