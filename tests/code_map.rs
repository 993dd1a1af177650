//! ARCHITECTURE.md, the code map, against the tree: every source file of
//! the daemon and of the crates beside it is named there, and every file
//! it names exists. Fails when code moves and the map does not.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.rs` files below `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source directories the map covers: the daemon's, the WAL's and each
/// crate's under `crates/`.
fn source_dirs() -> Vec<PathBuf> {
    let root = root();
    let mut dirs = vec![root.join("src"), root.join("wal/src")];
    let crates = fs::read_dir(root.join("crates")).expect("crates/ is readable");
    for entry in crates.flatten() {
        dirs.push(entry.path().join("src"));
    }
    dirs
}

/// The `name.rs` words of the map.
fn named_files(map: &str) -> BTreeSet<String> {
    map.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| w.len() > 3 && w.ends_with(".rs"))
        .map(str::to_string)
        .collect()
}

fn map() -> String {
    fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md is readable")
}

#[test]
fn every_source_file_is_on_the_map() {
    let named = named_files(&map());
    let mut files = Vec::new();
    for dir in source_dirs() {
        rust_files(&dir, &mut files);
    }
    assert!(files.len() > 50, "found only {files:?}");
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            !named.contains(name.as_ref())
        })
        .map(|f| f.strip_prefix(root()).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name these source files: {missing:?}"
    );
}

#[test]
fn every_file_on_the_map_exists() {
    let mut files = Vec::new();
    for dir in [
        "src", "wal", "crates", "tests", "examples", "benches", "fuzz",
    ] {
        rust_files(&root().join(dir), &mut files);
    }
    let existing: BTreeSet<String> = files
        .iter()
        .filter_map(|f| Some(f.file_name()?.to_string_lossy().into_owned()))
        .collect();
    let gone: Vec<String> = named_files(&map())
        .into_iter()
        .filter(|name| !existing.contains(name))
        .collect();
    assert!(
        gone.is_empty(),
        "ARCHITECTURE.md names files that are not in the tree: {gone:?}"
    );
}

#[test]
fn a_file_missing_from_the_map_is_noticed() {
    let named = named_files("`src/a.rs` the a; `b.rs`, and c.rs.");
    assert_eq!(
        named,
        BTreeSet::from(["a.rs".to_string(), "b.rs".to_string(), "c.rs".to_string()])
    );
    assert!(!named.contains("d.rs"));
}
