//! The InfluxQL the migration sends and how it reads the answers: listing
//! measurements and tenants, the chunk copy (`SELECT * INTO`), the counts
//! that verify it. Every measurement name is sent as a quoted identifier
//! and every tenant id as a quoted string, escaped, so no name can change
//! the meaning of a statement.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::settings::{Settings, TimeUnit};
pub use monasca_influx::client::{quote_identifier, quote_string};
use monasca_influx::response::parse_rejection;

/// The tag that says which tenant a metric belongs to.
pub const TENANT_TAG: &str = "_tenant_id";

/// Lists the measurements of the database the query runs in.
pub const SHOW_MEASUREMENTS: &str = "SHOW MEASUREMENTS";

/// Lists the `_tenant_id` values of every measurement, one series each.
pub fn show_tenants() -> String {
    format!(
        "SHOW TAG VALUES WITH KEY = {}",
        quote_identifier(TENANT_TAG)
    )
}

/// A duration as an InfluxQL literal in the largest unit that divides it
/// (`2w`, `36h`, `90m`).
pub fn duration_literal(duration: Duration) -> String {
    let seconds = duration.as_secs();
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds > 0 && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// The chunks one tenant's data is copied in, newest first: chunk `k`
/// holds the points with `now()-(k+1)u < time <= now()-k·u`, for `k` from
/// the start offset up to the end offset. When the target database's
/// default retention policy keeps points for less than the end offset,
/// the chunks stop at the retention limit: InfluxDB would refuse older
/// points anyway (`points beyond retention policy dropped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Chunk length.
    pub unit: TimeUnit,
    /// First chunk index.
    pub start: u32,
    /// One past the last chunk index, retention limit applied.
    pub end: u32,
    /// The target's retention, when finite.
    pub retention: Option<Duration>,
}

impl Window {
    /// The window of a target whose default policy keeps points for
    /// `retention` (`None`: for ever).
    pub fn new(settings: &Settings, retention: Option<Duration>) -> Window {
        let unit_seconds = settings.time_unit.hours() * 3600;
        let end = match retention {
            Some(r) => {
                let reach = r.as_secs().div_ceil(unit_seconds);
                settings
                    .end_offset
                    .min(u32::try_from(reach).unwrap_or(u32::MAX))
            }
            None => settings.end_offset,
        };
        Window {
            unit: settings.time_unit,
            start: settings.start_offset,
            end: end.max(settings.start_offset),
            retention,
        }
    }

    /// Number of chunks.
    pub fn len(&self) -> u32 {
        self.end - self.start
    }

    /// True when there is nothing to copy (the retention ends before the
    /// start offset).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunks, newest first.
    pub fn chunks(&self) -> impl Iterator<Item = Chunk> + '_ {
        (self.start..self.end).map(|k| self.chunk(k))
    }

    fn chunk(&self, k: u32) -> Chunk {
        let unit_seconds = self.unit.hours() * 3600;
        let older = u64::from(k) + 1;
        let lower = match self.retention {
            Some(r) if older * unit_seconds > r.as_secs() => {
                format!("now()-{}", duration_literal(r))
            }
            _ => format!("now()-{older}{}", self.unit.suffix()),
        };
        Chunk {
            index: k,
            lower,
            upper: format!("now()-{k}{}", self.unit.suffix()),
        }
    }

    /// How far back from now the oldest chunk reaches.
    pub fn reach(&self) -> Duration {
        let units = Duration::from_secs(u64::from(self.end) * self.unit.hours() * 3600);
        match self.retention {
            Some(r) => r.min(units),
            None => units,
        }
    }

    /// How far back from now the newest chunk starts.
    pub fn near(&self) -> Duration {
        Duration::from_secs(u64::from(self.start) * self.unit.hours() * 3600)
    }
}

/// One chunk: `time > lower AND time <= upper`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// `k`: the chunk ends `k` units before now.
    pub index: u32,
    /// Exclusive lower bound, e.g. `now()-3d`.
    pub lower: String,
    /// Inclusive upper bound, e.g. `now()-2d`.
    pub upper: String,
}

impl fmt::Display for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} .. {}]", self.lower, self.upper)
    }
}

/// Copies one chunk of one tenant's points of `measurement` into the
/// target database, under the same measurement name (`:MEASUREMENT`) and
/// into the target's default retention policy (`..`), where queries that
/// name no policy look. `GROUP BY *` keeps tags as tags; fields keep their
/// types.
pub fn copy_statement(target: &str, measurement: &str, tenant: &str, chunk: &Chunk) -> String {
    format!(
        "SELECT * INTO {}..:MEASUREMENT FROM {} WHERE {} = {} AND time > {} AND time <= {} GROUP BY *",
        quote_identifier(target),
        quote_identifier(measurement),
        quote_identifier(TENANT_TAG),
        quote_string(tenant),
        chunk.lower,
        chunk.upper,
    )
}

/// Counts one tenant's points of `measurement` (per field) with
/// `after < time <= until`.
pub fn count_statement(
    measurement: &str,
    tenant: &str,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> String {
    format!(
        "SELECT count(*) FROM {} WHERE {} = {} AND time > '{}' AND time <= '{}'",
        quote_identifier(measurement),
        quote_identifier(TENANT_TAG),
        quote_string(tenant),
        after.to_rfc3339_opts(SecondsFormat::Nanos, true),
        until.to_rfc3339_opts(SecondsFormat::Nanos, true),
    )
}

/// An answer that does not say what the statement should have returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// InfluxDB cut the answer short (`"partial": true`).
    #[error(
        "InfluxDB returned only part of the answer (\"partial\": true); \
         raise or remove its [http] max-row-limit"
    )]
    Partial,
    /// Something else was missing.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

fn series(answer: &serde_json::Value) -> Result<&[serde_json::Value], AnswerError> {
    let result = &answer["results"][0];
    if result["partial"].as_bool() == Some(true)
        || result["series"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["partial"].as_bool() == Some(true))
    {
        return Err(AnswerError::Partial);
    }
    Ok(result["series"].as_array().map_or(&[], Vec::as_slice))
}

fn rows(series: &serde_json::Value) -> impl Iterator<Item = &[serde_json::Value]> {
    series["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row.as_array().map(Vec::as_slice))
}

/// The names in a `SHOW MEASUREMENTS` answer.
pub fn measurements(answer: &serde_json::Value) -> Result<Vec<String>, AnswerError> {
    let mut names = Vec::new();
    for s in series(answer)? {
        for row in rows(s) {
            match row.first().and_then(|v| v.as_str()) {
                Some(name) => names.push(name.to_string()),
                None => {
                    return Err(AnswerError::Unexpected(format!(
                        "a measurement row without a name: {row:?}"
                    )))
                }
            }
        }
    }
    Ok(names)
}

/// The tenants of each measurement in a [`show_tenants`] answer.
pub fn tenants_by_measurement(
    answer: &serde_json::Value,
) -> Result<BTreeMap<String, Vec<String>>, AnswerError> {
    let mut tenants = BTreeMap::new();
    for s in series(answer)? {
        let Some(measurement) = s["name"].as_str() else {
            return Err(AnswerError::Unexpected(
                "a tag value series without a measurement name".into(),
            ));
        };
        let values: Vec<String> = rows(s)
            .filter_map(|row| row.get(1)?.as_str().map(str::to_string))
            .collect();
        tenants.insert(measurement.to_string(), values);
    }
    Ok(tenants)
}

/// The number of points a `SELECT … INTO` wrote.
pub fn written(answer: &serde_json::Value) -> Result<u64, AnswerError> {
    let all = series(answer)?;
    let Some(result) = all.first() else {
        return Err(AnswerError::Unexpected(
            "no result series for SELECT INTO".into(),
        ));
    };
    let at = result["columns"]
        .as_array()
        .and_then(|c| c.iter().position(|c| c == "written"));
    at.and_then(|at| rows(result).next()?.get(at)?.as_u64())
        .ok_or_else(|| AnswerError::Unexpected(format!("no written count in {result}")))
}

/// Point counts per field (`count_<field>` → n) of a [`count_statement`]
/// answer; empty when nothing matched.
pub fn field_counts(answer: &serde_json::Value) -> Result<BTreeMap<String, u64>, AnswerError> {
    let mut counts = BTreeMap::new();
    for s in series(answer)? {
        let columns = s["columns"].as_array().map_or(&[][..], Vec::as_slice);
        for row in rows(s) {
            for (column, value) in columns.iter().zip(row) {
                if let (Some(field), Some(n)) = (
                    column.as_str().and_then(|c| c.strip_prefix("count_")),
                    value.as_u64(),
                ) {
                    *counts.entry(field.to_string()).or_insert(0) += n;
                }
            }
        }
    }
    Ok(counts)
}

/// When a refused statement only dropped points older than the target's
/// retention policy, how many (the others were written).
pub fn dropped_beyond_retention(message: &str) -> Option<u64> {
    let rejection = parse_rejection(message.to_string());
    if rejection.only_beyond_retention() {
        rejection.dropped.map(|d| d.count as u64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(unit: TimeUnit, start: u32, end: u32) -> Settings {
        Settings {
            time_unit: unit,
            start_offset: start,
            end_offset: end,
            ..Settings::new("mon")
        }
    }

    #[test]
    fn strings_are_quoted_and_escaped() {
        assert_eq!(quote_string("abc"), "'abc'");
        assert_eq!(quote_string(r#"it's "x"\y"#), r#"'it\'s "x"\\y'"#);
    }

    #[test]
    fn the_copy_statement_quotes_every_name() {
        let window = Window::new(&settings(TimeUnit::Week, 0, 520), None);
        let chunk = window.chunks().nth(1).expect("second chunk");
        assert_eq!(
            copy_statement("mon_it's", "a \"b\".c\\d", "it's", &chunk),
            r#"SELECT * INTO "mon_it's"..:MEASUREMENT FROM "a \"b\".c\\d" WHERE "_tenant_id" = 'it\'s' AND time > now()-2w AND time <= now()-1w GROUP BY *"#
        );
    }

    #[test]
    fn chunks_run_from_the_start_to_the_end_offset() {
        let window = Window::new(&settings(TimeUnit::Day, 2, 5), None);
        let chunks: Vec<String> = window.chunks().map(|c| c.to_string()).collect();
        assert_eq!(
            chunks,
            [
                "(now()-3d .. now()-2d]",
                "(now()-4d .. now()-3d]",
                "(now()-5d .. now()-4d]"
            ]
        );
        assert_eq!(window.len(), 3);
        assert_eq!(window.reach(), Duration::from_secs(5 * 86_400));
    }

    #[test]
    fn a_finite_retention_ends_the_chunks_there() {
        let two_days = Some(Duration::from_secs(48 * 3600));
        let by_week = Window::new(&settings(TimeUnit::Week, 0, 520), two_days);
        let chunks: Vec<String> = by_week.chunks().map(|c| c.to_string()).collect();
        assert_eq!(chunks, ["(now()-2d .. now()-0w]"]);
        let by_day = Window::new(&settings(TimeUnit::Day, 0, 520), two_days);
        assert_eq!(by_day.len(), 2);
        let thirty_hours = Some(Duration::from_secs(30 * 3600));
        let partial = Window::new(&settings(TimeUnit::Day, 0, 520), thirty_hours);
        let last = partial.chunks().last().expect("a chunk");
        assert_eq!(last.to_string(), "(now()-30h .. now()-1d]");
        let beyond = Window::new(&settings(TimeUnit::Day, 3, 520), two_days);
        assert!(beyond.is_empty());
        let short_end = Window::new(&settings(TimeUnit::Day, 0, 1), two_days);
        assert_eq!(short_end.len(), 1);
        assert_eq!(short_end.reach(), Duration::from_secs(86_400));
    }

    #[test]
    fn durations_use_the_largest_exact_unit() {
        assert_eq!(duration_literal(Duration::from_secs(2 * 604_800)), "2w");
        assert_eq!(duration_literal(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(duration_literal(Duration::from_secs(90 * 60)), "90m");
        assert_eq!(duration_literal(Duration::from_secs(61)), "61s");
    }

    #[test]
    fn answers_are_read() {
        let tags = json!({"results":[{"statement_id":0,"series":[
            {"name":"cpu","columns":["key","value"],"values":[["_tenant_id","a"],["_tenant_id","b c"]]},
            {"name":"we \"ird\"","columns":["key","value"],"values":[["_tenant_id","it's"]]}]}]});
        let tenants = tenants_by_measurement(&tags).expect("valid");
        assert_eq!(tenants["cpu"], ["a", "b c"]);
        assert_eq!(tenants["we \"ird\""], ["it's"]);
        let into = json!({"results":[{"statement_id":0,"series":[
            {"name":"result","columns":["time","written"],"values":[["1970-01-01T00:00:00Z",42]]}]}]});
        assert_eq!(written(&into), Ok(42));
        let counts = json!({"results":[{"statement_id":0,"series":[
            {"name":"cpu","columns":["time","count_value","count_value_meta"],"values":[["2026-01-01T00:00:00Z",3,2]]}]}]});
        let counts = field_counts(&counts).expect("valid");
        assert_eq!(counts["value"], 3);
        assert_eq!(counts["value_meta"], 2);
        assert!(field_counts(&json!({"results":[{"statement_id":0}]}))
            .expect("valid")
            .is_empty());
        let partial = json!({"results":[{"statement_id":0,"partial":true,"series":[]}]});
        assert_eq!(measurements(&partial), Err(AnswerError::Partial));
    }

    #[test]
    fn only_retention_drops_are_recognised() {
        assert_eq!(
            dropped_beyond_retention("partial write: points beyond retention policy dropped=7"),
            Some(7)
        );
        assert_eq!(
            dropped_beyond_retention(
                "partial write: field type conflict: input field \"value\" on measurement \"m\" is type float, already exists as type string dropped=1"
            ),
            None
        );
    }
}
