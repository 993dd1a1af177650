//! The `migrate-db-per-tenant` subcommand: its options, and running it
//! with the loaded configuration: logging, the InfluxDB client, the dry run
//! or the migration, the summary on stdout and the exit code (non-zero
//! when any measurement failed).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    crate::signals::stop_with(move |signal| {
        log::warn!("received {signal}: stopping before the next chunk (send it again to exit at once); the next run resumes from the state files");
        flag.store(true, Ordering::Relaxed);
    });
    let report =
        super::run::migrate(&client, &settings, progress, &interrupt).with_context(|| {
            format!(
                "migrating database {:?} to one database per tenant",
                settings.database_name
            )
        })?;
    print!("{}", report.render(&StateFiles::new(&settings.state_dir)));
    Ok(if report.interrupted {
        ExitCode::from(crate::signals::INTERRUPTED_EXIT_CODE as u8)
    } else if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<MigrateArgs, clap::Error> {
        let cli = Cli::try_parse_from(
            ["monasca-persister", "migrate-db-per-tenant"]
                .iter()
                .chain(args),
        )?;
        match cli.command {
            Some(Command::MigrateDbPerTenant(args)) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_references() {
        let args = parse(&[]).expect("no options");
        let settings = args
            .settings(&InfluxSection::default())
            .expect("valid settings");
        assert_eq!(settings.time_unit, TimeUnit::Week);
        assert_eq!((settings.start_offset, settings.end_offset), (0, 520));
        assert_eq!(settings.state_dir, PathBuf::from("."));
        assert_eq!(settings.database_name, "mon");
        assert!(!args.dry_run && !settings.verify);
    }

    #[test]
    fn lists_split_at_commas_and_repeat() {
        let args = parse(&[
            "--config-file",
            "p.conf",
            "--migrate-time-unit",
            "d",
            "--migrate-retention-policy",
            "a:2,b:48h",
            "--migrate-retention-policy=c:1w",
            "--migrate-skip-regex",
            r"^log\..+,cpu",
            "--migrate-skip-regex",
            "disk",
        ])
        .expect("valid options");
        assert_eq!(args.config.config_file, [PathBuf::from("p.conf")]);
        let settings = args
            .settings(&InfluxSection::default())
            .expect("valid settings");
        let names: Vec<(&str, u64)> = settings
            .tenant_policies
            .iter()
            .map(|(t, p)| (t.as_str(), p.hours))
            .collect();
        assert_eq!(names, [("a", 48), ("b", 48), ("c", 168)]);
        assert_eq!(settings.tenant_policies["a"].name, "2d");
        let patterns: Vec<&str> = settings.skip.iter().map(SkipPattern::as_str).collect();
        assert_eq!(patterns, [r"^log\..+", "cpu", "disk"]);
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let e = parse(&["--migrate-retention-policy", "a:2y"]).expect_err("bad unit");
        assert!(e.to_string().contains("\"a\""), "{e}");
        assert!(parse(&["--migrate-time-unit", "m"]).is_err());
        assert!(parse(&["--migrate-skip-regex", "("]).is_err());
        let empty = parse(&[
            "--migrate-start-time-offset",
            "9",
            "--migrate-end-time-offset",
            "9",
        ])
        .expect("parses");
        assert!(empty.settings(&InfluxSection::default()).is_err());
        let twice = parse(&["--migrate-retention-policy", "a:1,a:2"]).expect("parses");
        assert!(twice.settings(&InfluxSection::default()).is_err());
    }
}
