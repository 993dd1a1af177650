//! Criterion benchmarks of the WAL: append of 1, 100 and 10 000 records of
//! ~200 bytes with fsync on and off, and ack. `scripts/bench-wal` gives the
//! fuller picture (dd baseline, group commit, peak RSS).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::Duration;
use wal::{RecordId, RecordRef, Wal, WalOptions};

fn lines(n: usize) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(42);
    (0..n)
        .map(|i| {
            format!(
                "cpu.idle_perc,_region=RegionOne,_tenant_id=8f5b1c0e6a3d4c2b9e7f1a0d3c5b{:04},hostname=compute-{:04},service=monitoring value={:.4} {}",
                rng.u32(..10_000),
                rng.u32(..2000),
                rng.f64() * 100.0,
                1_554_725_987_408u64 + i as u64
            )
            .into_bytes()
        })
        .collect()
}

fn refs(lines: &[Vec<u8>]) -> Vec<RecordRef<'_>> {
    lines
        .iter()
        .map(|p| RecordRef {
            database: "mon",
            kind: 0,
            points: 1,
            payload: p,
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let all = lines(10_000);
    for fsync in [true, false] {
        let mut group = c.benchmark_group(format!("append/fsync={fsync}"));
        group.measurement_time(Duration::from_secs(3));
        group.sample_size(10);
        for batch in [1usize, 100, 10_000] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let wal = Wal::open(
                &tmp.path().join("wal"),
                WalOptions {
                    fsync,
                    ..WalOptions::default()
                },
            )
            .expect("open WAL");
            let records = refs(&all[..batch]);
            let bytes: usize = all[..batch].iter().map(Vec::len).sum();
            group.throughput(Throughput::Bytes(bytes as u64));
            let mut n = 0i64;
            group.bench_function(format!("batch={batch}"), |b| {
                // Only appends are timed; acks (as writers would do them)
                // keep the WAL small between samples.
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    let mut backlog: Vec<RecordId> = Vec::new();
                    for _ in 0..iters {
                        n += 1;
                        let started = std::time::Instant::now();
                        let ids = wal.append(&records, &[("metrics/0", n)]).expect("append");
                        timed += started.elapsed();
                        backlog.extend(ids.iter());
                        if backlog.len() > 100_000 {
                            wal.ack(&backlog).expect("ack");
                            backlog.clear();
                        }
                    }
                    wal.ack(&backlog).expect("ack");
                    timed
                })
            });
        }
        group.finish();
    }
}

fn ack(c: &mut Criterion) {
    let all = lines(10_000);
    let records = refs(&all);
    let mut group = c.benchmark_group("ack");
    group.sample_size(10);
    for chunk in [1usize, 100, 10_000] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(
            &tmp.path().join("wal"),
            WalOptions {
                fsync: false,
                ..WalOptions::default()
            },
        )
        .expect("open WAL");
        group.throughput(Throughput::Elements(chunk as u64));
        group.bench_function(format!("ids={chunk}"), |b| {
            b.iter_batched(
                || {
                    let ids = wal.append(&records[..chunk], &[]).expect("append");
                    ids.iter().collect::<Vec<_>>()
                },
                |ids| wal.ack(&ids).expect("ack"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, append, ack);
criterion_main!(benches);
