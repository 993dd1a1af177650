//! The `migrate-db-per-tenant` subcommand: its options (the configuration
//! files and the migration's own, `monasca_migrate::MigrateOptions`), and
//! running it with the loaded configuration: logging, the InfluxDB client,
//! the dry run or the migration (crates/migrate), stop signals, the summary
//! on stdout and the exit code (non-zero when any measurement failed).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::cli::ConfigArgs;
use crate::config::{InfluxSection, Loaded};
use crate::influx::InfluxClient;
use crate::logging;
use crate::migrate::{MigrateOptions, Progress, StateFiles};

/// Options of `migrate-db-per-tenant`: the configuration files, then the
/// migration's own (`monasca_migrate::MigrateOptions`).
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Where the configuration comes from (`[influxdb]` is read).
    #[command(flatten)]
    pub config: ConfigArgs,

    /// What to migrate and how.
    #[command(flatten)]
    pub options: MigrateOptions,
}

/// Runs the subcommand with the loaded configuration.
pub fn run(loaded: &Loaded, args: &MigrateArgs) -> ExitCode {
    let progress = Progress::new(!args.options.dry_run && std::io::stderr().is_terminal());
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
        timeout_seconds: args.options.query_timeout,
        ..loaded.config.influxdb.clone()
    };
    let settings = args.options.settings(&influx).context("invalid options")?;
    let client = InfluxClient::new(&influx).context("cannot set up the InfluxDB client")?;
    if args.options.dry_run {
        let plan = crate::migrate::run::plan(&client, &settings)
            .context("cannot build the migration plan")?;
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
    let report = crate::migrate::run::migrate(&client, &settings, progress, &interrupt)
        .with_context(|| {
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
    use crate::migrate::TimeUnit;
    use clap::Parser;
    use std::path::PathBuf;

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
    fn configuration_files_and_migration_options_together() {
        let args = parse(&[
            "--config-file",
            "p.conf",
            "--migrate-time-unit",
            "d",
            "--config-dir=conf.d",
            "--dry-run",
        ])
        .expect("valid options");
        assert_eq!(args.config.config_file, [PathBuf::from("p.conf")]);
        assert_eq!(args.config.config_dir, Some(PathBuf::from("conf.d")));
        assert_eq!(args.options.time_unit, TimeUnit::Day);
        assert!(args.options.dry_run);
        let settings = args
            .options
            .settings(&InfluxSection::default())
            .expect("valid settings");
        assert_eq!(settings.database_name, "mon");
        assert!(parse(&["--migrate-time-unit", "m"]).is_err());
    }
}
