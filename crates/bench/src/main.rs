//! `tributary-bench`: end-to-end load benchmarks of the real `tributary serve` binary against a
//! no-op axum baseline, measured in one run (docs/benchmarks.md).
//!
//! ```text
//! tributary-bench                      # the full suite: JSON + table + PNG plots in --out
//! tributary-bench --smoke              # a few hundred webhooks; fails unless all delivered once
//! tributary-bench --tls                # also every scenario over HTTPS (self-signed, rcgen)
//! tributary-bench --reference OLD      # also the durable scenarios against another build
//! tributary-bench plot --input results.json --out docs/benchmarks
//! tributary-bench episodes --input DIR/SCENARIO.latency.csv   # when a --latency-dir tail happened
//! tributary-bench noop-server          # the baseline server (started by the suite itself)
//! ```

mod latency_trace;
mod load;
mod log_size;
mod payloads;
mod plot;
mod process;
mod report;
mod sync_floor;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::load::{Endpoint, LoadSpec};
use crate::payloads::{ServiceConfig, Template};
use crate::process::Server;
use crate::report::{Machine, Report, Scenario, ServerStats, Setup, names};
use crate::tls::Tls;

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
    NoopServer {
        /// PEM certificate: serve HTTPS (with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
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
    /// Sum up a `--latency-dir` file: the share of webhooks over a latency, and the largest
    /// episodes of slow webhooks sent close together, each with its time (also in Unix time).
    Episodes {
        /// A `<scenario>.latency.csv`.
        #[arg(long)]
        input: PathBuf,
        /// Slow: answered later than this after the intended send time, ms.
        #[arg(long, default_value_t = 5.0)]
        over_ms: f64,
        /// A slow webhook sent less than this after the previous one joins its episode, ms.
        #[arg(long, default_value_t = 50.0)]
        gap_ms: f64,
        /// How many episodes to print.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Quick check instead of the suite: a few hundred webhooks, one subscriber; exits non-zero
    /// unless every accepted webhook was delivered exactly once.
    #[arg(long)]
    smoke: bool,
    /// Also run every scenario over HTTPS: a self-signed certificate (rcgen, ECDSA P-256) made
    /// at start, `[http.tls]` on the server (the no-op baseline too), rustls in the client.
    /// gRPC stays in clear. Each TLS scenario runs right after its plain twin.
    #[arg(long)]
    tls: bool,
    /// Another `tributary` executable (e.g. built from an earlier commit) to run the durable
    /// and non-durable 1-subscriber scenarios against, each right after the current build's.
    /// At max rate both run twice, in A B B A order, and each keeps its faster run.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Plugin directory of --reference (default: its executable's directory).
    #[arg(long, requires = "reference")]
    reference_plugin_dir: Option<PathBuf>,
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
    /// Webhooks a connection sends before the client closes it and opens a new one (1: a
    /// connection, and with --tls a full handshake, per webhook, like providers that do not
    /// keep connections alive). Default: keep-alive for the whole scenario.
    #[arg(long)]
    requests_per_connection: Option<usize>,
    /// Webhooks per max-rate scenario. Enough for the log's steady mix of writes: the events'
    /// memtable first fills after ~25,000 webhooks, so shorter runs leave its flushes out of
    /// the disk bytes (20,000 measured 2.72 bytes per body byte where 60,000 and 120,000
    /// measured 3.4).
    #[arg(long, default_value_t = 60_000)]
    requests: usize,
    /// Offered rate of the fixed-rate scenarios, webhooks/s.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Length of the fixed-rate scenarios, seconds. At 2,000/s the log's large keyspaces
    /// reach their flush size every ~5 s, and the webhooks around each flush make the p99: in
    /// 10-second runs of one build it moved between 5.5 and 9 ms.
    #[arg(long, default_value_t = 30.0)]
    rate_secs: f64,
    /// Subscriber counts of the fan-out scenarios (1 is the plain durable scenario).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    fanout: Vec<usize>,
    /// Offered rate of the open-loop latency scenarios (no-op and durable, 1 subscriber), for
    /// `--rate-secs`; 0 skips them. Open loop: each webhook is due at a fixed instant and its
    /// latency counts from then, however late the client gets to send it.
    #[arg(long, default_value_t = 5000.0)]
    open_loop_rate: f64,
    /// Length of the soak (durable, 1 subscriber, fixed rate: RSS and p99 over time), seconds;
    /// 0 skips it.
    #[arg(long, default_value_t = 0.0)]
    soak_secs: f64,
    /// Offered rate of the soak, webhooks/s.
    #[arg(long, default_value_t = 2000.0)]
    soak_rate: f64,
    /// Also measure against the log's size: the durable max-rate and fixed-rate scenarios,
    /// catch-up from the earliest event, start-up after kill -9 and disk bytes per event, on
    /// an empty log and on one holding this many webhooks (filled through the service, kept
    /// in --large-log-dir for later runs). 0 skips it.
    #[arg(long, default_value_t = 0)]
    large_log_events: usize,
    /// Where the large log lives (created and filled when it holds fewer webhooks).
    #[arg(long, default_value = "target/bench-large-log")]
    large_log_dir: PathBuf,
    /// `[log] engine` of the current build's embedded log (`fjall` or `redb`); the reference
    /// keeps its default. Unset: the build's default.
    #[arg(long)]
    engine: Option<String>,
    /// Run only the scenarios whose names contain one of these (repeat the flag for more), e.g.
    /// `--only "durable, 1 sub, max rate" --only "fixed rate"`.
    #[arg(long)]
    only: Vec<String>,
    /// Record a `perf record -g` profile of the server during each scenario into this directory
    /// (`<scenario>.perf.data`; needs `perf` on the PATH).
    #[arg(long)]
    perf_dir: Option<PathBuf>,
    /// Write each scenario's HTTP latency per webhook into this directory
    /// (`<scenario>.latency.csv`: request number, intended send time after the start and
    /// latency, µs; the start in Unix time on the first line), to
    /// see when a tail happened and line it up with the server's own logs.
    #[arg(long)]
    latency_dir: Option<PathBuf>,
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
            Some(Command::NoopServer { tls_cert, tls_key }) => {
                noop_server(tls_cert.zip(tls_key)).await.map(|()| true)
            }
            Some(Command::Plot { input, out, font }) => plot_file(&input, &out, font.as_deref()),
            Some(Command::Episodes {
                input,
                over_ms,
                gap_ms,
                top,
            }) => latency_trace::read(&input).map(|(start, samples)| {
                print!(
                    "{}",
                    latency_trace::summary(start, &samples, over_ms, gap_ms, top)
                );
                true
            }),
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

/// The baseline: accepts any `POST /webhooks/{source}`, reads the body, answers 200. Served
/// like the service serves webhooks (a hyper HTTP/1.1 connection per accepted socket,
/// `TCP_NODELAY`, rustls when `tls` is given) with no work behind it.
async fn noop_server(tls: Option<(PathBuf, PathBuf)>) -> anyhow::Result<()> {
    use axum::routing::post;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    async fn accept(_body: axum::body::Bytes) -> impl axum::response::IntoResponse {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"accepted":1}"#,
        )
    }
    let router = axum::Router::new().route("/webhooks/{source}", post(accept));
    let acceptor = tls
        .map(|(cert, key)| tls::acceptor(&cert, &key))
        .transpose()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("noop ready http={}", listener.local_addr()?);
    let http1 = hyper::server::conn::http1::Builder::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let http1 = http1.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => {
                    let _ = http1.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = http1.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            }
        });
    }
}

/// How a scenario reaches its server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// The current build, plain HTTP.
    Plain,
    /// The current build over HTTPS.
    Tls,
    /// The `--reference` build, plain HTTP.
    Reference,
    /// The current build with the raw archive off (`[archive] enabled = false`): what the
    /// archive costs.
    NoArchive,
    /// The current build with every source shadowed (`StartShadow`) by a candidate loaded
    /// from the same libraries: what a shadow rollout costs on the ingest path.
    Shadowed,
}

/// What a scenario runs against.
#[derive(Clone, Copy)]
enum Target {
    Noop { tls: bool },
    Tributary { durable: bool, variant: Variant },
}

/// The load of one scenario.
#[derive(Clone, Copy)]
struct Shape {
    connections: usize,
    requests: usize,
    rate: Option<f64>,
    subscribers: usize,
}

/// Everything the scenarios share.
struct Bench {
    /// Prefix of every run tag (`next_run`): this process's start time.
    run_base: String,
    runs: std::sync::atomic::AtomicUsize,
    binary: PathBuf,
    plugin_dir: PathBuf,
    /// The `--reference` executable and its plugin directory.
    reference: Option<(PathBuf, PathBuf)>,
    /// The reference refused `[http] rate_limit_per_second` (it predates the limiter).
    reference_without_limiter: std::sync::atomic::AtomicBool,
    tls: Option<Tls>,
    templates: Arc<Vec<Template>>,
    server_log: String,
    drain: Duration,
    requests_per_connection: Option<usize>,
    /// `--engine`: the current build's embedded engine.
    engine: Option<String>,
    /// `--only`: substrings of the scenario names to run (empty: all).
    only: Vec<String>,
    perf_dir: Option<PathBuf>,
    latency_dir: Option<PathBuf>,
}

fn plugin_dir_of(binary: &Path, explicit: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(dir) => Ok(dir.clone()),
        None => binary
            .parent()
            .map(Path::to_path_buf)
            .context("the tributary executable has no directory"),
    }
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
        let plugin_dir = plugin_dir_of(&binary, args.plugin_dir.as_ref())?;
        let reference = match &args.reference {
            Some(path) => {
                anyhow::ensure!(path.exists(), "no reference at {}", path.display());
                let plugins = plugin_dir_of(path, args.reference_plugin_dir.as_ref())?;
                Some((path.clone(), plugins))
            }
            None => None,
        };
        let tls = if args.tls {
            Some(Tls::generate()?)
        } else {
            None
        };
        let run_base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            .to_string();
        Ok(Self {
            run_base,
            runs: std::sync::atomic::AtomicUsize::new(0),
            binary,
            plugin_dir,
            reference,
            reference_without_limiter: std::sync::atomic::AtomicBool::new(false),
            tls,
            templates: Arc::new(payloads::templates(&args.repo)?),
            server_log: args.server_log.clone(),
            drain: Duration::from_secs_f64(args.drain_secs.max(0.1)),
            requests_per_connection: args.requests_per_connection.filter(|&n| n > 0),
            engine: args.engine.clone(),
            only: args.only.clone(),
            perf_dir: args.perf_dir.clone(),
            latency_dir: args.latency_dir.clone(),
        })
    }

    /// The variants the suite runs for a 1-subscriber scenario, plain first.
    fn variants(&self) -> Vec<Variant> {
        let mut variants = vec![Variant::Plain, Variant::NoArchive];
        if self.reference.is_some() {
            variants.push(Variant::Reference);
        }
        if self.tls.is_some() {
            variants.push(Variant::Tls);
        }
        variants
    }

    fn tls_files(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        let tls = self.tls.as_ref().context("TLS scenarios need --tls")?;
        Ok((tls.cert_file.clone(), tls.key_file.clone()))
    }

    /// Starts the server of `target` on `data_dir` (kept), or a fresh one.
    async fn start_on(&self, target: Target, data_dir: Option<&Path>) -> anyhow::Result<Server> {
        let data_dir = data_dir.map(Path::to_path_buf);
        let (durable, variant) = match target {
            Target::Noop { tls } => {
                let files = if tls { Some(self.tls_files()?) } else { None };
                return tokio::task::spawn_blocking(move || {
                    Server::noop(files.as_ref().map(|(c, k)| (c.as_path(), k.as_path())))
                })
                .await?;
            }
            Target::Tributary { durable, variant } => (durable, variant),
        };
        let files = if variant == Variant::Tls {
            Some(self.tls_files()?)
        } else {
            None
        };
        let (binary, plugins) = match (variant, &self.reference) {
            (Variant::Reference, Some((binary, plugins))) => (binary.clone(), plugins.clone()),
            (Variant::Reference, None) => anyhow::bail!("no --reference given"),
            _ => (self.binary.clone(), self.plugin_dir.clone()),
        };
        let log = self.server_log.clone();
        let without_limiter =
            variant == Variant::Reference && self.reference_without_limiter.load(Ordering::Relaxed);
        let engine = match variant {
            Variant::Reference => None,
            _ => self.engine.clone(),
        };
        let config = move |rate_limit_off: bool| {
            payloads::service_config(&ServiceConfig {
                durable,
                engine: engine.as_deref(),
                legacy_secrets: variant == Variant::Reference,
                lift_address_caps: variant != Variant::Reference,
                tls: files.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
                rate_limit_off,
                archive_off: variant == Variant::NoArchive,
            })
        };
        let first = config(!without_limiter);
        let (b, p, l, d) = (
            binary.clone(),
            plugins.clone(),
            log.clone(),
            data_dir.clone(),
        );
        let started = tokio::task::spawn_blocking(move || {
            Server::tributary(&b, &p, &first, &l, d.as_deref())
        })
        .await?;
        if variant == Variant::Shadowed {
            let server = started?;
            let grpc = server.grpc.context("the server has no gRPC listener")?;
            shadow_every_source(grpc).await?;
            return Ok(server);
        }
        match started {
            Err(error)
                if variant == Variant::Reference
                    && !without_limiter
                    && format!("{error:#}").contains("rate_limit_per_second") =>
            {
                // An older build without the per-source limit: nothing to switch off.
                eprintln!("  the reference has no rate limiter; starting it without the key");
                self.reference_without_limiter
                    .store(true, Ordering::Relaxed);
                let second = config(false);
                tokio::task::spawn_blocking(move || {
                    Server::tributary(&binary, &plugins, &second, &log, data_dir.as_deref())
                })
                .await?
            }
            other => other,
        }
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
    ) -> anyhow::Result<Option<Scenario>> {
        let shape = Shape {
            connections,
            requests,
            rate,
            subscribers,
        };
        self.scenario_on(None, name, target, shape).await
    }

    /// The load of one run, with a run tag of its own.
    fn load_spec(
        &self,
        connections: usize,
        requests: usize,
        rate: Option<f64>,
        subscribers: usize,
        from_latest: bool,
    ) -> LoadSpec {
        LoadSpec {
            connections,
            requests,
            rate,
            subscribers,
            drain_timeout: self.drain,
            requests_per_connection: self.requests_per_connection,
            run: self.next_run(),
            from_latest,
        }
    }

    /// The payload templates, shared by the loads.
    fn templates(&self) -> Arc<Vec<Template>> {
        Arc::clone(&self.templates)
    }

    /// Whether `--only` lets the scenario named `name` run.
    fn selected(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|part| name.contains(part.as_str()))
    }

    /// A tag for the next load's provider event ids, unique in this process and across
    /// processes that share a log.
    fn next_run(&self) -> String {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n}", self.run_base)
    }

    /// [`Bench::scenario`] on the log in `data_dir` (kept; subscribers start from the latest
    /// event) or, with `None`, on a fresh one.
    async fn scenario_on(
        &self,
        data_dir: Option<&Path>,
        name: String,
        target: Target,
        shape: Shape,
    ) -> anyhow::Result<Option<Scenario>> {
        let Shape {
            connections,
            requests,
            rate,
            subscribers,
        } = shape;
        if !self.selected(&name) {
            return Ok(None);
        }
        eprintln!("running: {name} ({requests} webhooks, {connections} connections)");
        let server = self.start_on(target, data_dir).await?;
        let pid = server.pid();
        // Let start-up settle before reading the idle footprint.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let profile = match &self.perf_dir {
            Some(dir) => Some(process::Profile::start(pid, dir, &name)?),
            None => None,
        };
        let idle_rss_kib = process::status_kib(pid, "VmRSS").unwrap_or(0);
        let ticks = process::clock_ticks();
        let cpu_before = process::cpu_seconds(pid, ticks).unwrap_or(0.0);
        let threads_before = process::thread_use(pid);
        let written_before = process::io_write_bytes(pid).unwrap_or(0);
        let generator = std::process::id();
        let generator_before = process::cpu_seconds(generator, ticks).unwrap_or(0.0);
        let sampler = process::RssSampler::start(pid, Duration::from_millis(500));
        let started = Instant::now();
        let spec = self.load_spec(connections, requests, rate, subscribers, data_dir.is_some());
        let tls = match target {
            Target::Noop { tls } => tls,
            Target::Tributary { variant, .. } => variant == Variant::Tls,
        };
        let endpoint = Endpoint {
            address: server.http,
            tls: if tls {
                self.tls.as_ref().map(|t| t.connector.clone())
            } else {
                None
            },
        };
        let load = load::run(endpoint, server.grpc, self.templates(), &spec).await;
        let wall_s = started.elapsed().as_secs_f64();
        if let Some(profile) = profile {
            profile.finish()?;
        }
        let cpu_after = process::cpu_seconds(pid, ticks).unwrap_or(0.0);
        let generator_after = process::cpu_seconds(generator, ticks).unwrap_or(0.0);
        let disk_write_bytes = process::io_write_bytes(pid)
            .unwrap_or(0)
            .saturating_sub(written_before);
        let threads = process::thread_use(pid)
            .into_iter()
            .map(|(name, after)| {
                let before = threads_before.get(&name).copied().unwrap_or_default();
                (name, after.since(before))
            })
            .collect();
        let rss_kib = sampler.finish().await;
        let peak_rss_kib = process::status_kib(pid, "VmHWM").unwrap_or(0);
        let load = load.with_context(|| {
            let log = std::fs::read_to_string(&server.stderr).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            format!("{name} failed; server log tail:\n{}", tail.join("\n"))
        })?;
        drop(server);
        if let Some(dir) = &self.latency_dir {
            let stem = process::file_stem(&name);
            latency_trace::write(dir, &stem, load.start_unix_us, &load.requests)?;
        }
        let stats = ServerStats {
            cpu_s: cpu_after - cpu_before,
            threads,
            ticks,
            wall_s,
            idle_rss_kib,
            peak_rss_kib,
            rss_kib,
            disk_write_bytes,
            load_generator_cpu_s: generator_after - generator_before,
        };
        let (server, durable) = match target {
            Target::Noop { .. } => ("noop", None),
            Target::Tributary {
                durable,
                variant: Variant::Reference,
            } => ("reference", Some(durable)),
            Target::Tributary { durable, .. } => ("tributary", Some(durable)),
        };
        let setup = Setup {
            name,
            server,
            durable,
            tls,
            connections,
            subscribers,
            rate,
        };
        let scenario = Scenario::new(setup, &load, &stats);
        if let Some(error) = &scenario.first_error {
            eprintln!("  {} errors, first: {error}", scenario.errors);
        }
        Ok(Some(scenario))
    }
}

/// Starts a shadow on every source of the server at `grpc`, each candidate being the version of
/// its adapter that serves it (the same library, loaded again as a candidate): the comparison
/// runs in full on every webhook, and finds no difference.
async fn shadow_every_source(grpc: std::net::SocketAddr) -> anyhow::Result<()> {
    use tributary_model::grpc::adapters_client::AdaptersClient;
    use tributary_model::v1::{ListAdaptersRequest, StartShadowRequest};
    let mut client = AdaptersClient::connect(format!("http://{grpc}"))
        .await
        .context("cannot connect to the Adapters service")?;
    let list = client
        .list_adapters(ListAdaptersRequest {})
        .await
        .context("ListAdapters")?
        .into_inner();
    for source in &list.sources {
        let version = list
            .adapters
            .iter()
            .filter_map(|a| a.info.as_ref())
            .find(|info| info.name == source.adapter)
            .map(|info| info.version.clone())
            .context("a source without a loaded adapter")?;
        client
            .start_shadow(StartShadowRequest {
                source: source.name.clone(),
                candidate: version,
            })
            .await
            .with_context(|| format!("cannot shadow source {}", source.name))?;
    }
    eprintln!("  shadowing {} sources", list.sources.len());
    Ok(())
}

/// Puts `again` in place of the run of the same name in `runs` when it reached a higher
/// rate.
fn keep_the_faster(runs: &mut [Option<Scenario>], again: Option<Scenario>) {
    let Some(again) = again else { return };
    let earlier = runs.iter_mut().flatten().find(|run| run.name == again.name);
    match earlier {
        Some(earlier) if earlier.accepted_per_s < again.accepted_per_s => *earlier = again,
        _ => {}
    }
}

/// A scenario's name for `variant` of the scenario named `base`.
fn variant_name(base: &str, variant: Variant) -> String {
    match variant {
        Variant::Plain => base.to_owned(),
        Variant::Tls => names::tls(base),
        Variant::Reference => names::reference(base),
        Variant::NoArchive => names::no_archive(base),
        Variant::Shadowed => names::shadowed(base),
    }
}

/// The quick check run by the test suite (over HTTPS too with `--tls`).
async fn smoke(args: &RunArgs) -> anyhow::Result<bool> {
    let bench = Bench::new(args)?;
    let kinds: Vec<&str> = bench.templates.iter().map(|t| t.kind).collect();
    eprintln!("payloads: {}", kinds.join(", "));
    let requests = 300;
    let mut ok = true;
    let mut variants = vec![Variant::Plain];
    if bench.tls.is_some() {
        variants.push(Variant::Tls);
    }
    for variant in variants {
        let label = match variant {
            Variant::Tls => "smoke (TLS)",
            _ => "smoke",
        };
        let scenario = bench
            .scenario(
                format!("{label}: durable, 1 sub, max rate"),
                Target::Tributary {
                    durable: true,
                    variant,
                },
                4,
                requests,
                None,
                1,
            )
            .await?
            .context("--only filtered out the smoke scenario")?;
        let d = &scenario.delivery;
        println!(
            "{label}: sent {}, accepted {}, errors {}, delivered {}, missing {}, duplicates {}, \
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
        let passed = scenario.errors == 0
            && scenario.accepted == requests
            && scenario.delivered_exactly_once;
        if !passed {
            if let Some(error) = &scenario.first_error {
                eprintln!("first error: {error}");
            }
            eprintln!("{label} FAILED: not every accepted webhook was delivered exactly once");
        }
        ok &= passed;
    }
    Ok(ok)
}

/// The full suite: baseline, durable and non-durable, fan-out, fixed rate, optional soak.
/// Variants of a scenario (TLS, reference build) run right after it, so that what is compared
/// sees the same machine conditions.
async fn suite(args: &RunArgs) -> anyhow::Result<bool> {
    let bench = Bench::new(args)?;
    let c = args.connections;
    let n = args.requests;
    let fixed = (args.rate * args.rate_secs).round() as usize;
    let tls = bench.tls.is_some();
    let mut scenarios = Vec::new();
    // Baselines and service back to back, so they see the same machine conditions.
    let noops = |base: &str| {
        let mut noops = vec![(base.to_owned(), Target::Noop { tls: false })];
        if tls {
            noops.push((names::tls(base), Target::Noop { tls: true }));
        }
        noops
    };
    for (name, target) in noops(names::NOOP_MAX) {
        scenarios.extend(bench.scenario(name, target, c, n, None, 0).await?);
    }
    for (base, durable) in [(names::DURABLE_MAX, true), (names::VOLATILE_MAX, false)] {
        let mut runs = Vec::new();
        for variant in bench.variants() {
            let target = Target::Tributary { durable, variant };
            let name = variant_name(base, variant);
            runs.push(bench.scenario(name, target, c, n, None, 1).await?);
        }
        if bench.reference.is_some() {
            // This build and the reference again, in reverse order (A B B A): whichever runs
            // first after a fresh start is slower here, so each keeps the better of its two
            // runs.
            for variant in [Variant::Reference, Variant::Plain] {
                let target = Target::Tributary { durable, variant };
                let name = variant_name(base, variant);
                let again = bench.scenario(name, target, c, n, None, 1).await?;
                keep_the_faster(&mut runs, again);
            }
        }
        scenarios.extend(runs.into_iter().flatten());
    }
    for &subscribers in args.fanout.iter().filter(|&&s| s > 1) {
        scenarios.extend(
            bench
                .scenario(
                    names::fanout(subscribers),
                    Target::Tributary {
                        durable: true,
                        variant: Variant::Plain,
                    },
                    c,
                    n,
                    None,
                    subscribers,
                )
                .await?,
        );
    }
    let mut sync_floor = None;
    if fixed > 0 {
        // What the disk alone costs per durable acknowledgement, beside the fixed-rate
        // scenarios whose CPU and switches per webhook it bounds from below.
        let temp = std::env::temp_dir();
        sync_floor = Some(
            tokio::task::spawn_blocking(move || sync_floor::measure(&temp))
                .await
                .context("sync probe")??,
        );
        let rate = Some(args.rate);
        for (name, target) in noops(names::NOOP_FIXED) {
            scenarios.extend(bench.scenario(name, target, c, fixed, rate, 0).await?);
        }
        for (base, durable) in [(names::DURABLE_FIXED, true), (names::VOLATILE_FIXED, false)] {
            let mut variants = bench.variants();
            if durable {
                // Right after the plain run, so the two see the same machine conditions.
                variants.insert(1, Variant::Shadowed);
            }
            for variant in variants {
                let target = Target::Tributary { durable, variant };
                let name = variant_name(base, variant);
                scenarios.extend(bench.scenario(name, target, c, fixed, rate, 1).await?);
            }
        }
    }
    let open_loop = (args.open_loop_rate * args.rate_secs).round() as usize;
    if open_loop > 0 {
        let rate = Some(args.open_loop_rate);
        for (name, target) in noops(names::NOOP_OPEN_LOOP) {
            scenarios.extend(bench.scenario(name, target, c, open_loop, rate, 0).await?);
        }
        let target = Target::Tributary {
            durable: true,
            variant: Variant::Plain,
        };
        let name = names::DURABLE_OPEN_LOOP.to_owned();
        scenarios.extend(bench.scenario(name, target, c, open_loop, rate, 1).await?);
    }
    let soak = (args.soak_rate * args.soak_secs).round() as usize;
    if soak > 0 {
        scenarios.extend(
            bench
                .scenario(
                    names::SOAK.into(),
                    Target::Tributary {
                        durable: true,
                        variant: Variant::Plain,
                    },
                    c,
                    soak,
                    Some(args.soak_rate),
                    1,
                )
                .await?,
        );
    }
    let log_size = if args.large_log_events > 0 {
        let max = Shape {
            connections: c,
            requests: n,
            rate: None,
            subscribers: 1,
        };
        let fixed = Shape {
            requests: fixed.max(1),
            rate: Some(args.rate),
            ..max
        };
        log_size::measure(
            &bench,
            &args.large_log_dir,
            args.large_log_events,
            max,
            fixed,
        )
        .await?
    } else {
        Vec::new()
    };
    let fanout_max = args.fanout.iter().copied().max().unwrap_or(1);
    let mut targets = report::targets(&scenarios, fanout_max, sync_floor.as_ref());
    targets.extend(report::log_size_targets(&log_size));
    let report = Report {
        machine: Machine::detect(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        targets,
        comparisons: report::comparisons(&scenarios),
        scenarios,
        log_size,
        sync_floor,
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
