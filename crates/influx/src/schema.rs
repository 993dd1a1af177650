//! Databases and retention policies: creating a database together with its
//! default retention policy, listing databases and reading a database's
//! policies back, with InfluxDB's duration strings (`336h0m0s`) parsed.

use std::time::Duration;

use crate::client::{quote_identifier, InfluxClient, InfluxError};

/// The retention policy InfluxDB gives every new database (`DURATION INF`).
pub const AUTOGEN: &str = "autogen";

/// A retention policy to create a database with; it becomes the database's
/// default policy (`autogen` is kept beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Policy name, e.g. `2w` or `720h`.
    pub name: String,
    /// How long points are kept, in hours (InfluxDB's minimum is 1 h).
    pub hours: u64,
}

impl RetentionPolicy {
    /// How long points are kept.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.hours * 3600)
    }
}

/// One row of `SHOW RETENTION POLICIES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicyInfo {
    /// Policy name.
    pub name: String,
    /// How long points are kept; `None` for ever (`0s`).
    pub duration: Option<Duration>,
    /// True for the database's default policy, where writes and queries
    /// that name no policy go.
    pub default: bool,
}

/// What a `CREATE DATABASE` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseCreation {
    /// The database exists now, created by this call or before it with
    /// policies compatible with the one asked for.
    Done,
    /// The database already existed with other retention policies; it was
    /// left as it is.
    ExistsWithOtherPolicies,
}

impl InfluxClient {
    /// Creates database `name`, with `policy` as its default retention
    /// policy when given (`autogen`, keeping points for ever, otherwise).
    ///
    /// The database ends up with the policies the reference gives it (its
    /// `CREATE DATABASE`, then `CREATE RETENTION POLICY … DEFAULT`): the
    /// default `policy` and, beside it, InfluxDB's usual `autogen` (keeping
    /// points for ever, not the default). They are made in the other order
    /// — `CREATE DATABASE "<name>" WITH DURATION <h>h REPLICATION 1 NAME
    /// "<policy>"`, then `CREATE RETENTION POLICY "autogen" … DURATION INF
    /// REPLICATION 1` — so that no point written meanwhile can land in
    /// `autogen`, where queries on the default policy never find it (see
    /// [`InfluxClient::create_database`]); `SHOW RETENTION POLICIES` lists
    /// them in that order. Idempotent; an existing database with other
    /// policies is not changed.
    pub fn create_database_with_policy(
        &self,
        name: &str,
        policy: Option<&RetentionPolicy>,
    ) -> Result<DatabaseCreation, InfluxError> {
        let mut statement = format!("CREATE DATABASE {}", quote_identifier(name));
        if let Some(policy) = policy {
            statement.push_str(&format!(
                " WITH DURATION {}h REPLICATION 1 NAME {}",
                policy.hours,
                quote_identifier(&policy.name)
            ));
        }
        match self.query(None, &statement) {
            Ok(_) => {}
            Err(InfluxError::Statement { message, .. })
                if message.contains("conflicts with an existing policy") =>
            {
                return Ok(DatabaseCreation::ExistsWithOtherPolicies);
            }
            Err(e) => return Err(e),
        }
        if policy.is_some_and(|p| p.name != AUTOGEN) {
            let autogen = format!(
                "CREATE RETENTION POLICY {} ON {} DURATION INF REPLICATION 1",
                quote_identifier(AUTOGEN),
                quote_identifier(name)
            );
            match self.query(None, &autogen) {
                Ok(_) => {}
                // Someone made an `autogen` of their own: leave it.
                Err(InfluxError::Statement { message, .. })
                    if message.contains("retention policy already exists") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(DatabaseCreation::Done)
    }

    /// The names of all databases.
    pub fn databases(&self) -> Result<Vec<String>, InfluxError> {
        let answer = self.query(None, "SHOW DATABASES")?;
        Ok(first_series_rows(&answer)
            .filter_map(|row| row.first()?.as_str().map(str::to_string))
            .collect())
    }

    /// The retention policies of `database`.
    pub fn retention_policies(
        &self,
        database: &str,
    ) -> Result<Vec<RetentionPolicyInfo>, InfluxError> {
        let statement = format!("SHOW RETENTION POLICIES ON {}", quote_identifier(database));
        let answer = self.query(None, &statement)?;
        let columns = first_series_columns(&answer);
        let index = |name: &str| columns.iter().position(|c| c == name);
        let (Some(name_at), Some(duration_at), Some(default_at)) =
            (index("name"), index("duration"), index("default"))
        else {
            return Ok(Vec::new());
        };
        let mut policies = Vec::new();
        for row in first_series_rows(&answer) {
            let name = row.get(name_at).and_then(|v| v.as_str()).unwrap_or("");
            let duration = row.get(duration_at).and_then(|v| v.as_str()).unwrap_or("");
            let duration = parse_go_duration(duration).ok_or_else(|| InfluxError::BadAnswer {
                action: format!("reading the retention policies of database {database:?}"),
                url: self.url().to_string(),
                detail: format!("policy {name:?} has an unreadable duration {duration:?}"),
            })?;
            policies.push(RetentionPolicyInfo {
                name: name.to_string(),
                duration: (!duration.is_zero()).then_some(duration),
                default: row.get(default_at).and_then(|v| v.as_bool()) == Some(true),
            });
        }
        Ok(policies)
    }
}

fn first_series_columns(answer: &serde_json::Value) -> Vec<String> {
    answer["results"][0]["series"][0]["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect()
}

fn first_series_rows(answer: &serde_json::Value) -> impl Iterator<Item = &Vec<serde_json::Value>> {
    answer["results"][0]["series"][0]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row.as_array())
}

/// Parses Go's `time.Duration` text as InfluxDB prints it (`336h0m0s`,
/// `1h30m0s`, `0s`, `500ms`).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let amount: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let nanos_per_unit: u64 = match &rest[..unit_len] {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        total += Duration::from_nanos(amount.checked_mul(nanos_per_unit)?);
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(
            parse_go_duration("336h0m0s"),
            Some(Duration::from_secs(336 * 3600))
        );
        assert_eq!(
            parse_go_duration("1h30m0s"),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(parse_go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        for bad in ["", "h", "12", "3x", "1h-2m"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}
