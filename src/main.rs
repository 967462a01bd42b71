//! The `tributary` command: runs the service.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tributary::config::{Config, Overrides};

/// Per-webhook work allocates on the ingest workers and frees on the log's writer thread;
/// mimalloc handles that cross-thread pattern with far less time in the allocator than glibc's
/// arenas (docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tributary",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TRIBUTARY_COMMIT"), ")"),
    about = "Webhooks in, one canonical event stream out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: webhook HTTP front end, gRPC event stream, embedded log.
    Serve {
        /// TOML configuration file.
        #[arg(long, short, env = "TRIBUTARY_CONFIG")]
        config: Option<PathBuf>,
        /// Log format on stderr.
        #[arg(long, env = "TRIBUTARY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Tools for adapter authors: scaffold, fixture runner, dry run.
    #[command(subcommand)]
    Adapter(tributary::cli::adapter::AdapterCommand),
    /// List and redrive dead letters on a running server.
    #[command(subcommand)]
    DeadLetters(tributary::cli::admin::DeadLettersCommand),
    /// List, reset and delete durable consumers on a running server.
    #[command(subcommand)]
    Consumers(tributary::cli::admin::ConsumersCommand),
    /// Follow the event stream of a running server, or print one event.
    #[command(subcommand)]
    Events(tributary::cli::events::EventsCommand),
    /// Print a shell completion script (e.g. `tributary completions bash > /etc/bash_completion.d/tributary`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Show the raw webhooks kept in the encrypted archive of a running server.
    #[command(subcommand)]
    Raw(tributary::cli::archive::RawCommand),
    /// Run archived webhooks again through the adapter now loaded (after a fix).
    Replay(tributary::cli::archive::ReplayArgs),
    /// Maintain the encrypted raw archive of a running server (re-seal it after a key rotation).
    #[command(subcommand)]
    Archive(tributary::cli::archive::ArchiveCommand),
    /// Read the audit log of a running server (admin actions, console logins).
    #[command(subcommand)]
    Audit(tributary::cli::audit::AuditCommand),
    /// Show the last webhooks a running server rejected, and why (signatures, tokens).
    #[command(subcommand)]
    Rejections(tributary::cli::rejections::RejectionsCommand),
}

/// How log lines on stderr are written.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for collectors.
    Json,
}

/// Runs the command; a failure is printed once by [`tributary::cli::report`] (no backtrace,
/// a hint when one is known) and exits with status 1.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tributary::cli::report::print(&error);
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            config,
            log_format,
            overrides,
        } => {
            init_logging(log_format);
            match &config {
                Some(path) => tracing::info!(config = %path.display(), "reading the config file"),
                None => tracing::info!(
                    "no config file (--config, TRIBUTARY_CONFIG): defaults and flags"
                ),
            }
            let config = Config::load(config.as_deref(), &overrides)?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
            // The gRPC trace exporter's channel lives on the runtime: set up inside it.
            let telemetry = {
                let _entered = runtime.enter();
                tributary::ops::telemetry::init(&config.telemetry)?
            };
            if telemetry.is_exporting() {
                tracing::info!("exporting traces over OTLP");
            }
            if telemetry.is_exporting_metrics() {
                tracing::info!("exporting metrics over OTLP");
            }
            let result = runtime.block_on(tributary::server::serve(config));
            telemetry.shutdown();
            result
        }
        Command::Adapter(command) => tributary::cli::adapter::run(command),
        Command::DeadLetters(command) => {
            client_runtime()?.block_on(tributary::cli::admin::dead_letters(command))
        }
        Command::Consumers(command) => {
            client_runtime()?.block_on(tributary::cli::admin::consumers(command))
        }
        Command::Events(command) => {
            client_runtime()?.block_on(tributary::cli::events::run(command))
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tributary",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Raw(command) => client_runtime()?.block_on(tributary::cli::archive::raw(command)),
        Command::Replay(args) => client_runtime()?.block_on(tributary::cli::archive::replay(args)),
        Command::Archive(command) => {
            client_runtime()?.block_on(tributary::cli::archive::archive(command))
        }
        Command::Audit(command) => client_runtime()?.block_on(tributary::cli::audit::run(command)),
        Command::Rejections(command) => {
            client_runtime()?.block_on(tributary::cli::rejections::run(command))
        }
    }
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

fn init_logging(format: LogFormat) {
    // The storage engine's own progress lines (flushes, compactions, recovery) are debug
    // detail; its warnings and errors still show.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    // Colours only on a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr on a full disk) is lost, not reported with
        // `eprintln!`, which panics when stderr fails and would take the request down with it.
        .log_internal_errors(false);
    if format == LogFormat::Json {
        // Lines written while a span is active carry its trace_id and span_id.
        let json = tracing_subscriber::fmt::format().json();
        builder
            .event_format(tributary::ops::log_format::TraceIds(json))
            .init();
    } else {
        builder.init();
    }
}
