//! Assembling the effective [`Config`] from oslo-style INI files: reading
//! the sources in order (later files win), then every section and option
//! as the option table (`options.rs`) says: `[kafka]` inheritance, `$`
//! substitution, typing and bounds, refusals, and the warnings about
//! options that are unknown or accepted but ignored.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use super::ini_file;
use super::interpolate::{self, normalise_section, RawValue, Values};
use super::options::{self, is_topic, SECTIONS};
use super::schema::{Kind, Part, SectionSpec};
use super::{Config, GroupProtocol, KafkaClientSection, KafkaTopicSection, Secret};

/// Where configuration comes from: `--config-file` (repeatable) and `--config-dir`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Files in command-line order; later ones override earlier ones.
    pub config_files: Vec<PathBuf>,
    /// Directory whose `*.conf` files are read after the files, in sorted order.
    pub config_dir: Option<PathBuf>,
}

impl Sources {
    /// True when neither a file nor a directory was given.
    pub fn is_empty(&self) -> bool {
        self.config_files.is_empty() && self.config_dir.is_none()
    }

    /// The files oslo.config reads when none is given on the command line
    /// (project `monasca`, program `monasca-persister`): the first
    /// `monasca.conf` and the first `monasca-persister.conf` found in
    /// `~/.monasca/`, `~/`, `/etc/monasca/`, `/etc/`, falling back to the
    /// deprecated `persister.conf`; plus the first `monasca-persister.conf.d`
    /// directory. Returns warnings to log (the deprecated name).
    pub fn discover() -> (Sources, Vec<String>) {
        let mut dirs = Vec::new();
        if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
            dirs.push(home.join(".monasca"));
            dirs.push(home);
        }
        dirs.push(PathBuf::from("/etc/monasca"));
        dirs.push(PathBuf::from("/etc"));
        Self::discover_in(&dirs)
    }

    /// [`Sources::discover`] over the given directories, most preferred first.
    pub fn discover_in(dirs: &[PathBuf]) -> (Sources, Vec<String>) {
        let first = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
        let mut sources = Sources::default();
        let mut warnings = Vec::new();
        sources.config_files.extend(first("monasca.conf"));
        match first("monasca-persister.conf") {
            Some(p) => sources.config_files.push(p),
            None if sources.config_files.is_empty() => {
                if let Some(p) = first("persister.conf") {
                    warnings.push(format!(
                        "{}: deprecated location of the configuration file; use monasca-persister.conf",
                        p.display()
                    ));
                    sources.config_files.push(p);
                }
            }
            None => {}
        }
        sources.config_dir = dirs
            .iter()
            .map(|d| d.join("monasca-persister.conf.d"))
            .find(|p| p.is_dir());
        (sources, warnings)
    }
}

/// A loaded configuration and what the operator should be told about it
/// (logged once logging is set up).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// Unknown sections and options, and options accepted but ignored, one
    /// message each, naming the file.
    pub warnings: Vec<String>,
}

/// A configuration that cannot be used.
///
/// An underlying error is part of the message (a `cause` field, not
/// `source()`), so an `anyhow` chain printed with `{:#}` shows it once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file given on the command line does not exist.
    #[error("config file {} does not exist", .path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read config file {}: {cause}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// The `--config-dir` directory could not be listed.
    #[error("cannot read config directory {}: {cause}", .path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// A file too large to be a configuration file (`/dev/zero`, a wrong path).
    #[error("config file {} is larger than {MAX_CONFIG_FILE_BYTES} bytes: not a configuration file (is the path right?)", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A line oslo.config would refuse (or text that is not UTF-8).
    #[error("{}:{line}: {message}", .path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A value that is not valid for its option.
    #[error("{0}")]
    Value(Box<BadValue>),
}

/// A value refused for its option, with where it was written.
#[derive(Debug, thiserror::Error)]
#[error("{}: [{section}] {option} = {value:?}{}: {reason}", .path.display(), ExpandedNote(.expanded))]
pub struct BadValue {
    /// The file that set it.
    pub path: PathBuf,
    /// The section it was written in (`kafka` for an inherited value).
    pub section: String,
    /// The option.
    pub option: String,
    /// The value as written, `****` for a secret.
    pub value: String,
    /// The value after `$` substitution when that differs (never a secret).
    pub expanded: Option<String>,
    /// Why it is refused.
    pub reason: String,
}

struct ExpandedNote<'a>(&'a Option<String>);

impl fmt::Display for ExpandedNote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, " (expands to {v:?})"),
            None => Ok(()),
        }
    }
}

/// Loads and validates the configuration: the files in order, then the
/// directory's `*.conf` files in name order.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let mut files = sources.config_files.clone();
    if let Some(dir) = &sources.config_dir {
        files.extend(conf_files_in(dir)?);
    }
    let mut layers = Layers::default();
    for path in &files {
        let text = read_text(path)?;
        layers.add(path, &text)?;
    }
    build(&layers)
}

/// Loads a configuration from text, as if read from the file `origin`
/// (for tests and tools; `load_str("x", "")` gives the defaults).
pub fn load_str(origin: &str, text: &str) -> Result<Loaded, ConfigError> {
    let mut layers = Layers::default();
    layers.add(Path::new(origin), text)?;
    build(&layers)
}

fn conf_files_in(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_dir_error = |cause| ConfigError::ReadDir {
        path: dir.to_path_buf(),
        cause,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let path = entry.map_err(read_dir_error)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Like the shell glob `*.conf` oslo uses: no hidden files.
        if name.ends_with(".conf") && !name.starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Configuration files larger than this are refused without reading further:
/// a path that never ends (`/dev/zero`) must not hang or exhaust memory. The
/// complete commented sample is 8 KiB.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1 << 20;

fn read_text(path: &Path) -> Result<String, ConfigError> {
    let read_error = |cause: io::Error| match cause.kind() {
        io::ErrorKind::NotFound => ConfigError::Missing {
            path: path.to_path_buf(),
        },
        _ => ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        },
    };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|file| file.take(MAX_CONFIG_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line: 1 + valid.iter().filter(|b| **b == b'\n').count(),
                message: "not valid UTF-8 text".to_string(),
            })
        }
    }
}

/// An option's text as the last file that set it wrote it.
struct Setting {
    value: String,
    /// Index into `Layers::files`.
    file: usize,
}

/// Every file's assignments merged: for each (section, option), the last.
#[derive(Default)]
struct Layers {
    files: Vec<PathBuf>,
    settings: BTreeMap<(String, String), Setting>,
    /// Section name → first file that has an option in it.
    sections: BTreeMap<String, usize>,
}

impl Layers {
    fn add(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let file = self.files.len();
        self.files.push(path.to_path_buf());
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let assignments = ini_file::parse(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: e.line,
            message: e.message,
        })?;
        for a in assignments {
            let section = normalise_section(&a.section);
            self.sections.entry(section.clone()).or_insert(file);
            self.settings.insert(
                (section, a.key),
                Setting {
                    value: a.value,
                    file,
                },
            );
        }
        Ok(())
    }

    fn is_set(&self, section: &str, option: &str) -> bool {
        self.settings
            .contains_key(&(section.to_string(), option.to_string()))
    }
}

/// Sections of stores other than InfluxDB and Elasticsearch: accepted so
/// that an existing file loads, but nothing in them is used.
const OTHER_STORE_SECTIONS: [&str; 1] = ["cassandra"];

/// oslo.log options that existing files set in `[DEFAULT]`; logging here is
/// configured only by debug, log_file, log_dir and use_stderr.
const OSLO_LOG_OPTIONS: [&str; 29] = [
    "verbose",
    "watch_log_file",
    "use_syslog",
    "use_journal",
    "syslog_log_facility",
    "use_json",
    "use_eventlog",
    "log_date_format",
    "log_rotate_interval",
    "log_rotate_interval_type",
    "max_logfile_count",
    "max_logfile_size_mb",
    "log_rotation_type",
    "logging_context_format_string",
    "logging_default_format_string",
    "logging_debug_format_suffix",
    "logging_exception_prefix",
    "logging_user_identity_format",
    "default_log_levels",
    "publish_errors",
    "instance_format",
    "instance_uuid_format",
    "rate_limit_interval",
    "rate_limit_burst",
    "rate_limit_except_level",
    "fatal_deprecations",
    "syslog-log-facility",
    "log-date-format",
    "fatal_exception_format_errors",
];

/// Whether an option's value must be masked in messages.
fn is_secret_option(section: &str, option: &str) -> bool {
    if section == "kafka_client" {
        return KafkaClientSection::is_secret(option);
    }
    let o = option.to_ascii_lowercase();
    o.contains("password") || o.contains("token") || o.contains("secret") || o.contains("api_key")
}

/// The table's defaults as text, for substituting options no file sets
/// and for telling known options from unknown ones.
fn default_texts() -> BTreeMap<(String, String), String> {
    let mut map = BTreeMap::new();
    for section in SECTIONS {
        for option in section.options() {
            map.insert(
                (section.name.to_string(), option.name.to_string()),
                section.default_text(option).to_string(),
            );
        }
    }
    map
}

/// A value found in the files, substituted.
struct Found {
    /// After substitution.
    text: String,
    /// Where it was written.
    file: usize,
    section: String,
    option: String,
    /// As written.
    raw: String,
    /// Masked in messages.
    secret: bool,
}

struct Context<'a> {
    layers: &'a Layers,
    defaults: BTreeMap<(String, String), String>,
    /// Options some `$` reference used: not reported as unknown.
    referenced: RefCell<BTreeSet<(String, String)>>,
    /// What is left of the substitution work budget.
    work_left: Cell<usize>,
}

impl Values for Context<'_> {
    fn raw(&self, section: &str, option: &str) -> Option<RawValue> {
        if let Some((written_in, setting)) = self.setting(section, option) {
            self.referenced
                .borrow_mut()
                .insert((written_in.to_string(), option.to_string()));
            return Some(RawValue {
                text: setting.value.clone(),
                context: written_in.to_string(),
                secret: is_secret_option(written_in, option),
            });
        }
        let default = self
            .defaults
            .get(&(section.to_string(), option.to_string()))?;
        Some(RawValue {
            text: default.replace('$', "$$"),
            context: section.to_string(),
            secret: is_secret_option(section, option),
        })
    }

    fn spend(&self, bytes: usize) -> bool {
        let left = self.work_left.get();
        self.work_left.set(left.saturating_sub(bytes));
        left >= bytes
    }
}

impl<'a> Context<'a> {
    /// The setting for an option, from its own section or, for a topic
    /// section, inherited from `[kafka]`; with the section it was written in.
    fn setting(&self, section: &str, option: &str) -> Option<(&'a str, &'a Setting)> {
        let layers: &'a Layers = self.layers;
        let entry = |s: &str| {
            layers
                .settings
                .get_key_value(&(s.to_string(), option.to_string()))
                .map(|(key, setting)| (key.0.as_str(), setting))
        };
        entry(section).or_else(|| {
            let inherits = is_topic(section)
                && KafkaTopicSection::OPTIONS
                    .iter()
                    .any(|o| o.name == option && o.spec.kafka_common);
            if inherits {
                entry("kafka")
            } else {
                None
            }
        })
    }

    /// `file: [section] option`, how warnings start.
    fn place(&self, file: usize, section: &str, option: &str) -> String {
        format!(
            "{}: [{section}] {option}",
            self.layers.files[file].display()
        )
    }

    fn error(&self, found: &Found, reason: impl Into<String>) -> ConfigError {
        let (value, expanded) = if found.secret {
            ("****".to_string(), None)
        } else {
            let expanded = (found.text != found.raw).then(|| found.text.clone());
            (found.raw.clone(), expanded)
        };
        ConfigError::Value(Box::new(BadValue {
            path: self.layers.files[found.file].clone(),
            section: found.section.clone(),
            option: found.option.clone(),
            value,
            expanded,
            reason: reason.into(),
        }))
    }

    /// The option's value from the files, substituted; `None` when no file sets it.
    fn lookup(&self, section: &str, option: &str) -> Result<Option<Found>, ConfigError> {
        let Some((written_in, setting)) = self.setting(section, option) else {
            return Ok(None);
        };
        let secret = is_secret_option(written_in, option);
        let mut found = Found {
            text: setting.value.clone(),
            file: setting.file,
            section: written_in.to_string(),
            option: option.to_string(),
            raw: setting.value.clone(),
            secret,
        };
        match interpolate::expand(self, written_in, &setting.value) {
            Ok(expanded) => {
                found.text = expanded.text;
                found.secret |= expanded.secret;
                Ok(Some(found))
            }
            // The reason would quote part of the secret (the name after its `$`).
            Err(_) if secret => Err(self.error(&found, interpolate::SECRET_SUBSTITUTION_ERROR)),
            Err(reason) => Err(self.error(&found, reason)),
        }
    }
}

/// Warnings, each about an option (or a section) of a file: given in
/// section and option order, each once.
#[derive(Default)]
struct Warnings(Vec<((String, String), String)>);

impl Warnings {
    fn push(&mut self, section: &str, option: &str, message: String) {
        self.0
            .push(((section.to_string(), option.to_string()), message));
    }

    fn into_sorted(mut self) -> Vec<String> {
        self.0.sort_by(|a, b| a.0.cmp(&b.0));
        self.0.dedup();
        self.0.into_iter().map(|(_, message)| message).collect()
    }
}

fn build(layers: &Layers) -> Result<Loaded, ConfigError> {
    let ctx = Context {
        layers,
        defaults: default_texts(),
        referenced: RefCell::new(BTreeSet::new()),
        work_left: Cell::new(interpolate::WORK_BUDGET_BYTES),
    };
    let mut config = Config {
        sources: layers.files.clone(),
        ..Config::default()
    };
    let mut warnings = Warnings::default();
    // In the table's order; [kafka] is checked on its own too: a value
    // every topic section overrides would take effect as soon as one
    // override is removed.
    for section in SECTIONS {
        if section.part == Part::Passthrough {
            read_kafka_client(&ctx, &mut config.kafka_client)?;
        } else {
            read_section(&ctx, section, &mut config, &mut warnings)?;
        }
    }
    ignored(&ctx, &mut warnings);
    Ok(Loaded {
        config,
        warnings: warnings.into_sorted(),
    })
}

/// Reads a section's options as its table says: typed, bounded, checked
/// and stored (for `[kafka]`, checked only). An option no file sets keeps
/// its default.
fn read_section(
    ctx: &Context,
    section: &SectionSpec,
    config: &mut Config,
    warnings: &mut Warnings,
) -> Result<(), ConfigError> {
    for option in section.options() {
        let spec = option.spec;
        if spec.kind == Kind::Ignored {
            // Never read, not even substituted: only its warning.
            if let Some((written_in, setting)) = ctx.setting(section.name, option.name) {
                if let Ok(Some(warning)) = spec.check.apply(&setting.value) {
                    let here = ctx.place(setting.file, written_in, option.name);
                    warnings.push(written_in, option.name, format!("{here}{warning}"));
                }
            }
            continue;
        }
        let Some(found) = ctx.lookup(section.name, option.name)? else {
            continue;
        };
        let parsed = spec
            .kind
            .parse(&found.text, section.default_text(option))
            .map_err(|reason| ctx.error(&found, reason))?;
        if let Some(values) = section.values_mut {
            if let Some(field) = values(config).field_mut(option.name) {
                field
                    .assign(parsed, spec.kind)
                    .map_err(|reason| ctx.error(&found, reason))?;
            }
        }
        match spec.check.apply(&found.text) {
            Err(reason) => return Err(ctx.error(&found, reason)),
            Ok(Some(warning)) => {
                let here = ctx.place(found.file, &found.section, option.name);
                warnings.push(&found.section, option.name, format!("{here}{warning}"));
            }
            Ok(None) => {}
        }
    }
    check_not_below(ctx, section, config)?;
    check_session_timeout(ctx, section, config)
}

/// Refuses `session_timeout_ms` in a topic section of the consumer group
/// protocol, whose session timeout is the brokers' to set.
fn check_session_timeout(
    ctx: &Context,
    section: &SectionSpec,
    config: &Config,
) -> Result<(), ConfigError> {
    if section.part != Part::Topic {
        return Ok(());
    }
    let Some(values) = section.values else {
        return Ok(());
    };
    let values = values(config);
    let consumer = values
        .field("group_protocol")
        .is_some_and(|p| GroupProtocol::of(&p.render()) == Ok(GroupProtocol::Consumer));
    let session = values
        .field("session_timeout_ms")
        .is_some_and(|v| !v.render().is_empty());
    if !(consumer && session) {
        return Ok(());
    }
    match ctx.lookup(section.name, "session_timeout_ms")? {
        Some(found) => Err(ctx.error(
            &found,
            "not with group_protocol = consumer: that protocol's session timeout is the group's, set on the brokers (group.consumer.session.timeout.ms, or consumer.session.timeout.ms of the group)",
        )),
        None => Ok(()),
    }
}

/// Refuses a value below the option its table row names (`retry_max_ms`
/// below `retry_initial_ms`), naming the one the file set (the first when
/// it set both).
fn check_not_below(
    ctx: &Context,
    section: &SectionSpec,
    config: &Config,
) -> Result<(), ConfigError> {
    let Some(values) = section.values else {
        return Ok(());
    };
    let values = values(config);
    let number = |name: &str| values.field(name).and_then(|v| v.as_u64());
    for option in section.options() {
        let Some(lower) = option.spec.not_below else {
            continue;
        };
        let (Some(value), Some(least)) = (number(option.name), number(lower)) else {
            continue;
        };
        if value >= least {
            continue;
        }
        let named = if ctx.layers.is_set(section.name, option.name) {
            option.name
        } else {
            lower
        };
        if let Some(found) = ctx.lookup(section.name, named)? {
            return Err(ctx.error(
                &found,
                format!(
                    "{} ({value}) must not be below {lower} ({least})",
                    option.name
                ),
            ));
        }
    }
    Ok(())
}

/// `[kafka_client]`: every property, substituted, unless the persister
/// manages it.
fn read_kafka_client(ctx: &Context, target: &mut KafkaClientSection) -> Result<(), ConfigError> {
    let section = "kafka_client".to_string();
    for ((written_in, option), _) in ctx
        .layers
        .settings
        .range((section.clone(), String::new())..)
    {
        if *written_in != section {
            break;
        }
        if let Some(found) = ctx.lookup(&section, option)? {
            if let Some(why) = KafkaClientSection::refusal(option) {
                return Err(ctx.error(&found, format!("cannot be set here: {why}")));
            }
            target
                .properties
                .insert(option.clone(), Secret::new(found.text));
        }
    }
    Ok(())
}

/// Warnings for everything in the files that the table does not know.
fn ignored(ctx: &Context, warnings: &mut Warnings) {
    let layers = ctx.layers;
    let file = |i: usize| layers.files[i].display().to_string();
    let mut sections_warned = BTreeSet::new();
    let referenced = ctx.referenced.borrow();
    for ((section, option), setting) in &layers.settings {
        let Some(known) = options::section(section) else {
            if sections_warned.insert(section.clone()) {
                let first = file(
                    layers
                        .sections
                        .get(section)
                        .copied()
                        .unwrap_or(setting.file),
                );
                let message = if OTHER_STORE_SECTIONS.contains(&section.as_str()) {
                    format!("{first}: [{section}] is not used: InfluxDB is the only store; section ignored")
                } else {
                    format!("{first}: unknown section [{section}], ignored")
                };
                warnings.push(section, option, message);
            }
            continue;
        };
        let key = (section.clone(), option.clone());
        if known.part == Part::Passthrough || ctx.defaults.contains_key(&key) {
            // A property, or an option of the table (warned about, if at
            // all, when it was read).
            continue;
        }
        let here = ctx.place(setting.file, section, option);
        let message = if section == "DEFAULT" && OSLO_LOG_OPTIONS.contains(&option.as_str()) {
            format!("{here} (oslo.log) is not supported; ignored")
        } else if (section == "kafka" || is_topic(section)) && option == "database_batch_size" {
            format!(
                "{here} is not used by this version (batch_size in [kafka_metrics] and [kafka_alarm_history] sets the batch); ignored"
            )
        } else if !referenced.contains(&key) {
            format!("{here}: unknown option, ignored")
        } else {
            continue;
        };
        warnings.push(section, option, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_ok(text: &str) -> Loaded {
        match load_str("test.conf", text) {
            Ok(l) => l,
            Err(e) => panic!("{text:?} did not load: {e}"),
        }
    }

    fn load_err(text: &str) -> String {
        match load_str("test.conf", text) {
            Ok(l) => panic!("{text:?} loaded: {:?}", l.config),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn nothing_set_gives_the_reference_defaults() {
        let l = load_ok("");
        let expected = Config {
            sources: vec![PathBuf::from("test.conf")],
            ..Config::default()
        };
        assert_eq!(l.config, expected);
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn kafka_section_supplies_topic_defaults() {
        let l = load_ok(
            "[kafka]\nnum_processors = 3\nclient_id = k\nmax_wait_time_seconds = 5\n\
             [kafka_alarm_history]\nnum_processors = 1\n",
        );
        let c = &l.config;
        assert_eq!(c.kafka_metrics.num_processors, 3);
        assert_eq!(c.kafka_events.num_processors, 3);
        assert_eq!(c.kafka_alarm_history.num_processors, 1);
        assert_eq!(c.kafka_metrics.client_id, "k");
        assert_eq!(c.kafka_alarm_history.max_wait_time_seconds, 5);
        // not a [kafka] option: stays at each section's own default
        assert_eq!(c.kafka_alarm_history.batch_size, 1);
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn an_inherited_bad_value_names_kafka() {
        let e = load_err("[kafka]\nfetch_size_bytes = lots\n");
        assert_eq!(
            e,
            "test.conf: [kafka] fetch_size_bytes = \"lots\": not a whole number (must be between 1 and 2147483647)"
        );
    }

    #[test]
    fn a_bad_kafka_value_is_refused_even_when_overridden_everywhere() {
        let e = load_err(
            "[kafka]\nnum_processors = 0\n[kafka_metrics]\nnum_processors = 1\n\
             [kafka_alarm_history]\nnum_processors = 1\n[kafka_events]\nnum_processors = 1\n",
        );
        assert!(
            e.starts_with("test.conf: [kafka] num_processors = \"0\""),
            "{e}"
        );
    }

    #[test]
    fn substitution_uses_defaults_and_other_sections() {
        let l = load_ok(
            "[DEFAULT]\nstate_dir = /srv/persister\n[wal]\npath = $state_dir/wal\n\
             dead_letter_path = ${DEFAULT.state_dir}/dl.jsonl\n\
             [kafka_metrics]\nzookeeper_path = /persister_partitions/$kafka_metrics.topic\n\
             buffer_size = $kafka.fetch_size_bytes\n",
        );
        let c = &l.config;
        assert_eq!(c.wal.path, PathBuf::from("/srv/persister/wal"));
        assert_eq!(
            c.wal.dead_letter_path,
            PathBuf::from("/srv/persister/dl.jsonl")
        );
        assert_eq!(
            c.kafka_metrics.zookeeper_path.as_deref(),
            Some("/persister_partitions/metrics")
        );
        assert_eq!(c.kafka_metrics.buffer_size, Some(4096));
        // state_dir is unknown but used: no warning
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn secrets_are_masked_in_value_errors() {
        let e = load_err("[influxdb]\npassword = pa$word\n");
        assert!(e.contains("[influxdb] password = \"****\""), "{e}");
        assert!(!e.contains("pa$word") && !e.contains("word\""), "{e}");
        let e = load_err("[influxdb]\npassword = hunter2\nport = ${influxdb.password}\n");
        assert!(e.contains("port = \"****\""), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn other_stores_are_start_up_errors() {
        let e = load_err(
            "[repositories]\nmetrics_driver = monasca_persister.repositories.cassandra.metrics_repository:MetricCassandraRepository\n",
        );
        assert!(
            e.starts_with("test.conf: [repositories] metrics_driver = "),
            "{e}"
        );
        assert!(e.contains("cassandra is not supported"), "{e}");
        let e = load_err("[repositories]\nalarm_state_history_driver = x.elasticsearch.y:Z\n");
        assert!(
            e.contains("alarm_state_history_driver") && e.contains("elasticsearch"),
            "{e}"
        );
        let l = load_ok("[repositories]\nevents_driver = a.elasticsearch.b:C\n");
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn an_empty_path_names_the_option() {
        let e = load_err("[wal]\npath =\n");
        assert_eq!(
            e,
            "test.conf: [wal] path = \"\": must not be empty (remove the line to use the default, /var/lib/monasca-persister/wal)"
        );
        let e = load_err("[wal]\ndead_letter_path = \"  \"\n");
        assert!(
            e.starts_with("test.conf: [wal] dead_letter_path = \"  \": must not be empty"),
            "{e}"
        );
        // Optional paths are unset by an empty value, as in oslo.
        let l = load_ok("[DEFAULT]\nlog_file =\n");
        assert_eq!(l.config.default.log_file, None);
    }

    #[test]
    fn a_file_that_never_ends_is_refused_quickly() {
        let started = std::time::Instant::now();
        let e = load(&Sources {
            config_files: vec![PathBuf::from("/dev/zero")],
            config_dir: None,
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("config file /dev/zero is larger than {MAX_CONFIG_FILE_BYTES} bytes: not a configuration file (is the path right?)")
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn an_os_error_is_in_the_message_once_and_not_chained() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(&Sources {
            config_files: vec![dir.path().to_path_buf()],
            config_dir: None,
        })
        .unwrap_err();
        let text = format!(
            "{:#}",
            anyhow::Error::new(e).context("invalid configuration")
        );
        assert_eq!(text.matches("os error").count(), 1, "{text}");
        assert!(text.contains("Is a directory"), "{text}");
    }

    #[test]
    fn retry_bounds_are_checked_together() {
        let e = load_err("[influxdb]\nretry_initial_ms = 50000\n");
        assert!(
            e.starts_with("test.conf: [influxdb] retry_initial_ms = \"50000\""),
            "{e}"
        );
        let e = load_err("[influxdb]\nretry_initial_ms = 500\nretry_max_ms = 100\n");
        assert!(
            e.starts_with("test.conf: [influxdb] retry_max_ms = \"100\""),
            "{e}"
        );
    }

    #[test]
    fn discovery_follows_oslo_order() {
        let home = tempfile::tempdir().unwrap();
        let etc = tempfile::tempdir().unwrap();
        let dirs = [home.path().to_path_buf(), etc.path().to_path_buf()];
        assert!(Sources::discover_in(&dirs).0.is_empty());

        fs::write(etc.path().join("persister.conf"), "").unwrap();
        let (s, w) = Sources::discover_in(&dirs);
        assert_eq!(s.config_files, vec![etc.path().join("persister.conf")]);
        assert!(w[0].contains("deprecated"), "{w:?}");

        fs::write(etc.path().join("monasca-persister.conf"), "").unwrap();
        fs::write(home.path().join("monasca-persister.conf"), "").unwrap();
        fs::write(etc.path().join("monasca.conf"), "").unwrap();
        fs::create_dir(etc.path().join("monasca-persister.conf.d")).unwrap();
        let (s, w) = Sources::discover_in(&dirs);
        assert_eq!(
            s.config_files,
            vec![
                etc.path().join("monasca.conf"),
                home.path().join("monasca-persister.conf")
            ]
        );
        assert_eq!(
            s.config_dir,
            Some(etc.path().join("monasca-persister.conf.d"))
        );
        assert!(w.is_empty());
    }
}
