//! The command line: options, subcommands, and what each one runs.
//!
//! `monasca-persister [--config-file F]... [--config-dir D] [SUBCOMMAND]`.
//! Without a subcommand the persister runs; `check-config` validates and
//! prints the effective configuration; `migrate-db-per-tenant` copies the
//! database into one per tenant. Options go before or after the
//! subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Loaded, Sources};
use crate::logging::{self, LogHandle};
use crate::signals;

/// Drop-in replacement for the OpenStack Monasca Persister: reads metrics and
/// alarm state transitions from Kafka and stores them in InfluxDB.
#[derive(Debug, Parser)]
#[command(name = "monasca-persister", version)]
pub struct Cli {
    /// Where the configuration comes from.
    #[command(flatten)]
    pub config: ConfigArgs,

    /// What to do; without one, run the persister.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `--config-file` and `--config-dir`, accepted before and after a
/// subcommand (clap's global arguments would let the later position
/// replace the earlier files instead of adding to them).
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Configuration file (oslo.config INI). Repeat for more: later files
    /// override earlier ones. Without --config-file and --config-dir, the
    /// oslo.config default locations are searched
    /// (/etc/monasca/monasca-persister.conf, ...).
    #[arg(long = "config-file", value_name = "PATH")]
    pub config_file: Vec<PathBuf>,

    /// Directory whose *.conf files are read after the --config-file files,
    /// in name order.
    #[arg(long = "config-dir", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration and print the effective values (secrets
    /// masked) and the files they came from. Exits 0 when valid, 1 when not.
    CheckConfig(ConfigArgs),
    /// Copy the single database ([influxdb] database_name) into one
    /// database per tenant (<database_name>_<tenant>), so that
    /// db_per_tenant can be switched on. See docs/migration.md.
    MigrateDbPerTenant(crate::migrate_command::MigrateArgs),
}

impl Cli {
    /// The configuration arguments of the command line and its subcommand
    /// together, the subcommand's files after the others.
    pub fn config_args(&self) -> ConfigArgs {
        let mut args = self.config.clone();
        let sub = match &self.command {
            Some(Command::CheckConfig(sub)) => Some(sub),
            Some(Command::MigrateDbPerTenant(migrate)) => Some(&migrate.config),
            None => None,
        };
        if let Some(sub) = sub {
            args.config_file.extend(sub.config_file.iter().cloned());
            if sub.config_dir.is_some() {
                args.config_dir = sub.config_dir.clone();
            }
        }
        args
    }

    /// The configuration sources: those given, or the oslo.config default
    /// locations when none is; with warnings about what was found.
    pub fn sources(&self) -> (Sources, Vec<String>) {
        let args = self.config_args();
        let given = Sources {
            config_files: args.config_file,
            config_dir: args.config_dir,
        };
        if given.is_empty() {
            Sources::discover()
        } else {
            (given, Vec::new())
        }
    }

    /// Loads the configuration and registers its secrets for masking.
    fn load(&self) -> anyhow::Result<Loaded> {
        let (sources, found_warnings) = self.sources();
        let mut loaded = config::load(&sources).context("invalid configuration")?;
        crate::secrets::register(&loaded.config);
        if loaded.config.sources.is_empty() {
            loaded.warnings.push(
                "no configuration file read (none given, none in the default locations, or an empty --config-dir); using built-in defaults"
                    .to_string(),
            );
        }
        loaded.warnings.splice(0..0, found_warnings);
        Ok(loaded)
    }
}

/// Runs what the command line asks for; the process exit code. A stop
/// signal (see `signals`) ends a command that has not started anything yet
/// at once: the persister with 0, `check-config` and
/// `migrate-db-per-tenant` with [`signals::INTERRUPTED_EXIT_CODE`].
pub fn run(cli: Cli) -> ExitCode {
    match &cli.command {
        Some(Command::CheckConfig(_)) => {
            signals::exit_before_start(
                signals::INTERRUPTED_EXIT_CODE,
                "monasca-persister check-config",
                "interrupted; the configuration was not checked",
            );
            check_config(&cli)
        }
        Some(Command::MigrateDbPerTenant(args)) => {
            signals::exit_before_start(
                signals::INTERRUPTED_EXIT_CODE,
                "monasca-persister migrate-db-per-tenant",
                "interrupted before the migration started; nothing was changed",
            );
            migrate_db_per_tenant(&cli, args)
        }
        None => {
            signals::exit_before_start(
                0,
                "monasca-persister",
                "stopping before start-up finished; nothing was started",
            );
            persist(&cli)
        }
    }
}

/// An error as one line for stderr, configured secrets masked.
fn error_text(e: &anyhow::Error) -> String {
    crate::secrets::mask(&format!("{e:#}")).into_owned()
}

fn migrate_db_per_tenant(cli: &Cli, args: &crate::migrate_command::MigrateArgs) -> ExitCode {
    match cli.load() {
        Ok(loaded) => crate::migrate_command::run(&loaded, args),
        Err(e) => {
            eprintln!(
                "monasca-persister migrate-db-per-tenant: error: {}",
                error_text(&e)
            );
            ExitCode::FAILURE
        }
    }
}

fn check_config(cli: &Cli) -> ExitCode {
    let checked = cli.load().and_then(|loaded| {
        crate::kafka_source::check_client_config(&loaded.config)?;
        Ok(loaded)
    });
    match checked {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {}", crate::secrets::mask(w));
            }
            // Secrets by name are masked already; this catches their
            // values substituted into other options.
            print!("{}", crate::secrets::mask(&loaded.config.to_string()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

fn persist(cli: &Cli) -> ExitCode {
    // Once logging is up, errors go to the log; to stderr as well only when
    // the log is not already there.
    let mut logging_to_stderr = false;
    let mut logging_up = false;
    let result = (|| {
        let loaded = cli.load()?;
        crate::kafka_source::check_client_config(&loaded.config)?;
        let defaults = &loaded.config.default;
        let log = logging::init(defaults).context("cannot set up logging")?;
        logging_up = true;
        logging_to_stderr = defaults.log_path().is_none() || defaults.use_stderr;
        let _sighup = logging::watch_sighup(log.clone()).context("cannot watch for SIGHUP")?;
        log::info!(
            "monasca-persister {} starting, configuration from: {}",
            env!("CARGO_PKG_VERSION"),
            source_list(&loaded)
        );
        for w in &loaded.warnings {
            log::warn!("{w}");
        }
        log::debug!(
            "effective configuration:\n{}",
            loaded.config.to_string().trim_end()
        );
        run_pipeline(&loaded, log)
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if logging_up {
                log::error!("{e:#}");
            }
            if !logging_to_stderr {
                eprintln!("monasca-persister: error: {}", error_text(&e));
            }
            e.downcast_ref::<crate::pipeline::Failure>()
                .map_or(ExitCode::FAILURE, |f| ExitCode::from(f.exit_status))
        }
    }
}

fn source_list(loaded: &Loaded) -> String {
    if loaded.config.sources.is_empty() {
        return "built-in defaults".to_string();
    }
    let names: Vec<String> = loaded
        .config
        .sources
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    names.join(", ")
}

/// The Kafka → WAL → InfluxDB pipeline, until a signal stops it.
fn run_pipeline(loaded: &Loaded, _log: LogHandle) -> anyhow::Result<()> {
    crate::run::run(&loaded.config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_go_before_or_after_the_subcommand() {
        let a = Cli::parse_from([
            "p",
            "--config-file",
            "a",
            "check-config",
            "--config-file=b",
            "--config-dir",
            "d",
        ]);
        assert!(matches!(a.command, Some(Command::CheckConfig(_))));
        let (sources, _) = a.sources();
        assert_eq!(
            sources.config_files,
            vec![PathBuf::from("a"), PathBuf::from("b")]
        );
        assert_eq!(sources.config_dir, Some(PathBuf::from("d")));
        let b = Cli::parse_from(["p", "--config-file", "a", "--config-file", "c"]);
        assert!(b.command.is_none());
        let (sources, _) = b.sources();
        assert_eq!(
            sources.config_files,
            vec![PathBuf::from("a"), PathBuf::from("c")]
        );
    }
}
