//! Prometheus metrics, served on `GET /metrics` (OpenMetrics text, which Prometheus scrapes
//! natively). Counters and histograms are updated on the data path; gauges about the log,
//! consumers and plugins are computed when scraped. Names and labels: docs/observability.md.
//!
//! Labels are bounded: source and adapter names come from the configuration (an unknown
//! source is counted under `source=""`), reasons from a fixed list, never from a request.

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram as OtelHistogram;

use crate::app::App;
use crate::error::ErrorCode;

/// The Content-Type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The OpenTelemetry twins of the Prometheus histograms, recorded beside them once OTLP
/// export is on ([`crate::ops::otlp_metrics::install`] sets them).
pub struct OtlpHistograms {
    /// `tributary_verify_duration_seconds`.
    pub verify_seconds: OtelHistogram<f64>,
    /// `tributary_normalize_duration_seconds`.
    pub normalize_seconds: OtelHistogram<f64>,
    /// `tributary_append_duration_seconds`.
    pub append_seconds: OtelHistogram<f64>,
    /// `tributary_append_batch_items`.
    pub append_batch_items: OtelHistogram<f64>,
}

static OTLP_HISTOGRAMS: OnceLock<OtlpHistograms> = OnceLock::new();

/// The OTLP histograms to record into, once OTLP export is on.
pub fn otlp_histograms() -> Option<&'static OtlpHistograms> {
    OTLP_HISTOGRAMS.get()
}

/// Turns OTLP recording on (the first call wins: export is configured once per process).
pub(crate) fn set_otlp_histograms(histograms: OtlpHistograms) {
    let _ = OTLP_HISTOGRAMS.set(histograms);
}

/// A source and the adapter serving it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// Source name (configured); empty for requests to an unknown source.
    pub source: String,
    /// Adapter name; empty when unknown.
    pub adapter: String,
}

/// A rejected webhook.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// Source name; empty for an unknown source.
    pub source: String,
    /// Adapter name; empty when unknown.
    pub adapter: String,
    /// An [`ErrorCode`] label.
    pub reason: String,
}

/// A source's verification state, as its adapter instance reports it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerificationLabels {
    /// Source name.
    pub source: String,
    /// Adapter name.
    pub adapter: String,
    /// `on`, `not_configured`, `disabled` or `unknown` ([`verification_state_label`]).
    pub state: String,
}

/// A configured verification secret of a source: its position and the operator's label, never
/// the secret.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecretLabels {
    /// Source name.
    pub source: String,
    /// Position in the source's `verification.secrets`, from 0.
    pub index: String,
    /// The operator's label for it; empty when none (or not a valid label).
    pub label: String,
}

impl SecretLabels {
    /// Labels for `secret` of `source`. The adapter's label is kept only when it is a short
    /// identifier (1 to 64 of `A-Z a-z 0-9 _ - . :`), so a plugin cannot put arbitrary text
    /// (or a secret) into a label value.
    pub fn new(source: &str, secret: &tributary_model::v1::SecretInfo) -> Self {
        let label = &secret.label;
        let valid = label.len() <= 64
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
        Self {
            source: source.to_owned(),
            index: secret.index.to_string(),
            label: if valid { label.clone() } else { String::new() },
        }
    }
}

/// The label value of a [`tributary_model::v1::VerificationState`] (as its `i32`).
pub fn verification_state_label(state: i32) -> &'static str {
    use tributary_model::v1::VerificationState;
    match VerificationState::try_from(state) {
        Ok(VerificationState::On) => "on",
        Ok(VerificationState::NotConfigured) => "not_configured",
        Ok(VerificationState::Disabled) => "disabled",
        _ => "unknown",
    }
}

/// An adapter, for latency histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdapterLabels {
    /// Adapter name.
    pub adapter: String,
}

/// A source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OnlySourceLabels {
    /// Source name (configured).
    pub source: String,
}

/// A source and one of its expectations (`[sources.X.expect]`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExpectationLabels {
    /// Source name (configured).
    pub source: String,
    /// One of [`crate::health::EXPECTATIONS`].
    pub expectation: String,
}

/// A gauge with a fractional value.
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// A durable consumer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    /// Consumer name.
    pub consumer: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(Metrics::latency_bounds())
}

/// Registers `metric` and notes it in `catalog`.
fn register<M>(
    registry: &mut Registry,
    catalog: &mut Vec<(&'static str, MetricType, &'static str)>,
    name: &'static str,
    help: &'static str,
    metric: M,
) where
    M: prometheus_client::registry::Metric + TypedMetric,
{
    catalog.push((name, M::TYPE, help));
    registry.register(name, help, metric);
}

/// Every metric Tributary exposes.
pub struct Metrics {
    registry: Registry,
    /// Every family registered: (name, type, help), for the OTLP bridge.
    catalog: Vec<(&'static str, MetricType, &'static str)>,
    /// Webhooks that reached `POST /webhooks/{source}`.
    pub webhooks_received: Family<SourceLabels, Counter>,
    /// Webhooks answered 2xx (stored, duplicates, dead-lettered or ignored).
    pub webhooks_accepted: Family<SourceLabels, Counter>,
    /// Webhooks answered 4xx/5xx, by reason.
    pub webhooks_rejected: Family<RejectLabels, Counter>,
    /// Canonical events newly stored.
    pub events_accepted: Family<SourceLabels, Counter>,
    /// Items (events or dead letters) already stored by an earlier delivery.
    pub duplicates: Family<SourceLabels, Counter>,
    /// Items newly stored as dead letters.
    pub dead_lettered: Family<SourceLabels, Counter>,
    /// Items acknowledged without storing anything.
    pub ignored: Family<SourceLabels, Counter>,
    /// Adapter verification time, seconds.
    pub verify_seconds: Family<AdapterLabels, Histogram>,
    /// Adapter normalization time, seconds.
    pub normalize_seconds: Family<AdapterLabels, Histogram>,
    /// Time an append waited for the log (group commit and fsync), seconds.
    pub append_seconds: Histogram,
    /// Items (events + dead letters) per append.
    pub append_batch_items: Histogram,
    /// Open `Subscribe` streams.
    pub subscriptions_active: Gauge,
    /// Events handed to subscription streams.
    pub events_delivered: Counter,
    consumer_lag: Family<ConsumerLabels, Gauge>,
    consumer_acked: Family<ConsumerLabels, Gauge>,
    log_last_sequence: Gauge,
    log_healthy: Gauge,
    plugins_loaded: Gauge,
    plugin_load_failures: Gauge,
    adapter_panics: Family<AdapterLabels, Gauge>,
    source_silence: Family<OnlySourceLabels, FloatGauge>,
    source_failure_ratio: Family<OnlySourceLabels, FloatGauge>,
    source_dead_letter_ratio: Family<OnlySourceLabels, FloatGauge>,
    source_out_of_expectation: Family<ExpectationLabels, Gauge>,
    source_verification: Family<VerificationLabels, Gauge>,
    secret_not_after: Family<SecretLabels, Gauge>,
    /// Webhooks verified, by the configured secret that verified them.
    pub webhooks_verified: Family<SecretLabels, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            webhooks_received: Family::default(),
            webhooks_accepted: Family::default(),
            webhooks_rejected: Family::default(),
            events_accepted: Family::default(),
            duplicates: Family::default(),
            dead_lettered: Family::default(),
            ignored: Family::default(),
            verify_seconds: Family::new_with_constructor(latency_histogram),
            normalize_seconds: Family::new_with_constructor(latency_histogram),
            append_seconds: Histogram::new(Metrics::latency_bounds()),
            append_batch_items: Histogram::new(Metrics::batch_bounds()),
            subscriptions_active: Gauge::default(),
            events_delivered: Counter::default(),
            consumer_lag: Family::default(),
            consumer_acked: Family::default(),
            log_last_sequence: Gauge::default(),
            log_healthy: Gauge::default(),
            plugins_loaded: Gauge::default(),
            plugin_load_failures: Gauge::default(),
            adapter_panics: Family::default(),
            source_silence: Family::default(),
            source_failure_ratio: Family::default(),
            source_dead_letter_ratio: Family::default(),
            source_out_of_expectation: Family::default(),
            source_verification: Family::default(),
            secret_not_after: Family::default(),
            webhooks_verified: Family::default(),
            registry: Registry::default(),
            catalog: Vec::new(),
        };
        let r = &mut registry;
        let mut catalog = Vec::new();
        register(
            r,
            &mut catalog,
            "tributary_webhooks_received",
            "Webhooks received on POST /webhooks/{source}",
            m.webhooks_received.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_webhooks_accepted",
            "Webhooks answered 2xx",
            m.webhooks_accepted.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_webhooks_rejected",
            "Webhooks answered 4xx or 5xx, by reason",
            m.webhooks_rejected.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_events_accepted",
            "Canonical events newly stored",
            m.events_accepted.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_duplicates",
            "Items already stored by an earlier delivery",
            m.duplicates.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_dead_letters",
            "Items newly stored as dead letters",
            m.dead_lettered.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_ignored",
            "Items acknowledged without storing anything",
            m.ignored.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_verify_duration_seconds",
            "Adapter verification time",
            m.verify_seconds.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_normalize_duration_seconds",
            "Adapter normalization time",
            m.normalize_seconds.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_append_duration_seconds",
            "Time an append took to become durable (group commit and fsync)",
            m.append_seconds.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_append_batch_items",
            "Items (events and dead letters) per webhook append",
            m.append_batch_items.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_subscriptions_active",
            "Open Subscribe streams",
            m.subscriptions_active.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_events_delivered",
            "Events handed to subscription streams",
            m.events_delivered.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_consumer_lag_events",
            "Events in the log after a durable consumer's acknowledged sequence",
            m.consumer_lag.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_consumer_acked_sequence",
            "A durable consumer's acknowledged sequence",
            m.consumer_acked.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_log_last_sequence",
            "Sequence of the newest stored event",
            m.log_last_sequence.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_log_healthy",
            "1 while the event log can write, else 0",
            m.log_healthy.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_plugins_loaded",
            "Adapter plugins currently serving",
            m.plugins_loaded.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_plugin_load_failures",
            "Plugin libraries whose latest version failed to load",
            m.plugin_load_failures.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_adapter_panics",
            "Panics caught at the plugin boundary since the plugin was loaded",
            m.adapter_panics.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_adapter_shadow_differences",
            "Webhooks on which a shadowed candidate adapter's result differed from the active adapter's, by kind",
            crate::sources::shadow::counters::DIFFERENCES.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_source_verification",
            "1 for each source's verification state as its adapter reports it: on, \
             not_configured (every webhook refused), disabled (nothing checked) or unknown",
            m.source_verification.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_adapter_shadow_failures",
            "Webhooks a shadowed candidate adapter could not answer (panic, timeout, overload, error)",
            crate::sources::shadow::counters::FAILURES.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_verification_secret_not_after_seconds",
            "Unix time until which a configured verification secret verifies (secrets with a \
             not_after only), by source, position and label",
            m.secret_not_after.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_source_silence_seconds",
            "Seconds since the source's last authentic webhook (since start-up when none came)",
            m.source_silence.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_source_verification_failure_ratio",
            "Share of the source's webhooks that failed verification over the health window",
            m.source_failure_ratio.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_source_dead_letter_ratio",
            "Share of the source's stored items that were dead letters over the health window",
            m.source_dead_letter_ratio.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_source_out_of_expectation",
            "1 while the source is out of a configured expectation ([sources.X.expect]), else 0",
            m.source_out_of_expectation.clone(),
        );
        register(
            r,
            &mut catalog,
            "tributary_webhooks_verified",
            "Webhooks verified, by source and the position and label of the configured secret \
             that verified them (never the secret)",
            m.webhooks_verified.clone(),
        );
        Metrics {
            registry,
            catalog,
            ..m
        }
    }

    /// Bucket bounds of the latency histograms, seconds: 100 µs .. ~3.3 s.
    pub fn latency_bounds() -> Vec<f64> {
        exponential_buckets(0.0001, 2.0, 16).collect()
    }

    /// Bucket bounds of the items-per-append histogram: 1 .. 2048.
    pub fn batch_bounds() -> Vec<f64> {
        exponential_buckets(1.0, 2.0, 12).collect()
    }

    /// The registry, for the OTLP bridge.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every registered family, empty ones included: (name, type, help).
    pub(crate) fn catalog(&self) -> &[(&'static str, MetricType, &'static str)] {
        &self.catalog
    }

    /// Records an adapter verification's duration (Prometheus, and OTLP when exporting).
    pub fn observe_verify(&self, adapter: &str, took: Duration) {
        Self::observe_adapter(&self.verify_seconds, adapter, took);
        if let Some(otlp) = otlp_histograms() {
            otlp.verify_seconds.record(
                took.as_secs_f64(),
                &[KeyValue::new("adapter", adapter.to_owned())],
            );
        }
    }

    /// Records an adapter normalization's duration (Prometheus, and OTLP when exporting).
    pub fn observe_normalize(&self, adapter: &str, took: Duration) {
        Self::observe_adapter(&self.normalize_seconds, adapter, took);
        if let Some(otlp) = otlp_histograms() {
            otlp.normalize_seconds.record(
                took.as_secs_f64(),
                &[KeyValue::new("adapter", adapter.to_owned())],
            );
        }
    }

    /// Records one durable append: how long it took and how many items it stored.
    pub fn observe_append(&self, took: Duration, items: usize) {
        self.append_seconds.observe(took.as_secs_f64());
        self.append_batch_items.observe(items as f64);
        if let Some(otlp) = otlp_histograms() {
            otlp.append_seconds.record(took.as_secs_f64(), &[]);
            otlp.append_batch_items.record(items as f64, &[]);
        }
    }

    /// Counts a rejected webhook.
    pub fn reject(&self, source: &str, adapter: &str, reason: ErrorCode) {
        self.webhooks_rejected
            .get_or_create(&RejectLabels {
                source: source.to_owned(),
                adapter: adapter.to_owned(),
                reason: reason.label().to_owned(),
            })
            .inc();
    }

    /// Sets the provider-health gauges of every source.
    fn refresh_health(&self, app: &App) {
        let sources = app.sources.all();
        let tracker = crate::health::tracker();
        for health in tracker.report(sources.iter().map(|s| s.name.as_str())) {
            let labels = OnlySourceLabels {
                source: health.source.clone(),
            };
            self.source_silence
                .get_or_create(&labels)
                .set(health.silence.as_secs_f64());
            self.source_failure_ratio
                .get_or_create(&labels)
                .set(health.verification_failure_ratio.unwrap_or(0.0));
            self.source_dead_letter_ratio
                .get_or_create(&labels)
                .set(health.dead_letter_ratio.unwrap_or(0.0));
            let expect = tracker.expectations(&health.source);
            let configured = [
                expect.max_silence.is_some(),
                expect.max_verification_failure_ratio.is_some(),
                expect.max_dead_letter_ratio.is_some(),
            ];
            for (expectation, configured) in crate::health::EXPECTATIONS.iter().zip(configured) {
                if !configured {
                    continue;
                }
                let out = health
                    .violations
                    .iter()
                    .any(|v| v.expectation == *expectation);
                self.source_out_of_expectation
                    .get_or_create(&ExpectationLabels {
                        source: health.source.clone(),
                        expectation: (*expectation).to_owned(),
                    })
                    .set(i64::from(out));
            }
        }
    }

    /// Records an adapter stage's duration.
    pub fn observe_adapter(
        family: &Family<AdapterLabels, Histogram>,
        adapter: &str,
        took: Duration,
    ) {
        family
            .get_or_create(&AdapterLabels {
                adapter: adapter.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Refreshes the scrape-time gauges from `app` and renders everything as text.
    pub async fn render(&self, app: &App) -> String {
        self.refresh(app).await;
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// Refreshes the gauges computed from `app` (log, consumers, plugins).
    pub async fn refresh(&self, app: &App) {
        let log = &app.log;
        self.log_last_sequence
            .set(i64::try_from(*log.last_sequence().borrow()).unwrap_or(i64::MAX));
        self.log_healthy.set(i64::from(log.health().is_ok()));
        if let Ok(consumers) = tributary_event_log::filtered::consumers(log.as_ref()).await {
            self.consumer_lag.clear();
            self.consumer_acked.clear();
            for consumer in consumers {
                let labels = ConsumerLabels {
                    consumer: consumer.name,
                };
                let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                self.consumer_lag
                    .get_or_create(&labels)
                    .set(gauge(consumer.lag));
                self.consumer_acked
                    .get_or_create(&labels)
                    .set(gauge(consumer.acked_sequence));
            }
        }
        self.refresh_health(app);
        let sources = &app.sources;
        let plugins = sources.plugins();
        self.plugins_loaded
            .set(i64::try_from(plugins.len()).unwrap_or(i64::MAX));
        self.plugin_load_failures
            .set(i64::try_from(sources.load_failures().len()).unwrap_or(i64::MAX));
        for plugin in plugins {
            self.adapter_panics
                .get_or_create(&AdapterLabels {
                    adapter: plugin.info().name.clone(),
                })
                .set(i64::try_from(plugin.panics()).unwrap_or(i64::MAX));
        }
        self.source_verification.clear();
        self.secret_not_after.clear();
        for source in sources.all().iter() {
            let info = source.adapter.instance_info();
            self.source_verification
                .get_or_create(&VerificationLabels {
                    source: source.name.clone(),
                    adapter: source.adapter.plugin().info().name.clone(),
                    state: verification_state_label(info.verification).to_owned(),
                })
                .set(1);
            for secret in &info.secrets {
                if let Some(end) = &secret.not_after {
                    self.secret_not_after
                        .get_or_create(&SecretLabels::new(&source.name, secret))
                        .set(end.seconds);
                }
            }
        }
    }

    /// Counts a webhook verified by `secret` of `source`.
    pub fn verified_by(&self, source: &str, secret: &tributary_model::v1::SecretInfo) {
        self.webhooks_verified
            .get_or_create(&SecretLabels::new(source, secret))
            .inc();
    }
}
