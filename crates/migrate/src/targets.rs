//! Preparing the target databases before anything is copied: each missing
//! one is created with its retention policy as the default, in one
//! statement, and every target's actual default policy is read back, since
//! that is where `SELECT … INTO "<db>"..` writes and what limits how far
//! back copying is useful. Existing databases are never changed.

use std::collections::BTreeMap;

use crate::error::MigrateError;
use crate::plan::{self, TargetPlan};
use crate::settings::Settings;
use monasca_influx::{DatabaseCreation, InfluxClient, InfluxError};

/// What preparing the targets did.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Databases created.
    pub created: usize,
    /// Tenants whose database cannot be used, and why.
    pub unusable: BTreeMap<String, String>,
}

/// Creates the missing targets and refreshes every target's policy and
/// window. A database InfluxDB refuses (a tenant id with `/` or `\` makes
/// an invalid name) makes only that tenant's copies fail; losing the
/// connection or the credentials stops the migration.
pub fn prepare(
    client: &InfluxClient,
    settings: &Settings,
    targets: &mut BTreeMap<String, TargetPlan>,
) -> Result<Prepared, MigrateError> {
    let mut prepared = Prepared::default();
    for target in targets.values_mut() {
        match prepare_one(client, settings, target) {
            Ok(created) => prepared.created += usize::from(created),
            Err(e @ (InfluxError::Transport { .. } | InfluxError::Auth { .. })) => {
                return Err(MigrateError::influx(
                    format!("preparing target database {:?}", target.database),
                    e,
                ))
            }
            Err(e) => {
                log::error!(
                    "tenant {:?}: cannot prepare target database {:?}: {e}",
                    target.tenant,
                    target.database
                );
                prepared
                    .unusable
                    .insert(target.tenant.clone(), e.to_string());
            }
        }
    }
    Ok(prepared)
}

/// True when the database was created.
fn prepare_one(
    client: &InfluxClient,
    settings: &Settings,
    target: &mut TargetPlan,
) -> Result<bool, InfluxError> {
    let mut created = false;
    if target.existing.is_none() {
        match client.create_database_with_policy(&target.database, target.wanted.as_ref())? {
            DatabaseCreation::Done => {
                created = true;
                log::info!(
                    "tenant {:?}: created database {:?}{}",
                    target.tenant,
                    target.database,
                    match &target.wanted {
                        Some(p) =>
                            format!(" with default retention policy {:?} ({}h)", p.name, p.hours),
                        None => String::new(),
                    }
                );
            }
            DatabaseCreation::ExistsWithOtherPolicies => {}
        }
    }
    let default = plan::default_policy(client, &target.database)?;
    *target = TargetPlan::existing(settings, &target.tenant, default);
    if !created && target.policy_differs() {
        log::warn!(
            "tenant {:?}: database {:?} {}",
            target.tenant,
            target.database,
            target.policy_description()
        );
    }
    if target.window.is_empty() {
        log::warn!(
            "tenant {:?}: the retention policy of {:?} keeps nothing older than --migrate-start-time-offset; nothing will be copied",
            target.tenant,
            target.database
        );
    }
    Ok(created)
}
