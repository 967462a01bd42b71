//! A consumer that exports its own spans: each event's handling span is a child of its
//! delivery, so one trace shows the provider's POST through to this handler
//! (`tributary-client` does the resuming and the context extraction).
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=my-consumer \
//!   cargo run --example consumer-trace -- http://127.0.0.1:50051
//! ```

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tributary_client::prelude::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // OTLP/HTTP exporter configured by the standard OTEL_* environment variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("my-consumer");

    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let client = Client::builder(address).connect().await?;
    let mut events = client.subscribe(Filter::all(), Start::Latest);
    while let Some(event) = events.next().await {
        let event = event?;
        let cx = tributary_client::trace::process_span(&tracer, &event);
        // ... handle the event under `cx` (`let _guard = cx.clone().attach();`) ...
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
