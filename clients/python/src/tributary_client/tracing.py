"""Trace continuation: each event carries the W3C trace context of its delivery
(``traceparent``/``tracestate``, the CloudEvents distributed-tracing attributes), so the span a
consumer opens for its handling is a child of the delivery, in the provider's trace."""

from contextlib import contextmanager
from typing import Iterator, Optional

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from tributary.v1.event_pb2 import Event

_PROPAGATOR = TraceContextTextMapPropagator()


def context_of(event: Event) -> Context:
    """The event's trace context as a parent; empty (a new trace) when it carries none."""
    carrier = {}
    if event.traceparent:
        carrier["traceparent"] = event.traceparent
    if event.tracestate:
        carrier["tracestate"] = event.tracestate
    return _PROPAGATOR.extract(carrier)


@contextmanager
def process_span(event: Event, tracer: Optional[trace.Tracer] = None) -> Iterator[trace.Span]:
    """The consumer's span for handling ``event`` (``process <type>``, kind CONSUMER, with the
    messaging semantic-convention attributes), current while the block runs."""
    tracer = tracer or trace.get_tracer("tributary_client")
    with tracer.start_as_current_span(
        f"process {event.type}",
        context=context_of(event),
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "tributary",
            "messaging.operation.type": "process",
            "messaging.destination.name": event.source,
            "messaging.message.id": event.id,
            "tributary.event.type": event.type,
            "tributary.event.sequence": event.sequence,
        },
    ) as span:
        yield span
