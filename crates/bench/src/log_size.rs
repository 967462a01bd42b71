//! Costs against the log's size: the same measurements on a fresh log and on a large one
//! (millions of events, archive on), so that a cost growing with the log shows as a ratio in
//! one run. The large log is filled through the real service (HTTP, adapters, archive), kept
//! in `--large-log-dir` and reused by later runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tributary_model::grpc::event_stream_client::EventStreamClient;
use tributary_model::v1::SubscribeRequest;
use tributary_model::v1::subscribe_request::Start;

use crate::load::{self, Endpoint};
use crate::{Bench, Shape, Target, Variant};

/// Webhooks per fill step: each step reports its own rate, so a rate falling as the log
/// grows shows in the fill itself.
const FILL_STEP: usize = 500_000;
/// Most events the catch-up reader reads.
const CATCH_UP_MAX: u64 = 1_000_000;
/// Webhooks sent before the kill -9 of the start-up measurement.
const BEFORE_KILL: usize = 20_000;
/// File recording how many webhooks a large-log directory holds.
const FILLED: &str = "bench-filled";

/// One log size's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SizeFigures {
    /// "empty" or "large".
    pub log: String,
    /// Events in the log when the measurements began.
    pub events: u64,
    /// Durable, 1 subscriber, max rate, webhooks/s.
    pub ingest_per_s: f64,
    /// Durable, 1 subscriber, at the fixed rate: e2e p99, ms.
    pub e2e_p99_ms: f64,
    /// Events per second to one subscriber reading from the earliest event.
    pub catch_up_per_s: f64,
    /// Events that reader read.
    pub caught_up: u64,
    /// Seconds from spawning the service after a kill -9 under load to `/readyz` 200.
    pub startup_after_kill_s: f64,
    /// Bytes of the data directory per stored event (archive included).
    pub disk_bytes_per_event: f64,
    /// Fill rate of each fill step, webhooks/s (large log only).
    #[serde(default)]
    pub fill_rates: Vec<f64>,
}

/// Measures an empty log and the large log in `large_dir` (filled to `events` first).
pub async fn measure(
    bench: &Bench,
    large_dir: &Path,
    events: usize,
    shape: Shape,
    fixed: Shape,
) -> anyhow::Result<Vec<SizeFigures>> {
    let empty = tempfile::tempdir().context("cannot create a temp directory")?;
    let mut figures =
        vec![measure_one(bench, "empty", &empty.path().join("data"), 0, shape, fixed).await?];
    let fill_rates = fill(bench, large_dir, events).await?;
    let mut large = measure_one(bench, "large", large_dir, events as u64, shape, fixed).await?;
    large.fill_rates = fill_rates;
    figures.push(large);
    Ok(figures)
}

/// Sends webhooks into the service on `dir` until it holds `events` of this tool's webhooks;
/// returns each step's rate.
async fn fill(bench: &Bench, dir: &Path, events: usize) -> anyhow::Result<Vec<f64>> {
    let marker = dir.join(FILLED);
    let mut filled: usize = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    let mut rates = Vec::new();
    while filled < events {
        let step = FILL_STEP.min(events - filled);
        let server = bench.start_on(durable(), Some(dir)).await?;
        let spec = bench.load_spec(64, step, None, 0, true);
        let endpoint = Endpoint {
            address: server.http,
            tls: None,
        };
        let result = load::run(endpoint, None, bench.templates(), &spec).await?;
        anyhow::ensure!(
            result.errors == 0,
            "filling the large log failed: {}",
            result.first_error.unwrap_or_default()
        );
        let rate = result.accepted as f64 / result.send_secs.max(1e-9);
        filled += result.accepted;
        eprintln!("  large log: {filled} webhooks ({rate:.0}/s in this step)");
        rates.push(rate);
        std::fs::write(&marker, filled.to_string())
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    Ok(rates)
}

fn durable() -> Target {
    Target::Tributary {
        durable: true,
        variant: Variant::Plain,
    }
}

async fn measure_one(
    bench: &Bench,
    log: &str,
    dir: &Path,
    events: u64,
    shape: Shape,
    fixed: Shape,
) -> anyhow::Result<SizeFigures> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = |what: &str| format!("{log} log: {what}");
    let max = bench
        .scenario_on(
            Some(dir),
            name("durable, 1 sub, max rate"),
            durable(),
            shape,
        )
        .await?
        .context("the log-size scenarios need their max-rate scenario (--only)")?;
    let fixed = bench
        .scenario_on(
            Some(dir),
            name("durable, 1 sub, fixed rate"),
            durable(),
            fixed,
        )
        .await?
        .context("the log-size scenarios need their fixed-rate scenario (--only)")?;
    let (caught_up, catch_up_per_s) = catch_up(bench, dir).await?;
    let startup_after_kill_s = startup_after_kill(bench, dir).await?;
    let stored = events + (max.accepted + fixed.accepted + BEFORE_KILL) as u64;
    let bytes = dir_bytes(dir)?;
    let figures = SizeFigures {
        log: log.to_owned(),
        events,
        ingest_per_s: max.accepted_per_s,
        e2e_p99_ms: fixed.e2e_latency_ms.unwrap_or_default().p99,
        catch_up_per_s,
        caught_up,
        startup_after_kill_s,
        // At most BEFORE_KILL webhooks of the killed load were stored: close enough per event.
        disk_bytes_per_event: bytes as f64 / stored.max(1) as f64,
        fill_rates: Vec::new(),
    };
    eprintln!("  {log} log: {figures:?}");
    Ok(figures)
}

/// Reads from the earliest event with one subscriber: (events read, events/s).
async fn catch_up(bench: &Bench, dir: &Path) -> anyhow::Result<(u64, f64)> {
    let server = bench.start_on(durable(), Some(dir)).await?;
    let grpc = server.grpc.context("the service printed no gRPC address")?;
    let channel = Channel::from_shared(format!("http://{grpc}"))?
        .connect()
        .await
        .context("gRPC connect")?;
    let mut client = EventStreamClient::new(channel).max_decoding_message_size(16 << 20);
    let request = SubscribeRequest {
        start: Some(Start::FromEarliest(true)),
        ..SubscribeRequest::default()
    };
    let started = Instant::now();
    let mut stream = client.subscribe(request).await?.into_inner();
    let mut read = 0u64;
    let mut last = started;
    // Caught up when nothing comes for a second (no webhooks are sent meanwhile).
    while read < CATCH_UP_MAX {
        match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
            Ok(Some(Ok(_))) => {
                read += 1;
                last = Instant::now();
            }
            Ok(Some(Err(status))) => anyhow::bail!("catch-up stream failed: {status}"),
            Ok(None) | Err(_) => break,
        }
    }
    let secs = last.saturating_duration_since(started).as_secs_f64();
    Ok((read, if secs > 0.0 { read as f64 / secs } else { 0.0 }))
}

/// Kills the service with SIGKILL while webhooks arrive, then times its next start-up until
/// `/readyz` answers 200.
async fn startup_after_kill(bench: &Bench, dir: &Path) -> anyhow::Result<f64> {
    let server = bench.start_on(durable(), Some(dir)).await?;
    let spec = bench.load_spec(32, BEFORE_KILL, None, 0, true);
    let endpoint = Endpoint {
        address: server.http,
        tls: None,
    };
    let templates = bench.templates();
    let load = tokio::spawn(async move { load::run(endpoint, None, templates, &spec).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    drop(server); // SIGKILL, mid-load.
    let _ = load.await; // Its connections fail now.
    let started = Instant::now();
    let server = bench.start_on(durable(), Some(dir)).await?;
    let url = format!("http://{}/readyz", server.http);
    loop {
        if ready(&url).await {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the service was not ready 300 s after a restart"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether `GET url` answers 200 (plain HTTP/1.1 over a fresh connection).
async fn ready(url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let Some((host, path)) = rest.split_once('/') else {
        return false;
    };
    let Ok(mut tcp) = tokio::net::TcpStream::connect(host).await else {
        return false;
    };
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.is_ok() && head.ends_with(b"200")
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}
