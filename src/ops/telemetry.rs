//! OpenTelemetry: trace and metrics exporter set-up, the resource (`service.name`,
//! `service.version`, `service.instance.id`, overridable by `OTEL_RESOURCE_ATTRIBUTES`), W3C
//! trace-context propagation, and the small span helpers the data path uses (see
//! docs/observability.md for the span tree).
//!
//! Export is off unless an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `[telemetry] otlp_endpoint`). Off, no tracer
//! provider is installed: spans are the API's no-op spans that only carry their parent's
//! context, and no attribute is built. On, spans go to a batch processor whose bounded queue
//! drops spans when full and whose exports run on its own thread: a slow or dead collector
//! never blocks a webhook.
//!
//! Span attributes are chosen, never copied from requests: no body, header value, query string,
//! secret or personal-data field is ever recorded.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Link, Span as _, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::{EnvResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::config::{OtlpProtocol, TelemetryConfig};

/// Instrumentation scope name of every span Tributary makes.
pub const SCOPE: &str = "tributary";

static ENABLED: AtomicBool = AtomicBool::new(false);
static TRACER: OnceLock<BoxedTracer> = OnceLock::new();

/// Whether spans are exported. When false, span helpers build no attributes.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The tracer: the SDK's when export is on, the API's no-op tracer otherwise.
pub fn tracer() -> &'static BoxedTracer {
    TRACER.get_or_init(|| global::tracer(SCOPE))
}

/// The installed tracer and meter providers, to flush and shut down on exit.
#[must_use = "call shutdown on exit to flush the last spans and metrics"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Flushes queued spans and a last metrics export (bounded by the exporter timeout) and
    /// stops the export threads.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "trace export did not shut down cleanly");
        }
        if let Some(meters) = self.meters
            && let Err(error) = meters.shutdown()
        {
            tracing::warn!(%error, "metrics export did not shut down cleanly");
        }
    }

    /// Whether a tracer provider (and so an exporter) is installed.
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Whether metrics are exported over OTLP.
    pub fn is_exporting_metrics(&self) -> bool {
        self.meters.is_some()
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// A telemetry signal and its `OTEL_*` variable names.
#[derive(Clone, Copy)]
enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

/// Where a signal goes: `None` when it is not exported. The endpoint and protocol are `None`
/// when the exporter reads them from the environment itself (the environment wins over the
/// file).
struct Target<'a> {
    endpoint: Option<&'a str>,
    protocol: Option<OtlpProtocol>,
}

fn target(config: &TelemetryConfig, signal: Signal) -> Option<Target<'_>> {
    let name = signal.name();
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var(format!("OTEL_{name}_EXPORTER")).is_ok_and(|v| v.trim() == "none");
    let env_endpoint = env_set(&format!("OTEL_EXPORTER_OTLP_{name}_ENDPOINT"))
        || env_set("OTEL_EXPORTER_OTLP_ENDPOINT");
    let file_endpoint = config
        .otlp_endpoint
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if disabled || !(env_endpoint || file_endpoint.is_some()) {
        return None;
    }
    let env_protocol = env_set(&format!("OTEL_EXPORTER_OTLP_{name}_PROTOCOL"))
        || env_set("OTEL_EXPORTER_OTLP_PROTOCOL");
    // An endpoint from the file without a protocol gets the OTLP default, HTTP/protobuf.
    let endpoint = if env_endpoint { None } else { file_endpoint };
    let protocol = if env_protocol {
        None
    } else {
        config
            .otlp_protocol
            .or(endpoint.map(|_| OtlpProtocol::HttpProtobuf))
    };
    Some(Target { endpoint, protocol })
}

/// This process's `service.instance.id`: a random UUID (version 4), one per process.
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let mut bytes = [0u8; 16];
        if getrandom::fill(&mut bytes).is_err() {
            bytes = std::process::id()
                .to_be_bytes()
                .repeat(4)
                .try_into()
                .unwrap_or_default();
        }
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex = hex::encode(bytes);
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    })
}

/// The resource of every span and metric: `service.name` (the file's `service_name`, else
/// `tributary`), `service.version`, `service.instance.id`, the SDK's `telemetry.sdk.*`; then
/// `OTEL_RESOURCE_ATTRIBUTES` overrides any of them, and `OTEL_SERVICE_NAME` the name (the
/// OpenTelemetry SDK specification's order).
pub fn resource(config: &TelemetryConfig) -> Resource {
    let mut builder = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_service_name(config.service_name.clone().unwrap_or_else(|| SCOPE.into()))
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", instance_id()),
        ])
        .with_detector(Box::new(EnvResourceDetector::new()));
    if let Ok(name) = std::env::var("OTEL_SERVICE_NAME")
        && !name.trim().is_empty()
    {
        builder = builder.with_service_name(name);
    }
    builder.build()
}

/// Installs the OTLP trace and metrics pipelines when an endpoint is configured. Must run
/// inside the tokio runtime (the gRPC exporters' channels live there).
pub fn init(config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    let resource = resource(config);
    let provider = match target(config, Signal::Traces) {
        Some(target) => Some(tracer_provider(config, &target, resource.clone())?),
        None => None,
    };
    let meters = match target(config, Signal::Metrics) {
        Some(target) => Some(meter_provider(&target, resource)?),
        None => None,
    };
    Ok(Telemetry { provider, meters })
}

/// Builds an OTLP exporter from `$builder` (span or metric: different builder types with the
/// same steps) for `$target`: gRPC, or HTTP/protobuf with the signal's path on the endpoint;
/// without a protocol, the SDK's own defaults and `OTEL_*` variables.
macro_rules! otlp_exporter {
    ($builder:expr, $target:expr, $signal:expr) => {{
        let builder = $builder;
        match $target.protocol {
            Some(OtlpProtocol::Grpc) => {
                let builder = builder.with_tonic();
                match $target.endpoint {
                    Some(endpoint) => builder.with_endpoint(endpoint).build(),
                    None => builder.build(),
                }
            }
            Some(OtlpProtocol::HttpProtobuf) => {
                let builder = builder.with_http().with_protocol(Protocol::HttpBinary);
                match $target.endpoint {
                    Some(endpoint) => builder.with_endpoint(signal_url(endpoint, $signal)).build(),
                    None => builder.build(),
                }
            }
            None => builder.build(),
        }
    }};
}

fn tracer_provider(
    config: &TelemetryConfig,
    target: &Target<'_>,
    resource: Resource,
) -> anyhow::Result<SdkTracerProvider> {
    let exporter = otlp_exporter!(
        opentelemetry_otlp::SpanExporter::builder(),
        target,
        Signal::Traces
    )
    .context("cannot build the OTLP trace exporter")?;
    let mut provider = SdkTracerProvider::builder()
        .with_resource(resource)
        // Bounded queue (OTEL_BSP_MAX_QUEUE_SIZE, default 2048), dropped when full; exports on
        // the processor's own thread.
        .with_batch_exporter(exporter);
    if !env_set("OTEL_TRACES_SAMPLER")
        && let Some(ratio) = config.sample_ratio
    {
        provider = provider.with_sampler(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatioBased(ratio.clamp(0.0, 1.0)),
        )));
    }
    let provider = provider.build();
    global::set_tracer_provider(provider.clone());
    ENABLED.store(true, Ordering::Relaxed);
    Ok(provider)
}

/// The periodic metrics export (`OTEL_METRIC_EXPORT_INTERVAL`, default 60 s, on the reader's
/// own thread) of the bridged Prometheus metrics (`otlp_metrics`).
fn meter_provider(target: &Target<'_>, resource: Resource) -> anyhow::Result<SdkMeterProvider> {
    let exporter = otlp_exporter!(
        opentelemetry_otlp::MetricExporter::builder(),
        target,
        Signal::Metrics
    )
    .context("cannot build the OTLP metrics exporter")?;
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_periodic_exporter(exporter)
        .build();
    crate::ops::otlp_metrics::install(&provider.meter(SCOPE));
    Ok(provider)
}

/// `endpoint` (a base URL) with the signal's OTLP/HTTP path.
fn signal_url(endpoint: &str, signal: Signal) -> String {
    format!("{}{}", endpoint.trim_end_matches('/'), signal.path())
}

/// The metrics export interval (`OTEL_METRIC_EXPORT_INTERVAL`, milliseconds; default 60 s).
pub fn metric_export_interval() -> std::time::Duration {
    std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(
            std::time::Duration::from_secs(60),
            std::time::Duration::from_millis,
        )
}

/// Reads W3C trace-context headers from an HTTP request.
struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Reads W3C trace-context values from a pair of strings (an event's or gRPC metadata's).
struct PairExtractor<'a> {
    traceparent: &'a str,
    tracestate: &'a str,
}

impl Extractor for PairExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.traceparent),
            "tracestate" => Some(self.tracestate),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

#[derive(Default)]
struct MapInjector(HashMap<String, String>);

impl Injector for MapInjector {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// The caller's trace context from `traceparent`/`tracestate` headers; empty when absent or
/// invalid (a new trace starts).
pub fn extract_http(headers: &axum::http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// The span context carried by `traceparent`/`tracestate` strings (invalid when they are not
/// a valid W3C trace context).
pub fn span_context_of(traceparent: &str, tracestate: &str) -> SpanContext {
    if traceparent.is_empty() {
        return SpanContext::empty_context();
    }
    let cx = TraceContextPropagator::new().extract(&PairExtractor {
        traceparent,
        tracestate,
    });
    cx.span().span_context().clone()
}

/// `(traceparent, tracestate)` of the active span of `cx`; `None` when it has no valid span.
pub fn inject(cx: &Context) -> Option<(String, String)> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut map = MapInjector::default();
    TraceContextPropagator::new().inject_context(cx, &mut map);
    let traceparent = map.0.remove("traceparent")?;
    Some((traceparent, map.0.remove("tracestate").unwrap_or_default()))
}

/// A started span, held in its context so children can be started under it.
pub struct Stage {
    cx: Context,
}

impl Stage {
    /// Starts span `name` of `kind` under `parent`. `attributes` runs only when exporting.
    pub fn start(
        name: &'static str,
        kind: SpanKind,
        parent: &Context,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Self {
        Self::start_linked(name, kind, parent, attributes, Vec::new)
    }

    /// Like [`Stage::start`], with links to other span contexts.
    pub fn start_linked(
        name: impl Into<std::borrow::Cow<'static, str>>,
        kind: SpanKind,
        parent: &Context,
        attributes: impl FnOnce() -> Vec<KeyValue>,
        links: impl FnOnce() -> Vec<Link>,
    ) -> Self {
        let mut builder = SpanBuilder::from_name(name).with_kind(kind);
        if enabled() {
            builder = builder.with_attributes(attributes()).with_links(links());
        }
        let span = builder.start_with_context(tracer(), parent);
        Self {
            cx: parent.with_span(span),
        }
    }

    /// The context with this span active, to parent children or propagate.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Adds attributes (built only when exporting).
    pub fn record(&self, attributes: impl FnOnce() -> Vec<KeyValue>) {
        if enabled() {
            self.cx.span().set_attributes(attributes());
        }
    }

    /// Marks the span failed with a fixed, data-free description.
    pub fn fail(&self, description: &'static str) {
        if enabled() {
            self.cx.span().set_status(Status::error(description));
        }
    }

    /// Ends the span now.
    pub fn end(self) {
        self.cx.span().end();
    }

    /// Records span `name` under `parent` that already happened: from `start` for `took`
    /// (a stage timed inside an adapter call). Nothing is built unless exporting.
    pub fn record_past(
        name: &'static str,
        parent: &Context,
        (start, took): (std::time::SystemTime, std::time::Duration),
        attributes: impl FnOnce() -> Vec<KeyValue>,
        failure: Option<&'static str>,
    ) {
        if !enabled() {
            return;
        }
        let mut span = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(attributes())
            .start_with_context(tracer(), parent);
        if let Some(description) = failure {
            span.set_status(Status::error(description));
        }
        span.end_with_timestamp(start + took);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_round_trips() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = span_context_of(parent, "vendor=a");
        assert!(context.is_valid());
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let cx = Context::new().with_remote_span_context(context);
        let (traceparent, tracestate) = inject(&cx).expect("valid");
        assert_eq!(traceparent, parent);
        assert_eq!(tracestate, "vendor=a");
        assert!(!span_context_of("garbage", "").is_valid());
        assert!(inject(&Context::new()).is_none());
    }
}
