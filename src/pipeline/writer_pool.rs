//! The writer pool: threads that take WAL records from the hand-off queue,
//! coalesce consecutive records for the same database up to the InfluxDB
//! batch size, write them, and ack them in the WAL only after InfluxDB
//! accepted them. Retriable failures keep the records and back off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handoff::Handoff;
use super::Shared;
use crate::stats::WriteOutcome;

/// A coalesced write: one database, one or more WAL records.
struct WriteJob {
    database: String,
    ids: Vec<wal::RecordId>,
    lines: Vec<u8>,
    points: usize,
}

/// A running writer thread.
pub struct WriterThread {
    handle: std::thread::JoinHandle<()>,
}

impl WriterThread {
    /// Waits for the thread to finish.
    pub fn join(self) {
        if self.handle.join().is_err() {
            log::error!("writer thread panicked");
        }
    }
}

/// Starts writer thread number `n`.
pub fn spawn(n: usize, shared: Arc<Shared>) -> anyhow::Result<WriterThread> {
    let handle = std::thread::Builder::new().name(format!("writer#{n}")).spawn(move || run(shared))?;
    Ok(WriterThread { handle })
}

fn run(shared: Arc<Shared>) {
    let mut carry: Option<Handoff> = None;
    loop {
        let first = match carry.take() {
            Some(h) => h,
            None => match shared.handoff.recv_timeout(Duration::from_millis(50)) {
                Some(h) => h,
                None => {
                    if shared.control.drain_deadline().is_some() || shared.control.give_up() {
                        // Consumers are gone (draining) and the queue is empty: done.
                        return;
                    }
                    continue;
                }
            },
        };
        if shared.control.give_up() {
            return; // what is left stays in the WAL for the next start
        }
        let Some(mut job) = resolve(&shared, first) else { continue };
        // Coalesce consecutive records for the same database.
        while job.points < shared.influx_batch_size {
            let Some(next) = shared.handoff.try_recv() else { break };
            let Some(next_job) = resolve(&shared, next) else { continue };
            if next_job.database == job.database && job.points + next_job.points <= shared.influx_batch_size {
                job.lines.extend_from_slice(&next_job.lines);
                job.points += next_job.points;
                job.ids.extend(next_job.ids);
            } else {
                carry = Some(Handoff::InMemory {
                    id: next_job.ids[0],
                    database: next_job.database,
                    points: next_job.points as u32,
                    lines: next_job.lines,
                });
                break;
            }
        }
        write_job(&shared, job);
    }
}

/// Turns a hand-off into a job, reading the record from the WAL when only its id travelled.
fn resolve(shared: &Shared, h: Handoff) -> Option<WriteJob> {
    match h {
        Handoff::InMemory { id, database, points, lines } => Some(WriteJob { database, ids: vec![id], lines, points: points as usize }),
        Handoff::OnDisk(id) => match shared.wal.get(id) {
            Ok(Some(rec)) => Some(WriteJob { database: rec.database, ids: vec![id], lines: rec.payload, points: rec.points as usize }),
            Ok(None) => None, // already acked
            Err(e) => {
                shared.control.fatal(format!("reading WAL record {id:?}: {e}"));
                None
            }
        },
    }
}

/// Writes one job until InfluxDB accepted all of it (ack), or the pool must give up (keep).
fn write_job(shared: &Shared, job: WriteJob) {
    let stats = &shared.stats;
    let mut backoff = shared.backoff();
    let mut rest: &[u8] = &job.lines;
    let mut points_left = job.points;
    loop {
        let started = Instant::now();
        let report = shared.influx.write_lines(&job.database, rest, points_left);
        stats.write_latency.observe_since(started);
        stats.points_written.fetch_add(report.stored as u64, std::sync::atomic::Ordering::Relaxed);
        stats.points_beyond_retention.fetch_add(report.beyond_retention as u64, std::sync::atomic::Ordering::Relaxed);
        if !report.rejected.is_empty() {
            stats.points_rejected.fetch_add(report.rejected.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = shared.dead_letters.reject_lines(&job.database, &report.rejected) {
                shared.control.fatal(format!("writing {} rejected line(s) of {} to the dead-letter file: {e}", report.rejected.len(), job.database));
                return;
            }
        }
        match report.retry {
            None => {
                stats.write_request(if report.rejected.is_empty() { WriteOutcome::Success } else { WriteOutcome::Partial });
                backoff.succeeded();
                if let Err(e) = shared.wal.ack(&job.ids) {
                    shared.control.fatal(format!("acking {} WAL record(s): {e}", job.ids.len()));
                }
                return;
            }
            Some(retry) => {
                stats.write_request(WriteOutcome::Retriable);
                stats.write_retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                rest = &rest[retry.resume_at..];
                points_left = retry.points_left;
                backoff.failed(&retry.error, &job.database);
                if !backoff.sleep(|| shared.control.give_up()) {
                    return; // giving up: the records stay in the WAL
                }
            }
        }
    }
}
