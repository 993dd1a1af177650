//! WAL throughput, ack cost, group commit, disk usage and peak RSS, as one
//! plain-text report; run by `scripts/bench-wal` next to a `dd` baseline.
//!
//! Usage: wal-bench <scratch dir> [all|throughput|ack|group|rss|reopen|backlog] [--rss-gb N]
//! The `rss` part should run in its own process: it reports the process's
//! peak RSS (VmHWM), which earlier parts would inflate.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wal::{RecordId, RecordRef, Wal, WalError, WalOptions};

const LINE: usize = 200;

/// Payload kinds: realistic Monasca line protocol, or random bytes (the
/// worst case for the WAL's frame compression).
#[derive(Clone, Copy, PartialEq)]
enum Data {
    Lines,
    Random,
}

/// `n` payloads of ~200 bytes.
fn payloads(n: usize, data: Data, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let metrics = [
        "cpu.idle_perc",
        "cpu.user_perc",
        "disk.space_used_perc",
        "mem.usable_mb",
        "net.in_bytes_sec",
        "load.avg_1_min",
        "http_status",
        "vm.cpu.utilization_perc",
    ];
    let tenants: Vec<String> = (0..20)
        .map(|_| {
            (0..32)
                .map(|_| char::from_digit(rng.u32(..16), 16).unwrap_or('0'))
                .collect()
        })
        .collect();
    (0..n)
        .map(|i| match data {
            Data::Random => (0..LINE).map(|_| rng.u8(..)).collect(),
            Data::Lines => format!(
                "{},_region=RegionOne,_tenant_id={},device=/dev/vd{},hostname=compute-{:04},service=monitoring value={:.4},value_meta=\"{{}}\" {}",
                metrics[rng.usize(..metrics.len())],
                tenants[rng.usize(..tenants.len())],
                (b'a' + rng.u8(..4)) as char,
                rng.u32(..2000),
                rng.f64() * 100.0,
                1_554_725_987_408u64 + i as u64 * 17 + rng.u64(..17)
            )
            .into_bytes(),
        })
        .collect()
}

fn refs(payloads: &[Vec<u8>]) -> Vec<RecordRef<'_>> {
    payloads
        .iter()
        .map(|p| RecordRef {
            database: "mon",
            kind: 0,
            points: 1,
            payload: p,
        })
        .collect()
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn open(path: &Path, fsync: bool) -> Result<Wal, WalError> {
    Wal::open(
        path,
        WalOptions {
            fsync,
            ..WalOptions::default()
        },
    )
}

fn throughput(dir: &Path, data: Data) -> Result<(), WalError> {
    let lines = payloads(10_000, data, 1);
    let payload_bytes: usize = lines.iter().map(Vec::len).sum();
    let stored = {
        let path = fresh(dir, "ratio");
        let wal = open(&path, false)?;
        wal.append(&refs(&lines), &[])?;
        wal.pending_bytes()
    };
    println!(
        "append throughput, {} (avg {} bytes, stored as {:.0}% of the payload):",
        match data {
            Data::Lines => "line-protocol records",
            Data::Random => "random-byte records",
        },
        payload_bytes / lines.len(),
        stored as f64 * 100.0 / payload_bytes as f64
    );
    for fsync in [true, false] {
        for batch in [1usize, 100, 10_000] {
            let path = fresh(dir, "throughput");
            let wal = open(&path, fsync)?;
            let records = refs(&lines[..batch]);
            let batch_bytes: usize = lines[..batch].iter().map(Vec::len).sum();
            // Bounded by time and by volume (~400 MB), acking as we go so
            // the WAL stays small, like in the pipeline.
            let budget = Duration::from_secs(3);
            let max_records = 2_000_000;
            let started = Instant::now();
            let mut appended = 0usize;
            let mut bytes = 0usize;
            let mut ack_time = Duration::ZERO;
            let mut backlog: Vec<RecordId> = Vec::new();
            while started.elapsed() < budget && appended < max_records {
                let ids = wal.append(&records, &[("metrics/0", appended as i64)])?;
                appended += batch;
                bytes += batch_bytes;
                backlog.extend(ids.iter());
                if backlog.len() >= 50_000 {
                    let t = Instant::now();
                    wal.ack(&backlog)?;
                    ack_time += t.elapsed();
                    backlog.clear();
                }
            }
            let secs = (started.elapsed() - ack_time).as_secs_f64();
            println!(
                "  fsync={:<5} batch={:>6}: {:>10.0} records/s {:>8.1} MB/s  ({} appends, {} syncs)",
                fsync,
                batch,
                appended as f64 / secs,
                bytes as f64 / secs / 1e6,
                wal.appends(),
                wal.syncs()
            );
            drop(wal);
            let _ = std::fs::remove_dir_all(&path);
        }
    }
    Ok(())
}

fn ack_cost(dir: &Path) -> Result<(), WalError> {
    let path = fresh(dir, "ack");
    let wal = open(&path, false)?;
    let lines = payloads(10_000, Data::Lines, 2);
    let records = refs(&lines);
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.extend(wal.append(&records, &[])?.iter());
    }
    println!("ack cost ({} records pending):", ids.len());
    for (chunk, calls) in [(10_000usize, 20usize), (100, 500), (1, 5000)] {
        let take: Vec<RecordId> = ids.drain(..(chunk * calls).min(ids.len())).collect();
        let started = Instant::now();
        for c in take.chunks(chunk) {
            wal.ack(c)?;
        }
        let el = started.elapsed();
        println!(
            "  {chunk:>6} ids per ack: {:>8.1} µs per call, {:>6.3} µs per record",
            el.as_secs_f64() * 1e6 / calls as f64,
            el.as_secs_f64() * 1e6 / take.len() as f64
        );
    }
    drop(wal);
    let _ = std::fs::remove_dir_all(&path);
    Ok(())
}

fn group_commit(dir: &Path) -> Result<(), WalError> {
    println!("group commit (fsync on, batches of 100 records, 2 s per run):");
    let lines = payloads(100, Data::Lines, 3);
    for threads in [1usize, 2, 4, 8] {
        let path = fresh(dir, "group");
        let wal = open(&path, true)?;
        let started = Instant::now();
        std::thread::scope(|s| -> Result<(), WalError> {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (wal, lines) = (&wal, &lines);
                    s.spawn(move || -> Result<(), WalError> {
                        let records = refs(lines);
                        let name = format!("metrics/{t}");
                        let mut n = 0;
                        while started.elapsed() < Duration::from_secs(2) {
                            let ids = wal.append(&records, &[(&name, n)])?;
                            n += 1;
                            wal.ack(&ids.iter().collect::<Vec<_>>())?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap_or(Ok(()))?;
            }
            Ok(())
        })?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "  {threads} threads: {:>7.0} appends/s, {:>9.0} records/s, {:>6} syncs for {:>6} appends ({:.1} appends per sync)",
            wal.appends() as f64 / secs,
            wal.appends() as f64 * 100.0 / secs,
            wal.syncs(),
            wal.appends(),
            wal.appends() as f64 / wal.syncs().max(1) as f64
        );
        drop(wal);
        let _ = std::fs::remove_dir_all(&path);
    }
    Ok(())
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rss(dir: &Path, gigabytes: f64) -> Result<(), WalError> {
    let path = fresh(dir, "rss");
    let wal = open(&path, true)?;
    let lines = payloads(10_000, Data::Lines, 2);
    let records = refs(&lines);
    let total = (gigabytes * (1u64 << 30) as f64) as usize;
    let batch_bytes: usize = lines.iter().map(Vec::len).sum();
    let batches = total / batch_bytes;
    // Writers lag ~20 batches (40 MB) behind, like a pipeline under load.
    let mut backlog = std::collections::VecDeque::new();
    let mut peak_disk = 0;
    let started = Instant::now();
    for n in 0..batches {
        let ids = wal.append(&records, &[("metrics/0", n as i64)])?;
        backlog.push_back(ids);
        if backlog.len() > 20 {
            if let Some(ids) = backlog.pop_front() {
                wal.ack(&ids.iter().collect::<Vec<_>>())?;
            }
        }
        if n % 20 == 0 {
            peak_disk = peak_disk.max(wal.disk_usage_bytes()?);
        }
    }
    while let Some(ids) = backlog.pop_front() {
        wal.ack(&ids.iter().collect::<Vec<_>>())?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "append+ack {:.2} GB (fsync on, batches of 10000, ~40 MB pending): {:.1} MB/s, peak RSS {:.1} MB, disk usage peak {:.1} MB, after drain {:.1} MB",
        (batches * batch_bytes) as f64 / 1e9,
        (batches * batch_bytes) as f64 / secs / 1e6,
        vm_hwm_kb() as f64 / 1024.0,
        peak_disk as f64 / 1e6,
        wal.disk_usage_bytes()? as f64 / 1e6,
    );
    drop(wal);
    let _ = std::fs::remove_dir_all(&path);
    Ok(())
}

/// A backlog (e.g. InfluxDB down) builds up, then drains the way writers
/// drain it: disk usage before and after.
fn backlog(dir: &Path, gigabytes: f64) -> Result<(), WalError> {
    let path = fresh(dir, "backlog");
    let wal = open(&path, true)?;
    let lines = payloads(10_000, Data::Lines, 5);
    let records = refs(&lines);
    let batch_bytes: usize = lines.iter().map(Vec::len).sum();
    let batches = (gigabytes * (1u64 << 30) as f64) as usize / batch_bytes;
    for n in 0..batches {
        wal.append(&records, &[("metrics/0", n as i64)])?;
    }
    let full = wal.disk_usage_bytes()?;
    let stored = wal.pending_bytes();
    let started = Instant::now();
    let mut cursor = None;
    loop {
        let chunk: Vec<RecordId> = wal
            .pending_from(cursor)
            .take(10_000)
            .map(|r| r.map(|(id, _)| id))
            .collect::<Result<_, _>>()?;
        let Some(&last) = chunk.last() else { break };
        wal.ack(&chunk)?;
        cursor = Some(last);
    }
    println!(
        "backlog of {:.2} GB ({:.0} MB stored): {:.0} MB on disk; drained by replay+ack in {:.1} s; {:.1} MB on disk after",
        (batches * batch_bytes) as f64 / 1e9,
        stored as f64 / 1e6,
        full as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        wal.disk_usage_bytes()? as f64 / 1e6
    );
    drop(wal);
    let _ = std::fs::remove_dir_all(&path);
    Ok(())
}

/// Open (recovery) time and memory with a large backlog.
fn reopen(dir: &Path, gigabytes: f64) -> Result<(), WalError> {
    let path = fresh(dir, "reopen");
    let lines = payloads(10_000, Data::Lines, 4);
    let records = refs(&lines);
    let batch_bytes: usize = lines.iter().map(Vec::len).sum();
    let batches = (gigabytes * (1u64 << 30) as f64) as usize / batch_bytes;
    {
        let wal = open(&path, false)?;
        for _ in 0..batches {
            wal.append(&records, &[])?;
        }
        wal.sync()?;
        println!(
            "append of {:.2} GB without acknowledging: peak RSS {:.1} MB",
            (batches * batch_bytes) as f64 / 1e9,
            vm_hwm_kb() as f64 / 1024.0
        );
    }
    let rss_before = vm_rss_kb();
    let started = Instant::now();
    let wal = open(&path, true)?;
    println!(
        "reopen with {:.2} GB of line protocol pending ({:.0} MB stored, {} records): {:.2} s, RSS +{:.1} MB",
        (batches * batch_bytes) as f64 / 1e9,
        wal.pending_bytes() as f64 / 1e6,
        wal.pending_records(),
        started.elapsed().as_secs_f64(),
        (vm_rss_kb() as f64 - rss_before as f64) / 1024.0
    );
    let before_replay = vm_rss_kb();
    let started = Instant::now();
    let n = wal.pending_from(None).count();
    println!(
        "replay of all {n} records: {:.2} s, RSS +{:.1} MB",
        started.elapsed().as_secs_f64(),
        (vm_rss_kb() as f64 - before_replay as f64) / 1024.0
    );
    drop(wal);
    let _ = std::fs::remove_dir_all(&path);
    Ok(())
}

fn vm_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1).map(PathBuf::from) else {
        eprintln!(
            "usage: wal-bench <scratch dir> [all|throughput|ack|group|rss|reopen|backlog] [--rss-gb N]"
        );
        std::process::exit(2);
    };
    let what = args.get(2).map(String::as_str).unwrap_or("all");
    let gb = args
        .iter()
        .position(|a| a == "--rss-gb")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("creating {}: {e}", dir.display());
        std::process::exit(1);
    }
    let result = match what {
        "throughput" => throughput(&dir, Data::Lines).and_then(|_| throughput(&dir, Data::Random)),
        "ack" => ack_cost(&dir),
        "group" => group_commit(&dir),
        "rss" => rss(&dir, gb),
        "reopen" => reopen(&dir, gb),
        "backlog" => backlog(&dir, gb),
        _ => throughput(&dir, Data::Lines)
            .and_then(|_| throughput(&dir, Data::Random))
            .and_then(|_| ack_cost(&dir))
            .and_then(|_| group_commit(&dir)),
    };
    if let Err(e) = result {
        eprintln!("wal-bench: {e}");
        std::process::exit(1);
    }
}
