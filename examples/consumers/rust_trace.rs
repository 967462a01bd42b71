//! A consumer that continues each event's trace: its handling span is a child of the span that
//! stored the event, so a trace shows the provider's POST through to this handler.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
//!   cargo run --example consumer-trace -- http://127.0.0.1:50051
//! ```

use opentelemetry::global;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio_stream::StreamExt;
use tributary::proto::event_stream_client::EventStreamClient;
use tributary_model::v1::{Event, SubscribeRequest};

/// The event's CloudEvents distributed-tracing attributes, read as W3C headers.
struct EventContext<'a>(&'a Event);

impl Extractor for EventContext<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.0.traceparent.as_str()),
            "tracestate" => Some(self.0.tracestate.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // OTLP/HTTP exporter configured by the standard OTEL_* environment variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    global::set_tracer_provider(provider.clone());
    let tracer = global::tracer("my-consumer");

    let server = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let mut client = EventStreamClient::connect(server).await?;
    let mut events = client
        .subscribe(SubscribeRequest::default())
        .await?
        .into_inner();
    while let Some(event) = events.next().await {
        let event = event?;
        // The parent: the ingest trace the event carries (a new trace if it carries none).
        let parent = TraceContextPropagator::new().extract(&EventContext(&event));
        let span = tracer
            .span_builder(format!("process {}", event.r#type))
            .with_kind(SpanKind::Consumer)
            .start_with_context(&tracer, &parent);
        let cx = parent.with_span(span);
        // ... handle the event under `cx` ...
        println!(
            "event {} in trace {}",
            event.sequence,
            cx.span().span_context().trace_id()
        );
        cx.span().end();
    }
    provider.shutdown()?;
    Ok(())
}
