//! The direct path of metric encoding: a metric message of the plain common
//! shape goes from its bytes straight to its line in one pass, without the
//! UTF-8 check of the whole payload, the decoded envelope and the `Cow`s of
//! the full path (serde, then `Transformer::encode_metric`).
//!
//! It answers only when it is sure: `Some` only where the
//! full path writes the same line and the same target. Everything else is
//! `None` and the full path starts again from scratch: every rejection, and
//! every message off the plain shape — an escape in a string it keeps, a
//! repeated or `null` field, a timestamp or value that is not a plain JSON
//! number, more dimensions than it holds, a name or tenant the full path
//! might refuse.
//!
//! Why one fast reader (`examples/transform_tiers.rs`; callgrind,
//! instructions per message): this path answers every metric of the
//! benchmark mix (`benches/support/metric_mix.rs`) and of the load
//! generator's traffic, at 3 629 and 2 232, where serde alone takes 19 823
//! on the benchmark mix. What it declines is off the shape producers
//! write: 95.3 % of the differential corpus's metrics (escapes, repeated
//! members, numbers as strings, every rejection), 88.3 % of the fuzz
//! corpus's. A second fast reader for those (a single-pass scanner of the
//! full path) answered 72.7 % and 19.8 % of them at 13 456 instead of
//! 20 761 and none of the benchmark traffic, so it did not pay for its
//! 340 lines and was removed; the metric mix cost the same without it.
//!
//! Timestamps with a fraction, as agents send `time.time() * 1000`
//! (`1554725987408.105`), are answered here too, truncated as the full path
//! truncates them (`int()` of the float, so `.99999999` may round up): the
//! `agents` source (the load generator's metrics with such timestamps) costs
//! 3 055 instructions per message where the full path took 17 052; integer
//! timestamps pay one branch, 2 305 → 2 318 (+0.6 %) on the load
//! generator's metrics and 3 742 → 3 753 (+0.3 %) on the benchmark mix
//! (same binary otherwise; the cold writer out of line, the fraction read
//! inline: a call in the reader cost +4 %).
//!
//! What makes the shortcuts sound: the strings it keeps have no escapes, so
//! they are raw JSON string content, which holds no backslash and no control
//! character; the full path's normalising and trimming of such text changes
//! nothing, and only spaces, commas and `=` get escaped. Outside strings the
//! grammar admits ASCII only, so checking each string holding a non-ASCII
//! byte as UTF-8 is checking the whole payload.

use std::borrow::Cow;

use super::database::{check_tenant, Target};
use super::lexer::{
    digit_count, find_plain_end, find_string_special, number_at, whitespace_len, Lexer, NumberParts,
};
use super::line::{escape_tag_bytes, max_series_key_len, may_need_tag_escape, StringFieldSink};
use super::pynum::{self, FloatRepr};
use super::simd::plain_string_masks;
use super::swar::word;
use super::{pyjson, MAX_TIMESTAMP_MS, METRIC_LONGEST_FIELD_KEY, MIN_TIMESTAMP_MS};

/// Dimensions the direct path sorts on the stack; a message with more goes
/// the full path.
const MAX_TAGS: usize = 16;

/// Bytes of line the direct path builds on the stack; a longer line goes
/// the full path. Far below InfluxDB's series key limit, so that no line
/// written here needs that check.
const LINE_CAPACITY: usize = 512;
const _: () = assert!(LINE_CAPACITY <= max_series_key_len(METRIC_LONGEST_FIELD_KEY));

/// Appends the line of a plain metric message to `out` and returns its
/// target, or returns `None` with `out` as it was. `tenant_database` is the
/// `[influxdb] database_name` when lines go to a database per tenant.
pub(crate) fn encode_metric<'p>(
    payload: &'p [u8],
    tenant_database: Option<&str>,
    out: &mut Vec<u8>,
) -> Option<Target<'p>> {
    let start = out.len();
    let target = encode(payload, tenant_database, out);
    if target.is_none() {
        out.truncate(start);
    }
    target
}

/// Where a piece of text lies in the payload (offsets fit in `u32`: longer
/// payloads go the full path), and whether, as tag text, it may need
/// escaping.
#[derive(Clone, Copy, Default)]
struct Span {
    at: u32,
    len: u32,
    escapes: bool,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        Span {
            at: start as u32,
            len: (end - start) as u32,
            escapes: true,
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.at as usize..self.at as usize + self.len as usize
    }

    fn of(self, payload: &[u8]) -> &[u8] {
        payload.get(self.range()).unwrap_or_default()
    }
}

/// A tag to sort: the first eight bytes of the key as a big-endian number
/// (zero-padded, so its order agrees with the key's) decide most
/// comparisons without a `memcmp`.
#[derive(Clone, Copy, Default)]
struct Tag {
    prefix: u64,
    key: Span,
    value: Span,
}

/// The writable tags of a message, in message order until sorted.
struct TagSet {
    tags: [Tag; MAX_TAGS],
    len: usize,
}

impl TagSet {
    /// Takes a dimension as the full path does: a key `time` is refused,
    /// empty keys are left out, and the meta tags override dimensions of
    /// their names. An empty value goes the full path: it is left out, but
    /// it removes an earlier value of its name too.
    #[inline(always)]
    fn push_dimension(&mut self, payload: &[u8], key: Span, value: Span) -> Option<()> {
        let prefix = prefix_of(payload, key);
        match (key.len, prefix) {
            (4, TIME) => return None,
            (0, _) | (7, REGION) => return Some(()),
            (10, TENANT) if key.of(payload) == b"_tenant_id" => return Some(()),
            _ if value.len == 0 => return None,
            _ => {}
        }
        self.push(Tag { prefix, key, value })
    }

    #[inline(always)]
    fn push(&mut self, tag: Tag) -> Option<()> {
        *self.tags.get_mut(self.len)? = tag;
        self.len += 1;
        Some(())
    }

    /// Sorts by key, stably (among repeated keys the last stays last), by
    /// insertion: a handful of tags, mostly few out of place.
    #[inline(always)]
    fn sort(&mut self, payload: &[u8]) {
        let tags = &mut self.tags[..self.len];
        for i in 1..tags.len() {
            // Mostly in order already: nothing to move.
            if !sorts_after(payload, &tags[i - 1], &tags[i]) {
                continue;
            }
            let tag = tags[i];
            let mut j = i;
            while j > 0 && sorts_after(payload, &tags[j - 1], &tag) {
                tags[j] = tags[j - 1];
                j -= 1;
            }
            tags[j] = tag;
        }
    }

    /// Appends `,key=value` per key in key order, the last value of a
    /// repeated key: the sorted dimensions, with the non-empty meta tags
    /// (`_region`, `_tenant_id`, in that order) merged in.
    #[inline(always)]
    fn write(&self, payload: &[u8], meta: [MetaTag; 2], line: &mut LineBuf) -> Option<()> {
        let mut meta = &meta[..];
        let tags = &self.tags[..self.len];
        for (i, tag) in tags.iter().enumerate() {
            if tags
                .get(i + 1)
                .is_some_and(|next| same_key(payload, next, tag))
            {
                continue;
            }
            while let [first, rest @ ..] = meta {
                if first.prefix > tag.prefix
                    || (first.prefix == tag.prefix && first.key > tag.key.of(payload))
                {
                    break;
                }
                first.write(payload, line)?;
                meta = rest;
            }
            line.push(b',')?;
            line.push_tag(payload, tag.key)?;
            line.push(b'=')?;
            line.push_tag(payload, tag.value)?;
        }
        for tag in meta {
            tag.write(payload, line)?;
        }
        Some(())
    }
}

/// `_region` or `_tenant_id`, which no dimension has as its key by now.
struct MetaTag {
    prefix: u64,
    key: &'static [u8],
    /// `,key=`, padded to a window of constant size (no `memcpy` call).
    head: &'static [u8; 16],
    value: Span,
}

impl MetaTag {
    #[inline(always)]
    fn write(&self, payload: &[u8], line: &mut LineBuf) -> Option<()> {
        if self.value.len == 0 {
            return Some(());
        }
        line.push_prefix(self.head, self.key.len() + 2)?;
        line.push_tag(payload, self.value)
    }
}

/// Key prefixes of the dimension names the full path treats specially.
const TIME: u64 = u64::from_be_bytes(*b"time\0\0\0\0");
const REGION: u64 = u64::from_be_bytes(*b"_region\0");
const TENANT: u64 = u64::from_be_bytes(*b"_tenant_");

fn sorts_after(payload: &[u8], a: &Tag, b: &Tag) -> bool {
    a.prefix > b.prefix || (a.prefix == b.prefix && a.key.of(payload) > b.key.of(payload))
}

#[inline(always)]
fn same_key(payload: &[u8], a: &Tag, b: &Tag) -> bool {
    a.prefix == b.prefix && a.key.len == b.key.len && a.key.of(payload) == b.key.of(payload)
}

/// The first eight bytes of `key` as a big-endian number, zero-padded.
#[inline(always)]
fn prefix_of(payload: &[u8], key: Span) -> u64 {
    let at = key.at as usize;
    match payload.get(at..at + 8) {
        Some(window) => (word(window) & low_bytes(key.len as usize)).swap_bytes(),
        None => {
            let mut head = [0u8; 8];
            for (slot, &b) in head.iter_mut().zip(key.of(payload)) {
                *slot = b;
            }
            u64::from_be_bytes(head)
        }
    }
}

/// A mask of the lowest `n` bytes of a word (all of it from eight on),
/// looked up: one load where the computed mask is a shift and a select.
#[inline(always)]
fn low_bytes(n: usize) -> u64 {
    const MASKS: [u64; 9] = {
        let mut masks = [u64::MAX; 9];
        let mut n = 0;
        while n < 8 {
            masks[n] = (1u64 << (8 * n)) - 1;
            n += 1;
        }
        masks
    };
    MASKS[n.min(8)]
}

/// The line being built, in the per-thread scratch: its length is a local
/// of the encoder (kept in a register, where a length stored beside the
/// bytes would be reloaded after every store into them), and text is copied
/// in fixed-size windows (no `memcpy` call) whose bytes past the text are
/// overwritten by what follows.
struct LineBuf<'b> {
    bytes: &'b mut [u8; LINE_CAPACITY],
    len: usize,
}

impl LineBuf<'_> {
    #[inline(always)]
    fn push(&mut self, byte: u8) -> Option<()> {
        *self.bytes.get_mut(self.len)? = byte;
        self.len += 1;
        Some(())
    }

    #[inline(always)]
    fn push_slice(&mut self, text: &[u8]) -> Option<()> {
        self.bytes
            .get_mut(self.len..)?
            .get_mut(..text.len())?
            .copy_from_slice(text);
        self.len += text.len();
        Some(())
    }

    /// Appends `window[..len]`, copying all of `window`.
    #[inline(always)]
    fn push_prefix<const W: usize>(&mut self, window: &[u8; W], len: usize) -> Option<()> {
        match self
            .bytes
            .get_mut(self.len..)
            .and_then(|free| free.first_chunk_mut::<W>())
        {
            Some(slot) => {
                *slot = *window;
                self.len += len;
                Some(())
            }
            None => self.push_slice_near_end(window.get(..len)?),
        }
    }

    /// [`LineBuf::push_slice`] out of line, for the rare window that does
    /// not fit: inline, its copy would merge with the windows' into one
    /// `memcpy` call of either size.
    #[inline(never)]
    fn push_slice_near_end(&mut self, text: &[u8]) -> Option<()> {
        self.push_slice(text)
    }

    /// Appends measurement, tag key or tag value text from the payload,
    /// escaped as `line::push_tag_bytes` does. Text without escapes of up
    /// to 32 bytes is one window (one size only, so that the copies stay
    /// inline rather than merge into a `memcpy` call of either size).
    #[inline(always)]
    fn push_tag(&mut self, payload: &[u8], text: Span) -> Option<()> {
        if !text.escapes && text.len <= 32 {
            let window = payload
                .get(text.at as usize..)
                .and_then(|rest| rest.first_chunk::<32>());
            if let Some(window) = window {
                return self.push_prefix(window, text.len as usize);
            }
        }
        self.push_escaped_tag(text.of(payload))
    }

    /// Tag text that may need escaping, or is long.
    #[inline(never)]
    fn push_escaped_tag(&mut self, text: &[u8]) -> Option<()> {
        let mut fits = true;
        escape_tag_bytes(text, |piece| fits &= self.push_slice(piece).is_some());
        fits.then_some(())
    }

    fn text(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The fields of a metric message the line is made of.
#[derive(Default)]
struct Fields {
    name: Option<Span>,
    dimensions_seen: bool,
    /// Its text; `escapes` marks one with a fraction.
    timestamp: Option<Span>,
    value: Option<Number>,
    value_meta: Option<Span>,
    region: Option<Span>,
    tenant: Option<Span>,
}

/// The tags and line of a message, kept per thread so that no message pays
/// for zeroing them (what a message leaves behind is never read: both are
/// read only below their lengths, which start at zero).
struct Scratch {
    tags: TagSet,
    line: [u8; LINE_CAPACITY],
}

const NO_SPAN: Span = Span {
    at: 0,
    len: 0,
    escapes: false,
};

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch {
            tags: TagSet {
                tags: [Tag {
                    prefix: 0,
                    key: NO_SPAN,
                    value: NO_SPAN,
                }; MAX_TAGS],
                len: 0,
            },
            line: [0; LINE_CAPACITY],
        })
    };
}

fn encode<'p>(
    payload: &'p [u8],
    tenant_database: Option<&str>,
    out: &mut Vec<u8>,
) -> Option<Target<'p>> {
    // Never busy (nothing here calls back in) and never gone (nothing to
    // drop); if it were, the full path.
    SCRATCH
        .try_with(|scratch| {
            let mut scratch = scratch.try_borrow_mut().ok()?;
            encode_with(payload, tenant_database, out, &mut scratch)
        })
        .ok()
        .flatten()
}

fn encode_with<'p>(
    payload: &'p [u8],
    tenant_database: Option<&str>,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> Option<Target<'p>> {
    u32::try_from(payload.len()).ok()?;
    let mut fields = Fields::default();
    let Scratch { tags, line } = scratch;
    tags.len = 0;
    let line = &mut LineBuf {
        bytes: line,
        len: 0,
    };
    // A cursor of its own for each reader: the general one is out of line,
    // and sharing its cursor would keep the usual reader's in memory too.
    let mut usual = Cursor::new(payload);
    let rest = if usual.usual_envelope(&mut fields, tags).is_some() {
        usual.rest
    } else {
        let mut general = Cursor::new(payload);
        fields = Fields::default();
        tags.len = 0;
        general.envelope(&mut fields, tags)?;
        general.rest
    };
    if whitespace_len(rest) != rest.len() {
        return None;
    }

    let name = fields.name?;
    let timestamp = fields.timestamp?;
    let value = match fields.value? {
        number if number.is_short_decimal(payload) => Value::Short(number),
        number => Value::Repr(metric_value(number, payload)?),
    };
    let region = fields.region?;
    let tenant = fields.tenant?;
    let target = match tenant_database {
        None => Target::Shared,
        Some(database) => {
            let tenant = std::str::from_utf8(tenant.of(payload)).ok()?;
            check_tenant(database, tenant).ok()?;
            Target::Tenant(Cow::Borrowed(tenant))
        }
    };
    // The full path refuses these names; raw text has no tab or NUL to
    // strip in front of the `#`.
    if name.len == 0 || payload.get(name.at as usize) == Some(&b'#') {
        return None;
    }
    tags.sort(payload);

    line.push_tag(payload, name)?;
    let meta = [
        MetaTag {
            prefix: REGION,
            key: b"_region",
            head: b",_region=\0\0\0\0\0\0\0",
            value: region,
        },
        MetaTag {
            prefix: TENANT,
            key: b"_tenant_id",
            head: b",_tenant_id=\0\0\0\0",
            value: tenant,
        },
    ];
    tags.write(payload, meta, line)?;
    line.push_slice(b" value=")?;
    match value {
        Value::Short(number) => number.write_short_decimal(payload, line)?,
        Value::Repr(repr) => {
            let (digits, len) = repr.padded();
            line.push_prefix(digits, len)?;
        }
    }
    // Mostly `null`: the whole field in one copy.
    const EMPTY_VALUE_META: &[u8] = b",value_meta=\"{}\" ";
    match fields.value_meta.map(|raw| raw.of(payload)) {
        None | Some(b"null") => line.push_slice(EMPTY_VALUE_META)?,
        Some(raw) => {
            let raw = std::str::from_utf8(raw).ok()?;
            if pyjson::is_falsy(raw) {
                line.push_slice(EMPTY_VALUE_META)?;
            } else {
                line.push_slice(b",value_meta=\"")?;
                if write_flat_object(raw.as_bytes(), line).is_none() {
                    out.extend_from_slice(line.text());
                    line.len = 0;
                    pyjson::write(raw, &[], &mut StringFieldSink(out)).ok()?;
                }
                line.push_slice(b"\" ")?;
            }
        }
    }
    if timestamp.escapes {
        write_truncated_timestamp(timestamp.of(payload), line)?;
    } else {
        // A JSON integer is written canonically (no leading zeros, no `+`),
        // as `int()` then `str()` would write it; only `-0` is not.
        // Copied as a window: digits need no escaping.
        line.push_tag(payload, timestamp)?;
    }
    line.push(b'\n')?;
    out.extend_from_slice(line.text());
    Some(target)
}

/// Most members of a `value_meta` object written directly; more go the
/// general writer.
const MAX_FLAT_MEMBERS: usize = 8;

/// Writes a flat `value_meta` object (already validated, strings as UTF-8
/// too) as `pyjson::write` into a `StringFieldSink` would; `None`, with
/// `line` as it was, for anything else: a nested value, a float, `-0`, a string with an escape,
/// a repeated key, more than [`MAX_FLAT_MEMBERS`] members, a line too long.
///
/// Why the output is the same: a string without escapes is raw JSON
/// content (no `"`, `\`, control character), which Python writes back
/// verbatim and the string field escaping leaves alone; an integer other
/// than `-0` is written as it stands; the literals as they are; only the
/// quotes around keys and strings become `\"`, the separators Python's.
fn write_flat_object(raw: &[u8], line: &mut LineBuf) -> Option<()> {
    let start = line.len;
    let written = flat_object(raw, line);
    if written.is_none() {
        line.len = start;
    }
    written
}

fn flat_object(raw: &[u8], line: &mut LineBuf) -> Option<()> {
    let mut cursor = Cursor::new(raw);
    let mut keys = [Span::default(); MAX_FLAT_MEMBERS];
    cursor.eat(b'{')?;
    line.push(b'{')?;
    for member in 0..MAX_FLAT_MEMBERS {
        cursor.skip_whitespace();
        let key = cursor.escape_free_string()?;
        let key_text = key.of(raw);
        if keys[..member]
            .iter()
            .any(|earlier| earlier.of(raw) == key_text)
        {
            return None;
        }
        keys[member] = key;
        cursor.colon()?;
        cursor.skip_whitespace();
        if member > 0 {
            line.push_slice(b", ")?;
        }
        line.push_slice(b"\\\"")?;
        line.push_slice(key_text)?;
        line.push_slice(b"\\\": ")?;
        match cursor.peek()? {
            b'"' => {
                let text = cursor.escape_free_string()?;
                line.push_slice(b"\\\"")?;
                line.push_slice(text.of(raw))?;
                line.push_slice(b"\\\"")?;
            }
            b'-' | b'0'..=b'9' => {
                let at = cursor.pos();
                let _ = cursor.eat(b'-');
                cursor.digits();
                let text = raw.get(at..cursor.pos())?;
                if text == b"-0" || matches!(cursor.peek(), Some(b'.' | b'e' | b'E')) {
                    return None;
                }
                line.push_slice(text)?;
            }
            b't' => {
                cursor.literal(b"true").then_some(())?;
                line.push_slice(b"true")?;
            }
            b'f' => {
                cursor.literal(b"false").then_some(())?;
                line.push_slice(b"false")?;
            }
            b'n' => {
                cursor.literal(b"null").then_some(())?;
                line.push_slice(b"null")?;
            }
            _ => return None,
        }
        if !cursor.next_member()? {
            line.push(b'}')?;
            cursor.skip_whitespace();
            return cursor.rest.is_empty().then_some(());
        }
    }
    None
}

/// Keeps the first value of a field; a repeated one goes the full path.
fn set_once<T>(field: &mut Option<T>, value: T) -> Option<()> {
    match field {
        Some(_) => None,
        None => {
            *field = Some(value);
            Some(())
        }
    }
}

/// Writes `int()` of a timestamp with a fraction (`-?digits.digits`) as the
/// full path's `timestamp_ms` computes it, through the float `json.loads`
/// makes of it (so `1554725987408.99999999` is 1554725987409 and `-0.5` is
/// 0), within the same range; `None` outside it. (`timestamp_ms` itself
/// costs 200 more instructions here: the JSON kind, the integer shortcut.)
#[cold]
#[inline(never)]
fn write_truncated_timestamp(text: &[u8], line: &mut LineBuf) -> Option<()> {
    let ms = pynum::int_from_json_number(std::str::from_utf8(text).ok()?).ok()?;
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
        return None;
    }
    line.push_slice(itoa::Buffer::new().format(ms).as_bytes())
}

/// A `value` number as scanned: where its fraction and exponent are.
#[derive(Clone, Copy)]
struct Number {
    /// All of it.
    text: Span,
    /// Where the integer digits end (a `.`, an `e`, or the end).
    int_end: u32,
    /// Where the fraction digits end; `int_end` without a fraction.
    fraction_end: u32,
    exponent: bool,
}

/// How the `value` is written.
enum Value {
    /// Its own text, normalised (see [`Number::is_short_decimal`]).
    Short(Number),
    /// `repr(float(text))` formatted.
    Repr(FloatRepr),
}

impl Number {
    /// Digits of the fraction, without the trailing zeros `repr` drops.
    #[inline(always)]
    fn kept_fraction(self, payload: &[u8]) -> &[u8] {
        let fraction = payload
            .get(self.int_end as usize + 1..self.fraction_end as usize)
            .unwrap_or_default();
        let zeros = fraction.iter().rev().take_while(|&&d| d == b'0').count();
        &fraction[..fraction.len() - zeros]
    }

    /// Whether `FloatRepr::from_short_decimal` answers for this number, so
    /// that its text, normalised, is `repr(float(text))`: fixed notation,
    /// at most 15 significant digits, not below 1e-4 (the same conditions,
    /// from the positions the scan found instead of a search; besides, the
    /// integer `-0`, which [`Number::write_short_decimal`] writes as 0.0).
    #[inline(always)]
    fn is_short_decimal(self, payload: &[u8]) -> bool {
        if self.exponent {
            return false;
        }
        let at = self.text.at as usize;
        let int_start = at + usize::from(payload.get(at) == Some(&b'-'));
        let int_len = self.int_end as usize - int_start;
        let fraction = self.kept_fraction(payload);
        let significant = if int_len == 1 && payload.get(int_start) == Some(&b'0') {
            let leading = fraction.iter().take_while(|&&d| d == b'0').count();
            // Below 1e-4 Python switches to exponent notation.
            if leading >= 4 && leading < fraction.len() {
                return false;
            }
            fraction.len() - leading
        } else {
            int_len + fraction.len()
        };
        significant <= 15
    }

    /// Writes a short decimal as `repr` does: trailing fraction zeros
    /// dropped, at least one fraction digit.
    #[inline(always)]
    fn write_short_decimal(self, payload: &[u8], line: &mut LineBuf) -> Option<()> {
        let kept = self.kept_fraction(payload).len();
        let mut at = self.text.at;
        if kept == 0 {
            // The integer `-0` is Python's 0, whose float is 0.0 (the float
            // `-0.0` keeps its sign).
            if self.fraction_end == self.int_end && self.int_end == at + 2 {
                at += u32::from(payload.get(at as usize..at as usize + 2) == Some(&b"-0"[..]));
            }
            let int = Span {
                at,
                len: self.int_end - at,
                escapes: false,
            };
            line.push_tag(payload, int)?;
            line.push_slice(b".0")
        } else {
            let text = Span {
                at,
                len: self.int_end + 1 + kept as u32 - at,
                escapes: false,
            };
            line.push_tag(payload, text)
        }
    }
}

/// `repr(float(value))` of a JSON number, when finite.
/// (`FloatRepr::from_short_decimal` would not answer: the caller tried the
/// same shortcut.) As `pynum::float_from_json_number`, with the number's
/// shape known from the scan: an integer is a Python int, `-0` is 0.0.
fn metric_value(number: Number, payload: &[u8]) -> Option<FloatRepr> {
    let value: f64 = std::str::from_utf8(number.text.of(payload))
        .ok()?
        .parse()
        .ok()?;
    let integer = number.fraction_end == number.int_end && !number.exponent;
    let value = if integer { value + 0.0 } else { value };
    value.is_finite().then(|| FloatRepr::new(value))
}

/// A position in a JSON text and the grammar read from it. It holds what is
/// left of the text rather than an index, so that a look ahead is one
/// length comparison (no index overflow to rule out) and the whole text
/// only to tell offsets.
///
/// Whitespace is skipped by whatever reads the next token, not after the
/// last one, and mostly only once the token it expects is not there: text
/// without whitespace between tokens pays no check for it.
struct Cursor<'p> {
    text: &'p [u8],
    rest: &'p [u8],
}

/// What a key of the `metric` object is, its colon read.
enum MetricKey {
    Name,
    Dimensions,
    Timestamp,
    Value,
    ValueMeta,
    /// Any other key, not yet read.
    Other,
}

/// What a key of the envelope is, its colon read.
enum EnvelopeKey {
    Metric,
    Meta,
    CreationTime,
    /// Any other key, not yet read.
    Other,
}

/// What a key of the `meta` object is, its colon read.
enum MetaKey {
    Region,
    Tenant,
    /// Any other key, not yet read.
    Other,
}

/// The first eight bytes of a key as Python's `json.dumps` writes it
/// (quotes, then `": "`), as [`Cursor::head`] reads them.
const fn head(quoted: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*quoted)
}

impl<'p> Cursor<'p> {
    fn new(text: &'p [u8]) -> Cursor<'p> {
        Cursor { text, rest: text }
    }

    /// Offset of the position in the text.
    #[inline(always)]
    fn pos(&self) -> usize {
        self.text.len() - self.rest.len()
    }

    /// Moves on `n` bytes (at most what is left).
    #[inline(always)]
    fn advance(&mut self, n: usize) {
        self.rest = self.rest.get(n..).unwrap_or_default();
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Exactly `byte`.
    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        match self.rest {
            [first, rest @ ..] if *first == byte => {
                self.rest = rest;
                Some(())
            }
            _ => None,
        }
    }

    /// Whether the text here starts with `literal`, consumed if so.
    #[inline(always)]
    fn literal<const N: usize>(&mut self, literal: &[u8; N]) -> bool {
        match self.rest.split_first_chunk::<N>() {
            Some((head, rest)) if head == literal => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    /// The next eight bytes as a little-endian number (zero when fewer are
    /// left), to tell keys apart in a few comparisons.
    #[inline(always)]
    fn head(&self) -> u64 {
        self.rest
            .first_chunk::<8>()
            .map_or(0, |head| u64::from_le_bytes(*head))
    }

    /// Exactly `byte`, after any whitespace.
    #[inline(always)]
    fn token(&mut self, byte: u8) -> Option<()> {
        if self.eat(byte).is_none() {
            self.skip_whitespace();
            self.eat(byte)?;
        }
        Some(())
    }

    #[inline(always)]
    fn skip_whitespace(&mut self) {
        self.advance(whitespace_len(self.rest));
    }

    /// Runs a step of the shared lexer from here.
    #[inline(always)]
    fn lex<T>(&mut self, step: impl FnOnce(&mut Lexer<'p>) -> Option<T>) -> Option<T> {
        let mut lex = Lexer {
            bytes: self.text,
            pos: self.pos(),
        };
        let found = step(&mut lex);
        self.rest = self.text.get(lex.pos..)?;
        found
    }

    /// The envelope as the Monasca API writes it (Python's `json.dumps`
    /// layout, its members in their usual order): each key one comparison
    /// with the separator before it, no key dispatch, no repeated-field
    /// checks. `None` at the first difference, and the caller starts over
    /// with [`Cursor::envelope`], which reads the same members the same way
    /// (the same steps for each value) from any layout and order.
    #[inline(always)]
    fn usual_envelope(&mut self, fields: &mut Fields, tags: &mut TagSet) -> Option<()> {
        self.token(b'{')?;
        self.expect(b"\"metric\": {\"name\": \"")?;
        fields.name = Some(self.plain_string_rest()?);
        self.expect(b", \"dimensions\": ")?;
        self.dimensions(tags)?;
        self.expect(b", \"timestamp\": ")?;
        fields.timestamp = Some(self.timestamp()?);
        self.expect(b", \"value\": ")?;
        fields.value = Some(self.value_number()?);
        self.expect(b", \"value_meta\": ")?;
        fields.value_meta = Some(self.value_meta()?);
        self.expect(b"}, \"meta\": {\"region\": \"")?;
        fields.region = Some(self.plain_string_rest()?);
        self.expect(b", \"tenantId\": \"")?;
        fields.tenant = Some(self.plain_string_rest()?);
        self.expect(b"}, \"creation_time\": ")?;
        self.creation_time()?;
        self.eat(b'}')
    }

    /// Exactly `literal`.
    #[inline(always)]
    fn expect<const N: usize>(&mut self, literal: &[u8; N]) -> Option<()> {
        self.literal(literal).then_some(())
    }

    /// `{"metric": {...}, "meta": {...}, ...}`.
    #[inline(never)]
    fn envelope(&mut self, fields: &mut Fields, tags: &mut TagSet) -> Option<()> {
        let mut metric_seen = false;
        let mut meta_seen = false;
        self.token(b'{')?;
        loop {
            match self.envelope_key()? {
                EnvelopeKey::Metric => {
                    if std::mem::replace(&mut metric_seen, true) {
                        return None;
                    }
                    self.metric(fields, tags)?;
                }
                EnvelopeKey::Meta => {
                    if std::mem::replace(&mut meta_seen, true) {
                        return None;
                    }
                    self.meta(fields)?;
                }
                EnvelopeKey::CreationTime => self.creation_time()?,
                EnvelopeKey::Other => self.other_member()?,
            }
            if !self.next_member()? {
                return Some(());
            }
        }
    }

    /// A key of the envelope: the usual spellings in a few comparisons,
    /// anything else the careful way.
    #[inline(always)]
    fn envelope_key(&mut self) -> Option<EnvelopeKey> {
        const METRIC: u64 = head(b"\"metric\"");
        const META: u64 = head(b"\"meta\": ");
        const CREATION: u64 = head(b"\"creatio");
        Some(match self.head() {
            METRIC if self.literal(b"\"metric\": ") => EnvelopeKey::Metric,
            META if self.literal(b"\"meta\": ") => EnvelopeKey::Meta,
            CREATION if self.literal(b"\"creation_time\": ") => EnvelopeKey::CreationTime,
            _ => return self.envelope_key_spelled_out(),
        })
    }

    #[inline(never)]
    fn envelope_key_spelled_out(&mut self) -> Option<EnvelopeKey> {
        self.skip_whitespace();
        let key = if self.literal(b"\"metric\"") {
            EnvelopeKey::Metric
        } else if self.literal(b"\"meta\"") {
            EnvelopeKey::Meta
        } else if self.literal(b"\"creation_time\"") {
            EnvelopeKey::CreationTime
        } else {
            return Some(EnvelopeKey::Other);
        };
        self.colon()?;
        Some(key)
    }

    fn metric(&mut self, fields: &mut Fields, tags: &mut TagSet) -> Option<()> {
        self.token(b'{')?;
        loop {
            match self.metric_key()? {
                MetricKey::Name => set_once(&mut fields.name, self.plain_string()?)?,
                MetricKey::Dimensions => {
                    if std::mem::replace(&mut fields.dimensions_seen, true) {
                        return None;
                    }
                    self.dimensions(tags)?;
                }
                MetricKey::Timestamp => set_once(&mut fields.timestamp, self.timestamp()?)?,
                MetricKey::Value => set_once(&mut fields.value, self.value_number()?)?,
                MetricKey::ValueMeta => set_once(&mut fields.value_meta, self.value_meta()?)?,
                MetricKey::Other => self.other_member()?,
            }
            if !self.next_member()? {
                return Some(());
            }
        }
    }

    /// The `creation_time` value, validated only.
    #[inline(always)]
    fn creation_time(&mut self) -> Option<()> {
        // Mostly a number: `skip_value` would read it the same way.
        if matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            self.number()?;
        } else {
            self.skip_whitespace();
            self.skip_value()?;
        }
        Some(())
    }

    /// The `value_meta` value, its text.
    #[inline(always)]
    fn value_meta(&mut self) -> Option<Span> {
        // Mostly `null`: `skip_value` would read it the same way.
        let at = self.pos();
        if self.literal(b"null") {
            Some(Span::new(at, at + 4))
        } else {
            self.skip_whitespace();
            self.skip_value()
        }
    }

    /// A key of the `metric` object (see [`Cursor::envelope_key`]).
    #[inline(always)]
    fn metric_key(&mut self) -> Option<MetricKey> {
        const NAME: u64 = head(b"\"name\": ");
        const DIMENSIONS: u64 = head(b"\"dimensi");
        const TIMESTAMP: u64 = head(b"\"timesta");
        const VALUE: u64 = head(b"\"value\":");
        const VALUE_META: u64 = head(b"\"value_m");
        // Each arm compares the whole key again: what is left after it
        // then comes with no further length check.
        Some(match self.head() {
            NAME if self.literal(b"\"name\": ") => MetricKey::Name,
            DIMENSIONS if self.literal(b"\"dimensions\": ") => MetricKey::Dimensions,
            TIMESTAMP if self.literal(b"\"timestamp\": ") => MetricKey::Timestamp,
            VALUE if self.literal(b"\"value\": ") => MetricKey::Value,
            VALUE_META if self.literal(b"\"value_meta\": ") => MetricKey::ValueMeta,
            _ => return self.metric_key_spelled_out(),
        })
    }

    #[inline(never)]
    fn metric_key_spelled_out(&mut self) -> Option<MetricKey> {
        self.skip_whitespace();
        let key = if self.literal(b"\"name\"") {
            MetricKey::Name
        } else if self.literal(b"\"dimensions\"") {
            MetricKey::Dimensions
        } else if self.literal(b"\"timestamp\"") {
            MetricKey::Timestamp
        } else if self.literal(b"\"value\"") {
            MetricKey::Value
        } else if self.literal(b"\"value_meta\"") {
            MetricKey::ValueMeta
        } else {
            return Some(MetricKey::Other);
        };
        self.colon()?;
        Some(key)
    }

    #[inline(always)]
    fn dimensions(&mut self, tags: &mut TagSet) -> Option<()> {
        let mut key = if self.literal(b"{\"") {
            self.plain_string_rest()?
        } else {
            self.token(b'{')?;
            self.skip_whitespace();
            if self.eat(b'}').is_some() {
                return Some(());
            }
            self.plain_string()?
        };
        loop {
            // The common `": "` and `, "` with the quote after them in one
            // comparison each.
            let value = if self.literal(b": \"") {
                self.plain_string_rest()?
            } else {
                self.colon()?;
                self.plain_string()?
            };
            tags.push_dimension(self.text, key, value)?;
            key = if self.literal(b", \"") {
                self.plain_string_rest()?
            } else if self.next_member()? {
                self.plain_string()?
            } else {
                return Some(());
            };
        }
    }

    fn meta(&mut self, fields: &mut Fields) -> Option<()> {
        self.token(b'{')?;
        loop {
            match self.meta_key()? {
                MetaKey::Region => set_once(&mut fields.region, self.plain_string()?)?,
                MetaKey::Tenant => set_once(&mut fields.tenant, self.plain_string()?)?,
                MetaKey::Other => self.other_member()?,
            }
            if !self.next_member()? {
                return Some(());
            }
        }
    }

    /// A key of the `meta` object (see [`Cursor::envelope_key`]).
    #[inline(always)]
    fn meta_key(&mut self) -> Option<MetaKey> {
        const REGION: u64 = head(b"\"region\"");
        const TENANT: u64 = head(b"\"tenantI");
        Some(match self.head() {
            REGION if self.literal(b"\"region\": ") => MetaKey::Region,
            TENANT if self.literal(b"\"tenantId\": ") => MetaKey::Tenant,
            _ => {
                self.skip_whitespace();
                let key = if self.literal(b"\"region\"") {
                    MetaKey::Region
                } else if self.literal(b"\"tenantId\"") {
                    MetaKey::Tenant
                } else {
                    return Some(MetaKey::Other);
                };
                self.colon()?;
                key
            }
        })
    }

    /// A member of no interest: a plain key, and a value to validate.
    fn other_member(&mut self) -> Option<()> {
        self.plain_string()?;
        self.colon()?;
        self.skip_whitespace();
        self.skip_value()?;
        Some(())
    }

    /// The colon after a key (and a space after it, if there is one).
    #[inline(always)]
    fn colon(&mut self) -> Option<()> {
        // The common `": "` in one comparison.
        if !self.literal(b": ") {
            self.token(b':')?;
        }
        Some(())
    }

    /// After a member: `true` at a comma, `false` at the closing brace.
    #[inline(always)]
    fn next_member(&mut self) -> Option<bool> {
        // The common `, "` of the next key in one comparison.
        if self.rest.starts_with(b", \"") {
            self.advance(2);
            return Some(true);
        }
        self.skip_whitespace();
        let more = match self.rest.split_first()? {
            (b',', _) => true,
            (b'}', _) => false,
            _ => return None,
        };
        self.advance(1);
        Some(more)
    }

    /// A string without escapes, its content (checked as UTF-8).
    #[inline(always)]
    fn plain_string(&mut self) -> Option<Span> {
        self.token(b'"')?;
        self.plain_string_rest()
    }

    /// [`Cursor::plain_string`] after its opening quote.
    #[inline(always)]
    fn plain_string_rest(&mut self) -> Option<Span> {
        let start = self.pos();
        let (len, mut escapes) = scan_plain(self.rest);
        let mut end = start + len;
        match *self.rest.get(len)? {
            b'"' => {}
            0x80.. => {
                end = non_ascii_string_end(self.text, start)?;
                // Tag escaping of non-ASCII text is left to the careful loop.
                escapes = true;
            }
            _ => return None,
        }
        self.rest = self.text.get(end + 1..)?;
        Some(Span {
            escapes,
            ..Span::new(start, end)
        })
    }

    /// A JSON number without exponent: an integer other than `-0` within
    /// InfluxDB's time range, whose text is what `str(int(timestamp))`
    /// gives back (`escapes` false), or a number with a fraction (`escapes`
    /// true), left to [`write_truncated_timestamp`].
    #[inline(always)]
    fn timestamp(&mut self) -> Option<Span> {
        self.skip_whitespace();
        let start = self.pos();
        let negative = self.eat(b'-').is_some();
        let digits = self.digits();
        // An exponent goes the full path: the caller finds the `e` where it
        // wants a `,` or `}`.
        match digits {
            [] => return None,
            // `-0` alone is not written as it stands; `-0.5` is.
            [b'0', ..] if digits.len() > 1 || (negative && self.peek() != Some(b'.')) => {
                return None
            }
            _ => {}
        }
        if self.eat(b'.').is_some() {
            // At least one fraction digit.
            return (!self.digits().is_empty()).then(|| Span::new(start, self.pos()));
        }
        // The range is symmetric: ±9223372036854.
        const LIMIT: &[u8] = b"9223372036854";
        const _: () =
            assert!(MAX_TIMESTAMP_MS == 9_223_372_036_854 && MIN_TIMESTAMP_MS == -MAX_TIMESTAMP_MS);
        if digits.len() > LIMIT.len() || (digits.len() == LIMIT.len() && digits > LIMIT) {
            return None;
        }
        Some(Span {
            escapes: false,
            ..Span::new(start, self.pos())
        })
    }

    /// ASCII digits, eight at a time, skipped and returned.
    #[inline(always)]
    fn digits(&mut self) -> &'p [u8] {
        self.take(digit_count(self.rest))
    }

    /// A JSON number, by the grammar the lexer reads too.
    #[inline(always)]
    fn number(&mut self) -> Option<NumberParts> {
        let start = self.pos();
        let (len, parts) = number_at(self.rest)?;
        self.advance(len);
        Some(parts.after(start))
    }

    /// The next `len` bytes (at most what is left), skipped.
    #[inline(always)]
    fn take(&mut self, len: usize) -> &'p [u8] {
        let (taken, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        taken
    }

    /// A JSON number and where its parts are.
    #[inline(always)]
    fn value_number(&mut self) -> Option<Number> {
        self.skip_whitespace();
        let start = self.pos();
        let parts = self.number()?;
        Some(Number {
            text: Span::new(start, self.pos()),
            int_end: parts.int_end as u32,
            fraction_end: parts.fraction_end as u32,
            exponent: parts.exponent,
        })
    }

    /// Skips one JSON value (see [`Lexer::skip_value`]), its text.
    #[inline(always)]
    fn skip_value(&mut self) -> Option<Span> {
        let range = self.lex(Lexer::skip_value)?;
        Some(Span::new(range.start, range.end))
    }

    /// A string without escapes or control characters (its UTF-8 already
    /// checked by the caller), its content.
    fn escape_free_string(&mut self) -> Option<Span> {
        self.eat(b'"')?;
        let start = self.pos();
        let end = find_string_special(self.text, start);
        if *self.text.get(end)? != b'"' {
            return None;
        }
        self.rest = self.text.get(end + 1..)?;
        Some(Span::new(start, end))
    }
}

/// The length of the plain text at the start of `bytes` (up to the first
/// `"`, `\`, control character or non-ASCII byte), and whether it holds a
/// space, `,` or `=` (the bytes of plain text that tag text escapes):
/// sixteen bytes at a time where that many are left.
#[inline(always)]
fn scan_plain(bytes: &[u8]) -> (usize, bool) {
    let mut i = 0;
    let mut escapes = 0;
    while let Some(chunk) = bytes.get(i..).and_then(|rest| rest.first_chunk::<16>()) {
        let (ends, escaped) = plain_string_masks(chunk);
        if ends != 0 {
            // No byte is in both masks: `ends - 1` keeps the escapes
            // below the lowest end and clears those above it.
            escapes |= escaped & (ends - 1);
            return (i + ends.trailing_zeros() as usize, escapes != 0);
        }
        escapes |= escaped;
        i += 16;
    }
    // Only the last few bytes of a payload: the plain end the lexer's way,
    // then the tag-escape check of the text before it.
    let end = find_plain_end(bytes, i);
    (end, escapes != 0 || may_need_tag_escape(&bytes[i..end]))
}

/// Where the plain string from `start` that holds a non-ASCII byte ends
/// (at its closing quote), found the careful way, its text checked as
/// UTF-8. Out of line and on offsets only, so that the cursor of the usual
/// reader stays in registers.
#[inline(never)]
fn non_ascii_string_end(text: &[u8], start: usize) -> Option<usize> {
    let end = find_string_special(text, start);
    std::str::from_utf8(text.get(start..end)?).ok()?;
    (*text.get(end)? == b'"').then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scan_agrees_with_a_byte_loop_for_every_byte() {
        let ends = |b: u8| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b);
        for special in 0..=255u8 {
            for len in 0..20 {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    bytes.push(b'"');
                    let end = bytes.iter().position(|&b| ends(b)).unwrap_or(bytes.len());
                    let escapes = bytes[..end]
                        .iter()
                        .any(|&b| matches!(b, b' ' | b',' | b'='));
                    assert_eq!(
                        scan_plain(&bytes),
                        (end, escapes),
                        "{special} at {at}/{len}"
                    );
                }
            }
        }
    }

    #[test]
    fn tag_escapes_are_seen_before_the_end_only() {
        for special in [b' ', b',', b'='] {
            for len in 0..40 {
                for at in 0..=len + 2 {
                    let mut bytes = vec![b'a'; len];
                    bytes.extend_from_slice(b"\"x ,=");
                    if at < bytes.len() && at != len {
                        bytes[at] = special;
                    }
                    let (end, escapes) = scan_plain(&bytes);
                    assert_eq!(end, len);
                    assert_eq!(escapes, at < len, "{special} at {at}/{len}");
                }
            }
        }
    }

    fn line(payload: &str) -> Option<String> {
        let mut out = Vec::new();
        encode_metric(payload.as_bytes(), None, &mut out)?;
        String::from_utf8(out).ok()
    }

    #[test]
    fn plain_messages_are_written_directly() {
        assert_eq!(
            line(
                r#"{"metric": {"name": "cpu idle", "dimensions": {"b": "2", "a": "x,y=z", "_region": "no"}, "timestamp": 1554725987408, "value": 1.50, "value_meta": {"n": "é"}}, "meta": {"region": "r", "tenantId": "t"}, "creation_time": 1}"#
            )
            .as_deref(),
            Some("cpu\\ idle,_region=r,_tenant_id=t,a=x\\,y\\=z,b=2 value=1.5,value_meta=\"{\\\"n\\\": \\\"é\\\"}\" 1554725987408\n")
        );
        // An empty value removes an earlier one of its name: the full path.
        assert_eq!(
            line(
                r#"{"metric": {"name": "m", "dimensions": {"e": "x", "e": ""}, "timestamp": 1, "value": 1}, "meta": {"region": "r", "tenantId": "t"}}"#
            ),
            None
        );
    }

    #[test]
    fn low_byte_masks_keep_exactly_the_lowest_bytes() {
        for n in 0..20 {
            let want = u64::from_le_bytes(std::array::from_fn(|i| if i < n { 0xff } else { 0 }));
            assert_eq!(low_bytes(n), want, "{n}");
        }
    }

    #[test]
    fn non_ascii_strings_are_read_to_their_end_and_escaped_carefully() {
        assert_eq!(
            line(
                r#"{"metric": {"name": "température", "dimensions": {"hôte": "名 x,y", "b": "é"}, "timestamp": 7, "value": 2, "value_meta": null}, "meta": {"region": "réseau", "tenantId": "t"}, "creation_time": 1}"#
            )
            .as_deref(),
            Some("température,_region=réseau,_tenant_id=t,b=é,hôte=名\\ x\\,y value=2.0,value_meta=\"{}\" 7\n")
        );
        let unclosed = "{\"metric\": {\"name\": \"é";
        assert_eq!(line(unclosed), None);
    }

    fn read_usual(payload: &str) -> bool {
        let mut fields = Fields::default();
        let mut tags = TagSet {
            tags: [Tag::default(); MAX_TAGS],
            len: 0,
        };
        Cursor::new(payload.as_bytes())
            .usual_envelope(&mut fields, &mut tags)
            .is_some()
    }

    #[test]
    fn the_usual_layout_is_read_first_and_any_other_gives_the_same_line() {
        let usual = r#"{"metric": {"name": "cpu", "dimensions": {"b": "2", "a": "1"}, "timestamp": 7, "value": 1.5, "value_meta": null}, "meta": {"region": "r", "tenantId": "t"}, "creation_time": 1}"#;
        let want = "cpu,_region=r,_tenant_id=t,a=1,b=2 value=1.5,value_meta=\"{}\" 7\n";
        assert!(read_usual(usual));
        assert_eq!(line(usual).as_deref(), Some(want));
        for other in [
            r#"{"meta": {"region": "r", "tenantId": "t"}, "metric": {"name": "cpu", "dimensions": {"b": "2", "a": "1"}, "timestamp": 7, "value": 1.5, "value_meta": null}, "creation_time": 1}"#,
            r#"{"metric": {"dimensions": {"b": "2", "a": "1"}, "name": "cpu", "timestamp": 7, "value": 1.5}, "meta": {"tenantId": "t", "region": "r"}}"#,
            r#"{"metric":{"name":"cpu","dimensions":{"b":"2","a":"1"},"timestamp":7,"value":1.5,"value_meta":null},"meta":{"region":"r","tenantId":"t"},"creation_time":1}"#,
            r#"{"metric": {"name": "cpu", "dimensions": {"b": "2", "a": "1"}, "timestamp": 7, "value": 1.5, "value_meta": null}, "meta": {"region": "r", "tenantId": "t"}}"#,
        ] {
            assert!(!read_usual(other), "{other}");
            assert_eq!(line(other).as_deref(), Some(want), "{other}");
        }
    }

    #[test]
    fn flat_value_meta_is_written_directly_and_the_rest_by_pyjson() {
        let meta = |value_meta: &str| {
            let mut bytes = [0; LINE_CAPACITY];
            let mut line = LineBuf {
                bytes: &mut bytes,
                len: 0,
            };
            write_flat_object(value_meta.as_bytes(), &mut line)?;
            String::from_utf8(line.text().to_vec()).ok()
        };
        assert_eq!(
            meta(r#"{"status":"ok" , "code": 200,"b": true, "n":null, "f": false, "é": "名 x"}"#)
                .as_deref(),
            Some(
                r#"{\"status\": \"ok\", \"code\": 200, \"b\": true, \"n\": null, \"f\": false, \"é\": \"名 x\"}"#
            )
        );
        for off_shape in [
            r#"{"a": 1.0}"#,
            r#"{"a": -0}"#,
            r#"{"a": 1e2}"#,
            r#"{"a": "x\"y"}"#,
            r#"{"a\u0062": 1}"#,
            r#"{"a": 1, "a": 2}"#,
            r#"{"a": [1]}"#,
            r#"{"a": {}}"#,
            r#"{}"#,
            r#"{"1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9}"#,
        ] {
            assert_eq!(meta(off_shape), None, "{off_shape}");
        }
    }

    #[test]
    fn timestamps_with_a_fraction_are_truncated_as_int_of_their_float() {
        let message = |timestamp: &str| {
            format!(
                r#"{{"metric": {{"name": "m", "timestamp": {timestamp}, "value": 1}}, "meta": {{"region": "r", "tenantId": "t"}}}}"#
            )
        };
        for (timestamp, written) in [
            ("1554725987408.105", "1554725987408"),
            ("1554725987408.1052", "1554725987408"),
            // Its float is 1554725987409.0: not the integer digits.
            ("1554725987408.99999999", "1554725987409"),
            ("-1.9", "-1"),
            ("-0.5", "0"),
            ("0.0", "0"),
            ("-0.0", "0"),
            ("9223372036854.9", "9223372036854"),
            ("-9223372036854.9", "-9223372036854"),
        ] {
            let line = line(&message(timestamp));
            let expected =
                format!("m,_region=r,_tenant_id=t value=1.0,value_meta=\"{{}}\" {written}\n");
            assert_eq!(line.as_deref(), Some(&expected[..]), "{timestamp}");
        }
    }

    #[test]
    fn anything_off_the_plain_shape_is_left_to_the_full_path() {
        let message = |metric: &str| {
            format!(r#"{{"metric": {{{metric}}}, "meta": {{"region": "r", "tenantId": "t"}}}}"#)
        };
        for metric in [
            r#""name": "a\"b", "timestamp": 1, "value": 1"#,
            r#""name": "m", "name": "m", "timestamp": 1, "value": 1"#,
            r#""name": "m", "timestamp": 1.0e3, "value": 1"#,
            r#""name": "m", "timestamp": 1e3, "value": 1"#,
            r#""name": "m", "timestamp": 1., "value": 1"#,
            r#""name": "m", "timestamp": -0, "value": 1"#,
            r#""name": "m", "timestamp": 01.5, "value": 1"#,
            r#""name": "m", "timestamp": 9223372036854.99999999, "value": 1"#,
            r#""name": "m", "timestamp": -9223372036855.5, "value": 1"#,
            r#""name": "m", "timestamp": "1", "value": 1"#,
            r#""name": "m", "timestamp": 9223372036855, "value": 1"#,
            r#""name": "m", "timestamp": 1, "value": "1""#,
            r#""name": "m", "timestamp": 1, "value": 1e400"#,
            r##""name": "#m", "timestamp": 1, "value": 1"##,
            r#""name": "", "timestamp": 1, "value": 1"#,
            r#""name": "m", "timestamp": 1, "value": 1, "dimensions": {"time": "x"}"#,
            r#""name": "m", "timestamp": 1, "value": 1, "dimensions": null"#,
            r#""name": "m", "timestamp": 1, "value": 1, "value_meta": {"a": "\ud800"}"#,
            r#""name": "m", "timestamp": 01, "value": 1"#,
        ] {
            assert_eq!(line(&message(metric)), None, "{metric}");
        }
        assert!(line(&message(r#""name": "m", "timestamp": 1, "value": 1"#)).is_some());
        let invalid_utf8 = b"{\"metric\": {\"name\": \"\xc3(\", \"timestamp\": 1, \"value\": 1}, \"meta\": {\"region\": \"r\", \"tenantId\": \"t\"}}";
        assert!(encode_metric(invalid_utf8, None, &mut Vec::new()).is_none());
    }
}
