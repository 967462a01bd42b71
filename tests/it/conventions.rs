//! The ecosystem's conventions: what generic gRPC tooling expects (reflection in both versions
//! in use, v1 and v1alpha for grpcio-reflection and older tools; health per service), and what
//! OpenTelemetry backends expect (JSON logs correlated with traces, metrics over OTLP, resource
//! attributes overridable by `OTEL_RESOURCE_ATTRIBUTES`).

use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as NumberValue;
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::support::collector::{Collected, grpc_collector, resource_attribute};
use crate::support::{ARCADIA_AUTH, Server, arcadia_source, arcadia_webhook, repo};

#[tokio::test]
async fn reflection_v1alpha_lists_the_services() {
    let server = Server::start("");
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha reflection")
        .into_inner();
    let answer = answers.next().await.expect("an answer").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for expected in [
        "grpc.health.v1.Health",
        "tributary.v1.Adapters",
        "tributary.v1.Admin",
        "tributary.v1.EventStream",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
}

#[tokio::test]
async fn health_answers_per_service() {
    let server = Server::start("");
    let mut health = HealthClient::new(server.channel().await);
    for service in [
        "",
        "tributary.v1.EventStream",
        "tributary.v1.Adapters",
        "tributary.v1.Admin",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("{service:?}: {e}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
}

/// The OTLP export environment of these tests: gRPC, quick batches and metric exports.
fn export_env<'a>(endpoint: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ];
    env.extend_from_slice(extra);
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_trace_and_span_of_the_active_span() {
    let (collector, endpoint) = grpc_collector().await;
    let env = export_env(&endpoint, &[("TRIBUTARY_LOG_FORMAT", "json")]);
    let server = Server::start_with_env(&arcadia_source(""), &env);
    let trace_id = "5b8efff798038103d269b633813fc60c";
    let traceparent = format!("00-{trace_id}-eee19b7ec3c1b174-01");
    let (status, _) = server
        .post(
            "arcadia",
            &arcadia_webhook("whk_log-1"),
            &[("traceparent", &traceparent), ("X-Arcadia-Token", "wrong")],
        )
        .await;
    assert_eq!(status, 401);
    let spans = collector.wait_for(trace_id, 2).await;
    let receive = spans
        .iter()
        .find(|s| s.name == "POST /webhooks/{source}")
        .expect("receive span");

    let lines: Vec<serde_json::Value> = server
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let rejected = lines
        .iter()
        .find(|l| l["fields"]["message"] == "webhook rejected: verification failed")
        .unwrap_or_else(|| panic!("no rejection logged: {}", server.logs()));
    assert_eq!(rejected["trace_id"], trace_id);
    assert_eq!(rejected["span_id"], hex::encode(&receive.span_id));
    assert_eq!(rejected["level"], "WARN");
    // Outside any span (start-up) a line has no trace fields.
    let listening = lines
        .iter()
        .find(|l| l["fields"]["message"] == "tributary listening")
        .expect("start-up line");
    assert!(listening.get("trace_id").is_none(), "{listening}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_attributes_are_set_and_otel_resource_attributes_override_them() {
    let (collector, endpoint) = grpc_collector().await;
    let server = Server::start_with_env(&arcadia_source(""), &export_env(&endpoint, &[]));
    post_arcadia_ok(&server, "whk_resource-1").await;
    let resource = wait_for_resource(&collector).await;
    let attribute = |key| resource_attribute(&resource, key).map(str::to_owned);
    assert_eq!(attribute("service.name").as_deref(), Some("tributary"));
    assert_eq!(
        attribute("service.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let instance = attribute("service.instance.id").expect("service.instance.id");
    assert_eq!(instance.len(), 36, "a UUID: {instance}");
    assert_eq!(&instance[14..15], "4", "version 4: {instance}");
    drop(server);

    let (collector, endpoint) = grpc_collector().await;
    let overrides = [
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-attributes,service.version=9.9.9-ci,service.instance.id=edge-1,deployment.environment.name=ci",
        ),
        ("OTEL_SERVICE_NAME", "tributary-eu"),
    ];
    let server = Server::start_with_env(&arcadia_source(""), &export_env(&endpoint, &overrides));
    post_arcadia_ok(&server, "whk_resource-2").await;
    let resource = wait_for_resource(&collector).await;
    let attribute = |key| resource_attribute(&resource, key);
    // OTEL_SERVICE_NAME wins over OTEL_RESOURCE_ATTRIBUTES, which wins over the defaults.
    assert_eq!(attribute("service.name"), Some("tributary-eu"));
    assert_eq!(attribute("service.version"), Some("9.9.9-ci"));
    assert_eq!(attribute("service.instance.id"), Some("edge-1"));
    assert_eq!(attribute("deployment.environment.name"), Some("ci"));
    // Metrics carry the same resource.
    let (metric_resource, _) = collector
        .wait_for_metric("tributary_webhooks_received", |_| true)
        .await;
    let metric_resource = metric_resource.expect("metrics resource");
    assert_eq!(
        resource_attribute(&metric_resource, "service.instance.id"),
        Some("edge-1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_exported_over_otlp_as_well_as_prometheus() {
    let (collector, endpoint) = grpc_collector().await;
    let server = Server::start_with_env(&arcadia_source(""), &export_env(&endpoint, &[]));
    post_arcadia_ok(&server, "whk_metrics-1").await;
    post_arcadia_ok(&server, "whk_metrics-2").await;

    let (_, received) = collector
        .wait_for_metric("tributary_webhooks_received", |m| {
            sum_points(m) == [(vec![("adapter", "arcadia"), ("source", "arcadia")], 2)]
        })
        .await;
    let Some(Data::Sum(sum)) = &received.data else {
        panic!("not a sum: {received:?}");
    };
    assert!(sum.is_monotonic);
    assert_eq!(sum.aggregation_temporality, 2, "cumulative");

    let (_, appended) = collector
        .wait_for_metric("tributary_append_duration_seconds", |m| {
            matches!(&m.data, Some(Data::Histogram(h)) if h.data_points.iter().any(|p| p.count == 2))
        })
        .await;
    assert_eq!(appended.unit, "s");
    let Some(Data::Histogram(histogram)) = &appended.data else {
        panic!("not a histogram");
    };
    let bounds = &histogram.data_points[0].explicit_bounds;
    assert_eq!(bounds.len(), 16);
    assert_eq!((bounds[0], bounds[15]), (0.0001, 0.0001 * 32768.0));

    // A scrape-time gauge, refreshed for OTLP without a scrape.
    collector
        .wait_for_metric("tributary_log_last_sequence", |m| {
            matches!(&m.data, Some(Data::Gauge(g)) if g.data_points.iter().any(|p| p.value == Some(NumberValue::AsInt(2))))
        })
        .await;
    // Prometheus keeps its names.
    let (_, text) = server.get("/metrics").await;
    assert!(
        text.contains(r#"tributary_webhooks_received_total{source="arcadia",adapter="arcadia"} 2"#),
        "{text}"
    );
}

async fn post_arcadia_ok(server: &Server, id: &str) {
    let (status, body) = server
        .post("arcadia", &arcadia_webhook(id), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The resource of the first exported spans (panics after 15 s).
async fn wait_for_resource(collector: &Collected) -> Resource {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(resource) = collector.span_resources().into_iter().next() {
            return resource;
        }
        assert!(std::time::Instant::now() < deadline, "no spans exported");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A sum's points: sorted (key, value) attributes and integer value.
fn sum_points(metric: &Metric) -> Vec<(Vec<(&str, &str)>, i64)> {
    let Some(Data::Sum(sum)) = &metric.data else {
        return Vec::new();
    };
    sum.data_points
        .iter()
        .map(|point| {
            let mut attributes: Vec<(&str, &str)> = point
                .attributes
                .iter()
                .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(v) => Some((kv.key.as_str(), v.as_str())),
                    _ => None,
                })
                .collect();
            attributes.sort();
            let value = match point.value {
                Some(NumberValue::AsInt(v)) => v,
                Some(NumberValue::AsDouble(v)) => v as i64,
                None => -1,
            };
            (attributes, value)
        })
        .collect()
}

#[test]
fn the_grafana_dashboard_charts_every_metric_by_its_real_name() {
    let source = std::fs::read_to_string(repo().join("src/ops/metrics.rs")).expect("metrics.rs");
    let registered: std::collections::BTreeSet<&str> = source
        .split('"')
        .filter(|s| s.starts_with("tributary_") && !s.contains(' '))
        .collect();
    assert!(registered.len() >= 20, "{registered:?}");
    let text = std::fs::read_to_string(repo().join("docs/grafana/tributary.json")).expect("json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let mut charted = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !word.starts_with("tributary_") {
                    continue;
                }
                let family = ["_bucket", "_total", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .filter(|base| registered.contains(base))
                    .unwrap_or(word);
                assert!(
                    registered.contains(family),
                    "{word} in {:?} is not a registered metric",
                    panel["title"]
                );
                charted.insert(family.to_owned());
            }
        }
    }
    let missing: Vec<&&str> = registered
        .iter()
        .filter(|name| !charted.contains(**name))
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}
