//! Judges, message by message, whether our transform stores what the Python
//! reference stores, with a real influxd deciding what "stored" means: both
//! sides' lines are written into it and read back as points. Where the two
//! differ, the difference must be one of the deliberate deviations of
//! `docs/line-protocol.md` ([`Deviation`]), and the reason that deviation
//! gives must hold for this message (the reference's point is refused or
//! cannot be found again; or the reference drops the message and, without
//! the Python limit that makes it drop it, writes exactly our point).
//! Anything else is an unexplained difference.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use monasca_persister::transform::{Rejection, Target};

use super::oracle::{Kind, Outcome};
use crate::support::influxd::Influxd;
use crate::support::points::parse_line;

/// A deliberate difference from the reference (`docs/line-protocol.md`,
/// "Deliberate differences from the reference").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deviation {
    /// `value` NaN or ±Infinity: InfluxDB refuses the reference's
    /// `value=nan`; we reject `not_finite`.
    NotFinite,
    /// A tag with an empty key or value: InfluxDB refuses the reference's
    /// point; we leave the tag out.
    EmptyTag,
    /// A newline in a name, tag key or tag value splits the reference's
    /// line: its point is refused (the rest may become a stray point); we
    /// write a space.
    NewlineInSeriesKey,
    /// Measurement or tag text ending in `\`: InfluxDB refuses the
    /// reference's point or stores it where no query finds it; we drop the
    /// trailing backslashes.
    TrailingBackslash,
    /// A metric name that InfluxDB reads as a comment, refuses as empty or
    /// stores where no query finds it (`#…`, empty, `\` before a space,
    /// `,`, `=` or `"`): we reject the message.
    LostName,
    /// A dimension named `time`: InfluxDB refuses the point; we reject.
    TimeDimension,
    /// A series key over InfluxDB's limit: refused; we reject.
    SeriesKeyTooLong,
    /// A timestamp outside InfluxDB's range: refused; we reject.
    TimestampOutOfRange,
    /// db_per_tenant: a tenant id InfluxDB refuses as a database name; the
    /// reference's `CREATE DATABASE` fails (its consumer exits); we reject.
    BadTenant,
    /// `"dimensions": null`: the reference drops the message (TypeError);
    /// we write it with no dimensions.
    NullDimensions,
    /// An integer of more than 4300 digits: Python 3.11 refuses to read it
    /// and the reference drops the message; we write it as it stands.
    IntegerDigits,
    /// A value nested deeper than Python's recursion limit allows (about
    /// 990 levels) but not deeper than ours (1000): the reference drops the
    /// message (RecursionError); we write it.
    Nesting,
}

impl fmt::Display for Deviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Both store the same point.
    Same,
    /// Neither stores anything.
    BothDrop,
    /// A deliberate deviation, its reason checked.
    Deviation(Deviation),
    /// A difference no deviation explains.
    Unexplained(String),
}

/// One message and what each side makes of it.
pub struct Case {
    pub kind: Kind,
    pub payload: Vec<u8>,
    /// The reference as deployed.
    pub reference: Outcome,
    /// The reference without Python's digit and recursion limits and with
    /// `null` dimensions read as `{}`; filled only where it matters (the
    /// reference drops a message we write).
    pub lenient: Option<Outcome>,
    /// Our line (without its newline) in the shared-database mode.
    pub ours: Result<Vec<u8>, Rejection>,
    /// Our target in db_per_tenant mode: the tenant text.
    pub ours_tenant: Result<String, Rejection>,
}

impl Case {
    /// Whether the judge needs the lenient reference for this case.
    pub fn needs_lenient(&self) -> bool {
        matches!(self.reference, Outcome::Error { .. }) && self.ours.is_ok()
    }
}

/// What must still be checked in influxd for a case.
enum Pending {
    /// Identical lines (as parsed): written in bulk, compared as stored.
    Same,
    /// The reference's point must be lost: influxd does not find it after
    /// its line is written (refused, unfindable, or read as another point);
    /// ours, when we write one, must be stored and findable.
    ReferenceLost { deviation: Deviation, ours: bool },
}

/// Judges every case; influxd decides what is stored.
pub fn judge(cases: &[Case], influx: &Influxd) -> Vec<Verdict> {
    let mut verdicts: Vec<Option<Verdict>> = vec![None; cases.len()];
    let mut pending: Vec<(usize, Pending)> = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        match first_look(case) {
            Ok(Some(p)) => pending.push((i, p)),
            Ok(None) => verdicts[i] = Some(Verdict::BothDrop),
            Err(why) => verdicts[i] = Some(Verdict::Unexplained(why)),
        }
    }
    let mut scratch = Scratch::new(influx);

    // Same lines, in bulk: every point stored, and stored identically.
    let same: Vec<usize> = pending
        .iter()
        .filter(|(_, p)| matches!(p, Pending::Same))
        .map(|&(i, _)| i)
        .collect();
    for batch in collision_free_batches(cases, &same) {
        let ours: Vec<&[u8]> = batch.iter().map(|&i| our_line(&cases[i])).collect();
        let theirs: Vec<&[u8]> = batch
            .iter()
            .map(|&i| cases[i].reference.line().unwrap_or_default())
            .collect();
        let (ours_stored, theirs_stored) = (scratch.store(&ours), scratch.store(&theirs));
        if ours_stored.all_stored(batch.len())
            && theirs_stored.all_stored(batch.len())
            && ours_stored.points == theirs_stored.points
        {
            for &i in &batch {
                verdicts[i] = Some(Verdict::Same);
            }
            continue;
        }
        // Find which: one at a time, each compared twice before it counts
        // as different (an influxd under load once answered a query without
        // a point it had just accepted).
        for &i in &batch {
            let compare = |scratch: &mut Scratch| {
                let ours = scratch.store(&[our_line(&cases[i])]);
                let theirs = scratch.store(&[cases[i].reference.line().unwrap_or_default()]);
                (
                    ours.all_stored(1) && ours.points == theirs.points,
                    ours,
                    theirs,
                )
            };
            let (same, ours, theirs) = match compare(&mut scratch) {
                (false, ..) => compare(&mut scratch),
                same => same,
            };
            verdicts[i] = Some(if same {
                Verdict::Same
            } else {
                Verdict::Unexplained(format!(
                    "the same line, stored differently: ours {ours:?}, the reference's {theirs:?}"
                ))
            });
        }
    }

    // Our lines where they differ from the reference's: each stored, findable.
    let ours_only: Vec<usize> = pending
        .iter()
        .filter(|(_, p)| matches!(p, Pending::ReferenceLost { ours: true, .. }))
        .map(|&(i, _)| i)
        .collect();
    let mut our_line_lost: HashMap<usize, String> = HashMap::new();
    for batch in collision_free_batches(cases, &ours_only) {
        let lines: Vec<&[u8]> = batch.iter().map(|&i| our_line(&cases[i])).collect();
        if scratch.store(&lines).all_stored(batch.len()) {
            continue;
        }
        for &i in &batch {
            let stored = scratch.store(&[our_line(&cases[i])]);
            if !stored.all_stored(1) {
                our_line_lost.insert(i, format!("our line is not stored: {stored:?}"));
            }
        }
    }

    // The reference's lines where they differ: each lost.
    for (i, p) in &pending {
        let Pending::ReferenceLost { deviation, .. } = p else {
            continue;
        };
        if let Some(why) = our_line_lost.remove(i) {
            verdicts[*i] = Some(Verdict::Unexplained(why));
            continue;
        }
        let case = &cases[*i];
        let line = match (&case.reference, &case.lenient) {
            (Outcome::Line { line, .. }, _) => line.as_slice(),
            // The reference drops the message: nothing of it is stored.
            _ => {
                verdicts[*i] = Some(Verdict::Deviation(*deviation));
                continue;
            }
        };
        let stored = scratch.store(&[line]);
        verdicts[*i] = Some(match intended_point(line) {
            Some(point) if stored.holds(&point) => Verdict::Unexplained(format!(
                "{deviation} needs the reference's point to be lost, but influxd stores it: {stored:?}"
            )),
            _ => Verdict::Deviation(*deviation),
        });
    }

    // db_per_tenant: the same database, or a tenant InfluxDB refuses.
    let mut verdicts: Vec<Verdict> = verdicts
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Verdict::Unexplained("not judged".into())))
        .collect();
    for (case, verdict) in cases.iter().zip(verdicts.iter_mut()) {
        if matches!(verdict, Verdict::Unexplained(_)) {
            continue;
        }
        if let Err(why) = judge_tenant(case, verdict, &mut scratch) {
            *verdict = Verdict::Unexplained(why);
        }
    }
    verdicts
}

fn our_line(case: &Case) -> &[u8] {
    case.ours.as_deref().unwrap_or_default()
}

/// The verdict that needs no influxd, or what influxd must still show.
fn first_look(case: &Case) -> Result<Option<Pending>, String> {
    match (&case.reference, &case.ours) {
        (Outcome::Line { line, .. }, Ok(ours)) => {
            if same_point(line, ours) {
                return Ok(Some(Pending::Same));
            }
            let (fixed, deviation) = with_fixes(line).ok_or_else(|| {
                "our line differs from the reference's, which no fix changes".to_string()
            })?;
            if fixed.iter().any(|f| same_point(f.as_bytes(), ours)) {
                Ok(Some(Pending::ReferenceLost {
                    deviation,
                    ours: true,
                }))
            } else {
                Err(format!(
                    "our line differs from the reference's with the fixes applied ({fixed:?})"
                ))
            }
        }
        (Outcome::Line { .. }, Err(rejection)) => {
            let deviation = rejected_deviation(rejection)
                .ok_or_else(|| "the reference writes it, we reject it".to_string())?;
            Ok(Some(Pending::ReferenceLost {
                deviation,
                ours: false,
            }))
        }
        (Outcome::Unencodable(_) | Outcome::Error { .. }, Err(_)) => Ok(None),
        (Outcome::Unencodable(why), Ok(_)) => Err(format!(
            "the reference cannot encode its line ({why}), we write one"
        )),
        (Outcome::Error { name, detail }, Ok(ours)) => {
            let deviation = if name == "TypeError"
                && detail.contains("'NoneType' object does not support item assignment")
            {
                Deviation::NullDimensions
            } else if name == "ValueError" && detail.contains("Exceeds the limit") {
                Deviation::IntegerDigits
            } else if name == "RecursionError" {
                Deviation::Nesting
            } else {
                return Err(format!(
                    "the reference drops it ({name}: {detail}), we write it"
                ));
            };
            let Some(Outcome::Line { line, .. }) = &case.lenient else {
                return Err(format!(
                    "the reference drops it ({name}), and still does without its limits: {:?}",
                    case.lenient
                ));
            };
            let fixed = with_fixes(line).map(|(fixed, _)| fixed).unwrap_or_default();
            if same_point(line, ours) || fixed.iter().any(|f| same_point(f.as_bytes(), ours)) {
                Ok(Some(Pending::ReferenceLost {
                    deviation,
                    ours: true,
                }))
            } else {
                Err(format!(
                    "the reference drops it ({name}); without that limit it writes {:?}",
                    String::from_utf8_lossy(line)
                ))
            }
        }
    }
}

/// Whether two lines are the same point (floats compared as numbers).
fn same_point(a: &[u8], b: &[u8]) -> bool {
    match (std::str::from_utf8(a), std::str::from_utf8(b)) {
        (Ok(a), Ok(b)) => {
            a == b || matches!((parse_line(a), parse_line(b)), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}

/// The deviation that explains our rejection of a message the reference
/// writes, by the rejection's field and reason.
fn rejected_deviation(rejection: &Rejection) -> Option<Deviation> {
    Some(match rejection {
        Rejection::NotFinite { .. } => Deviation::NotFinite,
        Rejection::BadValue { field, detail } => {
            if detail.contains("series key would be") {
                Deviation::SeriesKeyTooLong
            } else if field.ends_with("timestamp") && detail.contains("outside InfluxDB's range") {
                Deviation::TimestampOutOfRange
            } else if *field == "metric.dimensions" && detail.contains("named `time`") {
                Deviation::TimeDimension
            } else if *field == "metric.name"
                && (detail.contains("starts with `#`")
                    || detail.contains("is empty once made writable")
                    || detail.contains("has a backslash before"))
            {
                Deviation::LostName
            } else {
                return None;
            }
        }
        _ => return None,
    })
}

/// The reference's line with the documented fixes applied — in names, tag
/// keys and tag values a newline becomes a space, trailing backslashes are
/// dropped, and tags left with an empty key or value are left out — and
/// the deviation that fixed it; `None` when no fix changes it. Where the
/// fixes make two tag keys equal, we keep the one later in the message,
/// which the reference's (sorted) line does not tell: every choice is a
/// candidate.
fn with_fixes(line: &[u8]) -> Option<(Vec<String>, Deviation)> {
    let line = std::str::from_utf8(line).ok()?;
    // Tokens as the reference escapes them (`escape_tag`: a backslash
    // before `\`, space, `,` and `=`), which holds across raw newlines.
    let (measurement, mut stop, mut rest) = split_escaped(line, &[',', ' ']);
    let mut tags = Vec::new();
    while stop == Some(',') {
        let (key, eq, after) = split_escaped(rest, &['=']);
        if eq != Some('=') {
            return None;
        }
        let (value, s, r) = split_escaped(after, &[',', ' ']);
        tags.push((key, value));
        stop = s;
        rest = r;
    }
    if stop != Some(' ') {
        return None;
    }
    let mut newline = false;
    let mut backslash = false;
    let mut fix = |text: String| {
        newline |= text.contains('\n');
        let text = text.replace('\n', " ");
        backslash |= text.ends_with('\\');
        text.trim_end_matches('\\').to_string()
    };
    let measurement = fix(measurement);
    let mut fixed_tags: Vec<(String, String)> =
        tags.into_iter().map(|(k, v)| (fix(k), fix(v))).collect();
    let empty = fixed_tags.iter().any(|(k, v)| k.is_empty() || v.is_empty());
    let deviation = if newline {
        Deviation::NewlineInSeriesKey
    } else if backslash {
        Deviation::TrailingBackslash
    } else if empty {
        Deviation::EmptyTag
    } else {
        return None;
    };
    fixed_tags.sort_by(|a, b| a.0.cmp(&b.0));
    let mut groups: Vec<Vec<(String, String)>> = Vec::new();
    for tag in fixed_tags {
        match groups.last_mut() {
            Some(group) if group[0].0 == tag.0 => group.push(tag),
            _ => groups.push(vec![tag]),
        }
    }
    let mut candidates = vec![escape_tag(&measurement)];
    for group in &groups {
        let mut next = Vec::new();
        for line in &candidates {
            for (key, value) in group {
                let mut line = line.clone();
                if !key.is_empty() && !value.is_empty() {
                    line.push(',');
                    line.push_str(&escape_tag(key));
                    line.push('=');
                    line.push_str(&escape_tag(value));
                }
                next.push(line);
            }
        }
        candidates = next;
        candidates.truncate(64);
    }
    for candidate in &mut candidates {
        candidate.push(' ');
        candidate.push_str(rest);
    }
    Some((candidates, deviation))
}

/// A point's measurement, tags and time as influxd stores them.
type StoredPoint = (String, BTreeMap<String, String>, i64);

/// The point the reference means by its line, as influxd would store it:
/// names and tags as the reference escapes them (a raw newline is text too),
/// backslashes doubled (influxd does not unescape `\\`).
fn intended_point(line: &[u8]) -> Option<StoredPoint> {
    let line = std::str::from_utf8(line).ok()?;
    let stored = |text: String| text.replace('\\', "\\\\");
    let (measurement, mut stop, mut rest) = split_escaped(line, &[',', ' ']);
    let mut tags = BTreeMap::new();
    while stop == Some(',') {
        let (key, _, after) = split_escaped(rest, &['=']);
        let (value, s, r) = split_escaped(after, &[',', ' ']);
        tags.insert(stored(key), stored(value));
        stop = s;
        rest = r;
    }
    let time = line.rsplit(' ').next()?.parse().ok()?;
    Some((stored(measurement), tags, time))
}

/// Splits at the first of `stops` not escaped by a backslash; returns the
/// text before it unescaped, the stop and the rest.
fn split_escaped<'a>(text: &'a str, stops: &[char]) -> (String, Option<char>, &'a str) {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            if let Some((_, next)) = chars.next() {
                out.push(next);
            }
            continue;
        }
        if stops.contains(&c) {
            return (out, Some(c), &text[i + c.len_utf8()..]);
        }
        out.push(c);
    }
    (out, None, "")
}

/// The reference's `escape_tag`.
fn escape_tag(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace(' ', "\\ ")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

/// Checks db_per_tenant mode: where we write, the same database as the
/// reference (or a tenant InfluxDB refuses as a database name).
fn judge_tenant(case: &Case, verdict: &mut Verdict, scratch: &mut Scratch) -> Result<(), String> {
    let reference = match (&case.reference, &case.lenient) {
        (Outcome::Line { .. }, _) => &case.reference,
        (_, Some(lenient @ Outcome::Line { .. })) => lenient,
        _ => {
            return match &case.ours_tenant {
                Err(_) => Ok(()),
                Ok(tenant) => Err(format!(
                    "db_per_tenant: the reference drops it, we write it for tenant {tenant:?}"
                )),
            }
        }
    };
    let Outcome::Line {
        tenant, hashable, ..
    } = reference
    else {
        return Ok(());
    };
    match (&case.ours, &case.ours_tenant) {
        (Err(_), Err(_)) => Ok(()),
        (Err(_), Ok(_)) => Err("db_per_tenant: written, but rejected in the shared mode".into()),
        (Ok(_), Ok(ours)) => {
            if *hashable && ours.as_bytes() == tenant.as_slice() {
                Ok(())
            } else {
                Err(format!(
                    "db_per_tenant: our tenant {ours:?}, the reference's {:?} (hashable: {hashable})",
                    String::from_utf8_lossy(tenant)
                ))
            }
        }
        (Ok(_), Err(Rejection::BadTenant { tenant: ours, .. })) => {
            if !*hashable {
                return Ok(()); // the reference drops it in this mode too
            }
            if scratch.database_refused(&format!("mon_{ours}")) {
                if *verdict == Verdict::Same {
                    *verdict = Verdict::Deviation(Deviation::BadTenant);
                }
                Ok(())
            } else {
                Err(format!(
                    "db_per_tenant: we refuse tenant {ours:?}, InfluxDB accepts the database name"
                ))
            }
        }
        (Ok(_), Err(other)) => Err(format!(
            "db_per_tenant: rejected ({other}), but written in the shared mode"
        )),
    }
}

/// Groups cases so that no two in a group share a series and timestamp
/// (they would overwrite each other in one database).
fn collision_free_batches(cases: &[Case], indexes: &[usize]) -> Vec<Vec<usize>> {
    const BATCH: usize = 1000;
    let mut batches: Vec<(Vec<usize>, std::collections::HashSet<Vec<u8>>)> = Vec::new();
    for &i in indexes {
        let line = our_line(&cases[i]);
        // The series key and the timestamp: all but the field set.
        let key = series_and_time(line);
        let slot = batches
            .iter()
            .position(|(members, keys)| members.len() < BATCH && !keys.contains(&key));
        let slot = match slot {
            Some(slot) => slot,
            None => {
                batches.push((Vec::new(), Default::default()));
                batches.len() - 1
            }
        };
        batches[slot].0.push(i);
        batches[slot].1.insert(key);
    }
    batches.into_iter().map(|(members, _)| members).collect()
}

fn series_and_time(line: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    match parse_line(&text) {
        Ok(point) => {
            format!("{:?}{:?}{}", point.measurement, point.tags, point.timestamp).into_bytes()
        }
        Err(_) => line.to_vec(),
    }
}

/// What influxd stored for some lines.
pub struct Stored {
    status: u16,
    answer: String,
    points: serde_json::Value,
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HTTP {} {:?}, points {}",
            self.status, self.answer, self.points
        )
    }
}

impl Stored {
    /// Whether `point` is among the points found.
    fn holds(&self, point: &StoredPoint) -> bool {
        self.points.as_array().into_iter().flatten().any(|series| {
            let tags: BTreeMap<String, String> = series["tags"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                // A query shows the tags of other series as "".
                .filter(|(_, v)| !v.is_empty())
                .collect();
            series["name"].as_str() == Some(point.0.as_str())
                && tags == point.1
                && series["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|row| row[0].as_i64() == Some(point.2))
        })
    }

    fn points_count(&self) -> usize {
        self.points
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .map(|s| s["values"].as_array().map_or(0, Vec::len))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Every one of `n` lines accepted and findable.
    fn all_stored(&self, n: usize) -> bool {
        self.status == 204 && self.points_count() == n
    }
}

/// Fresh databases in the test's influxd, one per write.
struct Scratch<'i> {
    influx: &'i Influxd,
    next: usize,
    refused_names: BTreeMap<String, bool>,
}

impl<'i> Scratch<'i> {
    fn new(influx: &'i Influxd) -> Self {
        Scratch {
            influx,
            next: 0,
            refused_names: BTreeMap::new(),
        }
    }

    /// Writes `lines` into a new database and reads back every point a
    /// query finds there (then drops the database).
    fn store(&mut self, lines: &[&[u8]]) -> Stored {
        self.next += 1;
        let db = format!("scratch{}", self.next);
        let created = query_raw(self.influx.port, None, &format!("CREATE DATABASE {db}"));
        assert!(
            created["error"].is_null() && created["results"][0]["error"].is_null(),
            "create {db}: {created}"
        );
        let mut body = Vec::new();
        for line in lines {
            body.extend_from_slice(line);
            body.push(b'\n');
        }
        let (status, answer) = write_raw(self.influx.port, &db, &body);
        let result = query_raw(self.influx.port, Some(&db), "SELECT * FROM /.*/ GROUP BY *");
        assert!(
            result["error"].is_null() && result["results"][0]["error"].is_null(),
            "query {db}: {result}"
        );
        let points = result["results"][0]["series"].clone();
        query_raw(self.influx.port, None, &format!("DROP DATABASE {db}"));
        Stored {
            status,
            answer,
            points,
        }
    }

    /// Whether influxd refuses `CREATE DATABASE "<name>"`.
    fn database_refused(&mut self, name: &str) -> bool {
        if let Some(&refused) = self.refused_names.get(name) {
            return refused;
        }
        let quoted = format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""));
        let answer = query_raw(self.influx.port, None, &format!("CREATE DATABASE {quoted}"));
        let refused = !answer["results"][0]["error"].is_null() || !answer["error"].is_null();
        if !refused {
            query_raw(self.influx.port, None, &format!("DROP DATABASE {quoted}"));
        }
        self.refused_names.insert(name.to_string(), refused);
        refused
    }
}

/// Posts `body` to influxd's `/write` (precision ms) and returns the status
/// and the answer's body.
fn write_raw(port: u16, db: &str, body: &[u8]) -> (u16, String) {
    post(
        port,
        &format!("/write?db={db}&precision=ms"),
        "text/plain",
        body,
    )
}

/// Runs an InfluxQL statement and returns influxd's JSON answer.
fn query_raw(port: u16, db: Option<&str>, statement: &str) -> serde_json::Value {
    let mut form = format!("epoch=ms&db={}&q=", db.unwrap_or_default()).into_bytes();
    for &b in statement.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            form.push(b);
        } else {
            form.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    let (status, answer) = post(port, "/query", "application/x-www-form-urlencoded", &form);
    serde_json::from_str(&answer)
        .unwrap_or_else(|e| panic!("query {statement:?}: HTTP {status}, {e}: {answer:?}"))
}

/// A plain HTTP/1.1 POST: influxd repeats a refused line or name in its
/// `X-Influxdb-Error` header, control characters included, which HTTP
/// client libraries refuse to parse.
fn post(port: u16, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to influxd on port {port}: {e}"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .unwrap_or_else(|e| panic!("send to influxd: {e}"));
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .unwrap_or_else(|e| panic!("read influxd's answer: {e}"));
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// The body of a chunked HTTP answer.
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Our db_per_tenant answer as the tenant text.
pub fn tenant_of(target: Result<Target<'_>, Rejection>) -> Result<String, Rejection> {
    target.map(|t| match t {
        Target::Tenant(tenant) => tenant.into_owned(),
        Target::Shared => String::new(),
    })
}
