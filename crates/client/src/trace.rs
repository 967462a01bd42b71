//! Trace continuation: every event carries the W3C trace context of the span that stored it
//! (`traceparent`/`tracestate`, the CloudEvents distributed-tracing attributes), so the span a
//! consumer opens for its handling is a child of the delivery, in the provider's trace.
//!
//! ```no_run
//! # fn handle(event: &tributary_client::Event) {
//! use opentelemetry::trace::TraceContextExt;
//! let tracer = opentelemetry::global::tracer("billing");
//! let cx = tributary_client::trace::process_span(&tracer, event);
//! // ... handle the event; `cx.attach()` makes it the current context ...
//! cx.span().end();
//! # }
//! ```

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tributary_model::v1::Event;

/// Reads an event's trace attributes as W3C headers.
struct EventHeaders<'a>(&'a Event);

impl Extractor for EventHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" if !self.0.traceparent.is_empty() => Some(&self.0.traceparent),
            "tracestate" if !self.0.tracestate.is_empty() => Some(&self.0.tracestate),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The event's trace context as a parent (a remote span context); an empty context when the
/// event carries none, so a span started under it begins a new trace.
pub fn context(event: &Event) -> Context {
    TraceContextPropagator::new().extract(&EventHeaders(event))
}

/// Starts the consumer's span for handling `event`, `process <type>` of kind `CONSUMER`, as a
/// child of the event's trace context, with the messaging attributes of the OpenTelemetry
/// semantic conventions. Returns the context holding it: end it with `cx.span().end()`.
pub fn process_span<T>(tracer: &T, event: &Event) -> Context
where
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    let parent = context(event);
    let span = tracer
        .span_builder(format!("process {}", event.r#type))
        .with_kind(SpanKind::Consumer)
        .with_attributes([
            KeyValue::new("messaging.system", "tributary"),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.destination.name", event.source.clone()),
            KeyValue::new("messaging.message.id", event.id.clone()),
            KeyValue::new("tributary.event.type", event.r#type.clone()),
            KeyValue::new(
                "tributary.event.sequence",
                i64::try_from(event.sequence).unwrap_or(i64::MAX),
            ),
        ])
        .start_with_context(tracer, &parent);
    parent.with_span(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_trace_context_becomes_the_parent() {
        let event = Event {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            tracestate: "vendor=a".into(),
            ..Event::default()
        };
        let cx = context(&event);
        let span = cx.span();
        let parent = span.span_context();
        assert!(parent.is_remote());
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
        assert_eq!(parent.trace_state().header(), "vendor=a");

        let none = context(&Event::default());
        assert!(!none.span().span_context().is_valid());
        let garbage = Event {
            traceparent: "not-a-traceparent".into(),
            ..Event::default()
        };
        assert!(!context(&garbage).span().span_context().is_valid());
    }
}
