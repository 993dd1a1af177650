//! What the user asked the migration for, parsed and checked: the chunk
//! time unit and offsets, per-tenant retention policies, the measurements to
//! skip, where the state files live.

use std::collections::BTreeMap;
use std::path::PathBuf;

use regex::Regex;

use monasca_influx::RetentionPolicy;

/// The length of one copy chunk, as `--migrate-time-unit` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeUnit {
    /// An hour.
    #[value(name = "h")]
    Hour,
    /// A day.
    #[value(name = "d")]
    Day,
    /// A week (the default).
    #[value(name = "w")]
    Week,
}

impl TimeUnit {
    /// The InfluxQL duration suffix: `h`, `d` or `w`.
    pub fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Hour => "h",
            TimeUnit::Day => "d",
            TimeUnit::Week => "w",
        }
    }

    /// Hours in one unit.
    pub fn hours(self) -> u64 {
        match self {
            TimeUnit::Hour => 1,
            TimeUnit::Day => 24,
            TimeUnit::Week => 168,
        }
    }

    fn from_suffix(suffix: &str) -> Option<TimeUnit> {
        match suffix {
            "h" => Some(TimeUnit::Hour),
            "d" => Some(TimeUnit::Day),
            "w" => Some(TimeUnit::Week),
            _ => None,
        }
    }
}

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `--migrate-retention-policy` item without `tenant:`.
    #[error("retention policy {item:?}: expected TENANT:DURATION, e.g. \"abc123:2w\"")]
    NoTenant {
        /// The item as given.
        item: String,
    },
    /// A retention duration that is not `N`, `Nh`, `Nd` or `Nw` with N > 0.
    #[error(
        "retention policy for tenant {tenant:?}: {value:?} is not a duration; \
         expected a positive number of --migrate-time-unit units (\"2\") or one with its unit (\"2w\", \"1d\", \"48h\")"
    )]
    BadDuration {
        /// The tenant.
        tenant: String,
        /// The duration as given.
        value: String,
    },
    /// The same tenant twice in `--migrate-retention-policy`.
    #[error("retention policy for tenant {tenant:?} given twice")]
    DuplicateTenant {
        /// The tenant.
        tenant: String,
    },
    /// A `--migrate-skip-regex` pattern the regex engine refuses.
    #[error("skip pattern {pattern:?} is not a valid regular expression: {reason}")]
    BadPattern {
        /// The pattern as given.
        pattern: String,
        /// The regex engine's message.
        reason: String,
    },
    /// `--migrate-start-time-offset` not below `--migrate-end-time-offset`.
    #[error(
        "--migrate-start-time-offset ({start}) must be smaller than --migrate-end-time-offset ({end})"
    )]
    EmptyRange {
        /// Start offset.
        start: u32,
        /// End offset.
        end: u32,
    },
}

/// One `TENANT:DURATION` item of `--migrate-retention-policy`, before the
/// time unit is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRetention {
    /// The tenant (project) id.
    pub tenant: String,
    /// The number in the duration.
    pub amount: u64,
    /// Its unit; `None` for a bare number, which counts `--migrate-time-unit` units.
    pub unit: Option<TimeUnit>,
}

impl TenantRetention {
    /// Parses `tenant:2`, `tenant:2w`, `tenant:1d`, `tenant:48h`. The last
    /// `:` separates, so a tenant id may itself contain one.
    pub fn parse(item: &str) -> Result<TenantRetention, SettingsError> {
        let (tenant, value) = item
            .rsplit_once(':')
            .filter(|(tenant, _)| !tenant.is_empty())
            .ok_or_else(|| SettingsError::NoTenant {
                item: item.to_string(),
            })?;
        let bad = || SettingsError::BadDuration {
            tenant: tenant.to_string(),
            value: value.to_string(),
        };
        let digits = value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len());
        let amount: u64 = value[..digits].parse().map_err(|_| bad())?;
        let unit = match &value[digits..] {
            "" => None,
            suffix => Some(TimeUnit::from_suffix(suffix).ok_or_else(bad)?),
        };
        if amount == 0 {
            return Err(bad());
        }
        Ok(TenantRetention {
            tenant: tenant.to_string(),
            amount,
            unit,
        })
    }

    /// The policy to create: named as the reference names it (`2w`; a bare
    /// number gets the time unit appended).
    pub fn policy(&self, default_unit: TimeUnit) -> RetentionPolicy {
        let unit = self.unit.unwrap_or(default_unit);
        RetentionPolicy {
            name: format!("{}{}", self.amount, unit.suffix()),
            hours: self.amount.saturating_mul(unit.hours()),
        }
    }
}

/// A `--migrate-skip-regex` pattern. Like Python's `re.match`, which the
/// reference uses, it must match at the start of the measurement name (not
/// necessarily the whole name).
#[derive(Debug, Clone)]
pub struct SkipPattern {
    pattern: String,
    regex: Regex,
}

impl SkipPattern {
    /// Compiles `pattern`, anchored at the start.
    pub fn parse(pattern: &str) -> Result<SkipPattern, SettingsError> {
        let regex =
            Regex::new(&format!("^(?:{pattern})")).map_err(|e| SettingsError::BadPattern {
                pattern: pattern.to_string(),
                reason: e.to_string(),
            })?;
        Ok(SkipPattern {
            pattern: pattern.to_string(),
            regex,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// True when `measurement` is to be skipped.
    pub fn matches(&self, measurement: &str) -> bool {
        self.regex.is_match(measurement)
    }
}

/// Everything the migration needs besides the InfluxDB connection.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[influxdb] database_name`: the source database, and the prefix of
    /// the targets `<database_name>_<tenant>`.
    pub database_name: String,
    /// `[influxdb] default_retention_hours`: the retention policy of target
    /// databases created for tenants without their own (0: keep for ever).
    pub default_retention_hours: u32,
    /// The length of one chunk.
    pub time_unit: TimeUnit,
    /// The newest chunk starts this many units before now.
    pub start_offset: u32,
    /// The oldest chunk ends this many units before now.
    pub end_offset: u32,
    /// Retention policies of the target databases, by tenant.
    pub tenant_policies: BTreeMap<String, RetentionPolicy>,
    /// Measurements matching any of these are left out.
    pub skip: Vec<SkipPattern>,
    /// Where `migrate-measurements`, `migrate-success` and `migrate-failure` are.
    pub state_dir: PathBuf,
    /// Compare per-tenant point counts of source and target after each measurement.
    pub verify: bool,
}

/// Resolves `--migrate-retention-policy` items with the time unit, one
/// policy per tenant.
pub fn resolve_policies(
    items: &[TenantRetention],
    time_unit: TimeUnit,
) -> Result<BTreeMap<String, RetentionPolicy>, SettingsError> {
    let mut policies = BTreeMap::new();
    for item in items {
        if policies
            .insert(item.tenant.clone(), item.policy(time_unit))
            .is_some()
        {
            return Err(SettingsError::DuplicateTenant {
                tenant: item.tenant.clone(),
            });
        }
    }
    Ok(policies)
}

impl Settings {
    /// Settings with the reference's defaults (weeks, offsets 0 to 520)
    /// for `database_name`, state files in the current directory.
    pub fn new(database_name: impl Into<String>) -> Settings {
        Settings {
            database_name: database_name.into(),
            default_retention_hours: 0,
            time_unit: TimeUnit::Week,
            start_offset: 0,
            end_offset: 520,
            tenant_policies: BTreeMap::new(),
            skip: Vec::new(),
            state_dir: PathBuf::from("."),
            verify: false,
        }
    }

    /// Checks that the offsets leave something to copy.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.start_offset >= self.end_offset {
            return Err(SettingsError::EmptyRange {
                start: self.start_offset,
                end: self.end_offset,
            });
        }
        Ok(())
    }

    /// The target database of `tenant`.
    pub fn target_database(&self, tenant: &str) -> String {
        format!("{}_{}", self.database_name, tenant)
    }

    /// The retention policy a new target database for `tenant` gets: its
    /// own, else `"<h>h"` from `default_retention_hours`, else none
    /// (InfluxDB's `autogen`, for ever).
    pub fn wanted_policy(&self, tenant: &str) -> Option<RetentionPolicy> {
        self.tenant_policies.get(tenant).cloned().or_else(|| {
            (self.default_retention_hours > 0).then(|| RetentionPolicy {
                name: format!("{}h", self.default_retention_hours),
                hours: u64::from(self.default_retention_hours),
            })
        })
    }

    /// The first skip pattern `measurement` matches.
    pub fn skipped_by(&self, measurement: &str) -> Option<&SkipPattern> {
        self.skip.iter().find(|p| p.matches(measurement))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_items_take_a_bare_number_or_a_unit() {
        let bare = TenantRetention::parse("abc:2").expect("bare number");
        assert_eq!(bare.policy(TimeUnit::Week).name, "2w");
        assert_eq!(bare.policy(TimeUnit::Week).hours, 336);
        assert_eq!(bare.policy(TimeUnit::Day).name, "2d");
        let hours = TenantRetention::parse("abc:48h").expect("hours");
        assert_eq!(hours.policy(TimeUnit::Week).name, "48h");
        assert_eq!(hours.policy(TimeUnit::Week).hours, 48);
        let day = TenantRetention::parse("urn:x:1d").expect("colon in tenant");
        assert_eq!(day.tenant, "urn:x");
        assert_eq!(day.policy(TimeUnit::Hour).hours, 24);
    }

    #[test]
    fn bad_retention_items_name_the_tenant() {
        for item in ["abc:0", "abc:", "abc:2y", "abc:w", "abc:-1", "abc:1.5d"] {
            let e = TenantRetention::parse(item).expect_err(item);
            assert!(e.to_string().contains("\"abc\""), "{item}: {e}");
        }
        for item in ["abc", ":2w"] {
            assert!(matches!(
                TenantRetention::parse(item),
                Err(SettingsError::NoTenant { .. })
            ));
        }
    }

    #[test]
    fn skip_patterns_match_at_the_start_like_python_re_match() {
        let p = SkipPattern::parse(r"log\..+").expect("valid");
        assert!(p.matches("log.errors"));
        assert!(!p.matches("syslog.errors"));
        let alternatives = SkipPattern::parse("a|b").expect("valid");
        assert!(alternatives.matches("b.x") && !alternatives.matches("cb"));
        assert!(SkipPattern::parse("(").is_err());
    }

    #[test]
    fn offsets_must_leave_something_to_copy() {
        let mut s = Settings::new("mon");
        assert!(s.validate().is_ok());
        s.start_offset = 3;
        s.end_offset = 3;
        assert!(matches!(
            s.validate(),
            Err(SettingsError::EmptyRange { .. })
        ));
    }

    #[test]
    fn tenants_without_a_policy_get_the_default_retention() {
        let items = [
            TenantRetention::parse("a:2").expect("valid"),
            TenantRetention::parse("c:3h").expect("valid"),
        ];
        let s = Settings {
            default_retention_hours: 720,
            time_unit: TimeUnit::Day,
            tenant_policies: resolve_policies(&items, TimeUnit::Day).expect("valid"),
            ..Settings::new("mon")
        };
        assert_eq!(s.wanted_policy("a").map(|p| p.name), Some("2d".into()));
        assert_eq!(s.wanted_policy("b").map(|p| p.name), Some("720h".into()));
        assert_eq!(s.wanted_policy("c").map(|p| p.hours), Some(3));
        assert_eq!(s.target_database("b"), "mon_b");
        let twice = [items[0].clone(), items[0].clone()];
        assert!(matches!(
            resolve_policies(&twice, TimeUnit::Day),
            Err(SettingsError::DuplicateTenant { .. })
        ));
    }
}
