//! The unit the WAL stores: a record (one batch of encoded lines for one
//! target database), its borrowed form for appending without copies, and the
//! ids that name records in append order.

use serde::{Deserialize, Serialize};

/// Identifies one stored record. Ids grow strictly in append order and are
/// never reused, also across restarts, so they double as the replay cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub u64);

impl RecordId {
    /// The raw number, for logging and for callers that keep cursors.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The ids one `append` assigned: a contiguous range, in the order of the
/// records passed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordIds {
    start: u64,
    end: u64,
}

impl RecordIds {
    pub(crate) fn new(start: u64, end: u64) -> RecordIds {
        RecordIds { start, end }
    }

    /// The id of the first record, `None` for an append of offsets only.
    pub fn first(&self) -> Option<RecordId> {
        (self.start < self.end).then_some(RecordId(self.start))
    }

    /// The id of the last record, `None` for an append of offsets only.
    pub fn last(&self) -> Option<RecordId> {
        (self.start < self.end).then(|| RecordId(self.end - 1))
    }

    /// How many records the append stored.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// True for an append that stored offsets only.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether `id` was assigned by this append.
    pub fn contains(&self, id: RecordId) -> bool {
        (self.start..self.end).contains(&id.0)
    }

    /// Every id, in append order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = RecordId> {
        (self.start..self.end).map(RecordId)
    }
}

impl IntoIterator for RecordIds {
    type Item = RecordId;
    type IntoIter = std::iter::Map<std::ops::Range<u64>, fn(u64) -> RecordId>;

    fn into_iter(self) -> Self::IntoIter {
        (self.start..self.end).map(RecordId as fn(u64) -> RecordId)
    }
}

/// One stored record as read back: opaque to the WAL except for the fields
/// the writers need to route and count it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Target database the payload is written to.
    pub database: String,
    /// Caller-defined kind (e.g. metric or alarm transition).
    pub kind: u8,
    /// Number of points (lines) in the payload, for metrics and chunking.
    pub points: u32,
    /// The encoded lines.
    #[serde(with = "payload_bytes")]
    pub payload: Vec<u8>,
}

impl Record {
    /// The borrowed form, e.g. to append a record read back elsewhere.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            database: &self.database,
            kind: self.kind,
            points: self.points,
            payload: &self.payload,
        }
    }
}

/// A record to append, borrowing its fields from the caller's buffers.
/// Encodes exactly like [`Record`], so one decodes what the other wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordRef<'a> {
    /// Target database the payload is written to.
    pub database: &'a str,
    /// Caller-defined kind (e.g. metric or alarm transition).
    pub kind: u8,
    /// Number of points (lines) in the payload.
    pub points: u32,
    /// The encoded lines.
    #[serde(serialize_with = "payload_bytes::serialize")]
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// Upper bound of the encoded size, used to cut frames without encoding
    /// twice: two length prefixes and two integers of at most 9 bytes each.
    pub(crate) fn encoded_size_bound(&self) -> usize {
        self.database.len() + self.payload.len() + 4 * 9 + 1
    }
}

/// Payload bytes as one length-prefixed block: serde's default for byte
/// vectors is a sequence of single bytes, which bincode would encode and
/// decode one call per byte.
mod payload_bytes {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}
