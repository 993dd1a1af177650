//! Logging as operators see it: the oslo line layout, levels, the log file
//! and its reopening for logrotate, by call and by a real SIGHUP.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{Level, Log, Record};
use monasca_persister::config::DefaultSection;
use monasca_persister::logging::{self, LogHandle, LoggingError};

fn to_file(dir: &Path, debug: bool) -> DefaultSection {
    DefaultSection {
        debug,
        log_file: Some(PathBuf::from("persister.log")),
        log_dir: Some(dir.to_path_buf()),
        use_stderr: false,
    }
}

/// A logger that is not installed process-wide, so tests do not share one.
fn logger(settings: &DefaultSection) -> (Box<dyn Log>, LogHandle) {
    let (dispatch, handle) = logging::dispatch(settings).unwrap_or_else(|e| panic!("{e}"));
    let (_, log) = dispatch.into_log();
    (log, handle)
}

fn emit(log: &dyn Log, level: Level, target: &str, text: &str) {
    log.log(
        &Record::builder()
            .level(level)
            .target(target)
            .args(format_args!("{text}"))
            .build(),
    );
    log.flush();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn lines_follow_the_oslo_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = logger(&to_file(tmp.path(), false));
    emit(
        &*log,
        Level::Info,
        "monasca_persister::consumer",
        "partition 3 assigned",
    );
    emit(&*log, Level::Warn, "monasca_persister::writer", "retrying");
    emit(&*log, Level::Error, "monasca_persister", "two\nlines");

    let pid = std::process::id();
    let ts = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}";
    let expected = regex::Regex::new(&format!(
        "^{ts} {pid} INFO monasca_persister\\.consumer \\[-\\] partition 3 assigned\n\
         {ts} {pid} WARNING monasca_persister\\.writer \\[-\\] retrying\n\
         {ts} {pid} ERROR monasca_persister \\[-\\] two\n\
         {ts} {pid} ERROR monasca_persister \\[-\\] lines\n$"
    ))
    .unwrap();
    let text = read(&tmp.path().join("persister.log"));
    assert!(expected.is_match(&text), "{text}");
}

#[test]
fn debug_decides_the_level_and_noisy_dependencies_stay_quiet() {
    for debug in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let (log, _) = logger(&to_file(tmp.path(), debug));
        emit(
            &*log,
            Level::Debug,
            "monasca_persister::pipeline",
            "ours at debug",
        );
        emit(
            &*log,
            Level::Info,
            "monasca_persister::pipeline",
            "ours at info",
        );
        emit(
            &*log,
            Level::Trace,
            "monasca_persister::pipeline",
            "ours at trace",
        );
        emit(
            &*log,
            Level::Info,
            "ureq::unversioned::transport",
            "ureq at info",
        );
        emit(&*log, Level::Debug, "rustls::client", "rustls at debug");
        emit(&*log, Level::Warn, "ureq::pool", "ureq at warn");
        let text = read(&tmp.path().join("persister.log"));
        assert_eq!(
            text.contains("ours at debug"),
            debug,
            "debug = {debug}:\n{text}"
        );
        assert!(text.contains("ours at info"), "{text}");
        assert!(!text.contains("trace"), "{text}");
        assert!(
            !text.contains("ureq at info") && !text.contains("rustls at debug"),
            "{text}"
        );
        assert!(
            text.contains("WARNING ureq.pool [-] ureq at warn"),
            "{text}"
        );
    }
}

#[test]
fn the_log_file_is_appended_to() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("persister.log");
    fs::write(&path, "an earlier line\n").unwrap();
    let (log, handle) = logger(&to_file(tmp.path(), false));
    assert_eq!(handle.path(), Some(path.as_path()));
    emit(&*log, Level::Info, "monasca_persister", "a new line");
    let text = read(&path);
    assert!(
        text.starts_with("an earlier line\n") && text.ends_with("[-] a new line\n"),
        "{text}"
    );
}

#[test]
fn reopen_moves_new_lines_to_a_new_file_after_logrotate_renamed_the_old() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, handle) = logger(&to_file(tmp.path(), false));
    let path = tmp.path().join("persister.log");
    let rotated = tmp.path().join("persister.log.1");

    emit(&*log, Level::Info, "monasca_persister", "before rotation");
    fs::rename(&path, &rotated).unwrap();
    emit(
        &*log,
        Level::Info,
        "monasca_persister",
        "still to the renamed file",
    );
    assert!(!path.exists());

    handle.reopen().unwrap();
    assert_eq!(handle.reopen_count(), 1);
    emit(&*log, Level::Info, "monasca_persister", "after reopen");

    let old = read(&rotated);
    let new = read(&path);
    assert!(
        old.contains("before rotation") && old.contains("still to the renamed file"),
        "{old}"
    );
    assert!(!old.contains("after reopen"), "{old}");
    assert_eq!(new.lines().count(), 1, "{new}");
    assert!(new.ends_with("[-] after reopen\n"), "{new}");
}

#[test]
fn a_failed_reopen_keeps_writing_to_the_old_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    fs::create_dir(&dir).unwrap();
    let (log, handle) = logger(&to_file(&dir, false));
    let moved = tmp.path().join("logs.old");
    fs::rename(&dir, &moved).unwrap();

    let e = handle.reopen().unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "cannot reopen log file {}",
            dir.join("persister.log").display()
        )),
        "{e}"
    );
    emit(&*log, Level::Info, "monasca_persister", "kept");
    assert!(read(&moved.join("persister.log")).contains("kept"));
}

#[test]
fn sighup_reopens_the_log_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, handle) = logger(&to_file(tmp.path(), false));
    let path = tmp.path().join("persister.log");
    let watcher = logging::watch_sighup(handle.clone()).unwrap();

    emit(&*log, Level::Info, "monasca_persister", "before SIGHUP");
    fs::rename(&path, tmp.path().join("persister.log.1")).unwrap();
    let seen = handle.reopen_count();
    signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
    assert!(
        handle.wait_for_reopen(seen, Duration::from_secs(10)),
        "SIGHUP did not reopen the log file"
    );
    emit(&*log, Level::Info, "monasca_persister", "after SIGHUP");
    watcher.stop();

    assert!(read(&path).ends_with("[-] after SIGHUP\n"));
    assert!(!read(&tmp.path().join("persister.log.1")).contains("after SIGHUP"));
}

#[test]
fn an_unwritable_log_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let missing_dir = tmp.path().join("no-such-dir");
    let err = logging::dispatch(&to_file(&missing_dir, false))
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, LoggingError::Open { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot open log file {} for appending: ",
            missing_dir.join("persister.log").display()
        )),
        "{text}"
    );
}

#[test]
fn without_a_log_file_there_is_nothing_to_reopen() {
    let settings = DefaultSection {
        debug: false,
        log_file: None,
        log_dir: Some(PathBuf::from("/nonexistent")),
        use_stderr: false,
    };
    let (_, handle) = logger(&settings);
    assert_eq!(handle.path(), None);
    handle.reopen().unwrap();
}
