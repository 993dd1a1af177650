//! Room on the file systems of the WAL and the dead-letter file. A full
//! disk is an operational condition, not a crash: before each flush point
//! the consumer asks [`DiskSpace::has_room`], and while the answer is no it
//! keeps its batch, pauses its partitions (keeping the group membership, as
//! WAL back-pressure does) and asks again at the next turn; the health
//! endpoint reports the condition with its reason.
//!
//! The check comes before the write because a failed WAL append is fatal
//! (the persister cannot tell whether the batch was stored; the next start
//! recovers the log). So the persister stops appending while
//! [`RESERVE_BYTES`] are still free, which also leaves the WAL the room it
//! needs to record the acknowledgements (and the checkpoints of segment
//! deletions) that shrink it once InfluxDB is back. A write that fails
//! anyway (another process took the reserve) is fatal: the process exits
//! and the service manager restarts it on an intact WAL.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::retry::FailureLog;

/// Free space below which nothing more is appended (on each file system
/// concerned). The WAL extends its segments by 1 MiB at a time, an append
/// is at most a few MiB, and acknowledgements need a little room too.
pub const RESERVE_BYTES: u64 = 8 << 20;

/// How often a full disk is summarised in the log.
const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// The file systems the pipeline writes to, and whether they have room.
pub struct DiskSpace {
    /// Directories to check: the WAL's and the dead-letter file's.
    dirs: Vec<PathBuf>,
    full: AtomicBool,
    /// The least free space seen at the last check, in bytes.
    free_bytes: AtomicU64,
    state: Mutex<State>,
}

struct State {
    /// Why there is no room, while there is none.
    reason: Option<String>,
    log: FailureLog,
}

impl DiskSpace {
    /// Watches the file systems of the WAL directory and of the dead-letter file.
    pub fn new(wal_dir: &Path, dead_letter_path: &Path) -> DiskSpace {
        let mut dirs = vec![wal_dir.to_path_buf()];
        if let Some(dir) = dead_letter_path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            dirs.push(dir.to_path_buf());
        }
        DiskSpace {
            dirs,
            full: AtomicBool::new(false),
            free_bytes: AtomicU64::new(u64::MAX),
            state: Mutex::new(State {
                reason: None,
                log: FailureLog::new("making room in the WAL", SUMMARY_EVERY).with_note(
                    "pausing consumption (the group membership is kept) until space is freed; nothing read is lost",
                ),
            }),
        }
    }

    /// Checks the file systems now: true when each has room for `bytes`
    /// and [`RESERVE_BYTES`] besides (or its free space cannot be read, in
    /// which case the write decides). Logs the first failure, summaries,
    /// and the recovery.
    pub fn has_room(&self, bytes: u64) -> bool {
        let mut least: Option<(u64, &Path)> = None;
        for dir in &self.dirs {
            if let Some(free) = free_bytes(dir) {
                if least.is_none_or(|(l, _)| free < l) {
                    least = Some((free, dir));
                }
            }
        }
        let free = least.map_or(u64::MAX, |(f, _)| f);
        self.free_bytes.store(free, Ordering::Relaxed);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let line = match least {
            Some((free, dir)) if free < RESERVE_BYTES.saturating_add(bytes) => {
                let reason = if free == 0 && out_of_inodes(dir) {
                    format!(
                        "the file system of {} has fewer than {RESERVE_FILES} free inodes left",
                        dir.display()
                    )
                } else {
                    format!(
                        "the file system of {} has {free} bytes free, too few for a flush point of up to {bytes} bytes and the {RESERVE_BYTES} bytes kept in reserve",
                        dir.display(),
                    )
                };
                let line = state.log.failed(Instant::now(), &reason);
                state.reason = Some(reason);
                self.full.store(true, Ordering::Release);
                line
            }
            _ => {
                state.reason = None;
                self.full.store(false, Ordering::Release);
                state.log.succeeded(Instant::now())
            }
        };
        drop(state);
        if let Some(line) = line {
            log::log!(line.level, "{}", line.text);
        }
        !self.is_full()
    }

    /// True while the last check found no room.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// Why there is no room, while there is none.
    pub fn full_reason(&self) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.reason.clone()
    }

    /// The least free space found at the last check (`u64::MAX` before the
    /// first, or when it cannot be read).
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes.load(Ordering::Relaxed)
    }
}

/// Files (inodes) below which a file system counts as full: the WAL creates
/// a file for each record larger than a frame.
const RESERVE_FILES: u64 = 64;

/// Bytes an unprivileged writer may still use on the file system of `dir`
/// (of its nearest existing ancestor); 0 when it is out of inodes (file
/// systems that report no inode count, as btrfs, never are).
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = statvfs(dir)?;
    if stat.f_files > 0 && stat.f_favail < RESERVE_FILES {
        return Some(0);
    }
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// True when the file system of `dir` is out of inodes.
fn out_of_inodes(dir: &Path) -> bool {
    statvfs(dir).is_some_and(|s| s.f_files > 0 && s.f_favail < RESERVE_FILES)
}

/// The file system statistics of `dir`'s nearest existing ancestor.
fn statvfs(dir: &Path) -> Option<rustix::fs::StatVfs> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    rustix::fs::statvfs(existing).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_with_room_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::new(&dir.path().join("wal"), &dir.path().join("dl.jsonl"));
        assert!(space.has_room(1 << 20), "{:?}", space.full_reason());
        assert!(!space.is_full());
        assert!(space.free_bytes() > RESERVE_BYTES && space.free_bytes() < u64::MAX);
        assert_eq!(space.full_reason(), None);
        assert!(!space.has_room(u64::MAX));
        assert!(space.is_full());
        let reason = space.full_reason().expect("a reason");
        assert!(
            reason.contains(&dir.path().join("wal").display().to_string()),
            "{reason}"
        );
        assert!(space.has_room(0));
    }
}
