//! `spindle config defaults` (the annotated `spindle.yaml` of every default, a starting point
//! for a real one) and `spindle config show` (what this command would run with: the file, then
//! the environment's overrides, as YAML).

use std::process::ExitCode;

use crate::config::{self, SpindleConfig};

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print every key of spindle.yaml with its default and a comment saying what it is.
    Defaults,
    /// Print the settings in effect: the config file, then SPINDLE_* overrides.
    Show,
}

/// `defaults` reads no file, so that it works even when the file in place is broken.
pub fn print_defaults() -> anyhow::Result<ExitCode> {
    print!("{}", config::annotated(&SpindleConfig::default()));
    Ok(ExitCode::SUCCESS)
}

pub fn print_effective(config: &SpindleConfig) -> anyhow::Result<ExitCode> {
    print!("{}", serde_yaml::to_string(config)?);
    Ok(ExitCode::SUCCESS)
}
