//! One Kafka message into the consumer's batch: the transform call (a
//! metric or an alarm transition to an InfluxDB line, an event to a `_bulk`
//! item), or a dead letter with the reason when the message is rejected.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::elasticsearch::document::{self, EventSource};
use crate::pipeline::batch::{PendingBatch, RejectedMessage};
use crate::pipeline::event_sink::EVENTS_RECORD_DATABASE;
use crate::stats::{Stats, TopicKind};
use crate::transform::{Rejection, Target, Transformer};

/// Turns the messages of one topic into lines of its batch, or dead letters.
pub struct MessageHandler<'a> {
    /// The topic (for the events' document ids and messages).
    pub topic: &'a str,
    /// What its messages are.
    pub kind: TopicKind,
    /// Messages to lines.
    pub transformer: &'a Transformer,
    /// `[elasticsearch] index_name`, for events.
    pub index_name: &'a str,
    /// Rejections are counted.
    pub stats: &'a Stats,
}

impl MessageHandler<'_> {
    /// Handles one message: a line into the batch, or a dead letter.
    pub(super) fn handle(
        &self,
        batch: &mut PendingBatch,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
        scratch: &mut Vec<u8>,
    ) {
        let transformer = self.transformer;
        let payload = payload.unwrap_or(&[]);
        let result = match self.kind {
            // Every metric goes to the one database: encode it in place.
            TopicKind::Metrics if !transformer.db_per_tenant() => {
                let lines =
                    batch.shared_lines(|| transformer.database(&Target::Shared).into_owned());
                transformer
                    .metric(payload, lines)
                    .map(|_| batch.shared_line_added())
            }
            TopicKind::Events => {
                scratch.clear();
                let source = EventSource {
                    topic: self.topic,
                    partition,
                    offset,
                };
                let today = chrono::Local::now().date_naive();
                document::encode(self.index_name, source, payload, today, scratch).map(|()| {
                    batch.push_line(&Target::Shared, scratch, || {
                        EVENTS_RECORD_DATABASE.to_string()
                    })
                })
            }
            TopicKind::Metrics | TopicKind::AlarmTransitions => {
                scratch.clear();
                let target = match self.kind {
                    TopicKind::AlarmTransitions => transformer.alarm_transition(payload, scratch),
                    _ => transformer.metric(payload, scratch),
                };
                target.map(|target| {
                    batch.push_line(&target, scratch, || {
                        transformer.database(&target).into_owned()
                    })
                })
            }
        };
        if let Err(rejection) = result {
            self.stats.rejected(self.kind, rejection.kind());
            self.log_rejection(partition, offset, &rejection);
            batch.dead_letters.push(RejectedMessage {
                partition,
                offset,
                kind: rejection.kind(),
                reason: rejection.to_string(),
                payload: payload.to_vec(),
            });
        }
        batch.advance(partition, offset);
    }

    fn log_rejection(&self, partition: i32, offset: i64, rejection: &Rejection) {
        // One WARN per rejection kind per minute; the rest are counted.
        static LAST: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());
        let Ok(mut last) = LAST.lock() else { return };
        let kind = rejection.kind();
        let now = Instant::now();
        match last.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, t)) if now.duration_since(*t) < Duration::from_secs(60) => return,
            Some((_, t)) => *t = now,
            None => last.push((kind, now)),
        }
        log::warn!("rejected message {}/{partition}@{offset}: {rejection} (more of this kind are counted, not logged, for a minute)", self.topic);
    }
}
