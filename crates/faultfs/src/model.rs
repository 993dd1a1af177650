//! The filesystem's state: the inode table of the passthrough (current
//! names, mapped onto the backing directory) and, beside it, what is
//! durable — per file its synced size and the pre-images of the pages
//! overwritten since its last sync, per directory its entries as of its
//! last sync, and a journal of the directory changes made since.
//!
//! Every operation updates the backing directory at once (a page cache that
//! always has the newest data) and the bookkeeping needed to undo it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::Stats;

/// Inode number of the mount's root.
pub(crate) const ROOT: u64 = 1;

/// The directory in the backing root where the filesystem keeps files
/// unlinked from the mount (an unsynced unlink can come back) and stages a
/// cut. Invisible through the mount.
pub(crate) const HIDDEN: &str = ".faultfs";

/// Granularity of the write bookkeeping: a page of the page cache.
pub(crate) const PAGE: u64 = 4096;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Files and directories; nothing else is supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
}

/// One inode.
#[derive(Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Current parent directory; 0 once unlinked (the backing file then
    /// lives in the trash, named by its inode number).
    pub parent: u64,
    /// Current name in `parent`.
    pub name: OsString,
    /// Directories: current entries.
    pub children: BTreeMap<OsString, u64>,
    /// Directories: entries as of the last fsync of the directory.
    pub durable_children: BTreeMap<OsString, u64>,
    /// Directories: journal sequence number of that fsync.
    pub synced_seq: u64,
    /// Durable directory entries naming this inode.
    pub durable_refs: u32,
    /// Files: current size.
    pub len: u64,
    /// Files: size as of the last fsync.
    pub durable_len: u64,
    /// Files: pre-images of pages below `durable_len` changed since the
    /// last fsync, by page number (clipped to `durable_len`).
    pub undo: BTreeMap<u64, Vec<u8>>,
    /// Files: pages written (or cut off) since the last fsync.
    pub dirty: BTreeSet<u64>,
    /// Unlinked for good: no durable entry names it, its data is deleted.
    pub gone: bool,
}

impl Node {
    fn new(kind: Kind, parent: u64, name: OsString, len: u64) -> Node {
        Node {
            kind,
            parent,
            name,
            children: BTreeMap::new(),
            durable_children: BTreeMap::new(),
            synced_seq: 0,
            durable_refs: 0,
            len,
            durable_len: len,
            undo: BTreeMap::new(),
            dirty: BTreeSet::new(),
            gone: false,
        }
    }
}

/// One side of a directory change: `dir`'s entry `name` became `target`
/// (`None`: removed). A rename makes two with the same `seq`.
#[derive(Debug, Clone)]
pub(crate) struct JournalOp {
    pub seq: u64,
    pub dir: u64,
    pub name: OsString,
    pub target: Option<u64>,
}

/// An open file.
#[derive(Debug)]
struct Handle {
    ino: u64,
    file: File,
    /// Opened with O_SYNC or O_DSYNC: every write is durable at once.
    sync_writes: bool,
}

/// The whole state, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub backing: PathBuf,
    pub nodes: HashMap<u64, Node>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    pub journal: Vec<JournalOp>,
    seq: u64,
    pub stats: Stats,
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl State {
    /// Reads the backing directory; all of it is durable.
    pub(crate) fn load(backing: &Path) -> io::Result<State> {
        let hidden = backing.join(HIDDEN);
        if hidden.exists() {
            std::fs::remove_dir_all(&hidden)?;
        }
        std::fs::create_dir_all(hidden.join("trash"))?;
        let mut state = State {
            backing: backing.to_path_buf(),
            next_ino: ROOT + 1,
            next_fh: 1,
            ..State::default()
        };
        state
            .nodes
            .insert(ROOT, Node::new(Kind::Dir, ROOT, OsString::new(), 0));
        state.load_dir(ROOT, backing)?;
        Ok(state)
    }

    fn load_dir(&mut self, dir: u64, path: &Path) -> io::Result<()> {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let name = entry.file_name();
            if dir == ROOT && name == HIDDEN {
                continue;
            }
            let meta = entry.metadata()?;
            let kind = if meta.is_dir() {
                Kind::Dir
            } else if meta.is_file() {
                Kind::File
            } else {
                log::warn!(
                    "faultfs: ignoring {} (neither a file nor a directory)",
                    entry.path().display()
                );
                continue;
            };
            let ino = self.next_ino;
            self.next_ino += 1;
            let mut node = Node::new(kind, dir, name.clone(), meta.len());
            node.durable_refs = 1;
            self.nodes.insert(ino, node);
            let parent = self.node_mut(dir)?;
            parent.children.insert(name.clone(), ino);
            parent.durable_children.insert(name, ino);
            if kind == Kind::Dir {
                self.load_dir(ino, &entry.path())?;
            }
        }
        Ok(())
    }

    pub(crate) fn node(&self, ino: u64) -> io::Result<&Node> {
        self.nodes.get(&ino).ok_or_else(|| errno(libc::ENOENT))
    }

    fn node_mut(&mut self, ino: u64) -> io::Result<&mut Node> {
        self.nodes.get_mut(&ino).ok_or_else(|| errno(libc::ENOENT))
    }

    pub(crate) fn trash(&self) -> PathBuf {
        self.backing.join(HIDDEN).join("trash")
    }

    /// Where inode `ino` is in the backing directory now.
    pub(crate) fn path(&self, ino: u64) -> io::Result<PathBuf> {
        if ino == ROOT {
            return Ok(self.backing.clone());
        }
        let node = self.node(ino)?;
        if node.parent == 0 {
            return Ok(self.trash().join(ino.to_string()));
        }
        Ok(self.path(node.parent)?.join(&node.name))
    }

    fn dir(&self, ino: u64) -> io::Result<&Node> {
        let node = self.node(ino)?;
        if node.kind != Kind::Dir {
            return Err(errno(libc::ENOTDIR));
        }
        Ok(node)
    }

    fn child(&self, parent: u64, name: &OsStr) -> io::Result<u64> {
        if parent == ROOT && name == HIDDEN {
            return Err(errno(libc::ENOENT));
        }
        self.dir(parent)?
            .children
            .get(name)
            .copied()
            .ok_or_else(|| errno(libc::ENOENT))
    }

    pub(crate) fn metadata(&self, ino: u64) -> io::Result<Metadata> {
        std::fs::symlink_metadata(self.path(ino)?)
    }

    pub(crate) fn lookup(&self, parent: u64, name: &OsStr) -> io::Result<(u64, Metadata)> {
        let ino = self.child(parent, name)?;
        Ok((ino, self.metadata(ino)?))
    }

    /// Entries of a directory: (inode, kind, name), without `.` and `..`.
    pub(crate) fn entries(&self, ino: u64) -> io::Result<Vec<(u64, Kind, OsString)>> {
        let dir = self.dir(ino)?;
        dir.children
            .iter()
            .map(|(name, &child)| Ok((child, self.node(child)?.kind, name.clone())))
            .collect()
    }

    fn journal(&mut self, parts: &[(u64, &OsStr, Option<u64>)]) {
        self.seq += 1;
        for (dir, name, target) in parts {
            self.journal.push(JournalOp {
                seq: self.seq,
                dir: *dir,
                name: name.to_os_string(),
                target: *target,
            });
        }
    }

    fn check_new_name(&self, parent: u64, name: &OsStr) -> io::Result<()> {
        if parent == ROOT && name == HIDDEN {
            return Err(errno(libc::EPERM));
        }
        if self.dir(parent)?.children.contains_key(name) {
            return Err(errno(libc::EEXIST));
        }
        Ok(())
    }

    fn link_new(&mut self, parent: u64, name: &OsStr, kind: Kind) -> io::Result<u64> {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes
            .insert(ino, Node::new(kind, parent, name.to_os_string(), 0));
        self.node_mut(parent)?
            .children
            .insert(name.to_os_string(), ino);
        self.journal(&[(parent, name, Some(ino))]);
        Ok(ino)
    }

    pub(crate) fn mkdir(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
    ) -> io::Result<(u64, Metadata)> {
        self.check_new_name(parent, name)?;
        let path = self.path(parent)?.join(name);
        std::fs::create_dir(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))?;
        let ino = self.link_new(parent, name, Kind::Dir)?;
        Ok((ino, self.metadata(ino)?))
    }

    /// Creates and opens a file; returns (inode, handle, metadata).
    pub(crate) fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> io::Result<(u64, u64, Metadata)> {
        self.check_new_name(parent, name)?;
        let path = self.path(parent)?.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode & 0o7777)
            .open(&path)?;
        let ino = self.link_new(parent, name, Kind::File)?;
        let fh = self.add_handle(ino, file, flags);
        Ok((ino, fh, self.metadata(ino)?))
    }

    fn add_handle(&mut self, ino: u64, file: File, flags: i32) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(
            fh,
            Handle {
                ino,
                file,
                sync_writes: flags & libc::O_DSYNC != 0,
            },
        );
        fh
    }

    pub(crate) fn open(&mut self, ino: u64, flags: i32) -> io::Result<u64> {
        if self.node(ino)?.kind != Kind::File {
            return Err(errno(libc::EISDIR));
        }
        // Read-write whatever was asked: the bookkeeping reads pre-images
        // through the handle. Truncation and appending positions come from
        // the kernel as separate requests and offsets.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(ino)?)?;
        Ok(self.add_handle(ino, file, flags))
    }

    pub(crate) fn release(&mut self, fh: u64) {
        self.handles.remove(&fh);
    }

    fn handle(&self, fh: u64) -> io::Result<&Handle> {
        self.handles.get(&fh).ok_or_else(|| errno(libc::EBADF))
    }

    pub(crate) fn read(&self, fh: u64, offset: u64, size: u32) -> io::Result<Vec<u8>> {
        let file = &self.handle(fh)?.file;
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    /// Keeps the pre-image of every durable page in `[from, to)` not yet
    /// saved, and marks the pages dirty.
    fn save_pages(&mut self, ino: u64, file: &File, from: u64, to: u64) -> io::Result<()> {
        if to <= from {
            return Ok(());
        }
        let node = self.node_mut(ino)?;
        for page in from / PAGE..to.div_ceil(PAGE) {
            node.dirty.insert(page);
            let start = page * PAGE;
            if start >= node.durable_len || node.undo.contains_key(&page) {
                continue;
            }
            let end = (start + PAGE).min(node.durable_len);
            let mut pre = vec![0u8; (end - start) as usize];
            file.read_exact_at(&mut pre, start)?;
            node.undo.insert(page, pre);
        }
        Ok(())
    }

    pub(crate) fn write(&mut self, fh: u64, offset: u64, data: &[u8]) -> io::Result<usize> {
        self.stats.writes += 1;
        let handle = self.handle(fh)?;
        let (ino, sync) = (handle.ino, handle.sync_writes);
        let file = handle.file.try_clone()?;
        let end = offset + data.len() as u64;
        self.save_pages(ino, &file, offset, end)?;
        // Bytes between the old end and `offset` become zeros: dirty too.
        let old_len = self.node(ino)?.len;
        if offset > old_len {
            self.save_pages(ino, &file, old_len, offset)?;
        }
        file.write_all_at(data, offset)?;
        let node = self.node_mut(ino)?;
        node.len = node.len.max(end);
        if sync {
            self.made_durable(ino)?;
        }
        Ok(data.len())
    }

    /// Changes a file's size (truncate or extend).
    pub(crate) fn set_len(&mut self, ino: u64, fh: Option<u64>, size: u64) -> io::Result<()> {
        let file = match fh.and_then(|fh| self.handles.get(&fh)) {
            Some(h) => h.file.try_clone()?,
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.path(ino)?)?,
        };
        let len = self.node(ino)?.len;
        if size < len {
            self.save_pages(ino, &file, size, len)?;
        } else {
            self.save_pages(ino, &file, len, size)?;
        }
        file.set_len(size)?;
        self.node_mut(ino)?.len = size;
        Ok(())
    }

    pub(crate) fn set_mode(&mut self, ino: u64, mode: u32) -> io::Result<()> {
        std::fs::set_permissions(
            self.path(ino)?,
            std::fs::Permissions::from_mode(mode & 0o7777),
        )
    }

    /// fsync/fdatasync of a file: its data and size are durable.
    pub(crate) fn fsync(&mut self, ino: u64) -> io::Result<()> {
        self.stats.file_syncs += 1;
        self.made_durable(ino)
    }

    fn made_durable(&mut self, ino: u64) -> io::Result<()> {
        let node = self.node_mut(ino)?;
        node.durable_len = node.len;
        node.undo.clear();
        node.dirty.clear();
        Ok(())
    }

    /// fsync of a directory: its current entries are durable.
    pub(crate) fn fsync_dir(&mut self, ino: u64) -> io::Result<()> {
        self.stats.dir_syncs += 1;
        let seq = self.seq;
        let dir = self.node_mut(ino)?;
        if dir.kind != Kind::Dir {
            return self.made_durable(ino);
        }
        let old = std::mem::replace(&mut dir.durable_children, dir.children.clone());
        dir.synced_seq = seq;
        let new = dir.durable_children.clone();
        self.journal.retain(|op| op.dir != ino);
        let mut dropped = Vec::new();
        for (name, child) in &old {
            if new.get(name) != Some(child) {
                let node = self.node_mut(*child)?;
                node.durable_refs -= 1;
                dropped.push(*child);
            }
        }
        for (name, child) in &new {
            if old.get(name) != Some(child) {
                self.node_mut(*child)?.durable_refs += 1;
            }
        }
        for child in dropped {
            self.collect(child)?;
        }
        Ok(())
    }

    /// Deletes the data of an unlinked inode that no durable entry names
    /// any more: no cut can bring it back. Open handles keep reading it.
    fn collect(&mut self, ino: u64) -> io::Result<()> {
        let node = self.node(ino)?;
        if node.gone || node.parent != 0 || node.durable_refs > 0 {
            return Ok(());
        }
        let path = self.path(ino)?;
        match node.kind {
            Kind::File => std::fs::remove_file(&path)?,
            Kind::Dir => std::fs::remove_dir(&path)?,
        }
        self.node_mut(ino)?.gone = true;
        Ok(())
    }

    /// Moves inode `ino`, linked as `name` in `parent`, to the trash.
    fn move_to_trash(&mut self, ino: u64) -> io::Result<()> {
        let from = self.path(ino)?;
        let to = self.trash().join(ino.to_string());
        std::fs::rename(&from, &to)?;
        let node = self.node_mut(ino)?;
        node.parent = 0;
        node.name = OsString::new();
        Ok(())
    }

    pub(crate) fn unlink(&mut self, parent: u64, name: &OsStr, want: Kind) -> io::Result<()> {
        let ino = self.child(parent, name)?;
        let node = self.node(ino)?;
        match (want, node.kind) {
            (Kind::File, Kind::Dir) => return Err(errno(libc::EISDIR)),
            (Kind::Dir, Kind::File) => return Err(errno(libc::ENOTDIR)),
            (Kind::Dir, Kind::Dir) if !node.children.is_empty() => {
                return Err(errno(libc::ENOTEMPTY))
            }
            _ => {}
        }
        self.move_to_trash(ino)?;
        self.node_mut(parent)?.children.remove(name);
        self.journal(&[(parent, name, None)]);
        Ok(())
    }

    pub(crate) fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> io::Result<()> {
        let ino = self.child(parent, name)?;
        if new_parent == ROOT && new_name == HIDDEN {
            return Err(errno(libc::EPERM));
        }
        // A directory must not move below itself.
        let mut up = new_parent;
        while up != ROOT {
            if up == ino {
                return Err(errno(libc::EINVAL));
            }
            up = self.node(up)?.parent;
            if up == 0 {
                return Err(errno(libc::ENOENT));
            }
        }
        if let Some(&old) = self.dir(new_parent)?.children.get(new_name) {
            if old == ino {
                return Ok(());
            }
            if no_replace {
                return Err(errno(libc::EEXIST));
            }
            let (kind, old_kind) = (self.node(ino)?.kind, self.node(old)?.kind);
            match (kind, old_kind) {
                (Kind::File, Kind::Dir) => return Err(errno(libc::EISDIR)),
                (Kind::Dir, Kind::File) => return Err(errno(libc::ENOTDIR)),
                (Kind::Dir, Kind::Dir) if !self.node(old)?.children.is_empty() => {
                    return Err(errno(libc::ENOTEMPTY))
                }
                _ => {}
            }
            self.move_to_trash(old)?;
        }
        let from = self.path(ino)?;
        let to = self.path(new_parent)?.join(new_name);
        std::fs::rename(&from, &to)?;
        self.node_mut(parent)?.children.remove(name);
        self.node_mut(new_parent)?
            .children
            .insert(new_name.to_os_string(), ino);
        let node = self.node_mut(ino)?;
        node.parent = new_parent;
        node.name = new_name.to_os_string();
        self.journal(&[(new_parent, new_name, Some(ino)), (parent, name, None)]);
        Ok(())
    }
}
