//! The writer pool: threads that take WAL records from a sink's hand-off
//! queue, coalesce consecutive records for the same database up to the
//! sink's batch size, write them, and ack them in the WAL only after the
//! sink (InfluxDB, or Elasticsearch for events) accepted them. Retriable
//! failures keep the records and back off.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::control::Control;
use super::event_sink::EventsSink;
use super::handoff::{Handoff, HandoffQueue};
use super::line_buffers::LineBuffers;
use super::replay::Replay;
use crate::dead_letter::{DeadLetter, DeadLetterStore};
use crate::influx::InfluxWriter;
use crate::retry::Retry;
use crate::stats::{Stats, WriteOutcome};

/// A coalesced write: one database, one or more WAL records.
pub(super) struct WriteJob {
    pub database: String,
    pub ids: Vec<wal::RecordId>,
    pub lines: Vec<u8>,
    pub points: usize,
}

/// Where a writer thread writes.
pub enum Sink {
    /// Metrics and alarm transitions to InfluxDB.
    Influx {
        /// The chunked batch writer.
        writer: Arc<InfluxWriter>,
        /// Points per write (`[influxdb] batch_size`).
        batch_size: usize,
    },
    /// Events to Elasticsearch.
    Events(Arc<EventsSink>),
}

/// What a writer thread holds of the pipeline: its sink and the queue of
/// that sink's records, the WAL to read records back from and ack them in,
/// the dead-letter file for what the sink refuses. Built once per writer
/// thread at start-up.
pub struct WriterHandle {
    /// Where it writes.
    pub sink: Sink,
    /// Records on their way to this sink.
    pub handoff: Arc<HandoffQueue>,
    /// Backoff and the failure log of the thread's writes.
    pub retry: Retry,
    /// The durable log: records read back, and acked once written.
    pub wal: Arc<wal::Wal>,
    /// The start-up backlog, told of acks.
    pub replay: Arc<Replay>,
    /// Lines and documents the sink refused.
    pub dead_letters: Arc<DeadLetterStore>,
    /// Written records' buffers, back to the consumers.
    pub line_buffers: Arc<LineBuffers>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Run state: draining, giving up, fatal errors.
    pub control: Arc<Control>,
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

/// Starts writer thread number `n` of its handle's sink.
pub fn spawn(n: usize, handle: WriterHandle) -> anyhow::Result<WriterThread> {
    let name = match handle.sink {
        Sink::Influx { .. } => format!("writer#{n}"),
        Sink::Events(_) => format!("events-writer#{n}"),
    };
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(move || run(handle))?;
    Ok(WriterThread { handle })
}

fn run(w: WriterHandle) {
    // This thread's own: its backoff state changes with its writes.
    let mut retry = w.retry.clone();
    let handoff = &w.handoff;
    let batch_size = match &w.sink {
        Sink::Influx { batch_size, .. } => *batch_size,
        Sink::Events(events) => events.batch_size(),
    };
    let mut carry: Option<WriteJob> = None;
    loop {
        if w.control.writers_stopped() {
            return; // what is left stays in the WAL for the next start
        }
        let mut job = match carry.take() {
            Some(job) => job,
            None => match handoff.recv_timeout(Duration::from_millis(50)) {
                Some(h) => match resolve(&w, h) {
                    Some(job) => job,
                    None => continue,
                },
                None if w.control.draining() => return, // consumers gone, queue empty
                None => continue,
            },
        };
        // Coalesce consecutive records for the same database.
        while job.points < batch_size {
            let Some(next) = handoff.try_recv().and_then(|h| resolve(&w, h)) else {
                break;
            };
            if next.database == job.database && job.points + next.points <= batch_size {
                job.lines.extend_from_slice(&next.lines);
                job.points += next.points;
                job.ids.extend(next.ids);
                w.line_buffers.give_back(next.lines);
            } else {
                carry = Some(next);
                break;
            }
        }
        match &w.sink {
            Sink::Events(events) => events.write_job(&w, &mut job, &mut retry),
            Sink::Influx { writer, .. } => write_job(&w, writer, &job, &mut retry),
        }
        w.line_buffers.give_back(job.lines);
    }
}

/// Turns a hand-off into a job, reading the record from the WAL when only its id travelled.
fn resolve(w: &WriterHandle, h: Handoff) -> Option<WriteJob> {
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
            w.stats.wal_records_read_back.fetch_add(1, Relaxed);
            let after = id.0.checked_sub(1).map(wal::RecordId);
            match w.wal.pending_from(after).next() {
                Some(Ok((found, rec))) if found == id => Some(WriteJob {
                    database: rec.database,
                    ids: vec![id],
                    lines: rec.payload,
                    points: rec.points as usize,
                }),
                Some(Ok(_)) | None => None, // already acked
                Some(Err(e)) => {
                    w.control.fatal(format!("reading WAL record {}: {e}", id.0));
                    None
                }
            }
        }
    }
}

/// Writes one job until InfluxDB settled all of it (then acks it in the WAL),
/// or the writers must give up (the records stay in the WAL).
fn write_job(w: &WriterHandle, influx: &InfluxWriter, job: &WriteJob, retry: &mut Retry) {
    let stats = &w.stats;
    let mut offset = 0;
    let mut points_left = job.points;
    loop {
        let started = Instant::now();
        let report = influx.write_batch(&job.database, &job.lines[offset..], points_left);
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
            if let Err(e) = dead_letter_lines(w, &job.database, &report.rejected) {
                w.control.fatal(format!(
                    "writing {} line(s) InfluxDB refused for {} to {}: {e}",
                    report.rejected.len(),
                    job.database,
                    w.dead_letters.path().display()
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
                ack(w, job);
                return;
            }
            Some(need) => {
                stats.write_request(WriteOutcome::Retriable);
                stats.write_retries.fetch_add(1, Relaxed);
                offset += need.offset;
                points_left = points_left.saturating_sub(settled);
                if !retry.wait(&need.error, w.control.writers_stop_signal()) {
                    return;
                }
            }
        }
    }
}

/// Acknowledges a written job's records in the WAL (fatal when that fails).
pub(super) fn ack(w: &WriterHandle, job: &WriteJob) {
    match w.wal.ack(&job.ids) {
        Ok(()) => w.replay.acked(&job.ids),
        Err(e) => w.control.fatal(format!(
            "acknowledging {} WAL record(s) for {}: {e}",
            job.ids.len(),
            job.database
        )),
    }
}

fn dead_letter_lines(
    w: &WriterHandle,
    database: &str,
    rejected: &[crate::influx::RejectedLine],
) -> Result<(), crate::dead_letter::DeadLetterError> {
    for r in rejected {
        w.dead_letters
            .record(&DeadLetter::rejected_line(database, &r.line, &r.reason))?;
        w.stats.dead_letters.fetch_add(1, Relaxed);
    }
    w.dead_letters.sync()
}
