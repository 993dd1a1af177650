//! The WAL directory: the marker file that says "this is a WAL, format N,
//! current generation G", the OS lock that keeps a second persister out, and
//! the generation sub-directories that each hold one sled database.
//!
//! ```text
//! <dir>/WAL         marker, replaced atomically (write, fsync, rename, fsync dir)
//! <dir>/wal.lock    flock(2)-ed while open; the kernel drops it when the process dies
//! <dir>/gen-<G>/    the sled database of generation G
//! ```

use crate::error::WalError;
use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MARKER: &str = "WAL";
const MARKER_TMP: &str = "WAL.tmp";
const LOCK: &str = "wal.lock";
const MAGIC: &str = "monasca-persister wal";
const FORMAT: u32 = 1;

fn io(path: &Path, action: impl Into<String>) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    let action = action.into();
    move |cause| WalError::Io {
        path: path.to_path_buf(),
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

/// The directory of generation `generation`.
pub(crate) fn generation_dir(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("gen-{generation}"))
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

/// Reads the current generation from the marker; `None` when there is none.
pub(crate) fn read_marker(dir: &Path) -> Result<Option<u64>, WalError> {
    let path = dir.join(MARKER);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path, "reading the marker file")(e)),
    };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(WalError::NotAWal {
            path: dir.to_path_buf(),
            reason: format!("its {MARKER} file does not start with {MAGIC:?}"),
        });
    }
    let mut format = None;
    let mut generation = None;
    for line in lines {
        match line.split_once(' ') {
            Some(("format", v)) => format = v.trim().parse::<u32>().ok(),
            Some(("generation", v)) => generation = v.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
    match (format, generation) {
        (Some(FORMAT), Some(g)) => Ok(Some(g)),
        (Some(f), _) if f != FORMAT => Err(WalError::Unsupported {
            path,
            reason: format!("written in WAL format {f}, this build reads format {FORMAT}"),
        }),
        _ => Err(WalError::Unsupported {
            path,
            reason: "marker file lacks a valid format or generation line".into(),
        }),
    }
}

/// Points the marker at `generation`, atomically and durably.
pub(crate) fn write_marker(dir: &Path, generation: u64) -> Result<(), WalError> {
    let tmp = dir.join(MARKER_TMP);
    let text = format!("{MAGIC}\nformat {FORMAT}\ngeneration {generation}\n");
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

/// Removes generation directories other than `keep`: leftovers of a
/// rotation interrupted before or after it switched the marker.
pub(crate) fn remove_other_generations(dir: &Path, keep: u64) -> Result<(), WalError> {
    let entries = std::fs::read_dir(dir).map_err(io(dir, "listing the directory"))?;
    for entry in entries {
        let entry = entry.map_err(io(dir, "listing the directory"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(generation) = name
            .strip_prefix("gen-")
            .and_then(|g| g.parse::<u64>().ok())
        else {
            continue;
        };
        if generation != keep {
            log::info!(
                "WAL {}: removing stale generation directory {name}",
                dir.display()
            );
            let path = entry.path();
            std::fs::remove_dir_all(&path)
                .map_err(io(&path, "removing a stale generation directory"))?;
        }
    }
    Ok(())
}
