//! The crash tests' driver and judge: runs the appending helper as a child
//! process, collects the appends it reported durable, kills it, and checks
//! what a reopened WAL holds against those reports.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use wal::Wal;

use super::workload::{batch_len, payload};

const HELPER: &str = env!("CARGO_BIN_EXE_wal-crash-helper");

/// (thread, batch) -> (first id, count), as reported by the helpers.
pub type Reported = BTreeMap<(u64, u64), (u64, u64)>;

/// Starts the helper appending to `dir` from `threads` threads (with
/// segments of `segment_bytes`), reads `reports` reports into `reported`,
/// then SIGKILLs it: no destructor, no flush, nothing.
pub fn append_then_kill(
    dir: &Path,
    threads: u64,
    segment_bytes: u64,
    reports: u32,
    reported: &mut Reported,
    ctx: &str,
) {
    let mut child = Command::new(HELPER)
        .arg("append")
        .arg(dir)
        .arg(threads.to_string())
        .arg(segment_bytes.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wal-crash-helper");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    for _ in 0..reports {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            let out = child.wait_with_output().expect("helper output");
            panic!(
                "{ctx}: helper ended early: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let f: Vec<u64> = line
            .split(' ')
            .skip(1)
            .map(|x| x.parse().expect("number"))
            .collect();
        assert_eq!(f.len(), 4, "{ctx}: bad report {line:?}");
        assert!(
            reported.insert((f[0], f[1]), (f[2], f[3])).is_none(),
            "{ctx}: batch {} of thread {} reported twice",
            f[1],
            f[0]
        );
    }
    child.kill().expect("SIGKILL the helper");
    let _ = child.wait();
}

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

/// Checks a reopened WAL against the reports: every reported append is
/// there with its records intact, in order and with the ids reported; no
/// batch is partial; the offsets cover exactly the batches present. Batches
/// the helper acknowledged (all but every fifth) may be present or not.
pub fn check(wal: &Wal, reported: &Reported, threads: u64, ctx: &str) {
    // Records present, grouped by (thread, batch), in replay order.
    let mut seen: BTreeMap<(u64, u64), Vec<(u64, u64)>> = BTreeMap::new();
    let mut last_id = None;
    for item in wal.pending_from(None) {
        let (id, record) = item.unwrap_or_else(|e| panic!("{ctx}: replay: {e}"));
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
    for t in 0..threads {
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
        for k in (0..=newest).filter(|k| k % 5 == 1) {
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
        if k % 5 != 1 {
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
        if k % 5 == 1 {
            assert!(
                seen.contains_key(&(t, k)),
                "{ctx}: reported batch {k} of thread {t} ({n} records) is lost"
            );
        }
    }
}
