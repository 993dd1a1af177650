//! The options of `migrate-db-per-tenant` (clap), and the migration
//! settings made from them and the configuration's `[influxdb]`.

use std::path::PathBuf;

use clap::Args;
use monasca_config::InfluxSection;

use crate::settings::{
    resolve_policies, Settings, SettingsError, SkipPattern, TenantRetention, TimeUnit,
};

/// Options of `migrate-db-per-tenant` but for the configuration files
/// (the daemon's `MigrateArgs` adds those); the `--migrate-*` ones are the
/// reference tool's.
#[derive(Debug, Clone, Args)]
pub struct MigrateOptions {
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

impl MigrateOptions {
    /// The migration settings from these options and `[influxdb]`.
    pub fn settings(&self, influx: &InfluxSection) -> Result<Settings, SettingsError> {
        let settings = Settings {
            database_name: influx.database_name.clone(),
            default_retention_hours: influx.default_retention_hours,
            time_unit: self.time_unit,
            start_offset: self.start_offset,
            end_offset: self.end_offset,
            tenant_policies: resolve_policies(&self.retention_policy, self.time_unit)?,
            skip: self.skip_regex.clone(),
            state_dir: self.state_dir.clone(),
            verify: self.verify,
        };
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The options alone on a command line.
    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        options: MigrateOptions,
    }

    fn parse(args: &[&str]) -> Result<MigrateOptions, clap::Error> {
        Command::try_parse_from(["migrate"].iter().chain(args)).map(|c| c.options)
    }

    #[test]
    fn defaults_are_the_references() {
        let options = parse(&[]).expect("no options");
        let settings = options
            .settings(&InfluxSection::default())
            .expect("valid settings");
        assert_eq!(settings.time_unit, TimeUnit::Week);
        assert_eq!((settings.start_offset, settings.end_offset), (0, 520));
        assert_eq!(settings.state_dir, PathBuf::from("."));
        assert_eq!(settings.database_name, "mon");
        assert!(!options.dry_run && !settings.verify);
    }

    #[test]
    fn lists_split_at_commas_and_repeat() {
        let options = parse(&[
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
        let settings = options
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
