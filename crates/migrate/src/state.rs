//! The three state files the reference tool keeps, in the same format so
//! that a migration started with it can be continued with this one:
//!
//! - `migrate-measurements`: the measurements to migrate, one per line,
//!   listed once and then read back instead of asking InfluxDB again;
//! - `migrate-success`: measurements completely copied, one per line,
//!   appended as each finishes and skipped by later runs;
//! - `migrate-failure`: `<measurement>\t<error>` per failed measurement,
//!   emptied at the start of every run.
//!
//! Line protocol cannot carry a newline in a measurement name, so one name
//! per line is unambiguous. Lines are taken verbatim (no trimming: a name
//! may begin or end with a space).

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// File name of the measurement cache.
pub const MEASUREMENTS_FILE: &str = "migrate-measurements";
/// File name of the finished-measurements list.
pub const SUCCESS_FILE: &str = "migrate-success";
/// File name of the failure list.
pub const FAILURE_FILE: &str = "migrate-failure";

/// A state file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {cause}", .path.display())]
pub struct StateError {
    /// What was being done (`reading`, `appending to`…).
    pub action: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why (in the message, not chained).
    pub cause: io::Error,
}

/// The state files in one directory.
#[derive(Debug, Clone)]
pub struct StateFiles {
    dir: PathBuf,
}

impl StateFiles {
    /// The state files in `dir` (which must exist to write them).
    pub fn new(dir: impl Into<PathBuf>) -> StateFiles {
        StateFiles { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one state file.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The cached measurement list; `None` when there is none yet (or it is
    /// empty, which the reference treats the same way).
    pub fn cached_measurements(&self) -> Result<Option<Vec<String>>, StateError> {
        let names = self.read_lines(MEASUREMENTS_FILE)?;
        Ok((!names.is_empty()).then_some(names))
    }

    /// Writes the measurement cache (whole or not at all).
    pub fn save_measurements(&self, names: &[String]) -> Result<(), StateError> {
        let path = self.path(MEASUREMENTS_FILE);
        let temporary = self.path(&format!(".{MEASUREMENTS_FILE}.tmp"));
        let mut text = String::new();
        for name in names {
            text.push_str(name);
            text.push('\n');
        }
        fs::write(&temporary, text)
            .and_then(|()| fs::rename(&temporary, &path))
            .map_err(|cause| StateError {
                action: "writing",
                path,
                cause,
            })
    }

    /// The measurements already migrated.
    pub fn finished(&self) -> Result<HashSet<String>, StateError> {
        Ok(self.read_lines(SUCCESS_FILE)?.into_iter().collect())
    }

    /// Records `measurement` as migrated.
    pub fn record_success(&self, measurement: &str) -> Result<(), StateError> {
        self.append(SUCCESS_FILE, &format!("{measurement}\n"))
    }

    /// Empties the failure list: it describes the latest run only.
    pub fn reset_failures(&self) -> Result<(), StateError> {
        let path = self.path(FAILURE_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StateError {
                action: "removing",
                path,
                cause: e,
            }),
            _ => Ok(()),
        }
    }

    /// Records that `measurement` failed, and why (on one line).
    pub fn record_failure(&self, measurement: &str, error: &str) -> Result<(), StateError> {
        let one_line = error.replace(['\n', '\r'], " ");
        self.append(FAILURE_FILE, &format!("{measurement}\t{one_line}\n"))
    }

    /// The failure list of the latest run: (measurement, error).
    pub fn failures(&self) -> Result<Vec<(String, String)>, StateError> {
        Ok(self
            .read_lines(FAILURE_FILE)?
            .into_iter()
            .map(|line| match line.split_once('\t') {
                Some((m, e)) => (m.to_string(), e.to_string()),
                None => (line, String::new()),
            })
            .collect())
    }

    fn read_lines(&self, name: &str) -> Result<Vec<String>, StateError> {
        let path = self.path(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .split('\n')
                .map(|line| line.strip_suffix('\r').unwrap_or(line))
                .filter(|line| !line.is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(cause) => Err(StateError {
                action: "reading",
                path,
                cause,
            }),
        }
    }

    fn append(&self, name: &str, text: &str) -> Result<(), StateError> {
        let path = self.path(name);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|cause| StateError {
                action: "appending to",
                path,
                cause,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_keeps_names_verbatim() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateFiles::new(dir.path());
        assert_eq!(state.cached_measurements().expect("read"), None);
        let names = vec![" padded ".to_string(), "a\tb \"c\"".to_string()];
        state.save_measurements(&names).expect("write");
        assert_eq!(state.cached_measurements().expect("read"), Some(names));
        state.record_success(" padded ").expect("append");
        assert!(state.finished().expect("read").contains(" padded "));
        state
            .record_failure("m", "line one\nline two")
            .expect("append");
        assert_eq!(
            state.failures().expect("read"),
            [("m".to_string(), "line one line two".to_string())]
        );
        state.reset_failures().expect("reset");
        state.reset_failures().expect("reset twice");
        assert!(state.failures().expect("read").is_empty());
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateFiles::new(dir.path().join("missing-dir"));
        let e = state.record_success("m").expect_err("no directory");
        assert!(e.to_string().contains("missing-dir"), "{e}");
    }
}
