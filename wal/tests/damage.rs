//! Damage is never silent: a WAL holding 18 000 pending records (and 2 000
//! acknowledged ones) over a dozen segments has its files truncated,
//! overwritten, zeroed or deleted behind its back, as a failing disk or a
//! careless operator would. Every time it must still open (no panic, no
//! error), say so in one ERROR line with the number of records lost, count
//! in `quarantined()` every pending record it can no longer return (plus,
//! at most, acknowledged records whose acknowledgement was lost with
//! them), copy unreadable bytes to `quarantine/`, return every intact
//! record unchanged, accept new appends, and not report the same damage
//! again at the next open.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wal::{Record, RecordId, RecordRef, Wal, WalOptions};

/// Log lines captured from the WAL (every test's; each filters by its own
/// directory).
static LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        LINES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

fn capture_logs() {
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Info);
}

/// Lines at `level` that mention `dir`.
fn lines(dir: &Path, level: log::Level) -> Vec<String> {
    let dir = dir.display().to_string();
    LINES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(l, m)| *l == level && m.contains(&dir))
        .map(|(_, m)| m.clone())
        .collect()
}

fn opts() -> WalOptions {
    WalOptions {
        segment_bytes: 256 << 10,
        ..WalOptions::default()
    }
}

/// Record `i`: ~150 bytes of letters that compress a little.
fn record(i: u64) -> Record {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut payload = format!("r{i}:").into_bytes();
    for _ in 0..100 + i % 100 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        payload.push(b'a' + (x % 12) as u8);
    }
    Record {
        database: format!("db{}", i % 3),
        kind: (i % 2) as u8,
        points: 1 + (i % 7) as u32,
        payload,
    }
}

/// Records acknowledged by [`filled`].
const ACKED: u64 = 2000;

/// A WAL in `dir` with 20 000 records appended in batches of 200, every
/// tenth batch ([`ACKED`] records) acknowledged, closed cleanly. Returns
/// the pending records by id.
fn filled(dir: &Path) -> BTreeMap<RecordId, Record> {
    let wal = Wal::open(dir, opts()).expect("open a fresh WAL");
    let mut pending = BTreeMap::new();
    for b in 0..100u64 {
        let recs: Vec<Record> = (b * 200..(b + 1) * 200).map(record).collect();
        let refs: Vec<RecordRef<'_>> = recs.iter().map(Record::as_ref).collect();
        let ids = wal
            .append(
                &refs,
                &[("p", b as i64 + 1), (&format!("q{}", b % 4), b as i64)],
            )
            .expect("append");
        if b % 10 == 3 {
            wal.ack(&ids.iter().collect::<Vec<_>>()).expect("ack");
        } else {
            pending.extend(ids.iter().zip(recs));
        }
    }
    assert!(segments(dir).len() >= 8, "{:?}", segments(dir));
    pending
}

/// The segment files, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the WAL")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
        })
        .collect();
    v.sort();
    v
}

fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for damage");
    f.write_all_at(bytes, at).expect("damage");
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// Damages a filled WAL with `damage`, reopens it and checks everything
/// the module docs promise. Returns how many records were lost.
fn damaged(name: &str, damage: impl FnOnce(&Path)) -> u64 {
    capture_logs();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(name);
    let before = filled(&dir);
    damage(&dir);

    let wal = Wal::open(&dir, opts()).unwrap_or_else(|e| panic!("{name}: open: {e}"));
    let got: Vec<(RecordId, Record)> = wal
        .pending_from(None)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{name}: replay: {e}"));
    for (id, r) in &got {
        assert_eq!(
            before.get(id),
            Some(r),
            "{name}: record {id} is not as appended"
        );
    }
    let missing = (before.len() - got.len()) as u64;
    assert!(missing > 0, "{name}: the damage should cost records");
    let lost = wal.quarantined();
    assert!(
        (missing..=missing + ACKED).contains(&lost),
        "{name}: {missing} pending records are gone, {lost} counted"
    );
    assert_eq!(wal.pending_records(), got.len() as u64, "{name}");
    let errors = lines(&dir, log::Level::Error);
    assert_eq!(errors.len(), 1, "{name}: one ERROR line: {errors:#?}");
    assert!(
        errors[0].contains("damage found at open")
            && errors[0].contains(&format!(
                "{lost} record(s) it had reported durable are missing or unreadable"
            )),
        "{name}: {}",
        errors[0]
    );
    // The newest offsets were in the intact part or in a checkpoint.
    assert!(wal.offset("p").expect("offset").is_some(), "{name}");

    // Keeps going: appends get fresh ids and everything survives a reopen
    // without the damage being reported again.
    let more = record(1_000_000);
    let ids = wal
        .append(&[more.as_ref()], &[("p", 1000)])
        .expect("append after damage");
    assert!(
        ids.first().is_some_and(|id| id.get() >= 20_000),
        "{name}: {ids:?}"
    );
    drop(wal);
    let wal = Wal::open(&dir, opts()).expect("reopen");
    assert_eq!(wal.quarantined(), lost, "{name}: counted once");
    assert_eq!(wal.pending_records(), got.len() as u64 + 1, "{name}");
    assert_eq!(wal.offset("p").expect("offset"), Some(1000));
    assert_eq!(
        lines(&dir, log::Level::Error).len(),
        1,
        "{name}: reported once"
    );
    lost
}

/// Bytes copied to the quarantine directory.
fn quarantined_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("quarantine"))
        .map(|d| {
            d.map(|e| e.expect("entry").metadata().expect("stat").len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn the_newest_segment_truncated_to_half() {
    damaged("truncated-newest", |dir| {
        let last = segments(dir).pop().expect("a segment");
        let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
        f.set_len(len(&last) / 2).unwrap();
    });
}

#[test]
fn a_middle_segment_truncated_to_half() {
    damaged("truncated-middle", |dir| {
        let seg = segments(dir)[3].clone();
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len(&seg) / 2).unwrap();
    });
}

#[test]
fn four_kilobytes_of_garbage_in_the_middle_of_a_segment() {
    let lost = damaged("garbage-4k", |dir| {
        let seg = segments(dir)[2].clone();
        overwrite(&seg, len(&seg) / 2, &[0x5A; 4096]);
    });
    // A 4 KiB hole costs the frames it hits, not the segment.
    assert!(lost < 2000, "{lost}");
}

#[test]
fn sixty_four_kilobytes_of_garbage_in_the_newest_segment() {
    damaged("garbage-64k", |dir| {
        let seg = segments(dir).pop().unwrap();
        overwrite(&seg, len(&seg) / 3, &vec![0xC3; 64 << 10]);
    });
}

#[test]
fn a_zeroed_head() {
    damaged("zeroed-head", |dir| {
        let seg = segments(dir)[4].clone();
        overwrite(&seg, 0, &[0; 4096]);
    });
}

#[test]
fn the_first_segment_zeroed_head() {
    damaged("zeroed-first", |dir| {
        let seg = segments(dir)[0].clone();
        overwrite(&seg, 0, &[0; 4096]);
    });
}

#[test]
fn a_deleted_data_file() {
    damaged("deleted-middle", |dir| {
        std::fs::remove_file(&segments(dir)[5]).unwrap();
    });
}

#[test]
fn the_newest_data_file_deleted() {
    damaged("deleted-newest", |dir| {
        std::fs::remove_file(segments(dir).pop().unwrap()).unwrap();
    });
}

#[test]
fn the_oldest_data_file_deleted() {
    damaged("deleted-oldest", |dir| {
        std::fs::remove_file(&segments(dir)[0]).unwrap();
    });
}

#[test]
fn every_data_file_deleted() {
    // What deleting sled's generation directory was: all records gone.
    let tmp = tempfile::tempdir().unwrap();
    capture_logs();
    let dir = tmp.path().join("deleted-all");
    let before = filled(&dir);
    for seg in segments(&dir) {
        std::fs::remove_file(seg).unwrap();
    }
    let wal = Wal::open(&dir, opts()).expect("open");
    // The acknowledgements went too: every record ever appended counts.
    assert_eq!(wal.quarantined(), before.len() as u64 + ACKED);
    assert_eq!(wal.pending_records(), 0);
    let errors = lines(&dir, log::Level::Error);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("20000 record(s)"), "{}", errors[0]);
    // The offsets went with the data; new appends work.
    assert_eq!(wal.offset("p").unwrap(), None);
    wal.append(&[record(1).as_ref()], &[("p", 1)]).unwrap();
}

#[test]
fn a_flipped_bit_in_a_record() {
    damaged("bit-flip", |dir| {
        let seg = segments(dir)[1].clone();
        let at = len(&seg) * 2 / 3;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&seg)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    });
}

#[test]
fn unreadable_bytes_are_kept_in_the_quarantine() {
    capture_logs();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kept");
    filled(&dir);
    let seg = segments(&dir)[2].clone();
    overwrite(&seg, 1000, &[0xEE; 8192]);
    let wal = Wal::open(&dir, opts()).unwrap();
    assert!(wal.quarantined() > 0);
    let copied = quarantined_bytes(&dir);
    assert!(copied >= 8192, "{copied} bytes in quarantine/");
    let error = lines(&dir, log::Level::Error).join("\n");
    assert!(error.contains("quarantine"), "{error}");
}

#[test]
fn a_missing_high_water_mark_is_reported_and_nothing_is_lost() {
    capture_logs();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("no-mark");
    let before = filled(&dir);
    std::fs::remove_file(dir.join("mark")).unwrap();
    let wal = Wal::open(&dir, opts()).unwrap();
    assert_eq!(wal.pending_records(), before.len() as u64);
    assert_eq!(wal.quarantined(), 0);
    let errors = lines(&dir, log::Level::Error);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("high-water mark is missing"),
        "{}",
        errors[0]
    );
    drop(wal);
    Wal::open(&dir, opts()).unwrap();
    assert_eq!(lines(&dir, log::Level::Error).len(), 1, "reported once");
}

#[test]
fn damage_found_while_reading_is_reported_counted_and_written_off() {
    capture_logs();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("while-reading");
    let before = filled(&dir);
    let wal = Wal::open(&dir, opts()).unwrap();
    // Damaged under the running WAL, as a failing disk would.
    let seg = segments(&dir)[3].clone();
    overwrite(&seg, len(&seg) / 2, &[0x77; 64]);
    let got: Vec<(RecordId, Record)> = wal
        .pending_from(None)
        .collect::<Result<_, _>>()
        .expect("replay goes on past the damage");
    let lost = (before.len() - got.len()) as u64;
    assert!(lost > 0);
    assert_eq!(wal.quarantined(), lost);
    for (id, r) in &got {
        assert_eq!(before.get(id), Some(r));
    }
    let errors = lines(&dir, log::Level::Error);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("pending record(s) lost"),
        "{}",
        errors[0]
    );
    drop(wal);
    // Written off: not counted or reported again at the next open.
    let wal = Wal::open(&dir, opts()).unwrap();
    assert_eq!(wal.quarantined(), lost);
    assert_eq!(wal.pending_records(), got.len() as u64);
    assert_eq!(
        lines(&dir, log::Level::Error).len(),
        1,
        "{:#?}",
        lines(&dir, log::Level::Error)
    );
}

#[test]
fn a_deleted_marker_is_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("no-marker");
    filled(&dir);
    std::fs::remove_file(dir.join("WAL")).unwrap();
    let err = Wal::open(&dir, opts()).unwrap_err().to_string();
    assert!(
        err.contains("is not a WAL directory") && err.contains("seg-"),
        "{err}"
    );
}
