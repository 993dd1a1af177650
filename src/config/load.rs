//! Reading oslo-style INI files into [`Config`]: placeholder signature, filled
//! by the foundation issue (interpolation, typing, validation, warnings).

use std::path::PathBuf;

use super::Config;

/// Where configuration comes from: `--config-file` (repeatable) and `--config-dir`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Files in command-line order; later ones override earlier ones.
    pub config_files: Vec<PathBuf>,
    /// Directory whose `*.conf` files are read after the files, in sorted order.
    pub config_dir: Option<PathBuf>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Loads and validates the configuration.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let _ = sources;
    Ok(Config::default())
}
