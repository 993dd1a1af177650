//! The dead-letter file: where everything read that cannot be stored ends
//! up, with the reason, so nothing is dropped silently.
//!
//! An append-only JSON-lines file (`[wal] dead_letter_path`), one object per
//! Kafka message that could not be decoded, per line InfluxDB refused or per
//! event document Elasticsearch refused:
//!
//! ```json
//! {"time":"2026-11-21T21:46:12.123Z","kind":"influxdb_rejected","reason":"unable to parse: invalid field format","database":"mon","line":"cpu value= 1"}
//! {"time":"2026-11-21T21:46:12.124Z","kind":"undecodable","reason":"…","topic":"metrics","partition":3,"offset":1234,"payload":"{not json"}
//! ```
//!
//! `topic`/`partition`/`offset` and `database` appear when known. The raw
//! content is `payload` (a message), `line` (a refused line) or `document`
//! (a refused event document, with its `index`) as a string when it is
//! valid UTF-8, else `payload_base64` / `line_base64` / `document_base64`
//! (standard base64 with padding) so the exact bytes survive.
//!
//! Appends are buffered; [`DeadLetterStore::sync`] flushes and fsyncs, and
//! the caller calls it at its flush point, before committing the offsets of
//! the messages it dead-lettered. Above `dead_letter_max_size_mb` the file is
//! rotated to `<path>.1` (older ones shift to `.2` … up to
//! `dead_letter_max_files`, the oldest is deleted). Every letter is counted
//! by kind; with `[repositories] ignore_parse_point_error = true` refused
//! lines are counted and logged but not kept. The store is shared by all
//! threads.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Serialize;

use crate::config::{RepositoriesSection, WalSection};

/// Kind of the letters for lines InfluxDB refused.
pub const KIND_INFLUXDB_REJECTED: &str = "influxdb_rejected";

/// How often each kind of dead letter is logged at most (the first one
/// always is; later ones are summarised).
const LOG_EVERY: Duration = Duration::from_secs(30);

/// Write buffer of the file.
const BUFFER_BYTES: usize = 64 * 1024;

/// Where and how dead letters are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterConfig {
    /// The current file; rotated ones get `.1`, `.2`, … appended.
    pub path: PathBuf,
    /// Rotate before the file would grow above this many bytes (0: never).
    pub max_bytes: u64,
    /// Rotated files kept.
    pub max_files: usize,
    /// False with `ignore_parse_point_error = true`: refused lines are
    /// counted and logged, not written.
    pub keep_rejected_lines: bool,
}

impl DeadLetterConfig {
    /// The settings from `[wal]` and `[repositories]`.
    pub fn from_config(wal: &WalSection, repositories: &RepositoriesSection) -> Self {
        DeadLetterConfig {
            path: wal.dead_letter_path.clone(),
            max_bytes: wal.dead_letter_max_size_mb.saturating_mul(1024 * 1024),
            max_files: wal.dead_letter_max_files,
            keep_rejected_lines: !repositories.ignore_parse_point_error,
        }
    }
}

/// Where a Kafka message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaSource<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// What is being given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    /// A Kafka message that could not be turned into a point.
    Message(&'a [u8]),
    /// A line InfluxDB refused (subject to `ignore_parse_point_error`).
    RejectedLine(&'a [u8]),
    /// An event document Elasticsearch refused, and its index.
    Document {
        /// The index it was written to.
        index: &'a str,
        /// The document (JSON) as sent.
        document: &'a [u8],
    },
}

/// One dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    /// Short, stable kind for counting and metrics, e.g. `undecodable`.
    pub kind: &'static str,
    /// Why, in words (InfluxDB's message for refused lines).
    pub reason: &'a str,
    /// The Kafka message it came from, when known.
    pub source: Option<KafkaSource<'a>>,
    /// Target database, when known.
    pub database: Option<&'a str>,
    /// The message or line.
    pub content: Content<'a>,
}

impl<'a> DeadLetter<'a> {
    /// A line InfluxDB refused for `database`, with its reason.
    pub fn rejected_line(database: &'a str, line: &'a [u8], reason: &'a str) -> Self {
        DeadLetter {
            kind: KIND_INFLUXDB_REJECTED,
            reason,
            source: None,
            database: Some(database),
            content: Content::RejectedLine(line),
        }
    }
}

/// What [`DeadLetterStore::record`] did with a letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Appended to the file (durable after the next `sync`).
    Kept,
    /// Counted and logged only (`ignore_parse_point_error = true`).
    Discarded,
}

/// Dead letters counted since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterCounts {
    /// All letters.
    pub total: u64,
    /// Letters written to the file.
    pub kept: u64,
    /// Letters counted only.
    pub discarded: u64,
    /// All letters by kind.
    pub by_kind: BTreeMap<&'static str, u64>,
}

/// A failure to keep dead letters; the caller must not acknowledge what it
/// could not dead-letter.
///
/// An underlying error is part of the message (a `cause` field, not
/// `source()`), so an `anyhow` chain printed with `{:#}` shows it once.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// A file operation failed.
    #[error("{action} dead-letter file {}: {cause}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
}

/// The dead-letter file, shared by every thread.
#[derive(Debug)]
pub struct DeadLetterStore {
    config: DeadLetterConfig,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: BufWriter<File>,
    size: u64,
    unsynced: bool,
    counts: DeadLetterCounts,
    logged: HashMap<&'static str, LogState>,
}

#[derive(Debug)]
struct LogState {
    at: Instant,
    suppressed: u64,
}

#[derive(Serialize)]
struct Record<'a> {
    time: String,
    kind: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document_base64: Option<String>,
}

impl DeadLetterStore {
    /// Opens (creating it and its directories when needed) the file for appending.
    pub fn open(config: DeadLetterConfig) -> Result<Self, DeadLetterError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|cause| DeadLetterError::Io {
                action: "creating the directory of",
                path: config.path.clone(),
                cause,
            })?;
        }
        let (mut file, mut size) = open_append(&config.path)?;
        end_partial_line(&mut file, &mut size, &config.path)?;
        let state = State {
            file: BufWriter::with_capacity(BUFFER_BYTES, file),
            size,
            unsynced: false,
            counts: DeadLetterCounts::default(),
            logged: HashMap::new(),
        };
        Ok(DeadLetterStore {
            config,
            state: Mutex::new(state),
        })
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Counts and the buffered file stay usable after a panic elsewhere;
        // at worst a half-written record precedes the next one on its line.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts, logs (rate-limited per kind) and, unless it is a refused line
    /// and those are not kept, appends `letter`. Durable after [`sync`](Self::sync).
    pub fn record(&self, letter: &DeadLetter<'_>) -> Result<Disposition, DeadLetterError> {
        let keep = match letter.content {
            Content::Message(_) | Content::Document { .. } => true,
            Content::RejectedLine(_) => self.config.keep_rejected_lines,
        };
        let encoded = if keep { Some(encode(letter)) } else { None };
        let mut state = self.lock();
        if let Some(bytes) = encoded {
            if self.config.max_bytes > 0
                && state.size > 0
                && state.size + bytes.len() as u64 > self.config.max_bytes
            {
                self.rotate(&mut state)?;
            }
            state
                .file
                .write_all(&bytes)
                .map_err(|cause| self.io_error("appending to", cause))?;
            state.size += bytes.len() as u64;
            state.unsynced = true;
        }
        state.counts.total += 1;
        *state.counts.by_kind.entry(letter.kind).or_default() += 1;
        let disposition = if keep {
            state.counts.kept += 1;
            Disposition::Kept
        } else {
            state.counts.discarded += 1;
            Disposition::Discarded
        };
        log_letter(&mut state, letter, disposition, &self.config.path);
        Ok(disposition)
    }

    /// Flushes buffered letters and fsyncs the file. Call it at the flush
    /// point, before acknowledging (committing) what was dead-lettered.
    pub fn sync(&self) -> Result<(), DeadLetterError> {
        let mut state = self.lock();
        if !state.unsynced {
            return Ok(());
        }
        self.flush_and_sync(&mut state, false)?;
        state.unsynced = false;
        Ok(())
    }

    /// Letters counted since the store was opened.
    pub fn counts(&self) -> DeadLetterCounts {
        self.lock().counts.clone()
    }

    /// Writes out the buffer and fsyncs the file (with its metadata when
    /// `all`, as before a rename).
    fn flush_and_sync(&self, state: &mut State, all: bool) -> Result<(), DeadLetterError> {
        state
            .file
            .flush()
            .map_err(|cause| self.io_error("flushing", cause))?;
        let file = state.file.get_ref();
        if all {
            file.sync_all()
        } else {
            file.sync_data()
        }
        .map_err(|cause| self.io_error("fsyncing", cause))
    }

    fn io_error(&self, action: &'static str, cause: io::Error) -> DeadLetterError {
        DeadLetterError::Io {
            action,
            path: self.config.path.clone(),
            cause,
        }
    }

    /// Closes the full file (durably: its letters may already be
    /// acknowledged), shifts the rotated ones and starts an empty file.
    fn rotate(&self, state: &mut State) -> Result<(), DeadLetterError> {
        let path = &self.config.path;
        self.flush_and_sync(state, true)?;
        let rename = |from: &Path, to: &Path| {
            std::fs::rename(from, to).map_err(|cause| DeadLetterError::Io {
                action: "rotating",
                path: from.to_path_buf(),
                cause,
            })
        };
        if self.config.max_files == 0 {
            std::fs::remove_file(path)
                .map_err(|cause| self.io_error("removing the full", cause))?;
        } else {
            let oldest = numbered(path, self.config.max_files);
            match std::fs::remove_file(&oldest) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(cause) => {
                    return Err(DeadLetterError::Io {
                        action: "removing the oldest",
                        path: oldest,
                        cause,
                    })
                }
            }
            for n in (1..self.config.max_files).rev() {
                let from = numbered(path, n);
                if from.exists() {
                    rename(&from, &numbered(path, n + 1))?;
                }
            }
            rename(path, &numbered(path, 1))?;
        }
        let (file, size) = open_append(path)?;
        state.file = BufWriter::with_capacity(BUFFER_BYTES, file);
        state.size = size;
        state.unsynced = false;
        log::info!(
            "rotated dead-letter file {} (keeping {} old ones)",
            path.display(),
            self.config.max_files
        );
        Ok(())
    }
}

/// `<path>.<n>`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Opens `path` for appending and makes its directory entry durable.
fn open_append(path: &Path) -> Result<(File, u64), DeadLetterError> {
    let io_error = |action, cause| DeadLetterError::Io {
        action,
        path: path.to_path_buf(),
        cause,
    };
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error("opening", e))?;
    let size = file
        .metadata()
        .map_err(|e| io_error("reading the size of", e))?
        .len();
    // A new file's name is only durable once its directory is fsynced.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("fsyncing the directory of", e))?;
    }
    Ok((file, size))
}

/// A crash or power cut can leave the file ending inside a line (letters
/// not yet synced, so not yet acknowledged: they are dead-lettered again
/// when their messages are read again). The next letter starts on a line of
/// its own, so it stays readable; the partial line is kept as found.
fn end_partial_line(file: &mut File, size: &mut u64, path: &Path) -> Result<(), DeadLetterError> {
    use std::os::unix::fs::FileExt;
    if *size == 0 {
        return Ok(());
    }
    let io_error = |action, cause| DeadLetterError::Io {
        action,
        path: path.to_path_buf(),
        cause,
    };
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, *size - 1)
        .map_err(|e| io_error("reading the end of", e))?;
    if last[0] != b'\n' {
        file.write_all(b"\n")
            .map_err(|e| io_error("ending the partial last line of", e))?;
        *size += 1;
        log::warn!(
            "dead-letter file {} ended inside a line (a crash or power cut interrupted a write of letters not yet acknowledged); the next letter starts a new line",
            path.display()
        );
    }
    Ok(())
}

/// One JSON line for `letter`.
fn encode(letter: &DeadLetter<'_>) -> Vec<u8> {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // A reason quotes what InfluxDB or the decoder said: never a secret.
    let reason = crate::secrets::mask(letter.reason);
    let mut record = Record {
        time,
        kind: letter.kind,
        reason: &reason,
        topic: letter.source.map(|s| s.topic),
        partition: letter.source.map(|s| s.partition),
        offset: letter.source.map(|s| s.offset),
        database: letter.database,
        payload: None,
        payload_base64: None,
        line: None,
        line_base64: None,
        index: None,
        document: None,
        document_base64: None,
    };
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match letter.content {
        Content::Message(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => record.payload = Some(text),
            Err(_) => record.payload_base64 = Some(b64(bytes)),
        },
        Content::RejectedLine(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => record.line = Some(text),
            Err(_) => record.line_base64 = Some(b64(bytes)),
        },
        Content::Document { index, document } => {
            record.index = Some(index);
            match std::str::from_utf8(document) {
                Ok(text) => record.document = Some(text),
                Err(_) => record.document_base64 = Some(b64(document)),
            }
        }
    }
    // Serialising plain strings and integers cannot fail; an empty object
    // keeps the file valid JSON lines if it ever did.
    let mut out = serde_json::to_vec(&record).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out
}

fn log_letter(state: &mut State, letter: &DeadLetter<'_>, disposition: Disposition, path: &Path) {
    let now = Instant::now();
    let earlier = match state.logged.get_mut(letter.kind) {
        None => {
            state.logged.insert(
                letter.kind,
                LogState {
                    at: now,
                    suppressed: 0,
                },
            );
            0
        }
        Some(seen) if now.duration_since(seen.at) < LOG_EVERY => {
            seen.suppressed += 1;
            return;
        }
        Some(seen) => {
            seen.at = now;
            std::mem::take(&mut seen.suppressed)
        }
    };
    let what = match letter.content {
        Content::Message(bytes) => format!("message {}", preview(bytes)),
        Content::RejectedLine(bytes) => format!("line {}", preview(bytes)),
        Content::Document { index, document } => {
            format!("document {} for index {index:?}", preview(document))
        }
    };
    let from = match (letter.source, letter.database) {
        (Some(s), _) => format!(" from {}[{}]@{}", s.topic, s.partition, s.offset),
        (None, Some(db)) => format!(" for database {db:?}"),
        (None, None) => String::new(),
    };
    let fate = match disposition {
        Disposition::Kept => format!("kept in {}", path.display()),
        Disposition::Discarded => "counted, not kept (ignore_parse_point_error = true)".to_string(),
    };
    let more = if earlier > 0 {
        format!(" ({earlier} more of this kind since the last report)")
    } else {
        String::new()
    };
    log::warn!(
        "dead letter ({}){from}: {}; {what} {fate}{more}",
        letter.kind,
        letter.reason
    );
}

/// The start of `bytes`, quoted, for a log line.
fn preview(bytes: &[u8]) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN)]);
    let text: Cow<str> = if bytes.len() > SHOWN {
        format!("{text}…").into()
    } else {
        text
    };
    format!("{text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, max_bytes: u64, max_files: usize, keep: bool) -> DeadLetterStore {
        DeadLetterStore::open(DeadLetterConfig {
            path: dir.join("sub/dir/dead-letter.jsonl"),
            max_bytes,
            max_files,
            keep_rejected_lines: keep,
        })
        .expect("open store")
    }

    fn read_records(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .expect("read dead-letter file")
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    }

    fn message<'a>(payload: &'a [u8], offset: i64) -> DeadLetter<'a> {
        DeadLetter {
            kind: "undecodable",
            reason: "expected value at line 1 column 1",
            source: Some(KafkaSource {
                topic: "metrics",
                partition: 3,
                offset,
            }),
            database: None,
            content: Content::Message(payload),
        }
    }

    #[test]
    fn records_messages_and_lines_as_json_lines_after_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path(), 0, 5, true);
        assert_eq!(
            s.record(&message(b"{not json", 42)).expect("record"),
            Disposition::Kept
        );
        s.record(&message(b"\xff\xfebinary", 43)).expect("record");
        s.record(&DeadLetter::rejected_line(
            "mon_t1",
            b"cpu value= 1",
            "unable to parse: missing field value",
        ))
        .expect("record");
        s.record(&DeadLetter::rejected_line(
            "mon",
            b"cp\xffu v=1",
            "unable to parse: invalid field format",
        ))
        .expect("record");
        s.sync().expect("sync");
        let r = read_records(s.path());
        assert_eq!(r.len(), 4);
        assert_eq!(r[0]["kind"], "undecodable");
        assert_eq!(r[0]["topic"], "metrics");
        assert_eq!(r[0]["partition"], 3);
        assert_eq!(r[0]["offset"], 42);
        assert_eq!(r[0]["payload"], "{not json");
        assert!(r[0].get("database").is_none());
        let time = r[0]["time"].as_str().expect("time");
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(r[1]["payload_base64"].as_str().expect("b64"));
        assert_eq!(raw.expect("valid base64"), b"\xff\xfebinary");
        assert_eq!(r[2]["database"], "mon_t1");
        assert_eq!(r[2]["line"], "cpu value= 1");
        assert_eq!(r[2]["reason"], "unable to parse: missing field value");
        assert!(r[2].get("topic").is_none());
        assert!(r[3]["line_base64"].is_string());
    }

    #[test]
    fn letters_are_buffered_until_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path(), 0, 5, true);
        s.record(&message(b"x", 1)).expect("record");
        assert_eq!(
            std::fs::metadata(s.path()).expect("stat").len(),
            0,
            "written before sync"
        );
        s.sync().expect("sync");
        assert!(std::fs::metadata(s.path()).expect("stat").len() > 0);
        s.sync().expect("a sync with nothing new is fine");
    }

    #[test]
    fn reopening_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = store(dir.path(), 0, 5, true);
            s.record(&message(b"first", 1)).expect("record");
            s.sync().expect("sync");
        }
        let s = store(dir.path(), 0, 5, true);
        s.record(&message(b"second", 2)).expect("record");
        s.sync().expect("sync");
        let r = read_records(s.path());
        assert_eq!(
            (r[0]["payload"].as_str(), r[1]["payload"].as_str()),
            (Some("first"), Some("second"))
        );
    }

    #[test]
    fn rotates_above_the_size_cap_and_keeps_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path(), 1000, 2, true);
        let payload = vec![b'p'; 300];
        for i in 0..20 {
            s.record(&message(&payload, i)).expect("record");
        }
        s.sync().expect("sync");
        let base = s.path().to_path_buf();
        let rotated = [numbered(&base, 1), numbered(&base, 2)];
        for p in rotated.iter().chain([&base]) {
            let len = std::fs::metadata(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .len();
            assert!(len > 0 && len <= 1000, "{} has {len} bytes", p.display());
        }
        assert!(!numbered(&base, 3).exists(), "more than max_files kept");
        let offsets = |p: &Path| {
            read_records(p)
                .iter()
                .map(|r| r["offset"].as_i64().expect("offset"))
                .collect::<Vec<_>>()
        };
        let (old, older, current) = (offsets(&rotated[0]), offsets(&rotated[1]), offsets(&base));
        assert_eq!(*current.last().expect("current not empty"), 19);
        assert_eq!(
            older.last().map(|o| o + 1),
            old.first().copied(),
            "rotated files out of order"
        );
        assert_eq!(old.last().map(|o| o + 1), current.first().copied());
        assert_eq!(s.counts().total, 20);
    }

    #[test]
    fn max_files_zero_keeps_only_the_current_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path(), 500, 0, true);
        for i in 0..10 {
            s.record(&message(&[b'q'; 300], i)).expect("record");
        }
        s.sync().expect("sync");
        assert!(!numbered(s.path(), 1).exists());
        assert_eq!(read_records(s.path()).len(), 1);
    }

    #[test]
    fn counts_by_kind_and_ignore_parse_point_error_keeps_no_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path(), 0, 5, false);
        assert_eq!(
            s.record(&DeadLetter::rejected_line(
                "mon",
                b"bad",
                "unable to parse: x"
            ))
            .expect("record"),
            Disposition::Discarded
        );
        s.record(&DeadLetter::rejected_line(
            "mon",
            b"bad2",
            "unable to parse: x",
        ))
        .expect("record");
        assert_eq!(
            s.record(&message(b"m", 9)).expect("record"),
            Disposition::Kept,
            "messages are always kept"
        );
        s.sync().expect("sync");
        let r = read_records(s.path());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["payload"], "m");
        let c = s.counts();
        assert_eq!((c.total, c.kept, c.discarded), (3, 1, 2));
        assert_eq!(c.by_kind.get(KIND_INFLUXDB_REJECTED), Some(&2));
        assert_eq!(c.by_kind.get("undecodable"), Some(&1));
    }

    #[test]
    fn threads_share_one_store_without_losing_or_mixing_letters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path(), 4000, 100, true);
        std::thread::scope(|scope| {
            for t in 0..4i64 {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..250 {
                        s.record(&message(
                            format!("thread {t} letter {i}").as_bytes(),
                            t * 1000 + i,
                        ))
                        .expect("record");
                    }
                    s.sync().expect("sync");
                });
            }
        });
        let mut offsets = Vec::new();
        for n in (1..=100).rev() {
            let p = numbered(s.path(), n);
            if p.exists() {
                offsets.extend(
                    read_records(&p)
                        .iter()
                        .map(|r| r["offset"].as_i64().expect("offset")),
                );
            }
        }
        offsets.extend(
            read_records(s.path())
                .iter()
                .map(|r| r["offset"].as_i64().expect("offset")),
        );
        assert_eq!(offsets.len(), 1000);
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(offsets.len(), 1000);
    }

    #[test]
    fn an_unwritable_location_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").expect("create file");
        let e = DeadLetterStore::open(DeadLetterConfig {
            path: blocker.join("dead-letter.jsonl"),
            max_bytes: 0,
            max_files: 1,
            keep_rejected_lines: true,
        })
        .expect_err("a file as directory must fail");
        assert!(
            e.to_string().contains(&blocker.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn a_partial_last_line_is_ended_before_the_next_letter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path(), 0, 5, true);
        s.record(&message(b"first", 1)).expect("record");
        s.sync().expect("sync");
        let path = s.path().to_path_buf();
        drop(s);
        // What a crash in the middle of a buffered write leaves.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(br#"{"time":"2026-11-21T2"#).expect("write");
        drop(f);
        let s = store(dir.path(), 0, 5, true);
        s.record(&message(b"second", 2)).expect("record");
        s.sync().expect("sync");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let second: serde_json::Value = serde_json::from_str(lines[2]).expect("a line of its own");
        assert_eq!(second["payload"], "second");
    }

    #[test]
    fn power_loss_after_a_rotation_keeps_every_synced_letter() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut fs = faultfs::FaultFs::mount(tmp.path().join("backing"), tmp.path().join("mnt"))
            .expect("mount faultfs (needs /dev/fuse; scripts/test installs Debian's fuse3)");
        let config = DeadLetterConfig {
            path: fs.path().join("dead-letter.jsonl"),
            max_bytes: 4096,
            max_files: 3,
            keep_rejected_lines: true,
        };
        let payload = vec![b'x'; 500];
        {
            let s = DeadLetterStore::open(config.clone()).expect("open store");
            // Synced letter by letter, as flush points do: six rotations.
            for offset in 0..50 {
                s.record(&message(&payload, offset)).expect("record");
                s.sync().expect("sync");
            }
        }
        fs.power_cut(faultfs::Cut::DropUnsynced).expect("power cut");
        let mut offsets: Vec<i64> = (0..=3)
            .map(|n| match n {
                0 => config.path.clone(),
                n => numbered(&config.path, n),
            })
            .filter(|p| p.exists())
            .flat_map(|p| read_records(&p))
            .map(|r| r["offset"].as_i64().expect("offset"))
            .collect();
        offsets.sort_unstable();
        // The newest letters survive the cut, in the current file and the
        // rotated ones (older files were rotated away on purpose).
        let kept = offsets.len() as i64;
        assert!(kept >= 15, "{offsets:?}");
        assert_eq!(offsets, (50 - kept..50).collect::<Vec<_>>());
    }
}
