//! The persister under conditions that are nobody's fault in particular,
//! proven with the real binary: paths it may not use, secrets that
//! librdkafka would quote, hostile clients of the health endpoint, and a
//! disk that fills while InfluxDB is down.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use monasca_persister::config::Config;
use support::child::{wait_until, Persister, BIN};
use support::influxd::Influxd;
use support::kafka::Kafka;
use support::persister::{self as p, METRICS};

const LONG: Duration = Duration::from_secs(120);

/// The user the binary runs as where permissions must bite: root bypasses
/// them, so as root the child runs as `nobody`.
const NOBODY: u32 = 65534;

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A directory the child may write into.
fn writable_dir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).expect("create directory");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    if running_as_root() {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
    }
    path.to_path_buf()
}

/// A directory the child may read but not write into.
fn read_only_dir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).expect("create directory");
    let mode = if running_as_root() { 0o755 } else { 0o555 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path.to_path_buf()
}

/// The binary, runnable by the unprivileged user (a copy in `dir` as root:
/// the checkout may live below a directory `nobody` cannot enter).
fn unprivileged_command(dir: &Path) -> Command {
    if !running_as_root() {
        return Command::new(BIN);
    }
    let copy = dir.join("monasca-persister");
    if !copy.exists() {
        std::fs::copy(BIN, &copy).expect("copy the binary");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut command = Command::new(copy);
    command.uid(NOBODY).gid(NOBODY);
    command
}

/// A temporary directory everyone may enter (tempfile makes them private).
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Runs the binary unprivileged with `args`; (exit code, stdout + stderr).
fn run_unprivileged(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = unprivileged_command(dir)
        .args(args)
        .output()
        .expect("run monasca-persister");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Exit 1, one error line naming `path`, and the OS error exactly once.
fn assert_one_clear_line(what: &str, (code, output): (Option<i32>, String), path: &Path) {
    assert_eq!(code, Some(1), "{what}: exit code\n{output}");
    let errors: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("error") || l.contains(" ERROR "))
        .collect();
    assert_eq!(errors.len(), 1, "{what}: one error line\n{output}");
    let line = errors[0];
    eprintln!("{what}: {line}");
    assert!(
        line.contains(&path.display().to_string()),
        "{what}: the line names {}\n{output}",
        path.display()
    );
    assert_eq!(
        output.matches("Permission denied").count(),
        1,
        "{what}: the OS error once\n{output}"
    );
    assert_eq!(
        output.matches("(os error 13)").count(),
        1,
        "{what}: the OS error once\n{output}"
    );
}

/// A configuration file for the unprivileged child; `extra` is appended.
fn unprivileged_config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let state = writable_dir(&dir.join(format!("{name}-state")));
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(
        &path,
        format!(
            "[wal]\npath = {}/wal\ndead_letter_path = {}/dl.jsonl\n[health]\nenabled = false\n{extra}",
            state.display(),
            state.display()
        ),
    )
    .expect("write config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

#[test]
fn paths_it_may_not_use_give_one_clear_line_with_the_os_error_once() {
    let dir = open_tempdir();
    let d = dir.path();
    let arg = |p: &Path| p.to_string_lossy().into_owned();

    // The configuration file.
    let conf = unprivileged_config(d, "unreadable", "");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let out = run_unprivileged(d, &["--config-file", &arg(&conf)]);
    assert_one_clear_line("config file", out, &conf);
    let out = run_unprivileged(d, &["check-config", "--config-file", &arg(&conf)]);
    assert_one_clear_line("config file (check-config)", out, &conf);

    // The log directory.
    let logs = read_only_dir(&d.join("logs"));
    let conf = unprivileged_config(
        d,
        "log",
        &format!(
            "[DEFAULT]\nlog_dir = {}\nlog_file = persister.log\n",
            logs.display()
        ),
    );
    let out = run_unprivileged(d, &["--config-file", &arg(&conf)]);
    assert_one_clear_line("log directory", out, &logs.join("persister.log"));

    // The WAL directory.
    let locked = read_only_dir(&d.join("locked-wal"));
    let conf = unprivileged_config(
        d,
        "wal",
        &format!("[wal]\npath = {}/wal\n", locked.display()),
    );
    let out = run_unprivileged(d, &["--config-file", &arg(&conf)]);
    assert_one_clear_line("WAL directory", out, &locked.join("wal"));

    // The dead-letter directory.
    let locked = read_only_dir(&d.join("locked-dl"));
    let conf = unprivileged_config(
        d,
        "dead-letter",
        &format!("[wal]\ndead_letter_path = {}/dl.jsonl\n", locked.display()),
    );
    let out = run_unprivileged(d, &["--config-file", &arg(&conf)]);
    assert_one_clear_line("dead-letter directory", out, &locked.join("dl.jsonl"));
}
