"""A Python consumer that continues each event's trace (documentation example, not run by CI).

Setup (generates the gRPC stubs from this repository's proto/ directory):

    pip install grpcio grpcio-tools opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
    python -m grpc_tools.protoc -I proto --python_out=. --grpc_python_out=. \
        proto/tributary/v1/*.proto
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=my-consumer \
        python examples/consumers/python_trace.py 127.0.0.1:50051
"""

import sys

import grpc
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tributary.v1 import service_pb2, service_pb2_grpc

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("my-consumer")
propagator = TraceContextTextMapPropagator()

channel = grpc.insecure_channel(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
stream = service_pb2_grpc.EventStreamStub(channel).Subscribe(service_pb2.SubscribeRequest())
for event in stream:
    # The event's CloudEvents distributed-tracing attributes are W3C trace-context values.
    parent = propagator.extract({"traceparent": event.traceparent, "tracestate": event.tracestate})
    with tracer.start_as_current_span(
        f"process {event.type}", context=parent, kind=trace.SpanKind.CONSUMER
    ) as span:
        span.set_attribute("tributary.event.sequence", event.sequence)
        # ... handle the event here ...
        print(event.sequence, format(span.get_span_context().trace_id, "032x"))
