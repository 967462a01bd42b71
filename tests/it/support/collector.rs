//! An OTLP collector inside the test, over gRPC or HTTP/protobuf, on 127.0.0.1:0: keeps every
//! trace and metrics export it receives, for exact assertions.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio_stream::wrappers::TcpListenerStream;

/// Everything a collector received.
#[derive(Clone, Default)]
pub struct Collected {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

impl Collected {
    fn push(&self, request: ExportTraceServiceRequest) {
        self.traces.lock().expect("lock").push(request);
    }

    /// Every span received.
    pub fn spans(&self) -> Vec<Span> {
        self.traces
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    /// The resources spans were exported with.
    pub fn span_resources(&self) -> Vec<Resource> {
        self.traces
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|r| &r.resource_spans)
            .filter_map(|r| r.resource.clone())
            .collect()
    }

    /// The spans of `trace_id`, once at least `count` have arrived (panics after 15 s).
    pub async fn wait_for(&self, trace_id: &str, count: usize) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let spans: Vec<Span> = self
                .spans()
                .into_iter()
                .filter(|s| hex::encode(&s.trace_id) == trace_id)
                .collect();
            if spans.len() >= count {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} spans of trace {trace_id}: {spans:#?}",
                spans.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every metric received with its resource, oldest export first.
    pub fn metrics(&self) -> Vec<(Option<Resource>, Metric)> {
        self.metrics
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| {
                r.scope_metrics
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .map(|m| (r.resource.clone(), m.clone()))
            })
            .collect()
    }

    /// The newest export of metric `name` that `accept` takes (panics after 15 s).
    pub async fn wait_for_metric(
        &self,
        name: &str,
        accept: impl Fn(&Metric) -> bool,
    ) -> (Option<Resource>, Metric) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = self
                .metrics()
                .into_iter()
                .rev()
                .find(|(_, m)| m.name == name && accept(m));
            if let Some(found) = found {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no metric {name} as expected; names seen: {:?}",
                self.metrics()
                    .iter()
                    .map(|(_, m)| m.name.clone())
                    .collect::<std::collections::BTreeSet<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything received, as text, for searching.
    pub fn dump(&self) -> String {
        format!(
            "{:?}{:?}",
            self.traces.lock().expect("lock"),
            self.metrics.lock().expect("lock")
        )
    }
}

/// A string attribute of a resource.
pub fn resource_attribute<'a>(resource: &'a Resource, key: &str) -> Option<&'a str> {
    resource
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(value) => Some(value.as_str()),
            _ => None,
        })
}

#[tonic::async_trait]
impl TraceService for Collected {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collected {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics
            .lock()
            .expect("lock")
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// An OTLP/gRPC collector (traces and metrics) on 127.0.0.1:0; returns its endpoint URL.
pub async fn grpc_collector() -> (Collected, String) {
    let collected = Collected::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let traces = TraceServiceServer::new(collected.clone());
    let metrics = MetricsServiceServer::new(collected.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(traces)
            .add_service(metrics)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .expect("collector");
    });
    (collected, format!("http://{address}"))
}

/// An OTLP/HTTP (protobuf) trace collector on 127.0.0.1:0; returns its base endpoint URL.
pub async fn http_collector() -> (Collected, String) {
    let collected = Collected::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let sink = collected.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                match ExportTraceServiceRequest::decode(body) {
                    Ok(request) => {
                        sink.push(request);
                        (
                            axum::http::StatusCode::OK,
                            [("content-type", "application/x-protobuf")],
                            ExportTraceServiceResponse::default().encode_to_vec(),
                        )
                    }
                    Err(_) => (
                        axum::http::StatusCode::BAD_REQUEST,
                        [("content-type", "text/plain")],
                        b"undecodable".to_vec(),
                    ),
                }
            }
        }),
    );
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("collector");
    });
    (collected, format!("http://{address}"))
}

/// The `OTEL_*` environment of a server exporting to `endpoint` over `protocol`, quickly.
pub fn otel_env<'a>(endpoint: &'a str, protocol: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_SERVICE_NAME", "tributary-e2e"),
    ]
}
