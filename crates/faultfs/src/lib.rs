//! Test support: a FUSE passthrough filesystem that simulates a power cut.
//!
//! Everything written through the mount lands in a backing directory at
//! once, as it would in a kernel's page cache; what the mount additionally
//! keeps is the *durable* state, the one a disk with a volatile write cache
//! would hold after losing power:
//!
//! - a file's data and size become durable when that file is `fsync`ed or
//!   `fdatasync`ed (or written through a handle opened with `O_SYNC` or
//!   `O_DSYNC`);
//! - a creation, rename or unlink becomes durable when its directory is
//!   `fsync`ed (a rename touches two directories: each side becomes durable
//!   with its own directory's sync);
//! - `sync_file_range`, `close`, and everything else make nothing durable.
//!
//! [`FaultFs::power_cut`] unmounts, rolls the backing directory back to that
//! durable state (unsynced writes undone, unsynced new files and names gone,
//! unsynced unlinks and renames reverted) and mounts it again. With
//! [`Cut::Reorder`] it instead keeps a random part of what was not synced,
//! as a disk that wrote some of its cache before the power went: each
//! unsynced page survives whole, torn at a 512-byte sector, or not at all,
//! and a random prefix of the unsynced directory changes survives, in order.
//! What was synced survives every cut.
//!
//! Kill the processes writing to the mount before a cut (a process cannot
//! outlive a power cut) and close every file on it: unmounting needs that.
//!
//! ```no_run
//! use faultfs::{Cut, FaultFs};
//! let tmp = std::path::Path::new("/tmp/x");
//! let mut fs = FaultFs::mount(tmp.join("backing"), tmp.join("mnt"))?;
//! std::fs::write(fs.path().join("file"), b"not synced")?;
//! let report = fs.power_cut(Cut::DropUnsynced)?;
//! assert!(!fs.path().join("file").exists());
//! # let _ = report;
//! # Ok::<(), std::io::Error>(())
//! ```

mod cut;
mod fs;
mod model;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use cut::{Cut, CutReport};

use model::State;

/// A mounted fault-injection filesystem. Unmounted when dropped.
pub struct FaultFs {
    backing: PathBuf,
    mountpoint: PathBuf,
    mounted: Option<Mounted>,
}

struct Mounted {
    session: fuser::BackgroundSession,
    state: Arc<Mutex<State>>,
}

impl FaultFs {
    /// Mounts a passthrough of `backing` at `mountpoint`, creating both
    /// directories when missing. Whatever `backing` holds counts as durable.
    pub fn mount(
        backing: impl Into<PathBuf>,
        mountpoint: impl Into<PathBuf>,
    ) -> io::Result<FaultFs> {
        let backing = backing.into();
        let mountpoint = mountpoint.into();
        std::fs::create_dir_all(&backing)?;
        std::fs::create_dir_all(&mountpoint)?;
        let mut fs = FaultFs {
            backing,
            mountpoint,
            mounted: None,
        };
        fs.mount_again()?;
        Ok(fs)
    }

    fn mount_again(&mut self) -> io::Result<()> {
        let state = Arc::new(Mutex::new(State::load(&self.backing)?));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("faultfs".into()),
            fuser::MountOption::Subtype("faultfs".into()),
        ];
        let session = fuser::spawn_mount(fs::Passthrough::new(state.clone()), &self.mountpoint, &config)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "mounting faultfs at {} (needs /dev/fuse and root, or fusermount3 from Debian's fuse3): {e}",
                        self.mountpoint.display()
                    ),
                )
            })?;
        self.mounted = Some(Mounted { session, state });
        Ok(())
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The backing directory (read it only while unmounted or for
    /// inspection; write through [`FaultFs::path`]).
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Counts of what the mount has seen since it was (re)mounted.
    pub fn stats(&self) -> Stats {
        self.mounted
            .as_ref()
            .map(|m| model::lock(&m.state).stats.clone())
            .unwrap_or_default()
    }

    /// Cuts the power: unmounts (every file on the mount must be closed and
    /// every process writing to it dead), throws away what was not made
    /// durable (or keeps a random part of it, see [`Cut`]), and mounts the
    /// surviving state again.
    pub fn power_cut(&mut self, cut: Cut) -> io::Result<CutReport> {
        let state = self.unmount_inner()?;
        let report = cut::apply(state, cut)?;
        self.mount_again()?;
        Ok(report)
    }

    /// Unmounts. Everything written counts as durable afterwards (a clean
    /// shutdown of the disk).
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_inner().map(drop)
    }

    fn unmount_inner(&mut self) -> io::Result<State> {
        let Some(mounted) = self.mounted.take() else {
            return Err(io::Error::other("faultfs is not mounted"));
        };
        // The kernel may end the session with ECONNABORTED rather than
        // ENODEV when unmounting with requests of the killed writer still
        // queued: the unmount happened all the same.
        let ended = match mounted.session.umount_and_join() {
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => Ok(()),
            other => other,
        };
        ended.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "unmounting faultfs at {} (is a file on it still open, or a process using it still alive?): {e}",
                    self.mountpoint.display()
                ),
            )
        })?;
        let mut guard = model::lock(&mounted.state);
        Ok(std::mem::take(&mut *guard))
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        if let Some(mounted) = self.mounted.take() {
            if let Err(e) = mounted.session.umount_and_join() {
                log::error!("unmounting faultfs at {}: {e}", self.mountpoint.display());
            }
        }
    }
}

/// What the mount has seen since it was (re)mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `write` requests.
    pub writes: u64,
    /// `fsync`/`fdatasync` of files.
    pub file_syncs: u64,
    /// `fsync` of directories.
    pub dir_syncs: u64,
}
