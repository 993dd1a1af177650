//! The events sink inside the pipeline: where the events consumer's WAL
//! records go (their own hand-off queue, `handoff::SinkQueues`, and writer
//! thread), and the write of
//! one job: `_bulk` until every document is stored or refused, refused ones
//! to the dead-letter file with the server's reason, then the WAL ack.
//! Documents that failed for now are retried with backoff, and only they.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::writer_pool::{self, WriteJob, WriterHandle};
use crate::config::Config;
use crate::dead_letter::{Content, DeadLetter, KafkaSource};
use crate::elasticsearch::{document, EventsWriter, RefusedItem};
use crate::retry::Retry;

/// The `database` of the events consumer's WAL records: a record's
/// documents carry their own indices.
pub const EVENTS_RECORD_DATABASE: &str = "elasticsearch";

/// Kind of the dead letters of documents Elasticsearch refused.
pub const KIND_ELASTICSEARCH_REJECTED: &str = "elasticsearch_rejected";

/// The events sink: its writer and retry policy, held by its writer
/// thread and the health endpoint's probe.
pub struct EventsSink {
    /// `_bulk` writer.
    pub writer: EventsWriter,
    retry_initial: Duration,
    retry_max: Duration,
}

impl EventsSink {
    /// The sink `[elasticsearch]` describes.
    pub fn from_config(config: &Config) -> anyhow::Result<EventsSink> {
        use anyhow::Context as _;
        let es = &config.elasticsearch;
        Ok(EventsSink {
            writer: EventsWriter::from_config(es).context("setting up the Elasticsearch client")?,
            retry_initial: Duration::from_millis(es.retry_initial_ms),
            retry_max: Duration::from_millis(es.retry_max_ms),
        })
    }

    /// Documents per `_bulk` request (and per WAL record).
    pub fn batch_size(&self) -> usize {
        self.writer.batch_size()
    }

    /// A retry policy (backoff and failure log) for a writer thread.
    pub fn retry_policy(&self) -> Retry {
        Retry::new(
            format!(
                "writing events to Elasticsearch at {}",
                self.writer.client().url()
            ),
            self.retry_initial,
            self.retry_max,
        )
    }

    /// Writes `job` until every document in it is stored or refused (then
    /// acks its records), or the writers must give up (the records stay in
    /// the WAL).
    pub(super) fn write_job(&self, w: &WriterHandle, job: &mut WriteJob, retry: &mut Retry) {
        let stats = &w.stats.events;
        let mut pending = std::mem::take(&mut job.lines);
        loop {
            let report = self.writer.write(&mut pending, stats);
            stats
                .documents_indexed
                .fetch_add(report.stored as u64, Relaxed);
            if !report.refused.is_empty() {
                stats
                    .documents_rejected
                    .fetch_add(report.refused.len() as u64, Relaxed);
                if let Err(e) = dead_letter_documents(w, &report.refused) {
                    w.control.fatal(format!(
                        "writing {} document(s) Elasticsearch refused to {}: {e}",
                        report.refused.len(),
                        w.dead_letters.path().display()
                    ));
                    break;
                }
            }
            match report.retry {
                None => {
                    retry.succeeded();
                    writer_pool::ack(w, job);
                    break;
                }
                Some(error) => {
                    stats.bulk_retries.fetch_add(1, Relaxed);
                    if !retry.wait(&error, w.control.writers_stop_signal()) {
                        break;
                    }
                }
            }
        }
        pending.clear();
        job.lines = pending;
    }
}

fn dead_letter_documents(
    w: &WriterHandle,
    refused: &[RefusedItem],
) -> Result<(), crate::dead_letter::DeadLetterError> {
    for r in refused {
        let source = document::source_of_id(&r.id).map(|s| KafkaSource {
            topic: s.topic,
            partition: s.partition,
            offset: s.offset,
        });
        w.dead_letters.record(&DeadLetter {
            kind: KIND_ELASTICSEARCH_REJECTED,
            reason: &r.reason,
            source,
            database: None,
            content: Content::Document {
                index: &r.index,
                document: &r.document,
            },
        })?;
        w.stats.dead_letters.fetch_add(1, Relaxed);
    }
    w.dead_letters.sync()
}
