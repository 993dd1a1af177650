//! Writes `_bulk` items in requests of at most `batch_size` items and
//! [`MAX_BULK_BYTES`], and sorts what the answers say: stored items are
//! counted, refused ones come back with the server's reason (for the
//! dead-letter file), and the items that failed for now stay pending for the
//! caller to try again. A request the server refuses as a whole (too large,
//! or broken by one item) is split in halves until the culprit is alone.

use std::time::Instant;

use super::bulk::{self, Item, ItemOutcome};
use super::client::{BulkAnswer, EsClient};
use crate::config::ElasticsearchSection;
use crate::http_client::SetupError;
use crate::stats::{EventsStats, WriteOutcome};

/// Largest `_bulk` body sent (an item larger than this goes alone):
/// Elasticsearch advises requests of a few MB, and refuses above 100 MB.
pub const MAX_BULK_BYTES: usize = 8 * 1024 * 1024;

/// An item the server refused for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedItem {
    /// Its index.
    pub index: String,
    /// Its document id.
    pub id: String,
    /// The document as sent.
    pub document: Vec<u8>,
    /// The server's reason.
    pub reason: String,
}

/// What one [`EventsWriter::write`] did.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Items stored.
    pub stored: usize,
    /// Items refused for good.
    pub refused: Vec<RefusedItem>,
    /// Why items are still pending, when some are.
    pub retry: Option<String>,
}

/// The `_bulk` writer of the events sink.
#[derive(Debug)]
pub struct EventsWriter {
    client: EsClient,
    batch_size: usize,
}

impl EventsWriter {
    /// A writer for `[elasticsearch]`.
    pub fn from_config(config: &ElasticsearchSection) -> Result<EventsWriter, SetupError> {
        Ok(EventsWriter {
            client: EsClient::new(config)?,
            batch_size: config.batch_size.max(1),
        })
    }

    /// The HTTP client (for pings and messages).
    pub fn client(&self) -> &EsClient {
        &self.client
    }

    /// Items per request.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Writes the items in `pending`; on return `pending` holds the items
    /// to try again (in their order), and the report says what became of
    /// the others and why some are left.
    pub fn write(&self, pending: &mut Vec<u8>, stats: &EventsStats) -> WriteReport {
        let body = std::mem::take(pending);
        let items = bulk::items(&body);
        let mut report = WriteReport::default();
        let mut down = false;
        let mut start = 0;
        while start < items.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < items.len()
                && end - start < self.batch_size
                && (end == start || bytes + items[end].bytes.len() <= MAX_BULK_BYTES)
            {
                bytes += items[end].bytes.len();
                end += 1;
            }
            let chunk = &items[start..end];
            if down {
                // The last request failed as a whole: the rest waits too.
                keep(chunk, pending);
            } else {
                down = self.send(chunk, &mut report, pending, stats);
            }
            start = end;
        }
        report
    }

    /// Sends one request of `chunk` and sorts its items into `report` and
    /// `pending`; true when the request failed as a whole (no answer per
    /// item), so that the next ones wait for the retry.
    fn send(
        &self,
        chunk: &[Item<'_>],
        report: &mut WriteReport,
        pending: &mut Vec<u8>,
        stats: &EventsStats,
    ) -> bool {
        let body: Vec<u8> = chunk.iter().flat_map(|i| i.bytes.iter().copied()).collect();
        let started = Instant::now();
        let answer = self.client.bulk(&body);
        stats.bulk_latency.observe_since(started);
        match answer {
            Err(e) => {
                stats.bulk_request(WriteOutcome::Retriable);
                keep(chunk, pending);
                report.retry.get_or_insert_with(|| e.to_string());
                true
            }
            Ok(BulkAnswer::Refused { status, reason }) => {
                stats.bulk_request(WriteOutcome::Partial);
                if let [item] = chunk {
                    refuse(
                        item,
                        format!("HTTP {status} for the whole request: {reason}"),
                        report,
                    );
                    return false;
                }
                let (a, b) = chunk.split_at(chunk.len() / 2);
                if self.send(a, report, pending, stats) {
                    keep(b, pending);
                    return true;
                }
                self.send(b, report, pending, stats)
            }
            Ok(BulkAnswer::Items(answer)) => match bulk::read_answer(&answer, chunk.len()) {
                Err(detail) => {
                    stats.bulk_request(WriteOutcome::Retriable);
                    keep(chunk, pending);
                    report.retry.get_or_insert_with(|| {
                        format!(
                            "writing events with _bulk at {}: unreadable answer: {detail}",
                            self.client.url()
                        )
                    });
                    true
                }
                Ok(outcomes) => {
                    let mut all_stored = true;
                    for (item, outcome) in chunk.iter().zip(outcomes) {
                        match outcome {
                            ItemOutcome::Stored => report.stored += 1,
                            ItemOutcome::Refused(reason) => {
                                all_stored = false;
                                refuse(item, reason, report);
                            }
                            ItemOutcome::Retry(reason) => {
                                all_stored = false;
                                keep(std::slice::from_ref(item), pending);
                                report.retry.get_or_insert_with(|| {
                                    format!(
                                        "writing events with _bulk at {}: a document was not stored: {reason}",
                                        self.client.url()
                                    )
                                });
                            }
                        }
                    }
                    stats.bulk_request(if all_stored {
                        WriteOutcome::Success
                    } else {
                        WriteOutcome::Partial
                    });
                    false
                }
            },
        }
    }
}

fn keep(items: &[Item<'_>], pending: &mut Vec<u8>) {
    for item in items {
        pending.extend_from_slice(item.bytes);
    }
}

fn refuse(item: &Item<'_>, reason: String, report: &mut WriteReport) {
    let (index, id) = item.target();
    report.refused.push(RefusedItem {
        index,
        id,
        document: item.document().to_vec(),
        reason,
    });
}
