//! The writer pool: threads that take WAL records from a sink's hand-off
//! queue, coalesce consecutive records for the same database up to the
//! sink's batch size, write them, and ack them in the WAL only after the
//! sink (InfluxDB, or Elasticsearch for events) accepted them. Retriable
//! failures keep the records and back off.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handoff::Handoff;
use super::Shared;
use crate::dead_letter::DeadLetter;
use crate::stats::WriteOutcome;

/// A coalesced write: one database, one or more WAL records.
pub(super) struct WriteJob {
    pub database: String,
    pub ids: Vec<wal::RecordId>,
    pub lines: Vec<u8>,
    pub points: usize,
}

/// Where a writer thread writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Metrics and alarm transitions to InfluxDB.
    Influx,
    /// Events to Elasticsearch.
    Events,
}

/// A running writer thread.
pub struct WriterThread {
    handle: std::thread::JoinHandle<()>,
}

impl WriterThread {
    /// True once the thread returned.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the thread to finish.
    pub fn join(self) {
        if self.handle.join().is_err() {
            log::error!("writer thread panicked");
        }
    }
}

/// Starts writer thread number `n` of `sink`.
pub fn spawn(n: usize, shared: Arc<Shared>, sink: Sink) -> anyhow::Result<WriterThread> {
    let name = match sink {
        Sink::Influx => format!("writer#{n}"),
        Sink::Events => format!("events-writer#{n}"),
    };
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(move || run(shared, sink))?;
    Ok(WriterThread { handle })
}

fn run(shared: Arc<Shared>, sink: Sink) {
    let (handoff, batch_size, mut retry) = match (sink, shared.events.as_ref()) {
        (Sink::Events, Some(events)) => {
            (&events.handoff, events.batch_size(), events.retry_policy())
        }
        (Sink::Events, None) => return,
        (Sink::Influx, _) => (
            &shared.handoff,
            shared.influx_batch_size,
            shared.retry_policy(),
        ),
    };
    let mut carry: Option<WriteJob> = None;
    loop {
        if shared.control.writers_stopped() {
            return; // what is left stays in the WAL for the next start
        }
        let mut job = match carry.take() {
            Some(job) => job,
            None => match handoff.recv_timeout(Duration::from_millis(50)) {
                Some(h) => match resolve(&shared, h) {
                    Some(job) => job,
                    None => continue,
                },
                None if shared.control.draining() => return, // consumers gone, queue empty
                None => continue,
            },
        };
        // Coalesce consecutive records for the same database.
        while job.points < batch_size {
            let Some(next) = handoff.try_recv().and_then(|h| resolve(&shared, h)) else {
                break;
            };
            if next.database == job.database && job.points + next.points <= batch_size {
                job.lines.extend_from_slice(&next.lines);
                job.points += next.points;
                job.ids.extend(next.ids);
                shared.line_buffers.give_back(next.lines);
            } else {
                carry = Some(next);
                break;
            }
        }
        match (sink, shared.events.as_ref()) {
            (Sink::Events, Some(events)) => events.write_job(&shared, &mut job, &mut retry),
            _ => write_job(&shared, &job, &mut retry),
        }
        shared.line_buffers.give_back(job.lines);
    }
}

/// Turns a hand-off into a job, reading the record from the WAL when only its id travelled.
fn resolve(shared: &Shared, h: Handoff) -> Option<WriteJob> {
    match h {
        Handoff::InMemory {
            id,
            database,
            points,
            lines,
        } => Some(WriteJob {
            database,
            ids: vec![id],
            lines,
            points: points as usize,
        }),
        Handoff::OnDisk(id) => {
            shared.stats.wal_records_read_back.fetch_add(1, Relaxed);
            let after = id.0.checked_sub(1).map(wal::RecordId);
            match shared.wal.pending_from(after).next() {
                Some(Ok((found, rec))) if found == id => Some(WriteJob {
                    database: rec.database,
                    ids: vec![id],
                    lines: rec.payload,
                    points: rec.points as usize,
                }),
                Some(Ok(_)) | None => None, // already acked
                Some(Err(e)) => {
                    shared
                        .control
                        .fatal(format!("reading WAL record {}: {e}", id.0));
                    None
                }
            }
        }
    }
}

/// Writes one job until InfluxDB settled all of it (then acks it in the WAL),
/// or the writers must give up (the records stay in the WAL).
fn write_job(shared: &Shared, job: &WriteJob, retry: &mut crate::retry::Retry) {
    let stats = &shared.stats;
    let mut offset = 0;
    let mut points_left = job.points;
    loop {
        let started = Instant::now();
        let report = shared
            .influx
            .write_batch(&job.database, &job.lines[offset..], points_left);
        stats.write_latency.observe_since(started);
        stats
            .points_written
            .fetch_add(report.points_stored as u64, Relaxed);
        stats
            .points_beyond_retention
            .fetch_add(report.beyond_retention as u64, Relaxed);
        if report.database_created {
            stats.databases_created.fetch_add(1, Relaxed);
        }
        if !report.rejected.is_empty() {
            stats
                .points_rejected
                .fetch_add(report.rejected.len() as u64, Relaxed);
            if let Err(e) = dead_letter_lines(shared, &job.database, &report.rejected) {
                shared.control.fatal(format!(
                    "writing {} line(s) InfluxDB refused for {} to {}: {e}",
                    report.rejected.len(),
                    job.database,
                    shared.dead_letters.path().display()
                ));
                return;
            }
        }
        let settled = report.points_stored + report.rejected.len() + report.beyond_retention;
        match report.retry {
            None => {
                stats.write_request(if report.rejected.is_empty() {
                    WriteOutcome::Success
                } else {
                    WriteOutcome::Partial
                });
                retry.succeeded();
                ack(shared, job);
                return;
            }
            Some(need) => {
                stats.write_request(WriteOutcome::Retriable);
                stats.write_retries.fetch_add(1, Relaxed);
                offset += need.offset;
                points_left = points_left.saturating_sub(settled);
                if !retry.wait(&need.error, shared.control.writers_stop_signal()) {
                    return;
                }
            }
        }
    }
}

/// Acknowledges a written job's records in the WAL (fatal when that fails).
pub(super) fn ack(shared: &Shared, job: &WriteJob) {
    match shared.wal.ack(&job.ids) {
        Ok(()) => shared.replay.acked(&job.ids),
        Err(e) => shared.control.fatal(format!(
            "acknowledging {} WAL record(s) for {}: {e}",
            job.ids.len(),
            job.database
        )),
    }
}

fn dead_letter_lines(
    shared: &Shared,
    database: &str,
    rejected: &[crate::influx::RejectedLine],
) -> Result<(), crate::dead_letter::DeadLetterError> {
    for r in rejected {
        shared
            .dead_letters
            .record(&DeadLetter::rejected_line(database, &r.line, &r.reason))?;
        shared.stats.dead_letters.fetch_add(1, Relaxed);
    }
    shared.dead_letters.sync()
}
