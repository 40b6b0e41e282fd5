//! The subcommands, one module each: its arguments and a `run` returning the exit code.

pub mod export;
pub mod features;
pub mod generate;
pub mod healthcheck;
pub mod import;
pub mod models;
pub mod monitor;
pub mod predict;
pub mod schema;
pub mod serve;
pub mod train;
pub mod validate;

use std::path::PathBuf;

use categorizer::config::Settings;

/// What every subcommand gets besides its own arguments.
pub struct Context {
    /// The settings (built-in defaults, the settings file, the environment).
    pub settings: Settings,
    /// The classifier settings file given with --model-config.
    pub model_config: Option<PathBuf>,
}
