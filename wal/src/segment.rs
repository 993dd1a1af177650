//! Segment files: `seg-<number>` in the WAL directory, each a header and
//! then entries appended one after the other. Created durably (header
//! written and synced, then the directory synced) before anything is
//! appended to them, deleted whole once nothing in them is needed.

use crate::dir::io;
use crate::entry::{SegmentHeader, SEGMENT_HEADER_LEN};
use crate::error::WalError;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const PREFIX: &str = "seg-";

/// The path of segment `number`.
pub(crate) fn path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{number:020}"))
}

/// The segment number a file name stands for.
pub(crate) fn number_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The segment numbers present in `dir`, ascending.
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir, "listing the segments"))? {
        let entry = entry.map_err(io(dir, "listing the segments"))?;
        if let Some(n) = entry.file_name().to_str().and_then(number_of) {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// An open segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub number: u64,
    pub path: PathBuf,
    pub file: File,
}

impl Segment {
    /// Creates segment `header.number` with its header, durably: the file
    /// is synced and so is the directory, so a power cut after this never
    /// loses the file while later syncs of it succeed.
    pub(crate) fn create(dir: &Path, header: SegmentHeader) -> Result<Segment, WalError> {
        let path = path(dir, header.number);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io(&path, "creating a segment"))?;
        file.write_all_at(&header.encode(), 0)
            .and_then(|_| file.sync_data())
            .map_err(io(&path, "writing the header of a new segment"))?;
        crate::dir::sync_dir(dir)?;
        Ok(Segment {
            number: header.number,
            path,
            file,
        })
    }

    /// Opens an existing segment for reading and appending.
    pub(crate) fn open(dir: &Path, number: u64) -> Result<Segment, WalError> {
        let path = path(dir, number);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path, "opening a segment"))?;
        Ok(Segment { number, path, file })
    }

    /// Reads `len` bytes at `at`.
    pub(crate) fn read(&self, at: u64, len: usize) -> Result<Vec<u8>, WalError> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, at).map_err(io(
            &self.path,
            format!("reading {len} bytes at offset {at}"),
        ))?;
        Ok(buf)
    }

    /// Writes `bytes` at `at`.
    pub(crate) fn write(&self, bytes: &[u8], at: u64) -> Result<(), WalError> {
        self.file.write_all_at(bytes, at).map_err(io(
            &self.path,
            format!("writing {} bytes at offset {at}", bytes.len()),
        ))
    }

    /// fdatasync: everything written to it is durable, its size included.
    pub(crate) fn sync(&self) -> Result<(), WalError> {
        self.file
            .sync_data()
            .map_err(io(&self.path, "fdatasync of a segment"))
    }

    /// Cuts the segment to `len` bytes, durably.
    pub(crate) fn truncate(&self, len: u64) -> Result<(), WalError> {
        self.file
            .set_len(len)
            .and_then(|_| self.file.sync_data())
            .map_err(io(
                &self.path,
                format!("truncating a segment to {len} bytes"),
            ))
    }
}

/// The size a fresh segment starts with.
pub(crate) const EMPTY_LEN: u64 = SEGMENT_HEADER_LEN;
