//! The migration plan, built without changing anything: which measurements
//! are copied (or skipped, and why), the tenants of each, the target
//! database of each tenant with its retention policy, and how many chunks
//! that makes. `--dry-run` prints it; the run follows it.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use crate::error::MigrateError;
use crate::influxql::{self, Window};
use crate::settings::Settings;
use crate::state::{StateFiles, SUCCESS_FILE};
use monasca_influx::{InfluxClient, InfluxError, RetentionPolicy, RetentionPolicyInfo};

/// What happens to one measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeasurementStatus {
    /// To be copied (nothing to do when it has no tenant).
    ToMigrate,
    /// Listed in `migrate-success` by an earlier run.
    AlreadyDone,
    /// Matches this `--migrate-skip-regex` pattern.
    Skipped(String),
}

/// One measurement of the source database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementPlan {
    /// Its name.
    pub name: String,
    /// The `_tenant_id` values of its points.
    pub tenants: Vec<String>,
    /// What happens to it.
    pub status: MeasurementStatus,
}

/// The target database of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPlan {
    /// The tenant.
    pub tenant: String,
    /// `<database_name>_<tenant>`.
    pub database: String,
    /// The retention policy asked for (tenant's own or the default).
    pub wanted: Option<RetentionPolicy>,
    /// `Some` when the database exists: its default retention policy, if
    /// it has one. Existing databases are not changed.
    pub existing: Option<Option<RetentionPolicyInfo>>,
    /// The chunks each of its measurements is copied in.
    pub window: Window,
}

impl TargetPlan {
    /// The target of `tenant` as it would be created.
    pub fn new(settings: &Settings, tenant: &str) -> TargetPlan {
        let wanted = settings.wanted_policy(tenant);
        TargetPlan {
            tenant: tenant.to_string(),
            database: settings.target_database(tenant),
            window: Window::new(settings, wanted.as_ref().map(RetentionPolicy::duration)),
            wanted,
            existing: None,
        }
    }

    /// The target as it is: the database exists with `default_policy`,
    /// which decides where points go and how far back copying is useful.
    pub fn existing(
        settings: &Settings,
        tenant: &str,
        default_policy: Option<RetentionPolicyInfo>,
    ) -> TargetPlan {
        let retention = default_policy.as_ref().and_then(|p| p.duration);
        TargetPlan {
            window: Window::new(settings, retention),
            existing: Some(default_policy),
            ..TargetPlan::new(settings, tenant)
        }
    }

    /// True when the database exists but its default policy is not the one
    /// asked for.
    pub fn policy_differs(&self) -> bool {
        match (&self.existing, &self.wanted) {
            (Some(Some(actual)), Some(wanted)) => {
                actual.name != wanted.name || actual.duration != Some(wanted.duration())
            }
            (Some(None), Some(_)) => true,
            _ => false,
        }
    }

    /// The retention policy points are copied into, in words.
    pub fn policy_description(&self) -> String {
        match &self.existing {
            None => match &self.wanted {
                Some(p) => format!(
                    "to create with retention policy {:?} (keeps {}h)",
                    p.name, p.hours
                ),
                None => "to create with retention policy \"autogen\" (keeps for ever)".to_string(),
            },
            Some(actual) => {
                let mut text = match actual {
                    Some(p) => format!(
                        "exists, default retention policy {:?} (keeps {})",
                        p.name,
                        match p.duration {
                            Some(d) => influxql::duration_literal(d),
                            None => "for ever".to_string(),
                        }
                    ),
                    None => "exists, without a default retention policy".to_string(),
                };
                if let (true, Some(wanted)) = (self.policy_differs(), &self.wanted) {
                    let _ = write!(
                        text,
                        "; {:?} asked for but not applied (existing databases are left as they are)",
                        wanted.name
                    );
                }
                text
            }
        }
    }
}

/// Everything the migration would do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The source database.
    pub source: String,
    /// Every measurement of the source, in InfluxDB's order.
    pub measurements: Vec<MeasurementPlan>,
    /// True when the measurement list came from `migrate-measurements`.
    pub measurements_cached: bool,
    /// The target of every tenant of a measurement to migrate.
    pub targets: BTreeMap<String, TargetPlan>,
}

impl Plan {
    /// Looks at the source, the state files and the existing databases.
    /// Changes nothing.
    pub fn build(
        client: &InfluxClient,
        settings: &Settings,
        state: &StateFiles,
    ) -> Result<Plan, MigrateError> {
        let source = settings.database_name.clone();
        let databases: HashSet<String> = client
            .databases()
            .map_err(|e| MigrateError::influx("listing the databases".into(), e))?
            .into_iter()
            .collect();
        if !databases.contains(&source) {
            return Err(MigrateError::NoSource { database: source });
        }
        let cached = state.cached_measurements()?;
        let measurements_cached = cached.is_some();
        let names = match cached {
            Some(names) => names,
            None => {
                let action = || format!("listing the measurements of database {source:?}");
                let answer = client
                    .query(Some(&source), influxql::SHOW_MEASUREMENTS)
                    .map_err(|e| MigrateError::influx(action(), e))?;
                influxql::measurements(&answer).map_err(|e| MigrateError::answer(action(), e))?
            }
        };
        let action = || {
            format!(
                "listing the {} values of database {source:?}",
                influxql::TENANT_TAG
            )
        };
        let answer = client
            .query(Some(&source), &influxql::show_tenants())
            .map_err(|e| MigrateError::influx(action(), e))?;
        let mut tenants = influxql::tenants_by_measurement(&answer)
            .map_err(|e| MigrateError::answer(action(), e))?;
        let finished = state.finished()?;

        let measurements: Vec<MeasurementPlan> = names
            .into_iter()
            .map(|name| {
                let status = if let Some(p) = settings.skipped_by(&name) {
                    MeasurementStatus::Skipped(p.as_str().to_string())
                } else if finished.contains(&name) {
                    MeasurementStatus::AlreadyDone
                } else {
                    MeasurementStatus::ToMigrate
                };
                MeasurementPlan {
                    tenants: tenants.remove(&name).unwrap_or_default(),
                    name,
                    status,
                }
            })
            .collect();

        let wanted_tenants: HashSet<&str> = measurements
            .iter()
            .filter(|m| m.status == MeasurementStatus::ToMigrate)
            .flat_map(|m| m.tenants.iter().map(String::as_str))
            .collect();
        let mut targets = BTreeMap::new();
        for tenant in wanted_tenants {
            let database = settings.target_database(tenant);
            let target = if databases.contains(&database) {
                let default = default_policy(client, &database).map_err(|e| {
                    MigrateError::influx(
                        format!("reading the retention policies of database {database:?}"),
                        e,
                    )
                })?;
                TargetPlan::existing(settings, tenant, default)
            } else {
                TargetPlan::new(settings, tenant)
            };
            targets.insert(tenant.to_string(), target);
        }
        Ok(Plan {
            source,
            measurements,
            measurements_cached,
            targets,
        })
    }

    /// The measurements to copy, in order.
    pub fn to_migrate(&self) -> impl Iterator<Item = &MeasurementPlan> {
        self.measurements
            .iter()
            .filter(|m| m.status == MeasurementStatus::ToMigrate)
    }

    /// Number of chunk copies (measurement × tenant × chunk) to run.
    pub fn chunk_count(&self) -> u64 {
        self.to_migrate()
            .flat_map(|m| &m.tenants)
            .filter_map(|t| self.targets.get(t))
            .map(|t| u64::from(t.window.len()))
            .sum()
    }

    /// The plan in words, for `--dry-run`.
    pub fn render(&self, settings: &Settings, url: &str) -> String {
        let mut out = String::new();
        let unit = settings.time_unit.suffix();
        let _ = writeln!(
            out,
            "Dry run: nothing is created, copied or written.\n\
             Source: database {:?} at {url}\n\
             Chunks: 1{unit} each, newest first, from now()-{}{unit} back to now()-{}{unit} \
             (or the target's retention limit)\n\
             Measurements: {} in all{}",
            self.source,
            settings.start_offset,
            settings.end_offset,
            self.measurements.len(),
            if self.measurements_cached {
                " (from the migrate-measurements file)"
            } else {
                ""
            },
        );
        let _ = writeln!(out, "\nTarget databases ({}):", self.targets.len());
        for target in self.targets.values() {
            let _ = writeln!(
                out,
                "  {:?} for tenant {:?}: {}; {} chunk(s) per measurement",
                target.database,
                target.tenant,
                target.policy_description(),
                target.window.len()
            );
        }
        let _ = writeln!(out, "\nMeasurements:");
        let mut copies = 0usize;
        for m in &self.measurements {
            let _ = write!(out, "  {:?}: ", m.name);
            let _ = match &m.status {
                MeasurementStatus::AlreadyDone => {
                    writeln!(out, "already done (listed in {SUCCESS_FILE}), skipped")
                }
                MeasurementStatus::Skipped(p) => {
                    writeln!(out, "skipped (matches --migrate-skip-regex {p:?})")
                }
                MeasurementStatus::ToMigrate if m.tenants.is_empty() => {
                    writeln!(out, "no {} values, nothing to copy", influxql::TENANT_TAG)
                }
                MeasurementStatus::ToMigrate => {
                    copies += m.tenants.len();
                    let chunks: u64 = m
                        .tenants
                        .iter()
                        .filter_map(|t| self.targets.get(t))
                        .map(|t| u64::from(t.window.len()))
                        .sum();
                    let tenants: Vec<String> = m.tenants.iter().map(|t| format!("{t:?}")).collect();
                    writeln!(
                        out,
                        "{} tenant(s) [{}], {chunks} chunk(s)",
                        m.tenants.len(),
                        tenants.join(", ")
                    )
                }
            };
        }
        let _ = writeln!(
            out,
            "\nTotal: {} measurement(s) to migrate, {copies} measurement × tenant copies, {} chunk(s)",
            self.to_migrate().count(),
            self.chunk_count()
        );
        out
    }
}

/// The default retention policy of an existing database.
pub fn default_policy(
    client: &InfluxClient,
    database: &str,
) -> Result<Option<RetentionPolicyInfo>, InfluxError> {
    let policies = client.retention_policies(database)?;
    Ok(policies.into_iter().find(|p| p.default))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn existing_databases_keep_their_policy_and_say_so() {
        let settings = Settings {
            default_retention_hours: 48,
            ..Settings::new("mon")
        };
        let fresh = TargetPlan::new(&settings, "a");
        assert_eq!(
            fresh.policy_description(),
            "to create with retention policy \"48h\" (keeps 48h)"
        );
        let kept = TargetPlan::existing(
            &settings,
            "a",
            Some(RetentionPolicyInfo {
                name: "autogen".into(),
                duration: None,
                default: true,
            }),
        );
        assert!(kept.policy_differs());
        assert!(kept.policy_description().contains("not applied"));
        assert_eq!(kept.window.len(), 520);
        let same = TargetPlan::existing(
            &settings,
            "a",
            Some(RetentionPolicyInfo {
                name: "48h".into(),
                duration: Some(Duration::from_secs(48 * 3600)),
                default: true,
            }),
        );
        assert!(!same.policy_differs());
        assert_eq!(same.window.len(), 1);
    }
}
