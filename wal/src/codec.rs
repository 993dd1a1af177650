//! The byte layout of a frame — consecutive records of one append, the unit
//! the log stores, checksums and reads back — and of acknowledgement
//! bitmaps. A frame starts with a format byte so the layout can evolve; an
//! unknown format byte is treated as corruption, never guessed at.

use crate::record::{Record, RecordRef};
use bincode::config::{Configuration, Limit, LittleEndian, Varint};

/// Format byte of the frames written by this version: a bincode header of
/// the records' fields but their payloads, then each payload on its own,
/// LZ4-compressed when that pays. Payloads are compressed straight from the
/// caller's buffer and decompressed straight into the record's own, so the
/// lines are not copied through a bincode body on either side.
pub(crate) const FORMAT_V3: u8 = 3;

/// What a [`FORMAT_V3`] header says of one record: database, kind, points,
/// payload length, and the length stored (shorter when compressed).
type PayloadHeader<S> = (S, u8, u32, u32, u32);

/// A frame is stored compressed only when that saves at least 1/8.
const MIN_COMPRESSED_SAVING: usize = 8;

/// Largest single record accepted by `append`: a bound on what a corrupt
/// length prefix can make the decoder allocate.
pub(crate) const MAX_RECORD_BYTES: usize = 16 << 20;

/// Frames are cut at this many encoded (uncompressed) bytes: the unit of
/// a read and of an acknowledgement bitmap, small enough that replay holds
/// little at a time, large enough that the in-memory index stays small
/// (~100 bytes per frame).
pub(crate) const FRAME_TARGET_BYTES: usize = 32 << 10;

const ENCODE: Configuration = bincode::config::standard();
const DECODE: Configuration<LittleEndian, Varint, Limit<{ 64 << 20 }>> =
    bincode::config::standard().with_limit::<{ 64 << 20 }>();

/// Splits an append into frames: consecutive runs of records whose encoded
/// size stays near [`FRAME_TARGET_BYTES`]; a record larger than that gets a
/// frame of its own.
pub(crate) fn frame_bounds(records: &[RecordRef<'_>]) -> Vec<std::ops::Range<usize>> {
    let mut bounds = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, r) in records.iter().enumerate() {
        let s = r.encoded_size_bound();
        if i > start && size + s > FRAME_TARGET_BYTES {
            bounds.push(start..i);
            start = i;
            size = 0;
        }
        size += s;
    }
    if start < records.len() {
        bounds.push(start..records.len());
    }
    bounds
}

/// Buffers reused from one append to the next: fresh multi-megabyte
/// buffers per append cost page faults and zero-filling comparable to the
/// compression itself.
#[derive(Default)]
pub(crate) struct FrameEncoder {
    /// The compressed payloads of the frame being encoded, back to back;
    /// its length only grows, so it is zero-filled once.
    compressed: Vec<u8>,
    /// Where each record's payload sits: in `compressed`, or stored plain.
    stored: Vec<StoredPayload>,
    /// The frames of an append, back to back: lent to the append's
    /// `EncodedBatch` and given back with the encoder.
    pub(crate) frames: Vec<u8>,
}

/// How one payload of a frame being encoded is stored.
#[derive(Clone, Copy)]
enum StoredPayload {
    Plain,
    Compressed { at: usize, len: usize },
}

/// Encoders kept between appends, one per appender running at once.
const MAX_IDLE_ENCODERS: usize = 4;

/// Encoders' buffers are dropped rather than kept above this size, so one
/// unusually large append does not pin its memory.
const MAX_KEPT_ENCODER_BYTES: usize = 16 << 20;

impl FrameEncoder {
    /// Appends one encoded frame ([`FORMAT_V3`]) to `out`. A payload is
    /// compressed when that saves at least 1/8 (line protocol typically
    /// shrinks 5-7x, and every byte saved is a byte not written to disk).
    pub(crate) fn encode(
        &mut self,
        records: &[RecordRef<'_>],
        out: &mut Vec<u8>,
    ) -> Result<(), bincode::error::EncodeError> {
        let room: usize = records
            .iter()
            .map(|r| lz4_flex::block::get_maximum_output_size(r.payload.len()))
            .sum();
        if self.compressed.len() < room {
            self.compressed.resize(room, 0);
        }
        self.stored.clear();
        let mut at = 0;
        for r in records {
            let stored = match lz4_flex::block::compress_into(r.payload, &mut self.compressed[at..])
            {
                Ok(len) if len + r.payload.len() / MIN_COMPRESSED_SAVING <= r.payload.len() => {
                    StoredPayload::Compressed { at, len }
                }
                _ => StoredPayload::Plain,
            };
            if let StoredPayload::Compressed { len, .. } = stored {
                at += len;
            }
            self.stored.push(stored);
        }
        let header: Vec<PayloadHeader<&str>> = records
            .iter()
            .zip(&self.stored)
            .map(|(r, stored)| {
                let raw = r.payload.len() as u32;
                let kept = match stored {
                    StoredPayload::Plain => raw,
                    StoredPayload::Compressed { len, .. } => *len as u32,
                };
                (r.database, r.kind, r.points, raw, kept)
            })
            .collect();
        out.push(FORMAT_V3);
        bincode::serde::encode_into_std_write(&header, out, ENCODE)?;
        for (r, stored) in records.iter().zip(&self.stored) {
            match *stored {
                StoredPayload::Plain => out.extend_from_slice(r.payload),
                StoredPayload::Compressed { at, len } => {
                    out.extend_from_slice(&self.compressed[at..at + len])
                }
            }
        }
        Ok(())
    }

    /// Whether the buffers are small enough to keep for the next append.
    pub(crate) fn worth_keeping(&self) -> bool {
        self.compressed.capacity() + self.frames.capacity() <= MAX_KEPT_ENCODER_BYTES
    }
}

/// A small pool of [`FrameEncoder`]s for concurrent appenders.
#[derive(Default)]
pub(crate) struct EncoderPool(std::sync::Mutex<Vec<FrameEncoder>>);

impl EncoderPool {
    /// An idle encoder, or a fresh one.
    pub(crate) fn get(&self) -> FrameEncoder {
        self.0
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_default()
    }

    /// Gives an encoder back for a later append.
    pub(crate) fn put(&self, encoder: FrameEncoder) {
        if !encoder.worth_keeping() {
            return;
        }
        if let Ok(mut idle) = self.0.lock() {
            if idle.len() < MAX_IDLE_ENCODERS {
                idle.push(encoder);
            }
        }
    }
}

/// Decodes a frame, checking it holds exactly `count` records and nothing
/// after them. The error is a reason for the quarantine log line.
pub(crate) fn decode_frame(bytes: &[u8], count: u32) -> Result<Vec<Record>, String> {
    let records = match bytes.split_first() {
        Some((&FORMAT_V3, body)) => decode_v3(body)?,
        Some((v, _)) => return Err(format!("frame has unknown format byte {v}")),
        None => return Err("frame is empty".into()),
    };
    if records.len() != count as usize {
        return Err(format!(
            "frame holds {} records, its header says {count}",
            records.len()
        ));
    }
    Ok(records)
}

/// The records of a [`FORMAT_V3`] body: the header, then the payloads.
fn decode_v3(body: &[u8]) -> Result<Vec<Record>, String> {
    let (header, used): (Vec<PayloadHeader<String>>, usize) =
        bincode::serde::decode_from_slice(body, DECODE)
            .map_err(|e| format!("undecodable frame header: {e}"))?;
    let mut rest = &body[used..];
    let mut records = Vec::with_capacity(header.len());
    for (database, kind, points, raw, kept) in header {
        let (raw, kept) = (raw as usize, kept as usize);
        if raw > MAX_RECORD_BYTES {
            return Err(format!("frame header claims a payload of {raw} bytes"));
        }
        let (stored, tail) = rest.split_at_checked(kept).ok_or_else(|| {
            format!(
                "frame ends inside the payload of record {} ({kept} bytes stored, {} left)",
                records.len(),
                rest.len()
            )
        })?;
        let payload = match kept.cmp(&raw) {
            std::cmp::Ordering::Equal => stored.to_vec(),
            std::cmp::Ordering::Less => decompress(stored, raw, "payload")?,
            std::cmp::Ordering::Greater => {
                return Err(format!(
                    "frame header stores {kept} bytes for a payload of {raw}"
                ))
            }
        };
        rest = tail;
        records.push(Record {
            database,
            kind,
            points,
            payload,
        });
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} trailing bytes after {} records",
            rest.len(),
            records.len()
        ));
    }
    Ok(records)
}

/// An LZ4 block that must decompress to exactly `len` bytes.
fn decompress(block: &[u8], len: usize, what: &str) -> Result<Vec<u8>, String> {
    let raw = lz4_flex::block::decompress(block, len)
        .map_err(|e| format!("compressed {what} does not decompress: {e}"))?;
    if raw.len() != len {
        return Err(format!(
            "compressed {what} decompresses to {} bytes, its header says {len}",
            raw.len()
        ));
    }
    Ok(raw)
}

/// Which records of a frame are acknowledged, one bit each (bit i of byte
/// i/8 for record `first + i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AckBits {
    bits: Vec<u8>,
}

impl AckBits {
    pub(crate) fn new(count: u32) -> AckBits {
        AckBits {
            bits: vec![0; (count as usize).div_ceil(8)],
        }
    }

    pub(crate) fn is_set(&self, i: u32) -> bool {
        self.bits
            .get(i as usize / 8)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    /// Sets bit `i`; returns false when it was already set.
    pub(crate) fn set(&mut self, i: u32) -> bool {
        match self.bits.get_mut(i as usize / 8) {
            Some(b) if *b & (1 << (i % 8)) == 0 => {
                *b |= 1 << (i % 8);
                true
            }
            _ => false,
        }
    }

    /// The bitmap as stored in a checkpoint.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// `None` for a bitmap that does not fit a frame of `count` records.
    pub(crate) fn from_bytes(bytes: &[u8], count: u32) -> Option<AckBits> {
        (bytes.len() == (count as usize).div_ceil(8)).then(|| AckBits {
            bits: bytes.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(db: &str, n: usize) -> (String, Vec<u8>) {
        (db.to_string(), vec![b'x'; n])
    }

    fn refs(owned: &[(String, Vec<u8>)]) -> Vec<RecordRef<'_>> {
        owned
            .iter()
            .enumerate()
            .map(|(i, (d, p))| RecordRef {
                database: d,
                kind: i as u8,
                points: 7 * i as u32,
                payload: p,
            })
            .collect()
    }

    #[test]
    fn frame_round_trips_and_checks_count() {
        let owned = [rec("mon", 10), rec("mon_t1", 0), rec("", 300)];
        let refs = refs(&owned);
        let mut buf = Vec::new();
        FrameEncoder::default().encode(&refs, &mut buf).unwrap();
        assert_eq!(buf[0], FORMAT_V3);
        assert!(buf.len() < 300, "repetitive payloads are compressed");
        let back = decode_frame(&buf, 3).unwrap();
        assert_eq!(back.iter().map(|r| r.as_ref()).collect::<Vec<_>>(), refs);
        assert!(decode_frame(&buf, 2).unwrap_err().contains("header says 2"));
        let mut bad = buf.clone();
        bad[0] = 9;
        assert!(decode_frame(&bad, 3).unwrap_err().contains("format byte 9"));
        assert!(decode_frame(&buf[..buf.len() - 5], 3)
            .unwrap_err()
            .contains("ends inside the payload of record 2"));
        let mut long = buf.clone();
        long.push(0);
        assert!(decode_frame(&long, 3).unwrap_err().contains("trailing"));
        // Corrupt bytes anywhere never panic.
        for i in 1..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x5A;
            let _ = decode_frame(&bad, 3);
        }
    }

    #[test]
    fn incompressible_payloads_are_stored_plain() {
        let mut rng = fastrand::Rng::with_seed(7);
        let payload: Vec<u8> = (0..3000).map(|_| rng.u8(..)).collect();
        let repetitive = vec![b'x'; 3000];
        let refs = [
            RecordRef {
                database: "mon",
                kind: 1,
                points: 2,
                payload: &payload,
            },
            RecordRef {
                database: "mon",
                kind: 1,
                points: 2,
                payload: &repetitive,
            },
        ];
        let mut buf = vec![0xAA];
        FrameEncoder::default().encode(&refs, &mut buf).unwrap();
        assert_eq!(buf[1], FORMAT_V3, "appended after what was there");
        assert!(buf.len() > 3000 && buf.len() < 3200, "{}", buf.len());
        let back = decode_frame(&buf[1..], 2).unwrap();
        assert_eq!(back.iter().map(|r| r.as_ref()).collect::<Vec<_>>(), refs);
    }

    #[test]
    fn a_reused_encoder_encodes_each_frame_on_its_own() {
        let big = b"cpu,host=a value=1 1\n".repeat(2000);
        let small = b"mem,host=b value=2 2\n".repeat(3);
        let mut encoder = FrameEncoder::default();
        let mut frames = Vec::new();
        for payload in [&big, &small, &big] {
            let refs = [RecordRef {
                database: "mon",
                kind: 0,
                points: 1,
                payload,
            }];
            let mut buf = Vec::new();
            encoder.encode(&refs, &mut buf).unwrap();
            frames.push(buf);
        }
        assert_eq!(
            frames[0], frames[2],
            "no state leaks from one frame into the next"
        );
        for (frame, payload) in frames.iter().zip([&big, &small, &big]) {
            assert_eq!(&decode_frame(frame, 1).unwrap()[0].payload, payload);
        }
        let pool = EncoderPool::default();
        pool.put(encoder);
        assert!(
            pool.get().compressed.len() >= big.len(),
            "the pool hands the buffers back"
        );
    }

    #[test]
    fn frames_are_cut_near_the_target_size() {
        let payload = vec![0u8; 1000];
        let big = vec![0u8; 3 * FRAME_TARGET_BYTES];
        let mut refs = vec![
            RecordRef {
                database: "d",
                kind: 0,
                points: 1,
                payload: &payload
            };
            20
        ];
        refs.insert(
            3,
            RecordRef {
                database: "d",
                kind: 0,
                points: 1,
                payload: &big,
            },
        );
        let bounds = frame_bounds(&refs);
        assert_eq!(bounds.first().map(|b| b.start), Some(0));
        assert_eq!(bounds.last().map(|b| b.end), Some(refs.len()));
        assert!(bounds.windows(2).all(|w| w[0].end == w[1].start));
        assert!(bounds.contains(&(3..4)), "{bounds:?}");
        for b in &bounds {
            let size: usize = refs[b.clone()].iter().map(|r| r.encoded_size_bound()).sum();
            assert!(b.len() == 1 || size <= FRAME_TARGET_BYTES, "{b:?} {size}");
        }
        assert!(frame_bounds(&[]).is_empty());
    }

    #[test]
    fn ack_bits() {
        let mut bits = AckBits::new(10);
        assert!(bits.set(9));
        assert!(!bits.set(9));
        assert!(!bits.set(16), "beyond the bitmap");
        assert!(bits.is_set(9) && !bits.is_set(0));
        assert_eq!(AckBits::from_bytes(bits.as_bytes(), 10), Some(bits.clone()));
        assert_eq!(AckBits::from_bytes(bits.as_bytes(), 20), None);
    }
}
