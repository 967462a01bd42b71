//! `tributary adapter ...`: tools for adapter authors.
//!
//! - `new`: scaffold an adapter crate on the SDK ([`super::scaffold`]);
//! - `test`: run a fixtures directory through a built library, loaded as the server loads it;
//! - `try`: dry-run a payload through a running server's adapter ([`super::dry_run`]);
//! - `shadow`: run a candidate beside a source's active adapter ([`super::shadow`]).

use std::path::PathBuf;

use anyhow::Context;
use tributary_plugin_host::{Plugin, fixtures};

use super::dry_run::TryArgs;
use super::scaffold::NewArgs;

/// `tributary adapter` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdapterCommand {
    /// Create a new adapter crate (plugins/<name> by default) that builds and passes its fixtures.
    New(NewArgs),
    /// Run golden fixtures through a built plugin library; non-zero exit on any mismatch.
    Test(TestArgs),
    /// Send a payload through a running server's adapter (the Normalize RPC); stores nothing.
    Try(TryArgs),
    /// Run a candidate adapter beside a source's active one on live traffic, compare, then
    /// promote or abort it.
    #[command(subcommand)]
    Shadow(super::shadow::ShadowCommand),
}

/// Options of `tributary adapter test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The built plugin library (target/debug/libtributary_adapter_<name>.so).
    pub library: PathBuf,
    /// The fixtures directory: <case>.raw.json + <case>.expected.json (+ optional
    /// <case>.request.json, <case>.config.json, adapter-config.json).
    pub fixtures: PathBuf,
    /// Rewrite the expectations with the adapter's current output (review the diff first).
    #[arg(long)]
    pub update: bool,
}

/// Runs an adapter subcommand.
pub fn run(command: AdapterCommand) -> anyhow::Result<()> {
    match command {
        AdapterCommand::New(args) => super::scaffold::run(&args),
        AdapterCommand::Test(args) => test(&args),
        AdapterCommand::Try(args) => super::dry_run::run(&args),
        AdapterCommand::Shadow(command) => super::shadow::run(command),
    }
}

fn test(args: &TestArgs) -> anyhow::Result<()> {
    let plugin = Plugin::load(&args.library)?;
    let info = plugin.info();
    println!(
        "{} {} (ABI {}, {})",
        info.name,
        info.version,
        plugin.abi_version(),
        args.library.display()
    );
    let report = fixtures::run_dir(&plugin, &args.fixtures, args.update)
        .with_context(|| format!("cannot run fixtures in {}", args.fixtures.display()))?;
    println!("{report}");
    if !report.passed() {
        eprintln!(
            "fixtures failed (after reviewing the diff, `--update` rewrites the expectations)"
        );
        // The report is the command's answer; the exit status says whether it passed.
        #[allow(clippy::exit)]
        std::process::exit(1);
    }
    Ok(())
}
