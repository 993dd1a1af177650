//! `--verify`: after a tenant's chunks are copied, count its points of the
//! measurement, per field, in the source and in the target over the same
//! fixed time range, and fail when the target has fewer.
//!
//! The range is fixed in absolute time from the server's clock read before
//! the first chunk and after the last one, not `now()`-relative: each of
//! the two count statements would see its own `now()`, and the few
//! milliseconds between them move the range's edges over points. It spans
//! only what every chunk covered, and stops a minute short of the target's
//! retention limit, where InfluxDB drops points as they age out. Points
//! arriving while the migration runs (newer than its start) are outside
//! it; a target with more points than the source (the persister already
//! writing there) passes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use crate::error::TenantError;
use crate::influxql;
use crate::plan::TargetPlan;
use monasca_influx::{InfluxClient, InfluxError};

/// The server's clock rounds down to the second.
const CLOCK_RESOLUTION: Duration = Duration::from_secs(1);

/// Room left before the retention limit, where points age out of the target.
const RETENTION_MARGIN: Duration = Duration::from_secs(60);

/// The InfluxDB server's time, or this machine's when the server does not
/// say (no `Date` header).
pub fn server_clock(client: &InfluxClient) -> Result<DateTime<Utc>, InfluxError> {
    Ok(client.server_time()?.unwrap_or_else(|| {
        log::warn!("InfluxDB sent no Date header: --verify uses this machine's clock");
        Utc::now()
    }))
}

fn back(from: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(by)
        .ok()
        .and_then(|by| from.checked_sub_signed(by))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The range `(after, until]` that every chunk of `target` covered, given
/// the server's time before the first chunk and after the last.
pub fn checked_range(
    target: &TargetPlan,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let window = &target.window;
    let until = back(started, window.near());
    let finished = finished + TimeDelta::seconds(CLOCK_RESOLUTION.as_secs() as i64);
    let units = Duration::from_secs(u64::from(window.end) * window.unit.hours() * 3600);
    let mut after = back(finished, units);
    if let Some(retention) = window.retention {
        after = after.max(back(finished, retention.saturating_sub(RETENTION_MARGIN)));
    }
    (after, until)
}

/// Compares the counts of one tenant's points of `measurement` in the
/// source and in `target`.
pub fn compare(
    client: &InfluxClient,
    source: &str,
    measurement: &str,
    target: &TargetPlan,
    started: DateTime<Utc>,
) -> Result<(), TenantError> {
    let cannot = |reason: String| TenantError::Verify {
        tenant: target.tenant.clone(),
        database: target.database.clone(),
        reason,
    };
    let finished = server_clock(client).map_err(|e| cannot(e.to_string()))?;
    let (after, until) = checked_range(target, started, finished);
    if after >= until {
        return Ok(());
    }
    let statement = influxql::count_statement(measurement, &target.tenant, after, until);
    let count = |database: &str| -> Result<BTreeMap<String, u64>, TenantError> {
        let answer = client
            .query(Some(database), &statement)
            .map_err(|e| cannot(e.to_string()))?;
        influxql::field_counts(&answer)
            .map_err(|e| cannot(format!("counting in {database:?}: {e}")))
    };
    let in_source = count(source)?;
    let in_target = count(&target.database)?;
    let range = format!(
        "{} .. {}",
        after.to_rfc3339_opts(SecondsFormat::Secs, true),
        until.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    let missing = shortfalls(&in_source, &in_target);
    if !missing.is_empty() {
        return Err(TenantError::Mismatch {
            tenant: target.tenant.clone(),
            database: target.database.clone(),
            detail: format!("points per field in ({range}]: {}", missing.join(", ")),
        });
    }
    if in_target != in_source {
        log::info!(
            "         verified: the target has more points than the source in ({range}] \
             (written there by something else): {} vs {}",
            describe(&in_target),
            describe(&in_source)
        );
    } else {
        log::info!(
            "         verified: source and target agree in ({range}]: {}",
            describe(&in_source)
        );
    }
    Ok(())
}

/// The fields with fewer points in the target than in the source, in words.
pub fn shortfalls(
    in_source: &BTreeMap<String, u64>,
    in_target: &BTreeMap<String, u64>,
) -> Vec<String> {
    in_source
        .iter()
        .filter_map(|(field, &n)| {
            let there = in_target.get(field).copied().unwrap_or(0);
            (there < n).then(|| format!("{field}: {n} in the source, {there} in the target"))
        })
        .collect()
}

fn describe(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "no points".to_string();
    }
    let parts: Vec<String> = counts.iter().map(|(f, n)| format!("{f}={n}")).collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Settings, TimeUnit};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    #[test]
    fn fewer_points_in_the_target_is_a_shortfall_more_is_not() {
        let counts = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(f, n)| (f.to_string(), *n)).collect()
        };
        let source = counts(&[("value", 10), ("value_meta", 10)]);
        assert!(shortfalls(&source, &source).is_empty());
        assert!(shortfalls(&source, &counts(&[("value", 12), ("value_meta", 10)])).is_empty());
        assert_eq!(
            shortfalls(&source, &counts(&[("value", 9)])),
            [
                "value: 10 in the source, 9 in the target",
                "value_meta: 10 in the source, 0 in the target"
            ]
        );
        assert!(shortfalls(&BTreeMap::new(), &source).is_empty());
    }

    #[test]
    fn the_range_is_what_every_chunk_covered() {
        let settings = Settings {
            time_unit: TimeUnit::Day,
            start_offset: 1,
            end_offset: 10,
            ..Settings::new("mon")
        };
        let target = TargetPlan::new(&settings, "a");
        let (after, until) = checked_range(
            &target,
            at("2026-01-20T12:00:00Z"),
            at("2026-01-20T12:05:00Z"),
        );
        assert_eq!(until, at("2026-01-19T12:00:00Z"));
        assert_eq!(after, at("2026-01-10T12:05:01Z"));
    }

    #[test]
    fn the_range_stops_short_of_the_retention_limit() {
        let settings = Settings {
            time_unit: TimeUnit::Week,
            default_retention_hours: 48,
            ..Settings::new("mon")
        };
        let target = TargetPlan::new(&settings, "a");
        let (after, until) = checked_range(
            &target,
            at("2026-01-20T12:00:00Z"),
            at("2026-01-20T12:00:00Z"),
        );
        assert_eq!(until, at("2026-01-20T12:00:00Z"));
        assert_eq!(after, at("2026-01-18T12:01:01Z"));
    }
}
