//! The Prometheus metrics over OTLP too, when an OTLP endpoint is configured: one set of
//! metrics, two ways out (Prometheus scrapes `/metrics` as before).
//!
//! Counters and gauges are observed from the Prometheus registry at each export (OpenTelemetry
//! asynchronous instruments whose callbacks read the registry's values), so the two can never
//! disagree. Histograms cannot be observed that way in OpenTelemetry: they are recorded into
//! OpenTelemetry histograms with the same bucket bounds where the Prometheus ones are
//! (`Metrics::observe_*`). Names are the Prometheus family names without the `_total` suffix
//! (OpenTelemetry's naming; an OTLP-to-Prometheus exporter adds it back), labels become
//! attributes. The scrape-time gauges (consumer lag, log, plugins) are refreshed by
//! [`refresh_task`] at the export interval.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use prometheus_client::encoding::prometheus_protobuf::{encode, prometheus_data_model as pm};
use prometheus_client::metrics::MetricType;

use crate::app::App;
use crate::ops::metrics::{Metrics, OtlpHistograms, metrics, otlp_histograms, set_otlp_histograms};

/// The histograms to record into, once OTLP export is on.
pub fn histograms() -> Option<&'static OtlpHistograms> {
    otlp_histograms()
}

/// Registers every Prometheus family on `meter`: counters and gauges as observers of the
/// registry, histograms as OpenTelemetry histograms recorded beside the Prometheus ones.
pub fn install(meter: &Meter) {
    for &(name, kind, help) in metrics().catalog() {
        match kind {
            MetricType::Counter => {
                let otel_name = name;
                // The protobuf encoding names counters as Prometheus does, with `_total`.
                let name = format!("{name}_total");
                meter
                    .u64_observable_counter(otel_name)
                    .with_description(help)
                    .with_callback(move |observer| {
                        for (attributes, metric) in points(&name) {
                            if let Some(counter) = metric.counter {
                                observer.observe(counter.value as u64, &attributes);
                            }
                        }
                    })
                    .build();
            }
            // Ratios and durations keep their fractions.
            MetricType::Gauge if name.ends_with("_ratio") || name.ends_with("_seconds") => {
                meter
                    .f64_observable_gauge(name)
                    .with_description(help)
                    .with_callback(move |observer| {
                        for (attributes, metric) in points(name) {
                            if let Some(gauge) = metric.gauge {
                                observer.observe(gauge.value, &attributes);
                            }
                        }
                    })
                    .build();
            }
            MetricType::Gauge => {
                meter
                    .i64_observable_gauge(name)
                    .with_description(help)
                    .with_callback(move |observer| {
                        for (attributes, metric) in points(name) {
                            if let Some(gauge) = metric.gauge {
                                observer.observe(gauge.value as i64, &attributes);
                            }
                        }
                    })
                    .build();
            }
            _ => {}
        }
    }
    let histogram = |name: &'static str, unit: &'static str, bounds: Vec<f64>| {
        meter
            .f64_histogram(name)
            .with_unit(unit)
            .with_boundaries(bounds)
            .build()
    };
    set_otlp_histograms(OtlpHistograms {
        verify_seconds: histogram(
            "tributary_verify_duration_seconds",
            "s",
            Metrics::latency_bounds(),
        ),
        normalize_seconds: histogram(
            "tributary_normalize_duration_seconds",
            "s",
            Metrics::latency_bounds(),
        ),
        append_seconds: histogram(
            "tributary_append_duration_seconds",
            "s",
            Metrics::latency_bounds(),
        ),
        append_batch_items: histogram(
            "tributary_append_batch_items",
            "{item}",
            Metrics::batch_bounds(),
        ),
    });
}

/// The current metrics of the Prometheus family `name`, with their labels as attributes.
fn points(name: &str) -> Vec<(Vec<KeyValue>, pm::Metric)> {
    let Ok(families) = encode(metrics().registry()) else {
        return Vec::new();
    };
    families
        .into_iter()
        .filter(|family| family.name == name)
        .flat_map(|family| family.metric)
        .map(|metric| {
            let attributes = metric
                .label
                .iter()
                .map(|label| KeyValue::new(label.name.clone(), label.value.clone()))
                .collect();
            (attributes, metric)
        })
        .collect()
}

/// Keeps the scrape-time gauges fresh for OTLP (nobody may scrape `/metrics`): refreshes them
/// every `interval` until shutdown.
pub async fn refresh_task(app: App, interval: Duration) {
    let mut shutdown = app.shutdown.clone();
    loop {
        metrics().refresh(&app).await;
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
