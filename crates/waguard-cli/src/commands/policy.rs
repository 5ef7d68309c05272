//! `waguard policy`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use waguard::Policy;

/// Output format.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum Format {
    /// TOML, for a policy file.
    #[default]
    Toml,
    /// JSON.
    Json,
}

/// Flags of `waguard policy`.
#[derive(Args, Debug)]
pub struct PolicyCmdArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Toml)]
    format: Format,
}

/// Prints the default policy.
pub fn run(args: PolicyCmdArgs) -> Result<ExitCode> {
    let policy = Policy::default();
    let text = match args.format {
        Format::Toml => toml::to_string_pretty(&policy).context("cannot write TOML")?,
        Format::Json => serde_json::to_string_pretty(&policy)? + "\n",
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
