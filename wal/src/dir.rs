//! The WAL directory: the marker file that says "this is a WAL, format N",
//! the OS lock that keeps a second persister out, and directory syncs.
//!
//! ```text
//! <dir>/WAL          marker, written atomically (write, fsync, rename, fsync dir)
//! <dir>/wal.lock     flock(2)-ed while open; the kernel drops it when the process dies
//! <dir>/mark         the high-water mark (see `mark`)
//! <dir>/seg-<N>      segments of the log (see `segment`)
//! <dir>/quarantine/  damaged bytes found at open or while reading, as found
//! ```

use crate::error::WalError;
use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

const MARKER: &str = "WAL";
const MARKER_TMP: &str = "WAL.tmp";
const LOCK: &str = "wal.lock";
const MAGIC: &str = "monasca-persister wal";
/// Format 1 was the sled database of earlier versions; 2 is the segment
/// log.
const FORMAT: u32 = 2;

/// Builds the error of a failed file-system operation on `path`.
pub(crate) fn io(
    path: &Path,
    action: impl Into<String>,
) -> impl FnOnce(std::io::Error) -> WalError {
    let path = path.to_path_buf();
    let action = action.into();
    move |cause| WalError::Io {
        path,
        action,
        cause,
    }
}

/// Holds the exclusive lock on a WAL directory until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock without waiting. flock locks belong to the open file,
    /// so a second `Wal::open` of the same directory in this very process is
    /// refused too.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, WalError> {
        let path = dir.join(LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path, "opening the lock file"))?;
        if let Err(e) = file.try_lock_exclusive() {
            if e.kind() != fs2::lock_contended_error().kind() {
                return Err(io(&path, "locking the WAL directory")(e));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim().parse::<u32>() {
                Ok(pid) => format!(" (pid {pid})"),
                Err(_) => String::new(),
            };
            return Err(WalError::Locked { path, holder });
        }
        // The pid is only a hint for the error message above; the lock
        // itself is what counts.
        file.set_len(0)
            .and_then(|_| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .map_err(io(&path, "writing the pid into the lock file"))?;
        Ok(DirLock { _file: file })
    }
}

/// Refuses a directory that holds anything but a WAL, before anything is
/// created in it. Returns whether the marker exists.
pub(crate) fn check_is_wal_or_empty(dir: &Path) -> Result<bool, WalError> {
    if !dir.exists() {
        return Ok(false);
    }
    if !dir.is_dir() {
        return Err(WalError::NotAWal {
            path: dir.to_path_buf(),
            reason: "it is not a directory".into(),
        });
    }
    if dir.join(MARKER).exists() {
        return Ok(true);
    }
    let entries = std::fs::read_dir(dir).map_err(io(dir, "listing the directory"))?;
    let mut foreign = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir, "listing the directory"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // A lock file or half-written marker is what an interrupted first
        // open leaves behind.
        if name != LOCK && name != MARKER_TMP {
            foreign.push(name);
        }
    }
    if foreign.is_empty() {
        return Ok(false);
    }
    foreign.sort();
    foreign.truncate(5);
    Err(WalError::NotAWal {
        path: dir.to_path_buf(),
        reason: format!(
            "no {MARKER} marker file, but it holds {}",
            foreign.join(", ")
        ),
    })
}

/// Checks the marker: `Ok(true)` for a WAL of this format, `Ok(false)`
/// when there is no marker.
pub(crate) fn read_marker(dir: &Path) -> Result<bool, WalError> {
    let path = dir.join(MARKER);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(&path, "reading the marker file")(e)),
    };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(WalError::NotAWal {
            path: dir.to_path_buf(),
            reason: format!("its {MARKER} file does not start with {MAGIC:?}"),
        });
    }
    let format = lines.find_map(|line| match line.split_once(' ') {
        Some(("format", v)) => v.trim().parse::<u32>().ok(),
        _ => None,
    });
    match format {
        Some(FORMAT) => Ok(true),
        Some(1) => Err(WalError::Unsupported {
            path,
            reason: format!(
                "written in WAL format 1 (the sled database of earlier versions); this build reads format {FORMAT}. \
                 Drain it with the version that wrote it (stop it with SIGTERM once InfluxDB has caught up: \
                 \"0 record(s) left in the WAL\"), then move the directory away"
            ),
        }),
        Some(f) => Err(WalError::Unsupported {
            path,
            reason: format!("written in WAL format {f}, this build reads format {FORMAT}"),
        }),
        None => Err(WalError::Unsupported {
            path,
            reason: "marker file lacks a valid format line".into(),
        }),
    }
}

/// Writes the marker, atomically and durably.
pub(crate) fn write_marker(dir: &Path) -> Result<(), WalError> {
    let tmp = dir.join(MARKER_TMP);
    let text = format!("{MAGIC}\nformat {FORMAT}\n");
    let mut f = File::create(&tmp).map_err(io(&tmp, "creating the marker file"))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp, "writing the marker file"))?;
    let path = dir.join(MARKER);
    std::fs::rename(&tmp, &path).map_err(io(&path, "replacing the marker file"))?;
    sync_dir(dir)
}

/// Makes creations, renames and removals of entries in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "syncing the directory"))
}
