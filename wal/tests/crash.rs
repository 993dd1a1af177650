//! Crash safety with a real child process: the helper appends numbered
//! batches (with offsets) and reports each durable one; we SIGKILL it after a
//! random number of reports, many times over, and after every kill check
//! that reopening shows every reported append, in order, with its offsets,
//! and never part of a batch. Also: the lock is refused across processes and
//! dies with its holder.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wal::{Wal, WalError, WalOptions};

const HELPER: &str = env!("CARGO_BIN_EXE_wal-crash-helper");

#[path = "common/workload.rs"]
mod workload;
use workload::{batch_len, payload};

/// (thread, batch, record) from a payload.
fn parse_payload(p: &[u8]) -> (u64, u64, u64) {
    let s = std::str::from_utf8(p).expect("payload is ASCII");
    let head = s.split(':').next().expect("payload has a header");
    let (t, rest) = head[1..]
        .split_once('b')
        .expect("payload header t<t>b<k>r<i>");
    let (k, i) = rest.split_once('r').expect("payload header t<t>b<k>r<i>");
    (
        t.parse().expect("thread number"),
        k.parse().expect("batch number"),
        i.parse().expect("record number"),
    )
}

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

/// (thread, batch) -> (first id, count), as reported by the helpers.
type Reported = BTreeMap<(u64, u64), (u64, u64)>;

#[test]
fn sigkill_at_random_moments_never_loses_a_reported_append() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let seed = fastrand::u64(..);
    eprintln!("seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut reported = Reported::new();
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < 40 && started.elapsed() < Duration::from_secs(20) {
        rounds += 1;
        let mut child = spawn("append", &dir);
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let kill_after = rng.u32(1..40);
        for _ in 0..kill_after {
            let Some(Ok(line)) = lines.next() else {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(
                    &mut child.stderr.take().expect("stderr"),
                    &mut err,
                );
                panic!("helper ended early (round {rounds}, seed {seed}): {err}");
            };
            let f: Vec<u64> = line
                .split(' ')
                .skip(1)
                .map(|x| x.parse().expect("number"))
                .collect();
            assert_eq!(f.len(), 4, "bad report {line:?}");
            assert!(
                reported.insert((f[0], f[1]), (f[2], f[3])).is_none(),
                "batch {} of thread {} reported twice",
                f[1],
                f[0]
            );
        }
        // Child::kill sends SIGKILL: no destructor, no flush, nothing.
        child.kill().expect("SIGKILL the helper");
        let _ = child.wait();

        let wal = Wal::open(&dir, WalOptions::default()).expect("reopen after SIGKILL");
        check(&wal, &reported, rounds, seed);
    }
    eprintln!("{rounds} kills, {} batches reported", reported.len());
    assert!(rounds >= 10, "only {rounds} rounds ran in the time budget");
}

fn check(wal: &Wal, reported: &Reported, round: u32, seed: u64) {
    let ctx = format!("round {round}, seed {seed}");
    // Records present, grouped by (thread, batch), in replay order.
    let mut seen: BTreeMap<(u64, u64), Vec<(u64, u64)>> = BTreeMap::new();
    let mut last_id = None;
    for item in wal.pending_from(None) {
        let (id, record) = item.expect("replay");
        assert!(last_id < Some(id), "{ctx}: replay out of order at {id}");
        last_id = Some(id);
        let (t, k, i) = parse_payload(&record.payload);
        assert_eq!(
            record.payload,
            payload(t, k, i),
            "{ctx}: payload of t{t} b{k} r{i}"
        );
        assert_eq!(record.database, format!("db{}", i % 3), "{ctx}");
        assert_eq!(record.points, i as u32 + 1, "{ctx}");
        seen.entry((t, k)).or_default().push((id.get(), i));
    }
    for t in 0..2u64 {
        let Some(last) = reported
            .keys()
            .filter(|(rt, _)| *rt == t)
            .map(|(_, k)| *k)
            .max()
        else {
            continue;
        };
        let batch_offset = wal
            .offset(&format!("batch/{t}"))
            .expect("offset")
            .expect("batch offset stored") as u64;
        // More may have become durable than we read: reports still in the
        // pipe, and the append in flight at the kill.
        assert!(
            batch_offset > last,
            "{ctx}: thread {t}: batch offset {batch_offset}, last reported batch {last}"
        );
        let newest = batch_offset - 1;
        assert_eq!(
            wal.offset(&format!("p/{t}/{}", newest % 4))
                .expect("offset"),
            Some(newest as i64),
            "{ctx}: partition offset of thread {t}'s newest batch"
        );
        // Every batch the offsets cover is there, reported or not (unless
        // the helper acknowledged it).
        for k in (0..=newest).filter(|k| k % 5 != 0) {
            assert!(
                seen.contains_key(&(t, k)),
                "{ctx}: offsets cover batch {k} of thread {t} but its records are missing"
            );
        }
        for &(_, k) in seen.keys().filter(|(st, _)| *st == t) {
            assert!(
                k <= newest,
                "{ctx}: batch {k} of thread {t} present but its offset is only {batch_offset}"
            );
        }
    }
    for (&(t, k), recs) in &seen {
        if k % 5 == 0 {
            continue; // acknowledged by the helper: any subset may remain
        }
        let n = batch_len(k);
        assert_eq!(
            recs.len() as u64,
            n,
            "{ctx}: batch {k} of thread {t} is partial"
        );
        for (j, &(id, i)) in recs.iter().enumerate() {
            assert_eq!(i, j as u64, "{ctx}: batch {k} of thread {t} out of order");
            if let Some(&(first, _)) = reported.get(&(t, k)) {
                assert_eq!(id, first + i, "{ctx}: t{t} b{k} r{i} has another id");
            }
        }
    }
    for (&(t, k), &(_, n)) in reported {
        if k % 5 != 0 {
            assert!(
                seen.contains_key(&(t, k)),
                "{ctx}: reported batch {k} of thread {t} ({n} records) is lost"
            );
        }
    }
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
