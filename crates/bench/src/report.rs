//! Results: the JSON shape written by a run, the human table, and the targets.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::load::{Delivery, LoadResult};
use crate::sync_floor::SyncFloor;

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// Samples behind the figures.
    pub count: u64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            count: histogram.len(),
        }
    }

    /// The figures in plotting order, with their labels.
    pub fn points(&self) -> [(&'static str, f64); 5] {
        [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p999),
            ("max", self.max),
        ]
    }
}

/// One scenario's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    /// e.g. "tributary durable, 1 sub, max rate".
    pub name: String,
    /// "tributary", "reference" (the `--reference` build) or "noop".
    pub server: String,
    /// Log durability (None for the baseline).
    pub durable: Option<bool>,
    /// Webhooks over HTTPS.
    #[serde(default)]
    pub tls: bool,
    pub connections: usize,
    pub subscribers: usize,
    /// Offered rate, webhooks/s (None: maximum).
    pub rate: Option<f64>,
    pub sent: usize,
    pub accepted: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Accepted webhooks per second, start to last response.
    pub accepted_per_s: f64,
    /// Events received per second over all subscribers, start to last receipt.
    pub delivered_per_s: f64,
    pub deliveries: u64,
    /// POST start -> response.
    pub http_latency_ms: Percentiles,
    /// POST start -> subscriber receipt (None without subscribers).
    pub e2e_latency_ms: Option<Percentiles>,
    /// The e2e p99 of each fifth of the requests, in send order (empty without subscribers).
    #[serde(default)]
    pub e2e_p99_by_fifth_ms: Vec<f64>,
    /// Server CPU time (user + system) during the load, seconds.
    pub server_cpu_s: f64,
    /// Server CPU during the load, % of one core.
    pub server_cpu_percent: f64,
    /// Server CPU per accepted webhook, microseconds.
    pub server_cpu_us_per_webhook: f64,
    /// Context switches of the server's threads per accepted webhook (threads alive at the
    /// end; see `process::thread_use`).
    #[serde(default)]
    pub server_switches_per_webhook: f64,
    /// The same, and CPU, per thread name (tokio's workers and blocking threads share one).
    #[serde(default)]
    pub server_threads: Vec<ThreadShare>,
    /// Bytes the server wrote to storage per byte of accepted webhook body (journal, tables,
    /// archive, compaction: everything `/proc/<pid>/io` counts during the load).
    #[serde(default)]
    pub disk_bytes_per_body_byte: f64,
    /// The load generator's own CPU per accepted webhook, microseconds: it shares the
    /// machine's cores with the server, so what it spends is not the server's to use.
    #[serde(default)]
    pub load_generator_cpu_us_per_webhook: f64,
    /// RSS after start-up, before any load, MiB.
    pub idle_rss_mib: f64,
    /// Peak RSS (VmHWM) at the end, MiB.
    pub peak_rss_mib: f64,
    /// (seconds, RSS MiB) during the load.
    pub rss_mib: Vec<(f64, f64)>,
    /// Every accepted webhook reached every subscriber exactly once.
    pub delivered_exactly_once: bool,
    /// Per subscriber (summed when there are many).
    pub delivery: Delivery,
}

/// What the server's threads of one name cost per accepted webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadShare {
    pub name: String,
    pub cpu_us_per_webhook: f64,
    pub switches_per_webhook: f64,
}

/// Server-side measurements around a load run.
pub struct ServerStats {
    pub cpu_s: f64,
    /// Per thread name, during the load.
    pub threads: std::collections::BTreeMap<String, crate::process::ThreadUse>,
    /// Clock ticks per second of the threads' CPU times.
    pub ticks: f64,
    pub wall_s: f64,
    pub idle_rss_kib: u64,
    pub peak_rss_kib: u64,
    pub rss_kib: Vec<(f64, u64)>,
    /// Bytes the server wrote to storage during the load.
    pub disk_write_bytes: u64,
    /// The load generator's (this process's) CPU time over the same window, seconds.
    pub load_generator_cpu_s: f64,
}

/// How a scenario was set up.
pub struct Setup {
    pub name: String,
    pub server: &'static str,
    pub durable: Option<bool>,
    pub tls: bool,
    pub connections: usize,
    pub subscribers: usize,
    pub rate: Option<f64>,
}

const MIB: f64 = 1024.0;

impl Scenario {
    /// Assembles the figures of one run.
    pub fn new(setup: Setup, load: &LoadResult, stats: &ServerStats) -> Self {
        let mut delivery = Delivery::default();
        for d in &load.delivery {
            delivery.received += d.received;
            delivery.missing += d.missing;
            delivery.duplicates += d.duplicates;
            delivery.unexpected += d.unexpected;
            if delivery.error.is_none() {
                delivery.error.clone_from(&d.error);
            }
        }
        let exactly_once = load.delivery.iter().all(|d| {
            d.missing == 0
                && d.duplicates == 0
                && d.unexpected == 0
                && d.error.is_none()
                && d.received == load.accepted as u64
        });
        let per_s = |count: f64, secs: f64| if secs > 0.0 { count / secs } else { 0.0 };
        Self {
            name: setup.name,
            server: setup.server.to_owned(),
            durable: setup.durable,
            tls: setup.tls,
            connections: setup.connections,
            subscribers: setup.subscribers,
            rate: setup.rate,
            sent: load.sent,
            accepted: load.accepted,
            errors: load.errors,
            first_error: load.first_error.clone(),
            accepted_per_s: per_s(load.accepted as f64, load.send_secs),
            delivered_per_s: per_s(load.deliveries as f64, load.deliver_secs),
            deliveries: load.deliveries,
            http_latency_ms: Percentiles::of(&load.http),
            e2e_latency_ms: (setup.subscribers > 0).then(|| Percentiles::of(&load.e2e)),
            e2e_p99_by_fifth_ms: if setup.subscribers > 0 {
                load.e2e_fifths
                    .iter()
                    .map(|h| Percentiles::of(h).p99)
                    .collect()
            } else {
                Vec::new()
            },
            server_cpu_s: stats.cpu_s,
            server_cpu_percent: per_s(stats.cpu_s * 100.0, stats.wall_s),
            server_cpu_us_per_webhook: per_s(stats.cpu_s * 1e6, load.accepted as f64),
            server_switches_per_webhook: per_s(
                stats.threads.values().map(|t| t.switches).sum::<u64>() as f64,
                load.accepted as f64,
            ),
            server_threads: stats
                .threads
                .iter()
                .filter(|(_, used)| used.switches > 0 || used.ticks > 0)
                .map(|(name, used)| ThreadShare {
                    name: name.clone(),
                    cpu_us_per_webhook: per_s(
                        used.ticks as f64 / stats.ticks * 1e6,
                        load.accepted as f64,
                    ),
                    switches_per_webhook: per_s(used.switches as f64, load.accepted as f64),
                })
                .collect(),
            disk_bytes_per_body_byte: per_s(stats.disk_write_bytes as f64, load.body_bytes as f64),
            load_generator_cpu_us_per_webhook: per_s(
                stats.load_generator_cpu_s * 1e6,
                load.accepted as f64,
            ),
            idle_rss_mib: stats.idle_rss_kib as f64 / MIB,
            peak_rss_mib: stats.peak_rss_kib as f64 / MIB,
            rss_mib: stats
                .rss_kib
                .iter()
                .map(|(t, kib)| (*t, *kib as f64 / MIB))
                .collect(),
            delivered_exactly_once: exactly_once,
            delivery,
        }
    }
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    /// Reads `/proc`.
    pub fn detect() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        let memory_gib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        }
    }
}

/// One target of the issue and where we stand.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    /// None: not measured in this run.
    pub met: Option<bool>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub scenarios: Vec<Scenario>,
    pub targets: Vec<Target>,
    /// Ratios between scenarios of the run (TLS vs plain, reference build, no-op baseline).
    #[serde(default)]
    pub comparisons: Vec<Comparison>,
    /// The same measurements on an empty and a large log (`--large-log-events`).
    #[serde(default)]
    pub log_size: Vec<crate::log_size::SizeFigures>,
    /// One `fdatasync`'s own cost on the servers' volume (measured with the fixed-rate
    /// scenarios).
    #[serde(default)]
    pub sync_floor: Option<SyncFloor>,
}

/// One ratio between two scenarios of the same run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// e.g. "TLS: durable, 1 sub, max rate".
    pub what: String,
    pub measured: String,
}

fn find<'a>(scenarios: &'a [Scenario], name: &str) -> Option<&'a Scenario> {
    scenarios.iter().find(|s| s.name == name)
}

/// Scenario names the suite uses (and the targets look up).
pub mod names {
    pub const NOOP_MAX: &str = "noop baseline, max rate";
    pub const DURABLE_MAX: &str = "durable, 1 sub, max rate";
    pub const VOLATILE_MAX: &str = "non-durable, 1 sub, max rate";
    pub const NOOP_FIXED: &str = "noop baseline, fixed rate";
    pub const DURABLE_FIXED: &str = "durable, 1 sub, fixed rate";
    pub const VOLATILE_FIXED: &str = "non-durable, 1 sub, fixed rate";
    pub const NOOP_OPEN_LOOP: &str = "noop baseline, open loop";
    pub const DURABLE_OPEN_LOOP: &str = "durable, 1 sub, open loop";
    pub const SOAK: &str = "soak: durable, 1 sub, fixed rate";

    /// The HTTPS twin of the scenario named `base`.
    pub fn tls(base: &str) -> String {
        format!("{base}, TLS")
    }

    /// The scenario named `base` with the raw archive off.
    pub fn no_archive(base: &str) -> String {
        format!("{base}, archive off")
    }

    /// The scenario named `base` with every source shadowed by a candidate adapter.
    pub fn shadowed(base: &str) -> String {
        format!("{base}, shadowed")
    }

    /// The `--reference` build's twin of the scenario named `base`.
    pub fn reference(base: &str) -> String {
        format!("reference: {base}")
    }

    /// The fan-out scenario with `subscribers` subscribers (1 is `DURABLE_MAX`).
    pub fn fanout(subscribers: usize) -> String {
        if subscribers == 1 {
            DURABLE_MAX.to_owned()
        } else {
            format!("durable, {subscribers} subs, max rate")
        }
    }
}

/// Checks the targets that the load tool can measure.
pub fn targets(
    scenarios: &[Scenario],
    fanout_max: usize,
    sync_floor: Option<&SyncFloor>,
) -> Vec<Target> {
    let mut targets = Vec::new();
    let durable = find(scenarios, names::DURABLE_MAX);
    let noop = find(scenarios, names::NOOP_MAX);
    targets.push(match (durable, noop) {
        (Some(d), Some(n)) if n.accepted_per_s > 0.0 => {
            let ratio = d.accepted_per_s / n.accepted_per_s;
            Target {
                target: "durable, 1 subscriber >= 50% of the no-op baseline".into(),
                measured: format!(
                    "{:.0} / {:.0} webhooks/s = {:.0}%",
                    d.accepted_per_s,
                    n.accepted_per_s,
                    ratio * 100.0
                ),
                met: Some(ratio >= 0.5),
            }
        }
        _ => not_measured("durable, 1 subscriber >= 50% of the no-op baseline"),
    });
    let fixed = find(scenarios, names::DURABLE_FIXED);
    targets.push(match fixed.and_then(|f| Some((f, f.e2e_latency_ms?))) {
        Some((f, e2e)) => Target {
            target: format!(
                "p99 end to end <= 5 ms at {:.0} webhooks/s",
                f.rate.unwrap_or(0.0)
            ),
            measured: format!(
                "p99 {:.2} ms (p50 {:.2}, p99.9 {:.2}, max {:.2})",
                e2e.p99, e2e.p50, e2e.p999, e2e.max
            ),
            met: Some(e2e.p99 <= 5.0),
        },
        None => not_measured("p99 end to end <= 5 ms at 2,000 webhooks/s"),
    });
    targets.push(match fixed {
        Some(f) => {
            let noop = find(scenarios, names::NOOP_FIXED).map_or(String::new(), |n| {
                format!(
                    " (the no-op baseline at the same rate: {:.0} µs, {:.1} context switches)",
                    n.server_cpu_us_per_webhook, n.server_switches_per_webhook
                )
            });
            let floor = floor_of(find(scenarios, names::VOLATILE_FIXED), sync_floor);
            Target {
                target: format!(
                    "server CPU <= 150 µs and <= 3 context switches per webhook at {:.0} webhooks/s",
                    f.rate.unwrap_or(0.0)
                ),
                measured: format!(
                    "{:.0} µs, {:.1} context switches per webhook{noop}{floor}",
                    f.server_cpu_us_per_webhook, f.server_switches_per_webhook
                ),
                met: Some(
                    f.server_cpu_us_per_webhook <= 150.0 && f.server_switches_per_webhook <= 3.0,
                ),
            }
        }
        None => not_measured("server CPU <= 150 µs and <= 3 switches per webhook at 2,000/s"),
    });
    let shadowed = find(scenarios, &names::shadowed(names::DURABLE_FIXED));
    targets.push(shadow_cost(fixed, shadowed));
    let reference = find(scenarios, &names::reference(names::DURABLE_MAX));
    targets.push(match (durable, reference) {
        (Some(d), Some(r)) if r.accepted_per_s > 0.0 => Target {
            target: "durable max rate >= 1.5x the reference build's".into(),
            measured: format!(
                "{:.0} vs {:.0} webhooks/s = {:.2}x",
                d.accepted_per_s,
                r.accepted_per_s,
                d.accepted_per_s / r.accepted_per_s
            ),
            met: Some(d.accepted_per_s >= 1.5 * r.accepted_per_s),
        },
        _ => not_measured("durable max rate >= 1.5x the reference build's (--reference)"),
    });
    targets.push(match durable {
        Some(d) => Target {
            target: "disk bytes written per byte of webhook body <= 3 (durable, max rate)".into(),
            measured: format!("{:.2}", d.disk_bytes_per_body_byte),
            met: Some(d.disk_bytes_per_body_byte > 0.0 && d.disk_bytes_per_body_byte <= 3.0),
        },
        None => not_measured("disk bytes written per byte of webhook body <= 3"),
    });
    let many = find(scenarios, &names::fanout(fanout_max));
    targets.push(match (durable, many) {
        (Some(one), Some(many)) if fanout_max > 1 && one.accepted_per_s > 0.0 => {
            let ratio = many.accepted_per_s / one.accepted_per_s;
            Target {
                target: format!("{fanout_max} subscribers >= 50% of the 1-subscriber ingest rate"),
                measured: format!(
                    "{:.0} vs {:.0} webhooks/s = {:.0}% ({:.0} events/s delivered); CPU per \
                     webhook, server + load generator: {:.0} + {:.0} µs against {:.0} + {:.0}",
                    many.accepted_per_s,
                    one.accepted_per_s,
                    ratio * 100.0,
                    many.delivered_per_s,
                    many.server_cpu_us_per_webhook,
                    many.load_generator_cpu_us_per_webhook,
                    one.server_cpu_us_per_webhook,
                    one.load_generator_cpu_us_per_webhook,
                ),
                met: Some(ratio >= 0.5),
            }
        }
        _ => not_measured("100 subscribers >= 50% of the 1-subscriber ingest rate"),
    });
    targets.push(match durable {
        Some(d) => Target {
            target: "idle RSS <= 50 MiB".into(),
            measured: format!("{:.1} MiB", d.idle_rss_mib),
            met: Some(d.idle_rss_mib <= 50.0),
        },
        None => not_measured("idle RSS <= 50 MiB"),
    });
    targets.push(
        match find(scenarios, names::SOAK).and_then(|s| rss_growth(&s.rss_mib)) {
            Some((early, late)) => Target {
                target: "RSS flat under load (no growth)".into(),
                measured: format!(
                    "{early:.1} MiB after the first fifth, {late:.1} MiB in the last fifth"
                ),
                met: Some(late <= early * 1.05 + 1.0),
            },
            None => not_measured("RSS flat under load over 5 minutes"),
        },
    );
    targets.push(
        match find(scenarios, names::SOAK).map(|s| s.e2e_p99_by_fifth_ms.as_slice()) {
            Some([first, .., last]) => Target {
                target: "e2e p99 stable over the soak (last fifth <= first fifth x 1.5 + 1 ms)"
                    .into(),
                measured: format!("p99 {first:.2} ms in the first fifth, {last:.2} ms in the last"),
                met: Some(*last <= first * 1.5 + 1.0),
            },
            _ => not_measured("e2e p99 stable over the soak"),
        },
    );
    targets
}

/// The least a durable webhook can cost at the fixed rate when each is synced alone: the
/// non-durable service's figures plus one `fdatasync`'s own (the sync probe's file grown into
/// a hole, as the journal is).
fn floor_of(volatile: Option<&Scenario>, sync: Option<&SyncFloor>) -> String {
    let (Some(volatile), Some(sync)) = (volatile, sync) else {
        return String::new();
    };
    let cost = sync.into_hole;
    format!(
        "; floor with one fdatasync per webhook: {:.0} µs, {:.1} switches (non-durable {:.0} \
         µs, {:.1}, plus one fdatasync {:.0} µs, {:.1})",
        volatile.server_cpu_us_per_webhook + cost.cpu_us,
        volatile.server_switches_per_webhook + cost.switches,
        volatile.server_cpu_us_per_webhook,
        volatile.server_switches_per_webhook,
        cost.cpu_us,
        cost.switches
    )
}

/// What a shadow rollout costs on the ingest path: the webhook's HTTP answer (p99) at the
/// fixed rate with every source shadowed, against the same run without, at most 10% slower.
/// The server's CPU per webhook is shown beside it: the candidate does the adapter's work
/// again (off the request path), so the process as a whole works more.
fn shadow_cost(plain: Option<&Scenario>, shadowed: Option<&Scenario>) -> Target {
    let (Some(plain), Some(shadowed)) = (plain, shadowed) else {
        return not_measured("shadowing every source costs <= 10% of HTTP p99 at 2,000/s");
    };
    let (p, s) = (&plain.http_latency_ms, &shadowed.http_latency_ms);
    let latency = s.p99 / p.p99.max(f64::MIN_POSITIVE);
    let cpu =
        shadowed.server_cpu_us_per_webhook / plain.server_cpu_us_per_webhook.max(f64::MIN_POSITIVE);
    Target {
        target: format!(
            "shadowing every source costs <= 10% of HTTP p99 at {:.0} webhooks/s",
            plain.rate.unwrap_or(0.0)
        ),
        measured: format!(
            "HTTP p99 {:.2} -> {:.2} ms ({:+.0}%), p50 {:.2} -> {:.2} ms; server CPU {:.0} -> \
             {:.0} µs per webhook ({:+.0}%); accepted {} and {}",
            p.p99,
            s.p99,
            (latency - 1.0) * 100.0,
            p.p50,
            s.p50,
            plain.server_cpu_us_per_webhook,
            shadowed.server_cpu_us_per_webhook,
            (cpu - 1.0) * 100.0,
            plain.accepted,
            shadowed.accepted
        ),
        met: Some(latency <= 1.1 && shadowed.errors == 0),
    }
}

/// The log-size targets: each cost on the large log within 20% of the empty log's, and a
/// start-up after kill -9 that does not grow with the log (at most 2 s).
pub fn log_size_targets(figures: &[crate::log_size::SizeFigures]) -> Vec<Target> {
    let (Some(empty), Some(large)) = (
        figures.iter().find(|f| f.log == "empty"),
        figures.iter().find(|f| f.log == "large"),
    ) else {
        return Vec::new();
    };
    let events = large.events;
    // (what, empty, large, larger is better)
    let costs = [
        (
            "ingest rate, webhooks/s",
            empty.ingest_per_s,
            large.ingest_per_s,
            true,
        ),
        (
            "e2e p99 at the fixed rate, ms",
            empty.e2e_p99_ms,
            large.e2e_p99_ms,
            false,
        ),
        (
            "catch-up to one subscriber, events/s",
            empty.catch_up_per_s,
            large.catch_up_per_s,
            true,
        ),
        (
            "disk bytes per event",
            empty.disk_bytes_per_event,
            large.disk_bytes_per_event,
            false,
        ),
    ];
    let mut targets: Vec<Target> = costs
        .into_iter()
        .map(|(what, empty, large, higher_is_better)| {
            let worse = if higher_is_better {
                1.0 - large / empty.max(f64::MIN_POSITIVE)
            } else {
                large / empty.max(f64::MIN_POSITIVE) - 1.0
            };
            Target {
                target: format!("{what}: {events} events no more than 20% worse than empty"),
                measured: format!("{large:.2} vs {empty:.2} ({:+.0}% worse)", worse * 100.0),
                met: Some(worse <= 0.2),
            }
        })
        .collect();
    targets.push(Target {
        target: format!("start-up after kill -9 with {events} events <= 2 s"),
        measured: format!(
            "{:.2} s (empty log: {:.2} s)",
            large.startup_after_kill_s, empty.startup_after_kill_s
        ),
        met: Some(large.startup_after_kill_s <= 2.0),
    });
    if let (Some(first), Some(last)) = (large.fill_rates.first(), large.fill_rates.last()) {
        targets.push(Target {
            target: "fill rate of the last step no more than 20% below the first's".into(),
            measured: format!("{last:.0} vs {first:.0} webhooks/s"),
            met: Some(*last >= first * 0.8),
        });
    }
    targets
}

/// How `new` compares with `old`: throughput, server CPU per webhook, latencies.
fn versus(new: &Scenario, old: &Scenario) -> String {
    let change = |new: f64, old: f64| {
        if old > 0.0 {
            format!("{:+.0}%", (new / old - 1.0) * 100.0)
        } else {
            "n/a".to_owned()
        }
    };
    let mut text = String::new();
    if new.rate.is_none() {
        let _ = write!(
            text,
            "{:.0} vs {:.0} webhooks/s ({}); ",
            new.accepted_per_s,
            old.accepted_per_s,
            change(new.accepted_per_s, old.accepted_per_s)
        );
    }
    let _ = write!(
        text,
        "CPU {:.0} vs {:.0} µs/webhook ({}); http p50 {:.2} vs {:.2} ms, p99 {:.2} vs {:.2} ms",
        new.server_cpu_us_per_webhook,
        old.server_cpu_us_per_webhook,
        change(new.server_cpu_us_per_webhook, old.server_cpu_us_per_webhook),
        new.http_latency_ms.p50,
        old.http_latency_ms.p50,
        new.http_latency_ms.p99,
        old.http_latency_ms.p99,
    );
    if let (Some(a), Some(b)) = (new.e2e_latency_ms, old.e2e_latency_ms) {
        let _ = write!(
            text,
            "; e2e p50 {:.2} vs {:.2} ms, p99 {:.2} vs {:.2} ms",
            a.p50, b.p50, a.p99, b.p99
        );
    }
    text
}

/// The ratios between scenarios of one run: each TLS scenario against its plain twin, each
/// reference scenario against the current build's, and each max-rate scenario against the
/// no-op baseline (the TLS ones against the no-op over TLS too).
pub fn comparisons(scenarios: &[Scenario]) -> Vec<Comparison> {
    let mut comparisons = Vec::new();
    for scenario in scenarios {
        if let Some(base) = scenario.name.strip_suffix(", TLS")
            && let Some(plain) = find(scenarios, base)
        {
            comparisons.push(Comparison {
                what: format!("TLS vs plain: {base}"),
                measured: versus(scenario, plain),
            });
        }
        if let Some(base) = scenario.name.strip_prefix("reference: ")
            && let Some(current) = find(scenarios, base)
        {
            comparisons.push(Comparison {
                what: format!("current vs reference build: {base}"),
                measured: versus(current, scenario),
            });
        }
    }
    let noop = find(scenarios, names::NOOP_MAX);
    let noop_tls = find(scenarios, &names::tls(names::NOOP_MAX));
    for scenario in scenarios
        .iter()
        .filter(|s| s.server != "noop" && s.rate.is_none() && s.subscribers == 1)
    {
        let mut parts = Vec::new();
        for (label, baseline) in [("no-op", noop), ("no-op over TLS", noop_tls)] {
            if let Some(baseline) = baseline.filter(|b| b.accepted_per_s > 0.0) {
                parts.push(format!(
                    "{:.0}% of the {label} baseline ({:.0})",
                    scenario.accepted_per_s / baseline.accepted_per_s * 100.0,
                    baseline.accepted_per_s
                ));
            }
            if !scenario.tls {
                break;
            }
        }
        if !parts.is_empty() {
            comparisons.push(Comparison {
                what: format!("vs baseline: {}", scenario.name),
                measured: format!(
                    "{:.0} webhooks/s = {}",
                    scenario.accepted_per_s,
                    parts.join(", ")
                ),
            });
        }
    }
    comparisons
}

/// Mean RSS over the second fifth and the last fifth of the samples (the first fifth is
/// warm-up: allocator pools and buffers growing to their working size).
fn rss_growth(samples: &[(f64, f64)]) -> Option<(f64, f64)> {
    if samples.len() < 10 {
        return None;
    }
    let fifth = samples.len() / 5;
    let mean = |s: &[(f64, f64)]| s.iter().map(|(_, r)| r).sum::<f64>() / s.len() as f64;
    Some((
        mean(&samples[fifth..2 * fifth]),
        mean(&samples[samples.len() - fifth..]),
    ))
}

fn not_measured(target: &str) -> Target {
    Target {
        target: target.into(),
        measured: "not measured in this run".into(),
        met: None,
    }
}

/// "name figure; name figure; ..." for the scenarios that measured `figure` (non-zero).
fn per_scenario(
    scenarios: &[Scenario],
    decimals: usize,
    figure: impl Fn(&Scenario) -> f64,
) -> String {
    scenarios
        .iter()
        .filter(|s| figure(s) > 0.0)
        .map(|s| format!("{} {:.*}", s.name, decimals, figure(s)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The human table.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "machine: {} ({} cores, {:.1} GiB), kernel {}",
        report.machine.cpu, report.machine.cores, report.machine.memory_gib, report.machine.kernel
    );
    let _ = writeln!(
        out,
        "{:<36} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7} {:>6} {:>5} {:>6} {:>4}",
        "scenario",
        "acc/s",
        "deliv/s",
        "http p50",
        "http p99",
        "e2e p50",
        "e2e p90",
        "e2e p99",
        "p99.9",
        "max",
        "cpu%",
        "µs/wh",
        "cs/wh",
        "RSS",
        "ok"
    );
    for s in &report.scenarios {
        let e2e = s.e2e_latency_ms.unwrap_or_default();
        let dash = |v: f64| {
            if s.e2e_latency_ms.is_some() {
                format!("{v:.2}")
            } else {
                "-".to_owned()
            }
        };
        let _ = writeln!(
            out,
            "{:<36} {:>9.0} {:>9.0} {:>8.2} {:>8.2} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7.0} {:>6.0} {:>5.1} {:>6.1} {:>4}",
            s.name,
            s.accepted_per_s,
            s.delivered_per_s,
            s.http_latency_ms.p50,
            s.http_latency_ms.p99,
            dash(e2e.p50),
            dash(e2e.p90),
            dash(e2e.p99),
            dash(e2e.p999),
            dash(e2e.max),
            s.server_cpu_percent,
            s.server_cpu_us_per_webhook,
            s.server_switches_per_webhook,
            s.peak_rss_mib,
            if s.delivered_exactly_once && s.errors == 0 {
                "yes"
            } else {
                "NO"
            }
        );
    }
    let _ = writeln!(
        out,
        "\nserver threads (CPU µs / context switches per webhook, by thread name):"
    );
    for s in &report.scenarios {
        let threads: Vec<String> = s
            .server_threads
            .iter()
            .map(|t| {
                format!(
                    "{} {:.0} µs / {:.1}",
                    t.name, t.cpu_us_per_webhook, t.switches_per_webhook
                )
            })
            .collect();
        let _ = writeln!(out, "  {}: {}", s.name, threads.join(", "));
    }
    if !report.comparisons.is_empty() {
        let _ = writeln!(out, "\ncomparisons (same run):");
        for c in &report.comparisons {
            let _ = writeln!(out, "  {}: {}", c.what, c.measured);
        }
    }
    if !report.log_size.is_empty() {
        let _ = writeln!(
            out,
            "\nlog size: {:<8} {:>10} {:>10} {:>10} {:>12} {:>10} {:>10}",
            "log", "events", "ingest/s", "e2e p99", "catch-up/s", "start s", "disk B/ev"
        );
        for f in &report.log_size {
            let _ = writeln!(
                out,
                "          {:<8} {:>10} {:>10.0} {:>10.2} {:>12.0} {:>10.2} {:>10.0}",
                f.log,
                f.events,
                f.ingest_per_s,
                f.e2e_p99_ms,
                f.catch_up_per_s,
                f.startup_after_kill_s,
                f.disk_bytes_per_event
            );
        }
    }
    if let Some(sync) = &report.sync_floor {
        let cost = |c: &crate::sync_floor::SyncCost| {
            format!(
                "{:.0} µs CPU, {:.1} context switches, {:.0} µs wall",
                c.cpu_us, c.switches, c.wall_us
            )
        };
        let _ = writeln!(
            out,
            "\none fdatasync after a {}-byte append, this volume: into a hole (as the journal) \
             {}; over pre-written blocks {}",
            sync.record_bytes,
            cost(&sync.into_hole),
            cost(&sync.prewritten)
        );
    }
    let _ = writeln!(
        out,
        "\ndisk bytes written per body byte: {}",
        per_scenario(&report.scenarios, 2, |s| s.disk_bytes_per_body_byte)
    );
    let generator = per_scenario(&report.scenarios, 0, |s| {
        s.load_generator_cpu_us_per_webhook
    });
    let _ = writeln!(
        out,
        "\nload generator CPU per webhook (on the same cores as the server), µs: {generator}"
    );
    let _ = writeln!(out, "\ntargets:");
    for t in &report.targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a",
        };
        let _ = writeln!(out, "  [{verdict:>6}] {}: {}", t.target, t.measured);
    }
    out
}
