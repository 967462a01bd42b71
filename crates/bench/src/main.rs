//! `tributary-bench`: end-to-end load benchmarks of the real `tributary serve` binary against a
//! no-op axum baseline, measured in one run (docs/benchmarks.md).
//!
//! ```text
//! tributary-bench                      # the full suite: JSON + table + PNG plots in --out
//! tributary-bench --smoke              # a few hundred webhooks; fails unless all delivered once
//! tributary-bench plot --input results.json --out docs/benchmarks
//! tributary-bench noop-server          # the baseline server (started by the suite itself)
//! ```

mod load;
mod payloads;
mod plot;
mod process;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::load::LoadSpec;
use crate::payloads::Template;
use crate::process::Server;
use crate::report::{Machine, Report, Scenario, ServerStats, Setup, names};

#[derive(Parser)]
#[command(
    name = "tributary-bench",
    about = "Load benchmarks of tributary against a no-op baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a no-op webhook endpoint (200, no work): the baseline. Prints
    /// "noop ready http=ADDR".
    NoopServer,
    /// Draw the PNG plots of a results file.
    Plot {
        /// A results JSON written by a run.
        #[arg(long)]
        input: PathBuf,
        /// Directory for the PNG files.
        #[arg(long)]
        out: PathBuf,
        /// A TrueType font for labels (default: DejaVu Sans or Liberation Sans from the system).
        #[arg(long)]
        font: Option<PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Quick check instead of the suite: a few hundred webhooks, one subscriber; exits non-zero
    /// unless every accepted webhook was delivered exactly once.
    #[arg(long)]
    smoke: bool,
    /// The `tributary` executable (default: next to this one).
    #[arg(long)]
    tributary: Option<PathBuf>,
    /// Plugin directory for the server (default: the tributary executable's directory).
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// Repository root, for the plugins' fixture payloads.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))]
    repo: PathBuf,
    /// Concurrent HTTP connections (a provider's retries and bursts arrive on many; group
    /// commit batches what is in flight, so few connections cap durable throughput).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Webhooks per max-rate scenario.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Offered rate of the fixed-rate scenarios, webhooks/s.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Length of the fixed-rate scenarios, seconds.
    #[arg(long, default_value_t = 10.0)]
    rate_secs: f64,
    /// Subscriber counts of the fan-out scenarios (1 is the plain durable scenario).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    fanout: Vec<usize>,
    /// Length of the RSS soak (durable, fixed rate), seconds; 0 skips it.
    #[arg(long, default_value_t = 0.0)]
    soak_secs: f64,
    /// Offered rate of the soak, webhooks/s.
    #[arg(long, default_value_t = 1000.0)]
    soak_rate: f64,
    /// How long subscribers wait for missing events after the last response, seconds.
    #[arg(long, default_value_t = 15.0)]
    drain_secs: f64,
    /// The server's RUST_LOG (the service logs each webhook at debug).
    #[arg(long, default_value = "info")]
    server_log: String,
    /// Directory for results.json and the plots (default: print only).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A TrueType font for the plots' labels.
    #[arg(long)]
    font: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::NoopServer) => noop_server().await.map(|()| true),
            Some(Command::Plot { input, out, font }) => plot_file(&input, &out, font.as_deref()),
            None if cli.run.smoke => smoke(&cli.run).await,
            None => suite(&cli.run).await,
        }
    });
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The baseline: accepts any `POST /webhooks/{source}`, reads the body, answers 200.
async fn noop_server() -> anyhow::Result<()> {
    use axum::routing::post;
    async fn accept(_body: axum::body::Bytes) -> impl axum::response::IntoResponse {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"accepted":1}"#,
        )
    }
    let router = axum::Router::new().route("/webhooks/{source}", post(accept));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("noop ready http={}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}

/// What a scenario runs against.
#[derive(Clone, Copy)]
enum Target {
    Noop,
    Tributary { durable: bool },
}

/// Everything the scenarios share.
struct Bench {
    binary: PathBuf,
    plugin_dir: PathBuf,
    templates: Arc<Vec<Template>>,
    server_log: String,
    drain: Duration,
}

impl Bench {
    fn new(args: &RunArgs) -> anyhow::Result<Self> {
        let binary = match &args.tributary {
            Some(path) => path.clone(),
            None => std::env::current_exe()
                .context("cannot locate tributary-bench")?
                .with_file_name("tributary"),
        };
        anyhow::ensure!(
            binary.exists(),
            "no tributary executable at {} (build the workspace, or pass --tributary)",
            binary.display()
        );
        let plugin_dir = match &args.plugin_dir {
            Some(dir) => dir.clone(),
            None => binary
                .parent()
                .map(Path::to_path_buf)
                .context("the tributary executable has no directory")?,
        };
        Ok(Self {
            binary,
            plugin_dir,
            templates: Arc::new(payloads::templates(&args.repo)?),
            server_log: args.server_log.clone(),
            drain: Duration::from_secs_f64(args.drain_secs.max(0.1)),
        })
    }

    /// Starts a fresh server, applies the load, and measures the server.
    async fn scenario(
        &self,
        name: String,
        target: Target,
        connections: usize,
        requests: usize,
        rate: Option<f64>,
        subscribers: usize,
    ) -> anyhow::Result<Scenario> {
        eprintln!("running: {name} ({requests} webhooks, {connections} connections)");
        let server = match target {
            Target::Noop => tokio::task::spawn_blocking(Server::noop).await??,
            Target::Tributary { durable } => {
                let binary = self.binary.clone();
                let plugins = self.plugin_dir.clone();
                let log = self.server_log.clone();
                tokio::task::spawn_blocking(move || {
                    Server::tributary(&binary, &plugins, &payloads::service_config(durable), &log)
                })
                .await??
            }
        };
        let pid = server.pid();
        // Let start-up settle before reading the idle footprint.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss_kib = process::status_kib(pid, "VmRSS").unwrap_or(0);
        let ticks = process::clock_ticks();
        let cpu_before = process::cpu_seconds(pid, ticks).unwrap_or(0.0);
        let sampler = process::RssSampler::start(pid, Duration::from_millis(500));
        let started = Instant::now();
        let spec = LoadSpec {
            connections,
            requests,
            rate,
            subscribers,
            drain_timeout: self.drain,
        };
        let load = load::run(server.http, server.grpc, Arc::clone(&self.templates), &spec).await;
        let wall_s = started.elapsed().as_secs_f64();
        let cpu_after = process::cpu_seconds(pid, ticks).unwrap_or(0.0);
        let rss_kib = sampler.finish().await;
        let peak_rss_kib = process::status_kib(pid, "VmHWM").unwrap_or(0);
        let load = load.with_context(|| {
            let log = std::fs::read_to_string(&server.stderr).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            format!("{name} failed; server log tail:\n{}", tail.join("\n"))
        })?;
        drop(server);
        let stats = ServerStats {
            cpu_s: cpu_after - cpu_before,
            wall_s,
            idle_rss_kib,
            peak_rss_kib,
            rss_kib,
        };
        let (server, durable) = match target {
            Target::Noop => ("noop", None),
            Target::Tributary { durable } => ("tributary", Some(durable)),
        };
        let setup = Setup {
            name,
            server,
            durable,
            connections,
            subscribers,
            rate,
        };
        let scenario = Scenario::new(setup, &load, &stats);
        if let Some(error) = &scenario.first_error {
            eprintln!("  {} errors, first: {error}", scenario.errors);
        }
        Ok(scenario)
    }
}

/// The quick check run by the test suite.
async fn smoke(args: &RunArgs) -> anyhow::Result<bool> {
    let bench = Bench::new(args)?;
    let kinds: Vec<&str> = bench.templates.iter().map(|t| t.kind).collect();
    eprintln!("payloads: {}", kinds.join(", "));
    let requests = 300;
    let scenario = bench
        .scenario(
            "smoke: durable, 1 sub, max rate".into(),
            Target::Tributary { durable: true },
            4,
            requests,
            None,
            1,
        )
        .await?;
    let d = &scenario.delivery;
    println!(
        "smoke: sent {}, accepted {}, errors {}, delivered {}, missing {}, duplicates {}, \
         unexpected {}, stream error {:?}; {:.0} webhooks/s, e2e p99 {:.2} ms",
        scenario.sent,
        scenario.accepted,
        scenario.errors,
        d.received,
        d.missing,
        d.duplicates,
        d.unexpected,
        d.error,
        scenario.accepted_per_s,
        scenario.e2e_latency_ms.unwrap_or_default().p99,
    );
    let ok =
        scenario.errors == 0 && scenario.accepted == requests && scenario.delivered_exactly_once;
    if !ok {
        if let Some(error) = &scenario.first_error {
            eprintln!("first error: {error}");
        }
        eprintln!("smoke FAILED: not every accepted webhook was delivered exactly once");
    }
    Ok(ok)
}

/// The full suite: baseline, durable and non-durable, fan-out, fixed rate, optional soak.
async fn suite(args: &RunArgs) -> anyhow::Result<bool> {
    let bench = Bench::new(args)?;
    let c = args.connections;
    let n = args.requests;
    let fixed = (args.rate * args.rate_secs).round() as usize;
    let mut scenarios = Vec::new();
    // Baseline and service back to back, so they see the same machine conditions.
    scenarios.push(
        bench
            .scenario(names::NOOP_MAX.into(), Target::Noop, c, n, None, 0)
            .await?,
    );
    scenarios.push(
        bench
            .scenario(
                names::DURABLE_MAX.into(),
                Target::Tributary { durable: true },
                c,
                n,
                None,
                1,
            )
            .await?,
    );
    scenarios.push(
        bench
            .scenario(
                names::VOLATILE_MAX.into(),
                Target::Tributary { durable: false },
                c,
                n,
                None,
                1,
            )
            .await?,
    );
    for &subscribers in args.fanout.iter().filter(|&&s| s > 1) {
        scenarios.push(
            bench
                .scenario(
                    names::fanout(subscribers),
                    Target::Tributary { durable: true },
                    c,
                    n,
                    None,
                    subscribers,
                )
                .await?,
        );
    }
    if fixed > 0 {
        let rate = Some(args.rate);
        scenarios.push(
            bench
                .scenario(names::NOOP_FIXED.into(), Target::Noop, c, fixed, rate, 0)
                .await?,
        );
        scenarios.push(
            bench
                .scenario(
                    names::DURABLE_FIXED.into(),
                    Target::Tributary { durable: true },
                    c,
                    fixed,
                    rate,
                    1,
                )
                .await?,
        );
        scenarios.push(
            bench
                .scenario(
                    names::VOLATILE_FIXED.into(),
                    Target::Tributary { durable: false },
                    c,
                    fixed,
                    rate,
                    1,
                )
                .await?,
        );
    }
    let soak = (args.soak_rate * args.soak_secs).round() as usize;
    if soak > 0 {
        scenarios.push(
            bench
                .scenario(
                    names::SOAK.into(),
                    Target::Tributary { durable: true },
                    c,
                    soak,
                    Some(args.soak_rate),
                    1,
                )
                .await?,
        );
    }
    let fanout_max = args.fanout.iter().copied().max().unwrap_or(1);
    let report = Report {
        machine: Machine::detect(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        targets: report::targets(&scenarios, fanout_max),
        scenarios,
    };
    print!("{}", report::table(&report));
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let file = out.join("results.json");
        std::fs::write(&file, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", file.display()))?;
        eprintln!("wrote {}", file.display());
        plot::all(&report, out, args.font.as_deref())?;
    }
    Ok(report
        .scenarios
        .iter()
        .all(|s| s.errors == 0 && s.delivered_exactly_once))
}

/// `plot`: redraws the plots of a results file.
fn plot_file(input: &Path, out: &Path, font: Option<&Path>) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let report: Report = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a results file", input.display()))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    plot::all(&report, out, font)?;
    Ok(true)
}
