//! Crash safety with a real child process: the helper appends numbered
//! batches (with offsets) and reports each durable one; we SIGKILL it after a
//! random number of reports, many times over, and after every kill check
//! that reopening shows every reported append, in order, with its offsets,
//! and never part of a batch. Also: the lock is refused across processes and
//! dies with its holder.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use wal::{Wal, WalError, WalOptions};

const HELPER: &str = env!("CARGO_BIN_EXE_wal-crash-helper");

mod common {
    #[path = "survivors.rs"]
    pub mod survivors;
    #[path = "workload.rs"]
    pub mod workload;
}
use common::survivors::{append_then_kill, check, Reported};

/// SIGKILLs per run.
const ROUNDS: u32 = 25;

/// Appending threads of the helper.
const THREADS: u64 = 2;

fn spawn(mode: &str, dir: &std::path::Path) -> Child {
    Command::new(HELPER)
        .arg(mode)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wal-crash-helper")
}

#[test]
fn sigkill_at_random_moments_never_loses_a_reported_append() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let seed = fastrand::u64(..);
    eprintln!("seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut reported = Reported::new();
    let mut rounds = 0;
    // A fixed number of rounds, not a time budget: a loaded machine runs
    // them more slowly, never fewer of them.
    while rounds < ROUNDS {
        rounds += 1;
        let ctx = format!("round {rounds}, seed {seed}");
        let defaults = WalOptions::default();
        append_then_kill(
            &dir,
            THREADS,
            defaults.segment_bytes,
            rng.u32(1..40),
            &mut reported,
            &ctx,
        );
        let wal = Wal::open(&dir, defaults).expect("reopen after SIGKILL");
        check(&wal, &reported, THREADS, &ctx);
    }
    eprintln!("{rounds} kills, {} batches reported", reported.len());
}

#[test]
fn a_wal_open_in_another_process_is_refused_and_released_by_its_death() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let mut holder = spawn("hold", &dir);
    let mut lines = BufReader::new(holder.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some("ready"));

    match Wal::open(&dir, WalOptions::default()) {
        Err(WalError::Locked { holder: h, .. }) => {
            assert!(
                h.contains(&holder.id().to_string()),
                "holder {h:?} should name pid {}",
                holder.id()
            )
        }
        other => panic!("expected Locked, got {other:?}"),
    }

    // SIGKILL: the kernel drops the flock, nothing stale is left behind.
    holder.kill().expect("kill holder");
    let _ = holder.wait();
    let wal = Wal::open(&dir, WalOptions::default()).expect("open after the holder died");

    // And the other way round: we hold it, a second process is refused.
    let out = spawn("try-open", &dir)
        .wait_with_output()
        .expect("run try-open");
    assert_eq!(
        out.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked by another running process"));
    drop(wal);
    let out = spawn("try-open", &dir)
        .wait_with_output()
        .expect("run try-open");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_held_wal_is_released_when_the_holder_exits_normally() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let mut holder = spawn("hold", &dir);
    let mut lines = BufReader::new(holder.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some("ready"));
    let mut stdin = holder.stdin.take().expect("stdin");
    let _ = stdin.write_all(b"bye\n");
    drop(stdin);
    assert!(holder.wait().expect("holder exits").success());
    Wal::open(&dir, WalOptions::default()).expect("open after the holder exited");
}
