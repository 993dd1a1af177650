//! Test helper run as a child process by the crash and lock tests: it
//! appends numbered batches and reports each durable one on stdout (so the
//! test can SIGKILL it at any moment and check what survived), or tries to
//! open / holds open a WAL for the lock tests.
//!
//! Usage:
//!   wal-crash-helper append <dir> [threads] [segment bytes]
//!                                   threads (2) append batches forever; each durable one is
//!                                   reported as "ok <thread> <batch> <first id> <count>";
//!                                   four batches in five are acknowledged right away
//!   wal-crash-helper try-open <dir> exit 0 if it opened, 3 if locked, 4 on other errors
//!   wal-crash-helper hold <dir>     opens, prints "ready", waits for stdin to close

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use wal::{RecordRef, Wal, WalError, WalOptions};

/// Appending threads by default: while one waits for its sync, the other
/// is inserting, so a sync regularly writes part of an unfinished batch to
/// disk — the state a kill must never turn into a partial batch.
const THREADS: u64 = 2;

#[path = "../../tests/common/workload.rs"]
mod workload;
use workload::{batch_len, payload};

fn append_forever(wal: &Wal, t: u64) -> Result<(), WalError> {
    let mut k = wal.offset(&format!("batch/{t}"))?.unwrap_or(0) as u64;
    let out = std::io::stdout();
    loop {
        let n = batch_len(k);
        let payloads: Vec<Vec<u8>> = (0..n).map(|i| payload(t, k, i)).collect();
        let databases: Vec<String> = (0..n).map(|i| format!("db{}", i % 3)).collect();
        let records: Vec<RecordRef<'_>> = payloads
            .iter()
            .zip(&databases)
            .enumerate()
            .map(|(i, (p, d))| RecordRef {
                database: d,
                kind: (k % 2) as u8,
                points: i as u32 + 1,
                payload: p,
            })
            .collect();
        let batch = format!("batch/{t}");
        let partition = format!("p/{t}/{}", k % 4);
        let ids = wal.append(&records, &[(&batch, k as i64 + 1), (&partition, k as i64)])?;
        let first = ids.first().map_or(0, |f| f.get());
        let mut lock = out.lock();
        // Reported only now: the append is durable.
        let _ = writeln!(lock, "ok {t} {k} {first} {n}");
        let _ = lock.flush();
        drop(lock);
        // Four batches in five are acknowledged right away, so segments
        // empty and get deleted; the test accepts their records being
        // present or absent (acks are not synced), and checks the fifth.
        if k % 5 != 1 {
            let ids: Vec<_> = ids.iter().collect();
            wal.ack(&ids)?;
        }
        k += 1;
    }
}

fn append(dir: &Path, threads: u64, opts: WalOptions) -> Result<(), WalError> {
    let wal = Wal::open(dir, opts)?;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let wal = &wal;
                s.spawn(move || append_forever(wal, t))
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(r) => r?,
                Err(_) => std::process::exit(5),
            }
        }
        Ok(())
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: wal-crash-helper append|try-open|hold <dir>");
        return ExitCode::from(2);
    };
    let dir = Path::new(dir);
    match mode.as_str() {
        "append" => {
            let number = |i: usize, default: u64| {
                args.get(i).map_or(Some(default), |a| a.parse::<u64>().ok())
            };
            let defaults = WalOptions::default();
            let (Some(threads), Some(segment_bytes)) =
                (number(3, THREADS), number(4, defaults.segment_bytes))
            else {
                eprintln!("threads and segment size must be numbers");
                return ExitCode::from(2);
            };
            let opts = WalOptions {
                segment_bytes,
                reclaim_threshold_bytes: 4 * segment_bytes,
                ..defaults
            };
            match append(dir, threads, opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(4)
                }
            }
        }
        "try-open" | "hold" => match Wal::open(dir, WalOptions::default()) {
            Ok(wal) => {
                println!("ready");
                if mode == "hold" {
                    let _ = std::io::stdout().flush();
                    // Until the test closes our stdin (or kills us).
                    for _ in std::io::stdin().lock().lines() {}
                }
                drop(wal);
                ExitCode::SUCCESS
            }
            Err(e @ WalError::Locked { .. }) => {
                eprintln!("{e}");
                ExitCode::from(3)
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(4)
            }
        },
        other => {
            eprintln!("unknown mode {other}");
            ExitCode::from(2)
        }
    }
}
