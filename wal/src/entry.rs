//! The byte layout of the log: segment headers, and the CRC-checked entries
//! that follow them — what one `append`, `ack` or space reclaim writes —
//! plus the scan that finds every intact entry in a segment, also past
//! damaged bytes.
//!
//! ```text
//! segment header (64 bytes)
//!   0  magic "MPWALSEG"   8  version u32   12 reserved
//!   16 segment number u64 24 lsn of its first entry u64   32 next record id at its creation u64
//!   40 reserved           60 CRC-32 of bytes 0..60
//! entry header (32 bytes), then `meta_len` bytes of meta, then `data_len` bytes of frames
//!   0  magic "MPWE"       4  kind u8      5 reserved
//!   8  lsn u64 (log sequence number: 1, 2, 3… across segments)
//!   16 meta_len u32       20 data_len u32
//!   24 CRC-32 of bytes 0..24 and of the meta   28 reserved
//! ```
//!
//! The meta lists every frame of the data with its record count, length
//! and own CRC-32, so an entry is intact when its header CRC and every
//! frame CRC match. All integers are little-endian.

use crate::codec::AckBits;

/// Length of a segment header.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 64;
const SEGMENT_MAGIC: &[u8; 8] = b"MPWALSEG";
const SEGMENT_VERSION: u32 = 1;

/// Length of an entry header.
pub(crate) const ENTRY_HEADER_LEN: u64 = 32;
const ENTRY_MAGIC: &[u8; 4] = b"MPWE";

/// Bounds on what a header may claim, so garbage cannot make the scan
/// allocate or skip without limit.
const MAX_META_LEN: u32 = 256 << 20;
const MAX_DATA_LEN: u32 = u32::MAX >> 1;

const KIND_APPEND: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_LOST: u8 = 3;
const KIND_CHECKPOINT: u8 = 4;

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// CRC-32 of a frame as stored.
pub(crate) fn frame_crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// What a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub number: u64,
    pub first_lsn: u64,
    pub first_id: u64,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_LEN as usize] {
        let mut b = [0u8; SEGMENT_HEADER_LEN as usize];
        b[..8].copy_from_slice(SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.number.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_lsn.to_le_bytes());
        b[32..40].copy_from_slice(&self.first_id.to_le_bytes());
        let c = crc(&[&b[..60]]);
        b[60..].copy_from_slice(&c.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<SegmentHeader> {
        let b = b.get(..SEGMENT_HEADER_LEN as usize)?;
        if &b[..8] != SEGMENT_MAGIC || u32_at(b, 8) != SEGMENT_VERSION {
            return None;
        }
        if crc(&[&b[..60]]) != u32_at(b, 60) {
            return None;
        }
        Some(SegmentHeader {
            number: u64_at(b, 16),
            first_lsn: u64_at(b, 24),
            first_id: u64_at(b, 32),
        })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// One frame of an entry's data: records `first..first + count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    pub first: u64,
    pub count: u32,
    pub len: u32,
    pub crc: u32,
    /// Records already acknowledged when the frame was carried
    /// (checkpoints only).
    pub acked: Option<AckBits>,
}

/// What an entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// One `append`: frames of records with consecutive ids from
    /// `first_id`, and the offsets stored with them.
    Append {
        first_id: u64,
        offsets: Vec<(String, i64)>,
        frames: Vec<FrameInfo>,
    },
    /// Records acknowledged (ranges of ids, end exclusive).
    Ack { ranges: Vec<(u64, u64)> },
    /// Records found damaged after open: acknowledged as lost, counted.
    Lost { ranges: Vec<(u64, u64)> },
    /// Written before segments are deleted: every offset, the count of
    /// records lost so far, and pending frames moved out of the segments
    /// being deleted (with their acknowledgements).
    Checkpoint {
        lost_total: u64,
        offsets: Vec<(String, i64)>,
        frames: Vec<FrameInfo>,
    },
}

/// Little-endian writer of an entry's meta.
#[derive(Default)]
struct Meta(Vec<u8>);

impl Meta {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    fn offsets(&mut self, offsets: &[(String, i64)]) {
        self.u32(offsets.len() as u32);
        for (name, offset) in offsets {
            self.bytes(name.as_bytes());
            self.u64(*offset as u64);
        }
    }
    fn ranges(&mut self, ranges: &[(u64, u64)]) {
        self.u32(ranges.len() as u32);
        for (start, end) in ranges {
            self.u64(*start);
            self.u64(end - start);
        }
    }
}

/// Bounds-checked reader of an entry's meta; any overrun is an error.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.b.len() < n {
            return Err("meta ends early".into());
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32_at(self.take(4)?, 0))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64_at(self.take(8)?, 0))
    }
    fn count(&mut self, each: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(each) > self.b.len() {
            return Err(format!("meta claims {n} items"));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn offsets(&mut self) -> Result<Vec<(String, i64)>, String> {
        let n = self.count(12)?;
        (0..n)
            .map(|_| {
                let name = std::str::from_utf8(self.bytes()?)
                    .map_err(|_| "offset name is not UTF-8".to_string())?
                    .to_string();
                Ok((name, self.u64()? as i64))
            })
            .collect()
    }
    fn ranges(&mut self) -> Result<Vec<(u64, u64)>, String> {
        let n = self.count(16)?;
        (0..n)
            .map(|_| {
                let start = self.u64()?;
                let len = self.u64()?;
                let end = start
                    .checked_add(len)
                    .ok_or_else(|| "range overflows".to_string())?;
                Ok((start, end))
            })
            .collect()
    }
}

impl Body {
    fn kind(&self) -> u8 {
        match self {
            Body::Append { .. } => KIND_APPEND,
            Body::Ack { .. } => KIND_ACK,
            Body::Lost { .. } => KIND_LOST,
            Body::Checkpoint { .. } => KIND_CHECKPOINT,
        }
    }

    /// The frames the entry's data holds, in order.
    pub(crate) fn frames(&self) -> &[FrameInfo] {
        match self {
            Body::Append { frames, .. } | Body::Checkpoint { frames, .. } => frames,
            Body::Ack { .. } | Body::Lost { .. } => &[],
        }
    }

    fn encode_meta(&self) -> Vec<u8> {
        let mut m = Meta::default();
        match self {
            Body::Append {
                first_id,
                offsets,
                frames,
            } => {
                m.u64(*first_id);
                m.offsets(offsets);
                m.u32(frames.len() as u32);
                for f in frames {
                    m.u32(f.count);
                    m.u32(f.len);
                    m.u32(f.crc);
                }
            }
            Body::Ack { ranges } | Body::Lost { ranges } => m.ranges(ranges),
            Body::Checkpoint {
                lost_total,
                offsets,
                frames,
            } => {
                m.u64(*lost_total);
                m.offsets(offsets);
                m.u32(frames.len() as u32);
                for f in frames {
                    m.u64(f.first);
                    m.u32(f.count);
                    m.u32(f.len);
                    m.u32(f.crc);
                    m.bytes(f.acked.as_ref().map_or(&[][..], |a| a.as_bytes()));
                }
            }
        }
        m.0
    }

    fn decode_meta(kind: u8, meta: &[u8]) -> Result<Body, String> {
        let mut r = Reader { b: meta };
        let body = match kind {
            KIND_APPEND => {
                let first_id = r.u64()?;
                let offsets = r.offsets()?;
                let n = r.count(12)?;
                let mut next = first_id;
                let mut frames = Vec::with_capacity(n);
                for _ in 0..n {
                    let (count, len, crc) = (r.u32()?, r.u32()?, r.u32()?);
                    frames.push(FrameInfo {
                        first: next,
                        count,
                        len,
                        crc,
                        acked: None,
                    });
                    next = next
                        .checked_add(count as u64)
                        .ok_or_else(|| "record ids overflow".to_string())?;
                }
                Body::Append {
                    first_id,
                    offsets,
                    frames,
                }
            }
            KIND_ACK => Body::Ack {
                ranges: r.ranges()?,
            },
            KIND_LOST => Body::Lost {
                ranges: r.ranges()?,
            },
            KIND_CHECKPOINT => {
                let lost_total = r.u64()?;
                let offsets = r.offsets()?;
                let n = r.count(24)?;
                let mut frames = Vec::with_capacity(n);
                for _ in 0..n {
                    let (first, count, len, crc) = (r.u64()?, r.u32()?, r.u32()?, r.u32()?);
                    let bits = r.bytes()?;
                    let acked = if bits.is_empty() {
                        None
                    } else {
                        Some(AckBits::from_bytes(bits, count).ok_or_else(|| {
                            format!("ack bitmap of {} bytes for {count} records", bits.len())
                        })?)
                    };
                    frames.push(FrameInfo {
                        first,
                        count,
                        len,
                        crc,
                        acked,
                    });
                }
                Body::Checkpoint {
                    lost_total,
                    offsets,
                    frames,
                }
            }
            other => return Err(format!("unknown entry kind {other}")),
        };
        if !r.b.is_empty() {
            return Err(format!("{} bytes after the meta", r.b.len()));
        }
        Ok(body)
    }
}

/// An entry ready to be written: its header and meta (its data, the
/// frames, is written after them by the caller).
pub(crate) struct Encoded {
    pub head: Vec<u8>,
    pub data_len: u64,
}

impl Encoded {
    /// Bytes the whole entry takes in the segment.
    pub(crate) fn len(&self) -> u64 {
        self.head.len() as u64 + self.data_len
    }
}

/// Encodes the header and meta of entry `lsn` saying `body`, whose frames
/// (listed in `body`) the caller writes right after.
pub(crate) fn encode(lsn: u64, body: &Body) -> Encoded {
    let meta = body.encode_meta();
    let data_len: u64 = body.frames().iter().map(|f| f.len as u64).sum();
    let mut head = Vec::with_capacity(ENTRY_HEADER_LEN as usize + meta.len());
    head.extend_from_slice(ENTRY_MAGIC);
    head.push(body.kind());
    head.extend_from_slice(&[0; 3]);
    head.extend_from_slice(&lsn.to_le_bytes());
    head.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    head.extend_from_slice(&(data_len as u32).to_le_bytes());
    let c = crc(&[&head[..24], &meta]);
    head.extend_from_slice(&c.to_le_bytes());
    head.extend_from_slice(&[0; 4]);
    head.extend_from_slice(&meta);
    Encoded { head, data_len }
}

/// An intact entry found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// Where its header starts in the segment.
    pub at: u64,
    /// Its whole length.
    pub len: u64,
    pub lsn: u64,
    pub body: Body,
    /// Where its data (the frames, back to back) starts in the segment.
    pub data_at: u64,
    /// Positions (in `body.frames()`) of frames whose CRC does not match.
    pub bad_frames: Vec<usize>,
}

/// What a scan of one segment found: its header when intact, its intact
/// entries, and the byte ranges that are neither.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub header: Option<SegmentHeader>,
    pub entries: Vec<Scanned>,
    pub invalid: Vec<(u64, u64)>,
}

/// The entry starting at `at`, if intact down to its meta (frames are
/// checked separately and reported in `bad_frames`).
fn entry_at(buf: &[u8], at: usize) -> Option<Scanned> {
    let h = buf.get(at..at + ENTRY_HEADER_LEN as usize)?;
    if &h[..4] != ENTRY_MAGIC {
        return None;
    }
    let (meta_len, data_len) = (u32_at(h, 16), u32_at(h, 20));
    if meta_len > MAX_META_LEN || data_len > MAX_DATA_LEN {
        return None;
    }
    let meta_at = at + ENTRY_HEADER_LEN as usize;
    let data_at = meta_at + meta_len as usize;
    let end = data_at + data_len as usize;
    if end > buf.len() {
        return None;
    }
    let meta = &buf[meta_at..data_at];
    if crc(&[&h[..24], meta]) != u32_at(h, 24) {
        return None;
    }
    let body = Body::decode_meta(h[4], meta).ok()?;
    let frames = body.frames();
    if frames.iter().map(|f| f.len as u64).sum::<u64>() != data_len as u64 {
        return None;
    }
    let mut bad_frames = Vec::new();
    let mut pos = data_at;
    for (i, f) in frames.iter().enumerate() {
        let bytes = &buf[pos..pos + f.len as usize];
        if frame_crc(bytes) != f.crc {
            bad_frames.push(i);
        }
        pos += f.len as usize;
    }
    Some(Scanned {
        at: at as u64,
        len: (end - at) as u64,
        lsn: u64_at(h, 8),
        body,
        data_at: data_at as u64,
        bad_frames,
    })
}

/// Scans a whole segment: header, then entry after entry; where bytes do
/// not form an intact entry, searches forward for the next one, so entries
/// behind damaged bytes are still found.
pub(crate) fn scan(buf: &[u8]) -> Scan {
    let mut out = Scan {
        header: SegmentHeader::decode(buf),
        ..Scan::default()
    };
    let mut pos = if out.header.is_some() {
        SEGMENT_HEADER_LEN as usize
    } else {
        0
    };
    let finder = memchr::memmem::Finder::new(ENTRY_MAGIC);
    while pos < buf.len() {
        if let Some(e) = entry_at(buf, pos) {
            pos += e.len as usize;
            out.entries.push(e);
            continue;
        }
        let bad_from = pos;
        let mut next = None;
        let mut from = pos + 1;
        while let Some(i) = finder.find(&buf[from.min(buf.len())..]) {
            let candidate = from + i;
            if entry_at(buf, candidate).is_some() {
                next = Some(candidate);
                break;
            }
            from = candidate + 1;
        }
        let bad_to = next.unwrap_or(buf.len());
        out.invalid.push((bad_from as u64, bad_to as u64));
        pos = bad_to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first: u64, bytes: &[u8]) -> FrameInfo {
        FrameInfo {
            first,
            count: 2,
            len: bytes.len() as u32,
            crc: frame_crc(bytes),
            acked: None,
        }
    }

    /// A segment with an append, an ack and a checkpoint.
    fn segment() -> (Vec<u8>, Vec<Body>) {
        let header = SegmentHeader {
            number: 7,
            first_lsn: 40,
            first_id: 100,
        };
        let (a, b) = (b"frame one".to_vec(), b"frame number two".to_vec());
        let mut bits = AckBits::new(2);
        bits.set(1);
        let bodies = vec![
            Body::Append {
                first_id: 100,
                offsets: vec![("metrics/3".into(), 1200)],
                frames: vec![frame(100, &a), frame(102, &b)],
            },
            Body::Ack {
                ranges: vec![(100, 101), (103, 104)],
            },
            Body::Checkpoint {
                lost_total: 3,
                offsets: vec![("metrics/3".into(), 1200), ("x".into(), -1)],
                frames: vec![FrameInfo {
                    acked: Some(bits),
                    ..frame(102, &b)
                }],
            },
            Body::Lost {
                ranges: vec![(5, 9)],
            },
        ];
        let mut buf = header.encode().to_vec();
        for (i, body) in bodies.iter().enumerate() {
            buf.extend_from_slice(&encode(40 + i as u64, body).head);
            match i {
                0 => {
                    buf.extend_from_slice(&a);
                    buf.extend_from_slice(&b);
                }
                2 => buf.extend_from_slice(&b),
                _ => {}
            }
        }
        (buf, bodies)
    }

    #[test]
    fn entries_round_trip() {
        let (buf, bodies) = segment();
        let scan = scan(&buf);
        assert_eq!(scan.header.map(|h| h.number), Some(7));
        assert!(scan.invalid.is_empty());
        let got: Vec<_> = scan.entries.iter().map(|e| e.body.clone()).collect();
        assert_eq!(got, bodies);
        assert_eq!(
            scan.entries.iter().map(|e| e.lsn).collect::<Vec<_>>(),
            [40, 41, 42, 43]
        );
        assert!(scan.entries.iter().all(|e| e.bad_frames.is_empty()));
        let end = scan.entries.last().map(|e| e.at + e.len);
        assert_eq!(end, Some(buf.len() as u64));
    }

    #[test]
    fn a_bad_frame_is_reported_and_the_entry_kept() {
        let (mut buf, _) = segment();
        let first = scan(&buf).entries[0].clone();
        buf[first.data_at as usize + 12] ^= 1;
        let scan = scan(&buf);
        assert_eq!(scan.entries[0].bad_frames, vec![1]);
        assert_eq!(scan.entries.len(), 4);
    }

    #[test]
    fn entries_behind_damage_are_found_and_the_damage_located() {
        let (buf, _) = segment();
        let entries = scan(&buf).entries;
        // Garbage over the ack entry's header.
        let mut bad = buf.clone();
        let ack = &entries[1];
        for b in &mut bad[ack.at as usize..ack.at as usize + 10] {
            *b = 0xA5;
        }
        let s = scan(&bad);
        assert_eq!(
            s.entries.iter().map(|e| e.lsn).collect::<Vec<_>>(),
            [40, 42, 43]
        );
        assert_eq!(s.invalid, vec![(ack.at, ack.at + ack.len)]);
        // A zeroed head: the header and the first entry are gone.
        let mut zeroed = buf.clone();
        let cut = (entries[0].at + entries[0].len) as usize - 3;
        zeroed[..cut].fill(0);
        let s = scan(&zeroed);
        assert!(s.header.is_none());
        assert_eq!(s.entries.first().map(|e| e.lsn), Some(41));
        assert_eq!(s.invalid, vec![(0, entries[1].at)]);
        // A torn tail.
        let s = scan(&buf[..buf.len() - 5]);
        assert_eq!(s.entries.len(), 3);
        assert_eq!(s.invalid, vec![(entries[3].at, buf.len() as u64 - 5)]);
        // Garbage anywhere never panics.
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x5A;
            let _ = scan(&b);
            let _ = scan(&buf[..i]);
        }
    }
}
