//! The consumer as the flush point's [`OffsetCommitter`]: offsets committed
//! to the group, and the positions of its topic's partitions.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::context::PersisterContext;
use crate::pipeline::flush_point::{CommitMode, OffsetCommitter};

/// The flush point's view of the consumer: commits and positions of its topic.
impl OffsetCommitter for BaseConsumer<PersisterContext> {
    type Error = KafkaError;

    fn commit_offsets(
        &self,
        topic: &str,
        offsets: &[(i32, i64)],
        mode: CommitMode,
    ) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*o));
        }
        let mode = match mode {
            CommitMode::Sync => rdkafka::consumer::CommitMode::Sync,
            CommitMode::Async => rdkafka::consumer::CommitMode::Async,
        };
        self.commit(&tpl, mode)
    }

    fn positions(&self, topic: &str) -> Option<Vec<(i32, i64)>> {
        let positions = self.position().ok()?;
        let known = positions
            .elements_for_topic(topic)
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(position) => Some((e.partition(), position)),
                _ => None,
            })
            .collect();
        Some(known)
    }
}
