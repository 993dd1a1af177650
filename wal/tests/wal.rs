//! Behaviour of the WAL through its public API: replay order, ack
//! semantics, offsets, counters across restarts, the end of an unfinished
//! append, refusal of a locked or foreign directory, concurrent appenders,
//! and space reclamation over a long append/ack cycle. Damage: `damage.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wal::{Record, RecordId, RecordRef, Wal, WalError, WalOptions};

fn opts() -> WalOptions {
    WalOptions::default()
}

fn records(prefix: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            database: format!("db{}", i % 2),
            kind: (i % 3) as u8,
            points: i as u32 + 1,
            payload: format!("{prefix}-{i}:{}", "x".repeat(i % 250)).into_bytes(),
        })
        .collect()
}

fn refs(records: &[Record]) -> Vec<RecordRef<'_>> {
    records.iter().map(Record::as_ref).collect()
}

fn pending(wal: &Wal) -> Vec<(RecordId, Record)> {
    wal.pending_from(None)
        .collect::<Result<Vec<_>, _>>()
        .expect("replay")
}

fn wal_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("wal")
}

#[test]
fn replay_returns_records_in_append_order_from_any_point() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(&wal_dir(&tmp), opts()).unwrap();
    let a = records("a", 100);
    let b = records("b", 1);
    let c = records("c", 500);
    let ids_a = wal.append(&refs(&a), &[]).unwrap();
    let ids_b = wal.append(&refs(&b), &[]).unwrap();
    let ids_c = wal.append(&refs(&c), &[]).unwrap();
    assert_eq!((ids_a.len(), ids_b.len(), ids_c.len()), (100, 1, 500));
    assert!(ids_a.last() < ids_b.first() && ids_b.last() < ids_c.first());

    let all: Vec<Record> = a.iter().chain(&b).chain(&c).cloned().collect();
    let got = pending(&wal);
    assert_eq!(got.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), all);
    let ids: Vec<RecordId> = ids_a
        .iter()
        .chain(ids_b.iter())
        .chain(ids_c.iter())
        .collect();
    assert_eq!(got.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);

    // From the middle of a frame, from a batch boundary, from the end.
    let after = ids[57];
    let tail: Vec<Record> = wal
        .pending_from(Some(after))
        .map(|r| r.unwrap().1)
        .collect();
    assert_eq!(tail, all[58..]);
    let tail: Vec<RecordId> = wal
        .pending_from(ids_b.last())
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(tail, ids_c.iter().collect::<Vec<_>>());
    assert_eq!(wal.pending_from(ids_c.last()).count(), 0);

    drop(wal);
    let wal = Wal::open(&wal_dir(&tmp), opts()).unwrap();
    assert_eq!(
        pending(&wal)
            .into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>(),
        all
    );
    let next = wal.append(&refs(&b), &[]).unwrap();
    assert!(next.first() > ids_c.last(), "ids continue after reopen");
}

#[test]
fn acked_records_never_come_back_also_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(&wal_dir(&tmp), opts()).unwrap();
    let recs = records("r", 300);
    let ids: Vec<RecordId> = wal.append(&refs(&recs), &[]).unwrap().iter().collect();

    // Every third record (partial frames), then a whole run, then twice.
    let acked: Vec<RecordId> = ids
        .iter()
        .copied()
        .step_by(3)
        .chain(ids[100..200].iter().copied())
        .collect();
    wal.ack(&acked).unwrap();
    wal.ack(&acked).unwrap();
    wal.ack(&[RecordId(1 << 40)]).unwrap();
    let expect: Vec<RecordId> = ids
        .iter()
        .copied()
        .filter(|id| !acked.contains(id))
        .collect();
    let got: Vec<RecordId> = pending(&wal).into_iter().map(|(id, _)| id).collect();
    assert_eq!(got, expect);
    assert_eq!(wal.pending_records(), expect.len() as u64);

    drop(wal);
    let wal = Wal::open(&wal_dir(&tmp), opts()).unwrap();
    let got: Vec<(RecordId, Record)> = pending(&wal);
    assert_eq!(got.iter().map(|(id, _)| *id).collect::<Vec<_>>(), expect);
    for (id, r) in &got {
        assert_eq!(r, &recs[(id.get() - ids[0].get()) as usize]);
    }
    assert_eq!(wal.pending_records(), expect.len() as u64);

    wal.ack(&expect).unwrap();
    assert_eq!(wal.pending_records(), 0);
    assert_eq!(wal.pending_bytes(), 0);
    assert_eq!(pending(&wal).len(), 0);
    drop(wal);
    let wal = Wal::open(&wal_dir(&tmp), opts()).unwrap();
    assert_eq!(pending(&wal).len(), 0);
    assert_eq!((wal.pending_records(), wal.pending_bytes()), (0, 0));
}

#[test]
fn offsets_are_stored_with_their_batch_and_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(&wal_dir(&tmp), opts()).unwrap();
    assert_eq!(wal.offset("metrics/3").unwrap(), None);
    let recs = records("o", 3);
    wal.append(&refs(&recs), &[("metrics/3", 1200), ("metrics/1", 5)])
        .unwrap();
    wal.append(&refs(&recs), &[("metrics/3", 1300)]).unwrap();
    // Offsets only: e.g. every message of the batch went to dead letters.
    // It takes no record id but must be synced all the same.
    let syncs = wal.syncs();
    let none = wal.append(&[], &[("alarms/0", 7)]).unwrap();
    assert!(none.is_empty());
    assert_eq!(wal.syncs(), syncs + 1, "an offsets-only append is synced");
    let expect: BTreeMap<String, i64> = [("alarms/0", 7), ("metrics/1", 5), ("metrics/3", 1300)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(wal.offsets().unwrap(), expect);
    assert_eq!(wal.offset("metrics/3").unwrap(), Some(1300));
    drop(wal);
    let wal = Wal::open(&wal_dir(&tmp), opts()).unwrap();
    assert_eq!(wal.offsets().unwrap(), expect);
    assert_eq!(wal.offset("metrics/1").unwrap(), Some(5));
    assert_eq!(wal.offset("nope").unwrap(), None);
}

#[test]
fn counters_are_exact_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let options = WalOptions {
        max_size_bytes: 1_000,
        ..opts()
    };
    let wal = Wal::open(&wal_dir(&tmp), options.clone()).unwrap();
    assert_eq!(
        (
            wal.pending_records(),
            wal.pending_bytes(),
            wal.quarantined()
        ),
        (0, 0, 0)
    );
    assert!(!wal.over_limit());
    let recs = records("c", 400);
    let ids: Vec<RecordId> = wal.append(&refs(&recs), &[]).unwrap().iter().collect();
    assert_eq!(wal.pending_records(), 400);
    let payload: u64 = recs.iter().map(|r| r.payload.len() as u64).sum();
    let bytes = wal.pending_bytes();
    // Stored bytes: the repetitive payloads compress.
    assert!(
        bytes > 0 && bytes < payload,
        "{bytes} bytes for {payload} payload bytes"
    );
    assert!(wal.over_limit());

    // The first frame (~200 records of these) is freed whole.
    wal.ack(&ids[..250]).unwrap();
    wal.ack(&ids[300..305]).unwrap();
    let (records_now, bytes_now) = (wal.pending_records(), wal.pending_bytes());
    assert_eq!(records_now, 145);
    assert!(bytes_now < bytes, "{bytes_now} {bytes}");
    drop(wal);
    let wal = Wal::open(&wal_dir(&tmp), options).unwrap();
    assert_eq!(
        (wal.pending_records(), wal.pending_bytes()),
        (records_now, bytes_now)
    );
}

/// The segment files of the WAL in `dir`, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
        .collect();
    v.sort();
    v
}

#[test]
fn the_end_of_an_unfinished_append_is_dropped_at_open_and_its_ids_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let recs = records("u", 10);
    {
        let wal = Wal::open(&dir, opts()).unwrap();
        wal.append(&refs(&recs), &[("p", 10)]).unwrap();
    }
    // What a crash in the middle of writing the next append leaves: the
    // start of an entry (here: a copy of the first half of the log).
    let last = segments(&dir).pop().unwrap();
    let bytes = std::fs::read(&last).unwrap();
    let mut torn = bytes.clone();
    torn.extend_from_slice(&bytes[64..64 + (bytes.len() - 64) / 2]);
    std::fs::write(&last, &torn).unwrap();

    let wal = Wal::open(&dir, opts()).unwrap();
    assert_eq!(wal.quarantined(), 0, "an unfinished append is not damage");
    assert_eq!(pending(&wal).len(), 10);
    assert_eq!(wal.offset("p").unwrap(), Some(10));
    assert_eq!(
        wal.append(&refs(&recs[..1]), &[]).unwrap().first(),
        Some(RecordId(10))
    );
    drop(wal);
    assert!(std::fs::read(&last).unwrap().len() > bytes.len());
    let wal = Wal::open(&dir, opts()).unwrap();
    assert_eq!(pending(&wal).len(), 11);
    assert_eq!(wal.quarantined(), 0);
}

#[test]
fn offsets_outlive_the_segments_that_stored_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let options = WalOptions {
        segment_bytes: 64 << 10,
        ..opts()
    };
    let wal = Wal::open(&dir, options.clone()).unwrap();
    let recs = records("s", 200);
    wal.append(&refs(&recs), &[("p", 10), ("q", 1)]).unwrap();
    let first_segment = segments(&dir)[0].clone();
    for n in 0..40 {
        let ids: Vec<RecordId> = wal
            .append(&refs(&recs), &[("p", 11 + n)])
            .unwrap()
            .iter()
            .collect();
        wal.ack(&ids).unwrap();
    }
    let all: Vec<RecordId> = pending(&wal).into_iter().map(|(id, _)| id).collect();
    wal.ack(&all).unwrap();
    assert!(
        !first_segment.exists(),
        "the oldest segment is deleted once nothing in it is pending"
    );
    assert!(segments(&dir).len() <= 2, "{:?}", segments(&dir));
    drop(wal);
    let wal = Wal::open(&dir, options).unwrap();
    assert_eq!(wal.offset("p").unwrap(), Some(50));
    assert_eq!(wal.offset("q").unwrap(), Some(1));
    assert_eq!((wal.pending_records(), wal.quarantined()), (0, 0));
}

#[test]
fn a_second_opener_is_refused_while_the_first_is_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let wal = Wal::open(&dir, opts()).unwrap();
    let err = Wal::open(&dir, opts()).unwrap_err();
    assert!(matches!(err, WalError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("wal.lock") && msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    drop(wal);
    Wal::open(&dir, opts()).unwrap();
}

#[test]
fn a_directory_that_is_not_a_wal_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("important.txt"), b"do not touch").unwrap();
    let err = Wal::open(&dir, opts()).unwrap_err();
    assert!(matches!(err, WalError::NotAWal { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("is not a WAL directory")
            && msg.contains("important.txt")
            && msg.contains("data"),
        "{msg}"
    );
    // Nothing was created in it.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        Wal::open(&file, opts()),
        Err(WalError::NotAWal { .. })
    ));

    // A marker of some other program.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("WAL"), b"postgres\n").unwrap();
    assert!(matches!(
        Wal::open(&other, opts()),
        Err(WalError::NotAWal { .. })
    ));

    // An empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    Wal::open(&empty, opts()).unwrap();
}

#[test]
fn records_too_large_are_refused_with_their_position() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(&wal_dir(&tmp), opts()).unwrap();
    let big = vec![0u8; 17 << 20];
    let err = wal
        .append(
            &[
                RecordRef {
                    database: "a",
                    kind: 0,
                    points: 1,
                    payload: b"ok",
                },
                RecordRef {
                    database: "huge",
                    kind: 0,
                    points: 1,
                    payload: &big,
                },
            ],
            &[("p", 1)],
        )
        .unwrap_err();
    assert!(
        matches!(err, WalError::RecordTooLarge { index: 1, .. }),
        "{err}"
    );
    assert_eq!(wal.pending_records(), 0);
    assert_eq!(wal.offset("p").unwrap(), None);
}

#[test]
fn concurrent_appends_store_every_record_once_in_a_consistent_order() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(&wal_dir(&tmp), opts()).unwrap();
    const THREADS: usize = 6;
    const APPENDS: usize = 40;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let wal = &wal;
            s.spawn(move || {
                let mut last = None;
                for n in 0..APPENDS {
                    let recs: Vec<Record> = (0..1 + (n * 7) % 30)
                        .map(|i| Record {
                            database: format!("t{t}"),
                            kind: 0,
                            points: 1,
                            payload: format!("t{t}n{n}i{i}").into_bytes(),
                        })
                        .collect();
                    let name = format!("thread/{t}");
                    let ids = wal.append(&refs(&recs), &[(&name, n as i64)]).unwrap();
                    assert!(ids.first() > last, "a thread's appends get growing ids");
                    last = ids.last();
                }
            });
        }
    });
    let got = pending(&wal);
    let mut per_thread: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut prev = None;
    for (id, r) in &got {
        assert!(Some(*id) > prev, "replay in id order");
        prev = Some(*id);
        per_thread
            .entry(r.database.clone())
            .or_default()
            .push(String::from_utf8(r.payload.clone()).unwrap());
    }
    for t in 0..THREADS {
        let expect: Vec<String> = (0..APPENDS)
            .flat_map(|n| (0..1 + (n * 7) % 30).map(move |i| format!("t{t}n{n}i{i}")))
            .collect();
        assert_eq!(
            per_thread[&format!("t{t}")],
            expect,
            "thread {t}: every record once, in its order"
        );
        assert_eq!(
            wal.offset(&format!("thread/{t}")).unwrap(),
            Some(APPENDS as i64 - 1)
        );
    }
    let (appends, syncs) = (wal.appends(), wal.syncs());
    eprintln!("{appends} appends, {syncs} syncs");
    assert_eq!(appends, (THREADS * APPENDS) as u64);
    assert!(
        syncs < appends,
        "group commit: {syncs} syncs for {appends} appends"
    );
}

#[test]
fn reclaiming_space_keeps_pending_records_offsets_and_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let wal = Wal::open(&dir, opts()).unwrap();
    let recs = records("g", 500);
    let ids: Vec<RecordId> = wal
        .append(&refs(&recs), &[("m/1", 77)])
        .unwrap()
        .iter()
        .collect();
    wal.ack(&ids[..123]).unwrap();
    wal.ack(&ids[200..201]).unwrap();
    let before = pending(&wal);
    let counters = (wal.pending_records(), wal.pending_bytes());
    let old = segments(&dir);
    wal.reclaim_space().unwrap();
    let now = segments(&dir);
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(!old.contains(&now[0]));
    assert_eq!(pending(&wal), before);
    assert_eq!((wal.pending_records(), wal.pending_bytes()), counters);
    let more = wal.append(&refs(&recs[..2]), &[]).unwrap();
    assert_eq!(more.first(), Some(RecordId(500)));
    drop(wal);
    let wal = Wal::open(&dir, opts()).unwrap();
    assert_eq!(pending(&wal)[..before.len()], before[..]);
    assert_eq!(wal.pending_records(), counters.0 + 2);
    assert_eq!(wal.offset("m/1").unwrap(), Some(77));
}

#[test]
fn disk_usage_stays_bounded_over_a_long_append_ack_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let options = WalOptions {
        fsync: false,
        reclaim_threshold_bytes: 8 << 20,
        ..opts()
    };
    let wal = Wal::open(&dir, options).unwrap();
    let payload = vec![b'x'; 200];
    let batch: Vec<RecordRef<'_>> = (0..2000)
        .map(|_| RecordRef {
            database: "mon",
            kind: 0,
            points: 1,
            payload: &payload,
        })
        .collect();
    // ~200 MB through the WAL with ~8 MB pending at any time.
    let mut in_flight: std::collections::VecDeque<Vec<RecordId>> = Default::default();
    let mut peak = 0;
    for n in 0..500 {
        let ids = wal.append(&batch, &[("p", n)]).unwrap();
        in_flight.push_back(ids.iter().collect());
        if in_flight.len() > 20 {
            let ids = in_flight.pop_front().unwrap();
            wal.ack(&ids).unwrap();
        }
        if n % 25 == 0 {
            peak = peak.max(wal.disk_usage_bytes().unwrap());
        }
    }
    while let Some(ids) = in_flight.pop_front() {
        wal.ack(&ids).unwrap();
    }
    let after = wal.disk_usage_bytes().unwrap();
    eprintln!("peak {} MB, after drain {} MB", peak >> 20, after >> 20);
    assert!(peak < 64 << 20, "peak disk usage {peak} bytes");
    // Back below the reclaim threshold once drained.
    assert!(after < 8 << 20, "disk usage after draining: {after} bytes");
    assert_eq!(wal.pending_records(), 0);
    assert_eq!(wal.offset("p").unwrap(), Some(499));
}
