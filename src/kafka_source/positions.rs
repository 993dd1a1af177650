//! Where each assigned partition's next message should be, so that data
//! lost upstream is never silent. A message further on than expected means
//! offsets were skipped: transaction markers and aborted transactions
//! (harmless), or messages Kafka deleted (retention) before they were read —
//! librdkafka then resumes at the earliest offset (`auto.offset.reset =
//! earliest`), and the consumer warns and counts what was deleted, judged by
//! the partition's log start offset ([`deleted_before_read`]).

/// The expected next offset of every partition (by partition number).
#[derive(Debug, Default)]
pub struct Positions {
    next: Vec<i64>,
}

/// Marks a partition whose next offset is not known.
const UNKNOWN: i64 = -1;

impl Positions {
    /// Expects the next message of `partition` at `offset` (a start offset
    /// of an assignment, or a seek); a negative offset means unknown (also
    /// for a revoked partition).
    pub fn expect(&mut self, partition: i32, offset: i64) {
        let Ok(p) = usize::try_from(partition) else {
            return;
        };
        if p >= self.next.len() {
            self.next.resize(p + 1, UNKNOWN);
        }
        self.next[p] = offset.max(UNKNOWN);
    }

    /// Notes a message of `partition` at `offset`; returns the offset that
    /// was expected instead when the message lies beyond it.
    #[inline]
    pub fn advance(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let p = usize::try_from(partition).ok()?;
        let Some(next) = self.next.get_mut(p) else {
            self.expect(partition, offset + 1);
            return None;
        };
        let expected = *next;
        *next = offset + 1;
        (expected >= 0 && offset > expected).then_some(expected)
    }
}

/// How many offsets from `expected` on were deleted before they were read,
/// when the next message came at `offset` and the partition's log now
/// starts at `log_start`: none when `expected` is still in the log (the gap
/// was transaction markers or aborted messages).
pub fn deleted_before_read(expected: i64, offset: i64, log_start: i64) -> i64 {
    if log_start > expected {
        log_start.min(offset) - expected
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_offsets_are_no_gap_and_unknown_partitions_learn_their_position() {
        let mut p = Positions::default();
        assert_eq!(p.advance(3, 100), None, "unknown partition");
        assert_eq!(p.advance(3, 101), None);
        p.expect(0, 10);
        assert_eq!(p.advance(0, 10), None);
        assert_eq!(p.advance(0, 11), None);
        p.expect(0, -1);
        assert_eq!(p.advance(0, 50), None, "revoked partition");
        assert_eq!(p.advance(-1, 5), None, "no partition");
    }

    #[test]
    fn a_message_beyond_the_expected_offset_reports_the_expected_one() {
        let mut p = Positions::default();
        p.expect(1, 500);
        assert_eq!(p.advance(1, 700), Some(500));
        assert_eq!(p.advance(1, 701), None);
        // A seek back (a rewind after an error) is no gap.
        p.expect(1, 650);
        assert_eq!(p.advance(1, 650), None);
    }

    #[test]
    fn only_offsets_below_the_log_start_count_as_deleted() {
        // Retention moved the log start from below 500 to 700: 200 deleted.
        assert_eq!(deleted_before_read(500, 700, 700), 200);
        // More was deleted since the reset than the consumer skipped.
        assert_eq!(deleted_before_read(500, 700, 750), 200);
        // A transaction marker or aborted messages: still in the log.
        assert_eq!(deleted_before_read(500, 502, 0), 0);
        assert_eq!(deleted_before_read(500, 502, 500), 0);
    }
}
