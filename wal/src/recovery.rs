//! Opening a WAL: reads every segment, keeps what is intact, tells a power
//! cut from damage, and repairs the directory so the next open finds a
//! clean log.
//!
//! - Entries are numbered (lsn) without gaps across segments. The first
//!   gap or unreadable entry *after* what the high-water mark says was
//!   durable ends the log: it and everything behind it belong to appends
//!   that never returned (a power cut or crash interrupted them). They are
//!   dropped with a WARN line, and the segment is truncated there.
//! - Anything missing or unreadable *within* what the mark covers is
//!   damage: the records it held that were not acknowledged are counted as
//!   lost, the unreadable bytes are copied to `quarantine/`, one ERROR line
//!   says how many records, which ids and where the bytes went, and the
//!   intact records are kept. The log is then rewritten into a fresh
//!   segment (a checkpoint carrying every pending record), so the damage
//!   is reported once.

use crate::dir::{io, sync_dir};
use crate::entry::{self, Body, FrameInfo, Scanned, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::error::WalError;
use crate::index::{Counters, FrameIndex, FrameMeta, Location};
use crate::mark::{self, Mark, MarkFile};
use crate::segment::{self, Segment};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A live segment after recovery.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentState {
    pub header: SegmentHeader,
    pub len: u64,
}

/// The state of a recovered WAL.
pub(crate) struct Recovered {
    pub segments: BTreeMap<u64, SegmentState>,
    pub index: FrameIndex,
    pub next_lsn: u64,
    pub next_id: u64,
    pub offsets: BTreeMap<String, i64>,
    pub lost_total: u64,
    pub mark: MarkFile,
}

/// Where the log stops being the log.
#[derive(Debug, Clone, Copy)]
struct Cut {
    segment: u64,
    at: u64,
}

/// Damage found by the walk.
#[derive(Debug, Default)]
struct Damage {
    /// Entries (lsn ranges, end exclusive) that should be there and are not.
    lsn_gaps: Vec<(u64, u64)>,
    /// Unreadable byte ranges inside the log: (segment, start, end).
    regions: Vec<(u64, u64, u64)>,
    /// Frames whose bytes fail their CRC: (segment, offset, length, first id, count).
    bad_frames: Vec<(u64, u64, u32, u64, u32)>,
}

impl Damage {
    fn is_empty(&self) -> bool {
        self.lsn_gaps.is_empty() && self.regions.is_empty() && self.bad_frames.is_empty()
    }
}

/// The walk over all entries in log order.
struct Walk {
    /// Entries up to this lsn were durable (`u64::MAX` when the mark is
    /// not trusted: then every gap is damage, never the end).
    durable_lsn: u64,
    expected: Option<u64>,
    last_lsn: u64,
    accepted: Vec<(u64, Scanned)>,
    /// Unreadable ranges after the last accepted entry.
    pending: Vec<(u64, u64, u64)>,
    cut: Option<Cut>,
    damage: Damage,
    dropped_entries: u64,
}

impl Walk {
    fn segment(&mut self, number: u64, scan: entry::Scan, last: bool) {
        if self.cut.is_some() {
            self.dropped_entries += scan.entries.len() as u64;
            return;
        }
        if scan.header.is_none() && scan.entries.is_empty() && scan.invalid.is_empty() {
            // Created, header never written: nothing to read, nothing to
            // scan past.
            self.pending.push((number, 0, 0));
        }
        enum Event {
            Entry(Box<Scanned>),
            Bad(u64, u64),
        }
        let mut events: Vec<(u64, Event)> = scan
            .entries
            .into_iter()
            .map(|e| (e.at, Event::Entry(Box::new(e))))
            .chain(scan.invalid.into_iter().map(|(a, b)| (a, Event::Bad(a, b))))
            .collect();
        events.sort_by_key(|(at, _)| *at);
        let mut rest = events.into_iter();
        for (_, event) in rest.by_ref() {
            let e = match event {
                Event::Bad(a, b) => {
                    self.pending.push((number, a, b));
                    continue;
                }
                Event::Entry(e) => e,
            };
            let expected = self.expected.unwrap_or(e.lsn);
            if e.lsn < expected {
                // An entry from before the ones already read: not part of
                // this log (a stray copy); treated as unreadable bytes.
                self.pending.push((number, e.at, e.at + e.len));
                continue;
            }
            let unfinished = if e.lsn > expected {
                if expected <= self.durable_lsn {
                    self.damage.lsn_gaps.push((expected, e.lsn));
                    false
                } else {
                    true
                }
            } else {
                !e.bad_frames.is_empty() && e.lsn > self.durable_lsn
            };
            if unfinished {
                self.cut_at(number, e.at);
                self.dropped_entries += 1;
                break;
            }
            self.damage.regions.append(&mut self.pending);
            let mut at = e.data_at;
            for (i, f) in e.body.frames().iter().enumerate() {
                if e.bad_frames.contains(&i) {
                    self.damage
                        .bad_frames
                        .push((number, at, f.len, f.first, f.count));
                }
                at += f.len as u64;
            }
            self.expected = Some(e.lsn + 1);
            self.last_lsn = e.lsn;
            self.accepted.push((number, *e));
        }
        for (_, event) in rest {
            if let Event::Entry(_) = event {
                self.dropped_entries += 1;
            }
        }
        if !last && self.cut.is_none() {
            // Segments are synced whole before the next one is created:
            // nothing unreadable at the end of one is a torn write.
            self.damage.regions.append(&mut self.pending);
        }
    }

    fn cut_at(&mut self, number: u64, at: u64) {
        let at = self
            .pending
            .iter()
            .filter(|(s, _, _)| *s == number)
            .map(|(_, a, _)| *a)
            .min()
            .unwrap_or(at);
        self.pending.clear();
        self.cut = Some(Cut {
            segment: number,
            at,
        });
    }

    /// After the last segment: an unreadable tail ends the log; entries the
    /// mark covers that never showed up are damage.
    fn finish(&mut self, trusted: bool, floor_lsn: u64) {
        let tail = std::mem::take(&mut self.pending);
        let missing_from = self.expected.unwrap_or(floor_lsn);
        let damaged_tail = trusted && self.durable_lsn >= missing_from;
        if damaged_tail {
            self.damage
                .lsn_gaps
                .push((missing_from, self.durable_lsn + 1));
        }
        if let Some(&(number, at, _)) = tail.first() {
            if self.cut.is_none() {
                self.cut = Some(Cut {
                    segment: number,
                    at,
                });
            }
            if damaged_tail {
                self.damage.regions.extend(tail);
            }
        }
    }
}

/// Sorted, merged id ranges (end exclusive).
pub(crate) fn merged(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|(a, b)| a < b);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `from` minus `holes`, both sorted and merged.
fn subtract(from: &[(u64, u64)], holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut h = holes.iter().peekable();
    for &(mut a, b) in from {
        while let Some(&&(ha, hb)) = h.peek() {
            if hb <= a {
                h.next();
                continue;
            }
            if ha >= b {
                break;
            }
            if ha > a {
                out.push((a, ha));
            }
            a = hb;
            if hb >= b {
                break;
            }
            h.next();
        }
        if a < b {
            out.push((a, b));
        }
    }
    out
}

fn count(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|(a, b)| b - a).sum()
}

fn describe(ranges: &[(u64, u64)]) -> String {
    let mut parts: Vec<String> = ranges
        .iter()
        .take(5)
        .map(|(a, b)| format!("{a}..{b}"))
        .collect();
    if ranges.len() > 5 {
        parts.push(format!("and {} more ranges", ranges.len() - 5));
    }
    parts.join(", ")
}

/// Opens the log in `dir` (its marker already checked, its lock held) and
/// recovers it.
pub(crate) fn recover(dir: &Path, counters: &Counters) -> Result<Recovered, WalError> {
    let found = mark::read(dir)?;
    let mut numbers = segment::list(dir)?;
    let (mark, mark_problem) = match found {
        mark::Found::Ok(m) => (m, None),
        mark::Found::Missing if numbers.is_empty() => (Mark::new(), None),
        mark::Found::Missing => (Mark::new(), Some("is missing")),
        mark::Found::Unreadable => (Mark::new(), Some("is unreadable")),
    };
    let trusted = mark_problem.is_none();
    let highest = numbers.last().copied().unwrap_or(0);
    if trusted {
        // Deleted on purpose before a power cut undid the deletion.
        let retired: Vec<u64> = numbers
            .iter()
            .copied()
            .filter(|n| *n < mark.floor_segment)
            .collect();
        for n in &retired {
            let path = segment::path(dir, *n);
            std::fs::remove_file(&path).map_err(io(&path, "removing a retired segment"))?;
        }
        if !retired.is_empty() {
            sync_dir(dir)?;
        }
        numbers.retain(|n| *n >= mark.floor_segment);
    }

    let mut walk = Walk {
        durable_lsn: if trusted { mark.durable_lsn } else { u64::MAX },
        expected: trusted.then_some(mark.floor_lsn),
        last_lsn: 0,
        accepted: Vec::new(),
        pending: Vec::new(),
        cut: None,
        damage: Damage::default(),
        dropped_entries: 0,
    };
    let mut headers: BTreeMap<u64, (Option<SegmentHeader>, u64)> = BTreeMap::new();
    for (i, &number) in numbers.iter().enumerate() {
        let path = segment::path(dir, number);
        let buf = std::fs::read(&path).map_err(io(&path, "reading a segment"))?;
        let scan = entry::scan(&buf);
        headers.insert(number, (scan.header, buf.len() as u64));
        walk.segment(number, scan, i + 1 == numbers.len());
    }
    walk.finish(trusted, mark.floor_lsn);

    // Records: frames of the accepted entries, acknowledgements, offsets.
    let mut frames: BTreeMap<u64, FrameMeta> = BTreeMap::new();
    let mut acks: Vec<(u64, u64)> = Vec::new();
    let mut offsets: BTreeMap<String, i64> = BTreeMap::new();
    let mut lost_total = 0u64;
    for (number, e) in &walk.accepted {
        let mut at = e.data_at;
        let mut add = |f: &FrameInfo, at: u64, bad: bool| {
            if bad {
                return;
            }
            let location = Location {
                segment: *number,
                at,
                crc: f.crc,
            };
            let mut meta = FrameMeta::new(f.count, f.len, location);
            if let Some(bits) = &f.acked {
                meta.set_acked(bits);
            }
            frames.insert(f.first, meta);
        };
        match &e.body {
            Body::Append {
                offsets: o,
                frames: fs,
                ..
            } => {
                for (name, offset) in o {
                    offsets.insert(name.clone(), *offset);
                }
                for (i, f) in fs.iter().enumerate() {
                    add(f, at, e.bad_frames.contains(&i));
                    at += f.len as u64;
                }
            }
            Body::Checkpoint {
                lost_total: l,
                offsets: o,
                frames: fs,
            } => {
                offsets = o.iter().cloned().collect();
                lost_total = *l;
                for (i, f) in fs.iter().enumerate() {
                    add(f, at, e.bad_frames.contains(&i));
                    at += f.len as u64;
                }
            }
            Body::Ack { ranges } => acks.extend_from_slice(ranges),
            Body::Lost { ranges } => {
                lost_total += count(ranges);
                acks.extend_from_slice(ranges);
            }
        }
    }
    let acks = merged(acks);
    for &(a, b) in &acks {
        let start = frames
            .range(..=a)
            .next_back()
            .map_or(a, |(first, _)| *first);
        for (first, meta) in frames.range_mut(start..b) {
            let from = a.max(*first);
            let to = b.min(first + meta.count as u64);
            for id in from..to {
                meta.ack_one((id - first) as u32);
            }
        }
    }
    let present = merged(
        frames
            .iter()
            .map(|(first, m)| (*first, first + m.count as u64))
            .collect(),
    );
    let max_end = present.last().map_or(0, |r| r.1);
    let expected = if trusted {
        vec![(mark.floor_id, mark.durable_id)]
    } else {
        let low = present.first().map_or(0, |r| r.0);
        vec![(low, max_end)]
    };
    let missing = subtract(&subtract(&merged(expected), &present), &acks);
    let lost_now = count(&missing);
    let next_id = max_end.max(mark.durable_id).max(mark.floor_id);
    let mut next_lsn = walk.last_lsn.max(mark.durable_lsn) + 1;
    if walk.accepted.is_empty() && trusted {
        next_lsn = next_lsn.max(mark.floor_lsn);
    }

    // A frame already written off when it was read (a `Lost` entry) is
    // not news.
    walk.damage.bad_frames.retain(|&(_, _, _, first, count)| {
        !subtract(&[(first, first + count as u64)], &acks).is_empty()
    });
    let damaged = !walk.damage.is_empty() || lost_now > 0 || mark_problem.is_some();
    let dir_display = dir.display().to_string();
    if damaged {
        let quarantined = quarantine(dir, &walk.damage)?;
        lost_total += lost_now;
        let pending: u64 = frames.values().map(|m| m.live as u64).sum();
        let mut what = vec![format!(
            "{lost_now} record(s) it had reported durable are missing or unreadable{}",
            if missing.is_empty() {
                String::new()
            } else {
                format!(" (ids {})", describe(&missing))
            }
        )];
        let gaps = count(&walk.damage.lsn_gaps);
        if gaps > 0 {
            what.push(format!("{gaps} log entr(y/ies) are missing"));
        }
        if let Some((bytes, path)) = &quarantined {
            what.push(format!(
                "{bytes} unreadable byte(s) were copied to {}",
                path.display()
            ));
        }
        if let Some(problem) = mark_problem {
            what.push(format!(
                "its high-water mark {problem}, so records lost at the end of the log cannot be counted"
            ));
        }
        log::error!(
            "WAL {dir_display}: damage found at open: {}; {pending} intact pending record(s) are kept and the log is rewritten without the damage ({lost_total} record(s) lost in this WAL so far)",
            what.join("; ")
        );
    }
    // With damage the whole log is rewritten below; a crash before that is
    // done finds the same damage again.
    if let (Some(cut), false) = (walk.cut, damaged) {
        let written = drop_after(dir, &numbers, cut, &mut headers)?;
        // Zeros are space the log had set aside, not data.
        if written > 0 || walk.dropped_entries > 0 {
            log::warn!(
                "WAL {dir_display}: dropped the end of the log ({written} byte(s), {} entr(y/ies) readable) written by appends a crash or power cut interrupted; none of them had reported success",
                walk.dropped_entries
            );
        }
    }

    let mut segments: BTreeMap<u64, SegmentState> = headers
        .into_iter()
        .filter_map(|(n, (h, len))| h.map(|header| (n, SegmentState { header, len })))
        .collect();
    let mut index = FrameIndex::default();
    for (first, meta) in frames {
        if meta.live > 0 {
            index.insert(first, meta, counters);
        }
    }
    let mark_file;
    if damaged {
        let number = highest.max(segments.keys().last().copied().unwrap_or(0)) + 1;
        let header = SegmentHeader {
            number,
            first_lsn: next_lsn,
            first_id: next_id,
        };
        let (len, moved) = rewrite(dir, header, &index, &offsets, lost_total)?;
        for (first, location) in moved {
            index.relocate(first, location);
        }
        mark_file = MarkFile::open(
            dir,
            Mark {
                seq: 0,
                durable_lsn: next_lsn,
                durable_id: next_id,
                floor_segment: number,
                floor_lsn: next_lsn,
                floor_id: next_id,
            },
            mark.seq,
        )?;
        for n in &numbers {
            let path = segment::path(dir, *n);
            std::fs::remove_file(&path).map_err(io(&path, "removing a rewritten segment"))?;
        }
        sync_dir(dir)?;
        segments = BTreeMap::from([(number, SegmentState { header, len })]);
        next_lsn += 1;
    } else {
        if segments.is_empty() {
            let header = SegmentHeader {
                number: highest + 1,
                first_lsn: next_lsn,
                first_id: next_id,
            };
            Segment::create(dir, header)?;
            segments.insert(
                header.number,
                SegmentState {
                    header,
                    len: segment::EMPTY_LEN,
                },
            );
        } else if let Some((&n, _)) = segments.iter().next_back() {
            // Entries past the mark may be in the page cache only (a
            // crash, not a power cut): durable before the mark covers them.
            Segment::open(dir, n)?.sync()?;
        }
        let oldest = segments
            .values()
            .next()
            .map(|s| s.header)
            .unwrap_or(SegmentHeader {
                number: 1,
                first_lsn: next_lsn,
                first_id: next_id,
            });
        mark_file = MarkFile::open(
            dir,
            Mark {
                seq: 0,
                durable_lsn: next_lsn - 1,
                durable_id: next_id,
                floor_segment: oldest.number,
                floor_lsn: oldest.first_lsn,
                floor_id: oldest.first_id,
            },
            mark.seq,
        )?;
    }
    Ok(Recovered {
        segments,
        index,
        next_lsn,
        next_id,
        offsets,
        lost_total,
        mark: mark_file,
    })
}

/// Truncates the log at `cut`: the segment is cut there (deleted when
/// nothing of it remains but its header) and later segments are deleted.
/// Returns how many of the bytes dropped were not zeros.
fn drop_after(
    dir: &Path,
    numbers: &[u64],
    cut: Cut,
    headers: &mut BTreeMap<u64, (Option<SegmentHeader>, u64)>,
) -> Result<u64, WalError> {
    let mut removed = false;
    let mut written = 0;
    for &n in numbers.iter().filter(|n| **n >= cut.segment) {
        let from = if n == cut.segment { cut.at } else { 0 };
        let len = headers.get(&n).map_or(0, |h| h.1);
        if len > from {
            let bytes = Segment::open(dir, n)?.read(from, (len - from) as usize)?;
            written += bytes.iter().filter(|b| **b != 0).count() as u64;
        }
        let keep_header = n == cut.segment
            && cut.at >= SEGMENT_HEADER_LEN
            && headers.get(&n).is_some_and(|(h, _)| h.is_some());
        if keep_header {
            Segment::open(dir, n)?.truncate(cut.at)?;
            if let Some(h) = headers.get_mut(&n) {
                h.1 = cut.at;
            }
        } else {
            let path = segment::path(dir, n);
            std::fs::remove_file(&path).map_err(io(&path, "removing an unfinished segment"))?;
            headers.remove(&n);
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(written)
}

/// Copies the damaged bytes to `<dir>/quarantine/`; returns how many bytes
/// and the directory, or `None` when there were none.
fn quarantine(dir: &Path, damage: &Damage) -> Result<Option<(u64, PathBuf)>, WalError> {
    let mut pieces: Vec<(u64, u64, u64, String)> = damage
        .regions
        .iter()
        .map(|&(s, a, b)| (s, a, b - a, format!("seg{s}-at{a}")))
        .collect();
    pieces.extend(damage.bad_frames.iter().map(|&(s, at, len, first, count)| {
        (
            s,
            at,
            len as u64,
            format!("seg{s}-at{at}-records{first}-{}", first + count as u64),
        )
    }));
    if pieces.is_empty() {
        return Ok(None);
    }
    let qdir = dir.join("quarantine");
    std::fs::create_dir_all(&qdir).map_err(io(&qdir, "creating the quarantine directory"))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut total = 0;
    for (s, at, len, name) in pieces {
        let seg = Segment::open(dir, s)?;
        let bytes = seg.read(at, len as usize)?;
        let path = qdir.join(format!("{stamp}-{name}.bin"));
        std::fs::write(&path, &bytes)
            .and_then(|_| std::fs::File::open(&path)?.sync_all())
            .map_err(io(&path, "writing quarantined bytes"))?;
        total += len;
    }
    sync_dir(&qdir)?;
    sync_dir(dir)?;
    Ok(Some((total, qdir)))
}

/// A checkpoint carrying every frame of `index`.
pub(crate) fn checkpoint_body(
    index: &FrameIndex,
    offsets: &BTreeMap<String, i64>,
    lost_total: u64,
) -> Body {
    Body::Checkpoint {
        lost_total,
        offsets: offsets.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        frames: index
            .iter()
            .map(|(first, m)| FrameInfo {
                first,
                count: m.count,
                len: m.bytes,
                crc: m.location.crc,
                acked: m.acked.clone().filter(|_| m.live < m.count),
            })
            .collect(),
    }
}

/// Writes a fresh segment holding one checkpoint with every pending frame
/// (copied from where `index` says they are), synced; returns its length
/// and the new location of every frame.
fn rewrite(
    dir: &Path,
    header: SegmentHeader,
    index: &FrameIndex,
    offsets: &BTreeMap<String, i64>,
    lost_total: u64,
) -> Result<(u64, Vec<(u64, Location)>), WalError> {
    let body = checkpoint_body(index, offsets, lost_total);
    let encoded = entry::encode(header.first_lsn, &body);
    let seg = Segment::create(dir, header)?;
    let mut at = SEGMENT_HEADER_LEN;
    seg.write(&encoded.head, at)?;
    at += encoded.head.len() as u64;
    let mut open: BTreeMap<u64, Segment> = BTreeMap::new();
    let mut moved = Vec::new();
    for (first, meta) in index.iter() {
        let from = match open.entry(meta.location.segment) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(Segment::open(dir, meta.location.segment)?)
            }
        };
        let bytes = from.read(meta.location.at, meta.bytes as usize)?;
        seg.write(&bytes, at)?;
        moved.push((
            first,
            Location {
                segment: header.number,
                at,
                crc: meta.location.crc,
            },
        ));
        at += bytes.len() as u64;
    }
    seg.sync()?;
    Ok((at, moved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_arithmetic() {
        assert_eq!(
            merged(vec![(5, 7), (1, 3), (2, 4), (7, 9)]),
            vec![(1, 4), (5, 9)]
        );
        assert_eq!(
            subtract(&[(0, 10), (20, 30)], &[(2, 3), (5, 25)]),
            vec![(0, 2), (3, 5), (25, 30)]
        );
        assert_eq!(subtract(&[(0, 10)], &[]), vec![(0, 10)]);
        assert_eq!(subtract(&[(0, 10)], &[(0, 10)]), vec![]);
        assert_eq!(subtract(&[(5, 10)], &[(0, 6), (8, 20)]), vec![(6, 8)]);
        assert_eq!(count(&[(1, 4), (10, 11)]), 4);
    }
}
