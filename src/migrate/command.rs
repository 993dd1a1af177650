//! The `migrate-db-per-tenant` subcommand: its options, and running it
//! with the loaded configuration: logging, the InfluxDB client, the dry run
//! or the migration, the summary on stdout and the exit code (non-zero
//! when any measurement failed).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::progress::Progress;
use super::settings::{self, Settings, SkipPattern, TenantRetention, TimeUnit};
use super::state::StateFiles;
use crate::cli::ConfigArgs;
use crate::config::{InfluxSection, Loaded};
use crate::influx::InfluxClient;
use crate::logging;

/// Options of `migrate-db-per-tenant`; the `--migrate-*` ones are the
/// reference tool's.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Where the configuration comes from (`[influxdb]` is read).
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Length of one copy chunk: h (hour), d (day) or w (week).
    #[arg(long = "migrate-time-unit", value_enum, default_value = "w")]
    pub time_unit: TimeUnit,

    /// The newest chunk ends this many time units before now.
    #[arg(
        long = "migrate-start-time-offset",
        value_name = "N",
        default_value_t = 0
    )]
    pub start_offset: u32,

    /// The oldest chunk starts this many time units before now (520 weeks:
    /// ten years).
    #[arg(
        long = "migrate-end-time-offset",
        value_name = "N",
        default_value_t = 520
    )]
    pub end_offset: u32,

    /// Retention policy of tenants' new databases, comma separated:
    /// TENANT:N in time units (e.g. abc:2), or with a unit (abc:2w, abc:1d,
    /// abc:48h). Also limits how far back the tenant is copied. Others get
    /// [influxdb] default_retention_hours.
    #[arg(
        long = "migrate-retention-policy",
        value_name = "TENANT:DURATION,...",
        value_delimiter = ',',
        value_parser = TenantRetention::parse
    )]
    pub retention_policy: Vec<TenantRetention>,

    /// Measurements to leave out, comma separated regular expressions,
    /// matched from the start of the name (e.g. '^log\..+').
    #[arg(
        long = "migrate-skip-regex",
        value_name = "REGEX,...",
        value_delimiter = ',',
        value_parser = SkipPattern::parse
    )]
    pub skip_regex: Vec<SkipPattern>,

    /// Print the plan (measurements × tenants, target databases, retention
    /// policies, chunk counts) and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Directory of the state files migrate-measurements, migrate-success
    /// and migrate-failure.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub state_dir: PathBuf,

    /// After each tenant of each measurement, compare point counts (per
    /// field) in source and target; fewer in the target fails the measurement.
    #[arg(long)]
    pub verify: bool,

    /// Limit for one InfluxDB request, in seconds (0: none); replaces
    /// [influxdb] timeout_seconds, which suits writes, not chunk copies.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub query_timeout: u64,
}

impl MigrateArgs {
    /// The migration settings from these options and `[influxdb]`.
    pub fn settings(&self, influx: &InfluxSection) -> Result<Settings, settings::SettingsError> {
        let settings = Settings {
            database_name: influx.database_name.clone(),
            default_retention_hours: influx.default_retention_hours,
            time_unit: self.time_unit,
            start_offset: self.start_offset,
            end_offset: self.end_offset,
            tenant_policies: settings::resolve_policies(&self.retention_policy, self.time_unit)?,
            skip: self.skip_regex.clone(),
            state_dir: self.state_dir.clone(),
            verify: self.verify,
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// Runs the subcommand with the loaded configuration.
pub fn run(loaded: &Loaded, args: &MigrateArgs) -> ExitCode {
    let progress = Progress::new(!args.dry_run && std::io::stderr().is_terminal());
    let defaults = &loaded.config.default;
    if let Err(e) = logging::init_with_console(defaults, progress.console()) {
        eprintln!("monasca-persister migrate-db-per-tenant: error: cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }
    let logging_to_stderr = defaults.log_path().is_none() || defaults.use_stderr;
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    match execute(loaded, args, &progress) {
        Ok(code) => code,
        Err(e) => {
            progress.finish();
            log::error!("{e:#}");
            if !logging_to_stderr {
                eprintln!("monasca-persister migrate-db-per-tenant: error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn execute(loaded: &Loaded, args: &MigrateArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let influx = InfluxSection {
        timeout_seconds: args.query_timeout,
        ..loaded.config.influxdb.clone()
    };
    let settings = args.settings(&influx).context("invalid options")?;
    let client = InfluxClient::new(&influx).context("cannot set up the InfluxDB client")?;
    if args.dry_run {
        let plan =
            super::run::plan(&client, &settings).context("cannot build the migration plan")?;
        print!("{}", plan.render(&settings, client.url()));
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&settings.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}",
            settings.state_dir.display()
        )
    })?;
    log::info!(
        "migrating database {:?} at {} to one database per tenant (chunks of 1{}, offsets {} to {}; state in {})",
        settings.database_name,
        client.url(),
        settings.time_unit.suffix(),
        settings.start_offset,
        settings.end_offset,
        settings.state_dir.display()
    );
    let report = super::run::migrate(&client, &settings, progress).with_context(|| {
        format!(
            "migrating database {:?} to one database per tenant",
            settings.database_name
        )
    })?;
    print!("{}", report.render(&StateFiles::new(&settings.state_dir)));
    Ok(if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
