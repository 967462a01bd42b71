//! `tributary adapter ...`: tools for adapter authors.

/// `tributary adapter` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdapterCommand {}

/// Runs an adapter subcommand.
pub fn run(command: AdapterCommand) -> anyhow::Result<()> {
    match command {}
}
