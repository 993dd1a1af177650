//! One generation of the WAL: a sled database with its trees, and the sync
//! that makes what was inserted into it really durable.
//!
//! sled 0.34's `flush()` writes its log with `sync_file_range`, which neither
//! flushes the disk's write cache nor the file size, and it never syncs the
//! "blob" files it writes for large values. `sync` therefore follows sled's
//! flush with `fdatasync` of the log file and of any blob file.

use crate::dir::sync_dir;
use crate::error::WalError;
use std::fs::File;
use std::path::{Path, PathBuf};

/// sled's segment size. Values above a quarter of it become blob files; the
/// frame size in `codec` is derived from this.
pub(crate) const SEGMENT_SIZE: usize = 1 << 20;

/// Tree names.
const FRAMES: &str = "frames";
const ACKS: &str = "acks";
const OFFSETS: &str = "offsets";
const META: &str = "meta";
const QUARANTINE: &str = "quarantine";

/// Key of the commit record in the meta tree.
pub(crate) const COMMIT_KEY: &[u8] = b"commit";

/// An open generation.
pub(crate) struct Generation {
    /// Generation number, as named by the marker file.
    pub number: u64,
    /// Its directory.
    pub path: PathBuf,
    db: sled::Db,
    /// Frames of records by frame key.
    pub frames: sled::Tree,
    /// Acknowledgement bitmaps of partly acknowledged frames, by frame key.
    pub acks: sled::Tree,
    /// Next offset by name.
    pub offsets: sled::Tree,
    /// The commit record.
    pub meta: sled::Tree,
    /// Values that failed to decode, moved aside as found.
    pub quarantine: sled::Tree,
    log_file: File,
}

impl Generation {
    /// Opens (creating when missing) the sled database in `path`.
    pub(crate) fn open(
        path: PathBuf,
        number: u64,
        cache_capacity_bytes: u64,
    ) -> Result<Generation, WalError> {
        let fresh = !path.exists();
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(cache_capacity_bytes)
            .segment_size(SEGMENT_SIZE)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|cause| WalError::Storage {
                path: path.clone(),
                action: "opening the sled database".into(),
                cause,
            })?;
        let tree = |name: &str| {
            db.open_tree(name).map_err(|cause| WalError::Storage {
                path: path.clone(),
                action: format!("opening tree {name}"),
                cause,
            })
        };
        let (frames, acks, offsets, meta, quarantine) = (
            tree(FRAMES)?,
            tree(ACKS)?,
            tree(OFFSETS)?,
            tree(META)?,
            tree(QUARANTINE)?,
        );
        let log_path = path.join("db");
        let log_file = File::open(&log_path).map_err(|cause| WalError::Io {
            path: log_path.clone(),
            action: "opening sled's log file for fdatasync".into(),
            cause,
        })?;
        if fresh {
            // sled creates its files without syncing the directories.
            sync_dir(&path.join("blobs"))?;
            sync_dir(&path)?;
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(Generation {
            number,
            path,
            db,
            frames,
            acks,
            offsets,
            meta,
            quarantine,
            log_file,
        })
    }

    /// Builds the error for a failed sled call.
    pub(crate) fn storage_err(
        &self,
        action: impl Into<String>,
    ) -> impl FnOnce(sled::Error) -> WalError {
        let path = self.path.clone();
        let action = action.into();
        move |cause| WalError::Storage {
            path,
            action,
            cause,
        }
    }

    /// Removes a frame and its acknowledgement bitmap. Frame first: a crash
    /// in between leaves a stale bitmap, which open discards.
    pub(crate) fn remove_frame(
        &self,
        key: impl AsRef<[u8]>,
        action: String,
    ) -> Result<(), WalError> {
        let key = key.as_ref();
        self.frames
            .remove(key)
            .map_err(self.storage_err(action.clone()))?;
        self.acks.remove(key).map_err(self.storage_err(action))?;
        Ok(())
    }

    /// Makes every insert and removal done so far durable.
    pub(crate) fn sync(&self) -> Result<(), WalError> {
        self.db
            .flush()
            .map_err(self.storage_err("flushing sled's log"))?;
        self.sync_blobs()?;
        self.log_file.sync_data().map_err(|cause| WalError::Io {
            path: self.path.join("db"),
            action: "fdatasync of sled's log file".into(),
            cause,
        })
    }

    /// Frames are sized so sled never needs blob files, except for records
    /// larger than a frame; this syncs those few when they exist.
    fn sync_blobs(&self) -> Result<(), WalError> {
        let blobs = self.path.join("blobs");
        let io = |path: &Path, action: &str| {
            let path = path.to_path_buf();
            let action = action.to_string();
            move |cause| WalError::Io {
                path,
                action,
                cause,
            }
        };
        let mut any = false;
        for entry in std::fs::read_dir(&blobs).map_err(io(&blobs, "listing sled's blob files"))? {
            let entry = entry.map_err(io(&blobs, "listing sled's blob files"))?;
            let path = entry.path();
            match File::open(&path) {
                Ok(f) => f
                    .sync_data()
                    .map_err(io(&path, "fdatasync of a sled blob file"))?,
                // sled removes blobs of rewritten pages concurrently.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path, "opening a sled blob file")(e)),
            }
            any = true;
        }
        if any {
            sync_dir(&blobs)?;
        }
        Ok(())
    }

    /// Size of sled's log file, the bulk of the generation's disk usage.
    pub(crate) fn log_bytes(&self) -> u64 {
        self.log_file.metadata().map(|m| m.len()).unwrap_or(0)
    }
}
